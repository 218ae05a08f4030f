-- Named queries of the cache on SQLite. Each public read is one statement outside any transaction.

-- name: read
-- A read that names a version. Its one parameter is bound from a tuple (a `?`), not by name from a dict: the
-- driver binds it without a dict and a name look-up (decision 0121).
SELECT key, value, expires_at, version FROM solidstack_cache_entries WHERE key_hash = ?

-- name: read_unversioned
-- The hottest statement, a read without a version: no check reads the row's version then, and each column
-- fetched costs the driver a release and retake of the GIL (decision 0121).
SELECT key, value, expires_at FROM solidstack_cache_entries WHERE key_hash = ?

-- name: read_for_update
-- In the read-change-write transaction of `_update`: BEGIN IMMEDIATE already holds the write lock.
SELECT key, value, expires_at, version FROM solidstack_cache_entries WHERE key_hash = :key_hash

-- name: read_multi
-- :key_hashes is a JSON array: one statement whatever the number of keys.
SELECT key, value, expires_at, version FROM solidstack_cache_entries
WHERE key_hash IN (SELECT value FROM json_each(:key_hashes))

-- name: exist
SELECT key, expires_at, version FROM solidstack_cache_entries WHERE key_hash = :key_hash

-- name: write
-- An overwrite keeps the row's id, so its place in the FIFO order is that of its first write (as Solid Cache).
INSERT INTO solidstack_cache_entries (key, value, key_hash, byte_size, created_at, expires_at, version)
VALUES (:key, :value, :key_hash, :byte_size, :created_at, :expires_at, :version)
ON CONFLICT (key_hash) DO UPDATE SET
    key = excluded.key, value = excluded.value, byte_size = excluded.byte_size,
    created_at = excluded.created_at, expires_at = excluded.expires_at, version = excluded.version

-- name: delete
DELETE FROM solidstack_cache_entries WHERE key_hash = :key_hash

-- name: delete_multi
DELETE FROM solidstack_cache_entries WHERE key_hash IN (SELECT value FROM json_each(:key_hashes))

-- name: delete_ids
DELETE FROM solidstack_cache_entries WHERE id IN (SELECT value FROM json_each(:ids))

-- name: clear
DELETE FROM solidstack_cache_entries

-- name: oldest_ids
-- The oldest rows by first write: what a full cache evicts.
SELECT id FROM solidstack_cache_entries ORDER BY id LIMIT :limit

-- name: expired_ids
-- Among the oldest rows, those past max_age or their own expiry (usually none: then nothing leaves SQLite).
SELECT id FROM (SELECT id, created_at, expires_at FROM solidstack_cache_entries ORDER BY id LIMIT :limit)
WHERE created_at < :cutoff OR expires_at <= :now

-- name: id_range
-- Two subqueries: SQLite answers a lone MIN or MAX from the b-tree's edge, but scans for MIN and MAX together.
SELECT (SELECT MIN(id) FROM solidstack_cache_entries) AS min_id,
       (SELECT MAX(id) FROM solidstack_cache_entries) AS max_id

-- name: count_and_size
SELECT COUNT(*) AS entries, COALESCE(SUM(byte_size), 0) AS size FROM solidstack_cache_entries

-- name: sample_count_and_size
-- A window of ids: a range scan of the table itself, so sampling needs no index of its own.
SELECT COUNT(*) AS entries, COALESCE(SUM(byte_size), 0) AS size FROM solidstack_cache_entries
WHERE id BETWEEN :low AND :high

-- name: oldest
SELECT created_at FROM solidstack_cache_entries ORDER BY id LIMIT 1

-- name: increment
-- A counter in one statement: insert the amount, or add it to a live integer entry of the same key. An entry
-- that is expired, of another key (hash collision), not a plain integer (type byte 0x02 + decimal digits), or
-- long enough that the sum could leave 64 bits is left alone: RETURNING gives no row, and the store falls
-- back to read, add and write in a transaction.
INSERT INTO solidstack_cache_entries (key, value, key_hash, byte_size, created_at, expires_at, version)
VALUES (:key, :value, :key_hash, :byte_size, :now, :expires_at, NULL)
ON CONFLICT (key_hash) DO UPDATE SET
    value = CAST(x'02' || (CAST(CAST(substr(value, 2) AS TEXT) AS INTEGER) + :amount) AS BLOB),
    version = NULL
WHERE key = excluded.key AND (expires_at IS NULL OR expires_at > :now)
    AND substr(value, 1, 1) = x'02' AND length(value) <= 17
RETURNING value
