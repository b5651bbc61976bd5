-- Endpoints per environment, as Stripe's test and live endpoints: a test key never reads or
-- changes the URL or the secrets that live events use. Each secret carries its own expiry,
-- so two rotations in a row keep every previous secret signing for its whole 24 h overlap.
ALTER TABLE endpoint DROP CONSTRAINT endpoint_pkey;
ALTER TABLE endpoint ADD COLUMN environment text NOT NULL DEFAULT 'test'
    CHECK (environment IN ('test', 'live'));
-- One per entry of secrets_sealed: NULL for the current secret, else until when it signs.
ALTER TABLE endpoint ADD COLUMN secrets_expire_at timestamptz[] NOT NULL DEFAULT '{}';
UPDATE endpoint SET secrets_expire_at = ARRAY(
    SELECT CASE WHEN i = 1 THEN NULL ELSE coalesce(secret_overlap_until, now()) END
    FROM generate_subscripts(secrets_sealed, 1) AS i ORDER BY i
);

-- An endpoint replicated before this change served both environments: it still does, as
-- two rows, until the merchant changes one of them.
INSERT INTO endpoint (merchant_id, environment, url, secrets_sealed, secrets_expire_at,
                      changed_at, disabled_at, disabled_reason, failing_since)
SELECT merchant_id, 'live', url, secrets_sealed, secrets_expire_at,
       changed_at, disabled_at, disabled_reason, failing_since
FROM endpoint;
ALTER TABLE endpoint ALTER COLUMN environment DROP DEFAULT;
ALTER TABLE endpoint ADD PRIMARY KEY (merchant_id, environment);
ALTER TABLE endpoint DROP COLUMN secret_overlap_until;

-- Credentials in a URL (user:password@) are no longer stored: removed here, and the
-- endpoint disabled with a reason the merchant reads, so it sets a URL without them
-- (which re-enables it) instead of failing without knowing why.
UPDATE endpoint
SET url = regexp_replace(url, '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\1'),
    disabled_at = coalesce(disabled_at, now()),
    disabled_reason = 'the URL contained credentials (user:password@), which FluxPay no'
        || ' longer stores; set the URL again without them',
    updated_at = now()
WHERE url ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@';
UPDATE delivery_attempt
SET url = regexp_replace(url, '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\1')
WHERE url ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@';

-- Test events used to reach any address, and the first KiB of the answer was shown to the
-- merchant: answers kept from test deliveries may be internal services' and are dropped.
-- Excerpts are now at most 256 bytes, and only from destinations that passed the guard.
UPDATE delivery_attempt a SET response_excerpt = NULL
FROM delivery d
WHERE d.id = a.delivery_id AND d.environment = 'test' AND a.response_excerpt IS NOT NULL;
UPDATE delivery_attempt SET response_excerpt = left(response_excerpt, 256)
WHERE length(response_excerpt) > 256;
