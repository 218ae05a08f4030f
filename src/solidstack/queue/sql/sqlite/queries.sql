-- Named queries of the job queue, SQLite dialect. Lists of ids are passed as JSON arrays (:ids) and read with
-- json_each, so one statement handles any number of rows; the PostgreSQL set passes arrays (= ANY).

-- name: insert_job
-- Positional: the fields of a NewJob (solidstack.queue.rows) in order, then the time twice. Plain `?`: Python
-- 3.12 deprecates numbered placeholders (`?1`) bound from a sequence, and 3.14 refuses them.
INSERT INTO solidstack_jobs
    (queue_name, class_name, arguments, priority, active_job_id, scheduled_at, concurrency_key, concurrency_limit,
     concurrency_duration, concurrency_on_conflict, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_plain_job
-- A job with no schedule and no concurrency limit: the first five fields of a NewJob, then the time twice.
INSERT INTO solidstack_jobs (queue_name, class_name, arguments, priority, active_job_id, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: ready_from_new_jobs
-- The jobs just inserted under this transaction's write lock have consecutive ids :first..:last (see
-- SQLiteDatabase.insert_many); all of them but :excluded (scheduled, or waiting for a concurrency slot).
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
SELECT id, queue_name, priority, :now FROM solidstack_jobs
WHERE id BETWEEN :first AND :last AND id NOT IN (SELECT value FROM json_each(:excluded));

-- name: insert_ready
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
VALUES (:job_id, :queue_name, :priority, :now);

-- name: insert_scheduled
INSERT INTO solidstack_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at)
VALUES (:job_id, :queue_name, :priority, :scheduled_at, :now);

-- name: ready_all
SELECT r.job_id FROM solidstack_ready_executions r
WHERE NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
ORDER BY r.priority, r.job_id LIMIT :limit;

-- name: ready_in_queue
SELECT r.job_id FROM solidstack_ready_executions r
WHERE r.queue_name = :queue
  AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
ORDER BY r.priority, r.job_id LIMIT :limit;

-- name: ready_in_prefix
SELECT r.job_id FROM solidstack_ready_executions r
WHERE r.queue_name >= :prefix AND r.queue_name < :prefix_end
  AND NOT EXISTS (SELECT 1 FROM solidstack_pauses p WHERE p.queue_name = r.queue_name)
ORDER BY r.priority, r.job_id LIMIT :limit;

-- name: delete_ready
DELETE FROM solidstack_ready_executions WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: insert_claimed
INSERT INTO solidstack_claimed_executions (job_id, process_id, created_at)
SELECT value, :process_id, :now FROM json_each(:ids);

-- name: jobs_by_ids
SELECT id, queue_name, class_name, arguments, priority, active_job_id, scheduled_at, concurrency_key,
       executions, process_deaths, created_at
FROM solidstack_jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: delete_claimed
DELETE FROM solidstack_claimed_executions WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: delete_own_claims
DELETE FROM solidstack_claimed_executions
WHERE process_id IS :process_id AND job_id IN (SELECT value FROM json_each(:ids))
RETURNING job_id;

-- name: process_by_pid
SELECT id FROM solidstack_processes WHERE supervisor_id = :supervisor_id AND pid = :pid;

-- name: mark_finished
UPDATE solidstack_jobs SET finished_at = :now, updated_at = :now WHERE id IN (SELECT value FROM json_each(:ids))
RETURNING concurrency_key, concurrency_limit, concurrency_duration;

-- name: mark_own_finished
-- The jobs whose claims :process_id holds, finished, each with its claim's time as started_at (decision 0603):
-- run before the claims are deleted (the caller then deletes those of the ids returned).
UPDATE solidstack_jobs SET finished_at = :now, updated_at = :now,
    started_at = (SELECT c.created_at FROM solidstack_claimed_executions c WHERE c.job_id = solidstack_jobs.id)
WHERE id IN (SELECT job_id FROM solidstack_claimed_executions
             WHERE process_id IS :process_id AND job_id IN (SELECT value FROM json_each(:ids)))
