-- When the job was first claimed for a broker: launch retries are bounded from the first attempt, not from
-- the request (a job that waited long in the queue still gets its full retry window).
ALTER TABLE scheduler_jobs ADD COLUMN claimed_at_ms BIGINT;
-- The retention cleaner removes final rows by age.
CREATE INDEX scheduler_jobs_final_age ON scheduler_jobs (updated_at) WHERE state IN ('completed', 'failed', 'cancelled');
