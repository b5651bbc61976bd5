-- Transactional outbox: a message is written in the same transaction as the state it
-- announces, and a relay publishes it (publisher confirms) and stamps published_at.
CREATE TABLE outbox_message (
    id            bigserial PRIMARY KEY,
    message_id    uuid NOT NULL UNIQUE,
    exchange      text NOT NULL,
    routing_key   text NOT NULL,
    body          bytea NOT NULL,
    headers       jsonb NOT NULL DEFAULT '{}',
    correlation_id text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_message_pending_idx ON outbox_message (id) WHERE published_at IS NULL;

-- Inbox: the id of every handled message, written in the same transaction as its effect.
CREATE TABLE inbox_message (
    message_id  uuid PRIMARY KEY,
    consumer    text NOT NULL,
    handled_at  timestamptz NOT NULL DEFAULT now()
);
