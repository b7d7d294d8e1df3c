//! The `straja` binary as operators run it, in its own process (optionally pinned to CPU cores),
//! for benchmarks and tests that measure it from outside: its CPU time and RSS from `/proc`, its
//! tokens from the CLI. Stopped with SIGTERM (then SIGKILL after 10 s) when dropped.
//! [`ProcessOptions`] add environment variables (sd_notify, log formats, test hooks), send its
//! stderr to a file, fix its HTTPS port, or start it under the kernel's W^X rule.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::gateway_under_test::{https_client, issue_token_with_cli, urls_from_banner};

/// How to start the process, beyond its cameras.
#[derive(Debug, Default, Clone)]
pub struct ProcessOptions {
    /// CPUs to pin it to (a `taskset -c` list).
    pub cpus: Option<String>,
    /// Extra environment variables (set after the defaults, so they may override `STRAJA_LOG`).
    pub env: Vec<(String, String)>,
    /// Its stderr goes to `stderr.log` in its directory ([`GatewayProcess::stderr_log`]) rather
    /// than the test's.
    pub capture_stderr: bool,
    /// With `capture_stderr`: `JOURNAL_STREAM` names that file (device:inode), as systemd does
    /// when stderr is the journal.
    pub journal_stream: bool,
    /// The HTTPS listener's address (default `127.0.0.1:0`).
    pub http_listen: Option<String>,
    /// Runs it with `PR_SET_MDWE` (no memory both writable and executable, as
    /// `MemoryDenyWriteExecute=yes` would), inherited across exec.
    pub deny_write_execute: bool,
    /// Leaves `STRAJA_LOG` unset, so that the configuration's `log.level` applies.
    pub log_level_from_config: bool,
    /// `[webrtc] viewer_stack` (`"straja"`, `"webrtc-rs"`); the default when unset.
    pub viewer_stack: Option<String>,
}

/// A running gateway process.
pub struct GatewayProcess {
    child: Child,
    /// When it was spawned (just before `spawn`).
    pub spawned_at: Instant,
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// `http://127.0.0.1:PORT/metrics`.
    pub metrics_url: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// The dev CA that signed its certificate.
    pub ca_cert: PathBuf,
    options: ProcessOptions,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    /// Starts `straja run` with a config of `cameras` (TOML `[[cameras]]` tables) on loopback
    /// with ephemeral ports, pinned to `cpus` (a `taskset -c` list) when given.
    pub fn start(cameras_toml: &str, cpus: Option<&str>) -> GatewayProcess {
        GatewayProcess::start_with(
            cameras_toml,
            ProcessOptions {
                cpus: cpus.map(str::to_owned),
                ..ProcessOptions::default()
            },
        )
    }

