//! Secret keys kept in files: given by systemd as a credential (`LoadCredential=`, read from
//! `$CREDENTIALS_DIRECTORY`), or kept in the state directory, created there on first use with
//! random bytes, mode 0600, in a directory of its own, synced before use.
//!
//! A credential whose content is exactly [`NO_CREDENTIAL`] counts as absent: the unit sets it
//! with `SetCredential=` as the stand-in for a `LoadCredential=` file that is not there (systemd
//! then starts the service instead of failing), and the key comes from the state directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

/// A key file that could not be read or made.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeyFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// The content of a credential that stands for "none given" (`SetCredential=NAME:use-state-dir`
/// in `systemd/straja.service`).
pub const NO_CREDENTIAL: &[u8] = b"use-state-dir";

/// The prefix of a configured path that names a systemd credential (`credential:server.key`: the
/// file `server.key` in `$CREDENTIALS_DIRECTORY`, which `LoadCredential=` fills).
pub const CREDENTIAL_PREFIX: &str = "credential:";

/// The credential a configured path names (`credential:NAME`), if it names one; an error when
/// the name is not a plain file name.
pub fn credential_name(path: &Path) -> Option<Result<&str, String>> {
    let name = path.to_str()?.strip_prefix(CREDENTIAL_PREFIX)?;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Some(Err(format!(
            "{}: a credential is named by a plain file name, as in LoadCredential=NAME:…",
            path.display()
        )));
    }
    Some(Ok(name))
}

/// A configured path: itself, or, for `credential:NAME`, that credential's file. Fails when the
/// name is not a plain file name or the process was not given credentials.
pub fn resolve_path(path: &Path) -> Result<PathBuf, String> {
    let name = match credential_name(path) {
        None => return Ok(path.to_owned()),
        Some(name) => name?,
    };
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) => Ok(Path::new(&dir).join(name)),
        None => Err(format!(
            "{}: no credentials were given to this process ($CREDENTIALS_DIRECTORY is not set: \
             add LoadCredential={name}:/path/to/file to the unit)",
            path.display()
        )),
    }
}

/// The systemd credential `name` (its bytes and file) if there is one and it is not the
/// [`NO_CREDENTIAL`] stand-in.
pub fn credential(name: &str) -> Result<Option<(Vec<u8>, PathBuf)>, KeyFileError> {
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) => credential_in(Path::new(&dir), name),
        None => Ok(None),
    }
}

/// The credential `name` in the credentials directory `dir`, as [`credential`] takes it.
pub fn credential_in(dir: &Path, name: &str) -> Result<Option<(Vec<u8>, PathBuf)>, KeyFileError> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read(&path)?;
    if bytes == NO_CREDENTIAL {
        return Ok(None);
    }
    Ok(Some((bytes, path)))
}

/// The systemd credential `name` if there is one, else `state_path`, created with `len` random
/// bytes when missing. Returns the key's bytes and the file they came from.
pub fn load_or_create(
    name: &str,
    state_path: &Path,
    len: usize,
) -> Result<(Vec<u8>, PathBuf), KeyFileError> {
    if let Some(found) = credential(name)? {
        return Ok(found);
    }
    if !state_path.exists() {
        create(state_path, len)?;
    }
    Ok((read(state_path)?, state_path.to_owned()))
}

/// Reads a key file.
pub fn read(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    fs::read(path).map_err(|e| KeyFileError {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Writes `len` fresh random bytes to a new file at `path` (mode 0600; its directory 0700 when
/// it has to be made). Never overwrites.
pub fn create(path: &Path, len: usize) -> Result<(), KeyFileError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |e: std::io::Error| KeyFileError {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
    }
    let mut key = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyFileError {
            path: path.to_owned(),
            reason: "the system random source failed".into(),
        })?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(&key).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[cfg(test)]
mod tests {

    #[test]
    fn credential_paths_name_plain_files() {
        assert!(credential_name(Path::new("/etc/straja/tls/server.key")).is_none());
        assert_eq!(
            credential_name(Path::new("credential:server.key")),
            Some(Ok("server.key"))
        );
        for bad in [
            "credential:",
            "credential:../x",
            "credential:a/b",
            "credential:..",
        ] {
            assert!(
                matches!(credential_name(Path::new(bad)), Some(Err(_))),
                "{bad}"
            );
        }
        assert_eq!(
            resolve_path(Path::new("/plain/file")),
            Ok(PathBuf::from("/plain/file"))
        );
    }

    use super::*;

    #[test]
    fn a_credential_is_taken_unless_absent_or_the_stand_in() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(
            credential_in(dir.path(), "token-signing.key")
                .expect("read")
                .is_none()
        );
        fs::write(dir.path().join("token-signing.key"), NO_CREDENTIAL).expect("write");
        assert!(
            credential_in(dir.path(), "token-signing.key")
                .expect("read")
                .is_none()
        );
        let key = [7u8; 32];
        fs::write(dir.path().join("recording.key"), key).expect("write");
        let (bytes, path) = credential_in(dir.path(), "recording.key")
            .expect("read")
            .expect("given");
        assert_eq!(bytes, key);
        assert_eq!(path, dir.path().join("recording.key"));
    }
}
