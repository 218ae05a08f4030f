-- Named queries of the opt-in job features, PostgreSQL dialect (the same names as sqlite/features.sql). Each runs
-- inside the caller's transaction; what SQLite gets from its single writer, PostgreSQL gets from row locks: the
-- batch counters are UPDATE ... RETURNING (row-locked, so each decrement sees the one before), a unique key is
-- held by an advisory lock while it is decided, and a rate limit's key row is locked by an upsert before its window
-- is counted.

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
-- all their batches. A success leaves the job's batch_jobs row as it is: the finish itself happens once per job
-- (only the process holding the claim finishes it), so the count does too. Only a job counted failed before (then
-- retried by hand) is left out. The batch rows are locked in id order first: two finishes of jobs of the same
-- batches cannot deadlock.
WITH c AS (SELECT batch_id, count(*) AS n FROM solidstack_batch_jobs
           WHERE job_id = ANY(CAST(:ids AS BIGINT[])) AND status = 'pending' GROUP BY batch_id),
     locked AS (SELECT b.id FROM solidstack_batches b WHERE b.id IN (SELECT batch_id FROM c) ORDER BY b.id
                FOR UPDATE)
UPDATE solidstack_batches SET pending = pending - c.n, succeeded = succeeded + c.n, updated_at = :now
FROM c, locked
WHERE solidstack_batches.id = c.batch_id AND locked.id = c.batch_id
RETURNING solidstack_batches.id, pending, failed, on_success, on_failure, on_finish, description;

-- name: batch_count_in_cycle
-- Not a statement: CTEs spliced into finish_and_claim_* (queries.sql) by storage.py when finished jobs of this
-- process are batched (:batched, their ids), after `owned` (decision 0061). The batched jobs the statement
-- finished are counted as succeeded, as batch_count_finished does, batch rows locked in id order first; the
-- batches that reach zero are returned as rows with finished = NULL (id: the batch), for their callbacks to be
-- enqueued in a transaction of their own (batch_complete); one without on_success and on_finish callbacks is
-- marked finished right here (nothing to enqueue: no second transaction). RETURNING shows the updated row.
counted_jobs AS (
    SELECT bj.batch_id, count(*) AS n FROM solidstack_batch_jobs bj JOIN owned ON owned.job_id = bj.job_id
    WHERE bj.job_id = ANY(CAST(:batched AS BIGINT[])) AND bj.status = 'pending' GROUP BY bj.batch_id
), batch_locks AS (
    SELECT b.id FROM solidstack_batches b WHERE b.id IN (SELECT batch_id FROM counted_jobs) ORDER BY b.id
    FOR UPDATE
), counted AS (
    UPDATE solidstack_batches b SET pending = b.pending - c.n, succeeded = b.succeeded + c.n, updated_at = :now,
           finished_at = CASE WHEN b.pending = c.n AND b.on_success IS NULL AND b.on_finish IS NULL
                              THEN CAST(:now AS DOUBLE PRECISION) ELSE b.finished_at END
    FROM counted_jobs c, batch_locks l WHERE b.id = c.batch_id AND l.id = c.batch_id
    RETURNING b.id, b.pending, b.finished_at
)

