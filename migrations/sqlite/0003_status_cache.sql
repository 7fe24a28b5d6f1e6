-- The certificate_status object of each certificate, computed once at issue time, so
-- listing 100,000 certificates does not re-parse and re-hash every one of them.
ALTER TABLE ca_certificates ADD COLUMN status_json TEXT;
