//! The observability kit in `gateway/observability/` holds together, checked with the real tools:
//! the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`); the
//! Grafana dashboard is importable JSON with its variables, and a real Prometheus accepts every
//! query in it and every rule; every metric the dashboard and the rules name is in `METRICS.md`,
//! and `METRICS.md` lists exactly the families a running gateway exports; and a real Prometheus
//! scraping a gateway with a camera and a viewer sees the camera up, egress flowing and the relay
//! latency histogram filled.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::gateway_process::{GatewayProcess, stop};
use support::whep_viewer::WhepViewer;

const RULES: &str = "straja-alerts.yml";
const RULE_TESTS: &str = "straja-alerts.test.yml";
const DASHBOARD: &str = "straja-dashboard.json";
const CATALOGUE: &str = "METRICS.md";

/// One test-pattern camera, as in the issue's acceptance check.
const CAMERA: &str = r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=320&height=240"
"#;

/// The same camera, recorded, with a retention that deletes a day-old segment (so that every
/// recording family, retention's deletions included, is exported).
const RECORDED_CAMERA: &str = r#"
[[cameras]]
id = "gate"
name = "Gate"
source = "test://ball?width=320&height=240"
record = true
record_segment_seconds = 2
record_retain_hours = 24
"#;

fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway/observability")
}

fn read(name: &str) -> String {
    let path = observability_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("the dashboard is valid JSON")
}

// ------------------------------------------------------------------------------------------------
// Parsing the kit: PromQL names, the rules' expressions, the dashboard's queries, the catalogue.

/// Metric names a PromQL expression selects: identifiers starting `straja_` or `process_`, and
/// `up`, outside string literals (label values).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut without_strings = String::with_capacity(expr.len());
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            let quote = c;
            while let Some(d) = chars.next() {
                if d == '\\' && quote != '`' {
                    chars.next();
                } else if d == quote {
                    break;
                }
            }
            without_strings.push(' ');
        } else {
            without_strings.push(c);
        }
    }
    without_strings
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("straja_") || word.starts_with("process_") || *word == "up")
        .map(str::to_owned)
        .collect()
}

/// A histogram's `_bucket`/`_sum`/`_count` series named by their family, when the catalogue
/// knows that family as a histogram; any other name as it is.
fn family_of(series: &str, catalogue: &Catalogue) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && catalogue.kind(base) == Some("histogram")
        {
            return base.to_owned();
        }
    }
    series.to_owned()
}

/// The `expr:` of every rule in a Prometheus rules file (inline, or a `|`/`|-`/`>-` block).
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if matches!(rest, "|" | "|-" | ">" | ">-") {
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(body.join(" "));
        } else {
            exprs.push(rest.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    exprs
}

/// Every PromQL query of the dashboard: each target's `expr`, wherever it sits.
fn dashboard_expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => dashboard_expressions(value, out),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| dashboard_expressions(v, out)),
        _ => {}
    }
}

/// The dashboard's template variables, by name.
fn variables(dashboard: &Value) -> BTreeMap<String, Value> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect()
}

