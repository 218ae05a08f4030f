-- Rate limits: each start of a key is numbered (seq: 1, 2, 3... per key), so "the to-th most recent start" is one
-- index lookup (seq = last - to + 1) instead of a walk of `to` index entries, whatever `to` is (decision 0050).
-- Starts before the to-th most recent are never read again: pruning deletes them by seq.
ALTER TABLE solidstack_rate_limit_starts ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE solidstack_rate_limit_starts SET seq = (
    SELECT count(*) FROM solidstack_rate_limit_starts s
    WHERE s.key = solidstack_rate_limit_starts.key AND s.id <= solidstack_rate_limit_starts.id);
DROP INDEX index_solidstack_rate_limit_starts_on_key;
CREATE UNIQUE INDEX index_solidstack_rate_limit_starts_on_key_seq ON solidstack_rate_limit_starts (key, seq);
