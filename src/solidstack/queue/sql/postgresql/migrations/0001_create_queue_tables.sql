-- The Solid Queue model on PostgreSQL: a job's state is which table holds its row. The whole schema that the
-- SQLite migrations 0001-0004 reach, in one step: 0002-0004 exist here only so that version names line up with
-- the SQLite set (an app's db/queue_migrate/ may hold either).
-- Times are Unix seconds (double precision, UTC), as on SQLite, so that the Python logic is shared.
-- Each execution table is keyed by its job; the ready table is the hot one (every enqueue inserts, every claim
-- deletes): two indexes that serve the claims' ORDER BY directly, so a claim reads a few index entries and
-- stops, with or without planner statistics (decision 0020).

CREATE TABLE solidstack_jobs (
    id BIGSERIAL PRIMARY KEY,
    queue_name TEXT NOT NULL,
    class_name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    active_job_id TEXT NOT NULL,
    scheduled_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    concurrency_key TEXT,
    executions INTEGER NOT NULL DEFAULT 0,
    process_deaths INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    concurrency_limit INTEGER,
    concurrency_duration DOUBLE PRECISION,
    concurrency_on_conflict TEXT
);
CREATE INDEX index_solidstack_jobs_on_finished_at ON solidstack_jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE solidstack_ready_executions (
    job_id BIGINT PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX index_solidstack_poll_all ON solidstack_ready_executions (priority, job_id);
CREATE INDEX index_solidstack_poll_by_queue ON solidstack_ready_executions (queue_name, priority, job_id);

CREATE TABLE solidstack_scheduled_executions (
    job_id BIGINT PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    scheduled_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX index_solidstack_dispatch_all ON solidstack_scheduled_executions (scheduled_at, priority, job_id);

CREATE TABLE solidstack_claimed_executions (
    job_id BIGINT PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    process_id BIGINT,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE solidstack_blocked_executions (
    job_id BIGINT PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    concurrency_key TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX index_solidstack_blocked_executions_for_maintenance
    ON solidstack_blocked_executions (expires_at, concurrency_key);
CREATE INDEX index_solidstack_blocked_executions_for_release
    ON solidstack_blocked_executions (concurrency_key, priority, job_id);

CREATE TABLE solidstack_failed_executions (
    job_id BIGINT PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    error TEXT,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE solidstack_pauses (
    id BIGSERIAL PRIMARY KEY,
    queue_name TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE solidstack_processes (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    last_heartbeat_at DOUBLE PRECISION NOT NULL,
    supervisor_id BIGINT,
    pid INTEGER NOT NULL,
    hostname TEXT,
    metadata TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX index_solidstack_processes_on_last_heartbeat_at ON solidstack_processes (last_heartbeat_at);
CREATE UNIQUE INDEX index_solidstack_processes_on_name_and_supervisor_id
    ON solidstack_processes (name, supervisor_id);
CREATE INDEX index_solidstack_processes_on_supervisor_id ON solidstack_processes (supervisor_id);

CREATE TABLE solidstack_semaphores (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    value INTEGER NOT NULL DEFAULT 1,
    expires_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX index_solidstack_semaphores_on_expires_at ON solidstack_semaphores (expires_at);
CREATE INDEX index_solidstack_semaphores_on_key_and_value ON solidstack_semaphores (key, value);

CREATE TABLE solidstack_recurring_tasks (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    schedule TEXT NOT NULL,
    command TEXT,
    class_name TEXT,
    arguments TEXT,
    queue_name TEXT,
    priority INTEGER DEFAULT 0,
    static INTEGER NOT NULL DEFAULT 1,
    description TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX index_solidstack_recurring_tasks_on_static ON solidstack_recurring_tasks (static);

CREATE TABLE solidstack_recurring_executions (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL UNIQUE REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    task_key TEXT NOT NULL,
    run_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX index_solidstack_recurring_executions_on_task_key_and_run_at
    ON solidstack_recurring_executions (task_key, run_at);
