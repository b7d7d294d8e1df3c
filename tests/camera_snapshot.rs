//! Snapshots: `GET /api/v1/cameras/{id}/snapshot.jpg` answers with a JPEG of the camera's latest
//! keyframe, at the camera's size (checked with ffprobe), decoded once per keyframe.
//!
//! - Fake IP cameras over RTSP, which cannot be asked for a keyframe: one with a 1 s GOP, one with
//!   a 30 s GOP whose snapshots can only come from the gateway's GOP cache; asking twice for the
//!   same keyframe is served from the last decode. Neither counts as a GOP replay; both are in
//!   the audit log as `view.snapshot`.
//! - A camera without a GOP cache is asked for a keyframe; a camera that is down gets a 503 with
//!   `Retry-After` that says it has no picture now.
//! - Only security staff with the camera in their token get a picture: 401 without a token, 403
//!   for ops and for staff without the camera, 404 for a camera the box does not have.

mod support;

use std::time::{Duration, Instant};

use straja_gateway::audit::{Action, AuditLog, AuditRecord};
use straja_gateway::auth::Role;
use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::test_artifacts::artifact_path;

/// 30 s at 30 fps: the camera's next keyframe comes long after the test is done.
const LONG_GOP_FRAMES: u32 = 900;

/// A snapshot as the client got it.
struct Fetched {
    status: u16,
    content_type: String,
    cache_control: String,
    retry_after: Option<String>,
    body: Vec<u8>,
    took: Duration,
}

