//! CRL readers: the served chain, imported `ca_crl.pem` files, Last-Modified.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CA: &[u8] = include_bytes!("../fixtures/ca_crt.pem");

fuzz_target!(|data: &[u8]| {
    let _ = autosign_proxy::ca::crl::crl_info(data);
    let _ = autosign_proxy::ca::crl::crl_this_update(data);
    let ca = autosign_proxy::x509::der_or_pem(CA, "CERTIFICATE", "fixture").expect("fixture");
    let _ = autosign_proxy::ca::crl::verify_crl(data, &ca);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(chain) = autosign_proxy::ca::crl::decode_crl_chain(text) {
            let _ = autosign_proxy::ca::crl::encode_crl_chain(&chain);
        }
    }
});
