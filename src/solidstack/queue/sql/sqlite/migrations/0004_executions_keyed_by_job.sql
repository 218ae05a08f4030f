-- Each execution table is keyed by its job: job_id becomes the table's own key (SQLite's rowid), replacing a
-- surrogate id that no query reads and the UNIQUE (job_id) index that came with it. Every enqueue, claim and
-- finish wrote one b-tree page fewer per table; a claim's commit wrote ~10 pages, each ~7 µs on this disk.
-- The claimed table drops its process index too: it holds only the jobs running right now, a short scan.
-- (Measured: benchmarks/queue, decision 0004.) Rows are copied as they are: no job changes state.

CREATE TABLE solidstack_ready_executions_new (
    job_id INTEGER PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
INSERT INTO solidstack_ready_executions_new (job_id, queue_name, priority, created_at)
SELECT job_id, queue_name, priority, created_at FROM solidstack_ready_executions;
DROP TABLE solidstack_ready_executions;
ALTER TABLE solidstack_ready_executions_new RENAME TO solidstack_ready_executions;
CREATE INDEX index_solidstack_poll_all ON solidstack_ready_executions (priority, job_id);
CREATE INDEX index_solidstack_poll_by_queue ON solidstack_ready_executions (queue_name, priority, job_id);

CREATE TABLE solidstack_scheduled_executions_new (
    job_id INTEGER PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    scheduled_at REAL NOT NULL,
    created_at REAL NOT NULL
);
INSERT INTO solidstack_scheduled_executions_new (job_id, queue_name, priority, scheduled_at, created_at)
SELECT job_id, queue_name, priority, scheduled_at, created_at FROM solidstack_scheduled_executions;
DROP TABLE solidstack_scheduled_executions;
ALTER TABLE solidstack_scheduled_executions_new RENAME TO solidstack_scheduled_executions;
CREATE INDEX index_solidstack_dispatch_all ON solidstack_scheduled_executions (scheduled_at, priority, job_id);

CREATE TABLE solidstack_claimed_executions_new (
    job_id INTEGER PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    process_id INTEGER,
    created_at REAL NOT NULL
);
INSERT INTO solidstack_claimed_executions_new (job_id, process_id, created_at)
SELECT job_id, process_id, created_at FROM solidstack_claimed_executions;
DROP TABLE solidstack_claimed_executions;
ALTER TABLE solidstack_claimed_executions_new RENAME TO solidstack_claimed_executions;

CREATE TABLE solidstack_blocked_executions_new (
    job_id INTEGER PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    queue_name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    concurrency_key TEXT NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL
);
INSERT INTO solidstack_blocked_executions_new (job_id, queue_name, priority, concurrency_key, expires_at, created_at)
SELECT job_id, queue_name, priority, concurrency_key, expires_at, created_at FROM solidstack_blocked_executions;
DROP TABLE solidstack_blocked_executions;
ALTER TABLE solidstack_blocked_executions_new RENAME TO solidstack_blocked_executions;
CREATE INDEX index_solidstack_blocked_executions_for_release
    ON solidstack_blocked_executions (concurrency_key, priority, job_id);
CREATE INDEX index_solidstack_blocked_executions_for_maintenance
    ON solidstack_blocked_executions (expires_at, concurrency_key);

CREATE TABLE solidstack_failed_executions_new (
    job_id INTEGER PRIMARY KEY REFERENCES solidstack_jobs (id) ON DELETE CASCADE,
    error TEXT,
    created_at REAL NOT NULL
);
INSERT INTO solidstack_failed_executions_new (job_id, error, created_at)
SELECT job_id, error, created_at FROM solidstack_failed_executions;
DROP TABLE solidstack_failed_executions;
ALTER TABLE solidstack_failed_executions_new RENAME TO solidstack_failed_executions;
