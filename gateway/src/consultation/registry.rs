//! The consultations running on the box, and what carries out their rooms' effects: each
//! participant's signalling link (a channel to its WebSocket task), and its media — a video and
//! an audio feed that its publishing connection fills and from which every other participant's
//! subscription is served, exactly as camera viewers are served from a camera's feeds.
//!
//! Everything is in memory: a consultation leaves no trace on disk but its audit records (which
//! name no participant) and, only when everyone consented and the clinician started it, its
//! recording (`crate::recording::consultation_recordings`); it is forgotten as soon as it ends.
//! A recording starts only once it is on record in the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

use super::invite::{Invite, NOT_VALID};
use super::protocol::{ParticipantId, RecordingState, ServerMessage};
use super::room::{Effect, HOST, JoinError, Room};
use crate::audit::{Action, AuditEvent, Outcome};
use crate::auth::Role;
use crate::config::ConsultationsConfig;
use crate::gateway::Gateway;
use crate::hub::CameraFeed;
use crate::webrtc::ViewerCloser;
use crate::webrtc::publisher_session::PublisherCloser;
use crate::webrtc::whep_peer::AudioCodec;

/// How long a participant whose signalling connection was lost keeps their place (and the
/// others their view of them) before being removed.
pub const AWAY_LIMIT: Duration = Duration::from_secs(120);

/// What a participant's WebSocket task is asked to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send this message.
    Message(ServerMessage),
    /// Close the socket (after what was queued before).
    Close,
}

/// One participant's media.
struct Media {
    video: Arc<CameraFeed>,
    audio: Arc<CameraFeed>,
    /// Its publishing connection (dropping it ends the connection).
    publisher: Option<PublisherCloser>,
    /// Its subscriptions, by the participant it receives.
    subscriptions: HashMap<ParticipantId, ViewerCloser>,
}

/// A participant's signalling link: an id (to tell an old socket from its replacement) and the
/// channel to its task.
struct Link {
    id: u64,
    outbound: mpsc::UnboundedSender<Outbound>,
}

struct State {
    room: Room,
    invites: Vec<Invite>,
    links: HashMap<ParticipantId, Link>,
    media: HashMap<ParticipantId, Media>,
    next_link: u64,
    /// When each participant entered the call, until their first subscription is answered.
    entered: HashMap<ParticipantId, std::time::Instant>,
}

/// One running consultation.
pub struct Consultation {
    /// Its id (32 hex characters).
    pub id: String,
    /// The token subject of the clinician who started it.
    pub host_subject: String,
    /// When it is ended if nobody ends it (Unix seconds).
    pub ends_at: u64,
    state: Mutex<State>,
}

/// A new consultation's invitation, to hand to the clinician.
#[derive(Debug, Clone)]
pub struct IssuedInvite {
    /// Who it is for.
    pub label: String,
    /// The secret for the link.
    pub secret: String,
    /// When it stops working (Unix seconds).
    pub expires_at: u64,
}

/// A successful join: the consultation, the participant and how long its token may live.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The consultation's id.
    pub consultation: String,
    /// The new participant's id.
    pub participant: ParticipantId,
    /// Until the consultation's end.
    pub token_ttl: Duration,
}

