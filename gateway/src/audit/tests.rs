//! The audit chain holds, across writers and across rotated files, and every kind of tampering is
//! caught and named with its file and line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    let log = AuditLog::open(dir.path(), DEFAULT_ROTATE_BYTES).unwrap();
    for n in 0..records {
        log.append(event(n)).unwrap();
    }
    (dir, log)
}

fn rewrite(log: &AuditLog, edit: impl FnOnce(&mut Vec<String>)) {
    rewrite_file(log.path(), edit);
}

/// Rewrites any file of the log (rotated ones are read-only: made writable for the edit).
fn rewrite_file(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn records_of(path: &Path) -> Vec<AuditRecord> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rotated(log: &AuditLog) -> Vec<PathBuf> {
    rotated_files(log.dir())
        .unwrap()
        .into_iter()
        .map(|(_, path)| path)
        .collect()
}

/// A rotation size of four records (of about 330 bytes) per file.
const SMALL: u64 = 1500;

fn rotating_log_with(records: usize) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), SMALL).unwrap();
    for n in 0..records {
        log.append(event(n)).unwrap();
    }
    (dir, log)
}

fn records_in(log: &AuditLog) -> u64 {
    verify(log.path()).unwrap().records
}

#[test]
fn records_chain_from_genesis_and_verify() {
    let (dir, log) = log_with(5);
    assert_eq!(
        verify(log.path()),
        Ok(ChainSummary {
            records: 5,
            files: 1
        })
    );
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
    let command = AuditLog::open(dir.path(), DEFAULT_ROTATE_BYTES).unwrap();
    command.append(event(10)).unwrap();
    daemon.append(event(11)).unwrap();
    command.append(event(12)).unwrap();
    assert_eq!(records_in(&daemon), 5);
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
    assert!(AuditLog::open(dir.path(), DEFAULT_ROTATE_BYTES).is_err());
    assert!(verify(log.path()).is_err());
}

#[test]
fn rotation_continues_the_chain_across_read_only_files() {
    let (_dir, log) = rotating_log_with(20);
    let rotated = rotated(&log);
    assert!(rotated.len() >= 4, "{rotated:?}");
    let mut files = rotated.clone();
    files.push(log.path().to_owned());
    let mut previous: Option<AuditRecord> = None;
    for file in &files {
        let records = records_of(file);
        assert!(!records.is_empty(), "{} is empty", file.display());
        let size = fs::metadata(file).unwrap().len();
        assert!(size <= SMALL, "{} has {size} bytes", file.display());
        if file != log.path() {
            // Named after its first record, read-only.
            let name = file.file_name().unwrap().to_str().unwrap();
            assert_eq!(name, rotated_name(records[0].seq));
            let mode = fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o400, "{name}");
        }
        for record in records {
            match &previous {
                Some(p) => {
                    assert_eq!(record.seq, p.seq + 1);
                    assert_eq!(record.prev, p.hash);
                }
                None => assert_eq!((record.seq, record.prev.as_str()), (1, record::GENESIS)),
            }
            previous = Some(record);
        }
    }
    assert_eq!(previous.unwrap().seq, 20);
    let mode = fs::metadata(log.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        verify(log.path()),
        Ok(ChainSummary {
            records: 20,
            files: files.len()
        })
    );
}

#[test]
fn a_new_writer_continues_from_the_newest_rotated_file() {
    // As after a crash between a rotation and the next record: no live file, or an empty one.
    let (dir, log) = rotating_log_with(7);
    drop(log);
    let live = AuditLog::path_in(dir.path());
    let first_live = records_of(&live)[0].seq;
    fs::rename(&live, live.with_file_name(rotated_name(first_live))).unwrap();
    let chain = verify(&live).unwrap();
    assert_eq!(chain.records, 7);
    let reopened = AuditLog::open(dir.path(), SMALL).unwrap();
    let record = reopened.append(event(99)).unwrap();
    let newest = rotated(&reopened).pop().unwrap();
    let last_rotated = records_of(&newest).pop().unwrap();
    assert_eq!(record.seq, last_rotated.seq + 1);
    assert_eq!(record.prev, last_rotated.hash);
    assert!(verify(&live).is_ok());
}

#[test]
fn concurrent_writers_with_tiny_rotation_keep_one_chain() {
    // Two handles (two open files, as the daemon and `straja token issue` have), each used by two
    // threads, rotating after nearly every record.
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(AuditLog::open(dir.path(), 400).unwrap());
    let second = Arc::new(AuditLog::open(dir.path(), 400).unwrap());
    std::thread::scope(|scope| {
        for log in [&first, &second, &first, &second] {
            scope.spawn(move || {
                for n in 0..40 {
                    log.append(event(n)).unwrap();
                }
            });
        }
    });
    let chain = verify(first.path()).unwrap();
    assert_eq!(chain.records, 160);
    assert!(chain.files > 40, "{chain:?}");
}

