-- A finished job keeps its return value (typed JSON, as its arguments; NULL when it returned None), and a job
-- cancelled (solidstack jobs cancel) records when: a cancelled job that was waiting is finished with this set,
-- a running one is told through it (its worker reads it) and finishes with it set (decision 0031).
ALTER TABLE solidstack_jobs ADD COLUMN result TEXT;
ALTER TABLE solidstack_jobs ADD COLUMN cancelled_at DOUBLE PRECISION;
