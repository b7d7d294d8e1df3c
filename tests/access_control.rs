//! Every route × every caller: no token, a bad token, each role (security staff with and
//! without the camera in their token), and people signed in on the login page (by cookie, with
//! the CSRF token their writes need) get exactly the status the access policy promises — 401,
//! 403 or success. The list of routes comes from the router itself, and a unit test in the
//! gateway fails if a route is added without a rule, so this matrix cannot silently miss one.

mod support;

use std::time::Duration;

use straja_gateway::auth::Role;
use support::gateway_under_test::{GATE_AND_YARD, GatewayUnderTest, TestCamera};

#[derive(Clone, Copy, Debug)]
enum Expect {
    Ok,
    Unauthorized,
    Forbidden,
}

/// One cell of the matrix.
struct Case {
    method: &'static str,
    path: &'static str,
    caller: &'static str,
    expect: Expect,
}

const CALLERS: [&str; 10] = [
    "anonymous",
    "forged",
    "ops",
    "security-gate",
    "security-yard",
    "clinician",
    "patient",
    "signed-in-ops",
    "signed-in-security-gate",
    "signed-in-clinician",
];

/// A signed-in caller is held to the same rules as a token of the same role.
fn role_of(caller: &str) -> &str {
    caller.strip_prefix("signed-in-").unwrap_or(caller)
}

