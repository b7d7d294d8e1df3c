//! Files a test keeps for people to look at (a snapshot, a screenshot): under
//! `target/test-artifacts/` (or `$CARGO_TARGET_DIR/test-artifacts/`), overwritten by each run.

use std::path::PathBuf;

/// The path of artefact `name`, its directory created.
pub fn artifact_path(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("test-artifacts directory");
    dir.join(name)
}
