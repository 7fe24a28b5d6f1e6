//! The decision pipeline: one CSR in, one recorded decision out, in the order the design
//! gives. Each step is a small named function; `decide` reads top to bottom.

use super::allowlist::AllowEntry;
use super::certname::Certname;
use super::csr::{Csr, CsrError, GeneralName};
use super::decision::{Decision, Reason, Rejection, Verdict};
use super::event::{Actor, NewEvent};
use super::token::{AltName, TokenHash, TokenRecord, TokenState};
use crate::store::{AllowRecord, Store, StoreError};

/// Puppet's arc for authorization extensions; certificates carrying them grant rights.
pub const PP_AUTH_ARC: &str = "1.3.6.1.4.1.34380.1.3";
/// pp_cli_auth makes a certificate a CA administrator: never autosigned.
pub const PP_CLI_AUTH: &str = "1.3.6.1.4.1.34380.1.3.39";
const PP_REG_ARC: &str = "1.3.6.1.4.1.34380.1.1";
const PP_PRIV_ARC: &str = "1.3.6.1.4.1.34380.1.2";
const SUBJECT_ALT_NAME: &str = "2.5.29.17";
const BASIC_CONSTRAINTS: &str = "2.5.29.19";
/// Extensions a CSR may mark critical without being refused: their meaning is known and
/// the CA decides the issued certificate's own values anyway.
const KNOWN_EXTENSIONS: [&str; 5] = [
    SUBJECT_ALT_NAME,
    BASIC_CONSTRAINTS,
    "2.5.29.15", // keyUsage
    "2.5.29.37", // extKeyUsage
    "2.5.29.14", // subjectKeyIdentifier
];

/// Site policy the pipeline applies beyond the fixed rules.
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    /// Authorization extensions (OIDs under 1.3.6.1.4.1.34380.1.3) that may be autosigned.
    /// pp_cli_auth is refused whatever this says.
    pub allowed_auth_extensions: Vec<String>,
}

/// One CSR to decide on.
pub struct DecisionRequest<'a> {
    /// The body as received: PEM or DER.
    pub csr: &'a [u8],
    /// The certname the CA asked about; without it the CSR's CN is used.
    pub certname: Option<&'a str>,
    pub actor: &'a Actor,
}

/// What authorizes an approval.
enum Authority {
    Token(TokenRecord),
    AllowList(AllowRecord),
}

/// A CSR that passed every check that needs nothing but its bytes.
struct CheckedCsr {
    certname: Certname,
    /// SANs beyond `DNS:<certname>`, which the authority must allow.
    extra_alt_names: Vec<AltName>,
    challenge_password: Option<String>,
}

/// Decide on a CSR and record the decision. Fails closed: a store error is returned as
/// an error (the caller refuses), never as an approval.
pub async fn decide(
    store: &dyn Store,
    settings: &PolicySettings,
    request: &DecisionRequest<'_>,
    now: i64,
) -> Result<Decision, StoreError> {
    let mut decision = Decision {
        decision: Verdict::Rejected,
        reason: Reason::NotAuthorized,
        message: String::new(),
        certname: request.certname.map(|c| truncate(c, 255)),
        csr_fingerprint: None,
        token_id: None,
        event_id: 0,
    };

    let checked = match parse_csr(request.csr).and_then(|csr| {
        decision.csr_fingerprint = Some(csr.fingerprint_sha256());
        check_csr(&csr, request.certname, settings)
    }) {
        Ok(checked) => checked,
        Err(rejection) => return reject(store, decision, rejection, request.actor, now).await,
    };
    decision.certname = Some(checked.certname.to_string());

    let authority = match authorize(store, &checked, now).await? {
        Ok(authority) => authority,
        Err((rejection, token_id)) => {
            decision.token_id = token_id;
            return reject(store, decision, rejection, request.actor, now).await;
        }
    };

    decision.decision = Verdict::Approved;
    match authority {
        Authority::Token(token) => {
            decision.reason = Reason::Token;
            decision.token_id = Some(token.id);
            decision.message = format!(
                "approved by build token {} issued for {}",
                token.id, token.certname
            );
            let event = NewEvent::for_decision(now, request.actor, &decision);
            match store.consume_token(token.id, now, event).await? {
                Some(event_id) => decision.event_id = event_id,
                None => {
                    decision.decision = Verdict::Rejected;
                    let lost = Rejection::new(
                        Reason::TokenUsed,
                        format!(
                            "build token {} was used by another request a moment earlier",
                            token.id
                        ),
                    );
                    return reject(store, decision, lost, request.actor, now).await;
                }
            }
        }
        Authority::AllowList(entry) => {
            decision.reason = Reason::AllowList;
            decision.message = format!("approved by allow-list entry '{}'", entry.pattern);
            let event = NewEvent::for_decision(now, request.actor, &decision);
            decision.event_id = store.record_event(event).await?;
        }
    }
    Ok(decision)
}

