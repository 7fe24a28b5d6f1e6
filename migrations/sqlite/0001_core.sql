-- Build tokens, the autosign allow-list and the event log.
-- Times are unix seconds (INTEGER) everywhere, so comparisons hold.

CREATE TABLE build_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  TEXT    NOT NULL UNIQUE,     -- SHA-256 hex of the value; the value is never stored
    certname    TEXT    NOT NULL,
    alt_names   TEXT    NOT NULL DEFAULT '[]', -- JSON array of "DNS:x" / "IP:y"
    metadata    TEXT,                         -- JSON object, free
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    revoked_at  INTEGER,
    created_by  TEXT    NOT NULL
);
CREATE INDEX build_tokens_certname ON build_tokens (certname);

CREATE TABLE allow_entries (
    pattern     TEXT    PRIMARY KEY,
    alt_names   TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    created_by  TEXT    NOT NULL
);

CREATE TABLE events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    certname         TEXT,
    decision         TEXT,
    reason           TEXT,
    message          TEXT,
    csr_fingerprint  TEXT,
    token_id         INTEGER,
    actor            TEXT    NOT NULL,
    request_id       TEXT,
    details          TEXT
);
CREATE INDEX events_certname ON events (certname, id);
CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_decision ON events (decision, id);

-- Serials for certificates this CA issues: allocated here, never reused.
CREATE TABLE ca_serial (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    next  INTEGER NOT NULL
);
INSERT INTO ca_serial (id, next) VALUES (1, 1);
