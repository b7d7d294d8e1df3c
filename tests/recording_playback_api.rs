//! Security staff find a camera's recordings by time and play them back over HTTPS: the segment
//! comes decrypted as `video/mp4`, byte-for-byte what was recorded, with range requests for
//! seeking; only staff with the camera see footage (ops see the list only), and each playback
//! is on the audit log.

mod support;

use std::time::Duration;

use straja_gateway::auth::Role;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::recordings::{decrypt, ffprobe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_listed_by_time_and_played_back_with_ranges() {
    let gateway = GatewayUnderTest::start(&[
        TestCamera {
            id: "gate",
            source: "test://ball?width=320&height=240&gop=30&bitrate=400",
            settings: "record = true\nrecord_segment_seconds = 2",
        },
        TestCamera {
            id: "yard",
            source: "test://smpte?width=160&height=120",
            settings: "",
        },
    ])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let list = |client: reqwest::Client, query: String| {
        let url = gateway.url(&format!("/api/v1/cameras/gate/recordings{query}"));
        async move { client.get(url).send().await.expect("list request") }
    };
    let mut segments = serde_json::Value::Null;
    for _ in 0..150 {
        segments = list(gateway.client.clone(), String::new())
            .await
            .json()
            .await
            .expect("JSON");
        let finished = segments
            .as_array()
            .expect("a list")
            .iter()
            .filter(|s| s["recording"] == false)
            .count();
        if finished >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let segment = segments
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["recording"] == false)
        .unwrap_or_else(|| panic!("a finished segment within 15 s: {segments}"))
        .clone();
    let id = segment["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("gate."), "{id}");
    let duration = segment["duration_seconds"].as_f64().unwrap();
    assert!((1.5..=3.5).contains(&duration), "{segment}");
    let (cameras, _) = gateway.cameras_seen_by(&gateway.client).await;
    assert_eq!(cameras[0]["recording"], "recording", "{cameras}");
    assert_eq!(cameras[1]["recording"], "off", "{cameras}");

    // By time: a range after the segment, one that covers it, and nonsense.
    let start = segment["start"].as_str().unwrap();
    let around = list(gateway.client.clone(), format!("?from={start}&to={start}")).await;
    let around: serde_json::Value = around.json().await.unwrap();
    assert!(
        around
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id.as_str())
    );
    let later = list(
        gateway.client.clone(),
        "?from=2100-01-01T00:00:00Z".to_owned(),
    )
    .await;
    assert_eq!(
        later.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!([])
    );
    let bad = list(gateway.client.clone(), "?from=yesterday".to_owned()).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("RFC 3339"));
    let reversed = list(
        gateway.client.clone(),
        "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z".to_owned(),
    )
    .await;
    assert_eq!(reversed.status(), 400);

    // The whole segment, decrypted: exactly what the file holds.
    let url = gateway.url(&format!("/api/v1/recordings/{id}"));
    let whole = gateway.client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "video/mp4");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let body = whole.bytes().await.unwrap();
    let files = std::fs::read_dir(gateway.state_dir().join("recordings").join("gate"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect::<Vec<_>>();
    let start_ms = id.rsplit_once('.').unwrap().1;
    let file = files
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{start_ms}-"))
        })
        .expect("the segment's file");
    let (plain, complete) = decrypt(gateway.state_dir(), "gate", file);
    assert!(complete);
    assert_eq!(body.as_ref(), plain.as_slice(), "served = recorded");
    let on_disk = std::fs::read(file).unwrap();
    assert!(
        !on_disk.windows(4).any(|w| w == b"ftyp"),
        "the file on disk is not plain MP4"
    );
    let copy = tempfile::NamedTempFile::with_suffix(".mp4").unwrap();
    std::fs::write(copy.path(), &body).unwrap();
    let probe = ffprobe(copy.path()).expect("the served segment plays");
    assert_eq!((probe.width, probe.height), (320, 240));

    // Seeking: a range, an open range, a suffix, and one past the end.
    let total = body.len();
    let ranged = |range: String| {
        let request = gateway.client.get(&url).header("range", range);
        async move { request.send().await.unwrap() }
    };
    let part = ranged("bytes=100-1099".into()).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-1099/{total}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &plain[100..1100]);
    let tail = ranged(format!("bytes={}-", total - 10)).await;
    assert_eq!(tail.status(), 206);
    assert_eq!(tail.bytes().await.unwrap().as_ref(), &plain[total - 10..]);
    let suffix = ranged("bytes=-64".into()).await;
    assert_eq!(suffix.bytes().await.unwrap().as_ref(), &plain[total - 64..]);
    let beyond = ranged(format!("bytes={total}-")).await;
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{total}").as_str()
    );

    // Who may see what.
    let anonymous = gateway.anonymous.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let other_camera = gateway.client_with(Some(&gateway.token("s2", Role::Security, &["yard"])));
    assert_eq!(other_camera.get(&url).send().await.unwrap().status(), 403);
    assert_eq!(
        list(other_camera.clone(), String::new()).await.status(),
        403
    );
    assert_eq!(
        gateway.ops_client.get(&url).send().await.unwrap().status(),
        403
    );
    assert_eq!(
        list(gateway.ops_client.clone(), String::new())
            .await
            .status(),
        200
    );
    let unknown = gateway
        .client
        .get(gateway.url("/api/v1/recordings/gate.1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unknown_camera = gateway
        .ops_client
        .get(gateway.url("/api/v1/cameras/nowhere/recordings"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_camera.status(), 404);

    // Each playback (from its first byte) is on record; the seeks are not.
    let audit = std::fs::read_to_string(gateway.state_dir().join("audit").join("audit.log"))
        .expect("audit log");
    let plays = audit
        .lines()
        .filter(|l| l.contains("\"recording.play\"") && l.contains(&id))
        .count();
    assert_eq!(plays, 1, "one playback from byte 0 was audited:\n{audit}");

    let state = gateway.shutdown_keeping_state().await;
    // The stop ends the segment being written cleanly: nothing is left as `.part`, and the last
    // segment is complete.
    let (finished, parts) =
        support::recordings::segment_files(&state.path().join("recordings").join("gate"));
    assert!(parts.is_empty(), "{parts:?}");
    let last = finished.last().expect("segments");
    let (_, complete) = decrypt(state.path(), "gate", last);
    assert!(complete, "{} was ended cleanly", last.display());
}
