//! The service manager's end of sd_notify, for tests: a unix datagram socket in a temp dir that
//! a thread reads, noting when each notification arrived. On `READY=1` it also tries, at once, a
//! TCP connection to the address it was given (the daemon's HTTPS listener), to show whether the
//! listener was bound when readiness was announced.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One datagram from the daemon.
#[derive(Debug, Clone)]
pub struct Notification {
    /// When it arrived.
    pub at: Instant,
    /// Its text: `KEY=VALUE` lines.
    pub text: String,
    /// For a `READY=1`: whether the probed address took a TCP connection right then.
    pub listener_bound: Option<bool>,
}

impl Notification {
    /// True when one of its lines is exactly `line` (e.g. `READY=1`).
    pub fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }

    /// The value of its `KEY=` line, if any.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    }
}

/// A listening notify socket.
pub struct NotifyListener {
    path: PathBuf,
    received: Arc<Mutex<Vec<Notification>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl NotifyListener {
    /// Binds a socket; on `READY=1`, probes `probe` (when given) with a TCP connection.
    pub fn bind(probe: Option<SocketAddr>) -> NotifyListener {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let received = received.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let ready = text.lines().any(|l| l == "READY=1");
                    let listener_bound = match probe {
                        Some(addr) if ready => {
                            Some(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
                        }
                        _ => None,
                    };
                    if let Ok(mut received) = received.lock() {
                        received.push(Notification {
                            at,
                            text,
                            listener_bound,
                        });
                    }
                }
            })
        };
        NotifyListener {
            path,
            received,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The socket's path (for `NOTIFY_SOCKET`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The environment a service manager gives: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` when
    /// `watchdog` is given.
    pub fn env(&self, watchdog: Option<Duration>) -> Vec<(String, String)> {
        let mut env = vec![("NOTIFY_SOCKET".to_owned(), self.path.display().to_string())];
        if let Some(interval) = watchdog {
            env.push(("WATCHDOG_USEC".to_owned(), interval.as_micros().to_string()));
        }
        env
    }

    /// Every notification so far, in order.
    pub fn received(&self) -> Vec<Notification> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The first notification (so far or within `timeout`) that `matches`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        matches: impl Fn(&Notification) -> bool,
    ) -> Option<Notification> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.received().into_iter().find(&matches) {
                return Some(found);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback TCP port that was free a moment ago (for a listener address fixed in advance).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
