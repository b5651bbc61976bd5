-- Refund holds: the amount of a refund accepted by the orchestrator and not yet booked,
-- held on the merchant's available balance so concurrent refunds on different payments
-- cannot together spend more than the merchant has (issue 11, item 3).
--
-- A hold is placed by a `ledger.reserve_refund` request (idempotent by refund id) in a
-- transaction serialized per (merchant, environment, currency) by an advisory lock; it is
-- consumed in the transaction that books the refund's entry (collect.refund.completed) and
-- released by collect.refund.failed or by the orchestrator when it refuses the refund after
-- all. Available = the merchant_available account's balance minus the held amounts.
CREATE TABLE refund_hold (
    refund_id     uuid PRIMARY KEY,
    payment_id    uuid NOT NULL,
    merchant_id   uuid NOT NULL,
    environment   text NOT NULL CHECK (environment IN ('test', 'live')),
    currency      text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    status        text NOT NULL DEFAULT 'held'
                  CHECK (status IN ('held', 'consumed', 'released')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    settled_at    timestamptz,
    CHECK ((status = 'held') = (settled_at IS NULL))
);
CREATE INDEX refund_hold_active_idx ON refund_hold (merchant_id, environment, currency)
    INCLUDE (amount_minor) WHERE status = 'held';
