-- Every failed attempt of a job, not only the last (decision 0048): the error (its record as in
-- solidstack_failed_executions: exception_class, message, backtrace), the run's number as the job saw it
-- (executions + 1), what came of it (retried, failed, died: its process died and it ran again), when it started and
-- failed, and the process that ran it (copied: the process row goes when the process does). Written only by the
-- transaction that records a failure, a retry or a death; at most the newest few per job are kept
-- (QueueStorage.attempts_kept); deleted with the job (ON DELETE CASCADE: retention, discard, clear).
CREATE TABLE solidstack_failed_attempts (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT NOT NULL,
    started_at DOUBLE PRECISION,
    process_id BIGINT,
    process_name TEXT,
    hostname TEXT,
    pid INTEGER,
    created_at DOUBLE PRECISION NOT NULL
);
-- The job's attempts in order, and the cascade's lookup.
CREATE INDEX index_solidstack_failed_attempts_on_job_id ON solidstack_failed_attempts (job_id, id);

-- When a finished job's run started (its claim's time), set by the statement that finishes it: a job's page shows
-- it, and the dashboard's chart draws enqueue-to-start latency from it (decision 0603). No write of its own: a
-- nullable column without a default is a catalog change only.
ALTER TABLE solidstack_jobs ADD COLUMN started_at DOUBLE PRECISION;
