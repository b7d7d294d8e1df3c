//! A recording survives the gateway being killed (SIGKILL, as a crash or a power cut): every
//! finished segment is a valid MP4 once decrypted, the segment being written keeps everything up
//! to its last fragment, the restarted daemon recovers it, and `straja recordings export` turns
//! the whole range into one file that ffprobe reads with the right duration.

mod support;

use std::time::Duration;

use support::gateway_process::GatewayProcess;
use support::recordings::{ffprobe, probe_segment, segment_files, wait_until};

const CAMERA: &str = r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=320&height=240&fps=30&gop=30&bitrate=500"
record = true
record_segment_seconds = 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_survives_sigkill_and_exports_to_one_playable_file() {
    let mut gateway = GatewayProcess::start(CAMERA, None);
    let state = gateway.state_dir();
    let dir = state.join("recordings").join("gate");
    let probes = tempfile::tempdir().expect("temp dir");

    assert!(
        wait_until(Duration::from_secs(40), || segment_files(&dir).0.len() >= 3),
        "three segments finished: {:?}",
        segment_files(&dir)
    );
    // Into the next segment, past its first fragment.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    gateway.kill();
    let killed_at =
        straja_gateway::recording::wall_time::rfc3339(straja_gateway::recording::now_ms());

    let (finished, parts) = segment_files(&dir);
    assert_eq!(parts.len(), 1, "one segment was being written: {parts:?}");
    for segment in &finished {
        let probe = probe_segment(&state, "gate", segment, probes.path());
        assert_eq!(probe.codec, "h264");
        assert_eq!((probe.width, probe.height), (320, 240));
        assert!(
            (1.5..=3.5).contains(&probe.duration),
            "{}: a 2 s segment lasts {} s",
            segment.display(),
            probe.duration
        );
        assert!(probe.frames >= 45, "{}: {probe:?}", segment.display());
    }
    let (plain, complete) = support::recordings::decrypt(&state, "gate", &parts[0]);
    assert!(!complete, "the killed segment has no end record");
    assert!(!plain.is_empty());
    let cut_short = probe_segment(&state, "gate", &parts[0], probes.path());
    assert!(
        cut_short.frames >= 25,
        "the killed segment keeps its finished fragments: {cut_short:?}"
    );

    // The daemon comes back and recovers the segment the crash cut short.
    gateway.restart();
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    let recovered = parts[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".srec.part")
        .to_owned();
    let (finished_after, _) = segment_files(&dir);
    let recovered_file = finished_after
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{recovered}-"))
        })
        .unwrap_or_else(|| panic!("{recovered} recovered: {finished_after:?}"));
    let (_, complete) = support::recordings::decrypt(&state, "gate", recovered_file);
    assert!(complete, "recovery closes the segment");
    let security = gateway.client(&gateway.token(&["--role", "security", "--camera", "gate"]));
    let listed: serde_json::Value = security
        .get(format!(
            "{}/api/v1/cameras/gate/recordings",
            gateway.base_url
        ))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("JSON");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&format!("gate.{recovered}").as_str()),
        "{ids:?}"
    );

    // Everything recorded before the kill, as one file (the daemon records on meanwhile).
    let first = &listed[0];
    let recorded: Vec<_> = finished
        .iter()
        .map(|s| probe_segment(&state, "gate", s, probes.path()))
        .chain([cut_short])
        .collect();
    let frames: u64 = recorded.iter().map(|p| p.frames).sum();
    let out = probes.path().join("export.mp4");
    let config = state.parent().unwrap().join("straja.toml");
    let run_export = |from: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_straja"))
            .args(["recordings", "export", "--camera", "gate", "--from", from])
            .args(["--to", &killed_at, "--out"])
            .arg(&out)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("straja recordings export")
    };
    let output = run_export(first["start"].as_str().unwrap());
    assert!(output.status.success(), "{output:?}");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    let export = ffprobe(&out).expect("the export is a valid MP4");
    assert_eq!(
        export.frames, frames,
        "every recorded frame, once: {export:?}"
    );
    let expected = frames as f64 / 30.0;
    assert!(
        (export.duration - expected).abs() <= 0.2,
        "{} s exported for {expected:.2} s of frames",
        export.duration
    );
    let again = run_export(first["start"].as_str().unwrap());
    assert_eq!(again.status.code(), Some(2), "an export never overwrites");
    let audit = std::fs::read_to_string(state.join("audit").join("audit.log")).expect("audit");
    assert!(
        audit.contains("\"recording.export\""),
        "the export is on record"
    );
    drop(gateway);
}
