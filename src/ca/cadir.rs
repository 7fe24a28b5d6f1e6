//! Taking over and writing back a puppetserver CA directory (`$cadir`, e.g.
//! `/etc/puppetlabs/puppetserver/ca`), so an existing Puppet CA can move to this service and
//! back without re-issuing a single agent certificate.
//!
//! Reading checks everything before anything is used: a half-copied or mismatched directory
//! would otherwise surface much later as agents failing TLS, so every refusal names the
//! file (and line) at fault. Writing produces the layout puppetserver 7 expects at startup
//! (its required files are ca_crt.pem, ca_key.pem, ca_crl.pem, inventory.txt and serial).

use std::fmt;
use std::fs::{self};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::crl::{
    decode_crl_chain, encode_crl_chain, same_public_key, verify_certificate, verify_crl,
};
use super::issue::{cert_info, CertInfo};
use super::signer::{Signer, SoftwareKey};
use crate::domain::csr::Csr;
use crate::time;
use crate::x509;

/// Files without which puppetserver itself refuses the directory (inventory.txt aside: an
/// old or hand-made directory may lack it, and an absent inventory is an empty one).
const REQUIRED_FILES: [&str; 4] = ["ca_crt.pem", "ca_key.pem", "ca_crl.pem", "serial"];

const DIR_MODE: u32 = 0o750;
const KEY_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

/// Everything read from a CA directory, checked for consistency.
#[derive(Debug)]
pub struct ImportedCa {
    /// DER, the signing certificate first, then its parents.
    pub bundle: Vec<Vec<u8>>,
    /// ca_key.pem as found (PKCS#1 "RSA PRIVATE KEY", PKCS#8 or SEC1).
    pub key_pem: String,
    /// DER, in file order; the first is the signing CA's.
    pub crl_chain: Vec<Vec<u8>>,
    /// The serial the next certificate gets.
    pub next_serial: u64,
    pub inventory: Vec<InventoryLine>,
    /// (certname, certificate DER), sorted by certname.
    pub signed: Vec<(String, Vec<u8>)>,
    /// (certname, CSR DER), sorted by certname.
    pub requests: Vec<(String, Vec<u8>)>,
}

/// One line of inventory.txt: `0x%04X <notBefore> <notAfter> /CN=<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryLine {
    pub serial: u64,
    pub not_before: i64,
    pub not_after: i64,
    /// As written, e.g. "/CN=web01.example.com".
    pub subject: String,
}

impl InventoryLine {
    /// The line puppetserver writes for a certificate.
    pub fn for_certificate(info: &CertInfo) -> Option<InventoryLine> {
        Some(InventoryLine {
            serial: info.serial_u64()?,
            not_before: info.not_before,
            not_after: info.not_after,
            subject: format!("/CN={}", info.common_name.as_deref()?),
        })
    }

    /// The CN in the subject, when the subject is just `/CN=<name>`.
    pub fn certname(&self) -> Option<&str> {
        self.subject
            .strip_prefix("/CN=")
            .filter(|n| !n.contains('/'))
    }
}

/// Why a CA directory cannot be read or written; the message names the file at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaDirError(pub String);

impl fmt::Display for CaDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaDirError {}

fn err<T>(message: impl Into<String>) -> Result<T, CaDirError> {
    Err(CaDirError(message.into()))
}

/// Reads and validates a puppetserver CA directory, changing nothing.
///
/// Refuses, naming the file (and line): a partial directory (ca_crt.pem, ca_key.pem,
/// ca_crl.pem or serial missing); a key that is not the signing certificate's; a bundle
/// whose certificates do not chain; a CRL chain whose first CRL is not the signing CA's or
/// whose CRLs do not verify against the bundle; an unreadable serial; a malformed inventory
/// line; a certificate in signed/ not issued by the signing CA or stored under another name;
/// a request in requests/ that does not parse or is stored under another name; and a next
/// serial not greater than every serial already used.
pub fn read_cadir(dir: &Path) -> Result<ImportedCa, CaDirError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return err(format!("{} is not a directory", dir.display())),
        Err(e) => return err(format!("cannot open CA directory {}: {e}", dir.display())),
    }
    let missing: Vec<&str> = REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| !dir.join(f).exists())
        .collect();
    if !missing.is_empty() {
        return err(format!(
            "{} is not a complete puppetserver CA directory: missing {}",
            dir.display(),
            missing.join(", ")
        ));
    }

    let bundle = read_bundle(&read_text(dir, "ca_crt.pem")?)?;
    let signing_der = bundle
        .first()
        .ok_or_else(|| CaDirError("ca_crt.pem: no certificate found".into()))?;
    let signing = cert_info(signing_der).map_err(|e| CaDirError(format!("ca_crt.pem: {e}")))?;
    let signing_name = display_cn(&signing);

    let key_pem = read_text(dir, "ca_key.pem")?;
    let key =
        SoftwareKey::from_pem(&key_pem).map_err(|e| CaDirError(format!("ca_key.pem: {e}")))?;
    if !same_public_key(key.spki_der(), &signing.spki_der)
        .map_err(|e| CaDirError(format!("ca_key.pem: {e}")))?
    {
        return err("ca_key.pem does not match the certificate in ca_crt.pem");
    }
    if dir.join("ca_pub.pem").exists() {
        check_public_key(&read_text(dir, "ca_pub.pem")?, &key)?;
    }

    let crl_chain = read_crl_chain(&read_text(dir, "ca_crl.pem")?, &bundle, &signing_name)?;
    let next_serial = parse_serial(&read_text(dir, "serial")?)
        .map_err(|e| CaDirError(format!("serial: {}", e.0)))?;

    let inventory = if dir.join("inventory.txt").exists() {
        parse_inventory(&read_text(dir, "inventory.txt")?)
            .map_err(|e| CaDirError(format!("inventory.txt {}", e.0)))?
    } else {
        Vec::new()
    };

    let mut used_serials: Vec<(u64, String)> = Vec::new();
    for (i, line) in inventory.iter().enumerate() {
        used_serials.push((line.serial, format!("inventory.txt entry {}", i + 1)));
    }
    // A self-signed CA took a serial from its own counter (puppetserver gives it 1).
    if verify_certificate(signing_der, signing_der).is_ok() {
        if let Some(s) = signing.serial_u64() {
            used_serials.push((s, "the CA certificate in ca_crt.pem".to_string()));
        }
    }

    let mut signed = Vec::new();
    for (file, stem) in pem_files(dir, "signed")? {
        let label = format!("signed/{file}");
        let der = read_certificate(
            &fs::read(dir.join("signed").join(&file))
                .map_err(|e| CaDirError(format!("{label}: cannot read: {e}")))?,
        )
        .map_err(|e| CaDirError(format!("{label}: {e}")))?;
        let info = cert_info(&der).map_err(|e| CaDirError(format!("{label}: {e}")))?;
        verify_certificate(&der, signing_der)
            .map_err(|e| CaDirError(format!("{label}: not issued by this CA ({e})")))?;
        let cn = info.common_name.clone().unwrap_or_default();
        if cn != stem {
            return err(format!(
                "{label}: the certificate is for '{cn}', but the file name says '{stem}'"
            ));
        }
        let serial = info.serial_u64().ok_or_else(|| {
            CaDirError(format!(
                "{label}: the serial number does not fit in 64 bits, so it cannot come from this CA's counter"
            ))
        })?;
        used_serials.push((serial, label));
        signed.push((stem, der));
    }

    let mut requests = Vec::new();
    for (file, stem) in pem_files(dir, "requests")? {
        let label = format!("requests/{file}");
        let bytes = fs::read(dir.join("requests").join(&file))
            .map_err(|e| CaDirError(format!("{label}: cannot read: {e}")))?;
        let csr = Csr::parse(&bytes).map_err(|e| CaDirError(format!("{label}: {e}")))?;
        let cn = csr
            .subject_common_names()
            .into_iter()
            .next()
            .unwrap_or_default();
        if cn != stem {
            return err(format!(
                "{label}: the request is for '{cn}', but the file name says '{stem}'"
            ));
        }
        requests.push((stem, csr.der().to_vec()));
    }

    if let Some((serial, source)) = used_serials.iter().max_by_key(|(s, _)| *s) {
        if next_serial <= *serial {
            return err(format!(
                "serial: the next serial 0x{next_serial:04X} is not greater than serial 0x{serial:04X} already used by {source}"
            ));
        }
    }

    Ok(ImportedCa {
        bundle,
        key_pem,
        crl_chain,
        next_serial,
        inventory,
        signed,
        requests,
    })
}

