//! Bad input gets a clear 4xx with a JSON reason, and the gateway keeps serving: malformed or empty
//! SDP → 400, wrong content type → 415, unknown camera or session → 404, body over 64 KiB → 413.

mod support;

use std::time::Duration;

use straja_gateway::auth::Role;
use support::gateway_under_test::{GatewayUnderTest, TestCamera};
use support::whep_viewer::WhepViewer;

async fn post_offer(
    gateway: &GatewayUnderTest,
    camera: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, String) {
    let response = gateway
        .client
        .post(gateway.url(&format!("/api/v1/cameras/{camera}/whep")))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    (status, body)
}

fn error_text(body: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_4xx_and_the_gateway_keeps_serving() {
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "lobby",
        source: "test://ball?width=320&height=240",
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;

    // Empty and malformed SDP.
    let (status, body) = post_offer(&gateway, "lobby", "application/sdp", "").await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("empty"), "{body}");
    let (status, body) = post_offer(&gateway, "lobby", "application/sdp", "hello world").await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("malformed SDP"), "{body}");
    let (status, body) = post_offer(
        &gateway,
        "lobby",
        "application/sdp",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post_offer(
        &gateway,
        "lobby",
        "application/sdp",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("video"), "{body}");
    let (status, body) =
        post_offer(&gateway, "lobby", "application/sdp", vec![0xff, 0xfe, 0x00]).await;
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("UTF-8"), "{body}");

    // Wrong content type.
    let (status, body) = post_offer(&gateway, "lobby", "application/json", "{}").await;
    assert_eq!(status, 415, "{body}");
    assert!(error_text(&body).contains("application/sdp"), "{body}");

    // Unknown camera, session and route. A camera outside the token is 403 whether it exists or
    // not (no probing for ids); one the token names but the box does not have is 404.
    let (status, body) = post_offer(&gateway, "nope", "application/sdp", "v=0\r\n").await;
    assert_eq!(status, 403, "{body}");
    error_text(&body);
    let scoped = gateway.client_with(Some(&gateway.token("t", Role::Security, &["nope"])));
    let response = gateway.post_offer(&scoped, "nope", "v=0\r\n").await;
    assert_eq!(response.status(), 404);
    error_text(&response.text().await.unwrap());
    let response = gateway
        .client
        .delete(gateway.url("/api/v1/sessions/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    error_text(&response.text().await.unwrap());
    let response = gateway
        .client
        .get(gateway.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Body over 64 KiB.
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(20_000));
    let (status, body) = post_offer(&gateway, "lobby", "application/sdp", huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(error_text(&body).contains("65536"), "{body}");

    // Broken datagrams on the media port are counted, not fatal.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for media in &gateway.running.media_addrs {
        for junk in [&b""[..], b"\x80\x60garbage", &[0u8; 1500]] {
            socket.send_to(junk, media).unwrap();
        }
    }

    // Still serving: a real viewer gets video.
    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "lobby").await;
    let reception = viewer.wait_for_frames(10, Duration::from_secs(15)).await;
    assert!(reception.complete_frames >= 10, "{reception:?}");

    let metrics = gateway.metrics_text().await;
    for series in [
        r#"straja_http_requests_total{code="400",route="/api/v1/cameras/{id}/whep"} 5"#,
        r#"straja_http_requests_total{code="415",route="/api/v1/cameras/{id}/whep"} 1"#,
        r#"straja_http_requests_total{code="413",route="/api/v1/cameras/{id}/whep"} 1"#,
        r#"straja_http_requests_total{code="201",route="/api/v1/cameras/{id}/whep"} 1"#,
        r#"straja_http_requests_total{code="404",route="unmatched"} 1"#,
        r#"straja_http_requests_total{code="403",route="/api/v1/cameras/{id}/whep"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    assert!(
        !metrics.contains("lobby/whep"),
        "concrete paths must not be labels"
    );
    let unmatched = metrics
        .lines()
        .find(|l| l.starts_with("straja_webrtc_udp_unmatched_datagrams_total"))
        .expect("unmatched counter");
    assert!(!unmatched.ends_with(" 0"), "{unmatched}");

    viewer.close().await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_lists_cameras_and_reports_health_over_https_only() {
    let gateway = GatewayUnderTest::start(&[
        TestCamera {
            id: "a",
            source: "test://smpte?width=320&height=240",
            settings: "",
        },
        TestCamera {
            id: "down",
            source: "rtsp://127.0.0.1:9/nothing-listens-here",
            settings: "",
        },
    ])
    .await;
    let health = gateway
        .client
        .get(gateway.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    for header in [
        "strict-transport-security",
        "x-content-type-options",
        "content-security-policy",
    ] {
        assert!(health.headers().contains_key(header), "{header} missing");
    }

    let (cameras, ids) = gateway.cameras_seen_by(&gateway.client).await;
    assert_eq!(ids, ["a", "down"]);
    assert!(cameras[0]["name"].is_string() && cameras[0]["state"].is_string());

    // One camera can never come up: not ready, and the reason names it.
    let ready = gateway
        .ops_client
        .get(gateway.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(body.to_string().contains("down"), "{body}");

    // Plain HTTP on the HTTPS port gets no API.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/healthz",
            gateway.running.https_addr.port()
        ))
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "the API must not answer over plain HTTP"
    );

    let page = gateway.client.get(gateway.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/app.js"));
    gateway.shutdown().await;
}
