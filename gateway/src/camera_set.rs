//! The cameras running now, in configuration order. Readers take the whole list or one camera
//! without locking; a reload swaps in a new list (viewers hold their camera's feed, not the list,
//! so a swap never touches them).

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::cameras::Camera;

/// The running cameras.
pub struct CameraSet {
    cameras: ArcSwap<Vec<Arc<Camera>>>,
}

impl CameraSet {
    /// A set of these cameras, in this order.
    pub fn new(cameras: Vec<Arc<Camera>>) -> CameraSet {
        CameraSet {
            cameras: ArcSwap::from_pointee(cameras),
        }
    }

    /// Every camera, in configuration order.
    pub fn all(&self) -> Arc<Vec<Arc<Camera>>> {
        self.cameras.load_full()
    }

    /// The camera with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Camera>> {
        self.cameras.load().iter().find(|c| c.id == id).cloned()
    }

    /// How many cameras there are.
    pub fn len(&self) -> usize {
        self.cameras.load().len()
    }

    /// True when no camera is configured.
    pub fn is_empty(&self) -> bool {
        self.cameras.load().is_empty()
    }

    /// Puts a new list in force (a reload).
    pub fn replace(&self, cameras: Vec<Arc<Camera>>) {
        self.cameras.store(Arc::new(cameras));
    }
}
