//! The audit chain's HMAC key file: 64 hex characters (32 random bytes) and a newline,
//! readable by its owner only.
//!
//! The key is what makes the chain tamper-evident against someone who can write to the
//! database: keep it away from the database's backups, and keep a copy, since without it the
//! trail can no longer be verified.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use carerecord_store::AuditKey;

/// Bytes of a new key.
const KEY_BYTES: usize = 32;

/// Reads the key at `path`; it must exist.
pub fn load(path: &Path) -> anyhow::Result<AuditKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the audit key file {} (audit.key_file)",
            path.display()
        )
    })?;
    let bytes = unhex(text.trim()).with_context(|| {
        format!(
            "the audit key file {} must hold {} hex characters",
            path.display(),
            KEY_BYTES * 2
        )
    })?;
    warn_if_shared(path);
    AuditKey::new(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Reads the key at `path`, first creating it with a random key if there is no file.
pub fn load_or_create(path: &Path) -> anyhow::Result<AuditKey> {
    if !path.exists() {
        create(path)?;
    }
    load(path)
}

fn create(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key)
        .map_err(|e| anyhow::anyhow!("no randomness for the audit key: {e}"))?;
    let text: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut opts = std::fs::OpenOptions::new();
    // `create_new`: two processes starting together must not each write a different key.
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write the audit key {}", path.display()))?;
            // To stderr, not the log (which may be stdout, read by scripts): an operator must
            // learn of a new key to keep a copy of it.
            eprintln!(
                "created a new audit key in {}: keep a copy apart from the database",
                path.display()
            );
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create the audit key {}", path.display())),
    }
}

fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    if s.len() != KEY_BYTES * 2 {
        bail!("wrong length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .context("not hex")
        })
        .collect()
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the audit key file is readable by others; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_is_created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("audit.key");
        assert!(load(&path).is_err(), "verify never creates a key");
        load_or_create(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first.trim().len(), 64);
        load_or_create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("hex"), "{e}");
    }
}
