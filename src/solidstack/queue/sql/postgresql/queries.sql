-- Named queries of the job queue, PostgreSQL dialect: the same names and parameters as sql/sqlite/queries.sql.
-- Lists of ids are passed as arrays (:ids, see PostgreSQLDatabase.array) and read with = ANY. Parameters that
-- may be NULL, or that stand in a SELECT list, carry a cast: psycopg sends None untyped.
-- The claims (ready_*) lock the rows they return with FOR UPDATE SKIP LOCKED: any number of workers on any
-- number of machines claim at once, each skips the rows another is taking, none waits, no job is claimed twice.

-- name: insert_job
-- Positional: the fields of a NewJob (solidstack.queue.rows) in order, then the time twice.
INSERT INTO solidstack_jobs
    (queue_name, class_name, arguments, priority, active_job_id, scheduled_at, concurrency_key, concurrency_limit,
     concurrency_duration, concurrency_on_conflict, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id;

-- name: insert_plain_job
INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, active_job_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)
RETURNING id;

-- name: ready_from_new_jobs
-- The ids of the jobs just inserted (:ids): other transactions take ids in between, so no range here.
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
SELECT id, queue_name, priority, CAST(:now AS DOUBLE PRECISION) FROM solidstack_jobs
WHERE id = ANY(CAST(:ids AS BIGINT[])) AND NOT (id = ANY(CAST(:excluded AS BIGINT[])));

-- name: insert_ready
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
VALUES (:job_id, :queue_name, :priority, :now);

-- name: insert_scheduled
INSERT INTO solidstack_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at)
VALUES (:job_id, :queue_name, :priority, :scheduled_at, :now);

-- name: ready_all
SELECT r.job_id FROM solidstack_ready_executions r
WHERE NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
ORDER BY r.priority, r.job_id LIMIT :limit
FOR UPDATE OF r SKIP LOCKED;

-- name: ready_in_queue
-- The pause test names the queue, not the row: a one-time check, so that the planner, without statistics (an
-- empty pauses table is assumed to hold rows), still walks index_solidstack_poll_by_queue in order and stops
-- after :limit rows, instead of reading and sorting the whole queue (measured: 11 ms against 0.7 ms per claim
-- at 100,000 ready jobs; decision 0020).
SELECT r.job_id FROM solidstack_ready_executions r
WHERE r.queue_name = :queue
  AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = :queue)
ORDER BY r.priority, r.job_id LIMIT :limit
FOR UPDATE OF r SKIP LOCKED;

-- name: ready_in_prefix
-- starts_with, not a range on the text: the database's collation need not sort by code point.
SELECT r.job_id FROM solidstack_ready_executions r
WHERE starts_with(r.queue_name, CAST(:prefix AS TEXT))
  AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
ORDER BY r.priority, r.job_id LIMIT :limit
FOR UPDATE OF r SKIP LOCKED;

-- name: delete_ready
DELETE FROM solidstack_ready_executions WHERE job_id = ANY(CAST(:ids AS BIGINT[]));

-- name: insert_claimed
INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
SELECT unnest(CAST(:ids AS BIGINT[])), CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION);

-- name: jobs_by_ids
SELECT id, queue_name, class_name, arguments, priority, active_job_id, scheduled_at, concurrency_key,
       executions, process_deaths, created_at
FROM solidstack_jobs WHERE id = ANY(CAST(:ids AS BIGINT[]));

-- name: delete_claimed
DELETE FROM solidstack_claimed_executions WHERE job_id = ANY(CAST(:ids AS BIGINT[]));

-- name: delete_own_claims
DELETE FROM solidstack_claimed_executions
WHERE process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT) AND job_id = ANY(CAST(:ids AS BIGINT[]))
RETURNING job_id;

-- name: process_by_pid
SELECT id FROM solidstack_processes WHERE supervisor_id = :supervisor_id AND pid = :pid;

-- name: mark_finished
UPDATE solidstack_jobs SET finished_at = :now, updated_at = :now WHERE id = ANY(CAST(:ids AS BIGINT[]))
RETURNING concurrency_key, concurrency_limit, concurrency_duration;

-- name: delete_finished
DELETE FROM solidstack_jobs WHERE id = ANY(CAST(:ids AS BIGINT[]))
RETURNING concurrency_key, concurrency_limit, concurrency_duration;

-- name: delete_jobs
DELETE FROM solidstack_jobs WHERE id = ANY(CAST(:ids AS BIGINT[]));

-- name: insert_failed
INSERT INTO solidstack_failed_executions (job_id, error, created_at) VALUES (:job_id, :error, :now);

