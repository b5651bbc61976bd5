-- Payment links (issue 16): a merchant's reusable or single-use link to a hosted payment.
-- Either a fixed amount, or the payer chooses within [min_amount, max_amount].
CREATE TABLE payment_link (
    id             uuid PRIMARY KEY,
    merchant_id    uuid NOT NULL REFERENCES merchant (id),
    environment    text NOT NULL CHECK (environment IN ('test', 'live')),
    -- The public part of the link's URL (random, unguessable).
    slug           text NOT NULL UNIQUE,
    amount         bigint CHECK (amount > 0),
    min_amount     bigint CHECK (min_amount > 0),
    max_amount     bigint CHECK (max_amount > 0),
    currency       text NOT NULL,
    country        text NOT NULL,
    description    text,
    -- NULL: reusable without limit; 1: single use.
    usage_limit    integer CHECK (usage_limit > 0),
    expires_at     timestamptz,
    active         boolean NOT NULL DEFAULT true,
    metadata       jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz,
    CHECK (amount IS NULL OR (min_amount IS NULL AND max_amount IS NULL)),
    CHECK (min_amount IS NULL OR max_amount IS NULL OR min_amount <= max_amount)
);
CREATE INDEX payment_link_list_idx
    ON payment_link (merchant_id, environment, created_at DESC, id DESC);

-- Each payment started through a link. `open` holds one of the link's uses while the
-- payment can still complete (so a single-use link is never paid twice); a failed,
-- cancelled or expired payment releases it; a completed one counts, exactly once (the
-- count is of rows, never a counter bumped per event).
CREATE TABLE payment_link_payment (
    -- Also the payment's Idempotency-Key at the orchestrator.
    id         uuid PRIMARY KEY,
    link_id    uuid NOT NULL REFERENCES payment_link (id),
    payment_id uuid UNIQUE,
    amount     bigint NOT NULL CHECK (amount > 0),
    state      text NOT NULL CHECK (state IN ('open', 'completed', 'released')),
    created_at timestamptz NOT NULL DEFAULT now(),
    settled_at timestamptz
);
CREATE INDEX payment_link_payment_use_idx ON payment_link_payment (link_id, state);
