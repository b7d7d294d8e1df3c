//! Going back in time in a real browser: the gateway records a test-pattern camera in 2 s
//! segments; headless Chromium (in Bucharest's time zone, so that the page must read the chosen
//! time as local time) opens the page signed in as security staff, goes to the recordings,
//! chooses the camera and a moment inside the first finished segment, and plays. The video
//! decodes frames (`requestVideoFrameCallback`) from that moment on (its first frame's media time
//! is the chosen moment less the segment's start), goes on into the next segment by itself, and
//! the page never holds more than two segments (the first one's object URL is revoked). A moment
//! in the segment being written plays what is written, then that segment fetched again from where
//! it was. The wall's live views end while the recordings are open and play again on the way back.
//! A time with no recording says so; a page signed in by password (cookie) plays too; an ops page
//! lists the segments but says footage is for security staff; staff without the camera are told
//! they are not allowed. The screenshot is kept in `target/test-artifacts/recordings-page.png`.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use straja_gateway::auth::Role;
use support::chromium::{Chromium, Page};
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::test_artifacts::artifact_path;

const WAIT: Duration = Duration::from_secs(20);
/// Not UTC, and not this machine's zone: a page that read the time as UTC would miss by 2 h.
const TIME_ZONE: &str = "Europe/Bucharest";

/// A listed segment: its id, its start (unix ms, from the id), its duration and whether it is
/// being written.
#[derive(Debug, Clone)]
struct Listed {
    id: String,
    start_ms: u64,
    duration_s: f64,
    recording: bool,
}

async fn list_segments(gateway: &GatewayUnderTest) -> Vec<Listed> {
    let response = gateway
        .client
        .get(gateway.url("/api/v1/cameras/gate/recordings"))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 200);
    let segments: Value = response.json().await.expect("JSON");
    segments
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            let id = s["id"].as_str().expect("id").to_owned();
            let start_ms = id
                .rsplit_once('.')
                .and_then(|(_, ms)| ms.parse().ok())
                .expect("id is camera.start_ms");
            Listed {
                id,
                start_ms,
                duration_s: s["duration_seconds"].as_f64().expect("duration"),
                recording: s["recording"].as_bool().expect("recording"),
            }
        })
        .collect()
}

/// Opens the page signed in with `token`, in [`TIME_ZONE`], and goes to the recordings.
async fn open_recordings(browser: &Chromium, gateway: &GatewayUnderTest, token: &str) -> Page {
    let page = browser
        .open(&gateway.url(&format!("/#token={token}")))
        .await
        .expect("page opens");
    in_time_zone(&page).await;
    page.eval("straja.ready.then(() => true)")
        .await
        .expect("signed in");
    go_to_recordings(&page).await;
    page
}

async fn in_time_zone(page: &Page) {
    page.call(
        "Emulation.setTimezoneOverride",
        json!({ "timezoneId": TIME_ZONE }),
        Duration::from_secs(5),
    )
    .await
    .expect("time zone override");
    let offset = page
        .eval("new Date().getTimezoneOffset()")
        .await
        .expect("offset");
    assert_ne!(offset, json!(0), "the page's local time is not UTC");
}

async fn go_to_recordings(page: &Page) {
    page.eval("document.querySelector('[data-testid=recordings]').click(); true")
        .await
        .expect("recordings link");
    page.wait_for(
        "!document.querySelector('[data-testid=recordings-view]').hidden && \
         document.querySelector('[data-testid=camera-wall]').hidden && \
         document.querySelector('[data-testid=recordings]').getAttribute('aria-current') === 'page'",
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| panic!("no recordings view: {e}; console {:?}", page.console()));
}