fn read_text(dir: &Path, name: &str) -> Result<String, CaDirError> {
    fs::read_to_string(dir.join(name)).map_err(|e| CaDirError(format!("{name}: cannot read: {e}")))
}

fn display_cn(info: &CertInfo) -> String {
    match &info.common_name {
        Some(cn) => format!("CN={cn}"),
        None => "a certificate without a CN".to_string(),
    }
}

fn read_bundle(text: &str) -> Result<Vec<Vec<u8>>, CaDirError> {
    let bundle: Vec<Vec<u8>> = x509::pem_blocks(text)
        .map_err(|e| CaDirError(format!("ca_crt.pem: {e}")))?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, d)| d)
        .collect();
    if bundle.is_empty() {
        return err("ca_crt.pem: no certificate found");
    }
    let mut infos = Vec::with_capacity(bundle.len());
    for (i, der) in bundle.iter().enumerate() {
        let info = cert_info(der)
            .map_err(|e| CaDirError(format!("ca_crt.pem: certificate {}: {e}", i + 1)))?;
        if !info.is_ca {
            return err(format!(
                "ca_crt.pem: certificate {} ({}) is not a CA certificate (no basicConstraints CA:TRUE)",
                i + 1,
                display_cn(&info)
            ));
        }
        infos.push(info);
    }
    // Agents verify the served bundle as a chain: each certificate must be signed by the next.
    for (i, pair) in bundle.windows(2).enumerate() {
        if let [child, parent] = pair {
            verify_certificate(child, parent).map_err(|e| {
                let name = |n: usize| infos.get(n).map(display_cn).unwrap_or_default();
                CaDirError(format!(
                    "ca_crt.pem: certificate {} ({}) is not signed by certificate {} ({}): {e}",
                    i + 1,
                    name(i),
                    i + 2,
                    name(i + 1)
                ))
            })?;
        }
    }
    Ok(bundle)
}

fn check_public_key(text: &str, key: &SoftwareKey) -> Result<(), CaDirError> {
    let spki = x509::pem_blocks(text)
        .map_err(|e| CaDirError(format!("ca_pub.pem: {e}")))?
        .into_iter()
        .find(|(label, _)| label == "PUBLIC KEY")
        .map(|(_, d)| d)
        .ok_or_else(|| CaDirError("ca_pub.pem: no PUBLIC KEY block".into()))?;
    match same_public_key(&spki, key.spki_der()) {
        Ok(true) => Ok(()),
        Ok(false) => err("ca_pub.pem does not match ca_key.pem"),
        Err(e) => err(format!("ca_pub.pem: {e}")),
    }
}

/// Every CRL must verify against a certificate of the bundle, and the first must be the
/// signing CA's: that is the one revocations are added to and agents check first.
fn read_crl_chain(
    text: &str,
    bundle: &[Vec<u8>],
    signing_name: &str,
) -> Result<Vec<Vec<u8>>, CaDirError> {
    let chain = decode_crl_chain(text).map_err(|e| CaDirError(format!("ca_crl.pem: {e}")))?;
    for (i, crl) in chain.iter().enumerate() {
        if i == 0 {
            if let Some(signing) = bundle.first() {
                verify_crl(crl, signing).map_err(|e| {
                    CaDirError(format!(
                        "ca_crl.pem: CRL 1 is not a valid CRL of the signing CA ({signing_name}): {e}"
                    ))
                })?;
            }
            continue;
        }
        if !bundle.iter().any(|cert| verify_crl(crl, cert).is_ok()) {
            let issuer = super::crl::crl_info(crl)
                .ok()
                .and_then(|info| info.issuer_common_name)
                .map(|cn| format!("CN={cn}"))
                .unwrap_or_else(|| "an unreadable issuer".into());
            return err(format!(
                "ca_crl.pem: CRL {} (issued by {issuer}) does not verify against any certificate in ca_crt.pem",
                i + 1
            ));
        }
    }
    Ok(chain)
}

