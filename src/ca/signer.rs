//! The CA's private key behind a small trait, so it can later live in an HSM.

use crate::oid;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, RsaKeyPair};

use super::CaError;
use crate::x509;
use der::asn1::{Any, ContextSpecific, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode, Reader as _, SliceReader, TagNumber};
use spki::AlgorithmIdentifierOwned;

/// The kinds of CA and generated keys; `[ca] key_algorithm` reads straight into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcP256,
    EcP384,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcP256,
        KeyAlgorithm::EcP384,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::EcP256 => "ec-p256",
            KeyAlgorithm::EcP384 => "ec-p384",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }

    /// AlgorithmIdentifier of the signatures this key makes (see [`Signer::sign`]).
    pub fn signature_algorithm_der(self) -> Vec<u8> {
        let (algorithm, parameters) = match self {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                (oid::SHA256_RSA, Some(Any::null()))
            }
            KeyAlgorithm::EcP256 => (oid::ECDSA_SHA256, None),
            KeyAlgorithm::EcP384 => (oid::ECDSA_SHA384, None),
        };
        // Constant OIDs: encoding cannot fail.
        x509::oid_of(algorithm)
            .ok()
            .and_then(|oid| AlgorithmIdentifierOwned { oid, parameters }.to_der().ok())
            .unwrap_or_default()
    }

    fn ecdsa(self) -> Option<&'static EcdsaSigningAlgorithm> {
        match self {
            KeyAlgorithm::EcP256 => Some(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            KeyAlgorithm::EcP384 => Some(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
            _ => None,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for KeyAlgorithm {
    type Error = CaError;
    fn try_from(s: String) -> Result<Self, CaError> {
        s.parse()
    }
}

impl FromStr for KeyAlgorithm {
    type Err = CaError;

    /// "rsa-4096", "ec-p256", ...; also "rsa4096", "ec-p-256", "p256", "prime256v1".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Ok(match norm.as_str() {
            "rsa2048" => KeyAlgorithm::Rsa2048,
            "rsa3072" => KeyAlgorithm::Rsa3072,
            "rsa4096" | "rsa" => KeyAlgorithm::Rsa4096,
            "ecp256" | "p256" | "prime256v1" | "secp256r1" | "ec" => KeyAlgorithm::EcP256,
            "ecp384" | "p384" | "secp384r1" => KeyAlgorithm::EcP384,
            _ => {
                return Err(CaError::Key(format!(
                    "unknown key algorithm {s:?} (use one of rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384)"
                )))
            }
        })
    }
}

/// Whatever holds the CA key: it names its algorithm, shows its public key and signs.
pub trait Signer: Send + Sync {
    fn algorithm(&self) -> KeyAlgorithm;
    /// SubjectPublicKeyInfo DER.
    fn spki_der(&self) -> &[u8];
    /// AlgorithmIdentifier TLV of the signatures [`Signer::sign`] makes: sha256WithRSAEncryption
    /// (NULL params) for RSA, ecdsa-with-SHA256 for P-256, ecdsa-with-SHA384 for P-384.
    fn signature_algorithm_der(&self) -> Vec<u8> {
        self.algorithm().signature_algorithm_der()
    }
    /// RSA PKCS#1 v1.5 with SHA-256, or ECDSA (ASN.1 DER) with the curve's hash.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError>;
}

enum KeyPairInner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A CA key held in memory by aws-lc.
pub struct SoftwareKey {
    alg: KeyAlgorithm,
    inner: KeyPairInner,
    spki: Vec<u8>,
}

/// Never prints key material.
impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("algorithm", &self.alg)
            .finish_non_exhaustive()
    }
}

fn key_err(what: &str) -> impl Fn(aws_lc_rs::error::KeyRejected) -> CaError + '_ {
    move |e| CaError::Key(format!("{what}: {e}"))
}

impl SoftwareKey {
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, CaError> {
        let failed = |_| CaError::Key(format!("could not generate a {alg} key"));
        match alg {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let size = match alg {
                    KeyAlgorithm::Rsa2048 => KeySize::Rsa2048,
                    KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                Self::from_rsa(RsaKeyPair::generate(size).map_err(failed)?)
            }
            KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 => {
                let ecdsa = alg
                    .ecdsa()
                    .ok_or(CaError::Key("not an EC algorithm".into()))?;
                Self::from_ec(alg, EcdsaKeyPair::generate(ecdsa).map_err(failed)?)
            }
        }
    }

