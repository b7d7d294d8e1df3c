//! The camera wall in a real browser: headless Chromium signs in with a security token for two
//! cameras and the page shows both as live tiles, each with its own WHEP session whose video
//! decodes frames (`getStats`, at each camera's own size). A tile opens large (the others leave
//! the screen, its video grows, its session carries on) and goes back to the wall. When a camera
//! goes away and comes back, its tile's state follows what `GET /api/v1/cameras` says. Screenshots
//! are kept in `target/test-artifacts/camera-wall*.png`.
//!
//! The wall refreshes the states in the background; that is not the user's activity: a wall left
//! alone signs out after the idle timeout and ends its views on the gateway.

mod support;

use std::time::Duration;

use serde_json::Value;
use straja_pipelines::{FakeCameraOptions, FakeRtspCamera};
use support::chromium::{Chromium, Page};
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::test_artifacts::artifact_path;

const WAIT: Duration = Duration::from_secs(20);

fn yard_options() -> FakeCameraOptions {
    FakeCameraOptions {
        width: 320,
        height: 240,
        gop_frames: 30,
        ..Default::default()
    }
}

/// `getStats()` of camera `id`'s own peer connection: frames decoded and their size.
async fn tile_stats(page: &Page, id: &str) -> Value {
    page.eval(&format!(
        "straja.tiles.get('{id}').pc.getStats().then(r => {{ let v = {{}}; r.forEach(s => {{ \
           if (s.type === 'inbound-rtp' && s.kind === 'video') v = {{ frames: s.framesDecoded, \
           width: s.frameWidth, height: s.frameHeight }}; }}); return v; }})"
    ))
    .await
    .expect("stats")
}

/// Waits until the tile of camera `id` shows the camera state `state` (from the API refresh).
async fn wait_for_tile_state(page: &Page, id: &str, state: &str) {
    if let Err(e) = page
        .wait_for(
            &format!("document.querySelector('[data-camera={id}]').dataset.state === '{state}'"),
            WAIT,
        )
        .await
    {
        let shown = page
            .eval(&format!(
                "document.querySelector('[data-camera={id}] [data-testid=tile-state]').textContent"
            ))
            .await;
        panic!(
            "tile {id} never showed {state}: {e}; it shows {shown:?}; console {:?}",
            page.console()
        );
    }
}

