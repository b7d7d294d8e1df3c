//! TLS as a real client sees it (`openssl s_client`): TLS 1.0 and 1.1 are refused, so are CBC
//! (non-AEAD) suites even over TLS 1.2; TLS 1.2 with AES-GCM and TLS 1.3 are accepted. The client
//! is lowered to security level 0, so the refusals are the gateway's, not OpenSSL's own defaults.

mod support;

use std::process::{Command, Stdio};

use support::gateway_under_test::GatewayUnderTest;

/// Runs one handshake; returns whether it succeeded and what openssl printed.
fn handshake(port: u16, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (installed by scripts/setup.sh --test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_with_aead_suites_are_accepted() {
    let gateway = GatewayUnderTest::start(&[]).await;
    let port = gateway.running.https_addr.port();
    let result = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for (args, accepted) in [
            (&["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"][..], false),
            (&["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"][..], false),
            (&["-tls1_2", "-cipher", "AES128-SHA@SECLEVEL=0"][..], false),
            (
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA@SECLEVEL=0"][..],
                false,
            ),
            (
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"][..],
                true,
            ),
            (&["-tls1_3"][..], true),
        ] {
            let (ok, text) = handshake(port, args);
            if ok != accepted {
                failures.push(format!(
                    "{args:?}: accepted={ok}, expected {accepted}\n{text}"
                ));
            }
            if !accepted && !text.contains("alert") {
                failures.push(format!(
                    "{args:?}: refused, but not by the server's alert\n{text}"
                ));
            }
        }
        failures
    })
    .await
    .unwrap();
    assert!(result.is_empty(), "{}", result.join("\n---\n"));
    gateway.shutdown().await;
}
