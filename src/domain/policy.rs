//! The one rule set. Every path that issues a certificate — `/validate`, the CA's
//! autosign modes, operator signing (API, CLI, Foreman, bulk), renewal and `ca generate` —
//! runs `check_request` with the `SigningRules` of its path, and issues exactly the
//! `CheckedRequest` it returns. `decide` adds authorization by build token or allow-list
//! and records the decision. Each step is a small named function; both read top to bottom.
//! The domain reaches its state only through the narrow `DecisionStore` port.

use std::collections::HashSet;

use async_trait::async_trait;

use super::allowlist::{AllowRecord, AltNamePattern};
use super::certname::Certname;
use super::csr::{Csr, CsrError, CsrExtension, GeneralName};
use super::decision::{Decision, Reason, Rejection, Verdict};
use super::event::{Actor, NewEvent};
use super::token::{AltName, TokenHash, TokenRecord, TokenState};
use crate::oid::{self, in_arc, PP_AUTH_ARC, PP_CLI_AUTH, PP_PRIV_ARC, PP_REG_ARC};

/// Extensions a CSR may mark critical without being refused: their meaning is known and
/// the CA decides the issued certificate's own values anyway.
const KNOWN_EXTENSIONS: [&str; 5] = [
    oid::SUBJECT_ALT_NAME,
    oid::BASIC_CONSTRAINTS,
    oid::KEY_USAGE,
    oid::EXT_KEY_USAGE,
    oid::SUBJECT_KEY_ID,
];

/// Site policy the `/validate` and `autosign = policy` paths apply beyond the fixed rules.
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    /// Authorization extensions (OIDs under 1.3.6.1.4.1.34380.1.3) that may be autosigned.
    /// pp_cli_auth is refused whatever this says.
    pub allowed_auth_extensions: Vec<String>,
    /// Names never signed automatically: the service's own names, its local client, its
    /// trusted and admin hosts.
    pub reserved: ReservedNames,
    /// Alt names any token's request may carry (`[policy] token_alt_names`).
    pub token_alt_names: Vec<AltNamePattern>,
}

/// Names that identify the service, its clients or its administrators. A certificate for
/// one of them (as certname or alt name) would let its holder act as them, so no
/// automatic path signs one, and an operator must say so explicitly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReservedNames(HashSet<String>);

impl ReservedNames {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> ReservedNames {
        ReservedNames(
            names
                .into_iter()
                .map(|n| n.as_ref().trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        )
    }

    /// Case-insensitive, as DNS names and Foreman's trusted_hosts compare.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(&name.to_ascii_lowercase())
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.iter().cloned().collect();
        names.sort();
        names
    }
}

/// Which alt names beyond `DNS:<certname>` a path may issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltNameRule {
    /// None: a request carrying any is refused.
    Refuse,
    /// Any valid DNS or IP name (an operator's explicit allowance).
    Allow,
    /// Whatever the authorizing token or allow-list entry allows (`decide` checks).
    ByAuthority,
}

/// Which authorization extensions (the arc that grants rights) a path may issue.
/// pp_cli_auth is never issued from a request, whatever the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthExtensionRule<'a> {
    Refuse,
    /// These OIDs only.
    Listed(&'a [String]),
    /// Any but pp_cli_auth (an operator's explicit allowance).
    Allow,
}

/// What one signing path may allow beyond the fixed rules.
#[derive(Debug, Clone, Copy)]
pub struct SigningRules<'a> {
    pub alt_names: AltNameRule,
    pub auth_extensions: AuthExtensionRule<'a>,
    pub reserved: &'a ReservedNames,
    /// Sign a reserved name anyway: only an operator, explicitly.
    pub allow_reserved: bool,
}

