//! People sign in with a name and password: users managed with `straja user`, a login API that
//! sets an HttpOnly, Secure, SameSite=Strict `__Host-` cookie, CSRF protection for the writes such a
//! cookie authenticates, logout, automatic logoff after inactivity, sign-ins that end when the
//! password changes or the user is removed, and failed logins throttled per source. Every login,
//! failure and logout is in the audit log.

mod support;

use std::time::Duration;

use straja_gateway::audit::{AuditRecord, verify};
use support::gateway_under_test::{GATE_AND_YARD, GatewayUnderTest};

const PASSWORD: &str = "correct horse battery staple";

fn audit_records(gateway: &GatewayUnderTest) -> Vec<AuditRecord> {
    let path = straja_gateway::audit::AuditLog::path_in(gateway.state_dir());
    std::fs::read_to_string(path)
        .expect("audit log")
        .lines()
        .map(|line| serde_json::from_str(line).expect("audit record"))
        .collect()
}

fn audit_lines_with(gateway: &GatewayUnderTest, action: &str, outcome: &str) -> Vec<AuditRecord> {
    audit_records(gateway)
        .into_iter()
        .filter(|r| {
            let json = serde_json::to_value(r).unwrap();
            json["action"] == action && json["outcome"] == outcome
        })
        .collect()
}

