-- Results and cancellation (see queue/features/outcomes.py): what a job returned, and jobs cancelled.

-- name: store_result
-- A job's return value, kept only while this process still holds its claim (a late worker writes nothing).
UPDATE solidstack_jobs SET result = :result
WHERE id = :id AND EXISTS (
    SELECT 1 FROM solidstack_claimed_executions c WHERE c.job_id = CAST(:id AS BIGINT) AND c.process_id IS NOT DISTINCT FROM CAST(:process_id AS BIGINT)
);

-- name: job_result
SELECT j.id, j.class_name, j.queue_name, j.active_job_id, j.result, j.executions, j.created_at, j.scheduled_at,
       j.finished_at, j.cancelled_at, f.error, f.created_at AS failed_at, c.created_at AS claimed_at,
       CASE
         WHEN j.finished_at IS NOT NULL AND j.cancelled_at IS NOT NULL THEN 'cancelled'
         WHEN j.finished_at IS NOT NULL THEN 'finished'
         WHEN f.job_id IS NOT NULL THEN 'failed'
         WHEN c.job_id IS NOT NULL THEN 'claimed'
         WHEN EXISTS (SELECT 1 FROM solidstack_ready_executions x WHERE x.job_id = j.id) THEN 'ready'
         WHEN EXISTS (SELECT 1 FROM solidstack_scheduled_executions x WHERE x.job_id = j.id) THEN 'scheduled'
         WHEN EXISTS (SELECT 1 FROM solidstack_blocked_executions x WHERE x.job_id = j.id) THEN 'blocked'
         ELSE 'unknown'
       END AS status
FROM solidstack_jobs j
LEFT JOIN solidstack_failed_executions f ON f.job_id = j.id
LEFT JOIN solidstack_claimed_executions c ON c.job_id = j.id
WHERE j.id = :id;

-- name: cancel_waiting
-- A waiting job leaves its state table; the caller finishes it as cancelled. Returns the id when it was there.
DELETE FROM solidstack_ready_executions WHERE job_id = :id RETURNING job_id;

-- name: cancel_scheduled
DELETE FROM solidstack_scheduled_executions WHERE job_id = :id RETURNING job_id;

-- name: cancel_blocked
DELETE FROM solidstack_blocked_executions WHERE job_id = :id RETURNING job_id;

-- name: mark_cancelled
-- Set on a waiting job with finished_at (it is done), on a running one alone (its worker reads it).
UPDATE solidstack_jobs SET cancelled_at = :now, finished_at = CASE WHEN CAST(:finish AS BOOLEAN) THEN :now ELSE finished_at END,
       updated_at = :now
WHERE id = :id AND finished_at IS NULL AND cancelled_at IS NULL;

-- name: cancelled_among
SELECT id FROM solidstack_jobs WHERE id = ANY(CAST(:ids AS BIGINT[])) AND cancelled_at IS NOT NULL;
