//! `ca export`: write this CA out in puppetserver's CA directory layout, so a
//! puppetserver can take it back.

use crate::startup::datadir;

pub async fn export(
    authority: &crate::app::authority::Authority,
    store: &std::sync::Arc<dyn crate::store::Store>,
    dir: &datadir::DataDir,
    cadir: &std::path::Path,
) -> Result<(), String> {
    use crate::ca::cadir::{write_cadir, ExportCa, InventoryLine};
    use crate::ca::issue::cert_info;
    let der_of = |text: &str| -> Result<Vec<u8>, String> {
        crate::x509::pem_blocks(text)
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .map(|(_, der)| der)
            .ok_or_else(|| "empty PEM".to_string())
    };
    let bundle = datadir::read_certs(&dir.ca_cert()).map_err(|e| e.to_string())?;
    let key_pem = std::fs::read_to_string(dir.ca_key()).map_err(|e| e.to_string())?;
    let crl_chain =
        crate::ca::crl::decode_crl_chain(&authority.crl_pem().await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let mut signed = Vec::new();
    let mut inventory = Vec::new();
    for cert in store.ca_certificates().await.map_err(|e| e.to_string())? {
        let der = der_of(&cert.cert_pem)?;
        let info = cert_info(&der).map_err(|e| e.to_string())?;
        if let Some(line) = InventoryLine::for_certificate(&info) {
            inventory.push(line);
        }
        signed.push((cert.certname, der));
    }
    inventory.sort_by_key(|l| l.serial);
    let mut requests = Vec::new();
    for request in store.ca_requests().await.map_err(|e| e.to_string())? {
        requests.push((request.certname, der_of(&request.csr_pem)?));
    }
    let next_serial = store.next_serial().await.map_err(|e| e.to_string())?;
    let ca = ExportCa {
        bundle: &bundle,
        key_pem: &key_pem,
        crl_chain: &crl_chain,
        next_serial,
        inventory: &inventory,
        signed: &signed,
        requests: &requests,
    };
    write_cadir(cadir, &ca).map_err(|e| e.to_string())
}
