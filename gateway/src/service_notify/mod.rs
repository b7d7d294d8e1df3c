//! Telling the service manager (systemd, `Type=notify`) how the daemon is, over the sd_notify
//! protocol ([`notify_socket`]):
//!
//! - `READY=1` once [`crate::server::start`] has returned: the listeners are bound and every
//!   camera's pipeline has been started (a camera that is down does not delay it: its pipeline
//!   keeps reconnecting, and the status line says it is not up);
//! - `STATUS=` lines such as `2/3 cameras up, 12 viewers` ([`status_line`]), sent when they change,
//!   at most once a second;
//! - `WATCHDOG=1` every half `$WATCHDOG_USEC`, but only while every loop that must keep turning
//!   has beaten its heartbeat within the interval ([`crate::heartbeat`]: each egress shard at every
//!   turn, the async runtime from a timer task): a stalled media loop stops the pings and systemd
//!   restarts the service ([`watchdog`]);
//! - `RELOADING=1` when a configuration reload (SIGHUP) begins, and `READY=1` again, with the
//!   outcome in `STATUS=`, when it is over (`systemctl reload` waits for it);
//! - `STOPPING=1` when a graceful stop begins.
//!
//! The reports come from a thread of their own, not from the async runtime, so that a runtime that
//! hangs altogether is still noticed, and said in the log, rather than merely falling silent.
//! Without `$NOTIFY_SOCKET` all of this is off and costs nothing.

pub mod notify_socket;
pub mod status_line;
pub mod watchdog;

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::gateway::Gateway;
use crate::heartbeat::Heartbeats;
use crate::server::RunningGateway;
use notify_socket::{NotifySocket, status_value};
use status_line::{StatusUpdates, status_line};
use watchdog::{Verdict, Watchdog};

/// The daemon's line to its service manager.
pub struct ServiceNotify {
    socket: Option<Arc<NotifySocket>>,
    watchdog: Option<Duration>,
    reporter: Option<Reporter>,
}

/// The thread that sends status lines and watchdog pings, and the runtime's heartbeat task.
struct Reporter {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    runtime_beat: Option<tokio::task::JoinHandle<()>>,
}

impl Reporter {
    fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let (stopped, wake) = &*self.stop;
        if let Ok(mut stopped) = stopped.lock() {
            *stopped = true;
        }
        wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the service notification thread panicked");
        }
        if let Some(task) = self.runtime_beat.take() {
            task.abort();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.halt();
    }
}

