-- The ledger's books: a chart of accounts per environment and currency, journal entries and
-- their postings.
--
-- Sign convention: posting.amount_minor > 0 is a DEBIT, < 0 a CREDIT, never 0. The postings
-- of an entry sum to zero (checked at commit by a deferred constraint trigger). An account's
-- balance is the sum of its postings: debit-normal accounts (psp_clearing, psp_fee_expense,
-- refunds) read that sum as is, credit-normal accounts (merchant_available,
-- platform_fee_revenue) read its negation; account.normal_side says which.
--
-- Balances are computed from postings, never stored: a stored balance on
-- platform_fee_revenue or a psp_clearing account would be one row that every payment locks,
-- serializing all booking; a sum cannot drift from the postings it sums.
--
-- Accounts, entries and postings are immutable: a mistake is corrected by a new entry.

CREATE TABLE account (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment  text NOT NULL CHECK (environment IN ('test', 'live')),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- 'psp_clearing:<provider>', 'merchant_available:<merchant_id>', 'platform_fee_revenue',
    -- 'psp_fee_expense', 'refunds'
    code         text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('psp_clearing', 'merchant_available',
                                              'platform_fee_revenue', 'psp_fee_expense',
                                              'refunds')),
    merchant_id  uuid,
    provider     text,
    normal_side  text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (environment, currency, code),
    CHECK ((kind = 'merchant_available') = (merchant_id IS NOT NULL)),
    CHECK ((kind = 'psp_clearing') = (provider IS NOT NULL)),
    CHECK ((normal_side = 'credit') = (kind IN ('merchant_available', 'platform_fee_revenue')))
);
CREATE INDEX account_merchant_idx ON account (merchant_id, environment)
    WHERE merchant_id IS NOT NULL;

CREATE TABLE journal_entry (
    id            uuid PRIMARY KEY,
    -- The domain event that caused the entry: one entry per event.
    event_id      uuid NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('payment', 'refund')),
    payment_id    uuid NOT NULL,
    refund_id     uuid,
    merchant_id   uuid NOT NULL,
    environment   text NOT NULL CHECK (environment IN ('test', 'live')),
    currency      text NOT NULL,
    provider      text NOT NULL,
    -- The merchant's reference of the payment or refund, for statements.
    reference     text NOT NULL,
    -- A PSP success booked after the payment had expired or been cancelled.
    late_success  boolean NOT NULL DEFAULT false,
    -- When the money moved, per the event; reconciliation files the entry under its day.
    effective_at  timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'refund') = (refund_id IS NOT NULL))
);
-- Money moves once per payment and once per refund, whatever event reports it.
CREATE UNIQUE INDEX journal_entry_payment_once ON journal_entry (payment_id)
    WHERE kind = 'payment';
CREATE UNIQUE INDEX journal_entry_refund_once ON journal_entry (refund_id)
    WHERE kind = 'refund';
CREATE INDEX journal_entry_payment_idx ON journal_entry (payment_id);
CREATE INDEX journal_entry_statement_idx
    ON journal_entry (merchant_id, environment, created_at DESC, id DESC);
CREATE INDEX journal_entry_effective_idx ON journal_entry (effective_at, provider);

CREATE TABLE posting (
    id            bigserial PRIMARY KEY,
    entry_id      uuid NOT NULL REFERENCES journal_entry (id),
    account_id    bigint NOT NULL REFERENCES account (id),
    -- Debit > 0, credit < 0.
    amount_minor  bigint NOT NULL CHECK (amount_minor <> 0)
);
CREATE INDEX posting_entry_idx ON posting (entry_id);
CREATE INDEX posting_account_idx ON posting (account_id) INCLUDE (amount_minor);

-- Immutability: the books are append-only.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only: book a correcting entry instead',
        TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TRIGGER posting_immutable BEFORE UPDATE OR DELETE ON posting
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER posting_not_truncated BEFORE TRUNCATE ON posting
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER journal_entry_immutable BEFORE UPDATE OR DELETE ON journal_entry
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER journal_entry_not_truncated BEFORE TRUNCATE ON journal_entry
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER account_immutable BEFORE UPDATE OR DELETE ON account
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER account_not_truncated BEFORE TRUNCATE ON account
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Double entry, checked at commit (deferred), once every posting of the entry is written:
-- at least two postings, summing to zero, all in the entry's environment and currency, and
-- no other merchant's balance touched. `SET search_path FROM CURRENT` pins the schema the
-- migration runs in, so the check works from any session's search_path.
CREATE FUNCTION check_entry_balanced() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    target      uuid;
    legs        bigint;
    total       numeric;
    same_books  boolean;
BEGIN
    IF TG_TABLE_NAME = 'posting' THEN
        target := NEW.entry_id;
    ELSE
        target := NEW.id;
    END IF;
    SELECT count(p.id),
           coalesce(sum(p.amount_minor), 0),
           coalesce(bool_and(a.environment = e.environment AND a.currency = e.currency
                             AND (a.merchant_id IS NULL OR a.merchant_id = e.merchant_id)),
                    true)
      INTO legs, total, same_books
      FROM journal_entry e
      LEFT JOIN posting p ON p.entry_id = e.id
      LEFT JOIN account a ON a.id = p.account_id
     WHERE e.id = target;
    IF legs < 2 OR total <> 0 OR NOT same_books THEN
        RAISE EXCEPTION 'journal entry % does not balance (% postings summing to %, same books: %)',
            target, legs, total, same_books
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER posting_balanced AFTER INSERT ON posting
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_entry_balanced();
CREATE CONSTRAINT TRIGGER journal_entry_balanced AFTER INSERT ON journal_entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_entry_balanced();
