-- What a job reports (issue 17): the result its ack carried and the last
-- progress of its current attempt, each a JSON text.
ALTER TABLE jobs ADD COLUMN result TEXT;
ALTER TABLE jobs ADD COLUMN progress TEXT;
