//! The sd_notify protocol (`sd_notify(3)`): the service manager names a unix datagram socket in
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`), and the service
//! sends it datagrams of newline-separated `KEY=VALUE` assignments (`READY=1`, `STATUS=…`,
//! `WATCHDOG=1`, `STOPPING=1`). `$WATCHDOG_USEC` (with `$WATCHDOG_PID`, when set, naming the
//! process it is meant for) asks for `WATCHDOG=1` more often than every that many microseconds.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The socket variable.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// The watchdog interval variable (microseconds).
pub const WATCHDOG_USEC_ENV: &str = "WATCHDOG_USEC";
/// The process the watchdog interval is meant for.
pub const WATCHDOG_PID_ENV: &str = "WATCHDOG_PID";
/// How long a send may block when the manager's queue is full (it reads promptly; a status is
/// never worth holding the caller longer).
const SEND_TIMEOUT: Duration = Duration::from_millis(200);

/// An open line to the service manager.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl NotifySocket {
    /// The socket `$NOTIFY_SOCKET` names: `None` when it is unset or empty (not run by a manager
    /// that listens), an error when it names something unusable.
    pub fn from_env() -> Option<io::Result<NotifySocket>> {
        let value = std::env::var_os(NOTIFY_SOCKET_ENV)?;
        if value.is_empty() {
            return None;
        }
        Some(NotifySocket::connect(&value))
    }

    /// A line to the socket named `name`: an absolute path, or `@` and an abstract name.
    pub fn connect(name: &OsStr) -> io::Result<NotifySocket> {
        let bytes = name.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(name)?,
            Some(b'@') => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(&bytes[1..])?
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{NOTIFY_SOCKET_ENV}={} is neither an absolute path nor an abstract \
                         name (@…)",
                        name.to_string_lossy()
                    ),
                ));
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(NotifySocket { socket, addr })
    }

    /// Sends one datagram of `KEY=VALUE` lines.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was cut short",
            ));
        }
        Ok(())
    }
}

/// The watchdog interval the manager asks of this process, if it asks one.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    watchdog_interval(
        std::env::var(WATCHDOG_USEC_ENV).ok().as_deref(),
        std::env::var(WATCHDOG_PID_ENV).ok().as_deref(),
        std::process::id(),
    )
}

/// The interval in `usec` (microseconds, > 0), unless `pid` names another process than `own_pid`.
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// `s` as a `STATUS=` value: one line (a newline would start a new assignment).
pub fn status_value(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_a_socket_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).expect("bind");
        let socket = NotifySocket::connect(path.as_os_str()).expect("connect");
        socket.notify("READY=1\nSTATUS=ok").expect("send");
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("straja-notify-test-{}", std::process::id());
        let manager = UnixDatagram::bind_addr(
            &SocketAddr::from_abstract_name(name.as_bytes()).expect("addr"),
        )
        .expect("bind");
        let socket = NotifySocket::connect(OsStr::new(&format!("@{name}"))).expect("connect");
        socket.notify("WATCHDOG=1").expect("send");
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn refuses_names_that_are_neither_paths_nor_abstract() {
        for bad in ["", "relative/path", "vsock:2:1234"] {
            assert!(NotifySocket::connect(OsStr::new(bad)).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let nobody = NotifySocket::connect(dir.path().join("absent").as_os_str()).expect("addr");
        assert!(nobody.notify("READY=1").is_err());
    }

    #[test]
    fn the_watchdog_interval_is_for_this_process_only() {
        let pid = 4242;
        assert_eq!(
            watchdog_interval(Some("2000000"), None, pid),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval(Some("2000000"), Some("4242"), pid),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_interval(Some("2000000"), Some("1"), pid), None);
        assert_eq!(watchdog_interval(Some("2000000"), Some("x"), pid), None);
        for bad in [None, Some(""), Some("0"), Some("-5"), Some("2s")] {
            assert_eq!(watchdog_interval(bad, None, pid), None, "{bad:?}");
        }
    }

    #[test]
    fn a_status_stays_on_one_line() {
        assert_eq!(status_value("a\nb\r\nc"), "a b  c");
    }
}
