-- Rate limits: each start of a key is numbered (seq: 1, 2, 3... per key), so "the to-th most recent start" is one
-- index lookup (seq = last - to + 1) instead of a walk of `to` index entries, whatever `to` is (decision 0050).
-- Starts before the to-th most recent are never read again: pruning deletes them by seq.
ALTER TABLE solidstack_rate_limit_starts ADD COLUMN seq bigint NOT NULL DEFAULT 0;
UPDATE solidstack_rate_limit_starts s SET seq = n.seq
FROM (SELECT id, row_number() OVER (PARTITION BY key ORDER BY id) AS seq FROM solidstack_rate_limit_starts) n
WHERE n.id = s.id;
DROP INDEX index_solidstack_rate_limit_starts_on_key;
CREATE UNIQUE INDEX index_solidstack_rate_limit_starts_on_key_seq ON solidstack_rate_limit_starts (key, seq);

-- Unique keys: a key row is written by every unique enqueue; without the index on expires_at (the dispatcher's
-- sweep of lapsed keys reads the table instead, once per
-- concurrency_maintenance_interval, 10 minutes by default) one index fewer is written (decision 0051).
DROP INDEX index_solidstack_unique_keys_on_expires_at;
