//! The daemon tells its service manager how it is, over sd_notify, as systemd runs it
//! (`Type=notify`, `WatchdogSec=`): the real `straja` binary, with `NOTIFY_SOCKET` pointing at a
//! unix datagram socket this test reads and `WATCHDOG_USEC` at 2 s.
//!
//! - `READY=1` comes once the HTTPS listener takes connections, with a status line; then status
//!   lines as cameras come up and viewers come and go; `WATCHDOG=1` every second; SIGHUP reloads
//!   and serves on; `STOPPING=1` on SIGTERM, with no ping after it, and exit 0. Prints the time
//!   from spawn to `READY=1`.
//! - An egress shard stalled on purpose (the `STRAJA_TEST_STALL_EGRESS` test hook) stops the
//!   pings, says why in the log and in the status, and the pings resume once it runs again.
//! - Cameras that are down (a refused port, and a camera that takes the connection and never
//!   answers) do not hold `READY=1` back.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::gateway_process::{GatewayProcess, ProcessOptions};
use support::gateway_under_test::https_client;
use support::notify_listener::{Notification, NotifyListener, free_port};
use support::whep_viewer::WhepViewer;

/// The watchdog interval the tests ask for: pings every second.
const WATCHDOG: Duration = Duration::from_secs(2);

const TWO_CAMERAS: &str = r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=160&height=120"

[[cameras]]
id = "yard"
name = "Yard"
source = "test://smpte?width=160&height=120"
"#;

/// Starts the daemon with `cameras` under `manager`, its HTTPS listener on `port`, its log in a
/// file, and `extra` environment variables.
fn start_under(
    manager: &NotifyListener,
    port: u16,
    cameras: &str,
    extra: &[(&str, &str)],
) -> GatewayProcess {
    let mut env = manager.env(Some(WATCHDOG));
    env.push((
        "STRAJA_LOG".to_owned(),
        "info,rtc_dtls::config=error".to_owned(),
    ));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    GatewayProcess::start_with(
        cameras,
        ProcessOptions {
            env,
            capture_stderr: true,
            http_listen: Some(format!("127.0.0.1:{port}")),
            ..ProcessOptions::default()
        },
    )
}

/// When each `WATCHDOG=1` arrived.
fn pings(received: &[Notification]) -> Vec<Instant> {
    received
        .iter()
        .filter(|n| n.has("WATCHDOG=1"))
        .map(|n| n.at)
        .collect()
}

