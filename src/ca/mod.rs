//! The certificate authority: the CA key, and the certificates and requests we build with it.

pub mod cadir;
pub mod crl;
pub mod issue;
#[cfg(test)]
pub(crate) mod rawder;
pub mod request;
pub mod signer;

use std::fmt;

use crate::x509::X509Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaError {
    /// The key is unreadable, of an unsupported kind, or does not fit the certificate.
    Key(String),
    /// A certificate or request could not be built or read.
    Encoding(String),
    /// Reading or writing a key file failed.
    Io(String),
    /// The cryptographic library refused to sign.
    Signing(String),
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::Key(m) => write!(f, "CA key: {m}"),
            CaError::Encoding(m) => write!(f, "certificate encoding: {m}"),
            CaError::Io(m) => write!(f, "CA file: {m}"),
            CaError::Signing(m) => write!(f, "signing failed: {m}"),
        }
    }
}

impl std::error::Error for CaError {}

impl From<X509Error> for CaError {
    fn from(e: X509Error) -> Self {
        CaError::Encoding(e.0)
    }
}

/// Helpers shared by the tests of `x509`, `domain::csr` and `ca`: temp dirs and openssl.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A directory removed on drop, unique per process and call.
    pub(crate) struct TempDir {
        pub(crate) path: PathBuf,
    }

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = std::env::temp_dir().join(format!(
                "autosign-x509-{tag}-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir { path }
        }

        pub(crate) fn file(&self, name: &str) -> String {
            self.path.join(name).to_string_lossy().into_owned()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }

    /// Runs openssl, panicking with its stderr on failure; returns stdout.
    pub(crate) fn openssl(args: &[&str]) -> String {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