/// The `.pem` files of a subdirectory as (file name, certname), sorted; none if the
/// subdirectory is absent. Other files (editor backups and the like) are not Puppet's.
fn pem_files(dir: &Path, sub: &str) -> Result<Vec<(String, String)>, CaDirError> {
    let path = dir.join(sub);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let entries =
        fs::read_dir(&path).map_err(|e| CaDirError(format!("{sub}/: cannot list: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CaDirError(format!("{sub}/: cannot list: {e}")))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return err(format!("{sub}/: file name {name:?} is not UTF-8"));
        };
        let Some(stem) = name.strip_suffix(".pem") else {
            continue;
        };
        let is_file = entry
            .file_type()
            .map_err(|e| CaDirError(format!("{sub}/{name}: {e}")))?
            .is_file()
            || entry.path().is_file();
        if is_file {
            out.push((name.to_string(), stem.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// The first CERTIFICATE of a PEM file (or the bytes themselves, if DER).
fn read_certificate(bytes: &[u8]) -> Result<Vec<u8>, CaDirError> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CaDirError("neither a PEM nor a DER certificate".into()))?;
    x509::pem_blocks(text)
        .map_err(|e| CaDirError(e.to_string()))?
        .into_iter()
        .find(|(label, _)| label == "CERTIFICATE")
        .map(|(_, d)| d)
        .ok_or_else(|| CaDirError("no CERTIFICATE block".into()))
}

/// The serial file: the next serial in hex, any case or width (puppetserver writes `%04X`
/// with no newline).
pub fn parse_serial(text: &str) -> Result<u64, CaDirError> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return err(format!("'{t}' is not a hexadecimal serial number"));
    }
    let serial = u64::from_str_radix(digits.trim_start_matches('0'), 16).or_else(|e| {
        if digits.bytes().all(|b| b == b'0') {
            Ok(0)
        } else {
            Err(CaDirError(format!(
                "'{t}' is too large a serial number: {e}"
            )))
        }
    })?;
    if serial == 0 {
        return err(format!(
            "'{t}' is zero, and certificate serial numbers must be positive"
        ));
    }
    Ok(serial)
}

/// Reads inventory.txt. Blank lines are skipped; any other line that is not
/// `<hex serial> <notBefore> <notAfter> /<subject>` is an error naming its line number.
pub fn parse_inventory(text: &str) -> Result<Vec<InventoryLine>, CaDirError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let mut rest = line;
        let mut field = || {
            let (head, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            rest = tail.trim_start();
            head
        };
        let serial_text = field();
        let not_before_text = field();
        let not_after_text = field();
        let subject = rest;
        if subject.is_empty() {
            return err(format!(
                "line {n}: expected '0x<serial> <notBefore> <notAfter> /CN=<name>', got '{line}'"
            ));
        }
        let serial = parse_inventory_serial(serial_text)
            .ok_or_else(|| CaDirError(format!("line {n}: bad serial '{serial_text}'")))?;
        let not_before = parse_inventory_date(not_before_text)
            .ok_or_else(|| CaDirError(format!("line {n}: bad date '{not_before_text}'")))?;
        let not_after = parse_inventory_date(not_after_text)
            .ok_or_else(|| CaDirError(format!("line {n}: bad date '{not_after_text}'")))?;
        if !subject.starts_with('/') {
            return err(format!(
                "line {n}: bad subject '{subject}' (expected /CN=<name>)"
            ));
        }
        out.push(InventoryLine {
            serial,
            not_before,
            not_after,
            subject: subject.to_string(),
        });
    }
    Ok(out)
}

fn parse_inventory_serial(text: &str) -> Option<u64> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(significant, 16).ok()
}

/// `2024-05-01T12:00:00UTC` (also `Z` or `+00:00`); impossible dates such as the 30th of
/// February are refused rather than rolled over.
fn parse_inventory_date(text: &str) -> Option<i64> {
    let t = time::parse_rfc3339(text)?;
    let body = text
        .strip_suffix("UTC")
        .or_else(|| text.strip_suffix('Z'))
        .or_else(|| text.strip_suffix("+00:00"))?;
    let canonical = time::rfc3339(t);
    (canonical.strip_suffix('Z') == Some(body)).then_some(t)
}

/// One inventory line exactly as puppetserver writes it, without the newline:
/// `0x0002 2024-05-01T12:00:00UTC 2029-05-01T12:00:00UTC /CN=web01`.
pub fn format_inventory_line(line: &InventoryLine) -> String {
    format!(
        "0x{:04X} {} {} {}",
        line.serial,
        time::puppet(line.not_before),
        time::puppet(line.not_after),
        line.subject
    )
}

/// What [`write_cadir`] exports.
#[derive(Debug, Clone, Copy)]
pub struct ExportCa<'a> {
    /// DER, the signing certificate first.
    pub bundle: &'a [Vec<u8>],
    pub key_pem: &'a str,
    /// DER, the signing CA's CRL first.
    pub crl_chain: &'a [Vec<u8>],
    pub next_serial: u64,
    pub inventory: &'a [InventoryLine],
    /// (certname, certificate DER)
    pub signed: &'a [(String, Vec<u8>)],
    /// (certname, CSR DER)
    pub requests: &'a [(String, Vec<u8>)],
}

