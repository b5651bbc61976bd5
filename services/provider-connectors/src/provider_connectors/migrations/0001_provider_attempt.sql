-- One payment at one provider. Keys the PSP needs for idempotency (X-Reference-Id,
-- idempotency keys) are written in `data` before the first call to the PSP.
CREATE TABLE provider_attempt (
    payment_id    uuid PRIMARY KEY,
    provider      text NOT NULL,
    merchant_id   uuid NOT NULL,
    environment   text NOT NULL CHECK (environment IN ('test', 'live')),
    reference     text NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      text NOT NULL,
    operator      text,
    phone         text,
    psp_reference text,
    status        text NOT NULL CHECK (status IN ('pending', 'processing', 'awaiting_otp',
                      'awaiting_payment', 'completed', 'failed', 'cancelled')),
    next_poll_at  timestamptz,
    expires_at    timestamptz,
    otp_attempts  integer NOT NULL DEFAULT 0,
    -- Bumped on every write: a status fetched from a stale snapshot is fetched again.
    version       bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    data          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX provider_attempt_due_idx ON provider_attempt (provider, next_poll_at)
    WHERE next_poll_at IS NOT NULL;
CREATE INDEX provider_attempt_psp_reference_idx ON provider_attempt (provider, psp_reference)
    WHERE psp_reference IS NOT NULL;
CREATE INDEX provider_attempt_reference_idx ON provider_attempt (provider, reference);

-- One refund of an attempt at its provider; the refund id is the PSP idempotency key.
CREATE TABLE provider_refund (
    refund_id     uuid PRIMARY KEY,
    payment_id    uuid NOT NULL REFERENCES provider_attempt (payment_id),
    provider      text NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      text NOT NULL,
    psp_reference text,
    status        text NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    next_poll_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    data          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX provider_refund_due_idx ON provider_refund (provider, next_poll_at)
    WHERE next_poll_at IS NOT NULL;
CREATE INDEX provider_refund_payment_idx ON provider_refund (payment_id);

-- Inbound PSP callbacks, recorded once: a redelivered notification has no second effect.
CREATE TABLE provider_events (
    id          bigserial PRIMARY KEY,
    provider    text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    payment_id  uuid,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, event_id)
);