/// What each caller gets on each route (public routes: everyone gets through).
fn expected(method: &str, path: &str, caller: &str) -> Expect {
    use Expect::*;
    let caller = role_of(caller);
    match (method, path) {
        (
            "GET",
            "/" | "/app.css" | "/app.js" | "/recordings.js" | "/healthz" | "/consultation"
            | "/join" | "/consultation.js" | "/consultation.css",
        ) => Ok,
        ("POST", "/api/v1/login" | "/api/v1/logout" | "/api/v1/consultations/join") => Ok,
        ("OPTIONS", _) => Ok,
        _ if caller == "anonymous" || caller == "forged" => Unauthorized,
        ("GET", "/api/v1/session") => Ok,
        ("GET", "/readyz") => match caller {
            "ops" => Ok,
            _ => Forbidden,
        },
        ("GET", "/api/v1/cameras") => match caller {
            "ops" | "security-gate" | "security-yard" => Ok,
            _ => Forbidden,
        },
        ("POST", "/api/v1/cameras/{id}/whep") => match caller {
            "security-gate" => Ok,
            _ => Forbidden,
        },
        // A snapshot is footage too: security staff with the camera, and nobody else.
        ("GET", "/api/v1/cameras/{id}/snapshot.jpg") => match caller {
            "security-gate" => Ok,
            _ => Forbidden,
        },
        ("DELETE", "/api/v1/sessions/{sid}") => match caller {
            "ops" | "security-gate" | "security-yard" => Ok,
            _ => Forbidden,
        },
        // Ops see which recordings exist; only staff with the camera see footage.
        ("GET", "/api/v1/cameras/{id}/recordings") => match caller {
            "ops" | "security-gate" => Ok,
            _ => Forbidden,
        },
        ("GET", "/api/v1/recordings/{segment}") => match caller {
            "security-gate" => Ok,
            _ => Forbidden,
        },
        // Clinicians start and end consultations (the handler then checks it is theirs).
        ("POST", "/api/v1/consultations") | ("DELETE", "/api/v1/consultations/{id}") => {
            match caller {
                "clinician" => Ok,
                _ => Forbidden,
            }
        }
        // Its clinician and its invitees talk on the signalling socket.
        ("GET", "/api/v1/consultations/{id}/signal") => match caller {
            "clinician" | "patient" => Ok,
            _ => Forbidden,
        },
        _ => panic!("no expectation for {method} {path}: add it to this test"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_policy_says() {
    let gateway = GatewayUnderTest::start_with_http(
        &GATE_AND_YARD,
        "cors_origins = [\"https://portal.example\"]",
        "",
    )
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    const PASSWORD: &str = "matrix password 1234";
    gateway.add_user("olga", "ops", &[], PASSWORD);
    gateway.add_user("sam", "security", &["gate"], PASSWORD);
    gateway.add_user("claire", "clinician", &[], PASSWORD);
    let mut signed_in = std::collections::HashMap::new();
    for (caller, user) in [
        ("signed-in-ops", "olga"),
        ("signed-in-security-gate", "sam"),
        ("signed-in-clinician", "claire"),
    ] {
        let sign_in = gateway.sign_in(user, PASSWORD).await;
        signed_in.insert(caller, gateway.signed_in_client(&sign_in, true));
    }
    let forged = {
        // Right shape, wrong key.
        let other = straja_gateway::auth::TokenAuthority::from_key(&[9u8; 32]).unwrap();
        other
            .issue("mallory", Role::Ops, &[], Duration::from_secs(60))
            .unwrap()
    };
    let token_for = |caller: &str| -> Option<String> {
        match caller {
            "anonymous" => None,
            "forged" => Some(forged.clone()),
            "ops" => Some(gateway.token("o", Role::Ops, &[])),
            "security-gate" => Some(gateway.token("s1", Role::Security, &["gate"])),
            "security-yard" => Some(gateway.token("s2", Role::Security, &["yard"])),
            "clinician" => Some(gateway.token("c", Role::Clinician, &[])),
            "patient" => Some(gateway.token("p", Role::Patient, &[])),
            _ => unreachable!(),
        }
    };

    let mut cases = Vec::new();
    for (method, path, _) in straja_gateway::http::routes() {
        for caller in CALLERS {
            cases.push(Case {
                method,
                path,
                caller,
                expect: expected(method, path, caller),
            });
        }
    }
    let mut failures = Vec::new();
    for case in &cases {
        // Logout would end the caller's sign-in for the rest of the matrix: it is checked last.
        if case.path == "/api/v1/logout" {
            continue;
        }
        let client = match signed_in.get(case.caller) {
            Some(client) => client.clone(),
            None => gateway.client_with(token_for(case.caller).as_deref()),
        };
        let concrete = case
            .path
            .replace("{id}", "gate")
            .replace("{sid}", "00000000000000000000000000000000")
            .replace("{segment}", "gate.1000");
        let request = match case.method {
            "GET" => client.get(gateway.url(&concrete)),
            "POST" => client
                .post(gateway.url(&concrete))
                .header("Content-Type", "application/sdp")
                .body("v=0\r\n"),
            "DELETE" => client.delete(gateway.url(&concrete)),
            // A CORS preflight, from the configured origin.
            "OPTIONS" => client
                .request(reqwest::Method::OPTIONS, gateway.url(&concrete))
                .header("origin", "https://portal.example")
                .header("access-control-request-method", "POST"),
            other => panic!("method {other} not covered by this test"),
        };
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let www_authenticate = response.headers().contains_key("www-authenticate");
        let ok = match case.expect {
            Expect::Unauthorized => status == 401 && www_authenticate,
            Expect::Forbidden => status == 403,
            // Past authorization the handler decides: a stub offer is 400, an unknown session 404.
            Expect::Ok => status != 401 && status != 403 && status < 500,
        };
        if !ok {
            failures.push(format!(
                "{} {} as {}: got {status}, expected {:?}",
                case.method, case.path, case.caller, case.expect
            ));
        }
    }
    for (caller, client) in &signed_in {
        let response = client
            .post(gateway.url("/api/v1/logout"))
            .send()
            .await
            .expect("logout");
        if response.status() != 204 {
            failures.push(format!(
                "POST /api/v1/logout as {caller}: got {}",
                response.status()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{} route × caller cases checked", cases.len());

    // Security staff see only their cameras in the list.
    let staff = gateway.client_with(Some(&gateway.token("s1", Role::Security, &["gate"])));
    let (_, ids) = gateway.cameras_seen_by(&staff).await;
    assert_eq!(ids, ["gate"]);

    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_or_ops_can_end_a_session() {
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "gate",
        source: "test://ball?width=160&height=120",
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let viewer =
        support::whep_viewer::WhepViewer::connect(&gateway.client, &gateway.base_url, "gate").await;
    let colleague = gateway.client_with(Some(&gateway.token("other", Role::Security, &["gate"])));
    let response = colleague.delete(&viewer.session_url).send().await.unwrap();
    assert_eq!(
        response.status(),
        404,
        "someone else's session is not theirs to end"
    );
    let response = gateway
        .ops_client
        .delete(&viewer.session_url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "ops may end any session");
    viewer.close().await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_provider_tokens_grant_what_their_claims_say() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let public = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .unwrap()
        .public_key()
        .as_ref()
        .to_vec();
    let jwks_dir = tempfile::tempdir().unwrap();
    let jwks = jwks_dir.path().join("idp.jwks");
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "city-1",
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]), "y": URL_SAFE_NO_PAD.encode(&public[33..65])}]})
        .to_string(),
    )
    .unwrap();
    let gateway = GatewayUnderTest::start_with(
        &GATE_AND_YARD,
        &format!(
            "[auth]\njwks_file = \"{}\"\nissuer = \"https://idp.city.example\"\naudience = \"straja\"\n",
            jwks.display()
        ),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |issuer: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("city-1".into());
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sub": "guard.ionescu", "role": "security", "cameras": ["yard"],
                "iss": issuer, "aud": "straja", "iat": now, "nbf": now, "exp": now + 900, "jti": "c1"}),
            &jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        )
        .unwrap()
    };
    let staff = gateway.client_with(Some(&sign("https://idp.city.example")));
    let (_, ids) = gateway.cameras_seen_by(&staff).await;
    assert_eq!(ids, ["yard"], "the provider's token grants its own cameras");
    let impostor = gateway.client_with(Some(&sign("https://idp.elsewhere.example")));
    let response = impostor
        .get(gateway.url("/api/v1/cameras"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    gateway.shutdown().await;
}