/// A query variable's query (`label_values(…)`), in either of Grafana's forms.
fn variable_query(variable: &Value) -> String {
    variable["query"]["query"]
        .as_str()
        .or_else(|| variable["query"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A dashboard query as Grafana would send it: every box, every camera, a rate window.
fn substituted(expr: &str, rate_interval: &str) -> String {
    expr.replace("$__rate_interval", rate_interval)
        .replace("$instance", ".*")
        .replace("$camera", ".*")
}

/// The metric reference: each table row's name and type, by section.
struct Catalogue {
    /// Families the gateway exports, with their type.
    exported: BTreeMap<String, String>,
    /// Series Prometheus makes itself (`up`): documented, never in the exposition.
    made_by_prometheus: BTreeSet<String>,
}

impl Catalogue {
    fn parse(markdown: &str) -> Catalogue {
        let mut catalogue = Catalogue {
            exported: BTreeMap::new(),
            made_by_prometheus: BTreeSet::new(),
        };
        let mut section = "";
        for line in markdown.lines() {
            if let Some(heading) = line.strip_prefix("## ") {
                section = heading;
                continue;
            }
            let Some(row) = line.strip_prefix("| `") else {
                continue;
            };
            let cells: Vec<&str> = row.split(" | ").collect();
            let name = cells[0].trim_end_matches('`').to_owned();
            let kind = cells.get(1).copied().unwrap_or_default().trim().to_owned();
            if section.starts_with("Made by Prometheus") {
                catalogue.made_by_prometheus.insert(name);
            } else {
                assert!(
                    catalogue.exported.insert(name.clone(), kind).is_none(),
                    "{name} is in {CATALOGUE} twice"
                );
            }
        }
        catalogue
    }

    fn kind(&self, name: &str) -> Option<&str> {
        self.exported.get(name).map(String::as_str)
    }

    fn contains(&self, name: &str) -> bool {
        self.exported.contains_key(name) || self.made_by_prometheus.contains(name)
    }
}

/// The families of an exposition (`# TYPE name type` lines), with their type.
fn exposition_families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_owned(), kind.trim().to_owned()))
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Tools: promtool, a Prometheus server of our own, plain HTTP to the metrics listener.

/// Runs `promtool ARGS` in the observability directory; prints and returns (success, output).
fn promtool(args: &[&str]) -> (bool, String) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(observability_dir())
        .stdin(Stdio::null())
        .output()
        .expect("promtool (Debian's prometheus package, installed by scripts/setup.sh --test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("$ promtool {}\n{text}", args.join(" "));
    (output.status.success(), text)
}

/// A Prometheus server on loopback with a temporary configuration and data directory; stopped
/// (by its PID, SIGTERM then SIGKILL) when dropped, also when the test panics.
struct PrometheusServer {
    child: Child,
    url: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts `prometheus` scraping `target` (`host:port`, job `straja`, every second) when
    /// given, with the shipped alert rules loaded; waits (bounded) for `/-/ready`.
    async fn start(target: Option<&str>) -> PrometheusServer {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(observability_dir().join(RULES), dir.path().join(RULES)).expect("rules");
        let scrape = match target {
            Some(target) => format!(
                "scrape_configs:\n  - job_name: straja\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
            None => "scrape_configs: []\n".to_owned(),
        };
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {RULES}\n{scrape}"
            ),
        )
        .expect("prometheus.yml");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        // A free port, found by binding it; if another process takes it before Prometheus does,
        // Prometheus exits and the next port is tried.
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
            let mut child = Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .expect("prometheus (Debian's prometheus package)");
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if client
                    .get(format!("{url}/-/ready"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return PrometheusServer {
                        child,
                        url,
                        client,
                        dir,
                    };
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop(&mut child);
            println!(
                "prometheus on port {port} did not become ready:\n{}",
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
            );
        }
        panic!("prometheus did not start");
    }

    /// `GET /api/v1/query?query=EXPR`: the result, or Prometheus' error.
    async fn query(&self, expr: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("not JSON: {e}"))?;
        if body["status"] == "success" {
            Ok(body["data"]["result"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// The first value of an instant query's vector result, if any.
    async fn value(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr).await.ok()?;
        result.get(0)?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `expr` (bounded by `timeout`) until its first value satisfies `ok`; the last value.
    async fn wait_for(
        &self,
        expr: &str,
        timeout: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.value(expr).await;
            if value.is_some_and(&ok) || Instant::now() >= deadline {
                println!("{expr} => {value:?}");
                return value;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `GET /api/v1/rules`: the loaded rule groups.
    async fn rules(&self) -> Value {
        let body: Value = self
            .client
            .get(format!("{}/api/v1/rules", self.url))
            .send()
            .await
            .expect("rules request")
            .json()
            .await
            .expect("rules JSON");
        body["data"]["groups"].clone()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The exposition at `metrics_url` (plain HTTP/1.0 on loopback).
fn scrape(metrics_url: &str) -> String {
    use std::io::{Read, Write};
    let rest = metrics_url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = std::net::TcpStream::connect(host).expect("metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// `host:port` of a `http://host:port/metrics` URL.
fn target_of(metrics_url: &str) -> String {
    metrics_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned()
}

/// A viewer of `gate` on `gateway` that has seen `frames` complete frames.
async fn watch(gateway: &GatewayProcess, frames: u64) -> WhepViewer {
    let client = gateway.client(&gateway.token(&["--role", "security", "--camera", "gate"]));
    let viewer = WhepViewer::connect(&client, &gateway.base_url, "gate").await;
    let reception = viewer
        .wait_for_frames(frames, Duration::from_secs(15))
        .await;
    assert!(reception.complete_frames >= frames, "{reception:?}");
    viewer
}

// ------------------------------------------------------------------------------------------------

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let (checked, output) = promtool(&["check", "rules", RULES]);
    assert!(checked, "promtool check rules failed:\n{output}");
    let (tested, output) = promtool(&["test", "rules", RULE_TESTS]);
    assert!(tested, "promtool test rules failed:\n{output}");
    assert!(output.contains("SUCCESS"), "{output}");

    // Every alert has unit tests, with a case where it fires and one where it must not.
    let rules = read(RULES);
    let tests = read(RULE_TESTS);
    let alerts: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for alert in &alerts {
        let cases: Vec<&str> = tests
            .split("alertname:")
            .skip(1)
            .filter(|case| case.trim_start().starts_with(&format!("{alert}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_annotations:")),
            "{alert}: no unit test where it fires"
        );
        assert!(
            cases.iter().any(|c| c
                .trim_start()
                .lines()
                .nth(1)
                .unwrap_or("")
                .contains("exp_alerts: []")),
            "{alert}: no unit test where it must not fire"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_is_importable_and_prometheus_accepts_every_query_and_rule() {
    let dashboard = dashboard();
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion: {}",
        dashboard["schemaVersion"]
    );
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        dashboard["id"].is_null(),
        "an importable dashboard has no id"
    );
    let vars = variables(&dashboard);
    let datasource = &vars["datasource"];
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let instance = &vars["instance"];
    assert_eq!(instance["type"], "query");
    assert_eq!(
        variable_query(instance),
        "label_values(straja_build_info, instance)"
    );
    let camera = &vars["camera"];
    assert_eq!(camera["type"], "query");
    assert_eq!(camera["multi"], true);
    assert!(
        variable_query(camera).starts_with("label_values(straja_camera_up"),
        "{}",
        variable_query(camera)
    );
    // Every panel and query asks the data source of the variable.
    let panels = dashboard["panels"].as_array().expect("panels");
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    println!("rows: {rows:?}");
    for row in [
        "Overview",
        "Cameras",
        "Viewers & quality",
        "Relay latency",
        "Recording",
        "Service",
    ] {
        assert!(rows.contains(&row), "row {row} missing: {rows:?}");
    }
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {}",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], "${datasource}");
        }
    }

    let prometheus = PrometheusServer::start(None).await;
    let mut exprs = Vec::new();
    dashboard_expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 40, "{} queries", exprs.len());
    let mut refused = Vec::new();
    for expr in &exprs {
        let query = substituted(expr, "1m");
        assert!(!query.contains('$'), "a variable left in {query}");
        if let Err(e) = prometheus.query(&query).await {
            refused.push(format!("{query}\n    -> {e}"));
        }
    }
    // The variables' metric selectors too (label_values is Grafana's, not PromQL).
    for name in ["instance", "camera"] {
        let query = variable_query(&vars[name]);
        let selector = query
            .trim_start_matches("label_values(")
            .rsplit_once(',')
            .map(|(selector, _)| substituted(selector, "1m"))
            .expect("label_values(selector, label)");
        if let Err(e) = prometheus.query(&selector).await {
            refused.push(format!("{selector}\n    -> {e}"));
        }
    }
    println!("{} dashboard queries sent to Prometheus", exprs.len() + 2);
    assert!(
        refused.is_empty(),
        "Prometheus refused dashboard queries:\n{}",
        refused.join("\n")
    );

    // The rules loaded (Prometheus parsed every expression), each with its runbook.
    let groups = prometheus.rules().await;
    let mut alerts = 0;
    for group in groups.as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            alerts += 1;
            let name = rule["name"].as_str().unwrap_or_default();
            assert_eq!(rule["type"], "alerting", "{name}");
            assert_ne!(rule["health"], "err", "{name}: {}", rule["lastError"]);
            assert!(
                ["warning", "critical"]
                    .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{name}: severity {}",
                rule["labels"]["severity"]
            );
            for annotation in ["summary", "description", "runbook"] {
                assert!(
                    rule["annotations"][annotation]
                        .as_str()
                        .is_some_and(|t| t.len() >= 20),
                    "{name}: annotation {annotation} missing or empty"
                );
            }
            assert!(
                rule["annotations"]["runbook"]
                    .as_str()
                    .is_some_and(|t| t.contains("Check first") && t.contains("Fix")),
                "{name}: the runbook says what to check first and how to fix"
            );
        }
    }
    assert_eq!(
        alerts,
        rule_expressions(&read(RULES)).len(),
        "every rule loaded: {}",
        prometheus.log()
    );
    println!("{alerts} alert rules loaded by Prometheus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_dashboard_and_rules_is_catalogued_and_the_catalogue_matches_a_live_scrape()
 {
    let catalogue = Catalogue::parse(&read(CATALOGUE));
    assert!(catalogue.exported.len() >= 40, "{:?}", catalogue.exported);
    for (name, kind) in &catalogue.exported {
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind.as_str()),
            "{name}: type {kind}"
        );
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name} ({kind}): counters, and only counters, end in _total"
        );
    }

    // Names the dashboard and the rules use.
    let dashboard = dashboard();
    let mut exprs = Vec::new();
    dashboard_expressions(&dashboard, &mut exprs);
    exprs.extend(variables(&dashboard).values().map(variable_query));
    let rules = rule_expressions(&read(RULES));
    let mut used: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (origin, expr) in exprs
        .iter()
        .map(|e| ("dashboard", e))
        .chain(rules.iter().map(|e| ("rules", e)))
    {
        for series in metric_names(expr) {
            used.entry(family_of(&series, &catalogue))
                .or_default()
                .insert(origin);
        }
    }
    println!(
        "metrics used by the dashboard and the rules: {}",
        used.len()
    );
    let not_catalogued: Vec<String> = used
        .iter()
        .filter(|(name, _)| !catalogue.contains(name))
        .map(|(name, origins)| format!("{name} (in {origins:?})"))
        .collect();

    // A live gateway with a recorded camera, one retention deletion and a viewer, so that every
    // family has a series: the day-old segment is written while it runs, and its restart's first
    // retention sweep deletes it.
    let mut gateway = GatewayProcess::start(RECORDED_CAMERA, None);
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    let state = gateway.state_dir();
    let key = straja_gateway::recording::RecordingKey::load_or_create(&state).expect("key");
    let camera_dir = state.join("recordings").join("gate");
    std::fs::create_dir_all(&camera_dir).expect("recordings dir");
    let start_ms = straja_gateway::recording::now_ms() - 48 * 3_600_000;
    let part = camera_dir.join(format!("{start_ms}.srec.part"));
    let mut writer = straja_gateway::recording::segment_file::SegmentWriter::create(
        &part, &key, "gate", start_ms,
    )
    .expect("segment");
    writer
        .append(&[0x5a; 1000], start_ms + 2_000)
        .expect("append");
    writer.finish(start_ms + 2_000).expect("finish");
    std::fs::rename(
        &part,
        camera_dir.join(straja_gateway::recording::segment_catalogue::finished_name(
            start_ms,
            start_ms + 2_000,
        )),
    )
    .expect("rename");
    gateway.restart();
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    let viewer = watch(&gateway, 30).await;

    // Families appear as their first events come (a recorder's first segment, the viewers'
    // first RTCP reports): scrape until the catalogue is covered, at most 15 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let live = loop {
        let live = exposition_families(&scrape(&gateway.metrics_url));
        let covered = catalogue
            .exported
            .keys()
            .all(|name| live.contains_key(name));
        if covered || Instant::now() >= deadline {
            break live;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    viewer.close().await;
    drop(gateway);

    let missing_from_scrape: Vec<&String> = catalogue
        .exported
        .keys()
        .filter(|name| !live.contains_key(*name))
        .collect();
    let not_in_catalogue: Vec<String> = live
        .iter()
        .filter(|(name, _)| !catalogue.exported.contains_key(*name))
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    let wrong_type: Vec<String> = live
        .iter()
        .filter_map(|(name, kind)| {
            let documented = catalogue.kind(name)?;
            (documented != kind)
                .then(|| format!("{name}: {kind} in the scrape, {documented} in {CATALOGUE}"))
        })
        .collect();
    let matched = catalogue
        .exported
        .keys()
        .filter(|name| live.contains_key(*name))
        .count();
    println!(
        "catalogue: {} exported families (+ {:?} made by Prometheus); live scrape: {} families; \
         {matched} in both",
        catalogue.exported.len(),
        catalogue.made_by_prometheus,
        live.len()
    );
    let mut problems = Vec::new();
    if !not_catalogued.is_empty() {
        problems.push(format!(
            "used by the dashboard or the rules but not in {CATALOGUE} ({}):\n  {}",
            not_catalogued.len(),
            not_catalogued.join("\n  ")
        ));
    }
    if !missing_from_scrape.is_empty() {
        problems.push(format!(
            "in {CATALOGUE} but not in the live scrape ({}):\n  {}",
            missing_from_scrape.len(),
            missing_from_scrape
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    if !not_in_catalogue.is_empty() {
        problems.push(format!(
            "in the live scrape but not in {CATALOGUE} ({}):\n  {}",
            not_in_catalogue.len(),
            not_in_catalogue.join("\n  ")
        ));
    }
    if !wrong_type.is_empty() {
        problems.push(format!("types differ:\n  {}", wrong_type.join("\n  ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scraping_a_watched_gateway_sees_the_camera_egress_and_relay_latency() {
    let gateway = GatewayProcess::start(CAMERA, None);
    gateway.wait_until_ready(Duration::from_secs(20)).await;
    let viewer = watch(&gateway, 10).await;
    let prometheus = PrometheusServer::start(Some(&target_of(&gateway.metrics_url))).await;
    let timeout = Duration::from_secs(20);

    let up = prometheus
        .wait_for(r#"up{job="straja"}"#, timeout, |v| v == 1.0)
        .await;
    assert_eq!(up, Some(1.0), "the gateway scraped: {}", prometheus.log());
    let camera_up = prometheus
        .wait_for(r#"straja_camera_up{camera="gate"}"#, timeout, |v| v == 1.0)
        .await;
    assert_eq!(camera_up, Some(1.0), "the camera is up");
    let egress = prometheus
        .wait_for(
            r#"sum(rate(straja_egress_packets_total{camera="gate"}[10s]))"#,
            timeout,
            |v| v > 0.0,
        )
        .await;
    assert!(egress.is_some_and(|v| v > 0.0), "egress flows: {egress:?}");

    // What the dashboard shows for this box (a sample of its queries, answered live).
    let dashboard = dashboard();
    println!("dashboard queries, answered by Prometheus:");
    let sample = [
        "Boxes up",
        "Cameras up",
        "Cameras down",
        "Viewers",
        "Egress",
        "Ingest bitrate",
        "Egress bitrate",
        "Viewer sessions",
        "WHEP answer time p50 / p95",
        "Relay latency p50 / p99 / p99.9",
        "HTTP requests by code",
        "Process CPU",
    ];
    for panel in dashboard["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or_default();
        if !sample.contains(&title) {
            continue;
        }
        for target in panel["targets"].as_array().expect("targets") {
            let query = substituted(target["expr"].as_str().expect("expr"), "10s");
            let answer = match prometheus.query(&query).await {
                Ok(result) => result
                    .as_array()
                    .map(|series| {
                        series
                            .iter()
                            .map(|s| {
                                let mut labels = s["metric"].clone();
                                if let Some(map) = labels.as_object_mut() {
                                    map.remove("job");
                                }
                                format!("{labels} {}", s["value"][1].as_str().unwrap_or("?"))
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "(no data)".to_owned()),
                Err(e) => panic!("{title}: {query}: {e}"),
            };
            println!("  [{title}] {query}\n      => {answer}");
        }
    }

    // The relay latency histogram is populated by the packets sent to the viewer.
    let relayed = prometheus
        .wait_for(
            "sum(straja_relay_latency_seconds_count)",
            Duration::from_secs(10),
            |v| v > 0.0,
        )
        .await;
    viewer.close().await;
    assert!(
        relayed.is_some_and(|v| v > 0.0),
        "straja_relay_latency_seconds_count > 0 in Prometheus: {relayed:?}"
    );
}
