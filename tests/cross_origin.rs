//! CORS only where configured: a page on a configured origin may use WHEP with a bearer token
//! (preflight, offer, the `Location` it needs, DELETE); any other origin, any other route, and
//! a gateway with no origins configured send no CORS permission at all. Credentials (the
//! sign-in cookie) are never shared across origins.

mod support;

use support::gateway_under_test::{GATE_AND_YARD, GatewayUnderTest};

const PORTAL: &str = "https://portal.example";

async fn preflight(gateway: &GatewayUnderTest, path: &str, origin: &str) -> reqwest::Response {
    gateway
        .anonymous
        .request(reqwest::Method::OPTIONS, gateway.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight")
}

/// A stub WHEP offer (the handler's 400, past authorization) as a page on `origin` sends it.
async fn stub_offer_from(gateway: &GatewayUnderTest, origin: &str) -> reqwest::Response {
    gateway
        .client
        .post(gateway.url("/api/v1/cameras/gate/whep"))
        .header("origin", origin)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap()
}

fn allow_origin(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().expect("ASCII"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_origin_may_use_whep_and_nothing_else() {
    let gateway = GatewayUnderTest::start_with_http(
        &GATE_AND_YARD,
        &format!("cors_origins = [\"{PORTAL}\"]"),
        "",
    )
    .await;
    gateway
        .wait_until_ready(std::time::Duration::from_secs(15))
        .await;

    let ok = preflight(&gateway, "/api/v1/cameras/gate/whep", PORTAL).await;
    assert_eq!(ok.status(), 204);
    assert_eq!(allow_origin(&ok), Some(PORTAL));
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(
        ok.headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "cookies are never shared across origins"
    );

    let refused = preflight(
        &gateway,
        "/api/v1/cameras/gate/whep",
        "https://evil.example",
    )
    .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(allow_origin(&refused), None);

    // The offer and the DELETE, as a page on the portal sends them (with a bearer token): their
    // answers, errors included, are readable there, with the Location the page needs.
    let offer = stub_offer_from(&gateway, PORTAL).await;
    assert_eq!(offer.status(), 400, "a stub offer, past authorization");
    assert_eq!(allow_origin(&offer), Some(PORTAL));
    let exposed = offer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("location"),
        "the page needs Location: {exposed}"
    );
    let delete = gateway
        .client
        .delete(gateway.url("/api/v1/sessions/00000000000000000000000000000000"))
        .header("origin", PORTAL)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    assert_eq!(allow_origin(&delete), Some(PORTAL));
    let foreign = stub_offer_from(&gateway, "https://evil.example").await;
    assert_eq!(allow_origin(&foreign), None);

    // Other routes share nothing, whatever the origin.
    let cameras = gateway
        .client
        .get(gateway.url("/api/v1/cameras"))
        .header("origin", PORTAL)
        .send()
        .await
        .unwrap();
    assert_eq!(cameras.status(), 200);
    assert_eq!(allow_origin(&cameras), None);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_no_origin_is_allowed() {
    let gateway = GatewayUnderTest::start(&GATE_AND_YARD).await;
    let refused = preflight(&gateway, "/api/v1/cameras/gate/whep", PORTAL).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(allow_origin(&refused), None);
    let offer = stub_offer_from(&gateway, PORTAL).await;
    assert_eq!(allow_origin(&offer), None);
    gateway.shutdown().await;
}

#[test]
fn origins_must_be_exact_https_origins() {
    for bad in [
        "*",
        "http://portal.example",
        "https://portal.example/",
        "https://portal.example/page",
        "portal.example",
    ] {
        let toml = format!(
            "state_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:0\"\ncors_origins = [\"{bad}\"]\n"
        );
        let error = straja_gateway::config::Config::parse(&toml)
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(
            error.to_string().contains("http.cors_origins[0]"),
            "{bad}: {error}"
        );
    }
}
