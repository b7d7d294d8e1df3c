//! A new configuration on SIGHUP (`systemctl reload`), on the real `straja` binary and its
//! configuration file:
//!
//! - a camera added by a reload plays while a viewer of another camera keeps receiving frames
//!   with no gap over 500 ms; a changed source restarts only that camera, whose viewer stays and
//!   gets frames again; a removed camera's viewer is closed, the camera is gone from the API and
//!   the metrics, and the first camera's viewer is still untouched. Prints each reload's time.
//! - an invalid configuration (a syntax error, a bad camera, TLS files that do not load) is
//!   rejected: the running cameras and viewers stay, it is counted and logged with the reason,
//!   and a valid one afterwards applies; `log.level` changes what is logged.

mod support;

use std::time::{Duration, Instant};

use support::gateway_process::{GatewayProcess, ProcessOptions};
use support::whep_viewer::WhepViewer;

/// Longest gap between frames allowed for a viewer of a camera the reload did not touch.
const MAX_UNTOUCHED_GAP: Duration = Duration::from_millis(500);

fn camera(id: &str, source: &str) -> String {
    format!("[[cameras]]\nid = \"{id}\"\nname = \"{id}\"\nsource = \"{source}\"\n")
}

fn gate() -> String {
    camera("gate", "test://ball?width=320&height=240&fps=30")
}

/// Starts the daemon on `cameras`, its log (at the configuration's level) in a file.
fn start(cameras: &str) -> GatewayProcess {
    GatewayProcess::start_with(
        cameras,
        ProcessOptions {
            capture_stderr: true,
            log_level_from_config: true,
            ..ProcessOptions::default()
        },
    )
}

/// Rewrites the configuration file: its head (listeners, TLS, state) as it was, then `rest`.
fn rewrite(process: &GatewayProcess, rest: &str) {
    let text = std::fs::read_to_string(&process.config).expect("config");
    let head = text
        .find("[[cameras]]")
        .or_else(|| text.find("[log]"))
        .map_or(text.as_str(), |at| &text[..at]);
    let head = head.split("[log]").next().unwrap_or(head);
    std::fs::write(&process.config, format!("{head}{rest}")).expect("config written");
}

