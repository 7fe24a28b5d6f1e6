-- The operator's page: operator accounts (argon2id PHC strings), their sessions (by the
-- SHA-256 of the cookie value, never the value), and failed sign-in counters per account
-- and per address. Indexes that keep the page's queries fast at fleet size.

CREATE TABLE operators (
    name           TEXT    PRIMARY KEY,
    password_hash  TEXT    NOT NULL,     -- argon2id, PHC string format
    created_at     INTEGER NOT NULL,
    created_by     TEXT    NOT NULL
);

CREATE TABLE operator_sessions (
    id_hash     TEXT    PRIMARY KEY,     -- SHA-256 hex of the cookie value
    operator    TEXT    NOT NULL,
    via         TEXT    NOT NULL,        -- 'password' or 'certificate'
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator);

CREATE TABLE login_failures (
    key           TEXT    PRIMARY KEY,   -- 'account:NAME' or 'address:IP'
    failures      INTEGER NOT NULL,
    last_failure  INTEGER NOT NULL
);

CREATE INDEX events_decision_at ON events (decision, at);
CREATE INDEX events_kind_at ON events (kind, at);
CREATE INDEX events_reason ON events (reason, id) WHERE reason IS NOT NULL;
CREATE INDEX events_certname_decision ON events (certname, decision, id);
CREATE INDEX ca_certificates_not_after ON ca_certificates (not_after) WHERE cleaned_at IS NULL;
