-- Named queries of the cache on PostgreSQL: the same names and parameters as sql/sqlite/queries.sql.
-- Lists are bound as arrays (`= ANY(:key_hashes)`), one statement whatever the number of keys.

-- name: read
-- A read that names a version; bound from a tuple (a `?`), as on SQLite (decision 0121).
SELECT key, value, expires_at, version FROM solidstack_cache_entries WHERE key_hash = ?

-- name: read_unversioned
-- A read without a version: no check reads the row's version then.
SELECT key, value, expires_at FROM solidstack_cache_entries WHERE key_hash = ?

-- name: read_for_update
-- In the read-change-write transaction of `_update` (unless_exist, race_condition_ttl, the general increment):
-- the row stays locked until the commit, so an in-place increment or another update waits instead of being lost.
SELECT key, value, expires_at, version FROM solidstack_cache_entries WHERE key_hash = :key_hash FOR UPDATE

-- name: bound_waits
-- First in the read-change-write transaction of `_update`, the one that can wait on locks: those waits end
-- within the store's busy_timeout (then the call is a miss). Set in the transaction, not as a connection
-- option, which pgbouncer refuses or drops.
SELECT set_config('lock_timeout', :lock_timeout, true), set_config('statement_timeout', :statement_timeout, true)

-- name: lock_key
-- Serializes `_update`s of one key across processes and machines also while the key has no row yet (FOR UPDATE
-- locks only rows that exist). Held until the transaction ends; the key space is the key hash's.
SELECT pg_advisory_xact_lock(:key_hash)

-- name: read_multi
SELECT key, value, expires_at, version FROM solidstack_cache_entries WHERE key_hash = ANY(:key_hashes)

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
DELETE FROM solidstack_cache_entries WHERE key_hash = ANY(:key_hashes)

-- name: delete_ids
DELETE FROM solidstack_cache_entries WHERE id = ANY(:ids)

-- name: clear
DELETE FROM solidstack_cache_entries

-- name: oldest_ids
-- The oldest rows by first write: what a full cache evicts.
SELECT id FROM solidstack_cache_entries ORDER BY id LIMIT :limit

-- name: expired_ids
-- Among the oldest rows, those past max_age or their own expiry.
SELECT id FROM (SELECT id, created_at, expires_at FROM solidstack_cache_entries ORDER BY id LIMIT :limit) AS oldest
WHERE created_at < :cutoff OR expires_at <= :now

-- name: id_range
SELECT (SELECT MIN(id) FROM solidstack_cache_entries) AS min_id,
       (SELECT MAX(id) FROM solidstack_cache_entries) AS max_id

-- name: count_and_size
SELECT COUNT(*) AS entries, COALESCE(SUM(byte_size), 0) AS size FROM solidstack_cache_entries

-- name: sample_count_and_size
-- A window of ids: a range scan of the primary key. Ids have gaps here (an upsert that updates still draws an
-- id from the sequence), so the window's density is what scales the estimate, as on SQLite.
SELECT COUNT(*) AS entries, COALESCE(SUM(byte_size), 0) AS size FROM solidstack_cache_entries
WHERE id BETWEEN :low AND :high

-- name: oldest
SELECT created_at FROM solidstack_cache_entries ORDER BY id LIMIT 1

-- name: increment
-- A counter in one statement, atomic across machines: insert the amount, or add it to a live integer entry of
-- the same key, under the row lock ON CONFLICT takes. An entry that is expired, of another key (hash collision),
-- not a plain integer (type byte 0x02 + decimal digits), or long enough that the sum could leave 64 bits is
-- left alone: RETURNING gives no row, and the store falls back to read, add and write in a transaction.
INSERT INTO solidstack_cache_entries AS entry (key, value, key_hash, byte_size, created_at, expires_at, version)
VALUES (:key, :value, :key_hash, :byte_size, :now, :expires_at, NULL)
ON CONFLICT (key_hash) DO UPDATE SET
    value = '\x02'::bytea
            || convert_to((convert_from(substring(entry.value FROM 2), 'UTF8')::bigint + :amount)::text, 'UTF8'),
    version = NULL
WHERE entry.key = excluded.key AND (entry.expires_at IS NULL OR entry.expires_at > :now)
    AND get_byte(entry.value, 0) = 2 AND length(entry.value) <= 17
RETURNING value