    fn from_rsa(key: RsaKeyPair) -> Result<Self, CaError> {
        let alg = match key.public_modulus_len() * 8 {
            2048 => KeyAlgorithm::Rsa2048,
            3072 => KeyAlgorithm::Rsa3072,
            4096 => KeyAlgorithm::Rsa4096,
            bits => {
                return Err(CaError::Key(format!(
                    "RSA {bits} keys are not supported (2048, 3072 or 4096)"
                )))
            }
        };
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| CaError::Key("cannot encode the RSA public key".into()))?
            .as_ref()
            .to_vec();
        Ok(SoftwareKey {
            alg,
            inner: KeyPairInner::Rsa(key),
            spki,
        })
    }

    fn from_ec(alg: KeyAlgorithm, key: EcdsaKeyPair) -> Result<Self, CaError> {
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| CaError::Key("cannot encode the EC public key".into()))?
            .as_ref()
            .to_vec();
        Ok(SoftwareKey {
            alg,
            inner: KeyPairInner::Ec(key),
            spki,
        })
    }

    /// PKCS#8 "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" (what puppetserver writes) or SEC1
    /// "EC PRIVATE KEY" (other blocks, such as "EC PARAMETERS", are skipped).
    pub fn from_pem(pem_text: &str) -> Result<Self, CaError> {
        let blocks = x509::pem_blocks(pem_text).map_err(|e| CaError::Key(e.to_string()))?;
        for (label, der) in &blocks {
            match label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(der),
                "RSA PRIVATE KEY" => {
                    return Self::from_rsa(
                        RsaKeyPair::from_der(der).map_err(key_err("PKCS#1 RSA key"))?,
                    )
                }
                "EC PRIVATE KEY" => return Self::from_sec1_der(der),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(CaError::Key(
                        "the private key is encrypted; decrypt it first (openssl pkey)".into(),
                    ))
                }
                _ => {}
            }
        }
        let labels: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
        Err(CaError::Key(format!(
            "no private key found in PEM (blocks: {})",
            labels.join(", ")
        )))
    }

    fn from_pkcs8_der(der_bytes: &[u8]) -> Result<Self, CaError> {
        // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING, ... }:
        // only the algorithm is read here, aws-lc reads the rest.
        let read = || -> der::Result<AlgorithmIdentifierOwned> {
            let outer = Any::from_der(der_bytes)?;
            let mut r = SliceReader::new(outer.value())?;
            let _version: u8 = r.decode()?;
            r.decode()
        };
        let alg = read().map_err(|e| CaError::Key(format!("PKCS#8 key: {e}")))?;
        let oid = alg.oid.to_string();
        match oid.as_str() {
            oid::RSA_ENCRYPTION => Self::from_rsa(
                RsaKeyPair::from_pkcs8(der_bytes).map_err(key_err("PKCS#8 RSA key"))?,
            ),
            oid::EC_PUBLIC_KEY => {
                let curve = alg
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .ok_or(CaError::Key("EC key without a named curve".into()))?
                    .to_string();
                let key_alg = ec_algorithm_for_curve(&curve)?;
                let ecdsa = key_alg
                    .ecdsa()
                    .ok_or(CaError::Key("not an EC algorithm".into()))?;
                Self::from_ec(
                    key_alg,
                    EcdsaKeyPair::from_pkcs8(ecdsa, der_bytes).map_err(key_err("PKCS#8 EC key"))?,
                )
            }
            other => Err(CaError::Key(format!(
                "unsupported private key algorithm {other} (RSA or EC P-256/P-384)"
            ))),
        }
    }

    fn from_sec1_der(der_bytes: &[u8]) -> Result<Self, CaError> {
        // ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING, [0] params OPTIONAL, [1] publicKey OPTIONAL }
        let read = || -> der::Result<Option<ObjectIdentifier>> {
            let outer = Any::from_der(der_bytes)?;
            let mut r = SliceReader::new(outer.value())?;
            let _version: u8 = r.decode()?;
            let _key: OctetStringRef<'_> = r.decode()?;
            Ok(
                ContextSpecific::<ObjectIdentifier>::decode_explicit(&mut r, TagNumber::N0)?
                    .map(|c| c.value),
            )
        };
        let candidates: Vec<KeyAlgorithm> =
            match read().map_err(|e| CaError::Key(format!("SEC1 EC key: {e}")))? {
                Some(curve) => vec![ec_algorithm_for_curve(&curve.to_string())?],
                None => vec![KeyAlgorithm::EcP256, KeyAlgorithm::EcP384],
            };
        for key_alg in candidates {
            let Some(ecdsa) = key_alg.ecdsa() else {
                continue;
            };
            if let Ok(key) = EcdsaKeyPair::from_private_key_der(ecdsa, der_bytes) {
                return Self::from_ec(key_alg, key);
            }
        }
        Err(CaError::Key("unreadable SEC1 EC private key".into()))
    }

    pub fn to_pkcs8_pem(&self) -> Result<String, CaError> {
        let failed = |_| CaError::Key("cannot encode the private key as PKCS#8".into());
        let der_bytes = match &self.inner {
            KeyPairInner::Rsa(k) => k.as_der().map_err(failed)?.as_ref().to_vec(),
            KeyPairInner::Ec(k) => k.to_pkcs8v1().map_err(failed)?.as_ref().to_vec(),
        };
        Ok(x509::pem_encode("PRIVATE KEY", &der_bytes))
    }

    pub fn load(path: &Path) -> Result<Self, CaError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CaError::Io(format!("cannot read {}: {e}", path.display())))?;
        Self::from_pem(&text).map_err(|e| match e {
            CaError::Key(m) | CaError::Encoding(m) => {
                CaError::Key(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// Creates the file with mode 0600 from the start (never world-readable, even briefly),
    /// refuses to overwrite, writes PKCS#8 PEM and fsyncs the file and its directory.
    pub fn save_new(&self, path: &Path) -> Result<(), CaError> {
        let io_err = |what: &str, e: std::io::Error| {
            CaError::Io(format!("cannot {what} {}: {e}", path.display()))
        };
        let pem_text = self.to_pkcs8_pem()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err("create", e))?;
        file.write_all(pem_text.as_bytes())
            .map_err(|e| io_err("write", e))?;
        file.sync_all().map_err(|e| io_err("sync", e))?;
        // The directory entry must be durable too, or a crash can lose the new key file.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("sync the directory of", e))?;
        }
        Ok(())
    }
}

fn ec_algorithm_for_curve(curve: &str) -> Result<KeyAlgorithm, CaError> {
    match curve {
        oid::P256 => Ok(KeyAlgorithm::EcP256),
        oid::P384 => Ok(KeyAlgorithm::EcP384),
        other => Err(CaError::Key(format!(
            "EC curve {other} is not supported (P-256 or P-384)"
        ))),
    }
}

impl Signer for SoftwareKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }

    fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        let rng = SystemRandom::new();
        match &self.inner {
            KeyPairInner::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| CaError::Signing("RSA signing failed".into()))?;
                Ok(sig)
            }
            KeyPairInner::Ec(k) => Ok(k
                .sign(&rng, message)
                .map_err(|_| CaError::Signing("ECDSA signing failed".into()))?
                .as_ref()
                .to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::testutil::{openssl, TempDir};
    use std::os::unix::fs::PermissionsExt;

    fn openssl_spki(dir: &TempDir, key_file: &str) -> Vec<u8> {
        let out = dir.file("pub.der");
        openssl(&[
            "pkey", "-in", key_file, "-pubout", "-outform", "DER", "-out", &out,
        ]);
        std::fs::read(out).unwrap()
    }

    #[test]
    fn key_algorithm_names_round_trip() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.to_string().parse::<KeyAlgorithm>().unwrap(), alg);
        }
        assert_eq!(
            "RSA_4096".parse::<KeyAlgorithm>().unwrap(),
            KeyAlgorithm::Rsa4096
        );
        assert_eq!(
            "ec-p-384".parse::<KeyAlgorithm>().unwrap(),
            KeyAlgorithm::EcP384
        );
        assert!("dsa-1024".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn reads_keys_openssl_writes() {
        let dir = TempDir::new("signer-keys");
        let cases: [(&str, &[&str], KeyAlgorithm, &str); 4] = [
            (
                "pkcs1.pem",
                &["genrsa", "-traditional", "-out"],
                KeyAlgorithm::Rsa2048,
                "RSA PRIVATE KEY",
            ),
            (
                "sec1.pem",
                &["ecparam", "-name", "prime256v1", "-genkey", "-out"],
                KeyAlgorithm::EcP256,
                "EC PRIVATE KEY",
            ),
            (
                "sec1-384.pem",
                &["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out"],
                KeyAlgorithm::EcP384,
                "EC PRIVATE KEY",
            ),
            (
                "pkcs8.pem",
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-384",
                    "-out",
                ],
                KeyAlgorithm::EcP384,
                "PRIVATE KEY",
            ),
        ];
        for (file, args, alg, label) in cases {
            let path = dir.file(file);
            let mut args = args.to_vec();
            args.push(&path);
            if file == "pkcs1.pem" {
                args.push("2048");
            }
            openssl(&args);
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(text.contains(&format!("BEGIN {label}")), "{file}: {text}");
            let key = SoftwareKey::from_pem(&text).unwrap();
            assert_eq!(key.algorithm(), alg, "{file}");
            assert_eq!(key.spki_der(), openssl_spki(&dir, &path), "{file}");
            // And the PKCS#8 we write is read back by us and by openssl.
            let again = dir.file(&format!("{file}.p8"));
            std::fs::write(&again, key.to_pkcs8_pem().unwrap()).unwrap();
            assert_eq!(key.spki_der(), openssl_spki(&dir, &again), "{file}");
            let reread = SoftwareKey::load(Path::new(&again)).unwrap();
            assert_eq!(reread.spki_der(), key.spki_der());
        }
        assert!(SoftwareKey::from_pem(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
        assert!(SoftwareKey::load(Path::new("/nonexistent/key.pem")).is_err());
    }

    #[test]
    fn save_new_is_private_and_refuses_to_overwrite() {
        let dir = TempDir::new("signer-save");
        let key = SoftwareKey::generate(KeyAlgorithm::EcP256).unwrap();
        let path = dir.path.join("ca_key.pem");
        key.save_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(key.save_new(&path), Err(CaError::Io(_))));
        let loaded = SoftwareKey::load(&path).unwrap();
        assert_eq!(loaded.spki_der(), key.spki_der());
        assert_eq!(loaded.algorithm(), KeyAlgorithm::EcP256);
        assert!(!format!("{loaded:?}").contains("BEGIN"));
    }

    #[test]
    fn generates_every_algorithm_and_signs_verifiably() {
        use aws_lc_rs::signature::UnparsedPublicKey;
        let msg = b"to be signed";
        for alg in KeyAlgorithm::ALL {
            if alg == KeyAlgorithm::Rsa3072 {
                continue; // slow, and no different from 2048/4096 here
            }
            let key = SoftwareKey::generate(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            let sig = key.sign(msg).unwrap();
            let spki = crate::domain::csr::PublicKeyKind::from_spki(key.spki_der()).unwrap();
            let (verify_alg, pk): (&dyn signature::VerificationAlgorithm, Vec<u8>) = match spki {
                crate::domain::csr::PublicKeyKind::Rsa { der, bits } => {
                    let expected = match alg {
                        KeyAlgorithm::Rsa2048 => 2048,
                        _ => 4096,
                    };
                    assert_eq!(bits, expected);
                    (&signature::RSA_PKCS1_2048_8192_SHA256, der)
                }
                crate::domain::csr::PublicKeyKind::Ec { point, .. } => match alg {
                    KeyAlgorithm::EcP256 => (&signature::ECDSA_P256_SHA256_ASN1, point),
                    _ => (&signature::ECDSA_P384_SHA384_ASN1, point),
                },
                other => panic!("{other:?}"),
            };
            UnparsedPublicKey::new(verify_alg, &pk)
                .verify(msg, &sig)
                .unwrap();
        }
    }
}