-- name: reschedule_job
UPDATE solidstack_jobs SET executions = :executions, scheduled_at = :scheduled_at, updated_at = :now WHERE id = :job_id;

-- name: ready_from_jobs
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
SELECT id, queue_name, priority, CAST(:now AS DOUBLE PRECISION) FROM solidstack_jobs
WHERE id = ANY(CAST(:ids AS BIGINT[]));

-- name: scheduled_from_job
INSERT INTO solidstack_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at)
SELECT id, queue_name, priority, CAST(:scheduled_at AS DOUBLE PRECISION), CAST(:now AS DOUBLE PRECISION)
FROM solidstack_jobs WHERE id = :job_id;

-- name: due_scheduled
-- Dispatchers on several machines: each locks the due rows it moves, skipping another's.
SELECT job_id FROM solidstack_scheduled_executions WHERE scheduled_at <= :now
ORDER BY scheduled_at, priority, job_id LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- name: ready_from_scheduled
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
SELECT job_id, queue_name, priority, CAST(:now AS DOUBLE PRECISION) FROM solidstack_scheduled_executions
WHERE job_id = ANY(CAST(:ids AS BIGINT[]));

-- name: delete_scheduled
DELETE FROM solidstack_scheduled_executions WHERE job_id = ANY(CAST(:ids AS BIGINT[]));

-- name: next_scheduled_at
SELECT MIN(scheduled_at) AS at FROM solidstack_scheduled_executions;

-- name: claimed_by_process
SELECT job_id FROM solidstack_claimed_executions WHERE process_id = :process_id;

-- name: orphaned_claims
SELECT c.job_id FROM solidstack_claimed_executions c
WHERE c.process_id IS NULL OR NOT EXISTS (SELECT 1 FROM solidstack_processes p WHERE p.id = c.process_id);

-- name: take_orphaned_claims
-- Deletes the claims whose process row is gone and returns their jobs: what another pruner took meanwhile is
-- not returned twice.
DELETE FROM solidstack_claimed_executions
WHERE process_id IS NULL
   OR NOT EXISTS (SELECT 1 FROM solidstack_processes p WHERE p.id = solidstack_claimed_executions.process_id)
RETURNING job_id, created_at, process_id;

-- name: count_process_death
UPDATE solidstack_jobs SET process_deaths = process_deaths + 1, updated_at = :now
WHERE id = ANY(CAST(:ids AS BIGINT[]))
RETURNING id, process_deaths;

-- name: insert_process
INSERT INTO solidstack_processes (kind, name, last_heartbeat_at, supervisor_id, pid, hostname, metadata, created_at)
VALUES (:kind, :name, :now, :supervisor_id, :pid, :hostname, :metadata, :now)
RETURNING id;

-- name: heartbeat
UPDATE solidstack_processes SET last_heartbeat_at = :now WHERE id = :id;

-- name: delete_process
DELETE FROM solidstack_processes WHERE id = :id;

-- name: all_processes
SELECT id, kind, name, last_heartbeat_at, supervisor_id, pid, hostname, metadata, created_at
FROM solidstack_processes ORDER BY id;

-- name: process_exists
SELECT 1 FROM solidstack_processes WHERE id = :id;

-- name: supervisees
SELECT id FROM solidstack_processes WHERE supervisor_id = :id;

-- name: failed_jobs
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.executions,
       j.process_deaths, j.created_at, f.error, f.created_at AS failed_at
FROM solidstack_failed_executions f JOIN solidstack_jobs j ON j.id = f.job_id
ORDER BY f.job_id LIMIT :limit OFFSET :offset;

-- name: failed_ids
SELECT job_id FROM solidstack_failed_executions WHERE job_id = ANY(CAST(:ids AS BIGINT[]));

-- name: all_failed_ids
SELECT job_id FROM solidstack_failed_executions ORDER BY job_id LIMIT :limit;

-- name: delete_failed
DELETE FROM solidstack_failed_executions WHERE job_id = ANY(CAST(:ids AS BIGINT[]));

-- name: reset_process_deaths
-- Failed jobs retried by hand: their deaths start again from 0, and they are due now (their enqueue-to-start
-- latency counts from the retry, decision 0603).
UPDATE solidstack_jobs SET process_deaths = 0, scheduled_at = :now, updated_at = :now WHERE id = ANY(CAST(:ids AS BIGINT[]));

