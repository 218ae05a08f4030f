-- Batches, unique jobs and rate limits (see queue/features/batches.py, unique.py, ratelimit.py). New tables only: the hot
-- tables (jobs, ready, claimed) are untouched, and a job's batch and trace context ride in its arguments' "meta".

CREATE TABLE solidstack_batches (
    id INTEGER PRIMARY KEY,
    description TEXT,
    -- Each callback: {"class": name, "arguments": stored arguments} or NULL.
    on_success TEXT,
    on_failure TEXT,
    on_finish TEXT,
    total INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    -- Set once, by whoever fires the callback (its job id): the flag that makes each fire exactly once.
    failure_job_id INTEGER,
    finished_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

CREATE TABLE solidstack_batch_jobs (
    job_id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES solidstack_batches (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX index_solidstack_batch_jobs_on_batch_id ON solidstack_batch_jobs (batch_id, status);

CREATE TABLE solidstack_unique_keys (
    key TEXT PRIMARY KEY,
    job_id INTEGER,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX index_solidstack_unique_keys_on_expires_at ON solidstack_unique_keys (expires_at);

-- One row per key: the row a start locks (PostgreSQL), so that the count and the insert are one decision.
CREATE TABLE solidstack_rate_limits (
    key TEXT PRIMARY KEY,
    updated_at REAL NOT NULL
);

CREATE TABLE solidstack_rate_limit_starts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE INDEX index_solidstack_rate_limit_starts_on_key ON solidstack_rate_limit_starts (key, started_at);
