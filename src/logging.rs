//! The daemon's log lines, on stderr, in the form their reader wants:
//!
//! - on a terminal or in a file: `TIMESTAMP LEVEL message fields` (colours on a terminal);
//! - under systemd, when stderr is the journal (`$JOURNAL_STREAM` names stderr's device and
//!   inode): no timestamp of our own (journald stamps every entry) and no level word, but a
//!   syslog priority prefix per line, `<3>` error, `<4>` warning, `<6>` info, `<7>` debug and
//!   trace (`sd-daemon(3)`), which journald turns into the entry's `PRIORITY`;
//! - `STRAJA_LOG_FORMAT=json`: one JSON object per line (`timestamp`, `level`, `fields` with
//!   `message`, `target`, `spans`), without the timestamp and behind the priority prefix under
//!   journald.
//!
//! The configuration's `log.level` filters (`tracing-subscriber` `EnvFilter` syntax; default
//! `info`), changed by a reload ([`LogLevel`]); `STRAJA_LOG`, when set, overrides it. GStreamer's own
//! messages (as many as `GST_DEBUG` asks for) come through the same log, target `gstreamer`
//! (`straja_pipelines::route_debug_log_to_tracing`).

use std::io;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The variable that picks the format.
const FORMAT_ENV: &str = "STRAJA_LOG_FORMAT";

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// The variable that overrides `log.level`.
const LEVEL_ENV: &str = "STRAJA_LOG";

/// The filter in force, which a reload changes.
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `$STRAJA_LOG` was set: the configuration's level does not apply.
    pinned: bool,
    current: std::sync::Mutex<String>,
}

impl LogLevel {
    /// Puts the configuration's `log.level` in force (validated with the configuration), unless
    /// `$STRAJA_LOG` pins the filter.
    pub fn apply(&self, level: &str) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if *current == level {
            return;
        }
        if self.pinned {
            tracing::warn!("{LEVEL_ENV} is set: log.level {level:?} does not apply");
            return;
        }
        match filter_for(level).map(|filter| self.handle.reload(filter)) {
            Ok(Ok(())) => {
                tracing::info!("log level now {level:?}");
                *current = level.to_owned();
            }
            Ok(Err(e)) => tracing::error!("cannot change the log level: {e}"),
            Err(e) => tracing::error!("log.level {level:?} is not a filter: {e}"),
        }
    }
}

/// The filter for a `log.level`.
fn filter_for(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    // rtc_dtls::config warns on every DTLS-client session that it uses "localhost" as the server
    // name, which is meaningless for DTLS-SRTP (peers are checked by fingerprint).
    if level.contains("rtc_dtls") {
        EnvFilter::builder().parse(level)
    } else {
        EnvFilter::builder().parse(format!("{level},rtc_dtls::config=error"))
    }
}

/// Sets up logging for `straja run`, at `info` (or `$STRAJA_LOG`) until [`LogLevel::apply`].
pub fn init() -> LogLevel {
    let pinned = std::env::var_os(LEVEL_ENV).is_some();
    let filter = EnvFilter::try_from_env(LEVEL_ENV)
        .unwrap_or_else(|_| filter_for("info").expect("a valid filter"));
    let (filter, handle) = reload::Layer::new(filter);
    let requested = std::env::var(FORMAT_ENV).ok();
    let format = match requested.as_deref().map(str::trim) {
        None | Some("" | "text") => Format::Text,
        Some("json") => Format::Json,
        Some(_) => Format::Text,
    };
    let journal = stderr_is_journal();
    use std::io::IsTerminal;
    let ansi = !journal && std::io::stderr().is_terminal();
    let layer = tracing_subscriber::fmt::layer().with_ansi(ansi);
    let layer: Box<dyn Layer<_> + Send + Sync> = match (format, journal) {
        (Format::Text, false) => layer
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed(),
        (Format::Text, true) => layer
            .with_writer(JournalStderr)
            .without_time()
            .with_level(false)
            .with_target(false)
            .boxed(),
        (Format::Json, false) => layer.with_writer(std::io::stderr).json().boxed(),
        (Format::Json, true) => layer
            .with_writer(JournalStderr)
            .json()
            .without_time()
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
    if pinned && EnvFilter::try_from_env(LEVEL_ENV).is_err() {
        tracing::warn!("{LEVEL_ENV} is not a valid filter: logging at info");
    }
    if let Some(other) = requested
        && format == Format::Text
        && !matches!(other.trim(), "" | "text")
    {
        tracing::warn!("{FORMAT_ENV}={other:?} is neither text nor json: writing text");
    }
    LogLevel {
        handle,
        pinned,
        current: std::sync::Mutex::new("info".to_owned()),
    }
}

/// True when stderr is the journal's stream: `$JOURNAL_STREAM` is `DEVICE:INODE` of stderr (a
/// redirected stderr, or a child's, keeps the variable but not the file).
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = value.split_once(':') else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == device && m.ino() == inode)
}

/// The syslog priority of a level (`sd-daemon(3)`: `SD_ERR` … `SD_DEBUG`).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Stderr for journald: each line of an event gets the event's priority prefix (a message that
/// spans lines keeps its priority on every line, as journald makes an entry of each).
struct JournalStderr;

impl<'a> MakeWriter<'a> for JournalStderr {
    type Writer = PrefixedLines;

    fn make_writer(&'a self) -> PrefixedLines {
        PrefixedLines { priority: 6 }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> PrefixedLines {
        PrefixedLines {
            priority: priority(meta.level()),
        }
    }
}

/// Writes to stderr with `<priority>` before every line.
struct PrefixedLines {
    priority: u8,
}

impl io::Write for PrefixedLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr()
            .lock()
            .write_all(&prefix_lines(self.priority, buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// `text` with `<priority>` before each of its lines.
fn prefix_lines(priority: u8, text: &[u8]) -> Vec<u8> {
    let prefix = format!("<{priority}>");
    let mut out = Vec::with_capacity(text.len() + prefix.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_become_filters_that_keep_dtls_quiet() {
        for level in ["info", "debug", "warn,straja_gateway::recording=debug"] {
            let filter = filter_for(level).expect(level).to_string();
            assert!(filter.contains("rtc_dtls::config=error"), "{filter}");
        }
        assert!(filter_for("info,rtc_dtls=debug").is_ok());
        assert!(filter_for("info,[").is_err());
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }

    #[test]
    fn every_line_of_an_event_gets_the_prefix() {
        assert_eq!(prefix_lines(3, b"one\n"), b"<3>one\n");
        assert_eq!(
            prefix_lines(4, b"one\ntwo\nthree\n"),
            b"<4>one\n<4>two\n<4>three\n"
        );
        assert_eq!(prefix_lines(6, b"no newline"), b"<6>no newline");
        assert_eq!(prefix_lines(6, b""), b"");
    }
}
