-- Named queries of the opt-in job features, SQLite dialect: batches (queue/features/batches.py), unique jobs
-- (queue/features/unique.py) and rate limits (queue/features/ratelimit.py). PostgreSQL has the same names in its features.sql.
-- Each runs inside the caller's write transaction (BEGIN IMMEDIATE: one writer at a time, so the read-then-write
-- decisions below are exact on SQLite without row locks).

-- name: batch_insert
INSERT INTO solidstack_batches (description, on_success, on_failure, on_finish, created_at, updated_at)
VALUES (:description, :on_success, :on_failure, :on_finish, :now, :now)
RETURNING id;

-- name: batch_add
UPDATE solidstack_batches SET total = total + :n, pending = pending + :n, updated_at = :now
WHERE id = :id AND finished_at IS NULL
RETURNING id;

-- name: batch_job_insert
INSERT INTO solidstack_batch_jobs (job_id, batch_id) VALUES (:job_id, :batch_id);

-- name: batch_job_done
UPDATE solidstack_batch_jobs SET status = :status WHERE job_id = :job_id AND status = 'pending'
RETURNING batch_id;

-- name: batch_count_finished
-- In a finish's transaction: the batched jobs among those just finished, counted as succeeded, one statement for
-- all their batches. A success leaves the job's batch_jobs row as it is (a write per job, and its index entry,
-- cost more than the job): the finish itself happens once per job (only the process holding the claim finishes
-- it), so the count does too. Only a job counted failed before (then retried by hand) is left out.
UPDATE solidstack_batches SET pending = pending - c.n, succeeded = succeeded + c.n, updated_at = :now
FROM (SELECT batch_id, count(*) AS n FROM solidstack_batch_jobs
      WHERE job_id IN (SELECT value FROM json_each(:ids)) AND status = 'pending' GROUP BY batch_id) AS c
WHERE solidstack_batches.id = c.batch_id
RETURNING id, pending, failed, on_success, on_failure, on_finish, description;

-- name: batch_count_succeeded
UPDATE solidstack_batches SET pending = pending - 1, succeeded = succeeded + 1, updated_at = :now
WHERE id = :id
RETURNING pending, failed, on_success, on_failure, on_finish;

-- name: batch_count_failed
UPDATE solidstack_batches SET pending = pending - 1, failed = failed + 1, updated_at = :now
WHERE id = :id
RETURNING pending, failed, on_success, on_failure, on_finish;

-- name: batch_claim_failure
-- The on_failure callback's compare-and-set: only the first transaction to see the first failure gets a row.
UPDATE solidstack_batches SET failure_job_id = 0 WHERE id = :id AND failure_job_id IS NULL
RETURNING id;

-- name: batch_set_failure_job
UPDATE solidstack_batches SET failure_job_id = :job_id WHERE id = :id;

-- name: batch_finished
-- The on_success/on_finish callbacks' compare-and-set: only the first transaction to see pending reach zero gets
-- a row (and enqueues them).
UPDATE solidstack_batches SET finished_at = :now, updated_at = :now WHERE id = :id AND finished_at IS NULL
RETURNING id;

-- name: batch_complete
-- The callbacks of a batch whose count reached zero in a statement that could not enqueue them (PostgreSQL's
-- one-statement worker cycle, decision 0061): the same compare-and-set as batch_finished, in the transaction
-- that enqueues them, so they are enqueued once whoever (the worker right after, or the dispatcher's sweep after a
-- crash) gets here first.
UPDATE solidstack_batches SET finished_at = :now, updated_at = :now
WHERE id = :id AND finished_at IS NULL AND pending = 0
RETURNING failed, on_success, on_finish;

-- name: batch_stranded
-- Batches counted to zero whose callbacks were not enqueued (their worker died between its cycle and the
-- transaction that enqueues them): the dispatcher's sweep, once per concurrency_maintenance_interval.
SELECT id FROM solidstack_batches WHERE pending = 0 AND finished_at IS NULL ORDER BY id LIMIT :limit;

-- name: batch_jobs_failed_uncounted
-- Batched jobs failed without their worker counting them (failed for good by process deaths, in the pruning).
SELECT bj.job_id FROM solidstack_batch_jobs bj
JOIN solidstack_failed_executions f ON f.job_id = bj.job_id
WHERE bj.status = 'pending'
LIMIT :limit;

-- name: batch_get
SELECT id, description, total, pending, succeeded, failed, failure_job_id, finished_at, created_at,
       on_success, on_failure, on_finish
FROM solidstack_batches WHERE id = :id;

-- name: batch_recent
SELECT id, description, total, pending, succeeded, failed, failure_job_id, finished_at, created_at,
       on_success, on_failure, on_finish
FROM solidstack_batches ORDER BY id DESC LIMIT :limit;

