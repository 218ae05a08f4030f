-- The Solid Queue model: a job's state is which table holds its row.
-- Times are Unix seconds (REAL, UTC): compact, exact enough, and cheap to compare in SQLite.

CREATE TABLE solidstack_jobs (
    id INTEGER PRIMARY KEY,
    queue_name TEXT NOT NULL,
    class_name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    active_job_id TEXT NOT NULL,
    scheduled_at REAL,
    finished_at REAL,
    concurrency_key TEXT,
    executions INTEGER NOT NULL DEFAULT 0,
    process_deaths INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX index_solidstack_jobs_on_active_job_id ON solidstack_jobs (active_job_id);
CREATE INDEX index_solidstack_jobs_on_class_name ON solidstack_jobs (class_name);
CREATE INDEX index_solidstack_jobs_on_finished_at ON solidstack_jobs (finished_at);
CREATE INDEX index_solidstack_jobs_for_filtering ON solidstack_jobs (queue_name, finished_at);

CREATE TABLE solidstack_ready_executions (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX index_solidstack_poll_all ON solidstack_ready_executions (priority, job_id);
CREATE INDEX index_solidstack_poll_by_queue ON solidstack_ready_executions (queue_name, priority, job_id);

CREATE TABLE solidstack_scheduled_executions (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    scheduled_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX index_solidstack_dispatch_all ON solidstack_scheduled_executions (scheduled_at, priority, job_id);

CREATE TABLE solidstack_claimed_executions (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    process_id INTEGER,
    created_at REAL NOT NULL
);
CREATE INDEX index_solidstack_claimed_executions_on_process_id_and_job_id
    ON solidstack_claimed_executions (process_id, job_id);

CREATE TABLE solidstack_blocked_executions (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    concurrency_key TEXT NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX index_solidstack_blocked_executions_for_release
    ON solidstack_blocked_executions (concurrency_key, priority, job_id);
CREATE INDEX index_solidstack_blocked_executions_for_maintenance
    ON solidstack_blocked_executions (expires_at, concurrency_key);

CREATE TABLE solidstack_failed_executions (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    error TEXT,
    created_at REAL NOT NULL
);

CREATE TABLE solidstack_processes (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    last_heartbeat_at REAL NOT NULL,
    supervisor_id INTEGER,
    pid INTEGER NOT NULL,
    hostname TEXT,
    metadata TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX index_solidstack_processes_on_last_heartbeat_at ON solidstack_processes (last_heartbeat_at);
CREATE UNIQUE INDEX index_solidstack_processes_on_name_and_supervisor_id
    ON solidstack_processes (name, supervisor_id);
CREATE INDEX index_solidstack_processes_on_supervisor_id ON solidstack_processes (supervisor_id);

CREATE TABLE solidstack_pauses (
    id INTEGER PRIMARY KEY,
    queue_name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);

CREATE TABLE solidstack_semaphores (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    value INTEGER NOT NULL DEFAULT 1,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX index_solidstack_semaphores_on_expires_at ON solidstack_semaphores (expires_at);
CREATE INDEX index_solidstack_semaphores_on_key_and_value ON solidstack_semaphores (key, value);

CREATE TABLE solidstack_recurring_tasks (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    schedule TEXT NOT NULL,
    command TEXT,
    class_name TEXT,
    arguments TEXT,
    queue_name TEXT,
    priority INTEGER DEFAULT 0,
    static INTEGER NOT NULL DEFAULT 1,
    description TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX index_solidstack_recurring_tasks_on_static ON solidstack_recurring_tasks (static);

CREATE TABLE solidstack_recurring_executions (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL UNIQUE REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    task_key TEXT NOT NULL,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE UNIQUE INDEX index_solidstack_recurring_executions_on_task_key_and_run_at
    ON solidstack_recurring_executions (task_key, run_at);