async fn fetch(client: &reqwest::Client, gateway: &GatewayUnderTest, camera: &str) -> Fetched {
    let started = Instant::now();
    let response = client
        .get(gateway.url(&format!("/api/v1/cameras/{camera}/snapshot.jpg")))
        .send()
        .await
        .expect("snapshot request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, content_type, cache_control, retry_after) = (
        response.status().as_u16(),
        header("content-type").unwrap_or_default(),
        header("cache-control").unwrap_or_default(),
        header("retry-after"),
    );
    let body = response.bytes().await.expect("body").to_vec();
    Fetched {
        status,
        content_type,
        cache_control,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

/// Checks the answer is a whole JPEG of `width`×`height` (SOI/EOI markers, and ffprobe decodes
/// it at that size), and keeps it as `target/test-artifacts/NAME`.
fn assert_jpeg(fetched: &Fetched, width: u32, height: u32, name: &str) {
    assert_eq!(
        fetched.status,
        200,
        "{name}: {}",
        String::from_utf8_lossy(&fetched.body)
    );
    assert_eq!(fetched.content_type, "image/jpeg", "{name}");
    assert_eq!(fetched.cache_control, "no-store", "{name}");
    let jpeg = &fetched.body;
    assert!(jpeg.len() > 4, "{name}: {} bytes", jpeg.len());
    assert_eq!(&jpeg[..2], [0xff, 0xd8], "{name}: SOI marker");
    assert_eq!(&jpeg[jpeg.len() - 2..], [0xff, 0xd9], "{name}: EOI marker");
    let path = artifact_path(name);
    std::fs::write(&path, jpeg).expect("write the JPEG");
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe (package ffmpeg; scripts/setup.sh --test installs it)");
    assert!(probe.status.success(), "{name}: ffprobe {probe:?}");
    let probed = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    assert_eq!(probed, format!("mjpeg,{width},{height}"), "{name}");
}

fn audit_records(gateway: &GatewayUnderTest) -> Vec<AuditRecord> {
    std::fs::read_to_string(AuditLog::path_in(gateway.state_dir()))
        .expect("audit log")
        .lines()
        .map(|line| serde_json::from_str(line).expect("an audit record"))
        .collect()
}

async fn wait_for_cached_gop(gateway: &GatewayUnderTest, camera: &str) {
    let metrics = gateway
        .running
        .gateway()
        .camera(camera)
        .expect("camera")
        .feed
        .metrics()
        .clone();
    for _ in 0..200 {
        if metrics.gop_cache_bytes.get() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{camera}: no GOP cached within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_jpegs_of_the_latest_keyframe_from_the_gop_cache() {
    let gate_camera = FakeRtspCamera::start(FakeCameraOptions {
        width: 640,
        height: 480,
        gop_frames: 30,
        ..Default::default()
    })
    .expect("fake RTSP camera");
    let yard_camera = FakeRtspCamera::start(FakeCameraOptions {
        width: 320,
        height: 240,
        gop_frames: LONG_GOP_FRAMES,
        ..Default::default()
    })
    .expect("fake RTSP camera with a long GOP");
    let (gate_url, yard_url) = (gate_camera.url(), yard_camera.url());
    let gateway = GatewayUnderTest::start(&[
        TestCamera {
            id: "gate",
            source: &gate_url,
            settings: "",
        },
        TestCamera {
            id: "yard",
            source: &yard_url,
            settings: "",
        },
    ])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    wait_for_cached_gop(&gateway, "gate").await;
    wait_for_cached_gop(&gateway, "yard").await;
    // Let the long GOP grow past its keyframe: the snapshot must be of the keyframe alone.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let gate = fetch(&gateway.client, &gateway, "gate").await;
    assert_jpeg(&gate, 640, 480, "snapshot-gate.jpg");
    println!(
        "gate (640x480, 1 s GOP): {} byte JPEG in {} ms",
        gate.body.len(),
        gate.took.as_millis()
    );

    // The yard camera's only keyframe came at its start: any picture is from the GOP cache.
    let first = fetch(&gateway.client, &gateway, "yard").await;
    assert_jpeg(&first, 320, 240, "snapshot-yard.jpg");
    let again = fetch(&gateway.client, &gateway, "yard").await;
    assert_jpeg(&again, 320, 240, "snapshot-yard-again.jpg");
    assert_eq!(
        first.body, again.body,
        "the same keyframe, the same picture"
    );
    println!(
        "yard (320x240, 30 s GOP, from the GOP cache): decoded in {} ms, from the last decode in \
         {} ms",
        first.took.as_millis(),
        again.took.as_millis()
    );

    let metrics = gateway.metrics_text().await;
    for series in [
        "straja_snapshots_total{camera=\"yard\",outcome=\"served\"} 1",
        "straja_snapshots_total{camera=\"yard\",outcome=\"cached\"} 1",
        "straja_snapshots_total{camera=\"yard\",outcome=\"unavailable\"} 0",
        "straja_snapshots_total{camera=\"gate\",outcome=\"failed\"} 0",
        // A snapshot is not a viewer started from the cached GOP.
        "straja_gop_cache_replays_total{camera=\"yard\"} 0",
        "straja_gop_cache_replays_total{camera=\"gate\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    let snapshots: Vec<String> = audit_records(&gateway)
        .into_iter()
        .filter(|r| r.action == Action::ViewSnapshot)
        .map(|r| {
            assert_eq!(r.actor, "test-security");
            assert!(
                r.source
                    .as_deref()
                    .is_some_and(|s| s.starts_with("127.0.0.1:"))
            );
            r.resource
        })
        .collect();
    assert_eq!(snapshots, ["camera:gate", "camera:yard", "camera:yard"]);

    gateway.shutdown().await;
    gate_camera.stop();
    yard_camera.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gop_cache_the_camera_is_asked_for_a_keyframe_and_a_dead_camera_has_no_picture() {
    // Nothing listens on this port: the camera never plays.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dead_url = format!("rtsp://127.0.0.1:{closed_port}/cam");
    let gateway = GatewayUnderTest::start(&[
        TestCamera {
            id: "lobby",
            // A 20 s GOP with no cache: only a requested keyframe can make a picture in time.
            source: "test://smpte?width=320&height=180&gop=600",
            settings: "gop_cache_bytes = 0",
        },
        TestCamera {
            id: "dead",
            source: &dead_url,
            settings: "",
        },
    ])
    .await;
    let lobby = gateway.running.gateway().camera("lobby").expect("lobby");
    for _ in 0..300 {
        if lobby.is_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lobby.is_up(), "the lobby camera plays");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let requests_before = lobby.feed.metrics().keyframe_requests.get();
    let picture = fetch(&gateway.client, &gateway, "lobby").await;
    assert_jpeg(&picture, 320, 180, "snapshot-lobby-requested-keyframe.jpg");
    assert!(
        lobby.feed.metrics().keyframe_requests.get() > requests_before,
        "the camera was asked for a keyframe"
    );
    println!(
        "lobby (no GOP cache): keyframe requested and decoded in {} ms",
        picture.took.as_millis()
    );
    assert_eq!(
        lobby.feed.subscriber_count(),
        0,
        "the snapshot's wait left the feed"
    );

    let none = fetch(&gateway.client, &gateway, "dead").await;
    assert_eq!(none.status, 503);
    assert_eq!(none.retry_after.as_deref(), Some("2"));
    let error: serde_json::Value = serde_json::from_slice(&none.body).expect("a JSON error");
    let message = error["error"].as_str().expect("error text");
    assert!(message.contains("no picture now"), "{message}");
    assert!(
        none.took < Duration::from_secs(4),
        "the wait for a keyframe is bounded: {:?}",
        none.took
    );
    let metrics = gateway.metrics_text().await;
    for series in [
        "straja_snapshots_total{camera=\"dead\",outcome=\"unavailable\"} 1",
        "straja_snapshots_total{camera=\"lobby\",outcome=\"served\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    let records = audit_records(&gateway);
    assert!(
        !records
            .iter()
            .any(|r| r.action == Action::ViewSnapshot && r.resource == "camera:dead"),
        "no picture, no view on record"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_security_staff_with_the_camera_get_its_snapshot() {
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "gate",
        source: "test://ball?width=160&height=120",
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    let anonymous = fetch(&gateway.anonymous, &gateway, "gate").await;
    assert_eq!(anonymous.status, 401);
    let ops = fetch(&gateway.ops_client, &gateway, "gate").await;
    assert_eq!(ops.status, 403, "ops see health, not footage");
    let other_camera = gateway.client_with(Some(&gateway.token("s2", Role::Security, &["yard"])));
    assert_eq!(fetch(&other_camera, &gateway, "gate").await.status, 403);
    let clinician = gateway.client_with(Some(&gateway.token("c", Role::Clinician, &["gate"])));
    assert_eq!(fetch(&clinician, &gateway, "gate").await.status, 403);
    // A camera the token names but the box does not have.
    let scoped = gateway.client_with(Some(&gateway.token("s3", Role::Security, &["nope"])));
    let unknown = fetch(&scoped, &gateway, "nope").await;
    assert_eq!(unknown.status, 404);
    assert!(String::from_utf8_lossy(&unknown.body).contains("no camera"));

    let allowed = fetch(&gateway.client, &gateway, "gate").await;
    assert_jpeg(&allowed, 160, 120, "snapshot-small.jpg");

    let denials = audit_records(&gateway)
        .into_iter()
        .filter(|r| r.action == Action::AccessDenied && r.resource == "camera:gate")
        .count();
    assert_eq!(denials, 3, "ops, staff without the camera, clinician");
    gateway.shutdown().await;
}
