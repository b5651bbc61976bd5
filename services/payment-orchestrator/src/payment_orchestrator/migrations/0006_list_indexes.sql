-- A merchant's lists, newest first, one page after a (created_at, id) cursor: each list
-- walks one of these indexes backwards from the cursor (keyset pagination).
CREATE INDEX payment_merchant_created_idx
    ON payment (merchant_id, environment, created_at DESC, id DESC);
-- The most asked filter (completed payments, failed ones...), same order.
CREATE INDEX payment_merchant_status_created_idx
    ON payment (merchant_id, environment, status, created_at DESC, id DESC);
CREATE INDEX refund_merchant_created_idx
    ON refund (merchant_id, environment, created_at DESC, id DESC);
-- One payment's refunds in the same order (replaces the plain payment_id index's role).
CREATE INDEX refund_payment_created_idx ON refund (payment_id, created_at DESC, id DESC);
