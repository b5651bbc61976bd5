-- API keys with a name, a role, an expiry and a cheap last-use mark (issue 16).
-- Existing keys keep every right (`full`) and never expire.
ALTER TABLE api_key
    ADD COLUMN name         text NOT NULL DEFAULT '',
    ADD COLUMN role         text NOT NULL DEFAULT 'full'
        CHECK (role IN ('full', 'payments_write', 'read_only')),
    -- The first eight characters, shown in lists beside last4 (90 bits stay secret).
    ADD COLUMN prefix       text,
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN last_used_at timestamptz,
    -- The key that replaced this one by rotation (this one then expires after a grace).
    ADD COLUMN rotated_to   uuid REFERENCES api_key (id);
CREATE INDEX api_key_list_idx ON api_key (merchant_id, environment, created_at DESC, id DESC);

-- The audit log: who (an API key, or the operator CLI), in which environment, under which
-- request id. Merchant-wide actions (a merchant's creation) have no environment.
ALTER TABLE audit_log
    ADD COLUMN actor_key_id uuid,
    ADD COLUMN environment  text CHECK (environment IN ('test', 'live')),
    ADD COLUMN request_id   text;
CREATE INDEX audit_log_merchant_idx ON audit_log (merchant_id, id DESC);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER audit_log_immutable BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_log_not_truncated BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

-- Fixed-window request counters shared by every gateway instance: one row per bucket
-- (key and route class, or client IP) and window, bumped in one upsert. Unlogged: a crash
-- forgets at most one window of counts, which only lets a client start afresh.
CREATE UNLOGGED TABLE rate_limit_counter (
    bucket       text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_counter_window_idx ON rate_limit_counter (window_start);
