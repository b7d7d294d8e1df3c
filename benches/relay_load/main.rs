//! The relay under load, end to end: the release `straja` binary pinned to core 0 serves one
//! 2 Mbit/s 720p30-shaped H.264 camera (pushed RTP, passed through, so the relay path is what is
//! measured) to N real WebRTC viewers in another process pinned to core 1, which decrypt SRTP and
//! measure each packet's latency from the camera's send-time stamp on the shared clock
//! (CLOCK_MONOTONIC). For each N the same packets also go through a plain UDP forwarder (the
//! baseline: one `send_to` per receiver, no crypto) to N plain receivers, in the same run.
//!
//! Reported per N: gateway CPU (share of its core, and per viewer-second), loss, latency
//! p50/p99/p99.9 for both paths and the gateway's added latency, RSS per viewer; then the largest
//! N with loss below 0.1 %. It fails (exit 1) only on a gross regression judged against the
//! baseline of the same run — never against an absolute time.
//!
//! `cargo bench --bench relay_load` (full: N up to 1000, 10-s windows);
//! `-- --quick` (N = 10 and 100, 4-s windows; what CI runs); `-- --counts 250,500` for chosen N
//! (to profile one load: `perf record -g -p $(pgrep -n straja)` during its window);
//! `-- --stacks straja,webrtc-rs` measures each viewer stack (`[webrtc] viewer_stack`) in turn
//! (default: `straja`, the gateway's own).

#[path = "../../tests/support/mod.rs"]
mod support;

mod child_process;
// Cargo builds a bench with cfg(test) but never runs its #[test]s; they run in
// tests/relay_load_parts.rs. Here their `use super::*` would only be unused.
#[cfg_attr(test, allow(unused_imports))]
mod latency_histogram;
#[cfg_attr(test, allow(unused_imports))]
mod synthetic_camera;
mod udp_forwarder;
#[cfg_attr(test, allow(unused_imports))]
mod viewer_swarm;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use child_process::{ChildProcess, Commands, tell};
use latency_histogram::LatencyHistogram;
use support::gateway_process::{
    GatewayProcess, ProcessOptions, can_pin_two_cores, core_busy_seconds,
    process_user_system_seconds,
};
use synthetic_camera::SyntheticCamera;
use viewer_swarm::{SwarmConfig, SwarmControl, SwarmReport};

/// Longest a child may take to set up (connect its viewers).
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The gateway's count of packets dropped for viewers that could not keep up.
const DROPPED_SERIES: &str = "straja_egress_dropped_packets_total{camera=\"cam\"}";
/// The camera packets the gateway received.
const INGEST_SERIES: &str = "straja_ingest_packets_total{camera=\"cam\"}";
/// The packets the gateway sent to viewers.
const EGRESS_SERIES: &str = "straja_egress_packets_total{camera=\"cam\"}";
/// Time for the path to settle before a window.
const SETTLE: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--child-swarm") => child_swarm(&args[1..]),
        Some("--child-plain") => child_plain(&args[1..]),
        Some("--child-forwarder") => child_forwarder(&args[1..]),
        _ => orchestrate(
            args.iter().any(|a| a == "--quick"),
            option(&args, "--counts").map(|counts| {
                counts
                    .split(',')
                    .map(|n| n.parse().expect("--counts N[,N...]"))
                    .collect()
            }),
            option(&args, "--stacks")
                .unwrap_or("straja")
                .split(',')
                .map(|stack| match stack {
                    "straja" | "webrtc-rs" => stack.to_owned(),
                    other => panic!("--stacks straja,webrtc-rs: not {other:?}"),
                })
                .collect(),
        ),
    }
}

// ---- children -------------------------------------------------------------------------------

