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

-- Payment types and recurring dues (seed 001): what a merchant's payers owe, and when.
CREATE TABLE payment_type (
    id           uuid PRIMARY KEY,
    merchant_id  uuid NOT NULL REFERENCES merchant (id),
    environment  text NOT NULL CHECK (environment IN ('test', 'live')),
    name         text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     text NOT NULL,
    country      text NOT NULL,
    -- NULL: one-off, due on `due_date`.
    recurrence   text CHECK (recurrence IN ('monthly', 'weekly')),
    -- Monthly: day of the month (1-28); weekly: ISO day of the week (1 = Monday).
    due_day      integer CHECK (due_day BETWEEN 1 AND 28),
    due_date     date,
    -- `link`: a hosted payment whose page is sent in the webhook; `push`: a direct push to
    -- the payer's phone on the due date.
    delivery     text NOT NULL CHECK (delivery IN ('link', 'push')),
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((recurrence IS NULL) = (due_date IS NOT NULL)),
    CHECK ((recurrence IS NULL) = (due_day IS NULL))
);
CREATE INDEX payment_type_list_idx
    ON payment_type (merchant_id, environment, created_at DESC, id DESC);

CREATE TABLE payer (
    id              uuid PRIMARY KEY,
    payment_type_id uuid NOT NULL REFERENCES payment_type (id),
    name            text NOT NULL,
    phone           text NOT NULL,
    operator        text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_type_id, phone)
);

-- One due per payer and period, whatever runs the scheduler (twice, or again after a
-- crash): the unique constraint is the guarantee, the advisory lock only saves work.
-- `issuing`: recorded, its payment not yet confirmed by the orchestrator (a run that
-- stopped there is finished by the next, with the same payment: same reference and key).
CREATE TABLE due (
    id              uuid PRIMARY KEY,
    payer_id        uuid NOT NULL REFERENCES payer (id),
    payment_type_id uuid NOT NULL REFERENCES payment_type (id),
    merchant_id     uuid NOT NULL,
    environment     text NOT NULL,
    period          text NOT NULL,
    due_date        date NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL,
    status          text NOT NULL
        CHECK (status IN ('issuing', 'issued', 'paid', 'overdue', 'cancelled')),
    payment_id      uuid,
    checkout_url    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    issued_at       timestamptz,
    paid_at         timestamptz,
    UNIQUE (payer_id, period)
);
CREATE INDEX due_list_idx ON due (merchant_id, environment, created_at DESC, id DESC);
CREATE INDEX due_unfinished_idx ON due (status) WHERE status IN ('issuing', 'issued');
