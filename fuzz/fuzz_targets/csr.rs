//! The CSR reader and every check that runs on a request before a token is looked at:
//! whatever the bytes, parsing and policy return an answer, never a panic or a hang.
#![no_main]

use autosign_proxy::domain::csr::Csr;
use autosign_proxy::domain::policy::{
    check_request, AltNameRule, AuthExtensionRule, ReservedNames, SigningRules,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(csr) = Csr::parse(data) else {
        return;
    };
    let _ = csr.subject_alt_names();
    let _ = csr.custom_attributes();
    let _ = csr.key_description();
    let _ = csr.to_pem();
    let _ = format!("{csr:?}");
    for ext in csr.extensions() {
        let _ = ext.string_value();
    }
    if let Ok(spki) = csr.public_key_spki_der() {
        // What we certify must itself read back as the same key.
        let again = autosign_proxy::domain::csr::PublicKeyKind::from_spki(&spki)
            .expect("a re-encoded key reads back");
        assert_eq!(&again, csr.public_key());
    }
    let reserved = ReservedNames::new(["puppet", "puppet.example.com"]);
    for (alt_names, auth_extensions) in [
        (AltNameRule::ByAuthority, AuthExtensionRule::Refuse),
        (AltNameRule::Allow, AuthExtensionRule::Allow),
    ] {
        let rules = SigningRules {
            alt_names,
            auth_extensions,
            reserved: &reserved,
            allow_reserved: false,
        };
        let _ = check_request(&csr, None, &rules);
        let _ = check_request(&csr, Some("agent1.example.com"), &rules);
    }
});
