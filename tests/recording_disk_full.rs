//! A full disk stops recording cleanly and visibly while live view goes on, and recording resumes
//! when space returns. The recordings live on a small tmpfs the test mounts (so the disk really
//! fills: ENOSPC, not a simulation); every segment written before, during and after stays
//! playable.
//!
//! Mounting needs root (CI runs as root); elsewhere the test says so and does nothing.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::recordings::{probe_segment, segment_files};
use support::whep_viewer::WhepViewer;

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a file until the filesystem is full; returns how many bytes it took.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 256 * 1024];
    let mut written = 0;
    // Bounded: the tmpfs is 24 MiB.
    for _ in 0..1000 {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = file.sync_all();
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_recording_visibly_live_view_goes_on_and_recording_resumes() {
    // SAFETY: geteuid only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs this as root)");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let mount_point = scratch.path().join("recordings");
    let Some(_tmpfs) = Tmpfs::mount(&mount_point, "24m") else {
        panic!(
            "running as root, but a tmpfs could not be mounted at {}",
            mount_point.display()
        );
    };
    let gateway = GatewayUnderTest::start_with(
        &[TestCamera {
            id: "gate",
            source: "test://ball?width=320&height=240&gop=30&bitrate=800",
            settings: "record = true\nrecord_segment_seconds = 2",
        }],
        &format!(
            "[recording]\ndir = \"{}\"\nmin_free_bytes = 2097152\n",
            mount_point.display()
        ),
    )
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let dir = mount_point.join("gate");
    let up = r#"straja_recording_up{camera="gate"}"#;
    let disk_full = r#"straja_recording_failures_total{camera="gate",reason="disk_full"}"#;
    let recording_state = || async {
        let (cameras, _) = gateway.cameras_seen_by(&gateway.client).await;
        cameras[0]["recording"].as_str().unwrap_or("").to_owned()
    };
    let wait_for = |what: &'static str, series: &'static str, value: f64| {
        let gateway = &gateway;
        async move {
            for _ in 0..150 {
                if gateway.metric(series).await == Some(value) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{what}: {series} never became {value}");
        }
    };
    wait_for("recording starts", up, 1.0).await;
    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "gate").await;
    viewer.wait_for_frames(30, Duration::from_secs(15)).await;
    for _ in 0..100 {
        if !segment_files(&dir).0.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !segment_files(&dir).0.is_empty(),
        "a segment before the disk fills"
    );

    // The disk fills up.
    let filler = mount_point.join("filler");
    let took = fill(&filler);
    println!("filled the disk with {took} bytes");
    wait_for("the full disk is noticed", up, 0.0).await;
    assert!(gateway.metric(disk_full).await.unwrap_or(0.0) >= 1.0);
    assert_eq!(recording_state().await, "disk_full");
    let frames_when_full = viewer.reception().complete_frames;
    let during = viewer
        .wait_for_frames(frames_when_full + 60, Duration::from_secs(15))
        .await;
    assert!(
        during.complete_frames >= frames_when_full + 60,
        "live view goes on while the disk is full: {} then {}",
        frames_when_full,
        during.complete_frames
    );
    let (finished_while_full, parts) = segment_files(&dir);
    assert!(parts.is_empty(), "no segment is left open: {parts:?}");
    assert_eq!(recording_state().await, "disk_full", "it stays paused");
    // /readyz names the part that is not ready.
    let readyz = gateway
        .ops_client
        .get(gateway.url("/readyz"))
        .send()
        .await
        .expect("/readyz");
    assert_eq!(readyz.status(), 503);
    let body: serde_json::Value = readyz.json().await.expect("JSON");
    assert_eq!(
        body["not_ready"],
        serde_json::json!([{ "part": "recording", "camera": "gate", "state": "disk_full" }]),
        "{body}"
    );

    // Space comes back.
    std::fs::remove_file(&filler).unwrap();
    wait_for("recording resumes", up, 1.0).await;
    assert_eq!(recording_state().await, "recording");
    let resumed_with = finished_while_full.len();
    for _ in 0..100 {
        if segment_files(&dir).0.len() > resumed_with {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (finished, _) = segment_files(&dir);
    assert!(
        finished.len() > resumed_with,
        "a new segment after the pause"
    );

    // Nothing recorded was lost or broken: every segment plays.
    let probes = tempfile::tempdir().unwrap();
    let state = gateway.state_dir().to_owned();
    for segment in &finished {
        let probe = probe_segment(&state, "gate", segment, probes.path());
        assert!(probe.frames > 0, "{}: {probe:?}", segment.display());
    }
    let _ = gateway.client.delete(&viewer.session_url).send().await;
    viewer.close().await;
    gateway.shutdown().await;
}