/// `--child-swarm BASE_URL TOKEN CA_CERT CAMERA VIEWERS`
fn child_swarm(args: &[String]) {
    let [base_url, token, ca_cert, camera, viewers] = args else {
        panic!("--child-swarm BASE_URL TOKEN CA_CERT CAMERA VIEWERS");
    };
    let commands = Commands::listen();
    let control = SwarmControl::with_flags(commands.measuring.clone(), commands.stop.clone());
    let config = SwarmConfig::new(
        base_url.as_str(),
        token.as_str(),
        ca_cert.as_str(),
        camera.as_str(),
        viewers.parse().expect("viewer count"),
    );
    let report = viewer_swarm::run_swarm(&config, &control, |summary| tell("ready", summary))
        .expect("the swarm runs");
    tell("report", &report);
}

/// `--child-plain COUNT`
fn child_plain(args: &[String]) {
    let count: usize = args
        .first()
        .and_then(|c| c.parse().ok())
        .expect("--child-plain COUNT");
    let commands = Commands::listen();
    let control = SwarmControl::with_flags(commands.measuring.clone(), commands.stop.clone());
    let report =
        viewer_swarm::run_plain_receivers(count, Duration::from_secs(600), &control, |addresses| {
            tell("ready", &addresses)
        })
        .expect("plain receivers run");
    tell("report", &report);
}

/// `--child-forwarder RECEIVERS_JSON`
fn child_forwarder(args: &[String]) {
    let receivers: Vec<SocketAddr> = args
        .first()
        .and_then(|json| serde_json::from_str(json).ok())
        .expect("--child-forwarder RECEIVERS_JSON");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("forwarder socket");
    let commands = Commands::listen();
    tell("ready", &socket.local_addr().expect("address"));
    let received = udp_forwarder::forward(
        &socket,
        &receivers,
        &commands.stop,
        Instant::now() + Duration::from_secs(600),
    );
    tell("report", &received);
}

// ---- orchestrator ---------------------------------------------------------------------------

/// One path's figures for one N.
struct Phase {
    /// Relay process CPU, as a share of one core.
    cpu: f64,
    /// The part of `cpu` spent in the kernel (sends, and on loopback the receivers' softirq work).
    cpu_system: f64,
    /// Core 0's busy share (the relay's core when pinned): adds the softirq work the kernel hands
    /// to `ksoftirqd`, which is no process's time.
    core_busy: f64,
    report: SwarmReport,
    /// Packets the relay dropped on the way to viewers that could not keep up (gateway only).
    relay_drops: u64,
    /// Camera packets a second that reached the gateway during the window (gateway only): on a
    /// saturated machine the bench's own camera sends less than its ~241.
    camera_rate: f64,
    /// Packets a second the gateway sent to its viewers during the window (gateway only).
    egress_rate: f64,
}

impl Phase {
    /// The `percentile` of the viewers' WHEP POST → connected times, in whole milliseconds.
    fn connect_ms(&self, percentile: f64) -> u64 {
        let mut times: Vec<f64> = self
            .report
            .viewers
            .iter()
            .filter_map(|v| v.connect_ms)
            .collect();
        if times.is_empty() {
            return 0;
        }
        times.sort_by(f64::total_cmp);
        let at = ((percentile / 100.0) * (times.len() - 1) as f64).round() as usize;
        times[at.min(times.len() - 1)] as u64
    }

    fn packets(&self) -> u64 {
        self.report.viewers.iter().map(|v| v.packets).sum()
    }

    fn loss(&self) -> f64 {
        let lost: u64 = self.report.viewers.iter().map(|v| v.lost).sum();
        let drops: u64 = self.report.viewers.iter().map(|v| v.socket_drops).sum();
        let expected = self.packets() + lost;
        if expected == 0 {
            return 1.0;
        }
        (lost + drops) as f64 / (expected + drops) as f64
    }

    /// Camera send → the kernel's arrival of the datagram at the receiver's socket
    /// (SO_TIMESTAMPNS): leaves out the time datagrams wait for the one-thread swarm to read them.
    fn latency(&self) -> LatencyHistogram {
        self.report.merged_arrival_latency()
    }