/// The longest time between two consecutive instants.
fn longest_gap(times: &[Instant]) -> Duration {
    times
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// Sends SIGTERM; asserts `STOPPING=1`, no ping after it, and exit status 0.
fn stop_gracefully(gateway: &mut GatewayProcess, manager: &NotifyListener) {
    let asked = Instant::now();
    gateway.terminate();
    let stopping = manager
        .wait_for(Duration::from_secs(10), |n| n.has("STOPPING=1"))
        .expect("STOPPING=1 after SIGTERM");
    assert!(stopping.at >= asked);
    let status = gateway
        .wait_exit(Duration::from_secs(20))
        .expect("the daemon exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gateway.stderr_log()
    );
    let late: Vec<_> = manager
        .received()
        .into_iter()
        .filter(|n| n.at > stopping.at && n.has("WATCHDOG=1"))
        .collect();
    assert!(late.is_empty(), "pings after STOPPING=1: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_status_watchdog_and_stopping_over_sd_notify() {
    let port = free_port();
    let https = SocketAddr::from(([127, 0, 0, 1], port));
    let manager = NotifyListener::bind(Some(https));
    let mut gateway = start_under(&manager, port, TWO_CAMERAS, &[]);

    let ready = manager
        .wait_for(Duration::from_secs(15), |n| n.has("READY=1"))
        .expect("READY=1");
    let start_to_ready = ready.at.saturating_duration_since(gateway.spawned_at);
    println!(
        "start to READY=1 (spawn to the datagram, 2 test cameras): {} ms",
        start_to_ready.as_millis()
    );
    assert_eq!(
        ready.listener_bound,
        Some(true),
        "the HTTPS listener takes connections when READY=1 arrives"
    );
    assert!(
        manager.received()[0].has("READY=1"),
        "READY=1 is the first notification: {:?}",
        manager.received()
    );
    let first = ready.value("STATUS").expect("READY=1 carries a status");
    assert!(first.ends_with("/2 cameras up, 0 viewers"), "{first}");
    let health = https_client(&gateway.ca_cert, None)
        .get(format!("{}/healthz", gateway.base_url))
        .send()
        .await
        .expect("/healthz");
    assert_eq!(health.status(), 200);

    // Cameras coming up, a viewer coming and going: each shows in the status.
    let all_up = manager
        .wait_for(Duration::from_secs(15), |n| {
            n.value("STATUS") == Some("2/2 cameras up, 0 viewers")
        })
        .expect("a status with both cameras up");
    println!(
        "start to STATUS=2/2 cameras up: {} ms (status lines come at most once a second)",
        all_up
            .at
            .saturating_duration_since(gateway.spawned_at)
            .as_millis()
    );
    let token = gateway.token(&["--role", "security", "--camera", "gate"]);
    let client = gateway.client(&token);
    let viewer = WhepViewer::connect(&client, &gateway.base_url, "gate").await;
    manager
        .wait_for(Duration::from_secs(10), |n| {
            n.value("STATUS") == Some("2/2 cameras up, 1 viewer")
        })
        .expect("a status with the viewer");
    let ended = client
        .delete(&viewer.session_url)
        .send()
        .await
        .expect("DELETE the session");
    assert_eq!(ended.status(), 200);
    viewer.close().await;
    let viewer_left = manager
        .wait_for(Duration::from_secs(10), |n| {
            n.value("STATUS") == Some("2/2 cameras up, 0 viewers")
                && manager
                    .received()
                    .iter()
                    .any(|m| m.at < n.at && m.value("STATUS") == Some("2/2 cameras up, 1 viewer"))
        })
        .expect("a status without the viewer");
    assert!(viewer_left.at > ready.at);

    // Pings every half interval, from the start, without a gap.
    let until = ready.at + Duration::from_millis(4500);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = manager.received();
    let pings = pings(&received);
    assert!(pings.len() >= 4, "{} pings in 4.5 s", pings.len());
    assert!(
        pings[0].saturating_duration_since(ready.at) < Duration::from_millis(500),
        "the first ping follows READY=1"
    );
    let gap = longest_gap(&pings);
    assert!(
        gap < Duration::from_millis(1600),
        "a {gap:?} gap between pings"
    );
    // Status lines are rate-limited: never two within 900 ms.
    let statuses: Vec<Instant> = received
        .iter()
        .filter(|n| n.value("STATUS").is_some())
        .map(|n| n.at)
        .collect();
    assert!(
        statuses
            .windows(2)
            .all(|w| w[1].saturating_duration_since(w[0]) >= Duration::from_millis(900)),
        "status lines too close together: {received:?}"
    );

    // ExecReload's SIGHUP reloads and keeps serving.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway
        .stderr_log()
        .contains("TLS certificate and key reloaded")
    {
        assert!(
            Instant::now() < deadline,
            "no reload:\n{}",
            gateway.stderr_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gateway.wait_exit(Duration::ZERO).is_none(),
        "SIGHUP stopped it"
    );

    stop_gracefully(&mut gateway, &manager);
    assert!(gateway.stderr_log().contains("told systemd READY=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchdog_pings_stop_while_an_egress_shard_is_stalled() {
    let port = free_port();
    let manager = NotifyListener::bind(None);
    // Egress shard 0 blocks its thread 2.5 s after it starts, for 4.5 s. (Tasks queued behind it on
    // that runtime thread, such as the other shard, may stall with it: the watchdog names the
    // stalest.)
    let mut gateway = start_under(
        &manager,
        port,
        TWO_CAMERAS,
        &[("STRAJA_TEST_STALL_EGRESS", "2500:4500")],
    );
    let ready = manager
        .wait_for(Duration::from_secs(15), |n| n.has("READY=1"))
        .expect("READY=1");
    // Pings resume once the shard runs again (stall over by ~8 s after start).
    let resumed = manager.wait_for(Duration::from_secs(20), |n| {
        n.has("WATCHDOG=1")
            && manager.received().iter().any(|m| {
                m.at < n.at
                    && m.value("STATUS").is_some_and(|s| {
                        s.contains("; watchdog: egress shard ") && s.ends_with(" stalled")
                    })
            })
    });
    let received = manager.received();
    let log = gateway.stderr_log();
    let resumed = resumed.unwrap_or_else(|| panic!("pings resume: {received:?}\nlog:\n{log}"));
    let pings = pings(&received);
    let before: Vec<Instant> = pings.iter().copied().filter(|&t| t < resumed.at).collect();
    assert!(
        before.len() >= 2,
        "pings before the stall: {received:?}\nlog:\n{log}"
    );
    // Normal gaps are 1 s; the stall makes one of at least 2.5 s (4.5 s stall, 2 s to notice).
    let gap = longest_gap(
        &before
            .iter()
            .copied()
            .chain([resumed.at])
            .collect::<Vec<_>>(),
    );
    assert!(
        gap >= Duration::from_millis(2400),
        "no gap in the pings during the stall (longest {gap:?}): {received:?}"
    );
    assert!(
        log.contains("watchdog: egress shard ") && log.contains(" has not run for "),
        "the reason is logged:\n{log}"
    );
    assert!(
        log.contains("WATCHDOG=1 pings resume"),
        "the recovery is logged:\n{log}"
    );
    assert!(resumed.at > ready.at);
    stop_gracefully(&mut gateway, &manager);
}

/// A camera that takes TCP connections and never says a word (a hung camera, or a firewall that
/// accepts): held until dropped.
struct SilentCamera {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentCamera {
    fn start() -> SilentCamera {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((stream, _)) = listener.accept()
                        && held.len() < 64
                    {
                        held.push(stream);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        SilentCamera {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentCamera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_that_are_down_do_not_delay_ready() {
    let silent = SilentCamera::start();
    let cameras = format!(
        r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=160&height=120"

[[cameras]]
id = "refused"
name = "Refused"
source = "rtsp://127.0.0.1:1/none"

[[cameras]]
id = "silent"
name = "Silent"
source = "rtsp://{}/stream"
"#,
        silent.addr
    );
    let port = free_port();
    let manager = NotifyListener::bind(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    let mut gateway = start_under(&manager, port, &cameras, &[]);
    let ready = manager
        .wait_for(Duration::from_secs(15), |n| n.has("READY=1"))
        .expect("READY=1");
    let start_to_ready = ready.at.saturating_duration_since(gateway.spawned_at);
    println!(
        "start to READY=1 with one camera refusing and one silent: {} ms",
        start_to_ready.as_millis()
    );
    // rtspsrc waits 20 s for a silent camera: READY must not.
    assert!(
        start_to_ready < Duration::from_secs(5),
        "READY=1 after {start_to_ready:?}"
    );
    assert_eq!(ready.listener_bound, Some(true));
    manager
        .wait_for(Duration::from_secs(15), |n| {
            n.value("STATUS") == Some("1/3 cameras up, 0 viewers")
        })
        .expect("a status with the test camera up and the other two down");
    // Ready for systemd is not /readyz: that still names the cameras that are down.
    let ops = gateway.client(&gateway.token(&["--role", "ops"]));
    let readyz = ops
        .get(format!("{}/readyz", gateway.base_url))
        .send()
        .await
        .expect("/readyz");
    assert_eq!(readyz.status(), 503);
    stop_gracefully(&mut gateway, &manager);
    drop(silent);
}