-- name: job_state
SELECT j.id, j.class_name, j.queue_name, j.finished_at, j.executions,
       CASE
         WHEN j.finished_at IS NOT NULL THEN 'finished'
         WHEN EXISTS (SELECT 1 FROM solidstack_failed_executions x WHERE x.job_id = j.id) THEN 'failed'
         WHEN EXISTS (SELECT 1 FROM solidstack_claimed_executions x WHERE x.job_id = j.id) THEN 'claimed'
         WHEN EXISTS (SELECT 1 FROM solidstack_ready_executions x WHERE x.job_id = j.id) THEN 'ready'
         WHEN EXISTS (SELECT 1 FROM solidstack_scheduled_executions x WHERE x.job_id = j.id) THEN 'scheduled'
         WHEN EXISTS (SELECT 1 FROM solidstack_blocked_executions x WHERE x.job_id = j.id) THEN 'blocked'
         ELSE 'unknown'
       END AS state
FROM solidstack_jobs j WHERE j.id = :id;

-- name: counts
SELECT
  (SELECT COUNT(*) FROM solidstack_ready_executions)::int AS ready,
  (SELECT COUNT(*) FROM solidstack_scheduled_executions)::int AS scheduled,
  (SELECT COUNT(*) FROM solidstack_claimed_executions)::int AS claimed,
  (SELECT COUNT(*) FROM solidstack_blocked_executions)::int AS blocked,
  (SELECT COUNT(*) FROM solidstack_failed_executions)::int AS failed,
  (SELECT COUNT(*) FROM solidstack_jobs WHERE finished_at IS NOT NULL)::int AS finished;

-- name: claim_all
-- A claim in one statement (one round trip): pick with SKIP LOCKED, delete the ready rows, insert the claims,
-- return the jobs in claim order. The claim_* queries take the ready_* queries' filters and parameters.
WITH picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at,
       j.concurrency_key, j.executions, j.process_deaths, j.created_at
FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
ORDER BY j.priority, j.id;

-- name: claim_in_queue
WITH picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE r.queue_name = :queue
      AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = :queue)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at,
       j.concurrency_key, j.executions, j.process_deaths, j.created_at
FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
ORDER BY j.priority, j.id;

-- name: claim_in_prefix
WITH picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE starts_with(r.queue_name, CAST(:prefix AS TEXT))
      AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at,
       j.concurrency_key, j.executions, j.process_deaths, j.created_at
FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
ORDER BY j.priority, j.id;

-- name: enqueue_ready
-- Plain jobs (no schedule, no concurrency limit) in one statement: the jobs, their ready rows and the NOTIFY
-- (when :channel is not NULL). Rows are inserted in the arrays' order, so their ids ascend in it (one statement
-- draws its ids from the sequence in order, whatever other sessions draw meanwhile). The ids come back as one
-- array, ascending: one value to load, not a row object per job (decision 0076).
WITH new AS (
    INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, active_job_id, created_at, updated_at)
    SELECT q, c, a, p, k, CAST(:now AS DOUBLE PRECISION), CAST(:now AS DOUBLE PRECISION)
    FROM unnest(CAST(:queue_names AS TEXT[]), CAST(:class_names AS TEXT[]), CAST(:arguments AS TEXT[]),
                CAST(:priorities AS INTEGER[]), CAST(:active_job_ids AS TEXT[])) WITH ORDINALITY AS t (q, c, a, p, k, n)
    ORDER BY n
    RETURNING id, queue_name, priority
), ready AS (
    INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
    SELECT id, queue_name, priority, CAST(:now AS DOUBLE PRECISION) FROM new
), notified AS (
    SELECT pg_notify(channel, '') FROM (SELECT CAST(:channel AS TEXT) AS channel) c WHERE channel IS NOT NULL
)
SELECT array_agg(id ORDER BY id) FROM new WHERE (SELECT count(*) FROM notified) >= 0;

-- name: enqueue_ready_alike
-- enqueue_ready for jobs that share their queue, class and priority (perform_all_later of one job class, the
-- common bulk enqueue): those three as scalars, two arrays instead of five to bind and unnest (decision 0076).
WITH new AS (
    INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, active_job_id, created_at, updated_at)
    SELECT CAST(:queue_name AS TEXT), CAST(:class_name AS TEXT), a, CAST(:priority AS INTEGER), k,
           CAST(:now AS DOUBLE PRECISION), CAST(:now AS DOUBLE PRECISION)
    FROM unnest(CAST(:arguments AS TEXT[]), CAST(:active_job_ids AS TEXT[])) WITH ORDINALITY AS t (a, k, n)
    ORDER BY n
    RETURNING id, queue_name, priority
), ready AS (
    INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
    SELECT id, queue_name, priority, CAST(:now AS DOUBLE PRECISION) FROM new
), notified AS (
    SELECT pg_notify(channel, '') FROM (SELECT CAST(:channel AS TEXT) AS channel) c WHERE channel IS NOT NULL
)
SELECT array_agg(id ORDER BY id) FROM new WHERE (SELECT count(*) FROM notified) >= 0;