/// Steps 2–5: everything that depends only on the CSR and the name asked for.
fn check_csr(
    csr: &Csr,
    asked: Option<&str>,
    settings: &PolicySettings,
) -> Result<CheckedCsr, Rejection> {
    verify_possession(csr)?;
    let certname = check_certname(csr, asked)?;
    check_extensions(csr, settings)?;
    let extra_alt_names = check_alt_names(csr, &certname)?;
    Ok(CheckedCsr {
        challenge_password: csr.challenge_password().map(|(value, _)| value),
        certname,
        extra_alt_names,
    })
}

async fn reject(
    store: &dyn Store,
    mut decision: Decision,
    rejection: Rejection,
    actor: &Actor,
    now: i64,
) -> Result<Decision, StoreError> {
    decision.decision = Verdict::Rejected;
    decision.reason = rejection.reason;
    decision.message = rejection.message;
    let event = NewEvent::for_decision(now, actor, &decision);
    decision.event_id = store.record_event(event).await?;
    Ok(decision)
}

/// Step 1: PEM of any line width, or DER; attribute strings read leniently.
fn parse_csr(bytes: &[u8]) -> Result<Csr, Rejection> {
    Csr::parse(bytes).map_err(|e| {
        let reason = match e {
            CsrError::TooLarge { .. } => Reason::CsrTooLarge,
            CsrError::WrongPemLabel(_) => Reason::WrongPemLabel,
            CsrError::UnsupportedAlgorithm(_) => Reason::UnsupportedAlgorithm,
            CsrError::BadSignature => Reason::BadSignature,
            CsrError::Malformed(_) | CsrError::UnsupportedVersion(_) => Reason::MalformedCsr,
        };
        Rejection::new(reason, e.to_string())
    })
}

/// Step 2: the self-signature over the bytes received proves the requester holds the key.
fn verify_possession(csr: &Csr) -> Result<(), Rejection> {
    csr.verify_signature().map_err(|e| {
        let reason = match e {
            CsrError::UnsupportedAlgorithm(_) => Reason::UnsupportedAlgorithm,
            _ => Reason::BadSignature,
        };
        Rejection::new(reason, e.to_string())
    })
}

/// Step 3: the subject is exactly one CN, it follows Puppet's rules, and it is the name
/// asked for.
fn check_certname(csr: &Csr, asked: Option<&str>) -> Result<Certname, Rejection> {
    let cns = csr.subject_common_names();
    let cn = match cns.as_slice() {
        [cn] if !csr.subject_has_other_attributes() => cn,
        [] => {
            return Err(Rejection::new(
                Reason::InvalidSubject,
                "the CSR subject has no CN",
            ))
        }
        _ => {
            return Err(Rejection::new(
                Reason::InvalidSubject,
                "the CSR subject must be exactly CN=<certname>, as Puppet agents write it",
            ))
        }
    };
    let name = asked.unwrap_or(cn);
    let certname = Certname::parse(name).map_err(|e| {
        Rejection::new(
            Reason::InvalidCertname,
            format!("certname '{}': {e}", truncate(name, 255)),
        )
    })?;
    if cn != certname.as_str() {
        return Err(Rejection::new(
            Reason::CertnameMismatch,
            format!(
                "Instance name \"{}\" does not match requested key \"{certname}\"",
                truncate(cn, 255)
            ),
        ));
    }
    Ok(certname)
}

