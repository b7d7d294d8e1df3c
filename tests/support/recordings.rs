//! Recordings as a test reads them: segment files on disk decrypted with the gateway's own
//! reader and key, and MP4 files checked by a real player's demuxer (ffprobe).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use straja_gateway::recording::RecordingKey;
use straja_gateway::recording::segment_file::SegmentReader;

/// What ffprobe reads of a file's first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// `h264`, ...
    pub codec: String,
    /// Frame size.
    pub width: u64,
    /// Frame size.
    pub height: u64,
    /// Frames ffprobe decoded-counted (`-count_frames`).
    pub frames: u64,
    /// The container's duration, in seconds.
    pub duration: f64,
}

/// Runs ffprobe on `file` with `args` (before the file) and `-of json`; its JSON, or `Err` with
/// its output when it cannot read the file.
fn run_ffprobe(file: &Path, args: &[&str]) -> Result<serde_json::Value, String> {
    let output = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "json"])
        .arg(file)
        .output()
        .map_err(|e| format!("ffprobe could not run: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "ffprobe failed on {}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_str(&text).map_err(|e| format!("ffprobe JSON: {e}: {text}"))
}

/// A number ffprobe printed (as a number or a string).
fn number(v: &serde_json::Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0)
}

/// Runs ffprobe on `file`; `Err` with its output when it cannot read it.
pub fn ffprobe(file: &Path) -> Result<Probe, String> {
    let json = run_ffprobe(
        file,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames:format=duration",
        ],
    )?;
    let stream = &json["streams"][0];
    Ok(Probe {
        codec: stream["codec_name"].as_str().unwrap_or("").to_owned(),
        width: number(&stream["width"]) as u64,
        height: number(&stream["height"]) as u64,
        frames: number(&stream["nb_read_frames"]) as u64,
        duration: number(&json["format"]["duration"]),
    })
}

/// The recording key of a state directory.
pub fn key(state_dir: &Path) -> RecordingKey {
    RecordingKey::load(state_dir).expect("the recording key")
}

/// Decrypts a segment file of `camera` with the state directory's key.
pub fn decrypt(state_dir: &Path, camera: &str, segment: &Path) -> (Vec<u8>, bool) {
    let reader = SegmentReader::open(segment, &key(state_dir), camera).expect("a segment");
    (reader.read_all().expect("decrypts"), reader.is_complete())
}

/// Decrypts a segment into `dir` as an `.mp4` and probes it.
pub fn probe_segment(state_dir: &Path, camera: &str, segment: &Path, dir: &Path) -> Probe {
    let (mp4, _) = decrypt(state_dir, camera, segment);
    let name = segment
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
    let plain = dir.join(format!("{name}.mp4"));
    std::fs::write(&plain, mp4).expect("write decrypted copy");
    ffprobe(&plain).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The segment files in a camera's recordings directory: (finished `.srec`, being written `.part`).
pub fn segment_files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut finished = Vec::new();
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".srec.part") {
            parts.push(path);
        } else if name.ends_with(".srec") {
            finished.push(path);
        }
    }
    finished.sort();
    parts.sort();
    (finished, parts)
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What ffprobe reads of one stream of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamProbe {
    /// `video` or `audio`.
    pub kind: String,
    /// `h264`, `opus`, ...
    pub codec: String,
    /// Where it starts in the file, in seconds.
    pub start: f64,
    /// Its duration, in seconds.
    pub duration: f64,
    /// Frames (packets, for audio) ffprobe counted (`-count_frames`).
    pub frames: u64,
}

/// Runs ffprobe on every stream of `file`: the streams, and the container's duration.
pub fn ffprobe_streams(file: &Path) -> Result<(Vec<StreamProbe>, f64), String> {
    let json = run_ffprobe(
        file,
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,start_time,duration,nb_read_frames:format=duration",
        ],
    )?;
    let streams = json["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .map(|s| StreamProbe {
                    kind: s["codec_type"].as_str().unwrap_or("").to_owned(),
                    codec: s["codec_name"].as_str().unwrap_or("").to_owned(),
                    start: number(&s["start_time"]),
                    duration: number(&s["duration"]),
                    frames: number(&s["nb_read_frames"]) as u64,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((streams, number(&json["format"]["duration"])))
}

/// `straja recordings export --consultation ID --out FILE --config CONFIG` with the real binary;
/// its success and what it printed.
pub fn export_consultation(config: &Path, consultation: &str, out: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_straja"))
        .args([
            "recordings",
            "export",
            "--consultation",
            consultation,
            "--out",
        ])
        .arg(out)
        .arg("--config")
        .arg(config)
        .output()
        .expect("straja recordings export");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Exports a consultation's recording with the real command into the test artefact `name` and
/// checks it with ffprobe: `participants` videos (H.264) and audios (Opus), alternating, the file
/// and every track of the recording's length, each with ≥ 60 frames. `recorded` bounds that
/// length, in seconds: from every page showing the recording to the stop being asked for (at
/// least), and from the start being asked for to every page showing the stop (at most). Returns
/// what the command printed.
pub fn check_consultation_export(
    config: &Path,
    consultation: &str,
    name: &str,
    participants: usize,
    recorded: std::ops::RangeInclusive<f64>,
) -> String {
    let out = super::test_artifacts::artifact_path(name);
    let _ = std::fs::remove_file(&out);
    let (exported, text) = export_consultation(config, consultation, &out);
    assert!(exported, "{text}");
    let (streams, duration) = ffprobe_streams(&out).expect("ffprobe reads the export");
    let kinds: Vec<(&str, &str)> = streams
        .iter()
        .map(|s| (s.kind.as_str(), s.codec.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("video", "h264"), ("audio", "opus")].repeat(participants),
        "a video and an audio track per participant: {streams:#?}"
    );
    // Less: the first keyframe after the start; more: the last fragment's rounding.
    let (shortest, longest) = (*recorded.start(), *recorded.end());
    assert!(
        (shortest - 1.0..=longest + 0.5).contains(&duration),
        "the file lasts {duration:.2} s; recorded for {shortest:.2} to {longest:.2} s"
    );
    for stream in &streams {
        assert!(
            stream.duration >= shortest - 1.5 && stream.frames >= 60,
            "every participant, the whole recording: {stream:?}"
        );
    }
    let (again, refused) = export_consultation(config, consultation, &out);
    assert!(!again && refused.contains("never overwrite"), "{refused}");
    text
}

/// `straja recordings list --consultations --config CONFIG` with the real binary: what it printed.
pub fn list_consultations(config: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_straja"))
        .args(["recordings", "list", "--consultations", "--config"])
        .arg(config)
        .output()
        .expect("straja recordings list");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every file under `dir` (recursively; none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
