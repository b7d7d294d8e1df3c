//! The audit chain holds, across writers, and every kind of tampering is caught and named.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::auth::Role;

fn event(n: usize) -> AuditEvent {
    AuditEvent {
        actor: format!("user-{n}"),
        role: Some(Role::Security),
        action: Action::ViewStart,
        resource: "camera:gate".into(),
        outcome: Outcome::Allowed,
        source: Some("127.0.0.1:5000".into()),
        reason: None,
    }
}

fn log_with(records: usize) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    for n in 0..records {
        log.append(event(n)).unwrap();
    }
    (dir, log)
}

fn rewrite(log: &AuditLog, edit: impl FnOnce(&mut Vec<String>)) {
    let text = fs::read_to_string(log.path()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    fs::write(log.path(), lines.join("\n") + "\n").unwrap();
}

#[test]
fn records_chain_from_genesis_and_verify() {
    let (dir, log) = log_with(5);
    assert_eq!(verify(log.path()), Ok(5));
    let first: AuditRecord = serde_json::from_str(
        fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first.seq, 1);
    assert_eq!(first.prev, record::GENESIS);
    let mode = fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(dir.path().join("audit"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[test]
fn two_writers_keep_one_chain() {
    // The daemon and a `straja` command append to the same file.
    let (dir, daemon) = log_with(2);
    let command = AuditLog::open(dir.path()).unwrap();
    command.append(event(10)).unwrap();
    daemon.append(event(11)).unwrap();
    command.append(event(12)).unwrap();
    assert_eq!(verify(daemon.path()), Ok(5));
}

#[test]
fn an_altered_record_is_named() {
    let (_dir, log) = log_with(4);
    rewrite(&log, |lines| {
        lines[2] = lines[2].replace("user-2", "user-9")
    });
    let broken = verify(log.path()).unwrap_err();
    assert_eq!((broken.line, broken.seq), (3, Some(3)));
    assert!(broken.reason.contains("altered"), "{broken}");
}

#[test]
fn a_removed_record_is_named() {
    let (_dir, log) = log_with(4);
    rewrite(&log, |lines| {
        lines.remove(1);
    });
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(broken.line, 2);
    assert!(broken.reason.contains("removed or reordered"), "{broken}");
}

#[test]
fn reordered_records_are_named() {
    let (_dir, log) = log_with(4);
    rewrite(&log, |lines| lines.swap(1, 2));
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(broken.line, 2);
}

#[test]
fn a_rehashed_forgery_breaks_the_next_link() {
    // Someone who alters a record and recomputes its hash still breaks the next record's `prev`.
    let (_dir, log) = log_with(3);
    rewrite(&log, |lines| {
        let mut record: AuditRecord = serde_json::from_str(&lines[0]).unwrap();
        record.actor = "someone-else".into();
        record.hash = record.computed_hash();
        lines[0] = record.to_line();
    });
    let broken = verify(log.path()).unwrap_err();
    assert_eq!((broken.line, broken.seq), (2, Some(2)));
    assert!(broken.reason.contains("previous"), "{broken}");
}

#[test]
fn a_torn_last_line_stops_appends_instead_of_forking_the_chain() {
    let (dir, log) = log_with(2);
    let mut text = fs::read_to_string(log.path()).unwrap();
    text.truncate(text.len() - 10);
    fs::write(log.path(), text).unwrap();
    assert!(log.append(event(3)).is_err());
    assert!(AuditLog::open(dir.path()).is_err());
    assert!(verify(log.path()).is_err());
}
