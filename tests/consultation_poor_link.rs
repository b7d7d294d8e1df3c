//! A participant on a poor link does not degrade the others (real WebRTC peers, the real
//! signalling socket, a lossy UDP relay on loopback as the poor link): the clinician and the
//! patient watch each other; then a specialist joins over a link that loses 20 % of the datagrams
//! each way and delays the rest by 40 ms, watches both, and asks for a keyframe every 100 ms (a
//! client that asks on every loss). While it does, the clinician's and the patient's views of
//! each other lose nothing and keep their frame rate (against the same window before the
//! specialist came), and the specialist's 80 requests reach the publishers as at most one a second
//! per subscription. The specialist still gets pictures. Prints the counts.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use straja_gateway::auth::Role;
use support::consultation_participant::{Participant, create, join};
use support::gateway_under_test::{GatewayUnderTest, https_client};
use support::whep_viewer::Reception;

/// How long each measured window lasts.
const WINDOW: Duration = Duration::from_secs(4);
/// The poor link.
const LOSS_PERCENT: u32 = 20;
const DELAY: Duration = Duration::from_millis(40);

/// What a subscription received during a window.
#[derive(Debug)]
struct Delta {
    frames: u64,
    broken: u64,
    gaps: u64,
}

fn delta(before: &Reception, after: &Reception) -> Delta {
    Delta {
        frames: after.complete_frames - before.complete_frames,
        broken: after.broken_frames - before.broken_frames,
        gaps: after.sequence_gaps - before.sequence_gaps,
    }
}

fn receptions(participants: &[&Participant]) -> Vec<Reception> {
    participants
        .iter()
        .flat_map(|p| {
            p.subscriptions
                .iter()
                .map(|(_, viewer, _)| viewer.reception())
        })
        .collect()
}

async fn joined_token(gateway: &GatewayUnderTest, invite: &Value) -> String {
    let joined: Value = join(
        &gateway.base_url,
        &gateway.anonymous,
        invite["url"].as_str().expect("invite url"),
    )
    .await
    .json()
    .await
    .expect("JSON");
    joined["token"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_participant_on_a_poor_link_does_not_degrade_the_others() {
    let gateway = GatewayUnderTest::start(&[]).await;
    let clinician_token = gateway.token("dr.ana", Role::Clinician, &[]);
    let clinician = https_client(&gateway.ca_cert, Some(&clinician_token));
    let created = create(&gateway.base_url, &clinician, &["Patient", "Specialist"]).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let invites = created["invites"].as_array().expect("invites").clone();
    let (base, ca) = (gateway.base_url.clone(), gateway.ca_cert.clone());
    let mut host = Participant::connect(&base, &ca, &id, "p1", &clinician_token).await;
    let patient_token = joined_token(&gateway, &invites[0]).await;
    let mut patient = Participant::connect(&base, &ca, &id, "p2", &patient_token).await;
    let specialist_token = joined_token(&gateway, &invites[1]).await;
    let mut specialist = Participant::connect(&base, &ca, &id, "p3", &specialist_token).await;
    for (guest, participant) in [("p2", &mut patient), ("p3", &mut specialist)] {
        host.signal
            .send(json!({ "type": "admit", "participant": guest }))
            .await;
        participant
            .signal
            .expect("participant", |m| {
                m["participant"]["id"] == guest && m["participant"]["presence"] == "admitted"
            })
            .await;
    }
    host.publish().await;
    patient.publish().await;
    specialist.publish().await;

    // The clinician and the patient watch each other on loopback: the baseline window.
    host.subscribe_when_published("p2").await;
    patient.subscribe_when_published("p1").await;
    for participant in [&host, &patient] {
        let reception = participant.subscriptions[0]
            .1
            .wait_for_frames(30, Duration::from_secs(20))
            .await;
        assert!(reception.complete_frames >= 30, "{reception:?}");
    }
    let before = receptions(&[&host, &patient]);
    tokio::time::sleep(WINDOW).await;
    let baseline: Vec<Delta> = before
        .iter()
        .zip(receptions(&[&host, &patient]))
        .map(|(b, a)| delta(b, &a))
        .collect();

    // The specialist watches both over the poor link.
    let mut links = Vec::new();
    for other in ["p1", "p2"] {
        specialist
            .signal
            .expect("participant", |m| {
                m["participant"]["id"] == other && m["participant"]["publishing"] == true
            })
            .await;
        links.push(
            specialist
                .subscribe_over(other, Some((LOSS_PERCENT, DELAY)))
                .await
                .expect("a poor link"),
        );
    }
    for (other, viewer, _) in &specialist.subscriptions {
        let reception = viewer.wait_for_frames(5, Duration::from_secs(30)).await;
        assert!(
            reception.complete_frames >= 5,
            "the specialist sees {other} even over the poor link: {reception:?}"
        );
    }

    // The window with the poor participant asking for keyframes all the time.
    let requests = "straja_keyframe_requests_total{camera=\"consultation\"}";
    let asked = "straja_viewer_keyframe_requests_total{camera=\"consultation\"}";
    let requests_before = gateway.metric(requests).await.unwrap_or(0.0);
    let asked_before = gateway.metric(asked).await.unwrap_or(0.0);
    let before = receptions(&[&host, &patient]);
    let poor_before = receptions(&[&specialist]);
    let ticks = (WINDOW.as_millis() / 100) as u64;
    for _ in 0..ticks {
        for (_, viewer, _) in &specialist.subscriptions {
            viewer.send_pli().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let with_poor: Vec<Delta> = before
        .iter()
        .zip(receptions(&[&host, &patient]))
        .map(|(b, a)| delta(b, &a))
        .collect();
    let poor: Vec<Delta> = poor_before
        .iter()
        .zip(receptions(&[&specialist]))
        .map(|(b, a)| delta(b, &a))
        .collect();
    let forwarded = gateway.metric(requests).await.unwrap_or(0.0) - requests_before;
    let received = gateway.metric(asked).await.unwrap_or(0.0) - asked_before;
    let lost: u64 = links
        .iter()
        .map(|l| {
            l.counts
                .down_lost
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    println!(
        "poor link: healthy views, {} s before the specialist {baseline:?}, with {with_poor:?}; \
         the specialist's views {poor:?}; its link dropped {lost} datagrams on the way to it; \
         keyframe requests: {received} received from it, {forwarded} passed to the publishers",
        WINDOW.as_secs()
    );

    assert!(lost > 0, "the link lost nothing: not a poor link");
    for ((healthy, base), who) in with_poor.iter().zip(&baseline).zip(["p1←p2", "p2←p1"]) {
        assert_eq!(
            (healthy.broken, healthy.gaps),
            (0, 0),
            "{who} lost packets while the specialist was on a poor link"
        );
        assert!(
            healthy.frames * 10 >= base.frames * 9,
            "{who}: {} frames in the window, {} before the specialist came",
            healthy.frames,
            base.frames
        );
    }
    assert!(
        received >= (ticks as f64),
        "the specialist's requests reached the gateway ({received})"
    );
    let per_subscription = WINDOW.as_secs_f64() + 1.0;
    assert!(
        forwarded <= 2.0 * per_subscription,
        "{forwarded} keyframe requests reached the publishers for {received} asked"
    );
    assert!(
        poor.iter().all(|p| p.frames > 0),
        "the specialist still gets pictures: {poor:?}"
    );

    for publisher in [host.publisher, patient.publisher, specialist.publisher]
        .into_iter()
        .flatten()
    {
        publisher.close().await;
    }
    drop(links);
    gateway.shutdown().await;
}
