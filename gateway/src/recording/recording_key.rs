//! The key recordings are encrypted under: 256 random bits in `<state_dir>/keys/recording.key`
//! (mode 0600, made on first use), or the systemd credential `recording.key`. Each segment file
//! gets its own AES-256-GCM key from it (HKDF-SHA256 over the file's random salt and its camera),
//! so that no two files share a key and a file moved to another camera does not decrypt.
//!
//! Losing this key loses every recording: back it up apart from the recordings.

use std::fmt;
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use ring::hkdf;

use crate::key_file::{self, KeyFileError};

/// File name of the key, in `<state_dir>/keys/` and as a systemd credential.
pub const KEY_FILE: &str = "recording.key";
const KEY_BYTES: usize = 32;
/// What the per-file keys are derived for (HKDF info, with the camera id).
const KEY_PURPOSE: &[u8] = b"straja recording segment v1";

/// The master key of recordings. `Debug` never shows it.
pub struct RecordingKey {
    secret: [u8; KEY_BYTES],
    /// Where it came from (for messages).
    pub path: PathBuf,
}

impl RecordingKey {
    /// The credential, or the state directory's key (created when missing).
    pub fn load_or_create(state_dir: &Path) -> Result<RecordingKey, KeyFileError> {
        let path = state_dir.join("keys").join(KEY_FILE);
        let (bytes, path) = key_file::load_or_create(KEY_FILE, &path, KEY_BYTES)?;
        Self::from_bytes(&bytes, path)
    }

    /// The credential, or the state directory's key; never creates one (for reading recordings).
    pub fn load(state_dir: &Path) -> Result<RecordingKey, KeyFileError> {
        if let Some((bytes, path)) = key_file::credential(KEY_FILE)? {
            return Self::from_bytes(&bytes, path);
        }
        let path = state_dir.join("keys").join(KEY_FILE);
        Self::from_bytes(&key_file::read(&path)?, path)
    }

    /// A key from its bytes (exactly 32).
    pub fn from_bytes(bytes: &[u8], path: PathBuf) -> Result<RecordingKey, KeyFileError> {
        let secret = bytes.try_into().map_err(|_| KeyFileError {
            path: path.clone(),
            reason: format!(
                "a recording key has exactly {KEY_BYTES} bytes, not {}",
                bytes.len()
            ),
        })?;
        Ok(RecordingKey { secret, path })
    }

    /// The AES-256-GCM key of one segment file.
    pub(crate) fn file_key(&self, salt: &[u8], camera: &str) -> LessSafeKey {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&self.secret);
        let info = [KEY_PURPOSE, camera.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let key = UnboundKey::from(okm);
        LessSafeKey::new(key)
    }
}

impl fmt::Debug for RecordingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for RecordingKey {
    fn drop(&mut self) {
        // Hygiene, not a guarantee: the key does not linger in freed memory.
        self.secret.fill(0);
        std::hint::black_box(&self.secret);
    }
}
