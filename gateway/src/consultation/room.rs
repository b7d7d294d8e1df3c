//! One consultation's state machine, with no sockets or media in it: who is in it and where
//! (waiting, admitted, away), who publishes and consented, the recording's state, and what each
//! client message leads to ([`Effect`]s that the runtime carries out: messages to send,
//! connections to negotiate, media to drop). Rules:
//!
//! - the host (the clinician who created it, `p1`) is admitted from the start; guests join
//!   through an invite and wait until the host admits them;
//! - only admitted participants publish, subscribe (to admitted participants who publish), chat
//!   and consent; a waiting guest may only leave;
//! - only the host admits, records and ends; recording starts only when every admitted
//!   participant has consented, and admitting someone who has not consented stops it;
//! - the host leaving ends the consultation for everyone; a guest leaving ends only their part;
//! - a lost connection makes the participant `away` (their media and place are kept) until they
//!   come back or are removed ([`Room::remove`]).

use super::protocol::{
    ClientMessage, MAX_CHAT_CHARS, ParticipantId, ParticipantInfo, ParticipantRole, Presence,
    RecordingState, ServerMessage,
};

/// The host's participant id.
pub const HOST: &str = "p1";

/// What the runtime does for the room.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a message to one participant (if connected).
    Send(ParticipantId, ServerMessage),
    /// Negotiate `participant`'s publishing connection from its offer; answer with
    /// `publish_answer`, then call [`Room::published`].
    Publish {
        /// Who publishes.
        participant: ParticipantId,
        /// Its offer.
        sdp: String,
    },
    /// Negotiate `participant`'s subscription to `of`; answer with `subscribe_answer`.
    Subscribe {
        /// Who subscribes.
        participant: ParticipantId,
        /// To whom.
        of: ParticipantId,
        /// Its offer.
        sdp: String,
    },
    /// Stop `participant`'s publishing connection, its subscriptions, and others' subscriptions
    /// to it.
    DropMedia(ParticipantId),
    /// Start (true) or stop (false) recording the consultation.
    Recording(bool),
    /// Close `participant`'s signalling connection (after the messages before it).
    Disconnect(ParticipantId),
    /// `participant` entered the call (admitted; the host: its first connection), for the join
    /// time.
    Entered(ParticipantId),
    /// The consultation is over: everyone was told; drop all media and forget the room.
    Ended,
}

/// Why a guest could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The consultation is full.
    #[error("the consultation already has its {0} participants")]
    Full(usize),
    /// The consultation has ended.
    #[error("the consultation has ended")]
    Ended,
}

#[derive(Debug, Clone)]
struct Member {
    info: ParticipantInfo,
    connected: bool,
    /// Has been in the call (connected while admitted) at least once.
    entered: bool,
}

/// One consultation.
#[derive(Debug)]
pub struct Room {
    members: Vec<Member>,
    next_id: u32,
    max_participants: usize,
    recording: RecordingState,
    ended: bool,
}

fn error(to: &str, message: impl Into<String>) -> Effect {
    Effect::Send(
        to.to_owned(),
        ServerMessage::Error {
            message: message.into(),
        },
    )
}

impl Room {
    /// A consultation with its host (`p1`, named `host_name`), for at most `max_participants`.
    pub fn new(host_name: &str, max_participants: usize) -> Room {
        Room {
            members: vec![Member {
                info: ParticipantInfo {
                    id: HOST.to_owned(),
                    name: host_name.to_owned(),
                    role: ParticipantRole::Host,
                    presence: Presence::Away,
                    publishing: false,
                    consented: false,
                },
                connected: false,
                entered: false,
            }],
            next_id: 2,
            max_participants: max_participants.max(1),
            recording: RecordingState::Off,
            ended: false,
        }
    }

    /// Adds a guest named `name` (from their invite), waiting to be admitted; returns their id.
    pub fn add_guest(&mut self, name: &str) -> Result<ParticipantId, JoinError> {
        if self.ended {
            return Err(JoinError::Ended);
        }
        if self.members.len() >= self.max_participants {
            return Err(JoinError::Full(self.max_participants));
        }
        let id = format!("p{}", self.next_id);
        self.next_id += 1;
        self.members.push(Member {
            info: ParticipantInfo {
                id: id.clone(),
                name: name.to_owned(),
                role: ParticipantRole::Guest,
                presence: Presence::Waiting,
                publishing: false,
                consented: false,
            },
            connected: false,
            entered: false,
        });
        Ok(id)
    }

