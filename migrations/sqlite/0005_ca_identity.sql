-- Which CA this state belongs to (SHA-256 of its certificate): a process whose CA files
-- differ refuses to start instead of signing with another key.
CREATE TABLE ca_identity (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint  TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    claimed_at   INTEGER NOT NULL
);
