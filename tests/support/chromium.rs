//! Headless Chromium driven over the DevTools protocol (CDP), for end-to-end browser tests
//! (WebRTC/WHEP playback in a real browser).
//!
//! One [`Chromium`] is one browser process with a private profile in a temporary directory and
//! one DevTools websocket. A background task reads that websocket and routes replies by `id` to
//! the waiting call and events by `sessionId` to the [`Page`] they belong to. Every wait is
//! bounded. Dropping the [`Chromium`] kills the process (by its own PID), waits for it and its
//! helper processes, and removes the temporary directory; the process is also killed by the
//! kernel if the thread that launched it dies (`PR_SET_PDEATHSIG`).
//!
//! ```ignore
//! let browser = Chromium::launch(&[]).await?;
//! let page = browser.open("https://127.0.0.1:8443/player.html").await?;
//! page.wait_for("window.framesDecoded > 0", Duration::from_secs(10)).await?;
//! ```
//!
//! Use one browser per test: its tasks live on the test's tokio runtime, and the launching
//! thread's death kills it. Its timeouts use tokio's clock: do not pause time
//! (`tokio::time::pause`) in a test that drives a browser. The binary is `/usr/bin/chromium` (Debian package `chromium`), or
//! the path in the environment variable `STRAJA_CHROMIUM`.
//!
//! Pages loaded from `data:` or `about:blank` have an opaque or different origin: a `fetch` from
//! them to the gateway is cross-origin. Serve the test page from the gateway itself, or make the
//! gateway answer CORS, when the page talks to it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Browser binary used when `STRAJA_CHROMIUM` is not set.
pub const DEFAULT_BINARY: &str = "/usr/bin/chromium";
/// Environment variable naming another browser binary.
pub const BINARY_ENV: &str = "STRAJA_CHROMIUM";
/// How long [`Chromium::launch`] waits for the browser to announce its DevTools port.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one DevTools command (including an awaited [`Page::eval`]) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Chromium::open`] waits for the page's `load` event.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two evaluations in [`Page::wait_for`].
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Flags always passed to Chromium (see FIELD-NOTES, "Headless Chromium as a real WebRTC
/// client"); `--user-data-dir` is added by [`Chromium::launch`], then the caller's flags.
pub const DEFAULT_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-breakpad",
    "--password-store=basic",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    // The gateway under test serves a self-signed certificate on 127.0.0.1.
    "--ignore-certificate-errors",
    "--allow-loopback-in-peer-connection",
];

/// Console lines kept per page; older ones are dropped (and counted).
const CONSOLE_LIMIT: usize = 2_000;
/// Bytes of Chromium's stderr quoted in launch errors.
const STDERR_TAIL_BYTES: u64 = 4_096;
/// How long dropping a [`Chromium`] waits for its helper processes to exit.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Everything that can go wrong while driving the browser.
///
/// `Debug` prints the same text as `Display`, so a test returning `Result<(), BrowserError>`
/// fails with a readable message (including Chromium's stderr for launch failures).
#[non_exhaustive]
pub enum BrowserError {
    /// The browser binary could not be started at all.
    Spawn {
        /// The binary that was tried.
        binary: PathBuf,
        /// Why the operating system refused.
        source: io::Error,
    },
    /// The browser started but never became reachable over DevTools.
    Startup {
        /// What happened (exited early, no DevTools port in time, websocket refused).
        reason: String,
        /// The end of Chromium's stderr.
        stderr_tail: String,
    },
    /// Chromium answered a DevTools command with an error.
    Protocol {
        /// The DevTools method called.
        method: String,
        /// The error code Chromium returned.
        code: i64,
        /// The error message Chromium returned.
        message: String,
    },
    /// The JavaScript expression threw, or the promise it returned was rejected.
    Js {
        /// The exception's description (message and stack when it is an `Error`).
        message: String,
    },
    /// A navigation failed (the page could not be loaded at all).
    Navigation {
        /// The URL that was requested.
        url: String,
        /// Chromium's error text, e.g. `net::ERR_CONNECTION_REFUSED`.
        error: String,
    },
    /// Something did not happen in time.
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        after: Duration,
    },
    /// [`Page::wait_for`] ran out of time before its expression became `true`.
    WaitTimeout {
        /// The expression that was polled.
        expression: String,
        /// How long it was polled.
        after: Duration,
        /// The last value (or exception) the expression produced.
        last: String,
        /// The page's last console lines, for context.
        console_tail: Vec<String>,
    },
    /// The DevTools connection is gone (the browser exited, crashed or was dropped).
    Disconnected {
        /// Why the connection ended, as far as known.
        reason: String,
    },
    /// Chromium sent something this harness did not expect.
    UnexpectedReply {
        /// The DevTools method called.
        method: String,
        /// What was wrong with the reply.
        detail: String,
    },
    /// A local file operation failed.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn { binary, source } => write!(
                f,
                "cannot start {} ({source}); install Debian's `chromium` or set {BINARY_ENV}",
                binary.display()
            ),
            Self::Startup {
                reason,
                stderr_tail,
            } => write!(
                f,
                "chromium did not start: {reason}\n--- chromium stderr (tail) ---\n{stderr_tail}"
            ),
            Self::Protocol {
                method,
                code,
                message,
            } => write!(f, "DevTools {method} failed: {message} (code {code})"),
            Self::Js { message } => write!(f, "JavaScript exception: {message}"),
            Self::Navigation { url, error } => write!(f, "cannot load {url}: {error}"),
            Self::Timeout { what, after } => write!(f, "timed out after {after:?}: {what}"),
            Self::WaitTimeout {
                expression,
                after,
                last,
                console_tail,
            } => {
                write!(
                    f,
                    "`{expression}` was not true within {after:?}; last result: {last}"
                )?;
                if !console_tail.is_empty() {
                    write!(f, "\n--- page console (tail) ---")?;
                    for line in console_tail {
                        write!(f, "\n{line}")?;
                    }
                }
                Ok(())
            }
            Self::Disconnected { reason } => write!(f, "DevTools connection lost: {reason}"),
            Self::UnexpectedReply { method, detail } => {
                write!(f, "unexpected reply to DevTools {method}: {detail}")
            }
            Self::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl fmt::Debug for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for BrowserError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } | Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A headless Chromium process and its DevTools connection. Dropping it kills the browser.
