//! `straja recordings list|export`: a camera's recorded segments, and a time range of them as one
//! MP4 file. Reads the recordings directly (the daemon may keep running): it needs the recording
//! key (`<state_dir>/keys/recording.key` or the `recording.key` credential), so run it as the
//! daemon's user. Every export is in the audit log.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use straja_gateway::audit::{Action, AuditEvent, AuditLog, Outcome};
use straja_gateway::config::Config;
use straja_gateway::recording::wall_time::{parse_time, rfc3339};
use straja_gateway::recording::{PartFiles, RecordingKey, SegmentCatalogue, export};

/// `straja recordings ...`.
#[derive(Subcommand)]
pub enum RecordingsCommand {
    /// List a camera's recorded segments (optionally in a time range).
    List {
        /// The camera.
        #[arg(long)]
        camera: String,
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
    /// Write a camera's recordings between two times into one playable MP4 file.
    Export {
        /// The camera.
        #[arg(long)]
        camera: String,
        /// From this time (RFC 3339, e.g. 2026-12-01T18:00:00Z).
        #[arg(long)]
        from: String,
        /// Up to this time (RFC 3339).
        #[arg(long)]
        to: String,
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
            camera,
            from,
            to,
            config,
        } => {
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
            camera,
            from,
            to,
            out,
            config,
        } => {
            let config = load(config.as_deref())?;
            let from_ms = parse_time("--from", &from).map_err(anyhow::Error::msg)?;
            let to_ms = parse_time("--to", &to).map_err(anyhow::Error::msg)?;
            if out.exists() {
                anyhow::bail!(
                    "{} exists; choose another --out (exports never overwrite)",
                    out.display()
                );
            }
            let (catalogue, key) = open(&config, &camera)?;
            let audit = AuditLog::open(&config.state_dir, config.audit.rotate_bytes)?;
            let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
            let record = |outcome, reason| AuditEvent {
                actor: format!("cli:{operator}"),
                role: None,
                action: Action::RecordingExport,
                resource: format!("camera:{camera}"),
                outcome,
                source: None,
                reason: Some(reason),
            };
            // On record before a byte of footage leaves the box.
            audit.append(record(
                Outcome::Allowed,
                format!(
                    "{} .. {} to {}",
                    rfc3339(from_ms),
                    rfc3339(to_ms),
                    out.display()
                ),
            ))?;
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