    /// Jumps in media time: the gateway dropped packets for a slow viewer and resumed it at a
    /// keyframe (its sequence numbers stay gap-free, so this is not in `loss`).
    fn skips(&self) -> u64 {
        self.report.viewers.iter().map(|v| v.media_skips).sum()
    }

    fn connected(&self) -> usize {
        self.report.viewers.iter().filter(|v| v.connected).count()
    }
}

fn percentiles(h: &LatencyHistogram) -> (u64, u64, u64) {
    (h.percentile(50.0), h.percentile(99.0), h.percentile(99.9))
}

/// CPU shares over a window: the relay process (all, kernel part) and core 0.
struct CpuShares {
    process: f64,
    system: f64,
    core: f64,
}

/// Runs a child until its window has been measured; returns its report and the CPU shares of
/// `relay_pid` (and core 0) over the window.
fn measure_window(
    child: &mut ChildProcess,
    relay_pid: u32,
    window: Duration,
) -> (CpuShares, SwarmReport) {
    std::thread::sleep(SETTLE);
    child.say("measure");
    let (user_start, system_start) = process_user_system_seconds(relay_pid);
    let core_start = core_busy_seconds(0);
    let started = Instant::now();
    std::thread::sleep(window);
    let (user, system) = process_user_system_seconds(relay_pid);
    let core = core_busy_seconds(0) - core_start;
    let seconds = started.elapsed().as_secs_f64();
    let shares = CpuShares {
        process: (user - user_start + system - system_start) / seconds,
        system: (system - system_start) / seconds,
        core: core / seconds,
    };
    child.say("stop");
    let report: SwarmReport =
        serde_json::from_str(&child.expect("report", SETUP_TIMEOUT)).expect("report JSON");
    (shares, report)
}

fn baseline(count: usize, window: Duration, pins: (Option<&str>, Option<&str>)) -> Phase {
    let mut receivers = ChildProcess::spawn(&["--child-plain".into(), count.to_string()], pins.1);
    let addresses = receivers.expect("ready", SETUP_TIMEOUT);
    let mut forwarder = ChildProcess::spawn(&["--child-forwarder".into(), addresses], pins.0);
    let forwarder_addr: SocketAddr =
        serde_json::from_str(&forwarder.expect("ready", SETUP_TIMEOUT)).expect("address");
    let camera = SyntheticCamera::start(forwarder_addr);
    let (cpu, report) = measure_window(&mut receivers, forwarder.pid(), window);
    drop(camera);
    forwarder.say("stop");
    Phase {
        cpu: cpu.process,
        cpu_system: cpu.system,
        core_busy: cpu.core,
        report,
        relay_drops: 0,
        camera_rate: 0.0,
        egress_rate: 0.0,
    }
}

fn relay(
    gateway: &GatewayProcess,
    token: &str,
    count: usize,
    window: Duration,
    swarm_cpus: Option<&str>,
) -> Phase {
    let mut swarm = ChildProcess::spawn(
        &[
            "--child-swarm".into(),
            gateway.base_url.clone(),
            token.to_owned(),
            gateway.ca_cert.display().to_string(),
            "cam".into(),
            count.to_string(),
        ],
        swarm_cpus,
    );
    let summary = swarm.expect("ready", SETUP_TIMEOUT);
    eprintln!("relay_load: {count} viewers set up: {summary}");
    let dropped = || gateway.metric(DROPPED_SERIES).unwrap_or(0.0) as u64;
    let ingested = || gateway.metric(INGEST_SERIES).unwrap_or(0.0);
    let egressed = || gateway.metric(EGRESS_SERIES).unwrap_or(0.0);
    let drops_before = dropped();
    let (ingested_before, egressed_before, started) = (ingested(), egressed(), Instant::now());
    let (cpu, report) = measure_window(&mut swarm, gateway.pid(), window);
    let seconds = started.elapsed().as_secs_f64();
    let camera_rate = (ingested() - ingested_before) / seconds;
    let egress_rate = (egressed() - egressed_before) / seconds;
    Phase {
        cpu: cpu.process,
        cpu_system: cpu.system,
        core_busy: cpu.core,
        report,
        relay_drops: dropped().saturating_sub(drops_before),
        camera_rate,
        egress_rate,
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// The value after `name` in `args`.
fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).map(String::as_str)
}

