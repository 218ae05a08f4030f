-- The dashboard's reads and actions (solidstack.queue.admin.inspect): lists walk the primary key backwards
-- from :after (keyset pagination: no OFFSET but the floor's, bounded by :window), counts stop at :cap,
-- optional filters are NULL when unset;
-- :search is a lowercased LIKE pattern, :since/:until bound the time the job entered its state; :floor bounds a
-- search's scan from below (0: none). The bounds are written on j.id too: PostgreSQL does not carry a range
-- through the join's equality, and would otherwise scan every job for a rare substring.

-- name: jobs_ready
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at, j.finished_at, j.concurrency_key, j.executions, j.created_at, x.created_at AS state_at, NULL AS detail
FROM solidstack_ready_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id < :after AND x.job_id > :floor AND j.id < :after AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
ORDER BY x.job_id DESC LIMIT :limit;

-- name: count_ready
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_ready_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id > :floor AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
LIMIT :cap) AS s;

-- name: count_ready_all
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_ready_executions LIMIT :cap) AS s;

-- name: ready_ids_among
SELECT job_id FROM solidstack_ready_executions WHERE job_id IN (SELECT value FROM json_each(:ids)) ORDER BY job_id;

-- name: jobs_scheduled
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at, j.finished_at, j.concurrency_key, j.executions, j.created_at, x.scheduled_at AS state_at, NULL AS detail
FROM solidstack_scheduled_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id < :after AND x.job_id > :floor AND j.id < :after AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
ORDER BY x.job_id DESC LIMIT :limit;

-- name: count_scheduled
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_scheduled_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id > :floor AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
LIMIT :cap) AS s;

-- name: count_scheduled_all
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_scheduled_executions LIMIT :cap) AS s;

-- name: scheduled_ids_among
SELECT job_id FROM solidstack_scheduled_executions WHERE job_id IN (SELECT value FROM json_each(:ids)) ORDER BY job_id;

-- name: jobs_claimed
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at, j.finished_at, j.concurrency_key, j.executions, j.created_at, x.created_at AS state_at, x.process_id AS detail
FROM solidstack_claimed_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id < :after AND x.job_id > :floor AND j.id < :after AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
ORDER BY x.job_id DESC LIMIT :limit;

-- name: count_claimed
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_claimed_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id > :floor AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
LIMIT :cap) AS s;

-- name: count_claimed_all
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_claimed_executions LIMIT :cap) AS s;

-- name: claimed_ids_among
SELECT job_id FROM solidstack_claimed_executions WHERE job_id IN (SELECT value FROM json_each(:ids)) ORDER BY job_id;

-- name: jobs_blocked
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at, j.finished_at, j.concurrency_key, j.executions, j.created_at, x.created_at AS state_at, x.concurrency_key AS detail
FROM solidstack_blocked_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id < :after AND x.job_id > :floor AND j.id < :after AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
ORDER BY x.job_id DESC LIMIT :limit;

-- name: count_blocked
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_blocked_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id > :floor AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
LIMIT :cap) AS s;

-- name: count_blocked_all
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_blocked_executions LIMIT :cap) AS s;

-- name: blocked_ids_among
SELECT job_id FROM solidstack_blocked_executions WHERE job_id IN (SELECT value FROM json_each(:ids)) ORDER BY job_id;

-- name: jobs_failed
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at, j.finished_at, j.concurrency_key, j.executions, j.created_at, x.created_at AS state_at, x.error AS detail
FROM solidstack_failed_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id < :after AND x.job_id > :floor AND j.id < :after AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
ORDER BY x.job_id DESC LIMIT :limit;

-- name: count_failed
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_failed_executions x JOIN solidstack_jobs j ON j.id = x.job_id
WHERE x.job_id > :floor AND j.id > :floor AND x.created_at >= :since AND x.created_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
LIMIT :cap) AS s;

-- name: count_failed_all
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_failed_executions LIMIT :cap) AS s;

-- name: failed_ids_among
SELECT job_id FROM solidstack_failed_executions WHERE job_id IN (SELECT value FROM json_each(:ids)) ORDER BY job_id;