    /// Starts `straja run` with a config of `cameras` as [`Self::start`] does, as `options` say.
    pub fn start_with(cameras_toml: &str, options: ProcessOptions) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = dir.path().join("certs");
        straja_gateway::tls::init_dev_certificates(&certs).expect("certs");
        let config = dir.path().join("straja.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{state}\"\n[http]\nlisten = \"{listen}\"\n\
                 tls_cert = \"{c}/server.crt\"\ntls_key = \"{c}/server.key\"\n\
                 [metrics]\nlisten = \"127.0.0.1:0\"\n[webrtc]\nudp_listen = \"127.0.0.1:0\"\n\
                 {stack}[limits]\nmax_sessions = 100000\nmax_sessions_per_camera = 100000\n\
                 {cameras_toml}\n",
                state = dir.path().join("state").display(),
                listen = options.http_listen.as_deref().unwrap_or("127.0.0.1:0"),
                c = certs.display(),
                stack = options
                    .viewer_stack
                    .as_ref()
                    .map(|stack| format!("viewer_stack = \"{stack}\"\n"))
                    .unwrap_or_default(),
            ),
        )
        .expect("config");
        let spawned_at = Instant::now();
        let (child, base_url, metrics_url) = spawn(&config, &options, dir.path());
        GatewayProcess {
            child,
            spawned_at,
            base_url,
            metrics_url,
            config,
            ca_cert: certs.join("ca.crt"),
            options,
            _dir: dir,
        }
    }

    /// What it has written to stderr so far (with [`ProcessOptions::capture_stderr`]).
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends it SIGHUP (as `systemctl reload` does).
    pub fn hang_up(&self) {
        let _ = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
    }

    /// Sends it SIGTERM (as `systemctl stop` does).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Its exit status once it has exited, waiting at most `timeout`; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its state directory.
    pub fn state_dir(&self) -> PathBuf {
        self._dir.path().join("state")
    }

    /// Kills the process at once (SIGKILL: no graceful stop), as a crash or power cut would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the daemon again on the same configuration and state (after [`Self::kill`]).
    pub fn restart(&mut self) {
        stop(&mut self.child);
        self.spawned_at = Instant::now();
        let (child, base_url, metrics_url) = spawn(&self.config, &self.options, self._dir.path());
        self.child = child;
        self.base_url = base_url;
        self.metrics_url = metrics_url;
    }

    /// The value of one metric series (`name{labels}` exactly as exposed), read from the metrics
    /// endpoint with a plain HTTP/1.0 request; `None` if the series is not there.
    pub fn metric(&self, series: &str) -> Option<f64> {
        use std::io::{Read, Write};
        let rest = self.metrics_url.strip_prefix("http://")?;
        let (host, path) = rest.split_once('/')?;
        let mut stream = std::net::TcpStream::connect(host).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A token from `straja token issue ARGS`, signed with the daemon's key.
    pub fn token(&self, args: &[&str]) -> String {
        issue_token_with_cli(&self.config, args)
    }

    /// An HTTPS client trusting its CA and sending `token`.
    pub fn client(&self, token: &str) -> reqwest::Client {
        https_client(&self.ca_cert, Some(token))
    }

    /// Waits until `/readyz` says every camera plays.
    pub async fn wait_until_ready(&self, timeout: Duration) {
        let ops = self.client(&self.token(&["--role", "ops"]));
        let deadline = Instant::now() + timeout;
        while !ops
            .get(format!("{}/readyz", self.base_url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "gateway not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// CPU time (user + system) the process has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.pid())
    }

    /// Resident memory, in MiB.
    pub fn rss_mib(&self) -> f64 {
        process_rss_mib(self.pid())
    }
}

/// Runs `straja run --config CONFIG` as `options` say (stderr, when captured, to `dir/stderr.log`);
/// returns it and the URLs of its banner.
fn spawn(
    config: &std::path::Path,
    options: &ProcessOptions,
    dir: &std::path::Path,
) -> (Child, String, String) {
    let binary = env!("CARGO_BIN_EXE_straja");
    let mut command = match options.cpus.as_deref() {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus, binary]);
            c
        }
        None => Command::new(binary),
    };
    command
        .args(["run", "--config"])
        .arg(config)
        .env("STRAJA_LOG", "warn,rtc_dtls::config=error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if options.log_level_from_config {
        command.env_remove("STRAJA_LOG");
    }
    if options.capture_stderr {
        let path = dir.join("stderr.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("stderr.log");
        if options.journal_stream {
            use std::os::unix::fs::MetadataExt;
            let meta = file.metadata().expect("stderr.log metadata");
            command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        command.stderr(Stdio::from(file));
    }
    for (name, value) in &options.env {
        command.env(name, value);
    }
    if options.deny_write_execute {
        use std::os::unix::process::CommandExt;
        // SAFETY: only prctl(2), which is async-signal-safe, runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                const PR_SET_MDWE: libc::c_int = 65;
                const PR_MDWE_REFUSE_EXEC_GAIN: libc::c_ulong = 1;
                if libc::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn().expect("straja binary");
    let stdout = child.stdout.take().expect("stdout");
    let (base_url, metrics_url) = urls_from_banner(stdout);
    (child, base_url, metrics_url)
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops a child of ours: SIGTERM, then SIGKILL if it has not exited within 10 s.
pub fn stop(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// utime + stime of `pid` (all its threads), in seconds.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let (user, system) = process_user_system_seconds(pid);
    user + system
}

/// Busy time of CPU `core` (everything but idle and iowait: every process and the kernel's own
/// softirq work, which the kernel may hand to `ksoftirqd` and so leave out of a process's time),
/// in seconds.
pub fn core_busy_seconds(core: usize) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let prefix = format!("cpu{core} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&prefix)) else {
        return 0.0;
    };
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (total - idle) / clock_ticks_per_second()
}

/// (utime, stime) of `pid` (all its threads), in seconds.
pub fn process_user_system_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat are utime and stime; after the name they are at 11 and 12.
    let ticks = clock_ticks_per_second();
    (field(11) / ticks, field(12) / ticks)
}

/// Resident memory of `pid`, in MiB.
pub fn process_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// True when `taskset` can pin processes to CPUs `0` and `1` here.
pub fn can_pin_two_cores() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset")
            .args(["-c", "0", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