-- name: rate_admit_in_cycle
-- Not a statement: CTEs spliced into finish_and_claim_* (queries.sql) by storage.py, after `claimed`, in a
-- process whose claim hook admits rate limited rows in the cycle (decision 0064). The claimed rows with a rate
-- in their meta, by key (the most restrictive limit of the key's rows applies), take their starts as rate_admit
-- does, without the key's lock: each start is an INSERT ... ON CONFLICT DO NOTHING on (key, seq), numbered
-- after the last start this statement's snapshot sees, and judged by the start numbered `to` before it, which
-- is committed and visible (a start number is taken once; numbers stay contiguous). A start number taken by a
-- concurrent claim after this snapshot is skipped, and its row counted as refused: never more starts than the
-- rule allows. Stamped with the client's clock plus the server's time since the statement arrived. The rows
-- refused come back as rows with finished = NULL and queue_name 'rate refused'. The jobs are read by id from an
-- array of the claimed ids (a primary key lookup each: joined to `claimed`, the planner scanned the whole jobs
-- table, estimating the strpos filter at a few rows).
rate_t AS (
    SELECT CAST(:now AS DOUBLE PRECISION) + extract(epoch FROM clock_timestamp() - statement_timestamp()) AS now
), rated AS (
    SELECT j.id, m.r ->> 0 AS key, CAST(m.r ->> 1 AS BIGINT) AS lim, CAST(m.r ->> 2 AS DOUBLE PRECISION) AS per,
           row_number() OVER (PARTITION BY m.r ->> 0 ORDER BY j.priority, j.id) AS i
    FROM solidstack_jobs j
    CROSS JOIN LATERAL (SELECT CAST(j.arguments AS jsonb) -> 'meta' -> 'rate' AS r) m
    WHERE j.id = ANY(ARRAY(SELECT job_id FROM claimed)) AND strpos(j.arguments, '"rate":') > 0
      AND jsonb_typeof(m.r) = 'array'
), rate_keys AS (
    SELECT key, min(lim) AS lim, max(per) AS per, count(*) AS k,
           (SELECT coalesce(max(s.seq), 0) FROM solidstack_rate_limit_starts s WHERE s.key = rated.key) AS last
    FROM rated GROUP BY key
), rate_blocked AS (
    SELECT rk.key, rk.lim, rk.k, rk.last,
           (SELECT min(s.seq) FROM solidstack_rate_limit_starts s
            WHERE s.key = rk.key AND s.started_at > rate_t.now - rk.per
              AND s.seq BETWEEN rk.last + 1 - rk.lim AND rk.last + rk.k - rk.lim) AS blocked
    FROM rate_keys rk, rate_t
), rate_took AS (
    INSERT INTO solidstack_rate_limit_starts (key, seq, started_at)
    SELECT b.key, b.last + n.i, rate_t.now FROM rate_blocked b CROSS JOIN rate_t
    CROSS JOIN LATERAL generate_series(1, CAST(b.k AS INTEGER)) AS n (i)
    WHERE n.i <= b.lim AND (b.blocked IS NULL OR b.last + n.i - b.lim < b.blocked)
    ORDER BY b.key, n.i
    ON CONFLICT DO NOTHING
    RETURNING key
), rate_refused AS (
    SELECT r.id FROM rated r
    WHERE r.i > (SELECT count(*) FROM rate_took t WHERE t.key = r.key)
)

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
-- A transaction-long advisory lock on the key: a second enqueuer of the same key waits here until the first commits
-- (a row lock cannot guard a key row that does not exist yet). A statement of its own: in READ COMMITTED the read
-- below then takes its snapshot after the wait, and sees the first one's key row (a lock taken inside the read's
-- own statement would leave it reading the snapshot from before: two jobs for one key, seen in the four-process
-- test).
SELECT pg_advisory_xact_lock(hashtextextended(:key, 0));

-- name: unique_holder
SELECT k.job_id, k.expires_at, j.id AS live_id, j.active_job_id, j.finished_at, j.executions,
       EXISTS (SELECT 1 FROM solidstack_failed_executions f WHERE f.job_id = k.job_id) AS failed,
       EXISTS (SELECT 1 FROM solidstack_claimed_executions c WHERE c.job_id = k.job_id) AS claimed
FROM solidstack_unique_keys k LEFT JOIN solidstack_jobs j ON j.id = k.job_id
WHERE k.key = :key;

-- name: unique_take
-- The key for the job just inserted: a new row, or the stale one taken over, only if the row still names the job
-- read by unique_holder (:seen_job_id, NULL for none): a compare-and-set, so a key taken meanwhile by
-- unique_enqueue (which takes no advisory lock) is never overwritten. No row returned: the caller's transaction
-- rolls back and decides again. One write.
INSERT INTO solidstack_unique_keys AS k (key, job_id, expires_at, created_at)
VALUES (:key, :job_id, :expires_at, :now)
ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at,
                                created_at = excluded.created_at
WHERE k.job_id IS NOT DISTINCT FROM CAST(:seen_job_id AS BIGINT)
RETURNING k.key;