-- name: jobs_finished
-- Newest finished first, walking index_solidstack_jobs_on_finished_at backwards from the cursor
-- (:after_at, :after): ordered by the id instead, the index would serve the range and a sort the order.
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at, j.finished_at, j.concurrency_key, j.executions, j.created_at, j.finished_at AS state_at, NULL AS detail
FROM solidstack_jobs j
WHERE j.finished_at IS NOT NULL AND j.finished_at <= :after_at AND (j.finished_at < :after_at OR j.id < :after)
  AND j.finished_at >= :floor_at AND (j.finished_at > :floor_at OR j.id >= :floor)
  AND j.finished_at >= :since AND j.finished_at < :until
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
ORDER BY j.finished_at DESC, j.id DESC LIMIT :limit;

-- name: count_finished
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_jobs j
WHERE j.finished_at IS NOT NULL AND j.finished_at >= :since AND j.finished_at < :until
  AND j.finished_at >= :floor_at AND (j.finished_at > :floor_at OR j.id >= :floor)
  AND (CAST(:class_name AS TEXT) IS NULL OR j.class_name = :class_name)
  AND (CAST(:queue AS TEXT) IS NULL OR j.queue_name = :queue)
  AND (CAST(:search AS TEXT) IS NULL OR LOWER(j.arguments) LIKE :search ESCAPE '\')
LIMIT :cap) AS s;

-- name: count_finished_all
-- Walks index_solidstack_jobs_on_finished_at (partial: finished rows only) and stops at :cap.
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_jobs WHERE finished_at IS NOT NULL LIMIT :cap) AS s;

-- name: job_detail
SELECT j.id, j.queue_name, j.class_name, j.arguments, j.priority, j.active_job_id, j.scheduled_at, j.finished_at, j.concurrency_key, j.executions, j.created_at, j.updated_at, j.process_deaths, j.started_at,
       r.created_at AS ready_at, s.scheduled_at AS scheduled_for, c.process_id, c.created_at AS claimed_at,
       p.name AS process_name, p.hostname AS process_hostname, p.pid AS process_pid,
       b.concurrency_key AS blocked_key, f.error, f.created_at AS failed_at, e.task_key AS recurring_task
FROM solidstack_jobs j
LEFT JOIN solidstack_ready_executions r ON r.job_id = j.id
LEFT JOIN solidstack_scheduled_executions s ON s.job_id = j.id
LEFT JOIN solidstack_claimed_executions c ON c.job_id = j.id
LEFT JOIN solidstack_processes p ON p.id = c.process_id
LEFT JOIN solidstack_blocked_executions b ON b.job_id = j.id
LEFT JOIN solidstack_failed_executions f ON f.job_id = j.id
LEFT JOIN solidstack_recurring_executions e ON e.job_id = j.id
WHERE j.id = :id;

-- name: running_jobs
SELECT c.process_id, j.id, j.class_name, j.queue_name, c.created_at AS claimed_at
FROM solidstack_claimed_executions c JOIN solidstack_jobs j ON j.id = c.job_id
ORDER BY c.process_id, j.id LIMIT :limit;

-- name: recurring_tasks
SELECT key, schedule, command, class_name, arguments, queue_name, priority, static, description
FROM solidstack_recurring_tasks ORDER BY key;

-- name: recurring_last_run_jobs
-- The newest run of each task, with its job (the unique (task_key, run_at) index serves both steps).
SELECT e.task_key, e.run_at, e.job_id FROM solidstack_recurring_executions e
JOIN (SELECT task_key, MAX(run_at) AS run_at FROM solidstack_recurring_executions GROUP BY task_key) m
  ON m.task_key = e.task_key AND m.run_at = e.run_at;

-- name: class_names
-- Classes of the most recent jobs (for the filter's suggestions): a walk of the primary key, never a scan.
SELECT DISTINCT class_name FROM (SELECT class_name FROM solidstack_jobs ORDER BY id DESC LIMIT :limit) AS recent
ORDER BY class_name;

-- name: finished_per_minute
-- Throughput for the chart: finished jobs per queue and minute since :since (index on finished_at).
-- With each minute's enqueue-to-start latency of those jobs (decision 0603): from when each was due (enqueued,
-- or scheduled for; a retry from when it was due again) to when its last run started (started_at, set by the
-- statement that finished it; 0 for a job run before it was due): the sum and the largest, over the jobs that
-- have a start time.
SELECT queue_name, CAST(finished_at / 60 AS INTEGER) AS minute, COUNT(*) AS n,
       COUNT(started_at) AS started,
       SUM(MAX(0.0, started_at - MAX(created_at, COALESCE(scheduled_at, created_at)))) AS latency_sum,
       MAX(MAX(0.0, started_at - MAX(created_at, COALESCE(scheduled_at, created_at)))) AS latency_max
