//! A real browser signs in on the gateway's page with a name and password, sees only the
//! cameras it may, plays one, signs out (which ends the sign-in and the view on the gateway), and
//! is signed out automatically after the idle timeout, the screen no longer showing a camera.
//! The sign-in cookie is invisible to the page's script (HttpOnly).

mod support;

use std::time::Duration;

use support::chromium::{Chromium, Page};
use support::gateway_under_test::{GATE_AND_YARD, GatewayUnderTest};

const PASSWORD: &str = "a long browser passphrase";

async fn sign_in(page: &Page, user: &str, password: &str) {
    page.wait_for(
        "!document.getElementById('signin').hidden",
        Duration::from_secs(10),
    )
    .await
    .expect("the page asks to sign in");
    page.eval(&format!(
        "document.getElementById('user').value = {user:?}; \
         document.getElementById('password').value = {password:?}; \
         document.getElementById('signin').requestSubmit(); true"
    ))
    .await
    .expect("submit");
}

async fn wait_for_signed_out(gateway: &GatewayUnderTest) {
    let login = &gateway.running.gateway().login;
    for _ in 0..100 {
        if login.signed_in() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sign-in did not end on the gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_plays_and_signs_out() {
    let gateway = GatewayUnderTest::start(&GATE_AND_YARD).await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    gateway.add_user("ana", "security", &["gate"], PASSWORD);
    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = browser.open(&gateway.url("/")).await.expect("page opens");

    // A wrong password is refused on the page.
    sign_in(&page, "ana", "not her password at all").await;
    page.wait_for(
        "document.querySelector('[data-testid=signin-reason]').textContent.includes('wrong')",
        Duration::from_secs(10),
    )
    .await
    .expect("the page says the password is wrong");

    sign_in(&page, "ana", PASSWORD).await;
    page.wait_for(
        "document.querySelectorAll('[data-camera]').length === 1",
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|e| panic!("no camera list: {e}; console {:?}", page.console()));
    let listed = page
        .eval("document.querySelector('[data-camera]').dataset.camera")
        .await
        .unwrap();
    assert_eq!(listed, "gate", "only her camera");
    let identity = page
        .eval("document.querySelector('[data-testid=identity]').textContent")
        .await
        .unwrap();
    assert!(identity.to_string().contains("ana"), "{identity}");
    let visible_cookies = page.eval("document.cookie").await.unwrap();
    assert_eq!(visible_cookies, "", "the sign-in cookie is HttpOnly");
    assert_eq!(gateway.running.gateway().login.signed_in(), 1);

    // Playing is a cookie-authenticated write: the page sends its CSRF token.
    page.eval("straja.play('gate').then(() => true)")
        .await
        .expect("play");
    page.wait_for(
        "straja.framesDecoded().then(n => n > 0)",
        Duration::from_secs(15),
    )
    .await
    .unwrap_or_else(|e| panic!("no frame: {e}; console {:?}", page.console()));

    // Signing out ends the view and the sign-in on the gateway.
    page.eval("straja.signOut().then(() => true)")
        .await
        .expect("sign out");
    wait_for_signed_out(&gateway).await;
    let sessions = &gateway.running.gateway().sessions;
    for _ in 0..100 {
        if sessions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sessions.is_empty(), "signing out ended the view");
    let form_shown = page
        .eval(
            "!document.getElementById('signin').hidden && document.getElementById('viewer').hidden",
        )
        .await
        .unwrap();
    assert_eq!(form_shown, true);

    let violations = page.csp_violations();
    assert!(violations.is_empty(), "CSP violations: {violations:?}");
    drop(page);
    drop(browser);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_is_signed_out_after_the_idle_timeout() {
    let gateway =
        GatewayUnderTest::start_with(&GATE_AND_YARD, "[auth]\nidle_timeout_seconds = 2\n").await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    gateway.add_user("olga", "ops", &[], PASSWORD);
    let browser = Chromium::launch(&[]).await.expect("Chromium starts");
    let page = browser.open(&gateway.url("/")).await.expect("page opens");
    sign_in(&page, "olga", PASSWORD).await;
    page.wait_for(
        "document.querySelectorAll('[data-camera]').length === 2",
        Duration::from_secs(10),
    )
    .await
    .expect("ops sees both cameras");
    page.wait_for(
        "document.querySelector('[data-testid=signin-reason]').textContent.includes('inactivity') \
         && document.getElementById('viewer').hidden",
        Duration::from_secs(15),
    )
    .await
    .unwrap_or_else(|e| panic!("not signed out: {e}; console {:?}", page.console()));
    wait_for_signed_out(&gateway).await;
    drop(page);
    drop(browser);
    gateway.shutdown().await;
}
