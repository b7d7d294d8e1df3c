//! CPU per consultation: the release gateway (its own process) relaying N consultations of three
//! participants each (a clinician and two invitees: webrtc-rs peers in this process, each
//! publishing 320×240 30 fps H.264 and Opus and subscribing to the two others, so six
//! subscriptions per consultation), measured from `/proc` over a window once every subscription
//! receives frames. Prints, for each N: the gateway's CPU (% of a core), its CPU per consultation
//! above the idle gateway, RSS, and the frames per second each subscription receives.
//!
//! `cargo bench --bench consultation_load` (add `-- --quick` for CI's quick mode: N = 0, 1).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::consultation_participant::{Participant, create, join};
use support::gateway_process::GatewayProcess;

/// Starts one consultation with three participants publishing and subscribing to each other.
async fn consultation(daemon: &GatewayProcess, clinician_token: &str) -> Vec<Participant> {
    let base = daemon.base_url.clone();
    let clinician = daemon.client(clinician_token);
    let created = create(&base, &clinician, &["Patient", "Interpreter"]).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let anonymous = support::gateway_under_test::https_client(&daemon.ca_cert, None);
    let mut participants =
        vec![Participant::connect(&base, &daemon.ca_cert, &id, "p1", clinician_token).await];
    for (i, invite) in created["invites"]
        .as_array()
        .expect("invites")
        .iter()
        .enumerate()
    {
        let joined: serde_json::Value =
            join(&base, &anonymous, invite["url"].as_str().expect("url"))
                .await
                .json()
                .await
                .expect("JSON");
        let token = joined["token"].as_str().expect("token").to_owned();
        let id_of = format!("p{}", i + 2);
        participants.push(Participant::connect(&base, &daemon.ca_cert, &id, &id_of, &token).await);
        participants[0]
            .signal
            .send(serde_json::json!({ "type": "admit", "participant": id_of }))
            .await;
    }
    for participant in participants.iter_mut() {
        participant.publish().await;
    }
    let ids: Vec<String> = participants.iter().map(|p| p.id.clone()).collect();
    for participant in participants.iter_mut() {
        for other in &ids {
            if *other != participant.id {
                participant.subscribe_when_published(other).await;
            }
        }
    }
    participants
}

fn frames(consultations: &[Vec<Participant>]) -> Vec<u64> {
    consultations
        .iter()
        .flatten()
        .flat_map(|p| {
            p.subscriptions
                .iter()
                .map(|(_, v, _)| v.reception().complete_frames)
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (counts, window): (&[usize], Duration) = if quick {
        (&[0, 1], Duration::from_secs(5))
    } else {
        (&[0, 1, 2, 4], Duration::from_secs(10))
    };
    let daemon = GatewayProcess::start("", None);
    let clinician_token = daemon.token(&["--role", "clinician", "--subject", "dr.ana"]);
    println!(
        "consultation load: release binary, consultations of 3 participants (320×240 30 fps H.264 \
         + Opus each, 6 subscriptions), {}-s windows",
        window.as_secs()
    );
    println!(
        "{:>13} {:>12} {:>24} {:>9} {:>22}",
        "consultations",
        "CPU % core",
        "CPU % core/consultation",
        "RSS MiB",
        "frames/subscription·s"
    );
    let mut consultations: Vec<Vec<Participant>> = Vec::new();
    let mut baseline = None;
    for &count in counts {
        while consultations.len() < count {
            consultations.push(consultation(&daemon, &clinician_token).await);
        }
        // Every subscription receives before the window starts (bounded).
        let deadline = Instant::now() + Duration::from_secs(30);
        while frames(&consultations).iter().any(|&f| f < 30) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before = frames(&consultations);
        let cpu_start = daemon.cpu_seconds();
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = (daemon.cpu_seconds() - cpu_start) / elapsed;
        let after = frames(&consultations);
        let baseline = *baseline.get_or_insert(cpu);
        let (per_consultation, fps) = if count > 0 {
            let received: u64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();
            (
                format!("{:.1}", (cpu - baseline) * 100.0 / count as f64),
                format!("{:.1}", received as f64 / after.len() as f64 / elapsed),
            )
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "{count:>13} {:>12.1} {per_consultation:>24} {:>9.1} {fps:>22}",
            cpu * 100.0,
            daemon.rss_mib()
        );
    }
    for participant in consultations.into_iter().flatten() {
        if let Some(publisher) = participant.publisher {
            publisher.close().await;
        }
    }
    drop(daemon);
}
