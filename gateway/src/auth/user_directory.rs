//! Local users: people who sign in on the login page with a name and password. They live in one
//! JSON file (`<state_dir>/auth/users.json` unless `auth.users_file` says otherwise; mode 0600),
//! managed by `straja user add|remove|passwd|list` and re-read by the daemon when it changes, so
//! that a removed user or a changed password ends that person's open sign-ins at once.
//!
//! Writes take a lock file beside it and replace the file atomically (write, sync, rename, sync
//! the directory): a crash leaves the old file or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use super::password;
use super::role::Role;

/// Most users one box holds.
pub const MAX_USERS: usize = 10_000;
/// Largest users file read, in bytes.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Longest user name.
pub const MAX_NAME_CHARS: usize = 64;

/// One local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Sign-in name: 1 to 64 of `a-z 0-9 . _ @ -`.
    pub name: String,
    /// Their role (`ops`, `security` or `clinician`; patients join by invitation).
    pub role: Role,
    /// Cameras a `security` user may view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<String>,
    /// The password's PBKDF2 hash ([`password`]).
    pub password: String,
}

impl User {
    /// A fingerprint of what the user's sign-ins rest on (role, cameras, password): a sign-in
    /// made before any of them changed is no longer valid.
    pub fn credential_stamp(&self) -> [u8; 16] {
        let text = format!(
            "{}\n{}\n{}\n{}",
            self.name,
            self.role.as_str(),
            self.cameras.join(","),
            self.password
        );
        let mut stamp = [0u8; 16];
        stamp.copy_from_slice(&digest(&SHA256, text.as_bytes()).as_ref()[..16]);
        stamp
    }
}

/// The users file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Every user, in the order they were added.
    pub users: Vec<User>,
}

/// A users file problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// The file (or its lock) cannot be read or written.
    #[error("users file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The request is not acceptable (unknown user, bad name, weak password, …).
    #[error("{0}")]
    Request(String),
}

/// Checks a user name's form.
pub fn validate_name(name: &str) -> Result<(), UsersError> {
    let ok_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '@' | '-')
    };
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !name.chars().all(ok_char) {
        return Err(UsersError::Request(format!(
            "a user name is 1 to {MAX_NAME_CHARS} of a-z, 0-9, '.', '_', '@' and '-'"
        )));
    }
    Ok(())
}

