-- Merchants and their credentials. API keys are stored as SHA-256 digests only; the
-- webhook secret is sealed (Fernet) because the dispatcher must read it back to sign.
CREATE TABLE merchant (
    id                     uuid PRIMARY KEY,
    name                   text NOT NULL,
    webhook_url            text,
    webhook_secrets_sealed text[] NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_key (
    id          uuid PRIMARY KEY,
    merchant_id uuid NOT NULL REFERENCES merchant (id),
    environment text NOT NULL CHECK (environment IN ('test', 'live')),
    key_digest  text NOT NULL UNIQUE,
    -- The last four characters, so an operator can tell keys apart without the secret.
    last4       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_key_merchant_idx ON api_key (merchant_id);

-- Idempotency-Key records: 24 h per merchant and environment.
CREATE TABLE idempotency_record (
    merchant_id     uuid NOT NULL,
    environment     text NOT NULL,
    key             text NOT NULL,
    request_digest  text NOT NULL,
    state           text NOT NULL CHECK (state IN ('in_flight', 'done')),
    response_status integer,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    locked_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, environment, key)
);
CREATE INDEX idempotency_record_created_idx ON idempotency_record (created_at);

-- Who did what, for privileged actions (operator CLI, key changes).
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    actor       text NOT NULL,
    action      text NOT NULL,
    merchant_id uuid,
    details     jsonb NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);

-- Hosted checkout: which merchant a payment's public page belongs to.
CREATE TABLE checkout_session (
    payment_id  uuid PRIMARY KEY,
    merchant_id uuid NOT NULL,
    environment text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