RETURNING id, concurrency_key, concurrency_limit, concurrency_duration;

-- name: delete_finished
DELETE FROM solidstack_jobs WHERE id IN (SELECT value FROM json_each(:ids))
RETURNING concurrency_key, concurrency_limit, concurrency_duration;

-- name: delete_jobs
DELETE FROM solidstack_jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: insert_failed
INSERT INTO solidstack_failed_executions (job_id, error, created_at) VALUES (:job_id, :error, :now);

-- name: reschedule_job
UPDATE solidstack_jobs SET executions = :executions, scheduled_at = :scheduled_at, updated_at = :now WHERE id = :job_id;

-- name: ready_from_jobs
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
SELECT id, queue_name, priority, :now FROM solidstack_jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: scheduled_from_job
INSERT INTO solidstack_scheduled_executions (job_id, queue_name, priority, scheduled_at, created_at)
SELECT id, queue_name, priority, :scheduled_at, :now FROM solidstack_jobs WHERE id = :job_id;

-- name: due_scheduled
SELECT job_id FROM solidstack_scheduled_executions WHERE scheduled_at <= :now
ORDER BY scheduled_at, priority, job_id LIMIT :limit;

-- name: ready_from_scheduled
INSERT INTO solidstack_ready_executions (job_id, queue_name, priority, created_at)
SELECT job_id, queue_name, priority, :now FROM solidstack_scheduled_executions
WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: delete_scheduled
DELETE FROM solidstack_scheduled_executions WHERE job_id IN (SELECT value FROM json_each(:ids));

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
WHERE id IN (SELECT value FROM json_each(:ids))
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
SELECT job_id FROM solidstack_failed_executions WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: all_failed_ids
SELECT job_id FROM solidstack_failed_executions ORDER BY job_id LIMIT :limit;

-- name: delete_failed
DELETE FROM solidstack_failed_executions WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: reset_process_deaths
-- Failed jobs retried by hand: their deaths start again from 0, and they are due now (their enqueue-to-start
-- latency counts from the retry, decision 0603).
UPDATE solidstack_jobs SET process_deaths = 0, scheduled_at = :now, updated_at = :now WHERE id IN (SELECT value FROM json_each(:ids));

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
  (SELECT COUNT(*) FROM solidstack_ready_executions) AS ready,
  (SELECT COUNT(*) FROM solidstack_scheduled_executions) AS scheduled,
  (SELECT COUNT(*) FROM solidstack_claimed_executions) AS claimed,
  (SELECT COUNT(*) FROM solidstack_blocked_executions) AS blocked,
  (SELECT COUNT(*) FROM solidstack_failed_executions) AS failed,
  (SELECT COUNT(*) FROM solidstack_jobs WHERE finished_at IS NOT NULL) AS finished;

-- Failed attempts (decision 0048): written only where a failure, retry or death is recorded.

-- name: claim_times
-- When :process_id claimed each of :ids (read before the claims are taken: the attempts' start times).
SELECT job_id, created_at FROM solidstack_claimed_executions
WHERE process_id IS :process_id AND job_id IN (SELECT value FROM json_each(:ids));

-- name: insert_attempt
-- The attempt's number is the run's as the job saw it (executions + 1), read before a retry counts it; the process
-- is copied from its row while there is one.
INSERT INTO solidstack_failed_attempts
    (job_id, attempt, outcome, error, started_at, process_id, process_name, hostname, pid, created_at)
SELECT j.id, j.executions + 1, :outcome, :error, :started_at, :process_id, p.name, p.hostname, p.pid, :now
FROM solidstack_jobs j LEFT JOIN solidstack_processes p ON p.id = :process_id
WHERE j.id = :job_id;

-- name: trim_attempts
-- Keep the newest :keep attempts of the job (a job retried forever must not grow without bound).
DELETE FROM solidstack_failed_attempts WHERE job_id = :job_id AND id <= (
    SELECT id FROM solidstack_failed_attempts WHERE job_id = :job_id ORDER BY id DESC LIMIT 1 OFFSET :keep);