/// Step 4: pp_cli_auth never; other authorization extensions only where the site allows
/// them; no CA certificates; unknown critical extensions never.
fn check_extensions(csr: &Csr, settings: &PolicySettings) -> Result<(), Rejection> {
    for ext in csr.extensions() {
        let oid = ext.oid.as_str();
        if oid == PP_CLI_AUTH {
            return Err(Rejection::new(
                Reason::ForbiddenExtension,
                "the CSR requests pp_cli_auth, which makes a certificate a CA administrator; it is never autosigned",
            ));
        }
        if in_arc(oid, PP_AUTH_ARC) && !settings.allowed_auth_extensions.iter().any(|a| a == oid) {
            return Err(Rejection::new(
                Reason::ForbiddenExtension,
                format!("the CSR requests authorization extension {oid}, which this service does not autosign"),
            ));
        }
        if oid == BASIC_CONSTRAINTS && requests_ca(&ext.value) {
            return Err(Rejection::new(
                Reason::ForbiddenExtension,
                "the CSR asks for a CA certificate (basicConstraints CA:TRUE)",
            ));
        }
        let known = KNOWN_EXTENSIONS.contains(&oid)
            || in_arc(oid, PP_REG_ARC)
            || in_arc(oid, PP_PRIV_ARC)
            || in_arc(oid, PP_AUTH_ARC);
        if ext.critical && !known {
            return Err(Rejection::new(
                Reason::UnknownCriticalExtension,
                format!(
                    "the CSR marks extension {oid} critical, and this service does not know it"
                ),
            ));
        }
    }
    Ok(())
}