/// A CSR that passed every rule of its path: exactly what the certificate may carry.
#[derive(Clone)]
pub struct CheckedRequest {
    pub certname: Certname,
    /// Valid DNS (lower case) and IP names beyond `DNS:<certname>`, each once.
    pub extra_alt_names: Vec<AltName>,
    /// The extensions to copy: Puppet's registered and private ones, and the
    /// authorization ones the rules allowed.
    pub extensions: Vec<CsrExtension>,
    /// DER of the SubjectPublicKeyInfo to certify.
    pub public_key: Vec<u8>,
    challenge_password: Option<String>,
}

impl std::fmt::Debug for CheckedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedRequest")
            .field("certname", &self.certname)
            .field("extra_alt_names", &self.extra_alt_names)
            .field("extensions", &self.extensions)
            .field(
                "challenge_password",
                &self.challenge_password.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl CheckedRequest {
    /// The certificate's subjectAltName: `DNS:<certname>`, then the extra names.
    pub fn subject_alt_names(&self) -> Vec<GeneralName> {
        let mut names = vec![GeneralName::Dns(self.certname.to_string())];
        names.extend(self.extra_alt_names.iter().map(|n| match n {
            AltName::Dns(d) => GeneralName::Dns(d.clone()),
            AltName::Ip(ip) => GeneralName::Ip(*ip),
        }));
        names
    }

    /// Whether the challengePassword was present (never its value).
    pub fn has_challenge_password(&self) -> bool {
        self.challenge_password.is_some()
    }
}

/// Every rule, in order, for one CSR and the certname asked for (None: the CSR's CN).
pub fn check_request(
    csr: &Csr,
    asked: Option<&str>,
    rules: &SigningRules<'_>,
) -> Result<CheckedRequest, Rejection> {
    verify_possession(csr)?;
    let certname = check_certname(csr, asked)?;
    let extensions = check_extensions(csr, rules.auth_extensions)?;
    let extra_alt_names = check_alt_names(csr, &certname, rules.alt_names)?;
    check_reserved(&certname, &extra_alt_names, rules)?;
    // Written anew from the parsed key: what we certify holds no byte the requester chose
    // beyond the key itself.
    let public_key = csr.public_key_spki_der().map_err(|e| {
        Rejection::new(
            Reason::UnsupportedAlgorithm,
            format!("the request's public key cannot be certified: {e}"),
        )
    })?;
    Ok(CheckedRequest {
        challenge_password: csr.challenge_password().map(|(value, _)| value),
        public_key,
        certname,
        extra_alt_names,
        extensions,
    })
}

/// The rules for a certificate whose key is not in a request: `ca generate` (the key is
/// made here) and renewal (the names and extensions of the certificate being renewed).
/// The same name checks run; extensions are taken as given, minus anything outside
/// Puppet's arcs.
pub fn check_issue(
    name: &str,
    alt_names: &[GeneralName],
    extensions: &[CsrExtension],
    public_key: Vec<u8>,
    rules: &SigningRules<'_>,
) -> Result<CheckedRequest, Rejection> {
    let certname = Certname::parse(name).map_err(|e| {
        Rejection::new(
            Reason::InvalidCertname,
            format!("certname '{}': {e}", truncate(name, 255)),
        )
    })?;
    let extra_alt_names = collect_alt_names(alt_names.iter().cloned(), &certname)?;
    check_alt_name_rule(&certname, &extra_alt_names, rules.alt_names)?;
    check_reserved(&certname, &extra_alt_names, rules)?;
    let extensions = extensions
        .iter()
        .filter(|e| {
            in_arc(&e.oid, PP_REG_ARC) || in_arc(&e.oid, PP_PRIV_ARC) || in_arc(&e.oid, PP_AUTH_ARC)
        })
        .cloned()
        .collect();
    Ok(CheckedRequest {
        certname,
        extra_alt_names,
        extensions,
        public_key,
        challenge_password: None,
    })
}

/// The port `decide` reads and writes state through: four verbs, in domain terms.
#[async_trait]
pub trait DecisionStore: Send + Sync {
    type Error: Send;
    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, Self::Error>;
    async fn allow_entries(&self) -> Result<Vec<AllowRecord>, Self::Error>;
    /// Mark the token used if, and only if, it is still live, recording the approval in
    /// the same transaction; `None` when another request won.
    async fn consume_token(
        &self,
        token_id: i64,
        now: i64,
        event: NewEvent,
    ) -> Result<Option<i64>, Self::Error>;
    async fn record_event(&self, event: NewEvent) -> Result<i64, Self::Error>;
    /// Revoke a live token, recording `event`; `false` when it was no longer live.
    async fn revoke_token(
        &self,
        token_id: i64,
        now: i64,
        event: NewEvent,
    ) -> Result<bool, Self::Error>;
}

/// The CSR to decide on: as received (parsed here, a parse failure is a recorded
/// rejection), or already parsed by the caller.
pub enum CsrInput<'a> {
    Bytes(&'a [u8]),
    Parsed(&'a Csr),
}

/// One CSR to decide on.
pub struct DecisionRequest<'a> {
    pub csr: CsrInput<'a>,
    /// The certname the CA asked about; without it the CSR's CN is used.
    pub certname: Option<&'a str>,
    pub actor: &'a Actor,
}

/// A decision, and on approval what the certificate may carry.
pub struct Decided {
    pub decision: Decision,
    pub checked: Option<CheckedRequest>,
}

/// What authorizes an approval.
enum Grant {
    Token(TokenRecord),
    AllowList(AllowRecord),
}

/// Decide on a CSR and record the decision. Fails closed: a store error is returned as
/// an error (the caller refuses), never as an approval.
pub async fn decide<S: DecisionStore + ?Sized>(
    store: &S,
    settings: &PolicySettings,
    request: &DecisionRequest<'_>,
    now: i64,
) -> Result<Decided, S::Error> {
    let mut decision = Decision {
        decision: Verdict::Rejected,
        reason: Reason::NotAuthorized,
        message: String::new(),
        certname: request.certname.map(|c| truncate(c, 255)),
        csr_fingerprint: None,
        token_id: None,
        event_id: 0,
    };
    let rules = SigningRules {
        alt_names: AltNameRule::ByAuthority,
        auth_extensions: AuthExtensionRule::Listed(&settings.allowed_auth_extensions),
        reserved: &settings.reserved,
        allow_reserved: false,
    };

    let parsed;
    let csr = match &request.csr {
        CsrInput::Parsed(csr) => *csr,
        CsrInput::Bytes(bytes) => match parse_csr(bytes) {
            Ok(csr) => {
                parsed = csr;
                &parsed
            }
            Err(rejection) => {
                return reject(store, decision, rejection, request.actor, now, None).await
            }
        },
    };
    decision.csr_fingerprint = Some(csr.fingerprint_sha256());
    let presented = csr.challenge_password().map(|(value, _)| value);
    let presented = presented.as_deref();
    let checked = match check_request(csr, request.certname, &rules) {
        Ok(checked) => checked,
        Err(rejection) => {
            return reject(store, decision, rejection, request.actor, now, presented).await
        }
    };
    decision.certname = Some(checked.certname.to_string());

    let grant = match authorize(store, &checked, &settings.token_alt_names, now).await? {
        Ok(grant) => grant,
        Err((rejection, token_id)) => {
            decision.token_id = token_id;
            return reject(store, decision, rejection, request.actor, now, presented).await;
        }
    };

    decision.decision = Verdict::Approved;
    match grant {
        Grant::Token(token) => {
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
                    let lost = Rejection::new(
                        Reason::TokenUsed,
                        format!(
                            "build token {} was used by another request a moment earlier",
                            token.id
                        ),
                    );
                    return reject(store, decision, lost, request.actor, now, None).await;
                }
            }
        }
        Grant::AllowList(entry) => {
            decision.reason = Reason::AllowList;
            decision.message = format!("approved by allow-list entry '{}'", entry.pattern);
            let event = NewEvent::for_decision(now, request.actor, &decision);
            decision.event_id = store.record_event(event).await?;
        }
    }
    Ok(Decided {
        decision,
        checked: Some(checked),
    })
}