-- name: enqueue_one
-- enqueue_ready for one job, with scalar parameters: no arrays to bind and unnest (0.13 ms of the server's time
-- and ~0.1 ms of the client's per call, decision 0065).
WITH new AS (
    INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, active_job_id, created_at, updated_at)
    VALUES (:queue_name, :class_name, :arguments, :priority, :active_job_id, CAST(:now AS DOUBLE PRECISION),
            CAST(:now AS DOUBLE PRECISION))
    RETURNING id, queue_name, priority
), ready AS (
    INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
    SELECT id, queue_name, priority, CAST(:now AS DOUBLE PRECISION) FROM new
), notified AS (
    SELECT pg_notify(channel, '') FROM (SELECT CAST(:channel AS TEXT) AS channel) c WHERE channel IS NOT NULL
)
SELECT id FROM new WHERE (SELECT count(*) FROM notified) >= 0;

-- name: finish_own_claims
-- delete_own_claims and mark_finished in one statement: only claims this process still holds.
WITH owned AS (
    DELETE FROM solidstack_claimed_executions
    WHERE process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT) AND job_id = ANY(CAST(:ids AS BIGINT[]))
    RETURNING job_id, created_at
)
UPDATE solidstack_jobs j SET finished_at = :now, updated_at = :now, started_at = owned.created_at FROM owned
WHERE j.id = owned.job_id
RETURNING j.id, j.concurrency_key, j.concurrency_limit, j.concurrency_duration;

-- name: finish_own_claims_deleting
-- delete_own_claims and delete_finished in one statement.
WITH owned AS (
    DELETE FROM solidstack_claimed_executions
    WHERE process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT) AND job_id = ANY(CAST(:ids AS BIGINT[]))
    RETURNING job_id
)
DELETE FROM solidstack_jobs j USING owned WHERE j.id = owned.job_id
RETURNING j.id, j.concurrency_key, j.concurrency_limit, j.concurrency_duration;

-- name: finish_and_claim_all
-- A busy worker's cycle in ONE statement, sent in autocommit (one round trip, its own implicit transaction;
-- decision 0045): finish the jobs it ran (:ids, only the claims this process still holds, and only jobs without
-- a concurrency key: those free a semaphore slot, which Gate does in Python, so storage.claim finishes them in a
-- transaction of their own), then claim up to :limit ready jobs as claim_* does. Its commit waits for the WAL
-- flush, as every commit does (decision 0066: a claim or a finish a server crash undid would run a job twice or
-- leave it claimed by a live process). Rows: the claimed jobs (finished = false) in claim order, then the ids
-- finished (finished = true, other columns NULL).
WITH owned AS (
    DELETE FROM solidstack_claimed_executions c USING solidstack_jobs j
    WHERE c.process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT) AND c.job_id = ANY(CAST(:ids AS BIGINT[]))
      AND j.id = c.job_id AND j.concurrency_key IS NULL
    RETURNING c.job_id, c.created_at
), marked AS (
    UPDATE solidstack_jobs j SET finished_at = :now, updated_at = :now, started_at = owned.created_at FROM owned
    WHERE CAST(:preserve AS BOOLEAN) AND j.id = owned.job_id
), dropped AS (
    DELETE FROM solidstack_jobs j USING owned WHERE NOT CAST(:preserve AS BOOLEAN) AND j.id = owned.job_id
), picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
(SELECT false AS finished, j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id,
        j.scheduled_at, j.concurrency_key, j.executions, j.process_deaths, j.created_at
 FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
 ORDER BY j.priority, j.id)
UNION ALL
SELECT true, job_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM owned;

-- name: finish_and_claim_in_queue
WITH owned AS (
    DELETE FROM solidstack_claimed_executions c USING solidstack_jobs j
    WHERE c.process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT) AND c.job_id = ANY(CAST(:ids AS BIGINT[]))
      AND j.id = c.job_id AND j.concurrency_key IS NULL
    RETURNING c.job_id, c.created_at
), marked AS (
    UPDATE solidstack_jobs j SET finished_at = :now, updated_at = :now, started_at = owned.created_at FROM owned
    WHERE CAST(:preserve AS BOOLEAN) AND j.id = owned.job_id
), dropped AS (
    DELETE FROM solidstack_jobs j USING owned WHERE NOT CAST(:preserve AS BOOLEAN) AND j.id = owned.job_id
), picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE r.queue_name = :queue
      AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = :queue)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