/// Every consultation on the box.
pub struct Consultations {
    rooms: Mutex<HashMap<String, Arc<Consultation>>>,
    config: ConsultationsConfig,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_id() -> String {
    crate::sessions::new_session_id()
}

impl Consultations {
    /// None yet, run with `config`.
    pub fn new(config: ConsultationsConfig) -> Consultations {
        Consultations {
            rooms: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ConsultationsConfig {
        &self.config
    }

    /// Starts a consultation for the clinician `host_subject` (shown as `host_name`), with an
    /// invitation per label; at `now` (Unix seconds).
    pub fn create(
        &self,
        host_subject: &str,
        host_name: &str,
        labels: &[String],
        now: u64,
    ) -> Result<(Arc<Consultation>, Vec<IssuedInvite>), String> {
        let max_guests = self.config.max_participants.saturating_sub(1);
        if labels.len() > max_guests {
            return Err(format!(
                "at most {max_guests} invitations: a consultation has at most {} participants",
                self.config.max_participants
            ));
        }
        let expires_at = now + self.config.invite_hours * 3600;
        let mut invites = Vec::new();
        let mut issued = Vec::new();
        for label in labels {
            let (invite, secret) = Invite::new(label.trim(), expires_at);
            issued.push(IssuedInvite {
                label: invite.label.clone(),
                secret,
                expires_at,
            });
            invites.push(invite);
        }
        let consultation = Arc::new(Consultation {
            id: new_id(),
            host_subject: host_subject.to_owned(),
            ends_at: now + self.config.max_hours * 3600,
            state: Mutex::new(State {
                room: Room::new(host_name, self.config.max_participants),
                invites,
                links: HashMap::new(),
                media: HashMap::new(),
                next_link: 0,
                entered: HashMap::new(),
            }),
        });
        lock(&self.rooms).insert(consultation.id.clone(), consultation.clone());
        Ok((consultation, issued))
    }

    /// The consultation with this id, while it runs.
    pub fn get(&self, id: &str) -> Option<Arc<Consultation>> {
        lock(&self.rooms).get(id).cloned()
    }

    /// Consultations running now.
    pub fn len(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// True when none runs.
    pub fn is_empty(&self) -> bool {
        lock(&self.rooms).is_empty()
    }

    /// Joins through the invitation whose secret this is, at `now`: consumes it and adds its
    /// guest to the waiting room.
    pub fn join(&self, secret: &str, now: u64) -> Result<Joined, &'static str> {
        let rooms: Vec<Arc<Consultation>> = lock(&self.rooms).values().cloned().collect();
        for consultation in rooms {
            let mut state = lock(&consultation.state);
            let Some(index) = state.invites.iter().position(|i| i.matches(secret)) else {
                continue;
            };
            state.invites[index].consume(now)?;
            let label = state.invites[index].label.clone();
            let participant = state.room.add_guest(&label).map_err(|e| match e {
                JoinError::Full(_) => "the consultation is full",
                JoinError::Ended => NOT_VALID,
            })?;
            return Ok(Joined {
                consultation: consultation.id.clone(),
                participant,
                token_ttl: Duration::from_secs(consultation.ends_at.saturating_sub(now).max(60)),
            });
        }
        Err(NOT_VALID)
    }

    /// Forgets an ended consultation.
    fn forget(&self, id: &str) {
        lock(&self.rooms).remove(id);
    }

    /// Ends the consultations past their end time; returns them (for the audit log).
    pub fn end_expired(&self, gateway: &Gateway, now: u64) -> Vec<String> {
        let due: Vec<Arc<Consultation>> = lock(&self.rooms)
            .values()
            .filter(|c| now >= c.ends_at)
            .cloned()
            .collect();
        for consultation in &due {
            consultation.end(gateway, "the consultation reached its time limit");
        }
        due.into_iter().map(|c| c.id.clone()).collect()
    }

    /// Ends every consultation (the daemon stopping).
    pub fn end_all(&self, gateway: &Gateway) {
        let rooms: Vec<Arc<Consultation>> = lock(&self.rooms).values().cloned().collect();
        for consultation in rooms {
            consultation.end(gateway, "the gateway is shutting down");
        }
    }

    /// Participants connected now, all consultations together.
    pub fn participants(&self) -> usize {
        let rooms: Vec<Arc<Consultation>> = lock(&self.rooms).values().cloned().collect();
        // One lock at a time: an ending consultation takes its state's, then the registry's.
        rooms.iter().map(|c| lock(&c.state).links.len()).sum()
    }
}

impl Consultation {
    /// Whether `participant` is in it.
    pub fn has(&self, participant: &str) -> bool {
        lock(&self.state).room.contains(participant)
    }

    /// Opens `participant`'s signalling link; returns its id and what to send on the socket. An
    /// older link of the same participant (another tab, a socket that died unnoticed) is closed.
    pub fn connect(
        &self,
        gateway: &Gateway,
        participant: &str,
    ) -> (u64, mpsc::UnboundedReceiver<Outbound>) {
        let (outbound, receiver) = mpsc::unbounded_channel();
        let mut state = lock(&self.state);
        let id = state.next_link;
        state.next_link += 1;
        if let Some(old) = state
            .links
            .insert(participant.to_owned(), Link { id, outbound })
        {
            let _ = old.outbound.send(Outbound::Close);
        }
        let effects = state.room.connect(participant);
        self.apply(gateway, &mut state, effects);
        (id, receiver)
    }

    /// The link `link` of `participant` closed.
    pub fn disconnect(&self, gateway: &Gateway, participant: &str, link: u64) {
        let mut state = lock(&self.state);
        if state.links.get(participant).is_none_or(|l| l.id != link) {
            return; // replaced by a newer link already
        }
        state.links.remove(participant);
        let effects = state.room.disconnect(participant);
        self.apply(gateway, &mut state, effects);
    }

    /// A message from `participant`.
    pub fn handle(
        &self,
        gateway: &Gateway,
        participant: &str,
        message: super::protocol::ClientMessage,
    ) {
        let mut state = lock(&self.state);
        let effects = state.room.handle(participant, message);
        self.apply(gateway, &mut state, effects);
    }

    /// Removes `participant` if they are still away (no signalling link): their connection was
    /// lost [`AWAY_LIMIT`] ago and they did not come back. The clinician gone that long ends the
    /// consultation.
    pub fn remove_if_away(&self, gateway: &Gateway, participant: &str) {
        let mut state = lock(&self.state);
        if state.links.contains_key(participant) || !state.room.contains(participant) {
            return;
        }
        tracing::info!(consultation = %short(&self.id), %participant, "participant away too long: removed");
        let effects = state.room.remove(participant);
        self.apply(gateway, &mut state, effects);
    }

    /// Ends it for everyone.
    pub fn end(&self, gateway: &Gateway, reason: &str) {
        let mut state = lock(&self.state);
        let effects = state.room.end(reason);
        self.apply(gateway, &mut state, effects);
    }

    /// Carries out a room's effects (and those they lead to).
    fn apply(&self, gateway: &Gateway, state: &mut State, effects: Vec<Effect>) {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        // Bounded: each effect leads to at most one round of follow-ups (a publish's
        // announcement), and a room has at most a handful of participants.
        let mut budget = 1024;
        while let Some(effect) = queue.pop_front() {
            budget -= 1;
            if budget == 0 {
                tracing::error!(consultation = %short(&self.id), "too many effects; some were dropped");
                break;
            }
            match effect {
                Effect::Send(to, message) => send(state, &to, message),
                Effect::Publish { participant, sdp } => {
                    queue.extend(self.publish(gateway, state, &participant, &sdp));
                }
                Effect::Subscribe {
                    participant,
                    of,
                    sdp,
                } => self.subscribe(gateway, state, &participant, &of, &sdp),
                Effect::DropMedia(participant) => {
                    gateway
                        .recordings
                        .consultations
                        .stop(&self.id, &participant);
                    state.media.remove(&participant);
                    for media in state.media.values_mut() {
                        media.subscriptions.remove(&participant);
                    }
                }
                Effect::Recording(true) => queue.extend(self.start_recording(gateway, state)),
                Effect::Recording(false) => self.stop_recording(gateway, "stopped"),
                Effect::Disconnect(participant) => {
                    if let Some(link) = state.links.remove(&participant) {
                        let _ = link.outbound.send(Outbound::Close);
                    }
                }
                Effect::Entered(participant) => {
                    state.entered.insert(participant, std::time::Instant::now());
                }
                Effect::Ended => {
                    if gateway.recordings.consultations.is_recording(&self.id) {
                        self.stop_recording(gateway, "the consultation ended");
                    }
                    state.media.clear();
                    for (_, link) in state.links.drain() {
                        let _ = link.outbound.send(Outbound::Close);
                    }
                    gateway.consultations.forget(&self.id);
                    tracing::info!(consultation = %short(&self.id), "consultation ended");
                }
            }
        }
    }

    fn media<'a>(gateway: &Gateway, state: &'a mut State, participant: &str) -> &'a mut Media {
        state
            .media
            .entry(participant.to_owned())
            .or_insert_with(|| Media {
                video: CameraFeed::new(participant, gateway.metrics.consultation_media()),
                audio: CameraFeed::audio(participant, gateway.metrics.consultation_media()),
                publisher: None,
                subscriptions: HashMap::new(),
            })
    }

