//! Writing files the service keeps (keys, certificates, CRLs, a CA directory): the mode is
//! set at creation, so a key is never readable by others even briefly, and the contents
//! reach the disk before the name does.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Create `path`, which must not exist yet, with `mode` (whatever the umask), and flush it.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replace `path` atomically: write a new temporary file beside it, then rename, so a
/// crash leaves the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, bytes, mode)?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_hold_whatever_the_umask_and_new_files_are_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("autosign-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        write_atomic(&key, b"one", 0o600).unwrap();
        write_atomic(&key, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            write_new(&key, b"three", 0o600).is_err(),
            "never over a file"
        );
        assert!(!dir.join("key.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