impl ServiceNotify {
    /// The line `$NOTIFY_SOCKET` names (none when unset: then every call does nothing), with the
    /// watchdog interval `$WATCHDOG_USEC` asks for.
    pub fn from_env() -> ServiceNotify {
        let socket = match NotifySocket::from_env() {
            None => None,
            Some(Ok(socket)) => Some(Arc::new(socket)),
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot use $NOTIFY_SOCKET; not reporting to systemd");
                None
            }
        };
        let watchdog = socket
            .as_ref()
            .and_then(|_| notify_socket::watchdog_interval_from_env());
        if let Some(interval) = watchdog {
            tracing::info!(
                interval_ms = interval.as_millis() as u64,
                "systemd watchdog on: WATCHDOG=1 every {:.1} s while every loop runs",
                (interval / 2).as_secs_f64()
            );
        }
        ServiceNotify {
            socket,
            watchdog,
            reporter: None,
        }
    }

    /// True when there is a service manager to tell.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// The watchdog interval asked for, if any.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `READY=1` (with the first status line) and starts the status updates and, when asked
    /// for, the watchdog pings. Call it inside the async runtime, once [`crate::server::start`]
    /// has returned.
    pub fn ready(&mut self, running: &RunningGateway) {
        let Some(socket) = self.socket.clone() else {
            return;
        };
        let gateway = Arc::downgrade(running.gateway());
        let mut updates = StatusUpdates::new();
        let first = current_status(running.gateway());
        send(
            &socket,
            &format!("READY=1\nSTATUS={}", status_value(&first)),
        );
        tracing::info!(status = %first, "told systemd READY=1");
        updates.sent(first, Instant::now());

        let runtime_beat = self.watchdog.map(|interval| {
            let heartbeat = running.heartbeats().register("the async runtime");
            let period = (interval / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    heartbeat.beat();
                }
            })
        });
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let context = ReportLoop {
            socket,
            gateway,
            heartbeats: running.heartbeats().clone(),
            watchdog: self.watchdog.map(Watchdog::new),
            updates,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("straja-notify".into())
            .spawn(move || context.run());
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the service notification thread");
                None
            }
        };
        self.reporter = Some(Reporter {
            stop,
            thread,
            runtime_beat,
        });
    }

    /// Sends `RELOADING=1`: a configuration reload begins (`sd_notify(3)`; with it the time, as
    /// `MONOTONIC_USEC=`, that newer systemd versions ask for).
    pub fn reloading(&self) {
        if let Some(socket) = &self.socket {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime writes into the timespec it is given, nothing else.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
            let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
            send(
                socket,
                &format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=Reloading the configuration"),
            );
        }
    }

    /// Sends `READY=1` again after a reload, with its outcome as the status line (the periodic
    /// status lines then carry on).
    pub fn reloaded(&self, outcome: &str) {
        if let Some(socket) = &self.socket {
            send(
                socket,
                &format!("READY=1\nSTATUS={}", status_value(outcome)),
            );
        }
    }

    /// Stops the status updates and watchdog pings, then sends `STOPPING=1`: a graceful stop
    /// begins.
    pub fn stopping(&mut self) {
        if let Some(reporter) = self.reporter.take() {
            reporter.stop();
        }
        if let Some(socket) = &self.socket {
            send(
                socket,
                "STOPPING=1\nSTATUS=Stopping: closing sessions, finishing recordings",
            );
            tracing::info!("told systemd STOPPING=1");
        }
    }
}

/// The status line now.
fn current_status(gateway: &Gateway) -> String {
    let cameras = gateway.cameras.all();
    let up = cameras.iter().filter(|c| c.is_up()).count();
    status_line(up, cameras.len(), gateway.sessions.len())
}

/// Sends `state`, logging a failure (a notification is never worth more than a log line).
fn send(socket: &NotifySocket, state: &str) -> bool {
    match socket.notify(state) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot notify systemd");
            false
        }
    }
}

/// What the notification thread works with.
struct ReportLoop {
    socket: Arc<NotifySocket>,
    gateway: Weak<Gateway>,
    heartbeats: Arc<Heartbeats>,
    watchdog: Option<Watchdog>,
    updates: StatusUpdates,
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl ReportLoop {
    /// Until stopped (or the gateway is gone): a status check every tick, a watchdog check every
    /// ping period.
    fn run(mut self) {
        let tick = self
            .watchdog
            .as_ref()
            .map_or(status_line::MIN_GAP, |w| {
                w.ping_period().min(status_line::MIN_GAP)
            })
            .max(Duration::from_millis(10));
        let mut next_ping = Instant::now();
        let mut stalled: Option<String> = None;
        loop {
            let now = Instant::now();
            if let Some(watchdog) = &mut self.watchdog
                && now >= next_ping
            {
                let stalest = self.heartbeats.stalest(now);
                match watchdog.check(stalest.as_ref().map(|(n, age)| (n.as_str(), *age))) {
                    Verdict::Ping => {
                        stalled = None;
                        send(&self.socket, "WATCHDOG=1");
                    }
                    Verdict::Withhold { stalled: name } => stalled = Some(name),
                }
                next_ping = now + watchdog.ping_period();
            }
            let Some(gateway) = self.gateway.upgrade() else {
                return;
            };
            let mut line = current_status(&gateway);
            drop(gateway);
            if let Some(name) = &stalled {
                line.push_str(&format!("; watchdog: {name} stalled"));
            }
            if let Some(line) = self.updates.next(line, now) {
                send(&self.socket, &format!("STATUS={}", status_value(&line)));
            }
            let (stopped, wake) = &*self.stop;
            let Ok(guard) = stopped.lock() else {
                return;
            };
            match wake.wait_timeout_while(guard, tick, |stopped| !*stopped) {
                Ok((guard, _)) if !*guard => {}
                _ => return,
            }
        }
    }
}
