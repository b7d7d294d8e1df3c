//! `straja recordings list|export`: a camera's recorded segments, and a time range of them as one
//! MP4 file; consultations' recordings, and one of them as one MP4 file with a video and an audio
//! track per participant. Reads the recordings directly (the daemon may keep running): it needs
//! the recording key (`<state_dir>/keys/recording.key` or the `recording.key` credential), so
//! run it as the daemon's user. Every export is in the audit log, before a byte is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use straja_gateway::audit::{Action, AuditEvent, AuditLog, Outcome};
use straja_gateway::config::Config;
use straja_gateway::recording::wall_time::{parse_time, rfc3339};
use straja_gateway::recording::{
    ConsultationRecordings, PartFiles, RecordingKey, SegmentCatalogue, consultation_export,
    consultation_recordings, export,
};

/// `straja recordings ...`.
#[derive(Subcommand)]
pub enum RecordingsCommand {
    /// List a camera's recorded segments (optionally in a time range), or the recorded
    /// consultations.
    List {
        /// The camera.
        #[arg(long, required_unless_present = "consultations")]
        camera: Option<String>,
        /// List the recorded consultations instead.
        #[arg(long, conflicts_with_all = ["camera", "from", "to"])]
        consultations: bool,
        /// From this time (RFC 3339, e.g. 2026-12-01T18:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Up to this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write a camera's recordings between two times, or a consultation's recording, into one
    /// playable MP4 file.
    Export {
        /// The camera.
        #[arg(long, required_unless_present = "consultation", requires_all = ["from", "to"])]
        camera: Option<String>,
        /// The consultation (its id, as `POST /api/v1/consultations` returned it).
        #[arg(long, conflicts_with_all = ["camera", "from", "to"])]
        consultation: Option<String>,
        /// From this time (RFC 3339, e.g. 2026-12-01T18:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Up to this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// The MP4 file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Configuration file (without: the embedded demo configuration).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Runs a `recordings` command; returns what to print.
pub fn run(
    command: RecordingsCommand,
    load: impl Fn(Option<&Path>) -> anyhow::Result<Config>,
) -> anyhow::Result<String> {
    match command {
        RecordingsCommand::List {
            consultations: true,
            config,
            ..
        } => {
            let config = load(config.as_deref())?;
            list_consultations(&config)
        }
        RecordingsCommand::List {
            camera,
            from,
            to,
            config,
            ..
        } => {
            let camera = camera.unwrap_or_default();
            let config = load(config.as_deref())?;
            let (catalogue, _) = open(&config, &camera)?;
            let from = from
                .map(|t| parse_time("--from", &t))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let to = to
                .map(|t| parse_time("--to", &t))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let segments = catalogue.list(
                &camera,
                from.unwrap_or(0),
                to.unwrap_or(u64::MAX),
                usize::MAX,
            );
            let mut out = String::new();
            for s in &segments {
                out.push_str(&format!(
                    "{}  {} .. {}  {:>7.1} s  {:>10} bytes{}\n",
                    s.id(),
                    rfc3339(s.start_ms),
                    rfc3339(s.end_ms),
                    s.end_ms.saturating_sub(s.start_ms) as f64 / 1000.0,
                    s.bytes,
                    if s.recording { "  (recording)" } else { "" }
                ));
            }
            out.push_str(&format!("{} segment(s) of camera {camera}", segments.len()));
            Ok(out)
        }
        RecordingsCommand::Export {
            consultation: Some(consultation),
            out,
            config,
            ..
        } => {
            let config = load(config.as_deref())?;
            export_consultation(&config, &consultation, &out)
        }
        RecordingsCommand::Export {
            camera,
            from,
            to,
            out,
            config,
            ..
        } => {
            let camera = camera.unwrap_or_default();
            let config = load(config.as_deref())?;
            let from_ms =
                parse_time("--from", &from.unwrap_or_default()).map_err(anyhow::Error::msg)?;
            let to_ms = parse_time("--to", &to.unwrap_or_default()).map_err(anyhow::Error::msg)?;
            refuse_existing(&out)?;
            let (catalogue, key) = open(&config, &camera)?;
            // On record before a byte of footage leaves the box.
            audit_export(
                &config,
                format!("camera:{camera}"),
                format!(
                    "{} .. {} to {}",
                    rfc3339(from_ms),
                    rfc3339(to_ms),
                    out.display()
                ),
            )?;
            let report = export::export(&catalogue, &key, &camera, from_ms, to_ms, &out)
                .with_context(|| format!("export of camera {camera}"))?;
            let mut text = format!(
                "wrote {}: {} frames, {:.1} s from {} segment(s), {} .. {}",
                out.display(),
                report.frames,
                report.duration.as_secs_f64(),
                report.segments,
                rfc3339(report.first_ms),
                rfc3339(report.last_ms),
            );
            for (from, to) in &report.gaps {
                text.push_str(&format!(
                    "\n  not recorded (left out): {} .. {}",
                    rfc3339(*from),
                    rfc3339(*to)
                ));
            }
            Ok(text)
        }
    }
}

/// Exports never overwrite.
fn refuse_existing(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} exists; choose another --out (exports never overwrite)",
            out.display()
        );
    }
    Ok(())
}

