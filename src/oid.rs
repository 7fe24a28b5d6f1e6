//! Every object identifier the service reads or writes, in one place, so a rule that
//! names an OID (pp_cli_auth, the authorization arc) means the same thing on every path.

// Names and attributes.
pub const COMMON_NAME: &str = "2.5.4.3";
pub const CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";
pub const EXTENSION_REQUEST: &str = "1.2.840.113549.1.9.14";
/// Microsoft's extensionRequest, which some tools still write.
pub const MS_EXTENSION_REQUEST: &str = "1.3.6.1.4.1.311.2.1.14";

// X.509 extensions.
pub const SUBJECT_KEY_ID: &str = "2.5.29.14";
pub const KEY_USAGE: &str = "2.5.29.15";
pub const SUBJECT_ALT_NAME: &str = "2.5.29.17";
pub const BASIC_CONSTRAINTS: &str = "2.5.29.19";
pub const CRL_NUMBER: &str = "2.5.29.20";
pub const CRL_REASON: &str = "2.5.29.21";
pub const AUTHORITY_KEY_ID: &str = "2.5.29.35";
pub const EXT_KEY_USAGE: &str = "2.5.29.37";
pub const NS_COMMENT: &str = "2.16.840.1.113730.1.13";
pub const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
pub const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

// Keys and signatures.
pub const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
pub const RSA_PSS: &str = "1.2.840.113549.1.1.10";
pub const MD5_RSA: &str = "1.2.840.113549.1.1.4";
pub const SHA1_RSA: &str = "1.2.840.113549.1.1.5";
pub const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
pub const SHA384_RSA: &str = "1.2.840.113549.1.1.12";
pub const SHA512_RSA: &str = "1.2.840.113549.1.1.13";
pub const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
pub const P256: &str = "1.2.840.10045.3.1.7";
pub const P384: &str = "1.3.132.0.34";
pub const P521: &str = "1.3.132.0.35";
pub const ED25519: &str = "1.3.101.112";
pub const ED448: &str = "1.3.101.113";
pub const ECDSA_SHA1: &str = "1.2.840.10045.4.1";
pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
pub const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
pub const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";

// Puppet's arcs (puppet/ssl/oids.rb).
/// Registered extensions (pp_uuid, pp_role, ...): copied into certificates.
pub const PP_REG_ARC: &str = "1.3.6.1.4.1.34380.1.1";
/// Private extensions a site defines: copied into certificates.
pub const PP_PRIV_ARC: &str = "1.3.6.1.4.1.34380.1.2";
/// Authorization extensions: they grant rights, so each path says which it allows.
pub const PP_AUTH_ARC: &str = "1.3.6.1.4.1.34380.1.3";
pub const PP_AUTHORIZATION: &str = "1.3.6.1.4.1.34380.1.3.1";
pub const PP_AUTH_ROLE: &str = "1.3.6.1.4.1.34380.1.3.13";
/// pp_cli_auth makes a certificate a CA administrator: never issued from a request.
pub const PP_CLI_AUTH: &str = "1.3.6.1.4.1.34380.1.3.39";

/// Whether `oid` lies strictly under `arc`.
pub fn in_arc(oid: &str, arc: &str) -> bool {
    oid.strip_prefix(arc)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Puppet's short name of an authorization extension, as certificate_status lists it.
pub fn auth_extension_name(oid: &str) -> &str {
    match oid {
        PP_CLI_AUTH => "pp_cli_auth",
        PP_AUTHORIZATION => "pp_authorization",
        PP_AUTH_ROLE => "pp_auth_role",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_hold_only_what_lies_strictly_under_them() {
        assert!(in_arc(PP_CLI_AUTH, PP_AUTH_ARC));
        assert!(!in_arc(PP_AUTH_ARC, PP_AUTH_ARC));
        assert!(!in_arc("1.3.6.1.4.1.34380.1.30", PP_AUTH_ARC));
        assert!(!in_arc("1.3.6.1.4.1.34380.1.1.1", PP_AUTH_ARC));
    }
}
