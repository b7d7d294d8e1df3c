//! Consultations in real browsers: a clinician starts one on `/consultation` (signed in with a
//! token in the fragment) with invitations; each invitee opens their link (`/join#invite=…`) in a
//! browser of their own (its own fake camera and microphone), checks the preview (picture, level
//! meter, device lists), joins, waits in the waiting room and is admitted by the clinician. Then
//! every page decodes every other participant's video and receives their audio, always from the
//! gateway's media port (the SFU: the selected candidate pair's remote side is the gateway, never
//! another browser), shows a connection-quality hint per link, carries text chat both ways, and
//! enables the clinician's record button only once everyone has consented; then the clinician
//! records for a few seconds (every page shows the indicator; nothing touched the disk before),
//! and `straja recordings export --consultation` writes a file ffprobe reads with both
//! participants' video and audio, of the recording's length. A used invitation is refused (410,
//! and the page shows the gateway's reason). Leaving removes the leaver's tile on the other
//! pages; the clinician ends the consultation.
//!
//! The join time printed is, per participant, the click on `join` to the first picture of each
//! other participant (for the clinician: the click on `admit` to the newcomer's first picture).
//! Screenshots: `target/test-artifacts/consultation-*.png`.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use straja_gateway::auth::Role;
use support::chromium::{Chromium, Page};
use support::gateway_under_test::GatewayUnderTest;
use support::recordings;
use support::test_artifacts::artifact_path;

/// Longest wait for anything a person would wait for (a connection, 60 frames).
const WAIT: Duration = Duration::from_secs(40);
/// Longest wait for something on the page itself.
const SHORT: Duration = Duration::from_secs(10);
/// Frames of each other participant every page must decode.
const FRAMES: u64 = 60;
/// Audio packets of each other participant every page must receive (Opus: 50 a second).
const AUDIO_PACKETS: u64 = 50;

/// One person in the consultation: their own browser and the page in it.
struct Person {
    /// The name the others see (the invite's label, or the clinician's name).
    name: &'static str,
    /// A short tag for artefact names.
    tag: &'static str,
    page: Page,
    _browser: Chromium,
}

impl Person {
    async fn open(name: &'static str, tag: &'static str, url: &str) -> Person {
        let browser = Chromium::launch(&[]).await.expect("Chromium starts");
        let page = browser.open(url).await.expect("page opens");
        // A laptop's window, for the screenshots.
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false }),
            SHORT,
        )
        .await
        .expect("window size");
        Person {
            name,
            tag,
            page,
            _browser: browser,
        }
    }

    /// Waits until `expression` is true; on failure keeps a screenshot and panics with the
    /// page's console.
    async fn must(&self, expression: &str, timeout: Duration, what: &str) {
        if let Err(e) = self.page.wait_for(expression, timeout).await {
            let _ = self
                .page
                .screenshot(&artifact_path(&format!(
                    "consultation-failure-{}.png",
                    self.tag
                )))
                .await;
            let shown = self
                .page
                .eval(
                    "[document.getElementById('status').textContent, \
                      document.getElementById('problem').textContent]",
                )
                .await;
            panic!(
                "{} ({}): {what}: {e}\nstatus and problem shown: {shown:?}\nconsole: {:#?}",
                self.name,
                self.tag,
                self.page.console()
            );
        }
    }

    async fn eval(&self, expression: &str) -> Value {
        self.page
            .eval(expression)
            .await
            .unwrap_or_else(|e| panic!("{}: `{expression}`: {e}", self.name))
    }

    /// Clicks the enabled element `selector`.
    async fn click(&self, selector: &str) {
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({selector:?}); \
               if (!el) throw new Error('nothing matches ' + {selector:?}); \
               if (el.disabled) throw new Error({selector:?} + ' is disabled'); \
               el.click(); return true; }})()"
        ))
        .await;
    }

    /// Types `text` into the chat and sends it.
    async fn chat(&self, text: &str) {
        self.eval(&format!(
            "document.querySelector('[data-testid=chat-input]').value = {text:?}; true"
        ))
        .await;
        self.click("[data-testid=chat-send]").await;
    }

    async fn you(&self) -> String {
        self.eval("consultation.you")
            .await
            .as_str()
            .unwrap_or_else(|| panic!("{} has no participant id", self.name))
            .to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let path = artifact_path(name);
        self.page.screenshot(&path).await.expect("screenshot");
        let size = std::fs::metadata(&path).expect("screenshot file").len();
        assert!(size > 1000, "{name}: {size} bytes");
    }

    /// The page's console holds no name of anyone (privacy: the pages log no names) and no
    /// Content-Security-Policy violation.
    fn check_console(&self, names: &[&str]) {
        let violations = self.page.csp_violations();
        assert!(
            violations.is_empty(),
            "{}: CSP violations {violations:?}",
            self.name
        );
        for line in self.page.console() {
            for name in names {
                assert!(
                    !line.contains(name),
                    "{}'s console names {name:?}: {line}",
                    self.name
                );
            }
        }
    }
}

