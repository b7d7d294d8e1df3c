//! The daemon's log lines fit their reader (the real `straja` binary, its stderr in a file):
//!
//! - with `JOURNAL_STREAM` naming stderr (as systemd sets it when stderr is the journal), every
//!   line starts with a syslog priority prefix (`<6>` info, `<4>` warning, ...) and carries no
//!   timestamp of its own;
//! - with `JOURNAL_STREAM` naming some other file (stderr redirected), lines are plain text with a
//!   timestamp, as on a terminal;
//! - with `STRAJA_LOG_FORMAT=json`, every line is one JSON object, with a timestamp, or behind the
//!   priority prefix and without one under journald;
//! - GStreamer's own messages (`GST_DEBUG=1`: its errors, here the refused camera's) come in the
//!   same form, at their own priority.

mod support;

use std::time::{Duration, Instant};

use support::gateway_process::{GatewayProcess, ProcessOptions};

/// A camera that plays and one that is refused (for a warning line).
const CAMERAS: &str = r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=160&height=120"

[[cameras]]
id = "refused"
name = "Refused"
source = "rtsp://127.0.0.1:1/none"
"#;

/// Runs the daemon as `options` say (stderr captured) until its log has an info line about
/// serving and a warning about the refused camera, stops it (exit 0), and returns its log lines.
fn log_lines(mut options: ProcessOptions) -> Vec<String> {
    options.capture_stderr = true;
    options.env.push((
        "STRAJA_LOG".to_owned(),
        "info,rtc_dtls::config=error".to_owned(),
    ));
    options.env.push(("GST_DEBUG".to_owned(), "1".to_owned()));
    let mut gateway = GatewayProcess::start_with(CAMERAS, options);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(gateway.stderr_log().contains("straja is serving")
        && gateway
            .stderr_log()
            .contains("camera pipeline failed; reconnecting")
        && gateway.stderr_log().contains("Could not connect"))
    {
        assert!(
            Instant::now() < deadline,
            "log lines did not come:\n{}",
            gateway.stderr_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    gateway.terminate();
    let status = gateway
        .wait_exit(Duration::from_secs(20))
        .expect("the daemon exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let log = gateway.stderr_log();
    assert!(log.contains("stopped"), "{log}");
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// True when `line` holds an RFC 3339 timestamp such as `2026-12-01T18:58:00.243176Z`.
fn has_timestamp(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.windows(20).any(|w| {
        w[..4].iter().all(u8::is_ascii_digit)
            && w[4] == b'-'
            && w[7] == b'-'
            && w[10] == b'T'
            && w[13] == b':'
            && w[16] == b':'
    })
}

/// The priority of a `<N>`-prefixed line and the rest of it.
fn priority(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let (n, rest) = rest.split_once('>')?;
    Some((n.parse().ok()?, rest))
}

fn journal() -> ProcessOptions {
    ProcessOptions {
        journal_stream: true,
        ..ProcessOptions::default()
    }
}

fn json() -> Vec<(String, String)> {
    vec![("STRAJA_LOG_FORMAT".to_owned(), "json".to_owned())]
}

#[test]
fn under_journald_lines_carry_a_priority_and_no_timestamp() {
    let lines = log_lines(journal());
    for line in &lines {
        let (level, rest) = priority(line).unwrap_or_else(|| panic!("no <N> prefix: {line}"));
        assert!((3..=7).contains(&level), "{line}");
        assert!(!has_timestamp(line), "a timestamp of our own: {line}");
        assert!(
            !rest.starts_with("INFO") && !rest.starts_with(" INFO"),
            "the level is in the prefix, not the text: {line}"
        );
    }
    let serving = lines
        .iter()
        .find(|l| l.contains("straja is serving"))
        .expect("the serving line");
    assert!(serving.starts_with("<6>straja is serving"), "{serving}");
    let warning = lines
        .iter()
        .find(|l| l.contains("camera pipeline failed; reconnecting"))
        .expect("the refused camera's warning");
    assert!(warning.starts_with("<4>"), "{warning}");
    let gstreamer = lines
        .iter()
        .find(|l| l.contains("Could not connect") && l.contains("gst_category="))
        .expect("GStreamer's error about the refused camera");
    assert!(gstreamer.starts_with("<3>"), "{gstreamer}");
}

#[test]
fn a_journal_stream_that_is_not_stderr_leaves_plain_text() {
    let mut options = ProcessOptions::default();
    // Another file's device and inode: stderr was redirected away from the journal.
    options
        .env
        .push(("JOURNAL_STREAM".to_owned(), "1:1".to_owned()));
    let lines = log_lines(options);
    let serving = lines
        .iter()
        .find(|l| l.contains("straja is serving"))
        .expect("the serving line");
    assert!(has_timestamp(serving), "{serving}");
    assert!(serving.contains("INFO"), "{serving}");
    assert!(lines.iter().all(|l| priority(l).is_none()), "{lines:?}");
}

#[test]
fn json_lines_are_objects_with_level_and_message() {
    let lines = log_lines(ProcessOptions {
        env: json(),
        ..ProcessOptions::default()
    });
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        assert!(value["timestamp"].is_string(), "{line}");
        assert!(value["level"].is_string(), "{line}");
        assert!(value["fields"]["message"].is_string(), "{line}");
    }
    assert!(lines.iter().any(|l| {
        serde_json::from_str::<serde_json::Value>(l)
            .is_ok_and(|v| v["level"] == "WARN" && v["fields"]["camera"] == "refused")
    }));
    assert!(lines.iter().any(|l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
            v["level"] == "ERROR"
                && v["target"] == "gstreamer"
                && v["fields"]["gst_category"].is_string()
        })
    }));
}

#[test]
fn json_under_journald_goes_behind_the_priority_without_a_timestamp() {
    let lines = log_lines(ProcessOptions {
        env: json(),
        ..journal()
    });
    for line in &lines {
        let (level, rest) = priority(line).unwrap_or_else(|| panic!("no <N> prefix: {line}"));
        let value: serde_json::Value =
            serde_json::from_str(rest).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value.get("timestamp").is_none(), "{line}");
        let expected = match value["level"].as_str() {
            Some("ERROR") => 3,
            Some("WARN") => 4,
            Some("INFO") => 6,
            _ => 7,
        };
        assert_eq!(level, expected, "{line}");
    }
}
