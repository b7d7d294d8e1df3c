//! Self-test of the headless Chromium harness (`tests/support/chromium.rs`): it evaluates
//! JavaScript (awaiting promises), reports exceptions as errors, and leaves no process behind.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::chromium::{BrowserError, Chromium, processes_using};

const PAGE: &str = "data:text/html,<title>harness</title><p id=p>hello</p>\
    <script>console.log('page ready', 42)</script>";

#[tokio::test]
async fn chromium_evaluates_javascript_reports_exceptions_and_dies_with_its_handle() {
    let started = Instant::now();
    let browser = Chromium::launch(&[]).await.expect("launch chromium");
    let launched = started.elapsed();
    let page = browser.open(PAGE).await.expect("open a data: page");
    let title = page.eval("document.title").await.expect("eval");
    eprintln!(
        "{}: launch {launched:?}, launch + open + first eval {:?}",
        browser.version(),
        started.elapsed()
    );
    assert_eq!(title, json!("harness"));

    // Awaited promises, structured values, undefined.
    let value = page
        .eval("new Promise(r => setTimeout(() => r({ n: 6 * 7, s: 'ok' }), 50))")
        .await
        .expect("awaited promise");
    assert_eq!(value, json!({ "n": 42, "s": "ok" }));
    assert_eq!(page.eval("undefined").await.unwrap(), json!(null));
    assert_eq!(
        page.eval("document.getElementById('p').textContent")
            .await
            .unwrap(),
        json!("hello")
    );

    // Thrown errors and rejected promises are errors carrying the message.
    match page.eval("throw new Error('boom ' + 1)").await {
        Err(BrowserError::Js { message }) => assert!(message.contains("boom 1"), "{message}"),
        other => panic!("expected a JavaScript exception, got {other:?}"),
    }
    match page.eval("Promise.reject(new TypeError('nope'))").await {
        Err(BrowserError::Js { message }) => {
            assert!(message.contains("TypeError: nope"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    // Polling, and its timeout with the last result.
    page.eval("setTimeout(() => { window.flag = true }, 200)")
        .await
        .unwrap();
    page.wait_for("window.flag === true", Duration::from_secs(2))
        .await
        .expect("flag set within 2 s");
    match page
        .wait_for("window.never === true", Duration::from_millis(200))
        .await
    {
        Err(BrowserError::WaitTimeout { last, .. }) => assert_eq!(last, "false"),
        other => panic!("expected a wait timeout, got {other:?}"),
    }

    // Console lines are recorded; screenshots are PNG files.
    page.eval("console.warn('careful', {a: 1})").await.unwrap();
    let console = page.console();
    assert!(
        console.iter().any(|l| l == "console.log: page ready 42"),
        "{console:?}"
    );
    assert!(
        console
            .iter()
            .any(|l| l.starts_with("console.warning: careful")),
        "{console:?}"
    );
    let shot = tempfile::NamedTempFile::new().unwrap();
    page.screenshot(shot.path()).await.expect("screenshot");
    let png = std::fs::read(shot.path()).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");

    // Dropping the browser kills it and every helper process, and removes its profile.
    let pid = browser.pid();
    let profile = browser.profile_dir().to_owned();
    assert!(!processes_using(&profile).is_empty());
    drop(browser);
    assert!(
        processes_using(&profile).is_empty(),
        "chromium processes left: {:?}",
        processes_using(&profile)
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!profile.exists(), "profile {} left", profile.display());
    match page.eval("1").await {
        Err(BrowserError::Disconnected { .. }) => {}
        other => panic!("expected a lost connection, got {other:?}"),
    }
    eprintln!("whole self-test: {:?}", started.elapsed());
}
