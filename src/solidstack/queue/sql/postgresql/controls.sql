-- Named queries of the queue's controls, PostgreSQL dialect: concurrency limits, pauses and queue sizes, recurring
-- tasks, retention. Kept beside queries.sql (loaded together, see solidstack.queue._sql), with the same names as
-- the SQLite set. Each recurring run is enqueued once: the unique (task_key, run_at) with ON CONFLICT DO NOTHING
-- (a unique violation would abort the whole transaction on PostgreSQL); a scheduler that gets no row back rolls
-- its job back.

-- name: limited_jobs
SELECT id, queue_name, priority, concurrency_key, concurrency_limit, concurrency_duration, concurrency_on_conflict
FROM solidstack_jobs
WHERE id = ANY(CAST(:ids AS BIGINT[])) AND concurrency_key IS NOT NULL
ORDER BY priority, id;

-- name: semaphore_insert
INSERT INTO solidstack_semaphores (key, value, expires_at, created_at, updated_at)
VALUES (:key, :value, :expires_at, :now, :now)
ON CONFLICT (key) DO NOTHING;

-- name: semaphore_wait
UPDATE solidstack_semaphores SET value = value - 1, expires_at = :expires_at, updated_at = :now
WHERE key = :key AND value > 0;

-- name: semaphore_signal
UPDATE solidstack_semaphores SET value = value + 1, expires_at = :expires_at, updated_at = :now
WHERE key = :key AND value < :limit;

-- name: semaphores_expired
DELETE FROM solidstack_semaphores WHERE expires_at < :now;

-- name: insert_blocked
INSERT INTO solidstack_blocked_executions (job_id, queue_name, priority, concurrency_key, expires_at, created_at)
VALUES (:job_id, :queue_name, :priority, :key, :expires_at, :now);

-- name: next_blocked
SELECT b.job_id, j.concurrency_key, j.concurrency_limit, j.concurrency_duration, j.queue_name, j.priority
FROM solidstack_blocked_executions b JOIN solidstack_jobs j ON j.id = b.job_id
WHERE b.concurrency_key = :key
ORDER BY b.priority, b.job_id LIMIT 1;

-- name: delete_blocked
DELETE FROM solidstack_blocked_executions WHERE job_id = :job_id;

-- name: expired_blocked_keys
SELECT DISTINCT concurrency_key FROM solidstack_blocked_executions WHERE expires_at < :now LIMIT :limit;

-- name: pause_queue
INSERT INTO solidstack_pauses (queue_name, created_at) VALUES (:queue, :now) ON CONFLICT (queue_name) DO NOTHING;

-- name: resume_queue
DELETE FROM solidstack_pauses WHERE queue_name = :queue;

-- name: paused_queues
SELECT queue_name FROM solidstack_pauses ORDER BY queue_name;

-- name: queue_stats
SELECT queue_name, COUNT(*)::int AS size, MIN(created_at) AS oldest
FROM solidstack_ready_executions GROUP BY queue_name ORDER BY queue_name;

-- name: queue_stat
SELECT COUNT(*)::int AS size, MIN(created_at) AS oldest FROM solidstack_ready_executions WHERE queue_name = :queue;

-- name: ready_ids_in_queue
SELECT job_id FROM solidstack_ready_executions WHERE queue_name = :queue ORDER BY job_id LIMIT :limit;

-- name: recurring_execution_insert
INSERT INTO solidstack_recurring_executions (job_id, task_key, run_at, created_at)
VALUES (:job_id, :task_key, :run_at, :now)
ON CONFLICT (task_key, run_at) DO NOTHING
RETURNING id;

-- name: recurring_execution_exists
SELECT 1 FROM solidstack_recurring_executions WHERE task_key = :task_key AND run_at = :run_at;

-- name: recurring_last_runs
SELECT task_key, MAX(run_at) AS last_run_at FROM solidstack_recurring_executions GROUP BY task_key;

-- name: recurring_task_upsert
INSERT INTO solidstack_recurring_tasks
    (key, schedule, command, class_name, arguments, queue_name, priority, static, description, created_at,
     updated_at)
VALUES (:key, :schedule, :command, :class_name, :arguments, :queue_name, :priority, 1, :description, :now, :now)
ON CONFLICT (key) DO UPDATE SET
    schedule = excluded.schedule, command = excluded.command, class_name = excluded.class_name,
    arguments = excluded.arguments, queue_name = excluded.queue_name, priority = excluded.priority,
    static = 1, description = excluded.description, updated_at = excluded.updated_at;

-- name: recurring_dynamic_upsert
-- A task added at run time; never replaces a task of recurring.yml (no row returned then).
INSERT INTO solidstack_recurring_tasks
    (key, schedule, command, class_name, arguments, queue_name, priority, static, description, created_at,
     updated_at)
VALUES (:key, :schedule, NULL, :class_name, :arguments, :queue_name, :priority, 0, :description, :now, :now)
ON CONFLICT (key) DO UPDATE SET
    schedule = excluded.schedule, class_name = excluded.class_name, arguments = excluded.arguments,
    queue_name = excluded.queue_name, priority = excluded.priority, description = excluded.description,
    updated_at = excluded.updated_at
WHERE solidstack_recurring_tasks.static = 0
RETURNING id;

-- name: recurring_dynamic_tasks
SELECT key, schedule, class_name, arguments, queue_name, priority, description, updated_at
FROM solidstack_recurring_tasks WHERE static = 0 ORDER BY key;

-- name: recurring_dynamic_delete
DELETE FROM solidstack_recurring_tasks WHERE key = :key AND static = 0;

-- name: recurring_static_keys
SELECT key FROM solidstack_recurring_tasks WHERE static = 1;

-- name: recurring_task_delete
DELETE FROM solidstack_recurring_tasks WHERE key = :key;

-- name: finished_batch
SELECT id FROM solidstack_jobs
WHERE finished_at IS NOT NULL AND finished_at < :before AND (CAST(:class_name AS TEXT) IS NULL OR class_name = :class_name)
ORDER BY finished_at LIMIT :limit;
