-- Merchant webhook endpoints, replicated from the gateway's MerchantEndpointChanged events.
-- Secrets stay sealed (Fernet under the platform secrets key); they are opened only to sign.
CREATE TABLE endpoint (
    merchant_id          uuid PRIMARY KEY,
    url                  text,
    secrets_sealed       text[] NOT NULL DEFAULT '{}',   -- newest first
    secret_overlap_until timestamptz,                    -- older secrets sign until then
    changed_at           timestamptz NOT NULL,           -- occurred_at of the applied change
    disabled_at          timestamptz,
    disabled_reason      text,                           -- shown to the merchant
    failing_since        timestamptz,                    -- start of an unbroken failure streak
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- One row per domain event: the WebhookEvent body, built once, sent byte for byte.
CREATE TABLE event (
    id          text PRIMARY KEY,                        -- the domain event's message_id
    merchant_id uuid NOT NULL,
    environment text NOT NULL CHECK (environment IN ('test', 'live')),
    type        text NOT NULL,
    payment_id  uuid NOT NULL,
    refund_id   uuid,
    body        bytea NOT NULL,
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_merchant_idx ON event (merchant_id, environment, created_at DESC);
CREATE INDEX event_payment_idx ON event (payment_id);

-- A delivery of one event to one URL (a replay is a new delivery of the same event).
-- callback_url is the payment's own override; when NULL the merchant's endpoint URL is
-- resolved at send time, so a retry follows an endpoint the merchant has since fixed.
CREATE TABLE delivery (
    id               uuid PRIMARY KEY,
    event_id         text NOT NULL REFERENCES event (id),
    merchant_id      uuid NOT NULL,
    environment      text NOT NULL,
    callback_url     text,
    status           text NOT NULL CHECK (status IN
                         ('pending', 'succeeded', 'dead', 'no_endpoint', 'endpoint_disabled')),
    attempt_count    integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,                        -- set while pending
    locked_until     timestamptz,                        -- a dispatcher is sending it
    claim_token      uuid,                               -- fences a late writer after a lease
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz                         -- succeeded, dead or skipped
);
CREATE INDEX delivery_due_idx ON delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX delivery_merchant_pending_idx ON delivery (merchant_id) WHERE status = 'pending';
CREATE INDEX delivery_event_idx ON delivery (event_id);
CREATE INDEX delivery_failed_idx ON delivery (merchant_id, created_at)
    WHERE status IN ('dead', 'endpoint_disabled');

-- Every attempt, kept for the merchant's delivery log.
CREATE TABLE delivery_attempt (
    id               bigserial PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES delivery (id),
    attempt_number   integer NOT NULL,
    url              text,
    started_at       timestamptz NOT NULL,
    duration_ms      integer NOT NULL,
    status_code      integer,
    error            text,
    response_excerpt text,                               -- first 1 KiB of the response body
    succeeded        boolean NOT NULL
);
CREATE INDEX delivery_attempt_delivery_idx ON delivery_attempt (delivery_id, attempt_number);