    fn publish(
        &self,
        gateway: &Gateway,
        state: &mut State,
        participant: &str,
        sdp: &str,
    ) -> Vec<Effect> {
        let media = Self::media(gateway, state, participant);
        let (video, audio) = (media.video.clone(), media.audio.clone());
        let consultation = short(&self.id).to_owned();
        let who = participant.to_owned();
        let started = gateway
            .webrtc
            .start_publisher(sdp, video, audio, move |reason| {
                tracing::info!(%consultation, participant = %who, ?reason, "publisher ended");
            });
        match started {
            Ok(Ok(started)) => {
                // Replacing an older connection (a re-publish after a network blip) ends it; the
                // feeds, and everyone's subscriptions to them, carry on.
                Self::media(gateway, state, participant).publisher = Some(started.close);
                let mut effects = Vec::new();
                if state.room.recording() == RecordingState::On
                    && let Err(e) = self.record_participant(gateway, state, participant)
                {
                    tracing::error!(consultation = %short(&self.id), %participant, error = %e, "cannot record a participant who published: the recording stops");
                    effects = self.recording_failed(gateway, state);
                }
                send(
                    state,
                    participant,
                    ServerMessage::PublishAnswer {
                        sdp: started.answer_sdp,
                    },
                );
                effects.extend(state.room.published(participant));
                effects
            }
            Ok(Err(offer)) => {
                send(
                    state,
                    participant,
                    ServerMessage::Error {
                        message: format!("publish: {offer}"),
                    },
                );
                Vec::new()
            }
            Err(setup) => {
                tracing::error!(error = %setup, "cannot set up a publisher");
                send(
                    state,
                    participant,
                    ServerMessage::Error {
                        message: "publish: the gateway could not set up the connection".into(),
                    },
                );
                Vec::new()
            }
        }
    }

