//! The registry of open viewer sessions, by session id: what `DELETE /api/v1/sessions/{sid}` and
//! shutdown use to end them. Session ids are 128-bit random, unguessable; they never appear in
//! metric labels.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::RngCore;

/// Ends a session when dropped (the WebRTC engine's `ViewerCloser`, in tests anything).
pub type Closer = Box<dyn Send>;

struct Entry {
    /// The token subject that opened the session.
    owner: String,
    /// The camera it views.
    camera: String,
    /// Dropping it ends the session.
    _close: Closer,
}

/// Open sessions, within caps: at most `max_total`, and `max_per_camera` on any one camera (a
/// reload may change them: sessions already open stay).
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    max_total: AtomicUsize,
    max_per_camera: AtomicUsize,
}

/// A fresh session id: 32 hex characters from the OS-seeded CSPRNG.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// An empty registry with these caps.
    pub fn new(max_total: usize, max_per_camera: usize) -> Sessions {
        Sessions {
            entries: Mutex::default(),
            max_total: AtomicUsize::new(max_total),
            max_per_camera: AtomicUsize::new(max_per_camera),
        }
    }

    /// Changes the caps for sessions opened from now on.
    pub fn set_caps(&self, max_total: usize, max_per_camera: usize) {
        self.max_total.store(max_total, Ordering::Relaxed);
        self.max_per_camera.store(max_per_camera, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn room_in(&self, entries: &HashMap<String, Entry>, camera: &str) -> bool {
        entries.len() < self.max_total.load(Ordering::Relaxed)
            && entries.values().filter(|e| e.camera == camera).count()
                < self.max_per_camera.load(Ordering::Relaxed)
    }

    /// Records a running session; `false` (and the session is closed) when a cap is reached.
    pub fn insert(&self, id: String, owner: &str, camera: &str, close: Closer) -> bool {
        let mut entries = self.lock();
        if !self.room_in(&entries, camera) {
            drop(close);
            return false;
        }
        entries.insert(
            id,
            Entry {
                owner: owner.to_owned(),
                camera: camera.to_owned(),
                _close: close,
            },
        );
        true
    }

    /// True when another session on `camera` can be opened now.
    pub fn has_room(&self, camera: &str) -> bool {
        self.room_in(&self.lock(), camera)
    }

    /// Ends a session, if `owner` is `None` (any owner) or its owner; `false` otherwise or when
    /// there is no such session.
    pub fn close(&self, id: &str, owner: Option<&str>) -> bool {
        let mut entries = self.lock();
        let owned = entries
            .get(id)
            .is_some_and(|e| owner.is_none_or(|o| e.owner == o));
        if !owned {
            return false;
        }
        // Dropping the entry ends the session.
        entries.remove(id).is_some()
    }

    /// Forgets a session that ended by itself.
    pub fn remove(&self, id: &str) {
        let entry = self.lock().remove(id);
        drop(entry); // outside the lock
    }

    /// Ends every session.
    pub fn close_all(&self) {
        let entries: Vec<Entry> = self.lock().drain().map(|(_, entry)| entry).collect();
        drop(entries); // outside the lock
    }

    /// Ends every session on `camera` (a camera removed by a reload); returns how many.
    pub fn close_camera(&self, camera: &str) -> usize {
        let closed: Vec<Entry> = {
            let mut entries = self.lock();
            let ids: Vec<String> = entries
                .iter()
                .filter(|(_, e)| e.camera == camera)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| entries.remove(id)).collect()
        };
        let count = closed.len();
        drop(closed); // outside the lock
        count
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is open.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_hex() {
        let a = new_session_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_session_id());
    }

    #[test]
    fn caps_hold_per_camera_and_in_total() {
        let sessions = Sessions::new(3, 2);
        let open = |id: &str, camera: &str| sessions.insert(id.into(), "ana", camera, Box::new(()));
        assert!(open("a", "gate") && open("b", "gate"));
        assert!(!sessions.has_room("gate"));
        assert!(!open("c", "gate"), "per-camera cap");
        assert!(open("d", "yard"));
        assert!(!open("e", "lobby"), "total cap");
        assert!(sessions.close("a", None));
        assert!(sessions.has_room("gate"));
        sessions.set_caps(3, 1);
        assert!(
            !sessions.has_room("gate"),
            "a lowered cap holds for new sessions"
        );
        assert_eq!(sessions.len(), 2, "sessions already open stay");
    }

    #[test]
    fn closing_a_camera_ends_only_its_sessions() {
        let sessions = Sessions::new(10, 10);
        let (gate_tx, mut gate_rx) = tokio::sync::oneshot::channel::<()>();
        let (yard_tx, mut yard_rx) = tokio::sync::oneshot::channel::<()>();
        assert!(sessions.insert("g1".into(), "ana", "gate", Box::new(gate_tx)));
        assert!(sessions.insert("g2".into(), "bob", "gate", Box::new(())));
        assert!(sessions.insert("y1".into(), "ana", "yard", Box::new(yard_tx)));
        assert_eq!(sessions.close_camera("gate"), 2);
        assert!(matches!(
            gate_rx.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            yard_rx.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ));
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions.close_camera("gate"), 0);
    }

    #[test]
    fn close_fires_the_session_and_forgets_it() {
        let sessions = Sessions::new(10, 10);
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        assert!(sessions.insert("s1".into(), "ana", "cam", Box::new(tx)));
        assert_eq!(sessions.len(), 1);
        assert!(!sessions.close("s1", Some("bob")), "not bob's session");
        assert!(sessions.close("s1", Some("ana")));
        assert!(
            matches!(
                rx.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed)
            ),
            "the closer was dropped"
        );
        assert!(!sessions.close("s1", None));
        assert!(sessions.is_empty());
    }
}