#[must_use = "the browser is killed when this is dropped"]
pub struct Chromium {
    connection: Arc<Connection>,
    version: String,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    // Declared last: dropped after the tasks are aborted.
    process: Process,
}

impl Chromium {
    /// Launches headless Chromium with [`DEFAULT_ARGS`], a fresh profile and `extra_args`
    /// (appended last), waits (at most [`LAUNCH_TIMEOUT`]) for its DevTools port and connects.
    /// On failure the process is killed and the error quotes the end of its stderr.
    pub async fn launch(extra_args: &[&str]) -> Result<Chromium, BrowserError> {
        let binary = std::env::var_os(BINARY_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY));
        let mut process = Process::spawn(&binary, extra_args)?;
        let url = process.devtools_url().await?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let connect =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
        let socket = match tokio::time::timeout(LAUNCH_TIMEOUT, connect).await {
            Ok(Ok((socket, _response))) => socket,
            Ok(Err(error)) => return Err(process.startup_error(format!("{url}: {error}"))),
            Err(_) => {
                return Err(process.startup_error(format!(
                    "{url}: no websocket handshake within {LAUNCH_TIMEOUT:?}"
                )));
            }
        };
        let (sink, stream) = socket.split();
        let (outgoing, queue) = mpsc::unbounded_channel();
        let connection = Arc::new(Connection {
            outgoing,
            next_id: AtomicU64::new(1),
            router: Mutex::new(Router::default()),
        });
        let writer = tokio::spawn(write_loop(sink, queue));
        let reader = tokio::spawn(read_loop(stream, Arc::clone(&connection)));
        let mut browser = Chromium {
            connection,
            version: String::new(),
            reader,
            writer,
            process,
        };
        let version = browser
            .connection
            .call(None, "Browser.getVersion", json!({}), COMMAND_TIMEOUT)
            .await?;
        browser.version = version["product"].as_str().unwrap_or("unknown").to_owned();
        Ok(browser)
    }

    /// Opens a new page, navigates it to `url` and waits (at most [`LOAD_TIMEOUT`]) for its
    /// `load` event. Console messages and exceptions are recorded from before the navigation.
    pub async fn open(&self, url: &str) -> Result<Page, BrowserError> {
        let conn = &self.connection;
        let created = conn
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank" }),
                COMMAND_TIMEOUT,
            )
            .await?;
        let target_id = reply_str(&created, "Target.createTarget", "targetId")?;
        let attached = conn
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
                COMMAND_TIMEOUT,
            )
            .await?;
        let session_id = reply_str(&attached, "Target.attachToTarget", "sessionId")?;
        let session = Arc::new(Session::default());
        lock(&conn.router)
            .sessions
            .insert(session_id.clone(), Arc::clone(&session));
        let page = Page {
            connection: Arc::clone(conn),
            session,
            session_id,
            target_id,
        };
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.call(method, json!({}), COMMAND_TIMEOUT).await?;
        }
        page.call(
            "Page.setLifecycleEventsEnabled",
            json!({ "enabled": true }),
            COMMAND_TIMEOUT,
        )
        .await?;
        page.navigate(url).await?;
        Ok(page)
    }

    /// The browser's product string, e.g. `Chrome/156.0.8078.79`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The browser's process id.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// The temporary profile directory (`--user-data-dir`), removed on drop.
    pub fn profile_dir(&self) -> &Path {
        &self.process.profile
    }

    /// The last bytes of Chromium's stderr, for diagnostics.
    pub fn stderr_tail(&self) -> String {
        self.process.stderr_tail()
    }
}