fn in_arc(oid: &str, arc: &str) -> bool {
    oid.strip_prefix(arc)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// basicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, ... }. Anything unreadable
/// counts as a CA request: fail closed.
fn requests_ca(value: &[u8]) -> bool {
    match value {
        [0x30, 0x00] => false,
        [0x30, _, 0x01, 0x01, flag, ..] => *flag != 0,
        [0x30, _, 0x02, ..] => false,
        _ => true,
    }
}

/// Step 5: DNS and IP names only, no wildcards. Returns the names beyond `DNS:<certname>`,
/// which the authorizing token or entry must allow.
fn check_alt_names(csr: &Csr, certname: &Certname) -> Result<Vec<AltName>, Rejection> {
    let names = csr
        .subject_alt_names()
        .map_err(|e| Rejection::new(Reason::MalformedCsr, e.to_string()))?;
    let mut extra = Vec::new();
    for name in names {
        let alt = match name {
            GeneralName::Dns(dns) => {
                let lower = dns.to_ascii_lowercase();
                if lower.contains('*') || Certname::parse(&lower).is_err() {
                    return Err(Rejection::new(
                        Reason::ForbiddenAltName,
                        format!("the CSR requests DNS:{dns}, a wildcard or invalid name"),
                    ));
                }
                if lower == certname.as_str() {
                    continue;
                }
                AltName::Dns(lower)
            }
            GeneralName::Ip(ip) => AltName::Ip(ip),
            GeneralName::Email(e) => return Err(forbidden_alt_name(&format!("email:{e}"))),
            GeneralName::Uri(u) => return Err(forbidden_alt_name(&format!("URI:{u}"))),
            GeneralName::Other { tag } => {
                return Err(forbidden_alt_name(&format!("a name of type [{tag}]")))
            }
        };
        if !extra.contains(&alt) {
            extra.push(alt);
        }
    }
    Ok(extra)
}

fn forbidden_alt_name(what: &str) -> Rejection {
    Rejection::new(
        Reason::ForbiddenAltName,
        format!("the CSR requests {what}; only DNS and IP alt names can be autosigned"),
    )
}

/// Step 6: a presented token must be live and bound to this certname (and is then the
/// only thing that can approve); without one, an allow-list entry may approve.
/// A rejection carries the token id when a token was involved.
async fn authorize(
    store: &dyn Store,
    checked: &CheckedCsr,
    now: i64,
) -> Result<Result<Authority, (Rejection, Option<i64>)>, StoreError> {
    let certname = &checked.certname;
    let Some(presented) = &checked.challenge_password else {
        return Ok(authorize_by_allow_list(store, checked)
            .await?
            .map_err(|r| (r, None)));
    };
    let Some(token) = store.find_token(&TokenHash::of(presented)).await? else {
        return Ok(Err((
            Rejection::new(
                Reason::TokenUnknown,
                "the CSR carries a challengePassword that is not a build token this service issued",
            ),
            None,
        )));
    };
    let id = Some(token.id);
    if token.certname != certname.as_str() {
        return Ok(Err((
            Rejection::new(
                Reason::TokenWrongHost,
                format!(
                    "build token {} was issued for another host, not {certname}",
                    token.id
                ),
            ),
            id,
        )));
    }
    let refusal = match token.state(now) {
        TokenState::Live => None,
        TokenState::Used => Some((Reason::TokenUsed, "was already used")),
        TokenState::Revoked => Some((Reason::TokenRevoked, "was revoked")),
        TokenState::Expired => Some((Reason::TokenExpired, "has expired")),
    };
    if let Some((reason, what)) = refusal {
        return Ok(Err((
            Rejection::new(
                reason,
                format!("build token {} for {certname} {what}", token.id),
            ),
            id,
        )));
    }
    if let Err(rejection) = permits(
        &token.alt_names,
        &checked.extra_alt_names,
        &format!("build token {}", token.id),
    ) {
        return Ok(Err((rejection, id)));
    }
    Ok(Ok(Authority::Token(token)))
}

async fn authorize_by_allow_list(
    store: &dyn Store,
    checked: &CheckedCsr,
) -> Result<Result<Authority, Rejection>, StoreError> {
    let matching: Vec<AllowRecord> = store
        .list_allow_entries()
        .await?
        .into_iter()
        .filter(|record| {
            record
                .entry()
                .is_some_and(|e: AllowEntry| e.matches(&checked.certname))
        })
        .collect();
    let Some(first) = matching.first() else {
        return Ok(Err(Rejection::new(
            Reason::NotAuthorized,
            format!(
                "no build token in the CSR and no allow-list entry matches {}",
                checked.certname
            ),
        )));
    };
    if let Some(record) = matching
        .iter()
        .find(|r| permits(&r.alt_names, &checked.extra_alt_names, "").is_ok())
    {
        return Ok(Ok(Authority::AllowList(record.clone())));
    }
    Ok(Err(permits(
        &first.alt_names,
        &checked.extra_alt_names,
        &format!("allow-list entry '{}'", first.pattern),
    )
    .err()
    .unwrap_or_else(|| {
        Rejection::new(Reason::AltNameNotAllowed, "alt names not allowed")
    })))
}

fn permits(allowed: &[AltName], requested: &[AltName], authority: &str) -> Result<(), Rejection> {
    let refused: Vec<String> = requested
        .iter()
        .filter(|name| !allowed.contains(name))
        .map(ToString::to_string)
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Rejection::new(
        Reason::AltNameNotAllowed,
        format!(
            "the CSR requests {}, which {authority} does not allow",
            refused.join(", ")
        ),
    ))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::issue::utf8_extension;
    use crate::ca::request::{build_csr, CsrSpec};
    use crate::ca::signer::{KeyAlgorithm, SoftwareKey};
    use crate::domain::csr::{CsrExtension, StringKind};

    fn csr(cn: &str, sans: &[GeneralName], extensions: &[CsrExtension]) -> Csr {
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let spec = CsrSpec {
            common_name: cn,
            challenge_password: Some(("tok_en_with_underscores", StringKind::Printable)),
            subject_alt_names: sans,
            extensions,
            version: 0,
        };
        Csr::parse(&build_csr(&key, &spec).unwrap()).unwrap()
    }

    fn reason<T>(r: Result<T, Rejection>) -> Reason {
        match r {
            Ok(_) => panic!("expected a rejection"),
            Err(rejection) => rejection.reason,
        }
    }

    #[test]
    fn certname_must_be_the_cn_and_follow_puppets_rules() {
        let c = csr("web01.example.com", &[], &[]);
        assert_eq!(
            check_certname(&c, None).unwrap().as_str(),
            "web01.example.com"
        );
        assert_eq!(
            check_certname(&c, Some("web01.example.com"))
                .unwrap()
                .as_str(),
            "web01.example.com"
        );
        let mismatch = check_certname(&c, Some("db01.example.com")).unwrap_err();
        assert_eq!(mismatch.reason, Reason::CertnameMismatch);
        assert_eq!(
            mismatch.message,
            "Instance name \"web01.example.com\" does not match requested key \"db01.example.com\""
        );
        assert_eq!(
            reason(check_certname(&c, Some("WEB01.example.com"))),
            Reason::InvalidCertname
        );
        let upper = csr("Web01.example.com", &[], &[]);
        assert_eq!(
            reason(check_certname(&upper, None)),
            Reason::InvalidCertname
        );
    }

    #[test]
    fn authorization_extensions_and_unknown_critical_ones_are_refused() {
        let settings = PolicySettings::default();
        let ok = csr(
            "a.example.com",
            &[],
            &[utf8_extension("1.3.6.1.4.1.34380.1.1.1", "uuid")],
        );
        assert!(check_extensions(&ok, &settings).is_ok());
        let cli = csr("a.example.com", &[], &[utf8_extension(PP_CLI_AUTH, "true")]);
        assert_eq!(
            reason(check_extensions(&cli, &settings)),
            Reason::ForbiddenExtension
        );
        let allowing = PolicySettings {
            allowed_auth_extensions: vec![PP_CLI_AUTH.into(), "1.3.6.1.4.1.34380.1.3.2".into()],
        };
        assert_eq!(
            reason(check_extensions(&cli, &allowing)),
            Reason::ForbiddenExtension,
            "never, whatever the config"
        );
        let auth = csr(
            "a.example.com",
            &[],
            &[utf8_extension("1.3.6.1.4.1.34380.1.3.2", "x")],
        );
        assert_eq!(
            reason(check_extensions(&auth, &settings)),
            Reason::ForbiddenExtension
        );
        assert!(check_extensions(&auth, &allowing).is_ok());
        let mut critical = utf8_extension("1.2.3.4", "x");
        critical.critical = true;
        let c = csr("a.example.com", &[], &[critical]);
        assert_eq!(
            reason(check_extensions(&c, &settings)),
            Reason::UnknownCriticalExtension
        );
        // Csr::parse already refuses a repeated extension; parse_csr maps that to malformed.
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let ext = utf8_extension("1.3.6.1.4.1.34380.1.1.1", "a");
        let spec = CsrSpec {
            common_name: "a.example.com",
            challenge_password: None,
            subject_alt_names: &[],
            extensions: &[ext.clone(), ext],
            version: 0,
        };
        let der = build_csr(&key, &spec).unwrap();
        assert_eq!(reason(parse_csr(&der)), Reason::MalformedCsr);
    }

    #[test]
    fn basic_constraints_reading_fails_closed() {
        assert!(!requests_ca(&[0x30, 0x00]));
        assert!(!requests_ca(&[0x30, 0x03, 0x01, 0x01, 0x00]));
        assert!(requests_ca(&[0x30, 0x03, 0x01, 0x01, 0xff]));
        assert!(
            !requests_ca(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            "pathLen alone is not a CA request"
        );
        assert!(
            requests_ca(&[0x04, 0x00]),
            "unreadable counts as a CA request"
        );
        assert!(requests_ca(&[]));
    }

    #[test]
    fn alt_names_beyond_the_certname_are_collected_and_wildcards_refused() {
        let c = csr(
            "puppet.example.com",
            &[
                GeneralName::Dns("puppet.example.com".into()),
                GeneralName::Dns("PUPPET".into()),
                GeneralName::Ip("10.0.0.1".parse().unwrap()),
                GeneralName::Dns("puppet".into()),
            ],
            &[],
        );
        let certname = Certname::parse("puppet.example.com").unwrap();
        let extra = check_alt_names(&c, &certname).unwrap();
        assert_eq!(
            extra,
            [
                AltName::Dns("puppet".into()),
                AltName::Ip("10.0.0.1".parse().unwrap())
            ]
        );
        for bad in [
            GeneralName::Dns("*.example.com".into()),
            GeneralName::Email("root@example.com".into()),
            GeneralName::Uri("https://x".into()),
        ] {
            let c = csr("puppet.example.com", std::slice::from_ref(&bad), &[]);
            assert_eq!(
                reason(check_alt_names(&c, &certname)),
                Reason::ForbiddenAltName,
                "{bad}"
            );
        }
    }

    #[test]
    fn permits_names_exactly() {
        let allowed = [AltName::Dns("puppet".into())];
        assert!(permits(&allowed, &[], "t").is_ok());
        assert!(permits(&allowed, &[AltName::Dns("puppet".into())], "t").is_ok());
        let refused = permits(&allowed, &[AltName::Dns("puppet2".into())], "token 3").unwrap_err();
        assert_eq!(refused.reason, Reason::AltNameNotAllowed);
        assert!(refused.message.contains("DNS:puppet2") && refused.message.contains("token 3"));
    }

    #[test]
    fn the_challenge_password_is_read_as_puppet_writes_it() {
        let c = csr("a.example.com", &[], &[]);
        let checked = check_csr(&c, None, &PolicySettings::default()).unwrap();
        assert_eq!(
            checked.challenge_password.as_deref(),
            Some("tok_en_with_underscores")
        );
    }
}
