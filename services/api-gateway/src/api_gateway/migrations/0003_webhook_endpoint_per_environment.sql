-- Webhook endpoints and secrets per environment, as Stripe's test and live endpoints: a test
-- key never reads or changes the URL or the secrets that live events use.
CREATE TABLE webhook_endpoint (
    merchant_id uuid NOT NULL REFERENCES merchant (id),
    environment text NOT NULL CHECK (environment IN ('test', 'live')),
    url         text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, environment)
);

-- Every signing secret of an endpoint, sealed (Fernet): the dispatcher must read them back.
-- The current one has no expiry; each rotation gives the previous one its own 24 h, so two
-- rotations in a row keep every earlier secret signing until its own overlap ends.
CREATE TABLE webhook_secret (
    id          bigserial PRIMARY KEY,
    merchant_id uuid NOT NULL,
    environment text NOT NULL,
    sealed      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    FOREIGN KEY (merchant_id, environment) REFERENCES webhook_endpoint (merchant_id, environment)
);
CREATE UNIQUE INDEX webhook_secret_current_idx
    ON webhook_secret (merchant_id, environment) WHERE expires_at IS NULL;
CREATE INDEX webhook_secret_endpoint_idx ON webhook_secret (merchant_id, environment, id DESC);

-- Credentials in a URL (user:password@) are no longer stored, here nor in the audit log.
-- (The dispatcher's copy of such an endpoint is disabled with a reason the merchant reads.)
UPDATE merchant
SET webhook_url = regexp_replace(webhook_url, '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\1')
WHERE webhook_url ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@';
UPDATE audit_log
SET details = jsonb_set(details, '{url}', to_jsonb(
        regexp_replace(details ->> 'url', '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\1')))
WHERE details ->> 'url' ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@';
-- The outbox keeps what it published: the endpoint changes' bodies (JSON) carry the URL too.
UPDATE outbox_message
SET body = convert_to(regexp_replace(convert_from(body, 'UTF8'),
        '("webhook_url":"[A-Za-z][A-Za-z0-9+.-]*://)[^/?#"]*@', '\1', 'g'), 'UTF8')
WHERE routing_key = 'merchant.endpoint_changed'
  AND convert_from(body, 'UTF8') ~ '"webhook_url":"[A-Za-z][A-Za-z0-9+.-]*://[^/?#"]*@';

-- An existing merchant's one endpoint serves both environments, with the same secrets,
-- until it changes or rotates one of them.
INSERT INTO webhook_endpoint (merchant_id, environment, url)
SELECT m.id, env.name, m.webhook_url
FROM merchant m CROSS JOIN (VALUES ('test'), ('live')) AS env (name);
INSERT INTO webhook_secret (merchant_id, environment, sealed, expires_at)
SELECT m.id, env.name, s.sealed,
       CASE WHEN s.i = 1 THEN NULL ELSE coalesce(m.secret_overlap_until, now()) END
FROM merchant m
CROSS JOIN (VALUES ('test'), ('live')) AS env (name)
CROSS JOIN LATERAL unnest(m.webhook_secrets_sealed) WITH ORDINALITY AS s (sealed, i)
ORDER BY s.i DESC;

ALTER TABLE merchant DROP COLUMN webhook_url;
ALTER TABLE merchant DROP COLUMN webhook_secrets_sealed;
ALTER TABLE merchant DROP COLUMN secret_overlap_until;
