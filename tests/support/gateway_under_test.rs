//! Starts a real gateway in-process on loopback with ephemeral ports and a dev CA, and an HTTPS
//! client that trusts that CA. Everything it starts stops when it is dropped or shut down.

use std::net::SocketAddr;
use std::path::PathBuf;

use straja_gateway::auth::Role;
use straja_gateway::config::Config;
use straja_gateway::server::{RunningGateway, start};

/// A running gateway plus what a test needs to talk to it.
pub struct GatewayUnderTest {
    /// The gateway.
    pub running: RunningGateway,
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// An HTTPS client trusting the test CA, signed in as security staff for every camera.
    pub client: reqwest::Client,
    /// The same, signed in as ops.
    pub ops_client: reqwest::Client,
    /// The same, with no token.
    pub anonymous: reqwest::Client,
    /// The security token `client` uses (for pages opened in a browser).
    pub security_token: String,
    /// The test CA certificate (PEM file).
    pub ca_cert: PathBuf,
    /// The gateway's configuration as a file, for `straja` commands run against it.
    pub config_file: PathBuf,
    _state_dir: tempfile::TempDir,
}

/// A person signed in on the login page: the cookie and the CSRF token writes carry.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// `Cookie` header value.
    pub cookie: String,
    /// `X-CSRF-Token` value.
    pub csrf: String,
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// An HTTPS client that trusts only `ca_cert` and sends `token` as a bearer token, if given.
pub fn https_client(ca_cert: &std::path::Path, token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
    }
    https_client_with_headers(ca_cert, headers)
}

/// An HTTPS client that trusts only `ca_cert` and sends `headers` with every request.
pub fn https_client_with_headers(
    ca_cert: &std::path::Path,
    headers: reqwest::header::HeaderMap,
) -> reqwest::Client {
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(ca_cert).expect("ca.crt")).expect("CA PEM");
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .https_only(true)
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("HTTPS client")
}

/// Two small test-pattern cameras, `gate` and `yard`, for tests about who may see which.
pub const GATE_AND_YARD: [TestCamera<'static>; 2] = [
    TestCamera {
        id: "gate",
        source: "test://ball?width=160&height=120",
        settings: "",
    },
    TestCamera {
        id: "yard",
        source: "test://smpte?width=160&height=120",
        settings: "",
    },
];

/// Reads the `straja run` banner from the daemon's stdout and returns its `https://` base URL.
pub fn base_url_from_banner(stdout: impl std::io::Read) -> String {
    urls_from_banner(stdout).0
}

/// The HTTPS base URL and the metrics URL (`http://HOST:PORT/metrics`) from the daemon's banner.
pub fn urls_from_banner(stdout: impl std::io::Read) -> (String, String) {
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut banner).expect("banner");
    let find = |prefix: &str| {
        banner
            .split_whitespace()
            .find(|w| w.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} URL in the banner: {banner:?}"))
            .trim_end_matches(')')
            .to_owned()
    };
    (find("https://"), find("http://"))
}

/// Issues a token with the `straja` binary for the daemon configured by `config`, as an operator
/// would (`args`: `--role ...`, `--camera ...`).
pub fn issue_token_with_cli(config: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_straja"))
        .args(["token", "issue", "--config"])
        .arg(config)
        .args(args)
        .output()
        .expect("straja token issue");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

/// One camera for the test config.
pub struct TestCamera<'a> {
    /// Camera id.
    pub id: &'a str,
    /// Source URL.
    pub source: &'a str,
    /// More keys of its `[[cameras]]` table, as TOML lines (e.g. `gop_cache_bytes = 0`).
    pub settings: &'a str,
}