async fn cameras_status(gateway: &GatewayUnderTest, client: &reqwest::Client) -> u16 {
    client
        .get(gateway.url("/api/v1/cameras"))
        .send()
        .await
        .expect("cameras request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_sign_in_gets_a_hardened_cookie_and_its_writes_need_the_csrf_token() {
    let gateway = GatewayUnderTest::start(&GATE_AND_YARD).await;

    // Users are managed with the CLI; weak passwords and unknown cameras are refused.
    let weak = gateway.user_command(
        &["add", "bob", "--role", "ops", "--password-stdin"],
        "short\n",
    );
    assert_eq!(weak.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 12"));
    let unknown_camera = gateway.user_command(
        &[
            "add",
            "bob",
            "--role",
            "security",
            "--camera",
            "nowhere",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(unknown_camera.status.code(), Some(2));
    gateway.add_user("ana", "security", &["gate"], PASSWORD);
    let list = gateway.user_command(&["list"], "");
    assert!(String::from_utf8_lossy(&list.stdout).contains("ana\tsecurity (gate)"));
    let users_file = gateway.state_dir().join("auth").join("users.json");
    let stored = std::fs::read_to_string(&users_file).unwrap();
    assert!(stored.contains("$pbkdf2-sha256$i=600000$") && !stored.contains(PASSWORD));

    // Wrong password and unknown user: the same 401, no cookie.
    for (user, password) in [("ana", "wrong password, sorry"), ("nobody", PASSWORD)] {
        let response = gateway.login_response(user, password).await;
        assert_eq!(response.status(), 401);
        assert!(response.headers().get("set-cookie").is_none());
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "wrong user name or password");
    }
    // Malformed requests: 4xx with a reason.
    let login = gateway.url("/api/v1/login");
    let plain = gateway
        .anonymous
        .post(&login)
        .body("ana")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    let malformed = gateway
        .anonymous
        .post(&login)
        .header("content-type", "application/json")
        .body("{\"user\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let huge = gateway
        .anonymous
        .post(&login)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"user\": \"ana\", \"password\": \"{}\"}}",
            "x".repeat(8000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);

    // The right password: a cookie with every protection, and the page's CSRF token.
    let response = gateway.login_response("ana", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.starts_with("__Host-straja_session="),
        "{set_cookie}"
    );
    for attribute in ["; HttpOnly", "; Secure", "; SameSite=Strict", "; Path=/"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing: {set_cookie}"
        );
    }
    assert!(!set_cookie.contains("Domain"), "{set_cookie}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["role"], "security");
    let sign_in = support::gateway_under_test::SignIn {
        cookie: set_cookie.split(';').next().unwrap().to_owned(),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };

    // Reads need only the cookie; the user sees their cameras only.
    let reader = gateway.signed_in_client(&sign_in, false);
    let (_, ids) = gateway.cameras_seen_by(&reader).await;
    assert_eq!(ids, ["gate"]);
    let me: serde_json::Value = reader
        .get(gateway.url("/api/v1/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "ana");
    assert_eq!(me["signed_in"], true);
    assert_eq!(me["csrf_token"], sign_in.csrf.as_str());

    // Writes need the CSRF token, and no foreign Origin.
    let offer = |client: reqwest::Client, camera: &str, origin: Option<&str>| {
        let mut request = client
            .post(gateway.url(&format!("/api/v1/cameras/{camera}/whep")))
            .header("content-type", "application/sdp")
            .body("v=0\r\n");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        offer(reader.clone(), "gate", None).await,
        403,
        "no CSRF token"
    );
    let writer = gateway.signed_in_client(&sign_in, true);
    assert_eq!(
        offer(writer.clone(), "gate", Some("https://evil.example")).await,
        403,
        "foreign origin"
    );
    let wrong_token = support::gateway_under_test::SignIn {
        csrf: "0".repeat(64),
        ..sign_in.clone()
    };
    assert_eq!(
        offer(gateway.signed_in_client(&wrong_token, true), "gate", None).await,
        403,
        "wrong CSRF token"
    );
    // Past authorization: the stub offer is the handler's 400.
    assert_eq!(offer(writer.clone(), "gate", None).await, 400);
    let own_origin = gateway.base_url.clone();
    assert_eq!(offer(writer.clone(), "gate", Some(&own_origin)).await, 400);
    assert_eq!(
        offer(writer.clone(), "yard", None).await,
        403,
        "not her camera"
    );

    // Logout is a write too; afterwards the cookie is worthless and the browser is told to drop it.
    let logout = gateway.url("/api/v1/logout");
    assert_eq!(reader.post(&logout).send().await.unwrap().status(), 403);
    let response = writer.post(&logout).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(cameras_status(&gateway, &reader).await, 401);

    // A password change or a removal ends the person's sign-ins at once.
    let again = gateway.sign_in("ana", PASSWORD).await;
    let client = gateway.signed_in_client(&again, false);
    assert_eq!(cameras_status(&gateway, &client).await, 200);
    let passwd = gateway.user_command(
        &["passwd", "ana", "--password-stdin"],
        "an entirely new passphrase\n",
    );
    assert!(passwd.status.success(), "{passwd:?}");
    assert_eq!(cameras_status(&gateway, &client).await, 401);
    assert_eq!(gateway.login_response("ana", PASSWORD).await.status(), 401);
    let third = gateway.sign_in("ana", "an entirely new passphrase").await;
    let client = gateway.signed_in_client(&third, false);
    let removed = gateway.user_command(&["remove", "ana"], "");
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(cameras_status(&gateway, &client).await, 401);

    // All of it is on record, with the source address, and the chain holds.
    let denied = audit_lines_with(&gateway, "login", "denied");
    assert!(denied.len() >= 3, "{denied:?}");
    assert!(denied.iter().all(|r| r.source.is_some()));
    assert!(
        denied
            .iter()
            .any(|r| r.reason.as_deref() == Some("unknown user"))
    );
    assert_eq!(audit_lines_with(&gateway, "login", "allowed").len(), 3);
    assert_eq!(audit_lines_with(&gateway, "logout", "ended").len(), 1);
    for action in ["user.add", "user.passwd", "user.remove"] {
        assert_eq!(
            audit_lines_with(&gateway, action, "allowed").len(),
            1,
            "{action}"
        );
    }
    verify(&straja_gateway::audit::AuditLog::path_in(
        gateway.state_dir(),
    ))
    .expect("audit chain intact");

    let metrics = gateway.metrics_text().await;
    assert!(
        metrics.contains("straja_logins_total{outcome=\"success\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("straja_auth_failures_total{reason=\"csrf\"} 4"),
        "{metrics}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_source() {
    let gateway =
        GatewayUnderTest::start_with(&GATE_AND_YARD, "[limits]\nlogin_attempts_per_minute = 3\n")
            .await;
    gateway.add_user("olga", "ops", &[], PASSWORD);
    for _ in 0..3 {
        let response = gateway.login_response("olga", "not the password").await;
        assert_eq!(response.status(), 401);
    }
    // Even the right password waits now: the guesser cannot tell.
    let response = gateway.login_response("olga", PASSWORD).await;
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let throttled = audit_lines_with(&gateway, "login", "denied");
    assert_eq!(throttled.len(), 4);
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics.contains("straja_logins_total{outcome=\"throttled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("straja_logins_total{outcome=\"failure\"} 3"),
        "{metrics}"
    );
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_ends_after_the_idle_timeout() {
    let gateway =
        GatewayUnderTest::start_with(&GATE_AND_YARD, "[auth]\nidle_timeout_seconds = 2\n").await;
    gateway.add_user("ana", "security", &["gate"], PASSWORD);
    let sign_in = gateway.sign_in("ana", PASSWORD).await;
    let client = gateway.signed_in_client(&sign_in, false);
    // Activity keeps it alive...
    for _ in 0..3 {
        assert_eq!(cameras_status(&gateway, &client).await, 200);
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    // ...and without it, it ends.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = client
        .get(gateway.url("/api/v1/cameras"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("inactivity"),
        "{body}"
    );
    gateway.shutdown().await;
}
