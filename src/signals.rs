//! The signals the daemon acts on: SIGTERM and SIGINT stop it (gracefully the first time, at
//! once the second), SIGHUP reloads. They are watched from before start-up, so that a stop asked
//! for while the daemon starts is not lost (nor kills it with the signal's default action): it
//! takes effect as soon as start-up is over.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The watched signals.
pub struct Signals {
    term: Option<Signal>,
    interrupt: Option<Signal>,
    hangup: Option<Signal>,
}

impl Signals {
    /// Starts watching (inside the async runtime).
    pub fn watch() -> Signals {
        let watch = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch {name}");
                None
            }
        };
        Signals {
            term: watch(SignalKind::terminate(), "SIGTERM"),
            interrupt: watch(SignalKind::interrupt(), "SIGINT"),
            hangup: watch(SignalKind::hangup(), "SIGHUP"),
        }
    }

    /// Waits for the next of the signals (since watching began).
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = next(&mut self.term) => {
                tracing::info!("SIGTERM received");
                Request::Stop
            }
            _ = next(&mut self.interrupt) => {
                tracing::info!("SIGINT received");
                Request::Stop
            }
            _ = next(&mut self.hangup) => Request::Reload,
        }
    }

    /// Waits for SIGTERM or SIGINT.
    pub async fn stop(&mut self) {
        while self.next().await != Request::Stop {}
    }
}

/// The signal's next delivery; never, when it is not watched.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