fn orchestrate(quick: bool, chosen_counts: Option<Vec<usize>>, stacks: Vec<String>) {
    let (default_counts, window): (&[usize], Duration) = if quick {
        (&[10, 100], Duration::from_secs(4))
    } else {
        (&[10, 100, 250, 500, 750, 1000], Duration::from_secs(10))
    };
    let counts = chosen_counts.as_deref().unwrap_or(default_counts);
    let mut regressions = Vec::new();
    for stack in &stacks {
        run_stack(stack, counts, window, &mut regressions);
    }
    if !regressions.is_empty() {
        eprintln!("relay_load: gross regression against the baseline:");
        for regression in &regressions {
            eprintln!("  {regression}");
        }
        std::process::exit(1);
    }
}

/// Measures the gateway running its viewers on `stack` (`[webrtc] viewer_stack`) at each of
/// `counts`, against the forwarder, and adds what regressed to `regressions`.
fn run_stack(stack: &str, counts: &[usize], window: Duration, regressions: &mut Vec<String>) {
    let pinned = can_pin_two_cores();
    let pins = if pinned {
        (Some("0"), Some("1"))
    } else {
        (None, None)
    };
    let port = free_udp_port();
    let gateway = GatewayProcess::start_with(
        &format!(
            "[[cameras]]\nid = \"cam\"\nname = \"Camera\"\n\
             source = \"rtp://127.0.0.1:{port}?passthrough=true\"\n"
        ),
        ProcessOptions {
            cpus: pins.0.map(str::to_owned),
            viewer_stack: Some(stack.to_owned()),
            ..ProcessOptions::default()
        },
    );
    let camera = SyntheticCamera::start(SocketAddr::from(([127, 0, 0, 1], port)));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(gateway.wait_until_ready(Duration::from_secs(20)));
    let token = gateway.token(&["--role", "security", "--camera", "cam", "--ttl", "2h"]);

    // The gateway with no viewer: ingest only.
    std::thread::sleep(SETTLE);
    let idle_cpu_start = gateway.cpu_seconds();
    let idle_started = Instant::now();
    std::thread::sleep(window);
    let idle_cpu = (gateway.cpu_seconds() - idle_cpu_start) / idle_started.elapsed().as_secs_f64();
    let idle_rss = gateway.rss_mib();

    println!(
        "relay load, viewer_stack = {stack:?}: release gateway {}, one 2 Mbit/s 720p30 H.264 camera (~210 packets/s), \
         {}-s windows; viewers decrypt SRTP in another process{}",
        if pinned {
            "pinned to core 0"
        } else {
            "unpinned"
        },
        window.as_secs(),
        if pinned { " pinned to core 1" } else { "" },
    );
    println!(
        "idle (ingest only): gateway CPU {:.1} % of a core, RSS {idle_rss:.1} MiB",
        idle_cpu * 100.0
    );
    println!(
        "{:>6} {:>9} {:>8} {:>11} {:>9} {:>9} {:>20} {:>20} {:>16} {:>9} {:>8} {:>6}",
        "N",
        "connected",
        "gw CPU%",
        "ms/viewer·s",
        "gw loss%",
        "fwd loss%",
        "gw µs p50/p99/p99.9",
        "fwd µs p50/p99/p99.9",
        "added p50/p99 µs",
        "fwd CPU%",
        "KiB/vwr",
        "skips"
    );
    let mut sustained = None;
    for &count in counts {
        let base = baseline(count, window, pins);
        let relayed = relay(&gateway, &token, count, window, pins.1);
        let rss = gateway.rss_mib();
        let (g50, g99, g999) = percentiles(&relayed.latency());
        let (b50, b99, b999) = percentiles(&base.latency());
        let per_viewer_ms = (relayed.cpu - idle_cpu).max(0.0) * 1000.0 / count as f64;
        let kib_per_viewer = (rss - idle_rss).max(0.0) * 1024.0 / count as f64;
        println!(
            "{count:>6} {:>9} {:>8.1} {per_viewer_ms:>11.3} {:>9.3} {:>9.3} {:>20} {:>20} {:>16} {:>9.1} {kib_per_viewer:>8.0} {:>6}",
            relayed.connected(),
            relayed.cpu * 100.0,
            relayed.loss() * 100.0,
            base.loss() * 100.0,
            format!("{g50}/{g99}/{g999}"),
            format!("{b50}/{b99}/{b999}"),
            format!("{}/{}", g50.saturating_sub(b50), g99.saturating_sub(b99)),
            base.cpu * 100.0,
            relayed.skips(),
        );
        eprintln!(
            "relay_load: N={count} {:.1} packets per viewer-second received \
             (the camera delivered {:.1} a second to the gateway, which sent {:.1} per viewer); \
             connected viewers that received nothing in the window {}, connect time p50/max {}/{} ms; \
             swarm CPU {:.1} % of a core, socket wait p99 {} µs, \
             packets dropped by the gateway's fan-out {}; gateway CPU in the kernel {:.1} %, \
             its core busy {:.1} %; forwarder CPU in the kernel {:.1} %, its core busy {:.1} %",
            relayed.packets() as f64
                / relayed.report.measured_seconds.max(1e-9)
                / relayed.connected().max(1) as f64,
            relayed.camera_rate,
            relayed.egress_rate / count as f64,
            relayed
                .report
                .viewers
                .iter()
                .filter(|v| v.connected && v.packets == 0)
                .count(),
            relayed.connect_ms(50.0),
            relayed.connect_ms(100.0),
            relayed.report.cpu_seconds / relayed.report.measured_seconds.max(1e-9) * 100.0,
            relayed.report.socket_wait.percentile(99.0),
            relayed.relay_drops,
            relayed.cpu_system * 100.0,
            relayed.core_busy * 100.0,
            base.cpu_system * 100.0,
            base.core_busy * 100.0,
        );
        if relayed.loss() < 0.001 && relayed.connected() == count && relayed.skips() == 0 {
            sustained = Some(count);
        }
        // Gross regressions only, each judged against the forwarder of the same run, and only
        // where neither side is overloaded (the full run goes past that on purpose).
        let healthy = base.loss() < 0.001
            && relayed.cpu < 0.9
            && (!pinned || (relayed.core_busy < 0.9 && base.core_busy < 0.9));
        if !healthy {
            continue;
        }
        if relayed.connected() < count {
            regressions.push(format!(
                "{stack} N={count}: only {} of {count} viewers connected",
                relayed.connected()
            ));
        }
        if relayed.loss() > 0.01 {
            regressions.push(format!(
                "{stack} N={count}: the gateway lost {:.2} % where the forwarder lost {:.3} %",
                relayed.loss() * 100.0,
                base.loss() * 100.0
            ));
        }
        if g99 > b99.saturating_mul(20).max(b99 + 20_000) {
            regressions.push(format!(
                "{stack} N={count}: gateway p99 latency {g99} µs against the forwarder's {b99} µs"
            ));
        }
    }
    match sustained {
        Some(n) => println!(
            "largest N tested with loss < 0.1 %{}: {n}",
            if pinned { " (gateway on one core)" } else { "" }
        ),
        None => println!("no N tested kept loss under 0.1 %"),
    }
    drop(camera);
    drop(gateway);
}
