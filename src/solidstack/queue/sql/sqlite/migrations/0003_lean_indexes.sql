-- Every index on the jobs and ready tables is paid for by every enqueue and every claim. Keep the ones a
-- query here uses; make the finished-jobs index partial, so it costs nothing until a job finishes.
-- (Measured: bulk enqueue and claim throughput, benchmarks/queue; decision 0004.)

DROP INDEX IF EXISTS index_solidstack_jobs_on_active_job_id;
DROP INDEX IF EXISTS index_solidstack_jobs_on_class_name;
DROP INDEX IF EXISTS index_solidstack_jobs_for_filtering;
DROP INDEX IF EXISTS index_solidstack_jobs_on_concurrency_key;
DROP INDEX IF EXISTS index_solidstack_jobs_on_finished_at;
CREATE INDEX index_solidstack_jobs_on_finished_at ON solidstack_jobs (finished_at) WHERE finished_at IS NOT NULL;
DROP INDEX IF EXISTS index_solidstack_ready_executions_on_created_at;