async fn reject<S: DecisionStore + ?Sized>(
    store: &S,
    mut decision: Decision,
    rejection: Rejection,
    actor: &Actor,
    now: i64,
    presented: Option<&str>,
) -> Result<Decided, S::Error> {
    decision.decision = Verdict::Rejected;
    decision.reason = rejection.reason;
    decision.message = rejection.message;
    if let Some(id) = revoke_exposed(store, presented, &decision, actor, now).await? {
        decision.token_id.get_or_insert(id);
        decision.message.push_str(&format!(
            "; build token {id} was revoked: a rejected request carried it, and rejected requests can be read"
        ));
    }
    let event = NewEvent::for_decision(now, actor, &decision);
    decision.event_id = store.record_event(event).await?;
    Ok(Decided {
        decision,
        checked: None,
    })
}

/// A token presented in a request that is refused is exposed: puppetserver and this CA
/// serve pending requests to anyone (`GET certificate_request`), challengePassword and
/// all. While it is still live, revoke it, with the reason, before anyone else uses it.
async fn revoke_exposed<S: DecisionStore + ?Sized>(
    store: &S,
    presented: Option<&str>,
    decision: &Decision,
    actor: &Actor,
    now: i64,
) -> Result<Option<i64>, S::Error> {
    let Some(presented) = presented else {
        return Ok(None);
    };
    let Some(token) = store.find_token(&TokenHash::of(presented)).await? else {
        return Ok(None);
    };
    if token.state(now) != TokenState::Live {
        return Ok(None);
    }
    let event = NewEvent::new(now, super::event::kind::TOKEN_REVOKED, actor)
        .certname(token.certname.as_str())
        .token(token.id)
        .message(format!(
            "build token revoked: it was exposed in a request for {} that was refused ({})",
            decision.certname.as_deref().unwrap_or("?"),
            decision.reason.code()
        ));
    Ok(store
        .revoke_token(token.id, now, event)
        .await?
        .then_some(token.id))
}

