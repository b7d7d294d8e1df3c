//! A consultation through the gateway, with real WebRTC peers and the real signalling socket (no
//! browser: `tests/browser_consultation.rs` drives the pages): a clinician starts it with two
//! invitations; the invitees join from their links, wait, and are admitted; each participant
//! publishes real H.264 and Opus (webrtc-rs) and subscribes to the others through the gateway,
//! and each receives ≥ 60 complete frames and the audio of every other. Also: a reused invitation
//! and an unknown one are refused (410); a waiting invitee cannot publish; a token of another
//! consultation, or no subprotocol, is refused at the socket; the recording cannot start before
//! everyone consents, and nothing touches the disk before; then the clinician records: a track
//! per participant and kind, encrypted, that `straja recordings export --consultation` writes
//! into one file ffprobe reads with 3 videos and 3 audios of the recording's length; a
//! participant who leaves is gone for the others; the clinician's end closes everyone's socket.
//! Prints each participant's time from publish to the first frame of
//! each other participant.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use straja_gateway::auth::Role;
use support::consultation_client::ConsultationClient;
use support::consultation_participant::{Participant, create, join};
use support::gateway_under_test::GatewayUnderTest;
use support::recordings;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_participants_see_and_hear_each_other_through_the_gateway() {
    let gateway = GatewayUnderTest::start(&[]).await;
    let clinician_token = gateway.token("dr.ana", Role::Clinician, &[]);
    let clinician =
        support::gateway_under_test::https_client(&gateway.ca_cert, Some(&clinician_token));
    let created = create(&gateway.base_url, &clinician, &["Patient", "Interpreter"]).await;
    let id = created["id"].as_str().expect("id").to_owned();
    let invites = created["invites"].as_array().expect("invites").clone();
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[0]["label"], "Patient");
    let patient_url = invites[0]["url"].as_str().expect("url").to_owned();
    assert!(patient_url.starts_with("/join#invite="), "{patient_url}");

    // Security staff cannot start one; a security token cannot open its socket.
    let refused = gateway
        .client
        .post(gateway.url("/api/v1/consultations"))
        .json(&json!({}))
        .send()
        .await
        .expect("create as security");
    assert_eq!(refused.status(), 403);

    let mut host = Participant {
        id: "p1".into(),
        signal: ConsultationClient::connect(
            &gateway.base_url,
            &gateway.ca_cert,
            &id,
            &clinician_token,
        )
        .await,
        publisher: None,
        subscriptions: Vec::new(),
    };
    let welcome = host.signal.expect("welcome", |_| true).await;
    assert_eq!(welcome["you"], "p1");

    // The invitees join; the links work once.
    let joined = join(&gateway.base_url, &gateway.anonymous, &patient_url).await;
    assert_eq!(joined.status(), 200);
    let joined: Value = joined.json().await.expect("JSON");
    assert_eq!(joined["consultation"], id.as_str());
    let patient_token = joined["token"].as_str().expect("token").to_owned();
    let reused = join(&gateway.base_url, &gateway.anonymous, &patient_url).await;
    assert_eq!(reused.status(), 410, "a used invitation is refused");
    let unknown = join(&gateway.base_url, &gateway.anonymous, "/join#invite=00ff").await;
    assert_eq!(unknown.status(), 410);
    let joined: Value = join(
        &gateway.base_url,
        &gateway.anonymous,
        invites[1]["url"].as_str().expect("url"),
    )
    .await
    .json()
    .await
    .expect("JSON");
    let interpreter_token = joined["token"].as_str().expect("token").to_owned();

    // No subprotocol: refused at the upgrade.
    let without = ConsultationClient::try_connect(
        &gateway.base_url,
        &gateway.ca_cert,
        &id,
        &patient_token,
        false,
    )
    .await;
    assert!(
        without.is_err_and(|e| e.starts_with("400")),
        "no subprotocol"
    );

    let mut patient = Participant {
        id: "p2".into(),
        signal: ConsultationClient::connect(
            &gateway.base_url,
            &gateway.ca_cert,
            &id,
            &patient_token,
        )
        .await,
        publisher: None,
        subscriptions: Vec::new(),
    };
    let welcome = patient.signal.expect("welcome", |_| true).await;
    assert_eq!(welcome["you"], "p2");
    assert_eq!(welcome["participants"][0]["presence"], "waiting");
    host.signal
        .expect("participant", |m| {
            m["participant"]["id"] == "p2" && m["participant"]["presence"] == "waiting"
        })
        .await;
    // Waiting: publishing is refused.
    patient
        .signal
        .send(json!({ "type": "publish", "sdp": "v=0" }))
        .await;
    let refused = patient.signal.expect("error", |_| true).await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or("")
            .contains("waiting room"),
        "{refused}"
    );

    let mut interpreter = Participant {
        id: "p3".into(),
        signal: ConsultationClient::connect(
            &gateway.base_url,
            &gateway.ca_cert,
            &id,
            &interpreter_token,
        )
        .await,
        publisher: None,
        subscriptions: Vec::new(),
    };
    interpreter.signal.expect("welcome", |_| true).await;
    for guest in ["p2", "p3"] {
        host.signal
            .send(json!({ "type": "admit", "participant": guest }))
            .await;
    }
    patient
        .signal
        .expect("participant", |m| {
            m["participant"]["id"] == "p2" && m["participant"]["presence"] == "admitted"
        })
        .await;

    // Everyone publishes; everyone subscribes to everyone else.
    host.publish().await;
    patient.publish().await;
    interpreter.publish().await;
    let everyone = ["p1", "p2", "p3"];
    for participant in [&mut host, &mut patient, &mut interpreter] {
        for other in everyone {
            if other != participant.id {
                participant
                    .signal
                    .expect("participant", |m| {
                        m["participant"]["id"] == other && m["participant"]["publishing"] == true
                    })
                    .await;
                participant.subscribe(other).await;
            }
        }
    }
    let mut report = Vec::new();
    for participant in [&host, &patient, &interpreter] {
        for (of, viewer, asked) in &participant.subscriptions {
            let reception = viewer.wait_for_frames(60, Duration::from_secs(20)).await;
            assert!(
                reception.complete_frames >= 60,
                "{} got {} frames of {of}: {reception:?}",
                participant.id,
                reception.complete_frames
            );
            assert!(
                reception.audio_packets >= 25,
                "{} heard {of}: {reception:?}",
                participant.id
            );
            assert_eq!(reception.first_frame_was_keyframe, Some(true));
            let first = reception.first_frame_at.expect("a first frame");
            report.push(format!(
                "{}←{of} {} ms",
                participant.id,
                first.duration_since(*asked).as_millis()
            ));
        }
    }
    println!(
        "consultation: subscribe to first frame: {}",
        report.join(", ")
    );

    // Everyone's join time (entering the call to the first subscription answered) was measured.
    let joins = gateway
        .running
        .gateway()
        .metrics
        .consultation_join_seconds
        .get_sample_count();
    assert_eq!(joins, 3, "one join time per participant");

    // The clinician's network blips: their page re-publishes on a fresh connection. The others'
    // subscriptions to them carry on (the gateway asks the new connection for a keyframe).
    let old = host.publisher.take().expect("publishing");
    let before = patient.subscriptions[0].1.reception().complete_frames;
    old.close().await;
    let republished = Instant::now();
    host.publish().await;
    let after = patient.subscriptions[0]
        .1
        .wait_for_frames(before + 30, Duration::from_secs(20))
        .await;
    assert!(
        after.complete_frames >= before + 30,
        "the patient's view of the clinician did not resume after the re-publish: {after:?}"
    );
    println!(
        "consultation: re-publish to the patient's next 30 frames of it: {} ms",
        republished.elapsed().as_millis()
    );

    // Recording waits for everyone's consent.
    host.signal
        .send(json!({ "type": "record", "on": true }))
        .await;
    let refused = host
        .signal
        .expect("error", |m| {
            m["message"].as_str().unwrap_or("").contains("consent")
        })
        .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or("")
            .contains("p1, p2, p3"),
        "{refused}"
    );
    // No media has touched the disk.
    let recordings_dir = gateway.state_dir().join("consultation-recordings");
    assert_eq!(
        recordings::files_under(&recordings_dir),
        Vec::<std::path::PathBuf>::new(),
        "nothing is recorded without consent"
    );

    // Everyone consents; the clinician records for a few seconds.
    for participant in [&mut host, &mut patient, &mut interpreter] {
        participant.signal.send(json!({ "type": "consent" })).await;
    }
    for guest in ["p2", "p3"] {
        host.signal
            .expect("participant", |m| {
                m["participant"]["id"] == guest && m["participant"]["consented"] == true
            })
            .await;
    }
    let start_asked = Instant::now();
    host.signal
        .send(json!({ "type": "record", "on": true }))
        .await;
    for participant in [&mut host, &mut patient, &mut interpreter] {
        participant
            .signal
            .expect("recording", |m| m["state"] == "on")
            .await;
    }
    let recording_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let shortest = recording_started.elapsed().as_secs_f64();
    host.signal
        .send(json!({ "type": "record", "on": false }))
        .await;
    patient
        .signal
        .expect("recording", |m| m["state"] == "off")
        .await;
    let recorded = shortest..=start_asked.elapsed().as_secs_f64();
    assert_eq!(
        gateway
            .metric("straja_consultation_recordings")
            .await
            .unwrap_or(-1.0),
        0.0,
        "the recording stopped"
    );

    // Chat reaches everyone admitted.
    patient
        .signal
        .send(json!({ "type": "chat", "text": "good morning" }))
        .await;
    interpreter
        .signal
        .expect("chat", |m| m["from"] == "p2" && m["text"] == "good morning")
        .await;

    // A page that floods the socket is cut off past the bound (the consultation goes on).
    for i in 0..60 {
        patient
            .signal
            .send(json!({ "type": "chat", "text": format!("spam {i}") }))
            .await;
    }
    patient
        .signal
        .expect("error", |m| {
            m["message"]
                .as_str()
                .unwrap_or("")
                .contains("too many messages")
        })
        .await;

    // The interpreter leaves: gone for the others, their subscriptions to it end.
    interpreter.signal.send(json!({ "type": "leave" })).await;
    host.signal
        .expect("participant_left", |m| m["participant"] == "p3")
        .await;
    interpreter.signal.closed().await;

    // The clinician ends it: every socket closes, and it is gone.
    host.signal.send(json!({ "type": "end" })).await;
    let last = patient.signal.closed().await;
    assert!(last.iter().any(|m| m["type"] == "ended"), "{last:#?}");
    let gone = ConsultationClient::try_connect(
        &gateway.base_url,
        &gateway.ca_cert,
        &id,
        &patient_token,
        true,
    )
    .await;
    assert!(
        gone.is_err_and(|e| e.starts_with("404")),
        "an ended consultation's socket"
    );
    for publisher in [host.publisher, patient.publisher, interpreter.publisher]
        .into_iter()
        .flatten()
    {
        publisher.close().await;
    }
    let config_file = gateway.config_file.clone();
    let _state = gateway.shutdown_keeping_state().await;

    // The recording: encrypted on disk (no MP4 box in the clear), a track per participant and
    // kind, exported with the real command into one file a real player reads.
    let files = recordings::files_under(&recordings_dir);
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/p3-audio/")),
        "{files:#?}"
    );
    for file in &files {
        let bytes = std::fs::read(file).expect("a segment");
        assert!(
            !bytes.windows(4).any(|w| w == b"moof" || w == b"ftyp"),
            "{} holds MP4 in the clear",
            file.display()
        );
    }
    let text = recordings::check_consultation_export(
        &config_file,
        &id,
        "consultation-recording.mp4",
        3,
        recorded,
    );
    println!("consultation: {text}");
    let listed = recordings::list_consultations(&config_file);
    assert!(
        listed.contains(&id) && listed.contains("6 track(s)"),
        "{listed}"
    );
    let (unknown, text) = recordings::export_consultation(
        &config_file,
        "0123456789abcdef0123456789abcdef",
        &support::test_artifacts::artifact_path("consultation-unknown.mp4"),
    );
    assert!(!unknown && text.contains("no recording"), "{text}");
}