impl Users {
    /// The user with this name.
    pub fn find(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Every problem of a parsed file (names, duplicates, hashes, roles).
    fn check(&self) -> Result<(), String> {
        if self.users.len() > MAX_USERS {
            return Err(format!("{} users; at most {MAX_USERS}", self.users.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for user in &self.users {
            validate_name(&user.name).map_err(|e| format!("user '{}': {e}", user.name))?;
            if !seen.insert(user.name.as_str()) {
                return Err(format!("user '{}' appears twice", user.name));
            }
            if !password::is_valid_hash(&user.password) {
                return Err(format!(
                    "user '{}': the password hash is malformed or too weak; set a new one with \
                     `straja user passwd {}`",
                    user.name, user.name
                ));
            }
            if user.role == Role::Patient {
                return Err(format!(
                    "user '{}': patients join by invitation, not as local users",
                    user.name
                ));
            }
        }
        Ok(())
    }
}

/// The users file of a configuration.
#[derive(Debug, Clone)]
pub struct UsersFile {
    path: PathBuf,
}

impl UsersFile {
    /// The file at `path`.
    pub fn new(path: PathBuf) -> UsersFile {
        UsersFile { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> UsersError {
        UsersError::File {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    /// Reads the file; a missing file is no users.
    pub fn read(&self) -> Result<Users, UsersError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(e) => return Err(self.error(e)),
        };
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| self.error(e))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(self.error(format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let users: Users = serde_json::from_str(&text).map_err(|e| self.error(e))?;
        users.check().map_err(|e| self.error(e))?;
        Ok(users)
    }

    /// Changes the file under its lock: reads it, applies `change`, writes it back atomically.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Users) -> Result<T, UsersError>,
    ) -> Result<T, UsersError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(|e| self.error(e))?;
        let lock_path = self.path.with_extension("lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| self.error(format!("lock {}: {e}", lock_path.display())))?;
        lock.lock().map_err(|e| self.error(e))?;
        let mut users = self.read()?;
        let result = change(&mut users)?;
        users.check().map_err(UsersError::Request)?;
        let mut text = serde_json::to_string_pretty(&users).map_err(|e| self.error(e))?;
        text.push('\n');
        let temporary = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| self.error(e))?;
        Ok(result)
    }
}

/// The daemon's view of the users file, re-read whenever the file changes (checked by `stat` on
/// each use: a few microseconds).
pub struct UserDirectory {
    file: UsersFile,
    cache: Mutex<(Option<FileStamp>, Arc<Users>)>,
}

/// What identifies a version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    length: u64,
    modified_ns: i64,
}

impl UserDirectory {
    /// A directory over `file` (read on first use).
    pub fn new(file: UsersFile) -> UserDirectory {
        UserDirectory {
            file,
            cache: Mutex::new((None, Arc::new(Users::default()))),
        }
    }

    /// The users as the file holds them now. An unreadable or invalid file counts as no users
    /// (nobody signs in with a password until it is fixed), and says why in the log.
    pub fn current(&self) -> Arc<Users> {
        let stamp = fs::metadata(self.file.path()).ok().map(|m| FileStamp {
            inode: m.ino(),
            length: m.len(),
            modified_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.0 != stamp || stamp.is_none() && !cache.1.users.is_empty() {
            let users = match self.file.read() {
                Ok(users) => users,
                Err(e) => {
                    tracing::error!(error = %e, "local sign-in is disabled until the users file is fixed");
                    Users::default()
                }
            };
            *cache = (stamp, Arc::new(users));
        }
        cache.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role) -> User {
        User {
            name: name.into(),
            role,
            cameras: if role == Role::Security {
                vec!["gate".into()]
            } else {
                vec![]
            },
            password: password::decoy_hash().to_owned(),
        }
    }

    #[test]
    fn updates_are_written_with_owner_only_permissions_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = UsersFile::new(dir.path().join("auth").join("users.json"));
        assert!(
            file.read().unwrap().users.is_empty(),
            "missing file: no users"
        );
        file.update(|u| {
            u.users.push(user("ana", Role::Security));
            Ok(())
        })
        .unwrap();
        let mode = fs::metadata(file.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            file.read().unwrap().find("ana").unwrap().role,
            Role::Security
        );
    }

    #[test]
    fn invalid_content_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let file = UsersFile::new(dir.path().join("users.json"));
        for (users, needle) in [
            (vec![user("Ana", Role::Ops)], "a user name is"),
            (
                vec![user("ana", Role::Ops), user("ana", Role::Ops)],
                "appears twice",
            ),
            (vec![user("pat", Role::Patient)], "by invitation"),
        ] {
            let err = file
                .update(|u| {
                    u.users = users;
                    Ok(())
                })
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err}");
        }
        fs::write(file.path(), "{\"users\": [{\"name\": \"x\"}]}").unwrap();
        assert!(file.read().is_err());
    }

    #[test]
    fn the_directory_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = UsersFile::new(dir.path().join("users.json"));
        let directory = UserDirectory::new(file.clone());
        assert!(directory.current().find("ana").is_none());
        file.update(|u| {
            u.users.push(user("ana", Role::Ops));
            Ok(())
        })
        .unwrap();
        assert!(directory.current().find("ana").is_some());
        file.update(|u| {
            u.users.clear();
            Ok(())
        })
        .unwrap();
        assert!(directory.current().find("ana").is_none());
    }

    #[test]
    fn the_stamp_changes_with_role_cameras_or_password() {
        let a = user("ana", Role::Security);
        let mut b = a.clone();
        assert_eq!(a.credential_stamp(), b.credential_stamp());
        b.cameras.push("yard".into());
        assert_ne!(a.credential_stamp(), b.credential_stamp());
        let mut c = a.clone();
        c.password = password::hash("another password").unwrap();
        assert_ne!(a.credential_stamp(), c.credential_stamp());
    }
}