/// Writes the puppetserver 7 layout into `dir` (created if absent; refused if not empty):
/// ca_crt.pem, ca_key.pem (mode 0600 from creation), ca_pub.pem, ca_crl.pem, serial,
/// inventory.txt, infra_crl.pem (a copy of the CRL chain: every revocation is listed, so it
/// is correct for infra nodes too), empty infra_inventory.txt and infra_serials,
/// requests/<name>.pem and signed/<name>.pem. Directories are 0750, other files 0644.
///
/// The input is checked before anything is written. Should writing fail midway, the
/// directory is left partial and the error says so; remove it before trying again.
pub fn write_cadir(dir: &Path, ca: &ExportCa) -> Result<(), CaDirError> {
    let signing = ca
        .bundle
        .first()
        .ok_or_else(|| CaDirError("nothing to export: the CA bundle is empty".into()))?;
    let signing_info =
        cert_info(signing).map_err(|e| CaDirError(format!("the signing certificate: {e}")))?;
    let key =
        SoftwareKey::from_pem(ca.key_pem).map_err(|e| CaDirError(format!("the CA key: {e}")))?;
    if !same_public_key(key.spki_der(), &signing_info.spki_der)
        .map_err(|e| CaDirError(format!("the CA key: {e}")))?
    {
        return err("the CA key does not match the signing certificate");
    }
    if ca.crl_chain.is_empty() {
        return err("nothing to export: the CRL chain is empty (puppetserver requires ca_crl.pem)");
    }
    if ca.next_serial == 0 {
        return err("the next serial must be positive");
    }
    check_names("signed", ca.signed)?;
    check_names("requests", ca.requests)?;

    prepare_empty_dir(dir)?;
    let partial = |what: &str, e: std::io::Error| {
        CaDirError(format!(
            "export to {} failed writing {what}: {e}; the directory is left partially written",
            dir.display()
        ))
    };

    let mut bundle_pem = String::new();
    for cert in ca.bundle {
        bundle_pem.push_str(&x509::pem_encode("CERTIFICATE", cert));
    }
    let crl_pem = encode_crl_chain(ca.crl_chain);
    let inventory: String = ca
        .inventory
        .iter()
        .map(|l| format_inventory_line(l) + "\n")
        .collect();
    let pub_pem = x509::pem_encode("PUBLIC KEY", key.spki_der());
    let serial = format!("{:04X}", ca.next_serial);
    let files: [(&str, &[u8], u32); 9] = [
        ("ca_key.pem", ca.key_pem.as_bytes(), KEY_MODE),
        ("ca_crt.pem", bundle_pem.as_bytes(), PUBLIC_MODE),
        ("ca_pub.pem", pub_pem.as_bytes(), PUBLIC_MODE),
        ("ca_crl.pem", crl_pem.as_bytes(), PUBLIC_MODE),
        ("serial", serial.as_bytes(), PUBLIC_MODE),
        ("inventory.txt", inventory.as_bytes(), PUBLIC_MODE),
        ("infra_crl.pem", crl_pem.as_bytes(), PUBLIC_MODE),
        ("infra_inventory.txt", b"", PUBLIC_MODE),
        ("infra_serials", b"", PUBLIC_MODE),
    ];
    for (name, bytes, mode) in files {
        crate::files::write_new(&dir.join(name), bytes, mode).map_err(|e| partial(name, e))?;
    }

    for (sub, label, items) in [
        ("requests", "CERTIFICATE REQUEST", ca.requests),
        ("signed", "CERTIFICATE", ca.signed),
    ] {
        let subdir = dir.join(sub);
        create_dir(&subdir).map_err(|e| partial(&format!("{sub}/"), e))?;
        for (name, der) in items {
            let file = format!("{name}.pem");
            crate::files::write_new(
                &subdir.join(&file),
                x509::pem_encode(label, der).as_bytes(),
                PUBLIC_MODE,
            )
            .map_err(|e| partial(&format!("{sub}/{file}"), e))?;
        }
        sync_dir(&subdir).map_err(|e| partial(&format!("{sub}/"), e))?;
    }
    sync_dir(dir).map_err(|e| partial(".", e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent).map_err(|e| partial("the parent directory", e))?;
    }
    Ok(())
}

/// Certnames become file names: refuse anything that could leave the directory or clash.
fn check_names(sub: &str, items: &[(String, Vec<u8>)]) -> Result<(), CaDirError> {
    let mut seen: Vec<&str> = Vec::with_capacity(items.len());
    for (name, _) in items {
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.contains('\0')
        {
            return err(format!(
                "refusing to export {sub}/{name:?}.pem: not a usable file name"
            ));
        }
        seen.push(name);
    }
    seen.sort_unstable();
    if let Some(pair) = seen.windows(2).find(|w| w.first() == w.get(1)) {
        return err(format!(
            "refusing to export: '{}' appears twice in {sub}",
            pair.first().copied().unwrap_or_default()
        ));
    }
    Ok(())
}

fn prepare_empty_dir(dir: &Path) -> Result<(), CaDirError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return err(format!(
                    "refusing to export into {}: the directory is not empty",
                    dir.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)))
            .map_err(|e| CaDirError(format!("cannot create {}: {e}", dir.display()))),
        Err(e) => err(format!("cannot open {}: {e}", dir.display())),
    }
}