    /// True once ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether `id` is a participant.
    pub fn contains(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    /// Participants now (all presences).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when no one is in it (never: the host stays until it ends).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Participants admitted now.
    pub fn admitted(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.info.presence != Presence::Waiting)
            .count()
    }

    /// The recording's state.
    pub fn recording(&self) -> RecordingState {
        self.recording
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.info.id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.info.id == id)
    }

    fn is_admitted(&self, id: &str) -> bool {
        self.member(id)
            .is_some_and(|m| m.info.presence != Presence::Waiting)
    }

    /// `message` to every admitted participant (`except` one).
    fn to_admitted(&self, message: &ServerMessage, except: Option<&str>) -> Vec<Effect> {
        self.members
            .iter()
            .filter(|m| m.info.presence != Presence::Waiting && Some(m.info.id.as_str()) != except)
            .map(|m| Effect::Send(m.info.id.clone(), message.clone()))
            .collect()
    }

    /// What a participant's page is told about `id` now.
    fn info(&self, id: &str) -> Option<ParticipantInfo> {
        self.member(id).map(|m| m.info.clone())
    }

    /// The participant's signalling connection opened.
    pub fn connect(&mut self, id: &str) -> Vec<Effect> {
        let Some(member) = self.member_mut(id) else {
            return Vec::new();
        };
        let first = !member.entered && member.info.presence != Presence::Waiting;
        member.connected = true;
        if member.info.presence == Presence::Away {
            member.info.presence = Presence::Admitted;
        }
        if member.info.presence == Presence::Admitted {
            member.entered = true;
        }
        let info = member.info.clone();
        let mut effects = Vec::new();
        if first {
            effects.push(Effect::Entered(id.to_owned()));
        }
        let participants = if info.presence == Presence::Waiting {
            vec![info.clone()]
        } else {
            self.members
                .iter()
                .filter(|m| {
                    // The host also sees the waiting room.
                    m.info.presence != Presence::Waiting || info.role == ParticipantRole::Host
                })
                .map(|m| m.info.clone())
                .collect()
        };
        effects.push(Effect::Send(
            id.to_owned(),
            ServerMessage::Welcome {
                you: id.to_owned(),
                participants,
                recording: self.recording,
            },
        ));
        let update = ServerMessage::Participant {
            participant: info.clone(),
        };
        if info.presence == Presence::Waiting {
            // The host sees who waits (and only the host).
            effects.push(Effect::Send(HOST.to_owned(), update));
        } else {
            effects.extend(self.to_admitted(&update, Some(id)));
        }
        effects
    }

    /// The participant's signalling connection closed (a network blip, a closed tab).
    pub fn disconnect(&mut self, id: &str) -> Vec<Effect> {
        let Some(member) = self.member_mut(id) else {
            return Vec::new();
        };
        member.connected = false;
        if member.info.presence == Presence::Waiting {
            return Vec::new();
        }
        member.info.presence = Presence::Away;
        let update = ServerMessage::Participant {
            participant: member.info.clone(),
        };
        self.to_admitted(&update, Some(id))
    }

    /// The participant's media is published (its publish was answered).
    pub fn published(&mut self, id: &str) -> Vec<Effect> {
        let Some(member) = self.member_mut(id) else {
            return Vec::new();
        };
        member.info.publishing = true;
        let update = ServerMessage::Participant {
            participant: member.info.clone(),
        };
        self.to_admitted(&update, Some(id))
    }

    /// Removes a participant (left, or away too long).
    pub fn remove(&mut self, id: &str) -> Vec<Effect> {
        if id == HOST {
            return self.end("the clinician left the consultation");
        }
        let Some(index) = self.members.iter().position(|m| m.info.id == id) else {
            return Vec::new();
        };
        let member = self.members.remove(index);
        let mut effects = vec![Effect::DropMedia(id.to_owned())];
        let left = ServerMessage::ParticipantLeft {
            participant: id.to_owned(),
        };
        if member.info.presence == Presence::Waiting {
            effects.push(Effect::Send(HOST.to_owned(), left));
        } else {
            effects.extend(self.to_admitted(&left, None));
        }
        effects.push(Effect::Disconnect(id.to_owned()));
        effects
    }

    /// Ends the consultation for everyone.
    pub fn end(&mut self, reason: &str) -> Vec<Effect> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let mut effects = Vec::new();
        if self.recording == RecordingState::On {
            self.recording = RecordingState::Off;
            effects.push(Effect::Recording(false));
        }
        for member in &self.members {
            effects.push(Effect::Send(
                member.info.id.clone(),
                ServerMessage::Ended {
                    reason: reason.to_owned(),
                },
            ));
            effects.push(Effect::Disconnect(member.info.id.clone()));
        }
        effects.push(Effect::Ended);
        effects
    }

    /// What a message from participant `from` leads to.
    pub fn handle(&mut self, from: &str, message: ClientMessage) -> Vec<Effect> {
        if self.ended || !self.contains(from) {
            return Vec::new();
        }
        let host = from == HOST;
        if !self.is_admitted(from) && !matches!(message, ClientMessage::Leave) {
            return vec![error(
                from,
                "you are in the waiting room: the clinician will let you in",
            )];
        }
        match message {
            ClientMessage::Publish { sdp } => vec![Effect::Publish {
                participant: from.to_owned(),
                sdp,
            }],
            ClientMessage::Subscribe { participant, sdp } => {
                if participant == from {
                    return vec![error(from, "you cannot subscribe to yourself")];
                }
                match self.member(&participant) {
                    Some(m) if m.info.presence != Presence::Waiting && m.info.publishing => {
                        vec![Effect::Subscribe {
                            participant: from.to_owned(),
                            of: participant,
                            sdp,
                        }]
                    }
                    Some(_) => vec![error(from, format!("{participant} is not publishing"))],
                    None => vec![error(from, format!("no participant {participant}"))],
                }
            }
            ClientMessage::Admit { participant } => {
                if !host {
                    return vec![error(from, "only the clinician admits participants")];
                }
                self.admit(&participant)
            }
            ClientMessage::Chat { text } => {
                let text = text.trim();
                if text.is_empty() {
                    return vec![error(from, "an empty chat message")];
                }
                if text.chars().count() > MAX_CHAT_CHARS {
                    return vec![error(
                        from,
                        format!("a chat message is at most {MAX_CHAT_CHARS} characters"),
                    )];
                }
                self.to_admitted(
                    &ServerMessage::Chat {
                        from: from.to_owned(),
                        text: text.to_owned(),
                    },
                    None,
                )
            }
            ClientMessage::Consent => {
                let Some(member) = self.member_mut(from) else {
                    return Vec::new();
                };
                member.info.consented = true;
                let update = ServerMessage::Participant {
                    participant: member.info.clone(),
                };
                self.to_admitted(&update, None)
            }
            ClientMessage::Record { on } => {
                if !host {
                    return vec![error(from, "only the clinician starts or stops recording")];
                }
                self.record(from, on)
            }
            ClientMessage::Leave => self.remove(from),
            ClientMessage::End => {
                if !host {
                    return vec![error(from, "only the clinician ends the consultation")];
                }
                self.end("the clinician ended the consultation")
            }
        }
    }

    fn admit(&mut self, id: &str) -> Vec<Effect> {
        let Some(member) = self.member_mut(id) else {
            return vec![error(HOST, format!("no participant {id}"))];
        };
        if member.info.presence != Presence::Waiting {
            return vec![error(HOST, format!("{id} is not waiting"))];
        }
        member.info.presence = if member.connected {
            Presence::Admitted
        } else {
            Presence::Away
        };
        let entered = member.connected;
        member.entered = entered;
        let consented = member.info.consented;
        let mut effects = Vec::new();
        if entered {
            effects.push(Effect::Entered(id.to_owned()));
        }
        let others: Vec<ParticipantInfo> = self
            .members
            .iter()
            .filter(|m| m.info.id != id && m.info.presence != Presence::Waiting)
            .map(|m| m.info.clone())
            .collect();
        for other in others {
            effects.push(Effect::Send(
                id.to_owned(),
                ServerMessage::Participant { participant: other },
            ));
        }
        if let Some(info) = self.info(id) {
            effects
                .extend(self.to_admitted(&ServerMessage::Participant { participant: info }, None));
        }
        if self.recording == RecordingState::On && !consented {
            effects.extend(self.stop_recording());
        } else if self.recording == RecordingState::On {
            effects.push(Effect::Send(
                id.to_owned(),
                ServerMessage::Recording {
                    state: RecordingState::On,
                },
            ));
        }
        effects
    }

    fn record(&mut self, from: &str, on: bool) -> Vec<Effect> {
        if !on {
            if self.recording == RecordingState::Off {
                return Vec::new();
            }
            return self.stop_recording();
        }
        if self.recording == RecordingState::On {
            return Vec::new();
        }
        let missing: Vec<&str> = self
            .members
            .iter()
            .filter(|m| m.info.presence != Presence::Waiting && !m.info.consented)
            .map(|m| m.info.id.as_str())
            .collect();
        if !missing.is_empty() {
            return vec![error(
                from,
                format!(
                    "recording needs everyone's consent; not yet: {}",
                    missing.join(", ")
                ),
            )];
        }
        self.recording = RecordingState::On;
        let mut effects = vec![Effect::Recording(true)];
        effects.extend(self.to_admitted(
            &ServerMessage::Recording {
                state: RecordingState::On,
            },
            None,
        ));
        effects
    }

    /// The runtime could not start or keep the recording (already stopped): off for everyone,
    /// without another [`Effect::Recording`].
    pub fn stop_recording_silently(&mut self) -> Vec<Effect> {
        let mut effects = self.stop_recording();
        effects.retain(|e| !matches!(e, Effect::Recording(_)));
        effects
    }

    fn stop_recording(&mut self) -> Vec<Effect> {
        self.recording = RecordingState::Off;
        let mut effects = vec![Effect::Recording(false)];
        effects.extend(self.to_admitted(
            &ServerMessage::Recording {
                state: RecordingState::Off,
            },
            None,
        ));
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_to<'a>(effects: &'a [Effect], to: &str) -> Vec<&'a ServerMessage> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(who, message) if who == to => Some(message),
                _ => None,
            })
            .collect()
    }

    /// A room with the host connected and `guests` joined, connected and admitted.
    fn room_with(guests: &[&str]) -> Room {
        let mut room = Room::new("Dr. Ana", 4);
        room.connect(HOST);
        for name in guests {
            let id = room.add_guest(name).unwrap();
            room.connect(&id);
            room.handle(HOST, ClientMessage::Admit { participant: id });
        }
        room
    }

    #[test]
    fn a_guest_waits_until_the_host_admits_them() {
        let mut room = Room::new("Dr. Ana", 4);
        let welcome = room.connect(HOST);
        assert!(
            matches!(sent_to(&welcome, HOST)[0], ServerMessage::Welcome { you, .. } if you == HOST)
        );
        assert!(
            welcome.contains(&Effect::Entered(HOST.into())),
            "the host enters at once"
        );
        room.disconnect(HOST);
        assert!(
            !room.connect(HOST).contains(&Effect::Entered(HOST.into())),
            "only once"
        );
        let guest = room.add_guest("Patient").unwrap();
        assert_eq!(guest, "p2");
        let effects = room.connect(&guest);
        match sent_to(&effects, &guest)[0] {
            ServerMessage::Welcome { participants, .. } => {
                assert_eq!(
                    participants.len(),
                    1,
                    "a waiting guest sees only themselves"
                );
                assert_eq!(participants[0].presence, Presence::Waiting);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(sent_to(&effects, HOST)[0], ServerMessage::Participant { participant } if participant.id == "p2" && participant.presence == Presence::Waiting),
            "the host sees who waits"
        );
        // Waiting: nothing but leaving.
        let effects = room.handle(&guest, ClientMessage::Publish { sdp: "v=0".into() });
        assert!(matches!(
            sent_to(&effects, &guest)[0],
            ServerMessage::Error { .. }
        ));
        let effects = room.handle(
            &guest,
            ClientMessage::Admit {
                participant: guest.clone(),
            },
        );
        assert!(matches!(
            sent_to(&effects, &guest)[0],
            ServerMessage::Error { .. }
        ));
        // Admitted: both sides learn of each other, and the guest's join time starts.
        let effects = room.handle(
            HOST,
            ClientMessage::Admit {
                participant: guest.clone(),
            },
        );
        assert!(effects.contains(&Effect::Entered(guest.clone())));
        assert!(sent_to(&effects, &guest).iter().any(
            |m| matches!(m, ServerMessage::Participant { participant } if participant.id == HOST)
        ));
        assert!(sent_to(&effects, HOST).iter().any(|m| matches!(m, ServerMessage::Participant { participant } if participant.id == "p2" && participant.presence == Presence::Admitted)));
        let effects = room.handle(&guest, ClientMessage::Publish { sdp: "v=0".into() });
        assert_eq!(
            effects,
            vec![Effect::Publish {
                participant: guest,
                sdp: "v=0".into()
            }]
        );
    }

    #[test]
    fn subscriptions_need_an_admitted_publisher() {
        let mut room = room_with(&["Patient"]);
        let effects = room.handle(
            "p2",
            ClientMessage::Subscribe {
                participant: HOST.into(),
                sdp: "v=0".into(),
            },
        );
        assert!(
            matches!(sent_to(&effects, "p2")[0], ServerMessage::Error { message } if message.contains("not publishing"))
        );
        let effects = room.published(HOST);
        assert!(
            matches!(sent_to(&effects, "p2")[0], ServerMessage::Participant { participant } if participant.publishing)
        );
        let effects = room.handle(
            "p2",
            ClientMessage::Subscribe {
                participant: HOST.into(),
                sdp: "v=0".into(),
            },
        );
        assert_eq!(
            effects,
            vec![Effect::Subscribe {
                participant: "p2".into(),
                of: HOST.into(),
                sdp: "v=0".into()
            }]
        );
        let effects = room.handle(
            "p2",
            ClientMessage::Subscribe {
                participant: "p2".into(),
                sdp: "v=0".into(),
            },
        );
        assert!(matches!(
            sent_to(&effects, "p2")[0],
            ServerMessage::Error { .. }
        ));
        let effects = room.handle(
            "p2",
            ClientMessage::Subscribe {
                participant: "p9".into(),
                sdp: "v=0".into(),
            },
        );
        assert!(matches!(
            sent_to(&effects, "p2")[0],
            ServerMessage::Error { .. }
        ));
    }

    #[test]
    fn recording_needs_everyone_s_consent_and_stops_for_a_newcomer_who_has_not() {
        let mut room = room_with(&["Patient"]);
        let effects = room.handle(HOST, ClientMessage::Record { on: true });
        assert!(
            matches!(sent_to(&effects, HOST)[0], ServerMessage::Error { message } if message.contains("p1, p2"))
        );
        assert_eq!(room.recording(), RecordingState::Off);
        room.handle(HOST, ClientMessage::Consent);
        let effects = room.handle("p2", ClientMessage::Record { on: true });
        assert!(
            matches!(sent_to(&effects, "p2")[0], ServerMessage::Error { .. }),
            "only the host records"
        );
        room.handle("p2", ClientMessage::Consent);
        let effects = room.handle(HOST, ClientMessage::Record { on: true });
        assert_eq!(effects[0], Effect::Recording(true));
        assert_eq!(
            sent_to(&effects, "p2"),
            vec![&ServerMessage::Recording {
                state: RecordingState::On
            }]
        );
        // An interpreter who has not consented is admitted: recording stops.
        let interpreter = room.add_guest("Interpreter").unwrap();
        room.connect(&interpreter);
        let effects = room.handle(
            HOST,
            ClientMessage::Admit {
                participant: interpreter,
            },
        );
        assert!(effects.contains(&Effect::Recording(false)));
        assert_eq!(room.recording(), RecordingState::Off);
    }

    #[test]
    fn a_recording_the_runtime_could_not_start_is_off_for_everyone_without_another_stop() {
        let mut room = room_with(&["Patient"]);
        room.handle(HOST, ClientMessage::Consent);
        room.handle("p2", ClientMessage::Consent);
        let effects = room.handle(HOST, ClientMessage::Record { on: true });
        assert!(effects.contains(&Effect::Recording(true)));
        assert_eq!(room.recording(), RecordingState::On);
        let effects = room.stop_recording_silently();
        assert_eq!(room.recording(), RecordingState::Off);
        assert!(!effects.iter().any(|e| matches!(e, Effect::Recording(_))));
        for who in [HOST, "p2"] {
            assert!(
                sent_to(&effects, who).iter().any(|m| matches!(
                    m,
                    ServerMessage::Recording {
                        state: RecordingState::Off
                    }
                )),
                "{who} sees the indicator go"
            );
        }
    }

    #[test]
    fn chat_goes_to_everyone_admitted_within_limits() {
        let mut room = room_with(&["Patient"]);
        let waiting = room.add_guest("Interpreter").unwrap();
        room.connect(&waiting);
        let effects = room.handle(
            "p2",
            ClientMessage::Chat {
                text: "  hello  ".into(),
            },
        );
        let chat = ServerMessage::Chat {
            from: "p2".into(),
            text: "hello".into(),
        };
        assert_eq!(sent_to(&effects, HOST), vec![&chat]);
        assert_eq!(sent_to(&effects, "p2"), vec![&chat]);
        assert!(
            sent_to(&effects, &waiting).is_empty(),
            "the waiting room hears nothing"
        );
        let effects = room.handle("p2", ClientMessage::Chat { text: " ".into() });
        assert!(matches!(
            sent_to(&effects, "p2")[0],
            ServerMessage::Error { .. }
        ));
        let long = "é".repeat(MAX_CHAT_CHARS + 1);
        let effects = room.handle("p2", ClientMessage::Chat { text: long });
        assert!(matches!(
            sent_to(&effects, "p2")[0],
            ServerMessage::Error { .. }
        ));
    }

    #[test]
    fn guests_leave_alone_and_the_host_ends_it_for_everyone() {
        let mut room = room_with(&["Patient", "Interpreter"]);
        let effects = room.handle("p3", ClientMessage::Leave);
        assert!(effects.contains(&Effect::DropMedia("p3".into())));
        assert!(effects.contains(&Effect::Disconnect("p3".into())));
        assert!(
            sent_to(&effects, "p2").contains(&&ServerMessage::ParticipantLeft {
                participant: "p3".into()
            })
        );
        assert!(!room.contains("p3"));
        let effects = room.handle("p2", ClientMessage::End);
        assert!(
            matches!(sent_to(&effects, "p2")[0], ServerMessage::Error { .. }),
            "only the host ends"
        );
        let effects = room.handle(HOST, ClientMessage::End);
        assert!(
            sent_to(&effects, "p2")
                .iter()
                .any(|m| matches!(m, ServerMessage::Ended { .. }))
        );
        assert_eq!(effects.last(), Some(&Effect::Ended));
        assert!(room.is_ended());
        assert!(
            room.handle("p2", ClientMessage::Chat { text: "hi".into() })
                .is_empty()
        );
        assert_eq!(room.add_guest("Late"), Err(JoinError::Ended));
    }

    #[test]
    fn a_lost_connection_is_away_and_coming_back_is_admitted_again() {
        let mut room = room_with(&["Patient"]);
        let effects = room.disconnect("p2");
        assert!(
            matches!(sent_to(&effects, HOST)[0], ServerMessage::Participant { participant } if participant.presence == Presence::Away)
        );
        let effects = room.connect("p2");
        assert!(
            matches!(sent_to(&effects, "p2")[0], ServerMessage::Welcome { participants, .. } if participants.len() == 2)
        );
        assert!(
            matches!(sent_to(&effects, HOST)[0], ServerMessage::Participant { participant } if participant.presence == Presence::Admitted)
        );
    }

    #[test]
    fn a_room_holds_at_most_its_participants() {
        let mut room = Room::new("Dr. Ana", 4);
        for _ in 0..3 {
            room.add_guest("Guest").unwrap();
        }
        assert_eq!(room.add_guest("One more"), Err(JoinError::Full(4)));
        assert_eq!(room.len(), 4);
    }
}
