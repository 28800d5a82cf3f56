-- What a job reports (issue 17): the result its ack carried and the last
-- progress of its current attempt.
ALTER TABLE storaged_jobs ADD COLUMN result jsonb, ADD COLUMN progress jsonb;