/// Chooses `camera` and the local time of `ms` (unix ms) and presses Play.
async fn choose_and_play(page: &Page, camera: &str, ms: u64) {
    let value = page
        .eval(&format!(
            "(() => {{ const d = new Date({ms}); const p = (n, w = 2) => String(n).padStart(w, '0'); \
               const v = `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}` + \
                 `T${{p(d.getHours())}}:${{p(d.getMinutes())}}:${{p(d.getSeconds())}}.${{p(d.getMilliseconds(), 3)}}`; \
               document.querySelector('[data-testid=recordings-camera]').value = '{camera}'; \
               const input = document.querySelector('[data-testid=recordings-time]'); \
               input.value = v; \
               window.__clicked = performance.now(); \
               document.querySelector('[data-testid=recordings-play]').click(); \
               return [v, input.value, document.querySelector('[data-testid=recordings-camera]').value, \
                 input.value !== '' && new Date(input.value).getTime() === {ms}]; }})()"
        ))
        .await
        .expect("choose");
    assert_eq!(
        value[3],
        json!(true),
        "the time input took the local time: {value}"
    );
    assert_eq!(value[2], json!(camera), "the camera is offered");
}

async fn message(page: &Page) -> (String, String) {
    let m = page
        .eval(
            "(() => { const m = document.querySelector('[data-testid=recordings-message]'); \
               return [m.textContent, m.dataset.kind || '']; })()",
        )
        .await
        .expect("message");
    (
        m[0].as_str().unwrap_or("").to_owned(),
        m[1].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_play_recordings_from_a_chosen_moment_on_and_through_the_next_segment() {
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "gate",
        source: "test://ball?width=320&height=240&gop=30",
        settings: "record = true\nrecord_segment_seconds = 2",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    // At least two finished segments: the first to start in, the next to go on to.
    let deadline = Instant::now() + Duration::from_secs(30);
    let segments = loop {
        let segments = list_segments(&gateway).await;
        if segments.iter().filter(|s| !s.recording).count() >= 2 {
            break segments;
        }
        assert!(
            Instant::now() < deadline,
            "two finished segments within 30 s: {segments:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let first = segments[0].clone();
    let second = segments[1].clone();
    assert!(!first.recording && !second.recording, "{segments:?}");
    assert!(first.duration_s >= 1.5, "{first:?}");
    // A moment well inside the first segment, so that the seek shows.
    let offset_s = (first.duration_s * 0.6).min(1.2);
    let chosen_ms = first.start_ms + (offset_s * 1000.0) as u64;
    println!("segments {segments:?}; chosen {chosen_ms} ({offset_s} s into the first)");

    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = open_recordings(&browser, &gateway, &gateway.security_token).await;

    // The time proposed is five minutes ago, in local time.
    let proposed = page
        .eval(
            "(Date.now() - new Date(document.querySelector('[data-testid=recordings-time]').value)) / 1000",
        )
        .await
        .expect("proposed time")
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        (240.0..=361.0).contains(&proposed),
        "the proposed time is 5 min ago: {proposed} s"
    );
    // The wall's live views end while the recordings are open.
    let sessions = &gateway.running.gateway().sessions;
    for _ in 0..150 {
        if sessions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sessions.is_empty(), "no live session behind the recordings");

    // A time with nothing recorded says so.
    choose_and_play(&page, "gate", first.start_ms - 3_600_000).await;
    page.wait_for(
        "document.querySelector('[data-testid=recordings-message]').dataset.kind === 'empty'",
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("no 'no recordings' message: {e}; {:?}", page.console()));
    let (text, _) = message(&page).await;
    assert!(text.starts_with("No recordings"), "{text}");

    // Count the frames the video presents, with their source and media time.
    page.eval(
        "(() => { const v = document.querySelector('[data-testid=recordings-video]'); \
           window.__frames = []; window.__maxHeld = 0; \
           const tick = (now, meta) => { \
             if (window.__firstFrameAt === undefined) window.__firstFrameAt = now; \
             if (window.__frames.length < 5000) window.__frames.push([v.currentSrc, meta.mediaTime, straja.recordings.playing]); \
             window.__maxHeld = Math.max(window.__maxHeld, straja.recordings.held()); \
             v.requestVideoFrameCallback(tick); }; \
           v.requestVideoFrameCallback(tick); return true; })()",
    )
    .await
    .expect("frame counter");
    choose_and_play(&page, "gate", chosen_ms).await;

    // It plays the first segment, then goes on into the next one by itself, frames coming all
    // the while.
    let playing_next = format!(
        "straja.recordings.playing === '{}' && \
         document.querySelector('[data-testid=recording-item][aria-current=true]')?.dataset.segment === '{}' && \
         window.__frames.length > 30 && \
         window.__frames.filter(f => f[0] === document.querySelector('[data-testid=recordings-video]').currentSrc).length >= 15",
        second.id, second.id
    );
    if let Err(e) = page.wait_for(&playing_next, WAIT).await {
        let _ = page
            .screenshot(&artifact_path("recordings-page-failure.png"))
            .await;
        let state = page
            .eval("[straja.recordings.playing, window.__frames.length, document.querySelector('[data-testid=recordings-video]').currentTime]")
            .await;
        panic!(
            "did not play on into the next segment: {e}; state {state:?}; message {:?}; console {:?}",
            message(&page).await,
            page.console()
        );
    }
    let first_frame_ms = page
        .eval("window.__firstFrameAt - window.__clicked")
        .await
        .expect("first frame time");
    println!("from Play to the first frame shown: {first_frame_ms} ms");
    let frames = page
        .eval("window.__frames")
        .await
        .expect("frames")
        .as_array()
        .cloned()
        .unwrap_or_default();
    let sources: Vec<&str> = frames.iter().filter_map(|f| f[0].as_str()).collect();
    let first_source = sources[0];
    assert!(first_source.starts_with("blob:"), "{first_source}");
    let times = |source: &str| -> Vec<f64> {
        frames
            .iter()
            .filter(|f| f[0].as_str() == Some(source))
            .filter_map(|f| f[1].as_f64())
            .collect()
    };
    let in_first = times(first_source);
    let next_source = *sources
        .iter()
        .find(|s| **s != first_source)
        .expect("a second source");
    let in_next = times(next_source);
    println!(
        "first segment's media times: {:?}",
        &in_first[..in_first.len().min(5)]
    );
    println!(
        "frames: {} in the first segment from {:.3} s, {} in the next from {:.3} s to {:.3} s",
        in_first.len(),
        in_first.iter().copied().find(|t| *t > 0.0).unwrap_or(0.0),
        in_next.len(),
        in_next[0],
        in_next[in_next.len() - 1]
    );
    // Playback starts at the chosen moment (Chromium may present the segment's very first
    // picture once, while it seeks, but plays nothing before the moment).
    let before: Vec<f64> = in_first
        .iter()
        .copied()
        .filter(|t| *t < offset_s - 0.15)
        .collect();
    assert!(
        before.is_empty() || before == [0.0],
        "nothing before the chosen moment ({offset_s} s into the segment) plays: {in_first:?}"
    );
    let started_at = in_first
        .iter()
        .copied()
        .find(|t| *t >= offset_s - 0.15)
        .unwrap_or(-1.0);
    assert!(
        started_at <= offset_s + 0.5,
        "playback starts at the chosen moment ({offset_s} s into the segment): {in_first:?}"
    );
    assert!(
        in_next[0] < 0.5,
        "the next segment plays from its start: {}",
        in_next[0]
    );
    assert!(
        in_next.windows(2).all(|w| w[1] >= w[0]) && in_next[in_next.len() - 1] - in_next[0] > 0.3,
        "time advances in the next segment: {in_next:?}"
    );
    let held = page.eval("window.__maxHeld").await.expect("held");
    assert!(
        held.as_u64().is_some_and(|n| (1..=2).contains(&n)),
        "at most two segments in memory: {held}"
    );
    let revoked = page
        .eval(&format!(
            "new Promise(resolve => {{ const v = document.createElement('video'); v.muted = true; \
               v.onloadedmetadata = () => resolve('still there'); v.onerror = () => resolve('revoked'); \
               setTimeout(() => resolve('no answer'), 5000); v.src = '{first_source}'; }})"
        ))
        .await
        .expect("fetch old URL");
    assert_eq!(
        revoked,
        json!("revoked"),
        "the first segment's object URL is revoked"
    );

    // The list shows the segments around the moment: start, duration, and the one being written.
    let items = page
        .eval(
            "[...document.querySelectorAll('[data-testid=recording-item]')] \
             .map(i => [i.dataset.segment, i.textContent, \
               i.querySelector('.recording-duration').textContent])",
        )
        .await
        .expect("items");
    let items = items.as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = items.iter().filter_map(|i| i[0].as_str()).collect();
    assert!(
        ids.contains(&first.id.as_str()) && ids.contains(&second.id.as_str()),
        "{ids:?}"
    );
    let first_duration = items
        .iter()
        .find(|i| i[0] == json!(first.id))
        .and_then(|i| i[2].as_str())
        .unwrap_or("");
    let shown: f64 = first_duration
        .strip_suffix(" s")
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1.0);
    assert!(
        (shown - first.duration_s).abs() <= 0.051,
        "the first segment's duration ({} s) is shown: {first_duration:?}",
        first.duration_s
    );
    assert!(
        items
            .iter()
            .filter_map(|i| i[1].as_str())
            .any(|t| t.contains("recording now")),
        "the segment being written is marked: {items:?}"
    );
    // And on again, into the segment that was being written when the list was made.
    let after_second = format!(
        "(() => {{ const p = straja.recordings.playing; \
           const src = document.querySelector('[data-testid=recordings-video]').currentSrc; \
           return p !== null && p !== '{}' && p !== '{}' && \
             window.__frames.filter(f => f[0] === src).length >= 15; }})()",
        first.id, second.id
    );
    if let Err(e) = page.wait_for(&after_second, WAIT).await {
        panic!(
            "did not go on after the second segment: {e}; {:?}; {:?}",
            message(&page).await,
            page.console()
        );
    }
    page.wait_for(
        "document.querySelector('[data-testid=recordings-clock]').textContent \
           .startsWith('Camera gate · ')",
        Duration::from_secs(5),
    )
    .await
    .expect("the clock under the video says which camera and when");
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": false }),
        Duration::from_secs(5),
    )
    .await
    .expect("window size");
    let shot = artifact_path("recordings-page.png");
    page.screenshot(&shot).await.expect("screenshot");
    assert!(std::fs::metadata(&shot).expect("screenshot").len() > 1000);

    let violations = page.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:?}");

    // At the recording's edge: a moment in the segment being written. The page plays what is
    // written so far, then fetches that segment again (it has grown) and goes on from where it was.
    // Caught just after its first fragment (seen empty, then with one), so that it has about a
    // second to go.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut empty = None;
    let live = loop {
        let segments = list_segments(&gateway).await;
        let writing = segments.iter().find(|s| s.recording);
        if let Some(s) = writing {
            if s.duration_s < 0.5 {
                empty = Some(s.id.clone());
            } else if empty.as_deref() == Some(s.id.as_str()) && s.duration_s < 1.5 {
                break s.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "a segment being written with one fragment in it: {segments:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    page.eval("window.__frames = []; true")
        .await
        .expect("reset frames");
    choose_and_play(&page, "gate", live.start_ms + 300).await;
    let refetched = format!(
        "(() => {{ const f = window.__frames.filter(f => f[2] === '{}'); \
           const sources = [...new Set(f.map(f => f[0]))]; \
           return sources.length >= 2 && f.filter(f => f[0] === sources[1]).length >= 10; }})()",
        live.id
    );
    if let Err(e) = page.wait_for(&refetched, WAIT).await {
        panic!(
            "the segment being written was not followed: {e}; {:?}; {:?}",
            message(&page).await,
            page.console()
        );
    }
    let edge = page
        .eval(&format!(
            "(() => {{ const f = window.__frames.filter(f => f[2] === '{}'); \
               const sources = [...new Set(f.map(f => f[0]))]; \
               const times = (s) => f.filter(f => f[0] === s && f[1] > 0).map(f => f[1]); \
               return [times(sources[0]), times(sources[1])]; }})()",
            live.id
        ))
        .await
        .expect("edge frames");
    let before: Vec<f64> = edge[0]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    let after: Vec<f64> = edge[1]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    println!(
        "at the edge: {} frames of the segment as first fetched ({:?} s), {} after fetching it again (from {:?} s)",
        before.len(),
        before.first().zip(before.last()),
        after.len(),
        after.first()
    );
    let (Some(last_before), Some(first_after)) = (before.last(), after.first()) else {
        panic!("frames before and after the second fetch: {edge}");
    };
    assert!(
        (last_before - 0.1..=last_before + 0.5).contains(first_after),
        "playback goes on where it was ({last_before} s), not from the start: {first_after} s"
    );

    // Back to the wall: playback stops and the live view plays again.
    page.eval("document.querySelector('[data-testid=live]').click(); true")
        .await
        .expect("live link");
    page.wait_for(
        "straja.framesDecoded('gate').then(n => n > 10 && straja.recordings.held() === 0 && \
         document.querySelector('[data-testid=recordings-video]').paused)",
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("the wall did not play again: {e}; {:?}", page.console()));
    drop(page);

    // Staff whose token does not name the camera are told they are not allowed.
    let yard_only = gateway.token("yard-staff", Role::Security, &["yard"]);
    let page = open_recordings(&browser, &gateway, &yard_only).await;
    page.eval(&format!(
        "straja.recordings.playAt('gate', new Date({chosen_ms})).then(() => true)"
    ))
    .await
    .expect("playAt");
    let (text, kind) = message(&page).await;
    assert_eq!(kind, "denied", "{text}");
    assert!(text.starts_with("Not allowed"), "{text}");
    drop(page);

    // Signed in by password (the cookie, no token): the page fetches footage all the same.
    const PASSWORD: &str = "a long recordings passphrase";
    gateway.add_user("vera", "security", &["gate"], PASSWORD);
    let page = browser.open(&gateway.url("/")).await.expect("page opens");
    in_time_zone(&page).await;
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
    page.wait_for("straja.identity !== null && straja.tiles.size === 1", WAIT)
        .await
        .unwrap_or_else(|e| panic!("password sign-in: {e}; {:?}", page.console()));
    go_to_recordings(&page).await;
    choose_and_play(&page, "gate", chosen_ms).await;
    if let Err(e) = page
        .wait_for(
            "straja.recordings.playing !== null && document.querySelector( \
               '[data-testid=recordings-video]').getVideoPlaybackQuality().totalVideoFrames > 10",
            WAIT,
        )
        .await
    {
        panic!(
            "cookie page did not play: {e}; {:?}; {:?}",
            message(&page).await,
            page.console()
        );
    }
    drop(page);

    // Ops see which segments exist, and are told that footage is for security staff.
    let ops = gateway.token("ops-person", Role::Ops, &[]);
    let page = open_recordings(&browser, &gateway, &ops).await;
    choose_and_play(&page, "gate", chosen_ms).await;
    page.wait_for(
        &format!(
            "document.querySelector('[data-testid=recording-item][data-segment=\"{}\"]') !== null && \
             document.querySelector('[data-testid=recordings-message]').dataset.kind === 'denied'",
            first.id
        ),
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("ops page: {e}; {:?}", page.console()));
    let (text, _) = message(&page).await;
    assert!(text.contains("for security staff"), "{text}");
    let source = page
        .eval("document.querySelector('[data-testid=recordings-video]').currentSrc")
        .await
        .expect("src");
    assert_eq!(source, json!(""), "no footage on an ops page");
    let _ = page
        .screenshot(&artifact_path("recordings-page-ops.png"))
        .await;
    drop(page);

    drop(browser);
    gateway.shutdown().await;
}