/// Sends SIGHUP and waits (bounded) until the log says the reload is over; returns the new part
/// of the log.
async fn reload(process: &GatewayProcess) -> String {
    let before = process.stderr_log().len();
    process.hang_up();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = process.stderr_log();
        let new = log.get(before..).unwrap_or_default().to_owned();
        if new.contains("configuration reloaded") || new.contains("configuration reload rejected") {
            return new;
        }
        assert!(Instant::now() < deadline, "no reload logged:\n{new}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `took_ms` a reload's log line gives.
fn took_ms(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .unwrap_or_else(|| panic!("no reload line:\n{log}"));
    line.split("took_ms=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no took_ms in {line}"))
}

/// The cameras `GET /api/v1/cameras` lists, with their state.
async fn cameras(ops: &reqwest::Client, process: &GatewayProcess) -> Vec<(String, String)> {
    let list: serde_json::Value = ops
        .get(format!("{}/api/v1/cameras", process.base_url))
        .send()
        .await
        .expect("camera list")
        .json()
        .await
        .expect("JSON");
    list.as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_owned(),
                c["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Waits (bounded) until `id` is listed as playing.
async fn wait_playing(ops: &reqwest::Client, process: &GatewayProcess, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = cameras(ops, process).await;
        if list.iter().any(|(c, state)| c == id && state == "playing") {
            return;
        }
        assert!(Instant::now() < deadline, "{id} is not playing: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until the viewer has `more` complete frames than now; returns its reception.
async fn more_frames(viewer: &WhepViewer, more: u64) -> support::whep_viewer::Reception {
    let now = viewer.reception().complete_frames;
    let reception = viewer
        .wait_for_frames(now + more, Duration::from_secs(20))
        .await;
    assert!(
        reception.complete_frames >= now + more,
        "{more} more frames did not arrive: {reception:?}"
    );
    reception
}

/// Asserts that the viewer of an untouched camera received frames throughout, without a gap over
/// [`MAX_UNTOUCHED_GAP`], and that its session is still up.
async fn assert_untouched(viewer: &WhepViewer, what: &str) -> Duration {
    let reception = more_frames(viewer, 15).await;
    assert!(
        reception.longest_frame_gap <= MAX_UNTOUCHED_GAP,
        "{what}: the other camera's viewer waited {:?} for a frame",
        reception.longest_frame_gap
    );
    assert!(
        !reception
            .states
            .iter()
            .any(|s| s == "closed" || s == "failed"),
        "{what}: the other camera's viewer was cut off: {:?}",
        reception.states
    );
    reception.longest_frame_gap
}

/// Asserts that the log from byte `since` on shows no stop or start of the gate camera's pipeline.
fn assert_gate_pipeline_kept(process: &GatewayProcess, since: usize, what: &str) {
    let log = process.stderr_log();
    let restarts: Vec<&str> = log
        .get(since..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("camera=gate") && l.contains("camera st"))
        .collect();
    assert!(
        restarts.is_empty(),
        "{what}: gate's pipeline restarted: {restarts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_changes_and_removes_cameras_without_touching_other_viewers() {
    let process = start(&gate());
    process.wait_until_ready(Duration::from_secs(20)).await;
    let ops = process.client(&process.token(&["--role", "ops"]));
    let gate_viewer = WhepViewer::connect(
        &process.client(&process.token(&["--role", "security", "--camera", "gate"])),
        &process.base_url,
        "gate",
    )
    .await;
    more_frames(&gate_viewer, 30).await;

    // Add a camera.
    let yard = camera("yard", "test://snow?width=320&height=240&fps=30");
    rewrite(&process, &format!("{}{yard}", gate()));
    gate_viewer.restart_gap_measurement();
    let log_at = process.stderr_log().len();
    let log = reload(&process).await;
    assert!(log.contains("1 added (yard)"), "{log}");
    let add_ms = took_ms(&log);
    wait_playing(&ops, &process, "yard").await;
    let yard_client = process.client(&process.token(&["--role", "security", "--camera", "yard"]));
    let yard_viewer = WhepViewer::connect(&yard_client, &process.base_url, "yard").await;
    more_frames(&yard_viewer, 30).await;
    let gap_add = assert_untouched(&gate_viewer, "adding yard").await;
    assert_gate_pipeline_kept(&process, log_at, "adding yard");
    assert_eq!(
        process.metric("straja_camera_up{camera=\"yard\"}"),
        Some(1.0)
    );
    assert_eq!(
        process.metric("straja_config_reloads_total{outcome=\"applied\"}"),
        Some(1.0)
    );

    // Change its source: only its pipeline restarts; its viewer stays and gets frames again.
    let yard_ball = camera("yard", "test://smpte?width=320&height=240&fps=30");
    rewrite(&process, &format!("{}{yard_ball}", gate()));
    gate_viewer.restart_gap_measurement();
    yard_viewer.restart_gap_measurement();
    let log_at = process.stderr_log().len();
    let log = reload(&process).await;
    assert!(
        log.contains("camera=yard") && log.contains("camera starting"),
        "yard's pipeline did not restart: {log}"
    );
    assert!(log.contains("1 changed (yard)"), "{log}");
    let change_ms = took_ms(&log);
    let yard_after = more_frames(&yard_viewer, 30).await;
    assert!(
        !yard_after
            .states
            .iter()
            .any(|s| s == "closed" || s == "failed"),
        "the changed camera's viewer was cut off: {:?}",
        yard_after.states
    );
    let gap_change = assert_untouched(&gate_viewer, "changing yard").await;
    assert_gate_pipeline_kept(&process, log_at, "changing yard");

    // Remove it: its viewer is closed, it is gone from the API and the metrics.
    rewrite(&process, &gate());
    gate_viewer.restart_gap_measurement();
    let log_at = process.stderr_log().len();
    let log = reload(&process).await;
    assert!(log.contains("1 removed (yard)"), "{log}");
    let remove_ms = took_ms(&log);
    let list = cameras(&ops, &process).await;
    assert_eq!(
        list.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["gate"]
    );
    let deleted = yard_client
        .delete(&yard_viewer.session_url)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        deleted.status(),
        404,
        "the removed camera's session is still open"
    );
    assert_eq!(
        yard_viewer.dtls_state().await.as_deref(),
        Some("closed"),
        "the removed camera's viewer was not closed by the gateway"
    );
    assert_eq!(
        process.metric("straja_webrtc_sessions{kind=\"whep\"}"),
        Some(1.0)
    );
    assert_eq!(process.metric("straja_camera_up{camera=\"yard\"}"), None);
    let frames_at_removal = yard_viewer.reception().complete_frames;
    let refused = yard_client
        .post(format!("{}/api/v1/cameras/yard/whep", process.base_url))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .expect("WHEP offer");
    assert_eq!(refused.status(), 404, "a WHEP offer to the removed camera");
    let gap_remove = assert_untouched(&gate_viewer, "removing yard").await;
    assert_gate_pipeline_kept(&process, log_at, "removing yard");
    assert!(
        yard_viewer.reception().complete_frames <= frames_at_removal + 2,
        "the removed camera's viewer still receives frames"
    );
    assert_eq!(
        process.metric("straja_config_reloads_total{outcome=\"applied\"}"),
        Some(3.0)
    );

    println!(
        "reload: add a camera {add_ms} ms, change one's source {change_ms} ms, remove one \
         {remove_ms} ms; longest gap of the other camera's viewer: {} / {} / {} ms; the changed \
         camera's viewer waited {} ms for its new source",
        gap_add.as_millis(),
        gap_change.as_millis(),
        gap_remove.as_millis(),
        yard_after.longest_frame_gap.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reload_keeps_the_running_configuration() {
    let process = start(&gate());
    process.wait_until_ready(Duration::from_secs(20)).await;
    let ops = process.client(&process.token(&["--role", "ops"]));
    let viewer = WhepViewer::connect(
        &process.client(&process.token(&["--role", "security", "--camera", "gate"])),
        &process.base_url,
        "gate",
    )
    .await;
    more_frames(&viewer, 30).await;
    let original = std::fs::read_to_string(&process.config).expect("config");

    let broken = [
        (
            "a syntax error",
            format!("{}[[cameras]\n", gate()),
            "invalid configuration",
        ),
        (
            "a camera with a bad source",
            format!("{}{}", gate(), camera("yard", "ftp://nowhere")),
            "cameras[1].source",
        ),
        (
            "an unknown key",
            format!("{}colour = \"blue\"\n", gate()),
            "colour",
        ),
        (
            "a bad log level",
            format!("[log]\nlevel = \"info,[\"\n{}", gate()),
            "log.level",
        ),
    ];
    for (rejections, (what, text, reason)) in (1..).zip(broken) {
        rewrite(&process, &text);
        viewer.restart_gap_measurement();
        let log = reload(&process).await;
        assert!(
            log.contains("configuration reload rejected") && log.contains(reason),
            "{what}: {log}"
        );
        assert_eq!(
            process.metric("straja_config_reloads_total{outcome=\"rejected\"}"),
            Some(f64::from(rejections)),
            "{what}"
        );
        assert_eq!(
            process.metric("straja_config_last_reload_successful"),
            Some(0.0)
        );
        assert_eq!(
            cameras(&ops, &process).await,
            [("gate".to_owned(), "playing".to_owned())],
            "{what}"
        );
        assert_untouched(&viewer, what).await;
    }

    // TLS material that does not load: rejected as a whole (the new camera is not added).
    std::fs::write(
        &process.config,
        format!(
            "{}{}",
            original.replace("server.key", "missing.key"),
            camera("yard", "test://snow?width=160&height=120")
        ),
    )
    .expect("config");
    let log = reload(&process).await;
    assert!(
        log.contains("configuration reload rejected") && log.contains("missing.key"),
        "{log}"
    );
    assert_eq!(cameras(&ops, &process).await.len(), 1);
    std::fs::write(&process.config, &original).expect("config");

    // A valid one applies, with its log level: at `warn`, a reload's own info line is not logged.
    rewrite(&process, &format!("[log]\nlevel = \"warn\"\n{}", gate()));
    let log = reload(&process).await;
    assert!(log.contains("log level warn"), "{log}");
    assert_eq!(
        process.metric("straja_config_last_reload_successful"),
        Some(1.0)
    );
    let before = process.stderr_log().len();
    rewrite(
        &process,
        &format!(
            "[log]\nlevel = \"warn\"\n{}{}",
            gate(),
            camera("yard", "test://snow?width=160&height=120")
        ),
    );
    process.hang_up();
    wait_playing(&ops, &process, "yard").await;
    let quiet = process.stderr_log()[before..].to_owned();
    assert!(
        !quiet.contains("configuration reloaded") && !quiet.contains("INFO"),
        "info lines at log level warn:\n{quiet}"
    );
    assert_eq!(
        process.metric("straja_config_reloads_total{outcome=\"applied\"}"),
        Some(2.0)
    );
    assert_untouched(&viewer, "the valid reload").await;

    // Every reload is on record in the audit log, with its outcome.
    let audit_dir = process.state_dir().join("audit");
    let mut audit = String::new();
    for entry in std::fs::read_dir(&audit_dir).expect("audit dir") {
        audit.push_str(&std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default());
    }
    let reloads: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"config.reload\"") && l.contains("\"resource\":\"config\""))
        .collect();
    assert_eq!(reloads.len(), 7, "{reloads:#?}");
    assert_eq!(
        reloads.iter().filter(|l| l.contains("\"denied\"")).count(),
        5,
        "{reloads:#?}"
    );
}