-- name: unique_lock
-- Nothing to lock on SQLite: the write transaction is the only writer. (PostgreSQL's takes an advisory lock.)
SELECT :key;

-- name: unique_holder
-- The job holding a key, read before the enqueue decides (the write transaction is the only writer: nobody takes
-- the key between this read and unique_take).
SELECT k.job_id, k.expires_at, j.id AS live_id, j.active_job_id, j.finished_at, j.executions,
       EXISTS (SELECT 1 FROM solidstack_failed_executions f WHERE f.job_id = k.job_id) AS failed,
       EXISTS (SELECT 1 FROM solidstack_claimed_executions c WHERE c.job_id = k.job_id) AS claimed
FROM solidstack_unique_keys k LEFT JOIN solidstack_jobs j ON j.id = k.job_id
WHERE k.key = :key;

-- name: unique_take
-- The key for the job just inserted: a new row, or the stale one taken over. One write.
INSERT INTO solidstack_unique_keys (key, job_id, expires_at, created_at)
VALUES (:key, :job_id, :expires_at, :now)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at,
                                created_at = excluded.created_at;

-- name: unique_take_if_free
-- One unique plain job, inserted just before in this transaction (decision 0063): its key taken unless it is
-- held (unique.py's _held, in SQL, on the key row's job). A row changed (the cursor's rowcount, no RETURNING:
-- decision 0071): taken (a new key, or a stale one taken over); none: held, and the caller deletes the job it
-- inserted and points at the holder. One statement where unique_holder and unique_take are two, for the enqueue
-- that is not a duplicate; the write transaction is the only writer, so nothing changes between the insert and
-- this.
INSERT INTO solidstack_unique_keys (key, job_id, expires_at, created_at)
VALUES (:key, :job_id, :expires_at, :now)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at,
                                created_at = excluded.created_at
WHERE NOT (solidstack_unique_keys.job_id IS NOT NULL AND solidstack_unique_keys.expires_at > :now
           AND EXISTS (SELECT 1 FROM solidstack_jobs j WHERE j.id = solidstack_unique_keys.job_id
                       AND j.finished_at IS NULL AND NOT (:until_started AND j.executions > 0))
           AND NOT EXISTS (SELECT 1 FROM solidstack_failed_executions f
                           WHERE f.job_id = solidstack_unique_keys.job_id)
           AND NOT (:until_started AND EXISTS (SELECT 1 FROM solidstack_claimed_executions c
                                               WHERE c.job_id = solidstack_unique_keys.job_id)));

-- name: unique_drop_job
DELETE FROM solidstack_jobs WHERE id = :job_id;

-- name: unique_release
DELETE FROM solidstack_unique_keys WHERE key = :key AND job_id = :job_id;

-- name: unique_expired
DELETE FROM solidstack_unique_keys WHERE expires_at < :now;

-- name: rate_lock
-- Nothing to lock on SQLite: the write transaction is the database's only writer. (PostgreSQL's locks the key row.)
SELECT :key, :now;

-- name: rate_prune
-- Starts before the to-th most recent are never read again (see rate_try_start).
DELETE FROM solidstack_rate_limit_starts
WHERE key = :key AND seq <= (SELECT max(seq) FROM solidstack_rate_limit_starts WHERE key = :key) - :to;

-- name: rate_full_at
-- The to-th most recent start, if still in the window (none: a slot is free). Starts are numbered per key: one
-- index lookup, whatever `to` is.
SELECT s.started_at FROM solidstack_rate_limit_starts s
WHERE s.key = :key AND s.started_at > :cutoff
  AND s.seq = (SELECT max(seq) FROM solidstack_rate_limit_starts WHERE key = :key) + 1 - :to;

-- name: rate_admit
-- Up to :k starts of the key at :now in one statement (decision 0062; the claim's rate limited rows of one key): the
-- i-th (i from :ns, the JSON array [1, ..., k]) is numbered last + i and may start when no start numbered from
-- last + 1 - to to last + i - to is still in the window, as rate_try_start decides for one; start times grow with
-- their numbers, so the starts admitted are a prefix. Never more than :to at once (a start past the to-th would be
-- judged by one of these). The row count: the starts taken. The numbers come from json_each, each judged by a NOT EXISTS
-- range read: a recursive CTE for them, and a CTE for the last start read three times, cost ~2.5 µs more a claim
-- (decision 0072).
INSERT INTO solidstack_rate_limit_starts (key, seq, started_at)
SELECT :key, last.seq + n.value, :now
FROM (SELECT coalesce(max(seq), 0) AS seq FROM solidstack_rate_limit_starts WHERE key = :key) AS last
JOIN json_each(:ns) AS n ON n.value <= :to
WHERE NOT EXISTS (SELECT 1 FROM solidstack_rate_limit_starts s
                  WHERE s.key = :key AND s.started_at > :cutoff
                    AND s.seq BETWEEN last.seq + 1 - :to AND last.seq + n.value - :to);

-- name: rate_try_start
-- A start of the key at :now, numbered after the last, if the to-th most recent start left the window (a row
-- returned), else nothing: the count and the insert in one statement, under the key's lock.
INSERT INTO solidstack_rate_limit_starts (key, seq, started_at)
SELECT :key, last.seq + 1, :now
FROM (SELECT coalesce(max(seq), 0) AS seq FROM solidstack_rate_limit_starts WHERE key = :key) AS last
WHERE NOT EXISTS (SELECT 1 FROM solidstack_rate_limit_starts s
                  WHERE s.key = :key AND s.seq = last.seq + 1 - :to AND s.started_at > :cutoff)
RETURNING started_at;
