-- The built-in CA's state: pending requests, issued certificates (kept after a clean, for
-- the CRL and the inventory), and the newest CRL.

CREATE TABLE ca_requests (
    certname          TEXT    PRIMARY KEY,
    csr_pem           TEXT    NOT NULL,
    fingerprint       TEXT    NOT NULL,
    received_at       INTEGER NOT NULL,
    reason            TEXT,               -- why autosigning left it pending (a reason code)
    message           TEXT
);

CREATE TABLE ca_certificates (
    serial            INTEGER PRIMARY KEY,
    certname          TEXT    NOT NULL,
    cert_pem          TEXT    NOT NULL,
    fingerprint       TEXT    NOT NULL,
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    issued_at         INTEGER NOT NULL,
    revoked_at        INTEGER,
    revocation_reason INTEGER,
    cleaned_at        INTEGER              -- removed from the CA's listing; still on the CRL if revoked
);
CREATE INDEX ca_certificates_certname ON ca_certificates (certname, serial);
CREATE INDEX ca_certificates_revoked ON ca_certificates (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE ca_crl (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    number      INTEGER NOT NULL,          -- the last number handed out
    crl_der     BLOB,                      -- the newest CRL built
    crl_number  INTEGER NOT NULL DEFAULT 0,-- the number of crl_der
    updated_at  INTEGER
);
INSERT INTO ca_crl (id, number) VALUES (1, 0);