async fn screenshot(page: &Page, name: &str) {
    let path = artifact_path(name);
    page.screenshot(&path).await.expect("screenshot");
    let size = std::fs::metadata(&path).expect("screenshot file").len();
    assert!(size > 1000, "{name}: {size} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_plays_every_camera_in_its_own_tile_and_opens_one_large() {
    let yard_camera = FakeRtspCamera::start(yard_options()).expect("fake RTSP camera");
    let yard_port = yard_camera.port();
    let yard_url = yard_camera.url();
    let gateway = GatewayUnderTest::start(&[
        TestCamera {
            id: "gate",
            source: "test://smpte?width=640&height=360&gop=30",
            settings: "",
        },
        TestCamera {
            id: "yard",
            source: &yard_url,
            settings: "",
        },
    ])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = browser
        .open(&gateway.url(&format!("/#token={}", gateway.security_token)))
        .await
        .expect("page opens");
    page.wait_for(
        "document.querySelectorAll('[data-testid=camera-tile]').length === 2",
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|e| panic!("no wall: {e}; console {:?}", page.console()));
    let ids = page
        .eval(
            "[...document.querySelectorAll('[data-testid=camera-tile]')] \
             .map(t => t.dataset.camera)",
        )
        .await
        .expect("tile ids");
    assert_eq!(ids, serde_json::json!(["gate", "yard"]), "config order");

    // Each tile decodes its own camera, on its own session, at its own size.
    if let Err(e) = page
        .wait_for(
            "Promise.all(['gate', 'yard'].map(id => straja.framesDecoded(id))) \
             .then(frames => frames.every(n => n >= 30))",
            WAIT,
        )
        .await
    {
        let _ = page
            .screenshot(&artifact_path("camera-wall-failure.png"))
            .await;
        panic!(
            "tiles did not decode 30 frames each: {e}; console {:?}",
            page.console()
        );
    }
    let gate = tile_stats(&page, "gate").await;
    let yard = tile_stats(&page, "yard").await;
    println!("wall: gate {gate}, yard {yard}");
    assert_eq!(
        (gate["width"].as_u64(), gate["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(
        (yard["width"].as_u64(), yard["height"].as_u64()),
        (Some(320), Some(240))
    );
    assert_eq!(
        gateway.running.gateway().sessions.len(),
        2,
        "one WHEP session per tile"
    );
    let states = page
        .eval("[...document.querySelectorAll('[data-testid=tile-state]')].map(s => s.textContent)")
        .await
        .expect("states");
    assert_eq!(
        states,
        serde_json::json!(["playing · live", "playing · live"]),
        "{states}"
    );
    screenshot(&page, "camera-wall.png").await;

    // Open the gate camera large: the yard tile leaves the screen, gate's video grows, and its
    // session carries on (no new one).
    let small_width = page
        .eval("document.querySelector('[data-camera=gate] video').clientWidth")
        .await
        .expect("width")
        .as_f64()
        .unwrap_or(0.0);
    page.eval("document.querySelector('[data-camera=gate] [data-testid=tile-open]').click(); true")
        .await
        .expect("open");
    page.wait_for(
        "document.querySelector('[data-camera=yard]').offsetParent === null && \
         document.querySelector('[data-camera=gate]').classList.contains('open') && \
         !document.querySelector('[data-camera=gate] [data-testid=tile-close]').hidden",
        Duration::from_secs(5),
    )
    .await
    .expect("gate opens large");
    let large_width = page
        .eval("document.querySelector('[data-camera=gate] video').clientWidth")
        .await
        .expect("width")
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        large_width > small_width * 1.5,
        "the open tile is large: {small_width} -> {large_width} px"
    );
    let frames_before = gate["frames"].as_u64().unwrap_or(0);
    page.wait_for(
        &format!(
            "straja.framesDecoded().then(n => n >= {} + 30)",
            frames_before
        ),
        WAIT,
    )
    .await
    .expect("the open camera keeps playing");
    assert_eq!(gateway.running.gateway().sessions.len(), 2, "same sessions");
    screenshot(&page, "camera-wall-open.png").await;

    page.eval(
        "document.querySelector('[data-camera=gate] [data-testid=tile-close]').click(); true",
    )
    .await
    .expect("close");
    page.wait_for(
        "document.querySelector('[data-camera=yard]').offsetParent !== null && \
         !document.querySelector('[data-camera=gate]').classList.contains('open')",
        Duration::from_secs(5),
    )
    .await
    .expect("back to the wall");

    // The yard camera goes away: its tile says so once the page has refreshed the states; when
    // it is back, its tile plays again on the session it kept.
    yard_camera.stop();
    wait_for_tile_state(&page, "yard", "reconnecting").await;
    let away = tile_stats(&page, "yard").await["frames"]
        .as_u64()
        .unwrap_or(0);
    let yard_camera =
        FakeRtspCamera::start_on_port(yard_options(), yard_port).expect("camera back");
    wait_for_tile_state(&page, "yard", "playing").await;
    page.wait_for(
        &format!("straja.framesDecoded('yard').then(n => n >= {away} + 30)"),
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("yard did not play again: {e}; console {:?}", page.console()));

    let violations = page.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:?}");

    // Stopping the page's views ends both sessions on the gateway.
    page.eval("straja.stop().then(() => true)")
        .await
        .expect("stop");
    assert!(
        gateway.sessions_end(100).await,
        "the page ended its sessions"
    );

    drop(page);
    drop(browser);
    gateway.shutdown().await;
    yard_camera.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattended_wall_signs_out_after_the_idle_timeout() {
    const PASSWORD: &str = "a long wall passphrase";
    // Longer than the page's refresh interval (3 s): the refresh keeps the sign-in alive on the
    // gateway, so it is the page that must end it.
    let gateway = GatewayUnderTest::start_with(
        &support::gateway_under_test::GATE_AND_YARD,
        "[auth]\nidle_timeout_seconds = 5\n",
    )
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    gateway.add_user("vera", "security", &["gate", "yard"], PASSWORD);
    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = browser.open(&gateway.url("/")).await.expect("page opens");
    page.wait_for(
        "!document.getElementById('signin').hidden",
        Duration::from_secs(10),
    )
    .await
    .expect("the page asks to sign in");
    page.eval(&format!(
        "document.getElementById('user').value = 'vera'; \
         document.getElementById('password').value = {PASSWORD:?}; \
         document.getElementById('signin').requestSubmit(); true"
    ))
    .await
    .expect("submit");
    page.wait_for(
        "Promise.all(['gate', 'yard'].map(id => straja.framesDecoded(id))) \
         .then(frames => frames.every(n => n > 0))",
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("the wall did not play: {e}; console {:?}", page.console()));
    let signed_in_at = std::time::Instant::now();
    assert_eq!(gateway.running.gateway().sessions.len(), 2);

    page.wait_for(
        "document.querySelector('[data-testid=signin-reason]').textContent.includes('inactivity') \
         && document.getElementById('viewer').hidden",
        WAIT,
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "the wall was not signed out: {e}; console {:?}",
            page.console()
        )
    });
    let after = signed_in_at.elapsed();
    println!(
        "unattended wall signed out {} ms after it played",
        after.as_millis()
    );
    let login = &gateway.running.gateway().login;
    let sessions = &gateway.running.gateway().sessions;
    for _ in 0..100 {
        if login.signed_in() == 0 && sessions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(login.signed_in(), 0, "the sign-in ended on the gateway");
    assert!(sessions.is_empty(), "the wall's views ended on the gateway");
    let tiles = page
        .eval("document.querySelectorAll('[data-testid=camera-tile]').length")
        .await
        .expect("tiles");
    assert_eq!(tiles, 0, "no camera stays on the screen");
    drop(page);
    drop(browser);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_wall_while_its_views_start_leaves_no_session_and_play_starts_afresh() {
    let gateway = GatewayUnderTest::start(&support::gateway_under_test::GATE_AND_YARD).await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = browser
        .open(&gateway.url(&format!("/#token={}", gateway.security_token)))
        .await
        .expect("page opens");
    // The wall has just started both views (their offers are on the way) when it is stopped.
    page.eval("straja.ready.then(() => straja.stop()).then(() => true)")
        .await
        .expect("stopped");
    assert!(
        gateway.sessions_end(150).await,
        "a view stopped while it started leaves no session"
    );
    page.eval_within(
        "straja.play('gate').then(async () => { const t0 = performance.now(); \
           while ((await straja.framesDecoded()) < 10) { \
             if (performance.now() - t0 > 15000) throw new Error('fewer than 10 frames in 15 s'); \
             await new Promise(r => setTimeout(r, 20)); } \
           return true; })",
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("play after stop: {e}; console {:?}", page.console()));
    assert_eq!(
        gateway.running.gateway().sessions.len(),
        1,
        "only the camera played has a session"
    );
    drop(page);
    drop(browser);
    gateway.shutdown().await;
}
