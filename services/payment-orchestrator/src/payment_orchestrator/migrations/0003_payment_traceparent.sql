-- The W3C traceparent of the merchant's request that created the payment: background work
-- (the expiry sweep) continues that trace (issue 12, one trace per payment).
ALTER TABLE payment ADD COLUMN traceparent text;
