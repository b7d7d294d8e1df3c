//! TLS material changes without anyone being cut off: a reload (SIGHUP's action, and automatic
//! when the files change) serves the new certificate to new connections while a live viewer keeps
//! receiving frames; a broken new certificate keeps the old one in force. With `client_ca` set,
//! only clients with a certificate from that CA get in.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::gateway_under_test::{GatewayUnderTest, TestCamera, https_client};
use support::whep_viewer::WhepViewer;

async fn reachable(client: &reqwest::Client, gateway: &GatewayUnderTest) -> bool {
    client.get(gateway.url("/healthz")).send().await.is_ok()
}

fn install(from: &Path, to: &Path) {
    for file in ["server.crt", "server.key"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_certificate_is_served_without_dropping_the_viewer() {
    let gateway = GatewayUnderTest::start(&[TestCamera {
        id: "gate",
        source: "test://ball?width=160&height=120",
        settings: "",
    }])
    .await;
    gateway.wait_until_ready(Duration::from_secs(15)).await;
    let certs = gateway.state_dir().join("certs");
    let viewer = WhepViewer::connect(&gateway.client, &gateway.base_url, "gate").await;
    assert!(
        viewer
            .wait_for_frames(10, Duration::from_secs(10))
            .await
            .complete_frames
            >= 10
    );

    // Rotate to a certificate from another CA, and reload.
    let next = gateway.state_dir().join("next");
    straja_gateway::tls::init_dev_certificates(&next).unwrap();
    install(&next, &certs);
    gateway.running.reload_tls().expect("reload");
    let trusts_next = https_client(&next.join("ca.crt"), None);
    assert!(
        reachable(&trusts_next, &gateway).await,
        "new connections get the new certificate"
    );
    assert!(
        !reachable(&gateway.anonymous, &gateway).await,
        "the old certificate is no longer served"
    );

    // The viewer never noticed.
    let before = viewer.reception();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = viewer.reception();
    assert!(
        after.complete_frames >= before.complete_frames + 15,
        "frames stalled across the reload: {before:?} -> {after:?}"
    );
    assert_eq!(after.broken_frames, before.broken_frames);

    // A broken certificate is refused and the current one stays.
    std::fs::write(certs.join("server.key"), "not a key").unwrap();
    assert!(gateway.running.reload_tls().is_err());
    assert!(reachable(&trusts_next, &gateway).await);

    // Changed files are picked up without a signal.
    let third = gateway.state_dir().join("third");
    straja_gateway::tls::init_dev_certificates(&third).unwrap();
    install(&third, &certs);
    let trusts_third = https_client(&third.join("ca.crt"), None);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !reachable(&trusts_third, &gateway).await {
        assert!(Instant::now() < deadline, "changed files were not reloaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    viewer.close().await;
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_ca_only_clients_with_a_certificate_get_in() {
    let gateway =
        GatewayUnderTest::start_with_http(&[], "client_ca = \"{certs}/ca.crt\"", "").await;
    let certs = gateway.state_dir().join("certs");
    assert!(
        !reachable(&gateway.anonymous, &gateway).await,
        "no client certificate, no connection"
    );
    let mut pem = std::fs::read(certs.join("client.crt")).unwrap();
    pem.extend(std::fs::read(certs.join("client.key")).unwrap());
    let with_certificate = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.crt")).unwrap()).unwrap(),
        )
        .identity(reqwest::Identity::from_pem(&pem).expect("client identity"))
        .build()
        .unwrap();
    let response = with_certificate
        .get(gateway.url("/healthz"))
        .send()
        .await
        .expect("a client certificate from the CA gets in");
    assert_eq!(response.status(), 200);
    gateway.shutdown().await;
}
