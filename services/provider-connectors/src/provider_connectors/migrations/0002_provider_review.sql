-- Live attempts the PSP never settled: polling stopped (a day after expiry) without a final
-- answer, so an operator decides (`fluxpay-admin provider-reviews` / `resolve-review`).
-- The resolution reaches the orchestrator as a normal provider update (outbox).
CREATE TABLE provider_review (
    payment_id        uuid PRIMARY KEY REFERENCES provider_attempt (payment_id),
    provider          text NOT NULL,
    merchant_id       uuid NOT NULL,
    reason            text NOT NULL,
    last_status       text NOT NULL,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    -- 'completed' / 'failed' from an operator, or the PSP's own late word.
    resolution        text CHECK (resolution IN ('completed', 'failed', 'cancelled')),
    resolution_reason text,
    resolved_by       text,
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
CREATE INDEX provider_review_open_idx ON provider_review (queued_at) WHERE resolved_at IS NULL;