    fn subscribe(
        &self,
        gateway: &Gateway,
        state: &mut State,
        participant: &str,
        of: &str,
        sdp: &str,
    ) {
        let source = Self::media(gateway, state, of);
        let (video, audio) = (source.video.clone(), source.audio.clone());
        let consultation = short(&self.id).to_owned();
        let (who, whom) = (participant.to_owned(), of.to_owned());
        let started = gateway.webrtc.start_viewer(
            sdp,
            video,
            Some((audio, AudioCodec::Opus)),
            move |reason| {
                tracing::debug!(%consultation, participant = %who, of = %whom, ?reason, "subscription ended");
            },
        );
        match started {
            Ok(Ok(started)) => {
                if let Some(entered) = state.entered.remove(participant) {
                    gateway
                        .metrics
                        .consultation_join_seconds
                        .observe(entered.elapsed().as_secs_f64());
                }
                Self::media(gateway, state, participant)
                    .subscriptions
                    .insert(of.to_owned(), started.close);
                send(
                    state,
                    participant,
                    ServerMessage::SubscribeAnswer {
                        participant: of.to_owned(),
                        sdp: started.answer_sdp,
                    },
                );
            }
            Ok(Err(offer)) => send(
                state,
                participant,
                ServerMessage::Error {
                    message: format!("subscribe to {of}: {offer}"),
                },
            ),
            Err(setup) => {
                tracing::error!(error = %setup, "cannot set up a subscription");
                send(
                    state,
                    participant,
                    ServerMessage::Error {
                        message: format!(
                            "subscribe to {of}: the gateway could not set up the connection"
                        ),
                    },
                );
            }
        }
    }