FROM solidstack_jobs
WHERE finished_at IS NOT NULL AND finished_at >= :since GROUP BY 1, 2 ORDER BY 2;

-- name: finished_per_class
-- Since :since only (index on finished_at): a count of every finished job is a scan of most of the table.
SELECT class_name, COUNT(*) AS n FROM solidstack_jobs
WHERE finished_at IS NOT NULL AND finished_at >= :since GROUP BY class_name;

-- name: failed_per_class
SELECT j.class_name, COUNT(*) AS n FROM solidstack_failed_executions f
JOIN solidstack_jobs j ON j.id = f.job_id GROUP BY j.class_name;

-- name: process_count
SELECT kind, COUNT(*) AS n FROM solidstack_processes GROUP BY kind;
-- name: delete_blocked_among
DELETE FROM solidstack_blocked_executions WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: queue_names
-- The queues with ready jobs, one index probe each (a skip scan of index_solidstack_poll_by_queue), not a
-- GROUP BY over every ready row.
WITH RECURSIVE q(name) AS (
  SELECT MIN(queue_name) FROM solidstack_ready_executions
  UNION ALL
  SELECT (SELECT MIN(r.queue_name) FROM solidstack_ready_executions r WHERE r.queue_name > q.name)
  FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL;

-- name: queue_size
SELECT COUNT(*) AS n FROM (SELECT 1 FROM solidstack_ready_executions WHERE queue_name = :queue LIMIT :cap) AS s;

-- name: queue_oldest
-- The oldest of the next :window jobs in claim order (exact while the queue holds no more than :window).
SELECT MIN(created_at) AS oldest FROM (
  SELECT created_at FROM solidstack_ready_executions WHERE queue_name = :queue
  ORDER BY priority, job_id LIMIT :window) AS s;

-- The floors: where a search's scan stops (the :window-th job below the cursor), so that a substring
-- search, which no index serves, reads at most :window jobs per page.

-- name: floor_ready
SELECT job_id AS id FROM solidstack_ready_executions WHERE job_id < :after ORDER BY job_id DESC LIMIT 1 OFFSET :window;

-- name: floor_scheduled
SELECT job_id AS id FROM solidstack_scheduled_executions WHERE job_id < :after ORDER BY job_id DESC LIMIT 1 OFFSET :window;

-- name: floor_claimed
SELECT job_id AS id FROM solidstack_claimed_executions WHERE job_id < :after ORDER BY job_id DESC LIMIT 1 OFFSET :window;

-- name: floor_blocked
SELECT job_id AS id FROM solidstack_blocked_executions WHERE job_id < :after ORDER BY job_id DESC LIMIT 1 OFFSET :window;

-- name: floor_failed
SELECT job_id AS id FROM solidstack_failed_executions WHERE job_id < :after ORDER BY job_id DESC LIMIT 1 OFFSET :window;

-- name: floor_finished
SELECT finished_at, id FROM solidstack_jobs
WHERE finished_at IS NOT NULL AND finished_at <= :after_at AND (finished_at < :after_at OR id < :after)
ORDER BY finished_at DESC, id DESC LIMIT 1 OFFSET :window;

-- name: counts_all
-- Every state's count in one statement (one round trip), each stopping at :cap.
SELECT
  (SELECT COUNT(*) FROM (SELECT 1 FROM solidstack_ready_executions LIMIT :cap) AS s) AS ready,
  (SELECT COUNT(*) FROM (SELECT 1 FROM solidstack_scheduled_executions LIMIT :cap) AS s) AS scheduled,
  (SELECT COUNT(*) FROM (SELECT 1 FROM solidstack_claimed_executions LIMIT :cap) AS s) AS claimed,
  (SELECT COUNT(*) FROM (SELECT 1 FROM solidstack_blocked_executions LIMIT :cap) AS s) AS blocked,
  (SELECT COUNT(*) FROM (SELECT 1 FROM solidstack_failed_executions LIMIT :cap) AS s) AS failed,
  (SELECT COUNT(*) FROM (SELECT 1 FROM solidstack_jobs WHERE finished_at IS NOT NULL LIMIT :cap) AS s) AS finished;

-- name: job_attempts
-- A job's failed attempts, oldest first (decision 0048): at most QueueStorage.attempts_kept, by its index.
SELECT id, job_id, attempt, outcome, error, started_at, process_id, process_name, hostname, pid,
       created_at AS failed_at
FROM solidstack_failed_attempts WHERE job_id = :id ORDER BY id;
