-- Rows handed to the relay in-process once their transaction commits ("publish right after
-- commit"): the relay's sweep leaves them alone for a grace period and takes them only if
-- the in-process publish did not happen (process died, broker down, queue full).
ALTER TABLE outbox_message ADD COLUMN IF NOT EXISTS direct boolean NOT NULL DEFAULT false;
