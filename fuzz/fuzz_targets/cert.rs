//! The certificate reader and the issuer check (client certificates in TLS, imports).
#![no_main]

use libfuzzer_sys::fuzz_target;

const CA: &[u8] = include_bytes!("../fixtures/ca_crt.pem");

fuzz_target!(|data: &[u8]| {
    let _ = autosign_proxy::ca::issue::cert_info(data);
    let ca = autosign_proxy::x509::der_or_pem(CA, "CERTIFICATE", "fixture").expect("fixture");
    let _ = autosign_proxy::ca::crl::verify_certificate(data, &ca);
    let _ = autosign_proxy::ca::crl::verify_certificate(&ca, data);
});
