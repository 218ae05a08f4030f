-- Rate limits: each start of a key is numbered (seq: 1, 2, 3... per key), so "the to-th most recent start" is one
-- index lookup (seq = last - to + 1) instead of a walk of `to` index entries, whatever `to` is (decision 0050).
-- Starts before the to-th most recent are never read again: pruning deletes them by seq.
ALTER TABLE solidstack_rate_limit_starts ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE solidstack_rate_limit_starts SET seq = (
    SELECT count(*) FROM solidstack_rate_limit_starts s
    WHERE s.key = solidstack_rate_limit_starts.key AND s.id <= solidstack_rate_limit_starts.id);
DROP INDEX index_solidstack_rate_limit_starts_on_key;
CREATE UNIQUE INDEX index_solidstack_rate_limit_starts_on_key_seq ON solidstack_rate_limit_starts (key, seq);

-- Unique keys: a key row is written by every unique enqueue. Clustered on the key (WITHOUT ROWID: one b-tree, not
-- a table and its key's index) and without the index on expires_at (the dispatcher's sweep of lapsed keys reads
-- the table instead, once per concurrency_maintenance_interval, 10 minutes by default): two fewer pages written per enqueue (decision 0051).
CREATE TABLE solidstack_unique_keys_new (
    key TEXT PRIMARY KEY,
    job_id INTEGER,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO solidstack_unique_keys_new (key, job_id, expires_at, created_at)
SELECT key, job_id, expires_at, created_at FROM solidstack_unique_keys;
DROP TABLE solidstack_unique_keys;
ALTER TABLE solidstack_unique_keys_new RENAME TO solidstack_unique_keys;