#[test]
fn verify_sees_one_whole_chain_while_a_writer_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 400).unwrap();
    log.append(event(0)).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0..150 {
                log.append(event(n)).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut checks = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) || checks == 0 {
            let chain = verify(log.path());
            assert!(chain.is_ok(), "{chain:?}");
            checks += 1;
        }
    });
    assert_eq!(records_in(&log), 151);
}

#[test]
fn a_removed_middle_rotated_file_is_named_as_a_gap() {
    let (_dir, log) = rotating_log_with(20);
    let rotated = rotated(&log);
    let removed_first = records_of(&rotated[1])[0].seq;
    fs::remove_file(&rotated[1]).unwrap();
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(broken.file, rotated[2]);
    assert_eq!(broken.line, 1);
    let previous_name = rotated[0].file_name().unwrap().to_str().unwrap();
    assert!(broken.reason.contains("missing"), "{broken}");
    assert!(broken.reason.contains(previous_name), "{broken}");
    assert!(
        broken
            .reason
            .contains(&format!("records {removed_first} to")),
        "{broken}"
    );
    assert!(broken.reason.contains("rotated file removed"), "{broken}");
    let shown = broken.to_string();
    assert!(shown.contains(rotated[2].to_str().unwrap()), "{shown}");
    assert!(shown.contains("line 1"), "{shown}");
}

#[test]
fn a_removed_first_rotated_file_is_named() {
    let (_dir, log) = rotating_log_with(10);
    let rotated = rotated(&log);
    fs::remove_file(&rotated[0]).unwrap();
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(
        (broken.file.as_path(), broken.line),
        (rotated[1].as_path(), 1)
    );
    assert!(broken.reason.contains("starts at record"), "{broken}");
}

#[test]
fn an_edited_record_in_a_rotated_file_is_named() {
    let (_dir, log) = rotating_log_with(12);
    let rotated = rotated(&log);
    let target = records_of(&rotated[1])[1].seq;
    rewrite_file(&rotated[1], |lines| {
        lines[1] = lines[1].replace("\"actor\":\"user-", "\"actor\":\"mallory-")
    });
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(
        (broken.file.as_path(), broken.line, broken.seq),
        (rotated[1].as_path(), 2, Some(target))
    );
    assert!(broken.reason.contains("altered"), "{broken}");
}

#[test]
fn swapped_records_in_a_rotated_file_are_named() {
    let (_dir, log) = rotating_log_with(12);
    let rotated = rotated(&log);
    let second = records_of(&rotated[1])[1].seq;
    rewrite_file(&rotated[1], |lines| lines.swap(1, 2));
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(
        (broken.file.as_path(), broken.line, broken.seq),
        (rotated[1].as_path(), 2, Some(second + 1))
    );
    assert!(broken.reason.contains("removed or reordered"), "{broken}");
    // At the very start of the chain, too.
    rewrite_file(&rotated[0], |lines| lines.swap(0, 1));
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(
        (broken.file.as_path(), broken.line, broken.seq),
        (rotated[0].as_path(), 1, Some(2))
    );
    assert!(broken.reason.contains("out of order"), "{broken}");
}

#[test]
fn swapped_rotated_files_are_named() {
    let (_dir, log) = rotating_log_with(12);
    let rotated = rotated(&log);
    let spare = rotated[0].with_extension("tmp");
    fs::rename(&rotated[0], &spare).unwrap();
    fs::rename(&rotated[1], &rotated[0]).unwrap();
    fs::rename(&spare, &rotated[1]).unwrap();
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(
        (broken.file.as_path(), broken.line),
        (rotated[0].as_path(), 1)
    );
}

#[test]
fn a_rotated_file_is_never_overwritten() {
    let (dir, log) = rotating_log_with(2);
    // The name the next rotation would take is already there (say, a restored copy).
    fs::write(
        dir.path().join("audit").join(rotated_name(1)),
        "not to be lost\n",
    )
    .unwrap();
    for n in 0..6 {
        log.append(event(n)).unwrap();
    }
    assert_eq!(
        fs::read_to_string(dir.path().join("audit").join(rotated_name(1))).unwrap(),
        "not to be lost\n"
    );
    assert_eq!(records_of(log.path()).len(), 8);
}

#[test]
fn garbage_in_a_rotated_file_is_named_without_panicking() {
    let (_dir, log) = rotating_log_with(8);
    let rotated = rotated(&log);
    fs::set_permissions(&rotated[0], fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&rotated[0], b"\xff\xfe not json\n").unwrap();
    let broken = verify(log.path()).unwrap_err();
    assert_eq!(
        (broken.file.as_path(), broken.line),
        (rotated[0].as_path(), 1)
    );
    let missing = tempfile::tempdir().unwrap();
    let broken = verify(&AuditLog::path_in(missing.path())).unwrap_err();
    assert_eq!(broken.line, 0);
    assert!(broken.reason.contains("cannot"), "{broken}");
}
