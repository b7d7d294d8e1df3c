//! Retention deletes what it must and nothing else: a camera's segments older than its
//! `record_retain_hours`, and another camera's oldest segments beyond its `record_max_bytes` —
//! never a newer segment, another camera's, or a file that is not a segment.

mod support;

use std::path::Path;
use std::time::Duration;

use straja_gateway::recording::RecordingKey;
use straja_gateway::recording::segment_catalogue::finished_name;
use straja_gateway::recording::segment_file::SegmentWriter;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};

const HOUR_MS: u64 = 3_600_000;

/// A finished segment of `camera` from `start_ms` for 60 s, holding `bytes` of (sealed) data.
fn segment(dir: &Path, key: &RecordingKey, camera: &str, start_ms: u64, bytes: usize) {
    let camera_dir = dir.join(camera);
    std::fs::create_dir_all(&camera_dir).unwrap();
    let part = camera_dir.join(format!("{start_ms}.srec.part"));
    let mut writer = SegmentWriter::create(&part, key, camera, start_ms).unwrap();
    writer
        .append(&vec![0x5a; bytes], start_ms + 60_000)
        .unwrap();
    writer.finish(start_ms + 60_000).unwrap();
    std::fs::rename(
        &part,
        camera_dir.join(finished_name(start_ms, start_ms + 60_000)),
    )
    .unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_by_age_and_by_size_and_nothing_else() {
    let state = tempfile::tempdir().unwrap();
    let key = RecordingKey::load_or_create(state.path()).unwrap();
    let recordings = state.path().join("recordings");
    let now = straja_gateway::recording::now_ms();
    // gate keeps 24 h: three segments from two days ago go, two from the last hours stay.
    for hours_ago in [50, 49, 48] {
        segment(&recordings, &key, "gate", now - hours_ago * HOUR_MS, 1000);
    }
    for hours_ago in [3, 2] {
        segment(&recordings, &key, "gate", now - hours_ago * HOUR_MS, 1000);
    }
    std::fs::write(
        recordings.join("gate").join("operator-notes.txt"),
        "keep me",
    )
    .unwrap();
    // yard keeps 1 MiB: five recent 400 KiB segments, the three oldest go.
    for minutes_ago in [50, 40, 30, 20, 10] {
        segment(
            &recordings,
            &key,
            "yard",
            now - minutes_ago * 60_000,
            400 * 1024,
        );
    }
    // lane has no limits: its old segment stays.
    segment(&recordings, &key, "lane", now - 1000 * HOUR_MS, 1000);
    let before_gate = names(&recordings.join("gate"));
    let before_yard = names(&recordings.join("yard"));

    let gateway = GatewayUnderTest::start_in(
        state,
        &[
            TestCamera {
                id: "gate",
                source: "test://ball?width=160&height=120",
                settings: "record_retain_hours = 24",
            },
            TestCamera {
                id: "yard",
                source: "test://smpte?width=160&height=120",
                settings: "record_max_bytes = 1048576",
            },
            TestCamera {
                id: "lane",
                source: "test://snow?width=160&height=120",
                settings: "",
            },
        ],
        "",
        "",
    )
    .await;
    let age = r#"straja_recording_deleted_segments_total{camera="gate",reason="age"}"#;
    let size = r#"straja_recording_deleted_segments_total{camera="yard",reason="size"}"#;
    for _ in 0..100 {
        if gateway.metric(age).await == Some(3.0) && gateway.metric(size).await == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gateway.metric(age).await, Some(3.0));
    assert_eq!(gateway.metric(size).await, Some(3.0));

    let dir = gateway.state_dir().join("recordings");
    let gate = names(&dir.join("gate"));
    assert_eq!(
        gate,
        [&before_gate[3..]].concat(),
        "the two recent segments and the notes"
    );
    assert!(gate.contains(&"operator-notes.txt".to_owned()));
    assert_eq!(
        names(&dir.join("yard")),
        before_yard[3..].to_vec(),
        "the two newest"
    );
    assert_eq!(
        names(&dir.join("lane")).len(),
        1,
        "no limits, nothing deleted"
    );
    let stored = r#"straja_recording_stored_bytes{camera="yard"}"#;
    let yard_bytes = gateway.metric(stored).await.unwrap();
    assert!(
        yard_bytes <= 1_048_576.0 && yard_bytes > 700_000.0,
        "{yard_bytes}"
    );
    assert_eq!(
        gateway
            .metric(r#"straja_recording_deleted_segments_total{camera="gate",reason="size"}"#)
            .await
            .unwrap_or(0.0),
        0.0
    );

    // The API lists what is left.
    let listed: serde_json::Value = gateway
        .ops_client
        .get(gateway.url("/api/v1/cameras/gate/recordings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    gateway.shutdown().await;
}