/// The clinician's page, signed in with `token` in the fragment, ready to start: the token is
/// gone from the address bar and the preview runs.
async fn open_clinician(gateway: &GatewayUnderTest, name: &'static str) -> Person {
    let token = gateway.token("dr-test", Role::Clinician, &[]);
    let host = Person::open(
        name,
        "clinician",
        &gateway.url(&format!("/consultation#token={token}")),
    )
    .await;
    host.must(
        "!document.getElementById('start-form').hidden",
        SHORT,
        "the start form shows",
    )
    .await;
    assert_eq!(host.eval("location.hash").await, json!(""), "token removed");
    check_preview(&host).await;
    host
}

/// Starts the consultation with one invitation per label; returns the invitation links shown.
async fn start_consultation(host: &Person, labels: &[&str]) -> Vec<String> {
    let mut fill = format!(
        "document.getElementById('host-name').value = {:?};",
        host.name
    );
    for i in 0..3 {
        fill.push_str(&format!(
            "document.getElementById('invite-{}').value = {:?};",
            i + 1,
            labels.get(i).copied().unwrap_or("")
        ));
    }
    host.eval(&format!("{fill} true")).await;
    host.click("[data-testid=start]").await;
    host.must(
        &format!(
            "document.querySelectorAll('[data-testid=invite-link]').length === {}",
            labels.len()
        ),
        SHORT,
        "the invitation links show",
    )
    .await;
    let links = host
        .eval("[...document.querySelectorAll('[data-testid=invite-link]')].map(i => i.value)")
        .await;
    let links: Vec<String> = serde_json::from_value(links).expect("links");
    for link in &links {
        assert!(
            link.contains("/join#invite="),
            "an invitation is a /join link with the secret in the fragment: {link}"
        );
    }
    host.must(
        "consultation.connected && consultation.you !== null",
        SHORT,
        "the clinician is in the consultation",
    )
    .await;
    links
}

/// The preview: the camera's picture plays, the level meter moves with the fake microphone's
/// beeps, and both device lists name a device.
async fn check_preview(person: &Person) {
    person
        .must(
            "consultation.local.video && consultation.local.audio && \
             document.getElementById('local-video').videoWidth > 0 && \
             consultation.micPeak > 0.1 && \
             document.querySelectorAll('#camera-select option').length >= 1 && \
             document.querySelectorAll('#mic-select option').length >= 1 && \
             !document.getElementById('camera-select').disabled",
            SHORT,
            "the preview shows the camera, the level meter moves and devices are listed",
        )
        .await;
}

/// An invitee's page at `link`: the invite is gone from the address bar, the preview runs.
async fn open_invitee(link: &str, name: &'static str, tag: &'static str) -> Person {
    let guest = Person::open(name, tag, link).await;
    assert_eq!(
        guest.eval("location.hash").await,
        json!(""),
        "invite removed"
    );
    check_preview(&guest).await;
    let urls = guest
        .eval("performance.getEntriesByType('resource').map(e => e.name).join(' ')")
        .await;
    let secret = link.split("#invite=").nth(1).expect("secret");
    assert!(
        !urls.as_str().unwrap_or("").contains(secret),
        "no request carried the invite in its URL: {urls}"
    );
    guest
}

