-- Webhook deliveries, written in the same transaction as the event they carry (a
-- transactional outbox): an event is never recorded without its deliveries, and a
-- delivery survives restarts until the receiver takes it.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         INTEGER NOT NULL REFERENCES events (id),
    target           TEXT    NOT NULL,            -- the webhook's name in the config
    idempotency_key  TEXT    NOT NULL UNIQUE,     -- the same on every attempt
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_until    INTEGER NOT NULL DEFAULT 0,  -- a worker holds it until then
    delivered_at     INTEGER,
    last_error       TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE delivered_at IS NULL;

-- Tokens whose expiry was recorded as an event (expired unused).
ALTER TABLE build_tokens ADD COLUMN expiry_recorded INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_at ON events (at);
