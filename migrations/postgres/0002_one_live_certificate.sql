-- One live certificate per name, enforced by the database (not by a check before an
-- insert): a renewal, or a duplicate an operator allows, supersedes the older certificate,
-- which stays valid until it expires or is revoked (revoking a name revokes them all).
ALTER TABLE ca_certificates ADD COLUMN superseded_at BIGINT;
UPDATE ca_certificates SET superseded_at = issued_at
 WHERE revoked_at IS NULL AND cleaned_at IS NULL AND certname <> ''
   AND serial < (SELECT MAX(c2.serial) FROM ca_certificates c2
                  WHERE c2.certname = ca_certificates.certname
                    AND c2.revoked_at IS NULL AND c2.cleaned_at IS NULL);
CREATE UNIQUE INDEX ca_certificates_one_live ON ca_certificates (certname)
 WHERE revoked_at IS NULL AND cleaned_at IS NULL AND superseded_at IS NULL;