fn create_dir(path: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().mode(DIR_MODE).create(path)?;
    // The umask may have taken bits away; the mode is part of the layout.
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::crl::{build_crl, CrlReason, CrlSpec, RevokedEntry};
    use crate::ca::issue::{issue_leaf, self_signed_ca, CaCertSpec, LeafSpec};
    use crate::ca::signer::KeyAlgorithm;
    use crate::ca::testutil::{openssl, TempDir};
    use std::path::PathBuf;
    use std::process::Command;

    const YEAR: i64 = 365 * 86_400;
    const CA_NAME: &str = "Puppet CA: puppet.example.com";

    struct Fixture {
        _tmp: TempDir,
        cadir: PathBuf,
        key_pem: String,
        ca_cert: Vec<u8>,
        crl: Vec<u8>,
        inventory_text: String,
        web01: Vec<u8>,
    }

    fn leaf(key: &SoftwareKey, ca_cert: &[u8], name: &str, serial: u64, now: i64) -> Vec<u8> {
        let leaf_key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        issue_leaf(
            key,
            ca_cert,
            &LeafSpec {
                common_name: name,
                subject_spki_der: leaf_key.spki_der(),
                serial,
                not_before: now - 86_400,
                not_after: now + 5 * YEAR,
                subject_alt_names: &[],
                extra_extensions: &[],
            },
        )
        .unwrap()
    }

    /// A CA directory in puppetserver's layout, made with our issuer, openssl's PKCS#1 key
    /// and an openssl CSR: CA serial 1, web01 serial 2, db01 serial 3 (revoked), next 0004.
    fn fixture() -> Fixture {
        let tmp = TempDir::new("cadir");
        let cadir = tmp.path.join("ca");
        fs::create_dir_all(cadir.join("signed")).unwrap();
        fs::create_dir_all(cadir.join("requests")).unwrap();
        // puppetserver writes the CA key as PKCS#1.
        openssl(&[
            "genrsa",
            "-traditional",
            "-out",
            &cadir.join("ca_key.pem").to_string_lossy(),
            "2048",
        ]);
        let key_pem = fs::read_to_string(cadir.join("ca_key.pem")).unwrap();
        assert!(key_pem.contains("BEGIN RSA PRIVATE KEY"));
        let key = SoftwareKey::from_pem(&key_pem).unwrap();
        let now = time::now();
        let ca_cert = self_signed_ca(
            &key,
            &CaCertSpec {
                common_name: CA_NAME,
                serial: 1,
                not_before: now - 86_400,
                not_after: now + 15 * YEAR,
            },
        )
        .unwrap();
        let web01 = leaf(&key, &ca_cert, "web01.example.com", 2, now);
        let db01 = leaf(&key, &ca_cert, "db01.example.com", 3, now);
        let crl = build_crl(
            &key,
            &ca_cert,
            &CrlSpec {
                number: 1,
                this_update: now,
                next_update: now + 5 * YEAR,
                revoked: &[RevokedEntry {
                    serial: vec![3],
                    revoked_at: now,
                    reason: Some(CrlReason::KeyCompromise),
                }],
            },
        )
        .unwrap();
        let w = |name: &str, bytes: &[u8]| fs::write(cadir.join(name), bytes).unwrap();
        w(
            "ca_crt.pem",
            x509::pem_encode("CERTIFICATE", &ca_cert).as_bytes(),
        );
        w(
            "ca_pub.pem",
            x509::pem_encode("PUBLIC KEY", key.spki_der()).as_bytes(),
        );
        w("ca_crl.pem", x509::pem_encode("X509 CRL", &crl).as_bytes());
        w("serial", b"0004");
        let mut inventory_text = String::new();
        for cert in [&ca_cert, &web01, &db01] {
            let info = cert_info(cert).unwrap();
            // Written out by hand in puppetserver's format, independently of our formatter.
            inventory_text.push_str(&format!(
                "0x{:04X} {} {} /CN={}\n",
                info.serial_u64().unwrap(),
                time::puppet(info.not_before),
                time::puppet(info.not_after),
                info.common_name.unwrap()
            ));
        }
        w("inventory.txt", inventory_text.as_bytes());
        w(
            "signed/web01.example.com.pem",
            x509::pem_encode("CERTIFICATE", &web01).as_bytes(),
        );
        w(
            "signed/db01.example.com.pem",
            x509::pem_encode("CERTIFICATE", &db01).as_bytes(),
        );
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=pending01.example.com",
            "-keyout",
            &tmp.file("pending.key"),
            "-out",
            &cadir
                .join("requests/pending01.example.com.pem")
                .to_string_lossy(),
        ]);
        Fixture {
            _tmp: tmp,
            cadir,
            key_pem,
            ca_cert,
            crl,
            inventory_text,
            web01,
        }
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn reads_a_puppetserver_layout() {
        let f = fixture();
        let ca = read_cadir(&f.cadir).unwrap();
        assert_eq!(ca.bundle, vec![f.ca_cert.clone()]);
        assert_eq!(ca.key_pem, f.key_pem);
        assert_eq!(ca.crl_chain, vec![f.crl.clone()]);
        assert_eq!(ca.next_serial, 4);
        assert_eq!(
            ca.inventory.iter().map(|l| l.serial).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(ca.inventory[0].subject, format!("/CN={CA_NAME}"));
        assert_eq!(ca.inventory[1].certname(), Some("web01.example.com"));
        let web01 = cert_info(&f.web01).unwrap();
        assert_eq!(
            ca.inventory[1],
            InventoryLine::for_certificate(&web01).unwrap()
        );
        let names: Vec<&str> = ca.signed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["db01.example.com", "web01.example.com"]);
        assert_eq!(ca.signed[1].1, f.web01);
        assert_eq!(ca.requests.len(), 1);
        assert_eq!(ca.requests[0].0, "pending01.example.com");
        let csr = Csr::parse(&ca.requests[0].1).unwrap();
        assert_eq!(csr.subject_common_names(), vec!["pending01.example.com"]);
        let text: String = ca
            .inventory
            .iter()
            .map(|l| format_inventory_line(l) + "\n")
            .collect();
        assert_eq!(text, f.inventory_text);
    }

    #[test]
    fn round_trips_through_write_and_openssl_agrees() {
        let f = fixture();
        let first = read_cadir(&f.cadir).unwrap();
        let out_tmp = TempDir::new("cadir-export");
        let out = out_tmp.path.join("nested/ca");
        let export = ExportCa {
            bundle: &first.bundle,
            key_pem: &first.key_pem,
            crl_chain: &first.crl_chain,
            next_serial: first.next_serial,
            inventory: &first.inventory,
            signed: &first.signed,
            requests: &first.requests,
        };
        write_cadir(&out, &export).unwrap();
        let second = read_cadir(&out).unwrap();
        assert_eq!(second.bundle, first.bundle);
        assert_eq!(second.key_pem, first.key_pem);
        assert_eq!(second.crl_chain, first.crl_chain);
        assert_eq!(second.next_serial, first.next_serial);
        assert_eq!(second.inventory, first.inventory);
        assert_eq!(second.signed, first.signed);
        assert_eq!(second.requests, first.requests);

        // Byte for byte what puppetserver writes.
        assert_eq!(fs::read_to_string(out.join("serial")).unwrap(), "0004");
        assert_eq!(
            fs::read_to_string(out.join("inventory.txt")).unwrap(),
            f.inventory_text
        );
        for same in ["ca_crt.pem", "ca_key.pem", "ca_pub.pem", "ca_crl.pem"] {
            assert_eq!(
                fs::read(out.join(same)).unwrap(),
                fs::read(f.cadir.join(same)).unwrap(),
                "{same}"
            );
        }
        assert_eq!(mode(&out.join("ca_key.pem")), 0o600);
        assert_eq!(mode(&out.join("ca_crt.pem")), 0o644);
        for d in [out.clone(), out.join("signed"), out.join("requests")] {
            assert_eq!(mode(&d), 0o750, "{}", d.display());
        }
        for extra in ["infra_crl.pem", "infra_inventory.txt", "infra_serials"] {
            assert!(out.join(extra).is_file(), "{extra}");
        }

        // An independent verifier reads the exported files as a CA.
        let verify = |cert: &str| {
            Command::new("openssl")
                .args(["verify", "-crl_check", "-CAfile", "ca_crt.pem"])
                .args(["-CRLfile", "ca_crl.pem", cert])
                .current_dir(&out)
                .output()
                .unwrap()
        };
        let good = verify("signed/web01.example.com.pem");
        assert!(good.status.success(), "{good:?}");
        let revoked = verify("signed/db01.example.com.pem");
        assert!(!revoked.status.success());
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&revoked.stdout),
            String::from_utf8_lossy(&revoked.stderr)
        );
        assert!(said.contains("certificate revoked"), "{said}");
        openssl(&[
            "req",
            "-verify",
            "-noout",
            "-in",
            &out.join("requests/pending01.example.com.pem")
                .to_string_lossy(),
        ]);

        let again = write_cadir(&out, &export).unwrap_err();
        assert!(again.0.contains("the directory is not empty"), "{again}");
        // An existing empty directory is fine.
        let empty = out_tmp.path.join("empty");
        fs::create_dir(&empty).unwrap();
        write_cadir(&empty, &export).unwrap();
        read_cadir(&empty).unwrap();
    }

    /// Copies the fixture, lets `spoil` damage the copy, and returns read_cadir's error.
    fn refusal(f: &Fixture, spoil: impl FnOnce(&Path)) -> String {
        let tmp = TempDir::new("cadir-bad");
        let dir = tmp.path.join("ca");
        copy_dir(&f.cadir, &dir);
        spoil(&dir);
        match read_cadir(&dir) {
            Ok(_) => panic!("read_cadir accepted a spoiled directory"),
            Err(e) => e.0,
        }
    }

    fn other_ca_cert(name: &str) -> (SoftwareKey, Vec<u8>) {
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let now = time::now();
        let cert = self_signed_ca(
            &key,
            &CaCertSpec {
                common_name: name,
                serial: 1,
                not_before: now - 86_400,
                not_after: now + YEAR,
            },
        )
        .unwrap();
        (key, cert)
    }

    #[test]
    fn refuses_inconsistent_directories_precisely() {
        let f = fixture();
        let rm = |name: &'static str| move |d: &Path| fs::remove_file(d.join(name)).unwrap();

        let e = refusal(&f, rm("ca_key.pem"));
        assert!(
            e.contains("is not a complete puppetserver CA directory: missing ca_key.pem"),
            "{e}"
        );
        let e = refusal(&f, |d| {
            fs::remove_file(d.join("ca_crl.pem")).unwrap();
            fs::remove_file(d.join("serial")).unwrap();
        });
        assert!(e.ends_with("missing ca_crl.pem, serial"), "{e}");
        let e = refusal(&f, |d| fs::remove_dir_all(d).unwrap());
        assert!(e.starts_with("cannot open CA directory"), "{e}");

        let e = refusal(&f, |d| {
            let other = SoftwareKey::generate(KeyAlgorithm::Rsa2048).unwrap();
            fs::write(d.join("ca_key.pem"), other.to_pkcs8_pem().unwrap()).unwrap();
        });
        assert_eq!(e, "ca_key.pem does not match the certificate in ca_crt.pem");
        let e = refusal(&f, |d| {
            fs::write(d.join("ca_key.pem"), "not a key").unwrap()
        });
        assert!(e.starts_with("ca_key.pem: "), "{e}");
        let e = refusal(&f, |d| {
            let other = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
            fs::write(
                d.join("ca_pub.pem"),
                x509::pem_encode("PUBLIC KEY", other.spki_der()),
            )
            .unwrap();
        });
        assert_eq!(e, "ca_pub.pem does not match ca_key.pem");

        let e = refusal(&f, |d| {
            let mut lines: Vec<String> = f.inventory_text.lines().map(str::to_string).collect();
            let fields: Vec<String> = lines[1].splitn(3, ' ').map(str::to_string).collect();
            lines[1] = format!("{} 2024-13-01T12:00:00UTC {}", fields[0], fields[2]);
            fs::write(d.join("inventory.txt"), lines.join("\n")).unwrap();
        });
        assert_eq!(e, "inventory.txt line 2: bad date '2024-13-01T12:00:00UTC'");

        let e = refusal(&f, |d| {
            let (other_key, other_cert) = other_ca_cert(CA_NAME);
            let rogue = leaf(&other_key, &other_cert, "rogue", 99, time::now());
            fs::write(
                d.join("signed/rogue.pem"),
                x509::pem_encode("CERTIFICATE", &rogue),
            )
            .unwrap();
        });
        assert!(
            e.starts_with("signed/rogue.pem: not issued by this CA"),
            "{e}"
        );
        let e = refusal(&f, |d| {
            fs::copy(
                d.join("signed/web01.example.com.pem"),
                d.join("signed/web02.example.com.pem"),
            )
            .unwrap();
        });
        assert_eq!(
            e,
            "signed/web02.example.com.pem: the certificate is for 'web01.example.com', but the file name says 'web02.example.com'"
        );
        let e = refusal(&f, |d| {
            fs::write(
                d.join("signed/broken.pem"),
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            )
            .unwrap();
        });
        assert!(e.starts_with("signed/broken.pem: "), "{e}");

        let e = refusal(&f, |d| fs::write(d.join("serial"), "0003\n").unwrap());
        assert!(
            e.starts_with(
                "serial: the next serial 0x0003 is not greater than serial 0x0003 already used by"
            ),
            "{e}"
        );
        let e = refusal(&f, |d| {
            fs::remove_file(d.join("inventory.txt")).unwrap();
            fs::write(d.join("serial"), "2").unwrap();
        });
        assert_eq!(
            e,
            "serial: the next serial 0x0002 is not greater than serial 0x0003 already used by signed/db01.example.com.pem"
        );
        let e = refusal(&f, |d| fs::write(d.join("serial"), "zz").unwrap());
        assert_eq!(e, "serial: 'zz' is not a hexadecimal serial number");

        let e = refusal(&f, |d| {
            fs::write(d.join("requests/junk.pem"), "this is not a CSR").unwrap();
        });
        assert!(e.starts_with("requests/junk.pem: "), "{e}");

        let e = refusal(&f, |d| {
            let (other_key, other_cert) = other_ca_cert("Another CA");
            let crl = build_crl(
                &other_key,
                &other_cert,
                &CrlSpec {
                    number: 1,
                    this_update: 0,
                    next_update: YEAR,
                    revoked: &[],
                },
            )
            .unwrap();
            fs::write(d.join("ca_crl.pem"), x509::pem_encode("X509 CRL", &crl)).unwrap();
        });
        assert!(
            e.starts_with(&format!(
                "ca_crl.pem: CRL 1 is not a valid CRL of the signing CA (CN={CA_NAME})"
            )),
            "{e}"
        );
        let e = refusal(&f, |d| {
            let mut crl = f.crl.clone();
            let last = crl.len() - 1;
            crl[last] ^= 1;
            fs::write(d.join("ca_crl.pem"), x509::pem_encode("X509 CRL", &crl)).unwrap();
        });
        assert!(e.contains("does not verify"), "{e}");
        let e = refusal(&f, |d| {
            let (_, other_cert) = other_ca_cert("Stranger");
            let mut text = fs::read_to_string(d.join("ca_crt.pem")).unwrap();
            text.push_str(&x509::pem_encode("CERTIFICATE", &other_cert));
            fs::write(d.join("ca_crt.pem"), text).unwrap();
        });
        assert!(
            e.starts_with(&format!(
                "ca_crt.pem: certificate 1 (CN={CA_NAME}) is not signed by certificate 2 (CN=Stranger)"
            )),
            "{e}"
        );
    }

    #[test]
    fn reads_a_two_level_bundle_and_crl_chain() {
        // An intermediate signing CA under a root, as after `puppetserver ca import`.
        let tmp = TempDir::new("cadir-chain");
        let now = time::now();
        let (root_key, root_cert) = other_ca_cert("Root CA");
        let int_key = SoftwareKey::generate(KeyAlgorithm::EcP384).unwrap();
        // issue_leaf makes CA:FALSE certificates, so let openssl sign the intermediate.
        let p = |n: &str| tmp.file(n);
        fs::write(p("root.pem"), x509::pem_encode("CERTIFICATE", &root_cert)).unwrap();
        fs::write(p("root.key"), root_key.to_pkcs8_pem().unwrap()).unwrap();
        fs::write(p("int.key"), int_key.to_pkcs8_pem().unwrap()).unwrap();
        fs::write(
            p("ext.cnf"),
            "[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-new",
            "-key",
            &p("int.key"),
            "-subj",
            "/CN=Intermediate CA",
            "-out",
            &p("int.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p("int.csr"),
            "-CA",
            &p("root.pem"),
            "-CAkey",
            &p("root.key"),
            "-set_serial",
            "2",
            "-days",
            "365",
            "-extfile",
            &p("ext.cnf"),
            "-extensions",
            "v3",
            "-out",
            &p("int.pem"),
        ]);
        let int_cert = x509::pem_blocks(&fs::read_to_string(p("int.pem")).unwrap())
            .unwrap()
            .remove(0)
            .1;
        let spec = CrlSpec {
            number: 1,
            this_update: now,
            next_update: now + YEAR,
            revoked: &[],
        };
        let int_crl = build_crl(&int_key, &int_cert, &spec).unwrap();
        let root_crl = build_crl(&root_key, &root_cert, &spec).unwrap();
        let web = leaf(&int_key, &int_cert, "web", 5, now);

        let cadir = tmp.path.join("ca");
        let export = ExportCa {
            bundle: &[int_cert.clone(), root_cert.clone()],
            key_pem: &int_key.to_pkcs8_pem().unwrap(),
            crl_chain: &[int_crl.clone(), root_crl.clone()],
            next_serial: 6,
            inventory: &[],
            signed: &[("web".to_string(), web)],
            requests: &[],
        };
        write_cadir(&cadir, &export).unwrap();
        let ca = read_cadir(&cadir).unwrap();
        assert_eq!(ca.bundle.len(), 2);
        assert_eq!(ca.crl_chain, vec![int_crl.clone(), root_crl.clone()]);
        // The intermediate's own serial comes from the root's counter and is not checked
        // against ours; web's is.
        assert_eq!(ca.next_serial, 6);

        // The root's CRL first is refused: the signing CA's comes first.
        fs::write(
            cadir.join("ca_crl.pem"),
            encode_crl_chain(&[root_crl, int_crl]),
        )
        .unwrap();
        let e = read_cadir(&cadir).unwrap_err();
        assert!(
            e.0.starts_with(
                "ca_crl.pem: CRL 1 is not a valid CRL of the signing CA (CN=Intermediate CA)"
            ),
            "{e}"
        );
    }

    #[test]
    fn inventory_lines_parse_and_format_like_puppetserver() {
        let line = InventoryLine {
            serial: 0x2f,
            not_before: 1_714_564_800,
            not_after: 1_872_331_200,
            subject: "/CN=web01".into(),
        };
        assert_eq!(
            format_inventory_line(&line),
            "0x002F 2024-05-01T12:00:00UTC 2029-05-01T12:00:00UTC /CN=web01"
        );
        let big = InventoryLine {
            serial: 0x1_2345,
            ..line.clone()
        };
        assert!(format_inventory_line(&big).starts_with("0x12345 "));
        let text = "0x0001 2024-05-01T12:00:00UTC 2039-05-01T12:00:00UTC /CN=Puppet CA: puppet.example.com\r\n\
                    \n\
                    0x002f 2024-05-01T12:00:00UTC 2029-05-01T12:00:00UTC /CN=web01\n";
        let lines = parse_inventory(text).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].subject, "/CN=Puppet CA: puppet.example.com");
        assert_eq!(lines[0].certname(), Some("Puppet CA: puppet.example.com"));
        assert_eq!(lines[1], line);
        assert_eq!(parse_inventory("").unwrap(), vec![]);

        for (bad, message) in [
            ("0x01 2024-05-01T12:00:00UTC", "line 1: expected '0x<serial> <notBefore> <notAfter> /CN=<name>', got '0x01 2024-05-01T12:00:00UTC'"),
            ("zz 2024-05-01T12:00:00UTC 2029-05-01T12:00:00UTC /CN=a", "line 1: bad serial 'zz'"),
            ("0x01 2024-02-30T12:00:00UTC 2029-05-01T12:00:00UTC /CN=a", "line 1: bad date '2024-02-30T12:00:00UTC'"),
            ("0x01 2024-05-01T12:00:00UTC 2029-05-01 /CN=a", "line 1: bad date '2029-05-01'"),
            ("0x01 2024-05-01T12:00:00UTC 2029-05-01T12:00:00UTC CN=a", "line 1: bad subject 'CN=a' (expected /CN=<name>)"),
        ] {
            assert_eq!(parse_inventory(bad).unwrap_err().0, message);
        }
        let e = parse_inventory(&format!(
            "{}\n\n{}",
            "0x01 2024-05-01T12:00:00UTC 2029-05-01T12:00:00UTC /CN=a", "junk"
        ))
        .unwrap_err();
        assert!(e.0.starts_with("line 3: "), "{e}");
    }

    #[test]
    fn serial_file_any_case_or_width() {
        assert_eq!(parse_serial("000A").unwrap(), 10);
        assert_eq!(parse_serial("000a\n").unwrap(), 10);
        assert_eq!(parse_serial("1F2E").unwrap(), 0x1f2e);
        assert_eq!(parse_serial("0000000000000000000012").unwrap(), 0x12);
        assert!(parse_serial("").is_err());
        assert!(parse_serial("0000").unwrap_err().0.contains("zero"));
        assert!(parse_serial("1_0").is_err());
        assert!(parse_serial("1FFFFFFFFFFFFFFFF")
            .unwrap_err()
            .0
            .contains("too large"));
    }

    #[test]
    fn write_refuses_bad_input_before_touching_disk() {
        let f = fixture();
        let ca = read_cadir(&f.cadir).unwrap();
        let tmp = TempDir::new("cadir-write-bad");
        let base = ExportCa {
            bundle: &ca.bundle,
            key_pem: &ca.key_pem,
            crl_chain: &ca.crl_chain,
            next_serial: ca.next_serial,
            inventory: &ca.inventory,
            signed: &ca.signed,
            requests: &ca.requests,
        };
        let other_key = SoftwareKey::generate(KeyAlgorithm::EcP256)
            .unwrap()
            .to_pkcs8_pem()
            .unwrap();
        let escape = [("../evil".to_string(), f.web01.clone())];
        let twice = [
            ("a".to_string(), f.web01.clone()),
            ("a".to_string(), f.web01.clone()),
        ];
        for (spec, message) in [
            (
                ExportCa {
                    key_pem: &other_key,
                    ..base
                },
                "the CA key does not match the signing certificate",
            ),
            (
                ExportCa {
                    crl_chain: &[],
                    ..base
                },
                "nothing to export: the CRL chain is empty",
            ),
            (
                ExportCa {
                    bundle: &[],
                    ..base
                },
                "nothing to export: the CA bundle is empty",
            ),
            (
                ExportCa {
                    signed: &escape,
                    ..base
                },
                "not a usable file name",
            ),
            (
                ExportCa {
                    requests: &twice,
                    ..base
                },
                "'a' appears twice in requests",
            ),
        ] {
            let dir = tmp.path.join("out");
            let e = write_cadir(&dir, &spec).unwrap_err();
            assert!(e.0.contains(message), "{e}");
            assert!(!dir.exists(), "{message}: wrote before refusing");
        }
    }

    /// A CA directory written by a real puppetserver, when one is at hand:
    /// `AUTOSIGN_REAL_CADIR=/etc/puppetlabs/puppetserver/ca cargo test real_puppetserver`.
    #[test]
    fn reads_a_real_puppetserver_cadir_when_given() {
        let Some(dir) = std::env::var_os("AUTOSIGN_REAL_CADIR") else {
            eprintln!(
                "skipped: set AUTOSIGN_REAL_CADIR to a puppetserver CA directory to read a real one{}",
                if Path::new("/usr/share/puppetserver").exists() {
                    " (puppetserver is installed here)"
                } else {
                    ""
                }
            );
            return;
        };
        let dir = PathBuf::from(dir);
        let ca = read_cadir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        eprintln!(
            "{}: {} CA cert(s), {} CRL(s), next serial 0x{:04X}, {} inventory lines, {} signed, {} requests",
            dir.display(),
            ca.bundle.len(),
            ca.crl_chain.len(),
            ca.next_serial,
            ca.inventory.len(),
            ca.signed.len(),
            ca.requests.len()
        );
        let tmp = TempDir::new("cadir-real-export");
        let out = tmp.path.join("ca");
        write_cadir(
            &out,
            &ExportCa {
                bundle: &ca.bundle,
                key_pem: &ca.key_pem,
                crl_chain: &ca.crl_chain,
                next_serial: ca.next_serial,
                inventory: &ca.inventory,
                signed: &ca.signed,
                requests: &ca.requests,
            },
        )
        .unwrap();
        let again = read_cadir(&out).unwrap();
        assert_eq!(again.signed, ca.signed);
        assert_eq!(again.inventory, ca.inventory);
        assert_eq!(again.next_serial, ca.next_serial);
        // The serial file's width differs between puppetserver (`%04X`) and the
        // puppetserver-ca CLI, so only the value is compared.
        for same in ["ca_crt.pem", "ca_crl.pem", "inventory.txt"] {
            assert_eq!(
                fs::read(out.join(same)).unwrap(),
                fs::read(dir.join(same)).unwrap(),
                "{same} differs from puppetserver's"
            );
        }
    }
}