impl fmt::Debug for Chromium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chromium")
            .field("pid", &self.pid())
            .field("version", &self.version)
            .field("profile_dir", &self.process.profile)
            .finish_non_exhaustive()
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.connection.close("the Chromium handle was dropped");
        self.reader.abort();
        self.writer.abort();
        // `self.process` is dropped next: it kills and reaps the browser.
    }
}

/// One browser tab, attached over a flattened DevTools session.
///
/// It stays usable as long as its [`Chromium`] lives; afterwards every call fails with
/// [`BrowserError::Disconnected`].
pub struct Page {
    connection: Arc<Connection>,
    session: Arc<Session>,
    session_id: String,
    target_id: String,
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("target_id", &self.target_id)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl Page {
    /// Evaluates `expression` in the page (`Runtime.evaluate` with `awaitPromise` and
    /// `returnByValue`) within [`COMMAND_TIMEOUT`]. A returned promise is awaited. An exception
    /// or rejection becomes [`BrowserError::Js`] with its message. `undefined` becomes `null`;
    /// values JSON cannot hold (`NaN`, `-0`, `Infinity`, bigints) come back as strings.
    pub async fn eval(&self, expression: &str) -> Result<Value, BrowserError> {
        self.eval_within(expression, COMMAND_TIMEOUT).await
    }

    /// [`Page::eval`] with its own time limit (e.g. for a promise that waits for a connection).
    pub async fn eval_within(
        &self,
        expression: &str,
        timeout: Duration,
    ) -> Result<Value, BrowserError> {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "awaitPromise": true,
                    "returnByValue": true,
                    "userGesture": true,
                }),
                timeout,
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(BrowserError::Js {
                message: exception_message(details),
            });
        }
        let result = &reply["result"];
        if let Some(value) = result.get("value") {
            return Ok(value.clone());
        }
        if let Some(special) = result.get("unserializableValue") {
            return Ok(special.clone());
        }
        Ok(Value::Null)
    }

    /// Evaluates `expression` every [`POLL_INTERVAL`] until it returns JSON `true`, for at most
    /// `timeout` (at least one evaluation). Exceptions count as "not yet"; a lost connection
    /// fails at once. On timeout the error carries the last result and the page's console tail.
    pub async fn wait_for(&self, expression: &str, timeout: Duration) -> Result<(), BrowserError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last;
        loop {
            let budget = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .clamp(Duration::from_millis(100), COMMAND_TIMEOUT);
            match self.eval_within(expression, budget).await {
                Ok(Value::Bool(true)) => return Ok(()),
                Ok(value) => last = value.to_string(),
                Err(BrowserError::Js { message }) => last = format!("exception: {message}"),
                Err(BrowserError::Timeout { .. }) => {
                    last = "the evaluation itself did not finish".to_owned();
                }
                Err(other) => return Err(other),
            }
            if tokio::time::Instant::now() + POLL_INTERVAL >= deadline {
                let console = self.console();
                let skip = console.len().saturating_sub(20);
                return Err(BrowserError::WaitTimeout {
                    expression: expression.to_owned(),
                    after: timeout,
                    last,
                    console_tail: console[skip..].to_vec(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Console messages, uncaught exceptions, browser log entries (network and security errors)
    /// and crash notices seen so far, oldest first, one line each.
    pub fn console(&self) -> Vec<String> {
        let console = lock(&self.session.console);
        let mut lines = Vec::with_capacity(console.lines.len() + 1);
        if console.dropped > 0 {
            lines.push(format!("[{} older lines dropped]", console.dropped));
        }
        lines.extend(console.lines.iter().cloned());
        lines
    }

    /// The console lines that report a Content-Security-Policy violation.
    pub fn csp_violations(&self) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|line| line.contains("Content Security Policy"))
            .collect()
    }

    /// Writes a PNG screenshot of the page to `path` (for humans debugging a failure).
    pub async fn screenshot(&self, path: &Path) -> Result<(), BrowserError> {
        let method = "Page.captureScreenshot";
        let reply = self
            .call(method, json!({ "format": "png" }), COMMAND_TIMEOUT)
            .await?;
        let data = reply_str(&reply, method, "data")?;
        let png = decode_base64(&data).ok_or_else(|| BrowserError::UnexpectedReply {
            method: method.to_owned(),
            detail: "`data` is not base64".to_owned(),
        })?;
        tokio::fs::write(path, png)
            .await
            .map_err(|source| BrowserError::Io {
                context: format!("writing screenshot {}", path.display()),
                source,
            })
    }

    /// Navigates this page to `url` and waits for its `load` event, all within
    /// [`LOAD_TIMEOUT`].
    pub async fn navigate(&self, url: &str) -> Result<(), BrowserError> {
        let timed_out = || BrowserError::Timeout {
            what: format!("loading {url}"),
            after: LOAD_TIMEOUT,
        };
        let deadline = tokio::time::Instant::now() + LOAD_TIMEOUT;
        let mut loads = self.session.loads.subscribe();
        // `Page.navigate` answers once the response is committed (or the load failed).
        let reply = match self
            .call("Page.navigate", json!({ "url": url }), LOAD_TIMEOUT)
            .await
        {
            Err(BrowserError::Timeout { .. }) => return Err(timed_out()),
            other => other?,
        };
        if let Some(error) = reply.get("errorText").and_then(Value::as_str) {
            return Err(BrowserError::Navigation {
                url: url.to_owned(),
                error: error.to_owned(),
            });
        }
        // A same-document navigation has no loader and no load event.
        let Some(loader) = reply.get("loaderId").and_then(Value::as_str) else {
            return Ok(());
        };
        let loaded = loads.wait_for(|done| done.iter().any(|id| id == loader));
        match tokio::time::timeout_at(deadline, loaded).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(self.connection.disconnected()),
            Err(_) => Err(timed_out()),
        }
    }

    /// Closes the tab.
    pub async fn close(self) -> Result<(), BrowserError> {
        lock(&self.connection.router)
            .sessions
            .remove(&self.session_id);
        self.connection
            .call(
                None,
                "Target.closeTarget",
                json!({ "targetId": self.target_id }),
                COMMAND_TIMEOUT,
            )
            .await
            .map(drop)
    }

    /// Sends any DevTools command to this page's session and returns its result, for what
    /// the helpers above do not cover (e.g. `Network.enable`, `Emulation.*`).
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, BrowserError> {
        self.connection
            .call(Some(&self.session_id), method, params, timeout)
            .await
    }
}

/// The browser process, its stderr file and its temporary directory.
struct Process {
    child: Child,
    profile: PathBuf,
    stderr_path: PathBuf,
    // Declared last: removed after `Drop::drop` has killed the browser.
    _dir: tempfile::TempDir,
}

impl Process {
    fn spawn(binary: &Path, extra_args: &[&str]) -> Result<Process, BrowserError> {
        let io_error = |context: &str| {
            let context = context.to_owned();
            move |source| BrowserError::Io { context, source }
        };
        let dir = tempfile::Builder::new()
            .prefix("straja-chromium-")
            .tempdir()
            .map_err(io_error("creating the browser's temporary directory"))?;
        let profile = dir.path().join("profile");
        // Chromium makes its own temporary files (org.chromium.Chromium.*) under TMPDIR and leaves
        // them when killed: keep them inside our directory, which is removed on drop.
        let browser_tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&browser_tmp).map_err(io_error("creating the browser's TMPDIR"))?;
        let stderr_path = dir.path().join("chromium.log");
        let log = File::create(&stderr_path).map_err(io_error("creating chromium.log"))?;
        let log_too = log.try_clone().map_err(io_error("cloning chromium.log"))?;
        let mut command = Command::new(binary);
        command
            .args(DEFAULT_ARGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra_args)
            .env("TMPDIR", &browser_tmp)
            .stdin(Stdio::null())
            .stdout(log_too)
            .stderr(log);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (prctl, getppid); it does not allocate.
        unsafe {
            command.pre_exec(move || {
                // The kernel kills the browser if the launching thread dies without dropping
                // the handle (e.g. the test binary is killed).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() as u32 != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|source| BrowserError::Spawn {
            binary: binary.to_owned(),
            source,
        })?;
        Ok(Process {
            child,
            profile,
            stderr_path,
            _dir: dir,
        })
    }

    /// Waits for `DevToolsActivePort` and returns the browser's websocket URL.
    async fn devtools_url(&mut self) -> Result<String, BrowserError> {
        let port_file = self.profile.join("DevToolsActivePort");
        let deadline = tokio::time::Instant::now() + LAUNCH_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next())
                    && port.trim().parse::<u16>().is_ok()
                    && path.starts_with("/devtools/browser/")
                {
                    return Ok(format!("ws://127.0.0.1:{}{}", port.trim(), path.trim()));
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.startup_error(format!("it exited during startup ({status})")));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.startup_error(format!(
                    "no {} within {LAUNCH_TIMEOUT:?}",
                    port_file.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn startup_error(&self, reason: String) -> BrowserError {
        BrowserError::Startup {
            reason,
            stderr_tail: self.stderr_tail(),
        }
    }

    fn stderr_tail(&self) -> String {
        let read = || -> io::Result<String> {
            let mut file = File::open(&self.stderr_path)?;
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(STDERR_TAIL_BYTES)))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        match read() {
            Ok(text) if text.trim().is_empty() => "(empty)".to_owned(),
            Ok(text) => text,
            Err(error) => format!("(cannot read chromium.log: {error})"),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The helper processes (zygotes, renderers, GPU, network) notice the browser's death
        // and exit on their own within ~100 ms; wait for them so that none outlives the test
        // and none writes into the directory while it is removed. Kill any straggler.
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            let left = processes_using(&self.profile);
            if left.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                for pid in left {
                    // SAFETY: plain system call; `pid` is one of this browser's helpers.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Process ids whose command line mentions `dir` (a browser's helpers all carry its
/// `--user-data-dir`, which is unique per [`Chromium`]).
pub fn processes_using(dir: &Path) -> Vec<u32> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !is_zombie(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name, which may contain spaces.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
    })
}

type Reply = Result<Value, (i64, String)>;

/// The shared half of the DevTools connection: outgoing queue and routing tables.
struct Connection {
    outgoing: mpsc::UnboundedSender<Message>,
    next_id: AtomicU64,
    router: Mutex<Router>,
}

#[derive(Default)]
struct Router {
    /// Set once the connection is unusable, with the reason.
    closed: Option<String>,
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    sessions: HashMap<String, Arc<Session>>,
}

/// What the router records for one page.
struct Session {
    console: Mutex<Console>,
    /// Loader ids whose main-frame `load` lifecycle event has fired (the last few).
    loads: watch::Sender<VecDeque<String>>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            console: Mutex::new(Console::default()),
            loads: watch::Sender::new(VecDeque::new()),
        }
    }
}

#[derive(Default)]
struct Console {
    lines: VecDeque<String>,
    dropped: u64,
}

impl Connection {
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, BrowserError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_to, reply) = oneshot::channel();
        {
            let mut router = lock(&self.router);
            if let Some(reason) = &router.closed {
                return Err(BrowserError::Disconnected {
                    reason: reason.clone(),
                });
            }
            router.pending.insert(id, reply_to);
        }
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = Value::from(session);
        }
        if self
            .outgoing
            .send(Message::text(message.to_string()))
            .is_err()
        {
            lock(&self.router).pending.remove(&id);
            return Err(self.disconnected());
        }
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err((code, message)))) => Err(BrowserError::Protocol {
                method: method.to_owned(),
                code,
                message,
            }),
            Ok(Err(_)) => Err(self.disconnected()),
            Err(_) => {
                lock(&self.router).pending.remove(&id);
                Err(BrowserError::Timeout {
                    what: format!("reply to DevTools {method}"),
                    after: timeout,
                })
            }
        }
    }

    fn disconnected(&self) -> BrowserError {
        let reason = lock(&self.router).closed.clone();
        BrowserError::Disconnected {
            reason: reason.unwrap_or_else(|| "the DevTools websocket closed".to_owned()),
        }
    }

    /// Marks the connection unusable; every call still waiting fails with
    /// [`BrowserError::Disconnected`] (its reply sender is dropped).
    fn close(&self, reason: &str) {
        let pending = {
            let mut router = lock(&self.router);
            router.closed.get_or_insert_with(|| reason.to_owned());
            std::mem::take(&mut router.pending)
        };
        drop(pending);
    }

    fn route(&self, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let Some(reply_to) = lock(&self.router).pending.remove(&id) else {
                return; // The caller gave up (timeout).
            };
            let reply = match message.get("error") {
                Some(error) => Err((
                    error["code"].as_i64().unwrap_or(0),
                    error["message"]
                        .as_str()
                        .unwrap_or("(no message)")
                        .to_owned(),
                )),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = reply_to.send(reply);
            return;
        }
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            return;
        };
        let params = &message["params"];
        // Detach notices come on the browser's own session and name the page's session.
        let session_id = match method {
            "Target.detachedFromTarget" => params["sessionId"].as_str(),
            _ => message.get("sessionId").and_then(Value::as_str),
        };
        let Some(session_id) = session_id else {
            return;
        };
        let session = lock(&self.router).sessions.get(session_id).cloned();
        if let Some(session) = session {
            session.record(method, params);
        }
    }
}