/// Waits until `watcher` decodes FRAMES frames of `other`'s video and receives their audio.
async fn sees_and_hears(watcher: &Person, other: &str, other_name: &str) {
    watcher
        .must(
            &format!("consultation.remoteFramesDecoded('{other}').then(n => n >= {FRAMES})"),
            WAIT,
            &format!("decodes {FRAMES} frames of {other_name}'s video"),
        )
        .await;
    watcher
        .must(
            &format!(
                "consultation.remoteAudio('{other}').then(a => a.packetsReceived >= {AUDIO_PACKETS})"
            ),
            WAIT,
            &format!("receives {other_name}'s audio"),
        )
        .await;
    watcher
        .must(
            &format!(
                "document.querySelector('[data-testid=remote-tile][data-participant=\"{other}\"] \
                 [data-testid=tile-name]').textContent === {other_name:?}"
            ),
            SHORT,
            &format!("{other_name}'s tile carries their name"),
        )
        .await;
}

/// The selected candidate pair of every one of `person`'s connections (its publication and each
/// subscription): the remote side is the gateway's media port on 127.0.0.1. Returns the local
/// ports, so that the caller can check no browser is another's remote side.
async fn pairs_go_to_the_gateway(
    person: &Person,
    others: &[String],
    media_ports: &HashSet<u16>,
) -> (Vec<u16>, Vec<u16>) {
    let mut local_ports = Vec::new();
    let mut remote_ports = Vec::new();
    let mut links: Vec<String> = others.to_vec();
    links.push("publish".into());
    for link in links {
        let pair = person
            .eval(&format!("consultation.selectedCandidatePair('{link}')"))
            .await;
        let remote = &pair["remote"];
        assert_eq!(
            remote["address"],
            json!("127.0.0.1"),
            "{}'s {link} link: {pair}",
            person.name
        );
        let port = remote["port"].as_u64().expect("remote port") as u16;
        assert!(
            media_ports.contains(&port),
            "{}'s {link} link goes to port {port}, not the gateway's media port {media_ports:?}: {pair}",
            person.name
        );
        remote_ports.push(port);
        if let Some(port) = pair["local"]["port"].as_u64() {
            local_ports.push(port as u16);
        }
    }
    (local_ports, remote_ports)
}

/// Every tile (and the page's own link) shows a quality hint.
async fn quality_shown(person: &Person, others: &[String]) {
    let mut conditions = vec![
        "['good', 'fair', 'poor'].includes(document.getElementById('self-quality').dataset.quality)"
            .to_owned(),
    ];
    for other in others {
        conditions.push(format!(
            "['good', 'fair', 'poor'].includes(document.querySelector(\
             '[data-testid=remote-tile][data-participant=\"{other}\"] [data-testid=quality]')\
             .dataset.quality)"
        ));
    }
    person
        .must(
            &conditions.join(" && "),
            SHORT,
            "a connection-quality hint shows",
        )
        .await;
}

/// Milliseconds from `from` (a `consultation.timings` entry) to the first picture of `other`.
async fn join_time(person: &Person, from: &str, other: &str) -> i64 {
    let timings = person.eval("consultation.timings").await;
    let start = timings
        .pointer(from)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{}: no timing {from}: {timings}", person.name));
    let first = timings["firstFrame"][other]
        .as_f64()
        .unwrap_or_else(|| panic!("{}: no first frame of {other}: {timings}", person.name));
    (first - start).round() as i64
}

/// Frames of `other`'s video that `person` has decoded so far.
async fn frames(person: &Person, other: &str) -> u64 {
    person
        .eval(&format!("consultation.remoteFramesDecoded('{other}')"))
        .await
        .as_u64()
        .unwrap_or(0)
}

/// The invitation's secret from its link.
fn secret_of(link: &str) -> &str {
    link.split("#invite=").nth(1).expect("a secret")
}

