-- Concurrency controls: a job carries the limit it was enqueued under, so a finish, a failure or the
-- dispatcher's upkeep can free its slot and release the next blocked job without the job's class at hand.

ALTER TABLE solidstack_jobs ADD COLUMN concurrency_limit INTEGER;
ALTER TABLE solidstack_jobs ADD COLUMN concurrency_duration REAL;
ALTER TABLE solidstack_jobs ADD COLUMN concurrency_on_conflict TEXT;
CREATE INDEX index_solidstack_jobs_on_concurrency_key ON solidstack_jobs (concurrency_key);
CREATE INDEX index_solidstack_ready_executions_on_created_at ON solidstack_ready_executions (queue_name, created_at);
