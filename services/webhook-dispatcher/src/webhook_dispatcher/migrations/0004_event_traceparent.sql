-- The trace of the payment the event belongs to (W3C traceparent, as the event message
-- carried it): every webhook POST of the event, retries included, is a span of that trace.
ALTER TABLE event ADD COLUMN traceparent text;