async fn media_ports(gateway: &GatewayUnderTest) -> HashSet<u16> {
    gateway
        .running
        .media_addrs
        .iter()
        .map(|a| a.port())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_page_previews_camera_and_microphone_and_keeps_the_invite_out_of_urls() {
    let gateway = GatewayUnderTest::start(&[]).await;
    // The consultation pages may use the camera and microphone; the camera page may not.
    for (path, camera) in [
        ("/join", "camera=(self)"),
        ("/consultation", "camera=(self)"),
        ("/", "camera=()"),
    ] {
        let response = gateway
            .anonymous
            .get(gateway.url(path))
            .send()
            .await
            .expect("page");
        assert_eq!(response.status(), 200, "{path}");
        let policy = response
            .headers()
            .get("permissions-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(policy.contains(camera), "{path}: {policy}");
    }
    for path in ["/consultation.js", "/consultation.css"] {
        let response = gateway.anonymous.get(gateway.url(path)).send().await;
        assert_eq!(response.expect(path).status(), 200, "{path}");
    }

    let link = gateway.url("/join#invite=not-a-real-invitation-0123456789");
    let guest = open_invitee(&link, "Patient", "preview").await;
    guest.screenshot("consultation-join-preview.png").await;

    // Mute and camera off act on the tracks (what is sent), and back.
    guest.click("[data-testid=mute]").await;
    guest.click("[data-testid=camera]").await;
    let local = guest.eval("consultation.local").await;
    assert_eq!(
        (local["muted"].clone(), local["cameraOff"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(
        guest
            .eval(
                "[document.querySelector('[data-testid=mute]').textContent, \
                   document.querySelector('[data-testid=camera]').textContent]"
            )
            .await,
        json!(["Unmute", "Turn camera on"])
    );
    guest.click("[data-testid=mute]").await;
    guest.click("[data-testid=camera]").await;
    let local = guest.eval("consultation.local").await;
    assert_eq!(
        (local["muted"].clone(), local["cameraOff"].clone()),
        (json!(false), json!(false))
    );

    // Choosing another camera from the list keeps the preview playing.
    guest
        .eval(
            "(() => { const s = document.getElementById('camera-select'); \
               s.selectedIndex = s.options.length - 1; \
               s.dispatchEvent(new Event('change')); return true; })()",
        )
        .await;
    guest
        .must(
            "consultation.local.video && document.getElementById('local-video').videoWidth > 0",
            SHORT,
            "the preview plays after choosing a camera",
        )
        .await;

    // The clinician's page without a sign-in says how to sign in.
    let signed_out = Person::open("Clinician", "signed-out", &gateway.url("/consultation")).await;
    signed_out
        .must(
            "!document.querySelector('[data-testid=signin-needed]').hidden && \
             document.getElementById('start-form').hidden",
            SHORT,
            "the page asks to sign in",
        )
        .await;
    guest.check_console(&["Patient"]);
    signed_out.check_console(&[]);
    drop(guest);
    drop(signed_out);
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_and_a_patient_see_and_hear_each_other_through_the_gateway() {
    let gateway = GatewayUnderTest::start(&[]).await;
    let ports = media_ports(&gateway).await;
    let host = open_clinician(&gateway, "Dr. Ana").await;
    let links = start_consultation(&host, &["Patient"]).await;
    let host_id = host.you().await;

    let patient = open_invitee(&links[0], "Patient", "patient").await;
    patient.click("[data-testid=join]").await;
    patient
        .must(
            "consultation.connected && !document.getElementById('waiting').hidden",
            SHORT,
            "the patient is in the waiting room",
        )
        .await;
    patient.screenshot("consultation-waiting-room.png").await;
    let patient_id = patient.you().await;

    host.must(
        &format!(
            "!!document.querySelector('[data-testid=admit][data-participant=\"{patient_id}\"]')"
        ),
        SHORT,
        "the patient shows in the waiting room",
    )
    .await;
    host.screenshot("consultation-clinician-waiting-room.png")
        .await;
    host.click(&format!(
        "[data-testid=admit][data-participant=\"{patient_id}\"]"
    ))
    .await;

    sees_and_hears(&patient, &host_id, host.name).await;
    sees_and_hears(&host, &patient_id, patient.name).await;
    let patient_join = join_time(&patient, "/start", &host_id).await;
    let host_join = join_time(&host, &format!("/admitClicked/{patient_id}"), &patient_id).await;
    println!(
        "join time: Patient (join click -> first picture of the clinician) {patient_join} ms; \
         clinician (admit click -> first picture of the patient) {host_join} ms"
    );
    let energy = patient
        .eval(&format!("consultation.remoteAudio('{host_id}')"))
        .await;
    println!("the patient receives the clinician's audio: {energy}");

    // Media goes through the gateway, never browser to browser.
    let (host_local, host_remote) =
        pairs_go_to_the_gateway(&host, std::slice::from_ref(&patient_id), &ports).await;
    let (patient_local, patient_remote) =
        pairs_go_to_the_gateway(&patient, std::slice::from_ref(&host_id), &ports).await;
    for port in host_remote.iter().chain(&patient_remote) {
        assert!(
            !host_local.contains(port) && !patient_local.contains(port),
            "a browser's port {port} is another's remote side"
        );
    }
    quality_shown(&host, std::slice::from_ref(&patient_id)).await;
    quality_shown(&patient, std::slice::from_ref(&host_id)).await;

    // Chat both ways, with the sender's name.
    host.chat("Good morning, can you hear me?").await;
    patient
        .must(
            "[...document.querySelectorAll('[data-testid=chat-message]')].some(m => \
             m.textContent.startsWith('Dr. Ana: Good morning, can you hear me?'))",
            SHORT,
            "the clinician's chat message shows with their name",
        )
        .await;
    patient.chat("Yes, loud and clear").await;
    host.must(
        "[...document.querySelectorAll('[data-testid=chat-message]')].some(m => \
         m.textContent.startsWith('Patient: Yes, loud and clear'))",
        SHORT,
        "the patient's chat message shows with their name",
    )
    .await;

    // A blip on the patient's signalling socket: the page reconnects with the same token, the
    // gateway shows the patient back in, and the media, which does not go over that socket,
    // carries on both ways.
    let (host_before, patient_before) = (
        frames(&host, &patient_id).await,
        frames(&patient, &host_id).await,
    );
    patient.eval("consultation.dropSignalling()").await;
    patient
        .must("!consultation.connected", SHORT, "the socket dropped")
        .await;
    patient
        .must("consultation.connected", SHORT, "the page reconnects")
        .await;
    host.must(
        &format!(
            "consultation.participants.find(p => p.id === '{patient_id}').presence === 'admitted'"
        ),
        SHORT,
        "the patient is back in",
    )
    .await;
    host.must(
        &format!(
            "consultation.remoteFramesDecoded('{patient_id}').then(n => n >= {host_before} + 30)"
        ),
        WAIT,
        "the clinician still sees the patient after the blip",
    )
    .await;
    patient
        .must(
            &format!("consultation.remoteFramesDecoded('{host_id}').then(n => n >= {patient_before} + 30)"),
            WAIT,
            "the patient still sees the clinician after the blip",
        )
        .await;

    // A used invitation is refused: the page shows the gateway's reason, the API says 410.
    let again = Person::open("Patient", "reused", &links[0]).await;
    again.click("[data-testid=join]").await;
    again
        .must(
            "document.querySelector('[data-testid=join-reason]').textContent.length > 0",
            SHORT,
            "a used invitation is refused on the page",
        )
        .await;
    let reason = again
        .eval("document.querySelector('[data-testid=join-reason]').textContent")
        .await;
    println!("a used invitation, on the page: {reason}");
    again.screenshot("consultation-invite-used.png").await;
    let response = gateway
        .anonymous
        .post(gateway.url("/api/v1/consultations/join"))
        .json(&json!({ "invite": secret_of(&links[0]) }))
        .send()
        .await
        .expect("join request");
    assert_eq!(response.status(), 410, "a used invitation");
    let body: Value = response.json().await.expect("JSON error");
    assert!(body["error"].is_string(), "{body}");
    drop(again);

    // Recording: only once everyone has consented.
    host.must(
        "document.querySelector('[data-testid=record]').disabled",
        SHORT,
        "record is disabled before consent",
    )
    .await;
    patient.click("[data-testid=consent]").await;
    host.must(
        &format!(
            "consultation.participants.find(p => p.id === '{patient_id}').consented && \
             document.querySelector('[data-testid=record]').disabled"
        ),
        SHORT,
        "the patient's consent shows; record still waits for the clinician's",
    )
    .await;
    host.click("[data-testid=consent]").await;
    host.must(
        "!document.querySelector('[data-testid=record]').disabled",
        SHORT,
        "everyone consented: record is enabled",
    )
    .await;
    // No media has touched the disk before.
    let recordings_dir = gateway.state_dir().join("consultation-recordings");
    assert!(
        recordings::files_under(&recordings_dir).is_empty(),
        "nothing is recorded before the clinician starts it"
    );
    // Start recording: every page shows the indicator.
    let start_asked = Instant::now();
    host.click("[data-testid=record]").await;
    for person in [&host, &patient] {
        person
            .must(
                "consultation.recording === 'on' && \
                 !document.querySelector('[data-testid=recording-indicator]').hidden",
                SHORT,
                "the recording indicator shows",
            )
            .await;
    }
    let recording_started = Instant::now();
    host.screenshot("consultation-clinician-call.png").await;
    patient.screenshot("consultation-patient-call.png").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let shortest = recording_started.elapsed().as_secs_f64();
    host.click("[data-testid=record]").await;
    for person in [&host, &patient] {
        person
            .must(
                "consultation.recording === 'off' && \
                 document.querySelector('[data-testid=recording-indicator]').hidden",
                SHORT,
                "the recording indicator goes",
            )
            .await;
    }
    let recorded = shortest..=start_asked.elapsed().as_secs_f64();
    let consultation_id = host
        .eval("consultation.consultationId")
        .await
        .as_str()
        .expect("the consultation's id")
        .to_owned();

    // The patient leaves: their tile goes from the clinician's page; the clinician ends.
    patient.click("[data-testid=leave]").await;
    patient
        .must("consultation.over", SHORT, "the patient's page has left")
        .await;
    host.must(
        &format!(
            "!document.querySelector('[data-testid=remote-tile][data-participant=\"{patient_id}\"]') && \
             !consultation.participants.some(p => p.id === '{patient_id}')"
        ),
        SHORT,
        "the patient's tile goes",
    )
    .await;
    host.click("[data-testid=end]").await;
    host.must(
        "consultation.over && !document.querySelector('[data-testid=ended]').hidden",
        SHORT,
        "the consultation is over",
    )
    .await;
    for person in [&host, &patient] {
        person.check_console(&["Dr. Ana", "Patient"]);
    }
    drop(host);
    drop(patient);
    let config_file = gateway.config_file.clone();
    let _state = gateway.shutdown_keeping_state().await;

    // What was recorded from the browsers exports to one file: both participants' video and
    // audio, of the recording's length.
    let text = recordings::check_consultation_export(
        &config_file,
        &consultation_id,
        "consultation-browser-recording.mp4",
        2,
        recorded,
    );
    println!("recording: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_each_see_and_hear_the_other_two() {
    let gateway = GatewayUnderTest::start(&[]).await;
    let ports = media_ports(&gateway).await;
    let host = open_clinician(&gateway, "Dr. Ana").await;
    let links = start_consultation(&host, &["Patient", "Interpreter"]).await;
    let host_id = host.you().await;

    let patient = open_invitee(&links[0], "Patient", "patient3").await;
    let interpreter = open_invitee(&links[1], "Interpreter", "interpreter3").await;
    patient.click("[data-testid=join]").await;
    interpreter.click("[data-testid=join]").await;
    for guest in [&patient, &interpreter] {
        guest
            .must(
                "consultation.connected && consultation.you !== null",
                SHORT,
                "in the waiting room",
            )
            .await;
    }
    let patient_id = patient.you().await;
    let interpreter_id = interpreter.you().await;
    for id in [&patient_id, &interpreter_id] {
        let admit = format!("[data-testid=admit][data-participant=\"{id}\"]");
        host.must(
            &format!("!!document.querySelector('{admit}')"),
            SHORT,
            "waiting",
        )
        .await;
        host.click(&admit).await;
    }

    let people = [
        (&host, host_id.clone()),
        (&patient, patient_id.clone()),
        (&interpreter, interpreter_id.clone()),
    ];
    for (watcher, watcher_id) in &people {
        for (other, other_id) in &people {
            if watcher_id != other_id {
                sees_and_hears(watcher, other_id, other.name).await;
            }
        }
    }
    let mut lines = Vec::new();
    for (watcher, watcher_id) in &people {
        let mut times = Vec::new();
        for (other, other_id) in &people {
            if watcher_id == other_id {
                continue;
            }
            let from = if *watcher_id == host_id {
                format!("/admitClicked/{other_id}")
            } else {
                "/start".to_owned()
            };
            times.push(format!(
                "{} {} ms",
                other.name,
                join_time(watcher, &from, other_id).await
            ));
        }
        lines.push(format!("{}: {}", watcher.name, times.join(", ")));
    }
    println!(
        "join times (invitees: join click -> first picture; clinician: admit click -> first picture): {}",
        lines.join("; ")
    );

    let mut all_local = Vec::new();
    let mut all_remote = Vec::new();
    for (person, id) in &people {
        let others: Vec<String> = people
            .iter()
            .map(|(_, o)| o.clone())
            .filter(|o| o != id)
            .collect();
        let (local, remote) = pairs_go_to_the_gateway(person, &others, &ports).await;
        all_local.extend(local);
        all_remote.extend(remote);
        quality_shown(person, &others).await;
    }
    for port in &all_remote {
        assert!(
            !all_local.contains(port),
            "a browser's port {port} is another's remote side"
        );
    }

    interpreter.chat("I will translate for you").await;
    for person in [&host, &patient] {
        person
            .must(
                "[...document.querySelectorAll('[data-testid=chat-message]')].some(m => \
                 m.textContent.startsWith('Interpreter: I will translate for you'))",
                SHORT,
                "the interpreter's message shows",
            )
            .await;
    }

    for (person, _) in &people {
        person.click("[data-testid=consent]").await;
    }
    host.must(
        "!document.querySelector('[data-testid=record]').disabled",
        SHORT,
        "everyone consented: record is enabled",
    )
    .await;
    host.screenshot("consultation-three-clinician.png").await;
    patient.screenshot("consultation-three-patient.png").await;
    interpreter
        .screenshot("consultation-three-interpreter.png")
        .await;

    // The interpreter leaves: the others drop their tile and still see each other.
    interpreter.click("[data-testid=leave]").await;
    for (person, _) in &people[..2] {
        person
            .must(
                &format!("!document.querySelector('[data-testid=remote-tile][data-participant=\"{interpreter_id}\"]')"),
                SHORT,
                "the interpreter's tile goes",
            )
            .await;
    }
    let before = host
        .eval(&format!("consultation.remoteFramesDecoded('{patient_id}')"))
        .await
        .as_u64()
        .unwrap_or(0);
    host.must(
        &format!("consultation.remoteFramesDecoded('{patient_id}').then(n => n >= {before} + 30)"),
        WAIT,
        "the patient's video carries on",
    )
    .await;
    host.click("[data-testid=end]").await;
    patient
        .must(
            "consultation.over && !document.querySelector('[data-testid=ended]').hidden",
            SHORT,
            "the patient's page says the consultation ended",
        )
        .await;
    for (person, _) in &people {
        person.check_console(&["Dr. Ana", "Patient", "Interpreter"]);
    }
    drop(people);
    drop(host);
    drop(patient);
    drop(interpreter);
    gateway.shutdown().await;
}