(SELECT false AS finished, j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id,
        j.scheduled_at, j.concurrency_key, j.executions, j.process_deaths, j.created_at
 FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
 ORDER BY j.priority, j.id)
UNION ALL
SELECT true, job_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM owned;

-- name: finish_and_claim_in_prefix
WITH owned AS (
    DELETE FROM solidstack_claimed_executions c USING solidstack_jobs j
    WHERE c.process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT) AND c.job_id = ANY(CAST(:ids AS BIGINT[]))
      AND j.id = c.job_id AND j.concurrency_key IS NULL
    RETURNING c.job_id, c.created_at
), marked AS (
    UPDATE solidstack_jobs j SET finished_at = :now, updated_at = :now, started_at = owned.created_at FROM owned
    WHERE CAST(:preserve AS BOOLEAN) AND j.id = owned.job_id
), dropped AS (
    DELETE FROM solidstack_jobs j USING owned WHERE NOT CAST(:preserve AS BOOLEAN) AND j.id = owned.job_id
), picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE starts_with(r.queue_name, CAST(:prefix AS TEXT))
      AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
(SELECT false AS finished, j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id,
        j.scheduled_at, j.concurrency_key, j.executions, j.process_deaths, j.created_at
 FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
 ORDER BY j.priority, j.id)
UNION ALL
SELECT true, job_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM owned;

-- name: claim_now_all
-- An idle worker's cycle: finish_and_claim_* with nothing to finish (decision 0075). The same claim, rows and
-- commit (durable, as every commit: decision 0066), without the :ids array and the
-- owned / marked / dropped branches that would find nothing: the worker sends it whenever it has no finished job
-- to report (the claim after a NOTIFY, a polling tick). storage.py splices the rate admission after `claimed`
-- as into finish_and_claim_*.
WITH picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
(SELECT false AS finished, j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id,
        j.scheduled_at, j.concurrency_key, j.executions, j.process_deaths, j.created_at
 FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
 ORDER BY j.priority, j.id);

-- name: claim_now_in_queue
WITH picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE r.queue_name = :queue
      AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = :queue)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
(SELECT false AS finished, j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id,
        j.scheduled_at, j.concurrency_key, j.executions, j.process_deaths, j.created_at
 FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
 ORDER BY j.priority, j.id);

-- name: claim_now_in_prefix
WITH picked AS (
    SELECT r.job_id FROM solidstack_ready_executions r
    WHERE starts_with(r.queue_name, CAST(:prefix AS TEXT))
      AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
    ORDER BY r.priority, r.job_id LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), gone AS (
    DELETE FROM solidstack_ready_executions r USING picked WHERE r.job_id = picked.job_id RETURNING r.job_id
), claimed AS (
    INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
    SELECT job_id, CAST(:process_id AS BIGINT), CAST(:now AS DOUBLE PRECISION) FROM gone RETURNING job_id
)
(SELECT false AS finished, j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id,
        j.scheduled_at, j.concurrency_key, j.executions, j.process_deaths, j.created_at
 FROM solidstack_jobs j JOIN claimed c ON c.job_id = j.id
 ORDER BY j.priority, j.id);

-- Failed attempts (decision 0048): written only where a failure, retry or death is recorded.

-- name: claim_times
-- When :process_id claimed each of :ids (read before the claims are taken: the attempts' start times).
SELECT job_id, created_at FROM solidstack_claimed_executions
WHERE process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT) AND job_id = ANY(CAST(:ids AS BIGINT[]));

-- name: insert_attempt
-- The attempt's number is the run's as the job saw it (executions + 1), read before a retry counts it; the process
-- is copied from its row while there is one.
INSERT INTO solidstack_failed_attempts
    (job_id, attempt, outcome, error, started_at, process_id, process_name, hostname, pid, created_at)
SELECT j.id, j.executions + 1, CAST(:outcome AS TEXT), CAST(:error AS TEXT), CAST(:started_at AS DOUBLE PRECISION),
       CAST(:process_id AS BIGINT), p.name, p.hostname, p.pid, CAST(:now AS DOUBLE PRECISION)
FROM solidstack_jobs j LEFT JOIN solidstack_processes p ON p.id = CAST(:process_id AS BIGINT)
WHERE j.id = CAST(:job_id AS BIGINT);

-- name: trim_attempts
-- Keep the newest :keep attempts of the job (a job retried forever must not grow without bound).
DELETE FROM solidstack_failed_attempts WHERE job_id = CAST(:job_id AS BIGINT) AND id <= (
    SELECT id FROM solidstack_failed_attempts WHERE job_id = CAST(:job_id AS BIGINT)
    ORDER BY id DESC LIMIT 1 OFFSET CAST(:keep AS BIGINT));