/// Step 1: PEM of any line width, or DER; attribute strings read leniently.
pub fn parse_csr(bytes: &[u8]) -> Result<Csr, Rejection> {
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

/// Step 4: pp_cli_auth never; other authorization extensions only as the path allows;
/// no CA certificates; unknown critical extensions never. Every extension is looked at,
/// and the ones returned are exactly those the certificate gets.
fn check_extensions(
    csr: &Csr,
    auth: AuthExtensionRule<'_>,
) -> Result<Vec<CsrExtension>, Rejection> {
    let mut issued = Vec::new();
    for ext in csr.extensions() {
        let oid = ext.oid.as_str();
        if oid == PP_CLI_AUTH {
            return Err(Rejection::new(
                Reason::ForbiddenExtension,
                "the CSR requests pp_cli_auth, which makes a certificate a CA administrator; it is never signed from a request",
            ));
        }
        if in_arc(oid, PP_AUTH_ARC) {
            let allowed = match auth {
                AuthExtensionRule::Refuse => false,
                AuthExtensionRule::Listed(list) => list.iter().any(|a| a == oid),
                AuthExtensionRule::Allow => true,
            };
            if !allowed {
                return Err(Rejection::new(
                    Reason::ForbiddenExtension,
                    format!("the CSR requests authorization extension {} ({oid}), which is not allowed here", oid::auth_extension_name(oid)),
                ));
            }
        }
        if oid == oid::BASIC_CONSTRAINTS && requests_ca(&ext.value) {
            return Err(Rejection::new(
                Reason::ForbiddenExtension,
                "the CSR asks for a CA certificate (basicConstraints CA:TRUE)",
            ));
        }
        let puppets =
            in_arc(oid, PP_REG_ARC) || in_arc(oid, PP_PRIV_ARC) || in_arc(oid, PP_AUTH_ARC);
        if ext.critical && !(KNOWN_EXTENSIONS.contains(&oid) || puppets) {
            return Err(Rejection::new(
                Reason::UnknownCriticalExtension,
                format!(
                    "the CSR marks extension {oid} critical, and this service does not know it"
                ),
            ));
        }
        if puppets {
            issued.push(ext.clone());
        }
    }
    Ok(issued)
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

/// Step 5: DNS and IP names only, every DNS name a valid lower-case host name (no
/// wildcard, no NUL); compared case-insensitively with the certname. Returns the names
/// beyond `DNS:<certname>`, refused here when the path allows none.
fn check_alt_names(
    csr: &Csr,
    certname: &Certname,
    rule: AltNameRule,
) -> Result<Vec<AltName>, Rejection> {
    let names = csr
        .subject_alt_names()
        .map_err(|e| Rejection::new(Reason::MalformedCsr, e.to_string()))?;
    let extra = collect_alt_names(names, certname)?;
    check_alt_name_rule(certname, &extra, rule)?;
    Ok(extra)
}

/// Every name valid, each once, `DNS:<certname>` left out.
fn collect_alt_names(
    names: impl IntoIterator<Item = GeneralName>,
    certname: &Certname,
) -> Result<Vec<AltName>, Rejection> {
    let mut extra = Vec::new();
    for name in names {
        let alt = match name {
            GeneralName::Dns(dns) => {
                let lower = dns.to_ascii_lowercase();
                if lower.contains('*') || Certname::parse(&lower).is_err() {
                    return Err(Rejection::new(
                        Reason::ForbiddenAltName,
                        format!(
                            "the CSR requests DNS:{}, a wildcard or invalid name",
                            dns.escape_default()
                        ),
                    ));
                }
                if lower == certname.as_str() {
                    continue;
                }
                AltName::Dns(lower)
            }
            GeneralName::Ip(ip) => AltName::Ip(ip),
            GeneralName::Email(e) => {
                return Err(forbidden_alt_name(&format!("email:{}", e.escape_default())))
            }
            GeneralName::Uri(u) => {
                return Err(forbidden_alt_name(&format!("URI:{}", u.escape_default())))
            }
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

fn check_alt_name_rule(
    certname: &Certname,
    extra: &[AltName],
    rule: AltNameRule,
) -> Result<(), Rejection> {
    if rule == AltNameRule::Refuse && !extra.is_empty() {
        return Err(Rejection::new(
            Reason::AltNameNotAllowed,
            format!(
                "CSR '{certname}' contains subject alternative names ({}), which are disallowed",
                join(extra)
            ),
        ));
    }
    Ok(())
}

fn forbidden_alt_name(what: &str) -> Rejection {
    Rejection::new(
        Reason::ForbiddenAltName,
        format!("the CSR requests {what}; only DNS and IP alt names can be signed"),
    )
}

/// Step 6: no certificate for a reserved name, as certname or as alt name, unless an
/// operator said so.
fn check_reserved(
    certname: &Certname,
    extra: &[AltName],
    rules: &SigningRules<'_>,
) -> Result<(), Rejection> {
    if rules.allow_reserved {
        return Ok(());
    }
    // IP names too: a certificate for the service's address would let its holder stand in
    // for the service towards clients that connect by address (autosign-policy's URL).
    let reserved = std::iter::once(certname.to_string())
        .chain(extra.iter().map(|n| match n {
            AltName::Dns(d) => d.clone(),
            AltName::Ip(ip) => ip.to_string(),
        }))
        .find(|name| rules.reserved.contains(name));
    match reserved {
        Some(name) => Err(Rejection::new(
            Reason::ReservedName,
            format!(
                "'{name}' is reserved: it names this service, its local client, a trusted host or an admin host, so a certificate for it is never signed automatically; an operator can sign it explicitly (autosign-proxy ca sign --allow-reserved-name)"
            ),
        )),
        None => Ok(()),
    }
}

/// Step 7: a presented token must be live and bound to this certname (and is then the
/// only thing that can approve); without one, an allow-list entry may approve.
/// A rejection carries the token id when a token was involved.
async fn authorize<S: DecisionStore + ?Sized>(
    store: &S,
    checked: &CheckedRequest,
    site_alt_names: &[AltNamePattern],
    now: i64,
) -> Result<Result<Grant, (Rejection, Option<i64>)>, S::Error> {
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
    // What the site lets every token carry needs no allowance of the token itself.
    let beyond_site: Vec<AltName> = checked
        .extra_alt_names
        .iter()
        .filter(|n| !site_alt_names.iter().any(|p| p.matches(n)))
        .cloned()
        .collect();
    if let Err(rejection) = permits(
        &token.alt_names,
        &beyond_site,
        &format!("build token {} (nor [policy] token_alt_names)", token.id),
    ) {
        return Ok(Err((rejection, id)));
    }
    Ok(Ok(Grant::Token(token)))
}

async fn authorize_by_allow_list<S: DecisionStore + ?Sized>(
    store: &S,
    checked: &CheckedRequest,
) -> Result<Result<Grant, Rejection>, S::Error> {
    let matching: Vec<AllowRecord> = store
        .allow_entries()
        .await?
        .into_iter()
        .filter(|record| record.entry().is_some_and(|e| e.matches(&checked.certname)))
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
        return Ok(Ok(Grant::AllowList(record.clone())));
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
    let refused: Vec<AltName> = requested
        .iter()
        .filter(|name| !allowed.contains(name))
        .cloned()
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Rejection::new(
        Reason::AltNameNotAllowed,
        format!(
            "the CSR requests {}, which {authority} does not allow",
            join(&refused)
        ),
    ))
}

fn join(names: &[AltName]) -> String {
    names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
        let settings = AuthExtensionRule::Refuse;
        let ok = csr(
            "a.example.com",
            &[],
            &[utf8_extension("1.3.6.1.4.1.34380.1.1.1", "uuid")],
        );
        assert!(check_extensions(&ok, settings).is_ok());
        let cli = csr("a.example.com", &[], &[utf8_extension(PP_CLI_AUTH, "true")]);
        assert_eq!(
            reason(check_extensions(&cli, settings)),
            Reason::ForbiddenExtension
        );
        let list = vec![
            PP_CLI_AUTH.to_string(),
            "1.3.6.1.4.1.34380.1.3.2".to_string(),
        ];
        let allowing = AuthExtensionRule::Listed(&list);
        assert_eq!(
            reason(check_extensions(&cli, allowing)),
            Reason::ForbiddenExtension,
            "never, whatever the config"
        );
        let auth = csr(
            "a.example.com",
            &[],
            &[utf8_extension("1.3.6.1.4.1.34380.1.3.2", "x")],
        );
        assert_eq!(
            reason(check_extensions(&auth, settings)),
            Reason::ForbiddenExtension
        );
        assert!(check_extensions(&auth, allowing).is_ok());
        let mut critical = utf8_extension("1.2.3.4", "x");
        critical.critical = true;
        let c = csr("a.example.com", &[], &[critical]);
        assert_eq!(
            reason(check_extensions(&c, settings)),
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
        let extra = check_alt_names(&c, &certname, AltNameRule::ByAuthority).unwrap();
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
                reason(check_alt_names(&c, &certname, AltNameRule::ByAuthority)),
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
        let reserved = ReservedNames::default();
        let rules = SigningRules {
            alt_names: AltNameRule::ByAuthority,
            auth_extensions: AuthExtensionRule::Refuse,
            reserved: &reserved,
            allow_reserved: false,
        };
        let checked = check_request(&c, None, &rules).unwrap();
        assert_eq!(
            checked.challenge_password.as_deref(),
            Some("tok_en_with_underscores")
        );
    }
}