impl GatewayUnderTest {
    /// Starts a gateway serving `cameras`.
    pub async fn start(cameras: &[TestCamera<'_>]) -> GatewayUnderTest {
        Self::start_with(cameras, "").await
    }

    /// Starts a gateway serving `cameras`, with `extra` TOML tables (e.g. `[limits]`) in its config.
    pub async fn start_with(cameras: &[TestCamera<'_>], extra: &str) -> GatewayUnderTest {
        Self::start_with_http(cameras, "", extra).await
    }

    /// As [`Self::start_with`], with `http_extra` keys in `[http]`; `{certs}` in it stands for the
    /// directory of the test CA and server certificate.
    pub async fn start_with_http(
        cameras: &[TestCamera<'_>],
        http_extra: &str,
        extra: &str,
    ) -> GatewayUnderTest {
        Self::start_in(
            tempfile::tempdir().expect("temp dir"),
            cameras,
            http_extra,
            extra,
        )
        .await
    }

    /// As [`Self::start_with_http`], in a state directory the test has prepared.
    pub async fn start_in(
        state_dir: tempfile::TempDir,
        cameras: &[TestCamera<'_>],
        http_extra: &str,
        extra: &str,
    ) -> GatewayUnderTest {
        let certs = state_dir.path().join("certs");
        straja_gateway::tls::init_dev_certificates(&certs).expect("dev certificates");
        let mut toml = format!(
            r#"
state_dir = "{state}"
[http]
listen = "127.0.0.1:0"
tls_cert = "{certs}/server.crt"
tls_key = "{certs}/server.key"
{http_extra}
[metrics]
listen = "127.0.0.1:0"
[webrtc]
udp_listen = "127.0.0.1:0"
"#,
            state = state_dir.path().display(),
            certs = certs.display(),
            http_extra = http_extra.replace("{certs}", &certs.display().to_string()),
        );
        toml.push_str(extra);
        toml.push('\n');
        for camera in cameras {
            toml.push_str(&format!(
                "[[cameras]]\nid = \"{}\"\nname = \"Camera {}\"\nsource = \"{}\"\n{}\n",
                camera.id, camera.id, camera.source, camera.settings
            ));
        }
        let config_file = state_dir.path().join("straja.toml");
        std::fs::write(&config_file, &toml).expect("config file");
        let config = Config::parse(&toml).expect("valid test config");
        let running = start(config).await.expect("gateway starts");
        let ca_cert = certs.join("ca.crt");
        let all_cameras: Vec<String> = cameras.iter().map(|c| c.id.to_owned()).collect();
        let tokens = &running.gateway().tokens;
        let security_token = tokens
            .issue("test-security", Role::Security, &all_cameras, HOUR)
            .expect("security token");
        let ops_token = tokens
            .issue("test-ops", Role::Ops, &[], HOUR)
            .expect("ops token");
        GatewayUnderTest {
            base_url: format!("https://127.0.0.1:{}", running.https_addr.port()),
            client: https_client(&ca_cert, Some(&security_token)),
            ops_client: https_client(&ca_cert, Some(&ops_token)),
            anonymous: https_client(&ca_cert, None),
            security_token,
            running,
            ca_cert,
            config_file,
            _state_dir: state_dir,
        }
    }

    /// The gateway's state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        self._state_dir.path()
    }

    /// A token signed by this gateway.
    pub fn token(&self, subject: &str, role: Role, cameras: &[&str]) -> String {
        let cameras: Vec<String> = cameras.iter().map(|c| c.to_string()).collect();
        self.running
            .gateway()
            .tokens
            .issue(subject, role, &cameras, HOUR)
            .expect("token")
    }

    /// An HTTPS client trusting the test CA that sends `token` (or none).
    pub fn client_with(&self, token: Option<&str>) -> reqwest::Client {
        https_client(&self.ca_cert, token)
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `POST /api/v1/cameras/{camera}/whep` with `body` as SDP, sent by `client`.
    pub async fn post_offer(
        &self,
        client: &reqwest::Client,
        camera: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        client
            .post(self.url(&format!("/api/v1/cameras/{camera}/whep")))
            .header("Content-Type", "application/sdp")
            .body(body)
            .send()
            .await
            .expect("WHEP request")
    }

    /// `GET /api/v1/cameras` as `client` sees it: the JSON list and the ids in it.
    pub async fn cameras_seen_by(
        &self,
        client: &reqwest::Client,
    ) -> (serde_json::Value, Vec<String>) {
        let cameras: serde_json::Value = client
            .get(self.url("/api/v1/cameras"))
            .send()
            .await
            .expect("cameras request")
            .json()
            .await
            .expect("cameras JSON");
        let ids = cameras
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| c["id"].as_str().expect("an id").to_owned())
            .collect();
        (cameras, ids)
    }

    /// The metrics listener's address.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.running.metrics_addr
    }

    /// The metrics text (plain HTTP on loopback).
    pub async fn metrics_text(&self) -> String {
        reqwest::Client::new()
            .get(format!("http://{}/metrics", self.metrics_addr()))
            .send()
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text")
    }

    /// The value of one series in the metrics text (`name{labels}` exactly as exposed, e.g.
    /// `straja_camera_up{camera="gate"}`), or `None` when it is not exposed.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics_text().await;
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                line.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
    }

    /// Waits (bounded) until every camera reports `playing`.
    pub async fn wait_until_ready(&self, timeout: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = self
                .ops_client
                .get(self.url("/readyz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "gateway not ready within {timeout:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Runs `straja user ARGS... --config <this gateway's config>` with `stdin` as its input.
    pub fn user_command(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_straja"))
            .arg("user")
            .args(args)
            .arg("--config")
            .arg(&self.config_file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("straja user");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("write stdin");
        drop(input);
        child.wait_with_output().expect("straja user output")
    }

    /// Adds a local user with the CLI (`--password-stdin`).
    pub fn add_user(&self, name: &str, role: &str, cameras: &[&str], password: &str) {
        let mut args = vec!["add", name, "--role", role, "--password-stdin"];
        for camera in cameras {
            args.extend(["--camera", camera]);
        }
        let output = self.user_command(&args, &format!("{password}\n"));
        assert!(output.status.success(), "straja user add: {output:?}");
    }

    /// `POST /api/v1/login`; the raw response.
    pub async fn login_response(&self, user: &str, password: &str) -> reqwest::Response {
        self.anonymous
            .post(self.url("/api/v1/login"))
            .json(&serde_json::json!({"user": user, "password": password}))
            .send()
            .await
            .expect("login request")
    }

    /// Signs in on the login API and returns the cookie and CSRF token.
    pub async fn sign_in(&self, user: &str, password: &str) -> SignIn {
        let response = self.login_response(user, password).await;
        assert_eq!(response.status(), 200, "login of {user}");
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .expect("Set-Cookie")
            .to_str()
            .expect("ASCII")
            .to_owned();
        let body: serde_json::Value = response.json().await.expect("login JSON");
        SignIn {
            cookie: set_cookie
                .split(';')
                .next()
                .expect("cookie pair")
                .to_owned(),
            csrf: body["csrf_token"].as_str().expect("csrf_token").to_owned(),
        }
    }

    /// An HTTPS client that sends a sign-in's cookie, and its CSRF token when `with_csrf`.
    pub fn signed_in_client(&self, sign_in: &SignIn, with_csrf: bool) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::COOKIE,
            sign_in.cookie.parse().expect("cookie header"),
        );
        if with_csrf {
            headers.insert("x-csrf-token", sign_in.csrf.parse().expect("csrf header"));
        }
        https_client_with_headers(&self.ca_cert, headers)
    }

    /// Opens the page in `browser`, signed in with the security token's link, and waits (bounded)
    /// until the wall shows `tiles` cameras.
    pub async fn open_wall(
        &self,
        browser: &super::chromium::Chromium,
        tiles: usize,
    ) -> super::chromium::Page {
        let page = browser
            .open(&self.url(&format!("/#token={}", self.security_token)))
            .await
            .expect("page opens");
        page.wait_for(
            &format!("document.querySelectorAll('[data-camera]').length === {tiles}"),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("the wall shows {tiles} cameras: {e}; {:?}", page.console()));
        page
    }

    /// Waits until no viewer session is left, polling every 20 ms at most `polls` times; returns
    /// whether none is.
    pub async fn sessions_end(&self, polls: usize) -> bool {
        let sessions = &self.running.gateway().sessions;
        for _ in 0..polls {
            if sessions.is_empty() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sessions.is_empty()
    }

    /// Stops the gateway.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }

    /// Stops the gateway and hands over its state directory, for a test to look at what the
    /// stop left on disk.
    pub async fn shutdown_keeping_state(self) -> tempfile::TempDir {
        self.running.shutdown().await;
        self._state_dir
    }
}