/// Puts an export on record (`recording.export`, actor `cli:<user>`).
fn audit_export(config: &Config, resource: String, reason: String) -> anyhow::Result<()> {
    let audit = AuditLog::open(&config.state_dir, config.audit.rotate_bytes)?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    audit.append(AuditEvent {
        actor: format!("cli:{operator}"),
        role: None,
        action: Action::RecordingExport,
        resource,
        outcome: Outcome::Allowed,
        source: None,
        reason: Some(reason),
    })?;
    Ok(())
}

fn open_consultations(config: &Config) -> anyhow::Result<ConsultationRecordings> {
    let key = RecordingKey::load(&config.state_dir)
        .context("the recording key (run as the daemon's user)")?;
    ConsultationRecordings::open_to_read(&config.state_dir, Arc::new(key)).with_context(|| {
        format!(
            "consultations' recordings in {}",
            config
                .state_dir
                .join(consultation_recordings::DIR)
                .display()
        )
    })
}

fn list_consultations(config: &Config) -> anyhow::Result<String> {
    let recordings = open_consultations(config)?;
    let listed = recordings.list();
    let mut out = String::new();
    for c in &listed {
        out.push_str(&format!(
            "{}  {} .. {}  {:>7.1} s  {} track(s)  {:>10} bytes{}\n",
            c.id,
            rfc3339(c.start_ms),
            rfc3339(c.end_ms),
            c.end_ms.saturating_sub(c.start_ms) as f64 / 1000.0,
            c.tracks.len(),
            c.bytes,
            if c.recording { "  (recording)" } else { "" }
        ));
    }
    out.push_str(&format!("{} recorded consultation(s)", listed.len()));
    Ok(out)
}

fn export_consultation(config: &Config, consultation: &str, out: &Path) -> anyhow::Result<String> {
    if !consultation_recordings::is_consultation_id(consultation) {
        anyhow::bail!(
            "'{consultation}' is not a consultation id (32 lowercase hexadecimal digits, as \
             POST /api/v1/consultations returned it)"
        );
    }
    refuse_existing(out)?;
    let recordings = open_consultations(config)?;
    if recordings.tracks(consultation).is_empty() {
        anyhow::bail!(
            "no recording of consultation {consultation} on this box (never recorded, or past \
             its retention)"
        );
    }
    // On record before a byte of the consultation leaves the box.
    audit_export(
        config,
        format!("consultation:{}", &consultation[..8]),
        format!("to {}", out.display()),
    )?;
    let report = consultation_export::export(&recordings, consultation, out)
        .with_context(|| format!("export of consultation {consultation}"))?;
    let mut text = format!(
        "wrote {}: {:.1} s, {} track(s) from {} segment(s), from {}",
        out.display(),
        report.duration.as_secs_f64(),
        report.tracks.len(),
        report.segments,
        rfc3339(report.first_ms),
    );
    for track in &report.tracks {
        text.push_str(&format!(
            "\n  {} {}: {:.1} s .. {:.1} s, {} samples",
            track.participant,
            track.codec,
            track.start.as_secs_f64(),
            track.end.as_secs_f64(),
            track.samples
        ));
    }
    Ok(text)
}

fn open(config: &Config, camera: &str) -> anyhow::Result<(SegmentCatalogue, RecordingKey)> {
    if !config.cameras.iter().any(|c| c.id == camera) {
        anyhow::bail!("no camera '{camera}' in the configuration");
    }
    let key = RecordingKey::load(&config.state_dir)
        .context("the recording key (run as the daemon's user)")?;
    let dir = config.recording.dir_in(&config.state_dir);
    let catalogue = SegmentCatalogue::open(&dir, &[camera.to_owned()], &key, PartFiles::Leave)
        .with_context(|| format!("recordings directory {}", dir.display()))?;
    Ok((catalogue, key))
}
