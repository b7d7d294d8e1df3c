//! A whole consultation participant without a browser: its signalling socket, its publishing
//! peer (real H.264 and Opus) and its subscriptions to the others, plus the API calls that start
//! a consultation and join one. Used by `tests/consultation_relay.rs` and
//! `benches/consultation_load.rs`.

use std::time::Instant;

use serde_json::{Value, json};

use super::consultation_client::ConsultationClient;
use super::lossy_link::LossyLink;
use super::rtp_publisher::RtpPublisher;
use super::whep_viewer::WhepViewer;

/// A participant: its signalling, its publisher, its subscriptions (by participant id, with
/// when each was asked for).
pub struct Participant {
    /// Its id in the consultation (`p1` is the clinician).
    pub id: String,
    /// Its signalling socket.
    pub signal: ConsultationClient,
    /// Its publishing connection, once it publishes.
    pub publisher: Option<RtpPublisher>,
    /// Its subscriptions.
    pub subscriptions: Vec<(String, WhepViewer, Instant)>,
}

impl Participant {
    /// Connects `id`'s signalling with `token` and takes its `welcome`.
    pub async fn connect(
        base_url: &str,
        ca_cert: &std::path::Path,
        consultation: &str,
        id: &str,
        token: &str,
    ) -> Participant {
        let mut signal = ConsultationClient::connect(base_url, ca_cert, consultation, token).await;
        let welcome = signal.expect("welcome", |_| true).await;
        assert_eq!(welcome["you"], id);
        Participant {
            id: id.to_owned(),
            signal,
            publisher: None,
            subscriptions: Vec::new(),
        }
    }

    /// Publishes (a fresh connection) and starts sending.
    pub async fn publish(&mut self) {
        let (mut publisher, offer) = RtpPublisher::prepare().await;
        self.signal
            .send(json!({ "type": "publish", "sdp": offer }))
            .await;
        let answer = self.signal.expect("publish_answer", |_| true).await;
        publisher
            .accept_and_send(answer["sdp"].as_str().expect("sdp").to_owned())
            .await;
        self.publisher = Some(publisher);
    }

    /// Subscribes to participant `to`.
    pub async fn subscribe(&mut self, to: &str) {
        self.subscribe_over(to, None).await;
    }

    /// Subscribes to participant `to`, over a poor link (`loss_percent` lost each way, `delay`
    /// each way) when one is given; returns the link (the subscription lasts as long as it).
    pub async fn subscribe_over(
        &mut self,
        to: &str,
        poor_link: Option<(u32, std::time::Duration)>,
    ) -> Option<LossyLink> {
        let (mut viewer, offer) = WhepViewer::prepare(true, false).await;
        let asked = Instant::now();
        self.signal
            .send(json!({ "type": "subscribe", "participant": to, "sdp": offer }))
            .await;
        let answer = self
            .signal
            .expect("subscribe_answer", |m| m["participant"] == to)
            .await;
        let mut answer = answer["sdp"].as_str().expect("sdp").to_owned();
        let mut link = None;
        if let Some((loss_percent, delay)) = poor_link {
            let gateway = LossyLink::gateway_candidate(&answer);
            let started = LossyLink::start(gateway, loss_percent, delay).await;
            answer = started.route_answer(&answer);
            link = Some(started);
        }
        viewer.accept(answer).await;
        self.subscriptions.push((to.to_owned(), viewer, asked));
        link
    }

    /// Waits until `other` publishes, then subscribes to it.
    pub async fn subscribe_when_published(&mut self, other: &str) {
        self.signal
            .expect("participant", |m| {
                m["participant"]["id"] == other && m["participant"]["publishing"] == true
            })
            .await;
        self.subscribe(other).await;
    }
}

/// Starts a consultation as `clinician` with one invitation per label; its JSON answer.
pub async fn create(base_url: &str, clinician: &reqwest::Client, labels: &[&str]) -> Value {
    let invites: Vec<Value> = labels.iter().map(|l| json!({ "label": l })).collect();
    let response = clinician
        .post(format!("{base_url}/api/v1/consultations"))
        .json(&json!({ "name": "Dr. Ana", "invites": invites }))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    response.json().await.expect("JSON")
}

/// Joins through an invitation link (`/join#invite=…`) with `client` (no token needed).
pub async fn join(base_url: &str, client: &reqwest::Client, invite_url: &str) -> reqwest::Response {
    let secret = invite_url
        .split("#invite=")
        .nth(1)
        .expect("the secret is in the fragment");
    client
        .post(format!("{base_url}/api/v1/consultations/join"))
        .json(&json!({ "invite": secret }))
        .send()
        .await
        .expect("join")
}
