//! PEM armour: any text gives blocks or a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(blocks) = autosign_proxy::x509::pem_blocks(text) {
            // What we read, written again, reads back the same.
            for (label, der) in blocks {
                let again = autosign_proxy::x509::pem_encode(&label, &der);
                if let Ok(back) = autosign_proxy::x509::pem_blocks(&again) {
                    assert_eq!(back, vec![(label, der)]);
                }
            }
        }
    }
    let _ = autosign_proxy::x509::der_or_pem(data, "CERTIFICATE", "input");
});
