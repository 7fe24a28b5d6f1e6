//! Decisions: approved or rejected, always with a machine-readable reason and a sentence
//! an operator understands.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approved,
    Rejected,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Rejected => "rejected",
        }
    }
}

/// Every reason a decision can carry. The code strings are an interface: events, the
/// JSON API, metrics and the policy executable's stderr all show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Approved by a live build token bound to this certname.
    Token,
    /// Approved by an allow-list entry.
    AllowList,
    CsrTooLarge,
    MalformedCsr,
    WrongPemLabel,
    UnsupportedAlgorithm,
    BadSignature,
    InvalidCertname,
    CertnameMismatch,
    InvalidSubject,
    ForbiddenExtension,
    UnknownCriticalExtension,
    ForbiddenAltName,
    AltNameNotAllowed,
    /// A name the service itself, its clients or its administrators are known by.
    ReservedName,
    TokenUnknown,
    TokenWrongHost,
    TokenUsed,
    TokenExpired,
    TokenRevoked,
    NotAuthorized,
}

impl Reason {
    pub const ALL: [Reason; 21] = [
        Reason::Token,
        Reason::AllowList,
        Reason::CsrTooLarge,
        Reason::MalformedCsr,
        Reason::WrongPemLabel,
        Reason::UnsupportedAlgorithm,
        Reason::BadSignature,
        Reason::InvalidCertname,
        Reason::CertnameMismatch,
        Reason::InvalidSubject,
        Reason::ForbiddenExtension,
        Reason::UnknownCriticalExtension,
        Reason::ForbiddenAltName,
        Reason::AltNameNotAllowed,
        Reason::ReservedName,
        Reason::TokenUnknown,
        Reason::TokenWrongHost,
        Reason::TokenUsed,
        Reason::TokenExpired,
        Reason::TokenRevoked,
        Reason::NotAuthorized,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::Token => "token",
            Reason::AllowList => "allow_list",
            Reason::CsrTooLarge => "csr_too_large",
            Reason::MalformedCsr => "malformed_csr",
            Reason::WrongPemLabel => "wrong_pem_label",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::BadSignature => "bad_signature",
            Reason::InvalidCertname => "invalid_certname",
            Reason::CertnameMismatch => "certname_mismatch",
            Reason::InvalidSubject => "invalid_subject",
            Reason::ForbiddenExtension => "forbidden_extension",
            Reason::UnknownCriticalExtension => "unknown_critical_extension",
            Reason::ForbiddenAltName => "forbidden_alt_name",
            Reason::AltNameNotAllowed => "alt_name_not_allowed",
            Reason::ReservedName => "reserved_name",
            Reason::TokenUnknown => "token_unknown",
            Reason::TokenWrongHost => "token_wrong_host",
            Reason::TokenUsed => "token_used",
            Reason::TokenExpired => "token_expired",
            Reason::TokenRevoked => "token_revoked",
            Reason::NotAuthorized => "not_authorized",
        }
    }

    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// A refusal: why, in code and in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: Reason, message: impl Into<String>) -> Rejection {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// The outcome of one CSR, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub decision: Verdict,
    pub reason: Reason,
    pub message: String,
    /// The certname asked for (or the CSR's CN), when one could be read.
    pub certname: Option<String>,
    pub csr_fingerprint: Option<String>,
    pub token_id: Option<i64>,
    /// The id of the recorded event, so an operator can find it.
    pub event_id: i64,
}

impl Decision {
    pub fn approved(&self) -> bool {
        self.decision == Verdict::Approved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r.code()), Some(r));
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
        assert_eq!(Reason::from_code("nope"), None);
    }
}
