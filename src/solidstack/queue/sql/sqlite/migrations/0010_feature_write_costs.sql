-- Rate limits: each start of a key is numbered (seq: 1, 2, 3... per key), so "the to-th most recent start" is one
-- index lookup (seq = last - to + 1) instead of a walk of `to` index entries, whatever `to` is (decision 0050).
-- Starts before the to-th most recent are never read again: pruning deletes them by seq. The table is clustered
-- on (key, seq) (WITHOUT ROWID): a start writes one b-tree, not a table and its index.
CREATE TABLE solidstack_rate_limit_starts_new (
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    started_at REAL NOT NULL,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
INSERT INTO solidstack_rate_limit_starts_new (key, seq, started_at)
SELECT key, (SELECT count(*) FROM solidstack_rate_limit_starts s
             WHERE s.key = solidstack_rate_limit_starts.key AND s.id <= solidstack_rate_limit_starts.id), started_at
FROM solidstack_rate_limit_starts;
DROP TABLE solidstack_rate_limit_starts;
ALTER TABLE solidstack_rate_limit_starts_new RENAME TO solidstack_rate_limit_starts;

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