-- name: unique_enqueue
-- One unique plain job (no schedule, no concurrency key) in ONE statement, sent in autocommit (decision 0060):
-- read the key's holder, and unless it is held, take the key for a job id drawn from the jobs' sequence and
-- insert that job, its ready row and the NOTIFY. Exact without a lock: a new key is an INSERT that conflicts with
-- any other enqueuer's (the second waits for the first's commit, then does nothing), and a stale key is taken
-- over only if its row still names the stale job this statement read (ON CONFLICT DO UPDATE ... WHERE sees the
-- row's latest version): of two takers one wins. Rows: ('new', id, NULL) inserted; ('held', holder id, its
-- active job id) a duplicate; none: the key changed after this statement's snapshot, the caller sends it again.
-- The held test is unique.py's _held, in SQL.
WITH seen AS (
    SELECT k.job_id, j.active_job_id,
           (k.job_id IS NOT NULL AND k.expires_at > CAST(:now AS DOUBLE PRECISION) AND j.id IS NOT NULL
            AND j.finished_at IS NULL
            AND NOT EXISTS (SELECT 1 FROM solidstack_failed_executions f WHERE f.job_id = k.job_id)
            AND NOT (CAST(:until_started AS BOOLEAN)
                     AND (j.executions > 0
                          OR EXISTS (SELECT 1 FROM solidstack_claimed_executions c WHERE c.job_id = k.job_id))))
           AS held
    FROM solidstack_unique_keys k LEFT JOIN solidstack_jobs j ON j.id = k.job_id
    WHERE k.key = :key
), fresh AS (
    SELECT nextval('solidstack_jobs_id_seq') AS id WHERE NOT EXISTS (SELECT 1 FROM seen WHERE held)
), took AS (
    INSERT INTO solidstack_unique_keys AS k (key, job_id, expires_at, created_at)
    SELECT :key, id, :expires_at, :now FROM fresh
    ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at,
                                    created_at = excluded.created_at
    WHERE k.job_id IS NOT DISTINCT FROM (SELECT job_id FROM seen)
    RETURNING k.job_id
), new AS (
    INSERT INTO solidstack_jobs (id, queue_name, class_name, arguments, priority, active_job_id, created_at,
                                 updated_at)
    SELECT job_id, :queue_name, :class_name, :arguments, :priority, :active_job_id, :now, :now FROM took
    RETURNING id, queue_name, priority
), ready AS (
    INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
    SELECT id, queue_name, priority, CAST(:now AS DOUBLE PRECISION) FROM new
), notified AS (
    SELECT pg_notify(channel, '') FROM (SELECT CAST(:channel AS TEXT) AS channel) c
    WHERE channel IS NOT NULL AND EXISTS (SELECT 1 FROM new)
)
SELECT 'new' AS outcome, id, CAST(NULL AS TEXT) AS active_job_id FROM new
WHERE (SELECT count(*) FROM notified) >= 0
UNION ALL
SELECT 'held', job_id, active_job_id FROM seen WHERE held;

-- name: unique_release
DELETE FROM solidstack_unique_keys WHERE key = :key AND job_id = :job_id;

-- name: unique_expired
DELETE FROM solidstack_unique_keys WHERE expires_at < :now;

-- name: rate_lock
INSERT INTO solidstack_rate_limits (key, updated_at) VALUES (:key, :now)
ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at;

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
-- Up to :k starts of the key at :now in one statement (decision 0062; the claim's rate limited rows of one key),
-- under the key's lock (rate_lock, a statement before: this one's snapshot sees every start committed before the
-- lock was granted): the i-th is numbered last + i and may start when the start numbered last + i - to left the
-- window, as rate_try_start decides for one; start times grow with their numbers, so the starts admitted are a
-- prefix: those numbered below the first start still in the window, found by one index range read of at most :k
-- entries. Never more than :to at once. Rows: the starts taken.
WITH last AS (
    SELECT coalesce(max(seq), 0) AS seq FROM solidstack_rate_limit_starts WHERE key = :key
), blocked AS (
    SELECT min(s.seq) AS seq FROM solidstack_rate_limit_starts s
    WHERE s.key = :key AND s.started_at > :cutoff
      AND s.seq BETWEEN (SELECT seq FROM last) + 1 - :to AND (SELECT seq FROM last) + :k - :to
)
INSERT INTO solidstack_rate_limit_starts (key, seq, started_at)
SELECT :key, last.seq + n.i, :now FROM last, blocked, generate_series(1, CAST(:k AS INTEGER)) AS n (i)
WHERE n.i <= :to AND (blocked.seq IS NULL OR last.seq + n.i - :to < blocked.seq)
ON CONFLICT DO NOTHING
RETURNING seq;

-- name: rate_try_start
-- A start of the key at :now, numbered after the last, if the to-th most recent start left the window (a row
-- returned), else nothing: the count and the insert in one statement, under the key's lock.
INSERT INTO solidstack_rate_limit_starts (key, seq, started_at)
SELECT :key, last.seq + 1, :now
FROM (SELECT coalesce(max(seq), 0) AS seq FROM solidstack_rate_limit_starts WHERE key = :key) AS last
WHERE NOT EXISTS (SELECT 1 FROM solidstack_rate_limit_starts s
                  WHERE s.key = :key AND s.seq = last.seq + 1 - :to AND s.started_at > :cutoff)
ON CONFLICT DO NOTHING
RETURNING started_at;