impl Session {
    fn record(&self, method: &str, params: &Value) {
        let line = match method {
            "Page.lifecycleEvent" => {
                if params["name"] == "load"
                    && let Some(loader) = params["loaderId"].as_str()
                {
                    self.loads.send_modify(|loads| {
                        loads.push_back(loader.to_owned());
                        if loads.len() > 32 {
                            loads.pop_front();
                        }
                    });
                }
                return;
            }
            "Runtime.consoleAPICalled" => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .map(|args| args.iter().map(describe).collect())
                    .unwrap_or_default();
                format!(
                    "console.{}: {}",
                    params["type"].as_str().unwrap_or("log"),
                    args.join(" ")
                )
            }
            "Runtime.exceptionThrown" => {
                format!(
                    "uncaught: {}",
                    exception_message(&params["exceptionDetails"])
                )
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                let mut line = format!(
                    "log.{} ({}): {}",
                    entry["level"].as_str().unwrap_or("?"),
                    entry["source"].as_str().unwrap_or("?"),
                    entry["text"].as_str().unwrap_or("")
                );
                if let Some(url) = entry["url"].as_str() {
                    line.push_str(&format!(" [{url}]"));
                }
                line
            }
            "Inspector.targetCrashed" => "the page's renderer crashed".to_owned(),
            "Target.detachedFromTarget" => "the page was detached (closed or crashed)".to_owned(),
            _ => return,
        };
        let mut console = lock(&self.console);
        if console.lines.len() >= CONSOLE_LIMIT {
            console.lines.pop_front();
            console.dropped += 1;
        }
        console.lines.push_back(line);
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut queue: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(message) = queue.recv().await {
        if sink.send(message).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

async fn read_loop(mut stream: SplitStream<Socket>, connection: Arc<Connection>) {
    let reason = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => connection.route(text.as_str()),
            Some(Ok(Message::Close(frame))) => {
                break format!("the browser closed the websocket ({frame:?})");
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => break format!("websocket error: {error}"),
            None => break "the websocket ended (did the browser exit?)".to_owned(),
        }
    };
    connection.close(&reason);
}

/// A one-line rendering of a `Runtime.RemoteObject` (console argument).
fn describe(object: &Value) -> String {
    match object.get("value") {
        Some(Value::String(text)) => text.clone(),
        Some(value) => value.to_string(),
        None => object["unserializableValue"]
            .as_str()
            .or_else(|| object["description"].as_str())
            .or_else(|| object["type"].as_str())
            .unwrap_or("?")
            .to_owned(),
    }
}

/// The text of a `Runtime.ExceptionDetails`: the thrown value's description (message and stack
/// for an `Error`), else the thrown value itself, else Chromium's summary.
fn exception_message(details: &Value) -> String {
    let exception = &details["exception"];
    if let Some(description) = exception["description"].as_str() {
        return description.to_owned();
    }
    if exception.is_object() {
        return describe(exception); // A thrown primitive, `undefined` included.
    }
    details["text"]
        .as_str()
        .unwrap_or("unknown exception")
        .to_owned()
}

fn reply_str(reply: &Value, method: &str, field: &str) -> Result<String, BrowserError> {
    reply[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BrowserError::UnexpectedReply {
            method: method.to_owned(),
            detail: format!("no `{field}` in {reply}"),
        })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Decodes standard (padded) base64, as DevTools sends binary data.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
