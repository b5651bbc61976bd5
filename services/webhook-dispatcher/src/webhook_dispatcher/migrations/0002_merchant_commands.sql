-- Merchant commands (gateway request/reply): the event log, replays and test events.

-- A test event (POST /webhooks/test) is stored and delivered like any other; the flag shows
-- it as a test in the merchant's log and keeps it out of "replay every failed event".
ALTER TABLE event ADD COLUMN test boolean NOT NULL DEFAULT false;

-- The merchant command (its request message id) that created a replay delivery: a command
-- redelivered after its commit is answered from what the first run did.
ALTER TABLE delivery ADD COLUMN requested_by uuid;
CREATE INDEX delivery_requested_by_idx ON delivery (requested_by) WHERE requested_by IS NOT NULL;

-- An event's latest delivery (its status in the list) and its delivery log, newest first.
DROP INDEX delivery_event_idx;
CREATE INDEX delivery_event_idx ON delivery (event_id, created_at DESC, id DESC);

-- The merchant's event list, newest first, paginated by (created_at, id), optionally by type.
DROP INDEX event_merchant_idx;
CREATE INDEX event_merchant_idx ON event (merchant_id, environment, created_at DESC, id DESC);
CREATE INDEX event_merchant_type_idx
    ON event (merchant_id, environment, type, created_at DESC, id DESC);
