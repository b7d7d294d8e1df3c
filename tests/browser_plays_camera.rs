//! A real browser: Debian's headless Chromium opens the gateway's page over HTTPS, plays a camera
//! with the page's own WHEP client, and `getStats()` shows at least 60 decoded frames. Also
//! records time from the page's WHEP call to the first decoded frame, for the closing notes.

mod support;

use std::time::Duration;

use support::chromium::Chromium;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_a_camera_from_the_gateway_page() {
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "lobby",
        source: "test://ball?width=640&height=480&gop=30",
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = browser
        .open(&gateway.url(&format!("/#token={}", gateway.security_token)))
        .await
        .expect("page opens");
    let address_bar = page.eval("location.href").await.expect("href");
    assert!(
        !address_bar.to_string().contains("token"),
        "the token must leave the address bar: {address_bar}"
    );
    page.wait_for(
        "document.querySelectorAll('[data-camera]').length === 1",
        Duration::from_secs(10),
    )
    .await
    .expect("the page lists the camera");

    page.eval(
        "window.__t0 = performance.now(); \
         straja.play('lobby').then(() => { window.__posted = performance.now(); }); true",
    )
    .await
    .expect("play starts");
    let first_frame = page
        .wait_for(
            "straja.framesDecoded().then(n => n > 0)",
            Duration::from_secs(15),
        )
        .await;
    let first_frame_ms = page
        .eval("performance.now() - window.__t0")
        .await
        .ok()
        .and_then(|v| v.as_f64());
    if first_frame.is_err() {
        let shot = std::env::temp_dir().join("straja-browser-failure.png");
        let _ = page.screenshot(&shot).await;
        panic!(
            "no decoded frame; console: {:?}; screenshot {}",
            page.console(),
            shot.display()
        );
    }
    println!("chromium: first decoded frame ~{first_frame_ms:?} ms after play()");
    let phases = page
        .eval("JSON.stringify(straja.timings || {})")
        .await
        .unwrap_or_default();
    println!("chromium: phases {phases}");

    page.wait_for(
        "straja.framesDecoded().then(n => n >= 60)",
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "fewer than 60 frames decoded: {e}; console {:?}",
            page.console()
        )
    });
    let stats = page
        .eval(
            "straja.pc.getStats().then(r => { let v = {}; r.forEach(s => { \
               if (s.type === 'inbound-rtp' && s.kind === 'video') v = { frames: s.framesDecoded, \
               lost: s.packetsLost, width: s.frameWidth, height: s.frameHeight, codec: s.codecId }; }); \
               return v; })",
        )
        .await
        .expect("stats");
    println!("chromium stats: {stats}");
    assert!(stats["frames"].as_u64().unwrap_or(0) >= 60, "{stats}");
    assert_eq!(stats["width"], 640, "{stats}");
    assert_eq!(stats["height"], 480, "{stats}");

    // The page works within its own Content-Security-Policy (no inline script or style).
    let violations = page.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:?}");

    // Stopping from the page deletes the session on the gateway.
    page.eval("straja.stop().then(() => true)")
        .await
        .expect("stop");
    assert!(
        gateway.sessions_end(100).await,
        "the page's DELETE ended the session"
    );

    drop(page);
    drop(browser);
    gateway.shutdown().await;
}