    /// Starts recording every participant who publishes, once the start is on record; on any
    /// failure, nothing is recorded and the recording is off for everyone.
    fn start_recording(&self, gateway: &Gateway, state: &mut State) -> Vec<Effect> {
        if let Err(e) = self.audit_recording(gateway, Outcome::Allowed, "started") {
            tracing::error!(consultation = %short(&self.id), error = %e, "the recording's start cannot be put on record: not recording");
            send(
                state,
                HOST,
                ServerMessage::Error {
                    message: "the audit log cannot be written: nothing is being recorded".into(),
                },
            );
            return state.room.stop_recording_silently();
        }
        let publishing: Vec<ParticipantId> = state
            .media
            .iter()
            .filter(|(_, m)| m.publisher.is_some())
            .map(|(p, _)| p.clone())
            .collect();
        for participant in publishing {
            if let Err(e) = self.record_participant(gateway, state, &participant) {
                tracing::error!(consultation = %short(&self.id), %participant, error = %e, "cannot start recording a participant: the recording stops");
                return self.recording_failed(gateway, state);
            }
        }
        tracing::info!(consultation = %short(&self.id), "consultation recording started");
        Vec::new()
    }

    fn record_participant(
        &self,
        gateway: &Gateway,
        state: &State,
        participant: &str,
    ) -> std::io::Result<()> {
        let Some(media) = state.media.get(participant) else {
            return Ok(());
        };
        gateway
            .recordings
            .consultations
            .start(&self.id, participant, &media.video, &media.audio)
    }

    /// The recording could not go on: stopped, and off for everyone.
    fn recording_failed(&self, gateway: &Gateway, state: &mut State) -> Vec<Effect> {
        self.stop_recording(gateway, "the gateway could not record");
        send(
            state,
            HOST,
            ServerMessage::Error {
                message: "the gateway could not record (see its log): the recording is off".into(),
            },
        );
        state.room.stop_recording_silently()
    }

    fn stop_recording(&self, gateway: &Gateway, why: &str) {
        gateway.recordings.consultations.stop_consultation(&self.id);
        if let Err(e) = self.audit_recording(gateway, Outcome::Ended, why) {
            tracing::error!(consultation = %short(&self.id), error = %e, "the recording's stop could not be put on record");
        }
        tracing::info!(consultation = %short(&self.id), why, "consultation recording stopped");
    }

    /// Appends the recording's start or stop to the audit log (a few ms: a write and a sync).
    fn audit_recording(
        &self,
        gateway: &Gateway,
        outcome: Outcome,
        why: &str,
    ) -> Result<(), crate::audit::AuditError> {
        gateway
            .audit
            .append(AuditEvent {
                actor: self.host_subject.clone(),
                role: Some(Role::Clinician),
                action: Action::ConsultationRecord,
                resource: format!("consultation:{}", short(&self.id)),
                outcome,
                source: None,
                reason: Some(why.to_owned()),
            })
            .map(|_| ())
    }

    /// True when `participant` is the host.
    pub fn is_host(participant: &str) -> bool {
        participant == HOST
    }
}

fn send(state: &State, to: &str, message: ServerMessage) {
    if let Some(link) = state.links.get(to) {
        let _ = link.outbound.send(Outbound::Message(message));
    }
}

/// The first 8 characters of an id, for logs.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invites_join_once_within_their_time_and_the_room_s_size() {
        let consultations = Consultations::new(ConsultationsConfig::default());
        let labels = vec!["Patient".to_owned(), "Interpreter".to_owned()];
        let (consultation, invites) = consultations
            .create("dr.ana", "Dr. Ana", &labels, 1_000)
            .unwrap();
        assert_eq!(invites.len(), 2);
        assert_eq!(invites[0].expires_at, 1_000 + 24 * 3600);
        let joined = consultations.join(&invites[0].secret, 1_001).unwrap();
        assert_eq!(joined.consultation, consultation.id);
        assert_eq!(joined.participant, "p2");
        assert!(consultation.has("p2"));
        assert_eq!(
            consultations.join(&invites[0].secret, 1_002).unwrap_err(),
            NOT_VALID,
            "reused"
        );
        assert_eq!(
            consultations
                .join(&invites[1].secret, 1_000 + 24 * 3600)
                .unwrap_err(),
            NOT_VALID,
            "expired"
        );
        assert_eq!(
            consultations.join("not-a-secret", 1_003).unwrap_err(),
            NOT_VALID
        );
        let too_many = vec!["Guest".to_owned(); 4];
        assert!(
            consultations
                .create("dr.ana", "Dr. Ana", &too_many, 1_000)
                .is_err()
        );
        assert_eq!(consultations.len(), 1);
    }
}
