-- Payments and refunds, owned by the orchestrator. Amounts in major units (integers), as
-- the Collect API speaks; the minor amount is always amount * 100.
CREATE TABLE payment (
    id                   uuid PRIMARY KEY,
    merchant_id          uuid NOT NULL,
    environment          text NOT NULL CHECK (environment IN ('test', 'live')),
    reference            text NOT NULL,
    idempotency_key      text NOT NULL,
    status               text NOT NULL,
    amount               bigint NOT NULL CHECK (amount > 0),
    currency             text NOT NULL,
    country              text NOT NULL,
    mode                 text NOT NULL CHECK (mode IN ('direct', 'hosted')),
    operator             text,
    customer             jsonb,
    description          text,
    callback_url         text,
    external_merchant_id text,
    metadata             jsonb NOT NULL DEFAULT '{}',
    provider             text,
    psp_reference        text,
    failure_code         text,
    failure_message      text,
    fee_minor            bigint,
    refunded_amount      bigint NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    late_success         boolean NOT NULL DEFAULT false,
    otp_attempts_left    integer,
    expires_at           timestamptz NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    completed_at         timestamptz,
    version              integer NOT NULL DEFAULT 1,
    -- A merchant's reference names one payment per environment.
    UNIQUE (merchant_id, environment, reference),
    CHECK (refunded_amount <= amount)
);
-- The expiry sweep reads open payments by deadline.
CREATE INDEX payment_open_expiry_idx ON payment (expires_at)
    WHERE status IN ('pending', 'processing', 'awaiting_otp', 'awaiting_payment');
CREATE INDEX payment_provider_day_idx ON payment (provider, completed_at);

-- Every status change, for support and audits.
CREATE TABLE payment_transition (
    id          bigserial PRIMARY KEY,
    payment_id  uuid NOT NULL REFERENCES payment (id),
    from_status text,
    to_status   text NOT NULL,
    reason      text NOT NULL,
    message_id  uuid,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_transition_payment_idx ON payment_transition (payment_id);

CREATE TABLE refund (
    id              uuid PRIMARY KEY,
    payment_id      uuid NOT NULL REFERENCES payment (id),
    merchant_id     uuid NOT NULL,
    environment     text NOT NULL,
    idempotency_key text,
    status          text NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL,
    reason          text,
    metadata        jsonb NOT NULL DEFAULT '{}',
    psp_reference   text,
    failure_code    text,
    failure_message text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    UNIQUE (payment_id, idempotency_key)
);
CREATE INDEX refund_payment_idx ON refund (payment_id);
