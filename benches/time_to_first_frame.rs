//! Time to first frame: from a viewer's WHEP request to its first complete (in-process webrtc-rs
//! viewer) or decoded (headless Chromium) frame, at random points of a 720p30 camera's 2 s GOP.
//!
//! Three cameras: the RTSP camera (a fake IP camera in this process; its encoder cannot be asked
//! for a keyframe) with the gateway's GOP cache, the same camera with the cache off (a viewer then
//! waits for the camera's next keyframe: a GOP at worst), and a `test://` camera (the gateway's own
//! encoder, which honours keyframe requests).
//!
//! `cargo bench --bench time_to_first_frame` (`-- --quick` for fewer tries).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::chromium::Chromium;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

fn summary(name: &str, mut samples: Vec<f64>) {
    samples.sort_by(f64::total_cmp);
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "{name:<48} median {:7.1} ms   p95 {:7.1}   min {:7.1}   max {:7.1}   n={}",
        at(0.5),
        at(0.95),
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    );
}

async fn in_process_viewer(gateway: &GatewayUnderTest, camera: &str, tries: usize) -> Vec<f64> {
    let mut samples = Vec::new();
    let mut phases = Vec::new();
    for _ in 0..tries {
        let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, camera).await;
        let answered = viewer.answered_at;
        let reception = viewer.wait_for_frames(1, Duration::from_secs(10)).await;
        let ms = |t: Option<std::time::Instant>| {
            t.map(|t| t.duration_since(viewer.posted_at).as_millis())
        };
        phases.push(format!(
            "answer {:?} first packet {:?}",
            answered.duration_since(viewer.posted_at).as_millis(),
            ms(reception.first_packet_at)
        ));
        let first = reception
            .first_frame_at
            .expect("a frame within 10 s")
            .duration_since(viewer.posted_at);
        samples.push(first.as_secs_f64() * 1000.0);
        let _ = gateway.client.delete(&viewer.session_url).send().await;
        viewer.close().await;
        random_pause().await;
    }
    println!("  phases (ms after POST): {}", phases.join(" | "));
    samples
}

async fn chromium(gateway: &GatewayUnderTest, camera: &str, tries: usize) -> Vec<f64> {
    let browser = Chromium::launch(&[]).await.expect("Chromium");
    let page = browser
        .open(&gateway.url(&format!("/#token={}", gateway.security_token)))
        .await
        .expect("page");
    page.wait_for("window.straja !== undefined", Duration::from_secs(10))
        .await
        .expect("page script");
    // The camera wall starts every camera's tile: stop them, so each try starts its own view.
    page.eval("straja.ready.then(() => straja.stop()).then(() => true)")
        .await
        .expect("wall stopped");
    let mut samples = Vec::new();
    let mut phases = Vec::new();
    for _ in 0..tries {
        let result = page
            .eval(&format!(
                "(async () => {{ const t0 = performance.now(); await straja.play('{camera}'); \
                 while ((await straja.framesDecoded()) < 1) {{ \
                   if (performance.now() - t0 > 10000) throw new Error('no frame in 10 s'); \
                   await new Promise(r => setTimeout(r, 2)); }} \
                 const t = performance.now() - t0; const phases = JSON.stringify(straja.timings); \
                 await straja.stop(); return [t, phases]; }})()"
            ))
            .await
            .expect("a decoded frame");
        samples.push(result[0].as_f64().unwrap_or(f64::NAN));
        phases.push(result[1].as_str().unwrap_or("?").to_owned());
        random_pause().await;
    }
    println!("  phases (ms after play()): {}", phases.join(" | "));
    samples
}

/// The cameras measured: (what the summary calls it, camera id).
const CAMERAS: [(&str, &str); 4] = [
    ("RTSP camera, GOP cache", "rtsp"),
    (
        "RTSP camera at a real 2 Mbit/s (noise), GOP cache",
        "rtsp-noise",
    ),
    ("RTSP camera, no cache", "rtsp-no-cache"),
    ("test camera (keyframe on request)", "pattern"),
];

/// A pause of 100-2100 ms, so that each try lands at a random point of the camera's 2 s GOP (a
/// fixed pause locks the tries to one phase of the GOP and measures that phase only).
async fn random_pause() {
    tokio::time::sleep(Duration::from_millis(rand::random_range(100..2100))).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let tries = if quick { 5 } else { 20 };
    let camera = FakeRtspCamera::start(FakeCameraOptions {
        gop_frames: 60,
        ..support::reference_camera::options()
    })
    .expect("fake RTSP camera");
    let rtsp_url = camera.url();
    // The reference camera's ball picture needs far less than its 2 Mbit/s; a noise picture
    // really sends it, with keyframes (and a cached GOP) of that size.
    let noise = FakeRtspCamera::start(FakeCameraOptions {
        gop_frames: 60,
        pattern: "snow",
        ..support::reference_camera::options()
    })
    .expect("fake RTSP camera (noise)");
    let noise_url = noise.url();
    let gateway = GatewayUnderTest::start(&[
        TestCamera {
            id: "rtsp-noise",
            source: &noise_url,
            settings: "",
        },
        TestCamera {
            id: "rtsp",
            source: &rtsp_url,
            settings: "",
        },
        TestCamera {
            id: "rtsp-no-cache",
            source: &rtsp_url,
            settings: "gop_cache_bytes = 0",
        },
        TestCamera {
            id: "pattern",
            source: "test://ball?width=1280&height=720&fps=30&gop=60&bitrate=2000",
            settings: "",
        },
    ])
    .await;
    gateway.wait_until_ready(Duration::from_secs(20)).await;

    println!("time to first frame, 720p30 H.264 2 Mbit/s, camera GOP 2 s, {tries} tries each");
    for (name, camera) in CAMERAS {
        summary(
            &format!("in-process viewer, {name}"),
            in_process_viewer(&gateway, camera, tries).await,
        );
    }
    for (name, camera) in CAMERAS {
        summary(
            &format!("Chromium, {name}"),
            chromium(&gateway, camera, tries).await,
        );
    }
    let answer = &gateway.running.gateway().metrics.whep_answer_seconds;
    println!(
        "server-side WHEP answer time: mean {:.2} ms over {} offers",
        answer.get_sample_sum() * 1000.0 / answer.get_sample_count().max(1) as f64,
        answer.get_sample_count()
    );
    gateway.shutdown().await;
    camera.stop();
    noise.stop();
}
