//! Property tests: random and mutated input to every decoder and to the tracker's request
//! handling. Nothing may panic; every rejection is a one-line reason. `make test` runs the
//! default number of cases; `make fuzz` runs many more (PROPTEST_CASES).

use p2p_share::hash::{ContentId, Sha1Hash};
use p2p_share::manifest::{chunks_for, Manifest, CHUNK_SIZE};
use p2p_share::names::validate_name;
use p2p_share::tracker::state::{TrackerConfig, TrackerState};
use p2p_share::wire::frame::{read_frame, write_frame, MAX_CONTROL_FRAME};
use p2p_share::wire::peer_msg::{PeerReply, PeerRequest};
use p2p_share::wire::tracker_msg::{FileInfo, TrackerReply, TrackerRequest};
use p2p_share::wire::{decode_reply, decode_request, encode_request};
use proptest::prelude::*;
use std::io::Cursor;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn one_line(e: &impl std::fmt::Display) -> bool {
    let s = e.to_string();
    !s.is_empty() && !s.contains('\n')
}

fn valid_request_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(br#"{"version":3,"msg":{"type":"search","name":"test.pdf"}}"#.to_vec()),
        Just(br#"{"version":3,"msg":{"type":"register","port":6000}}"#.to_vec()),
        Just(br#"{"version":3,"msg":{"type":"list_files"}}"#.to_vec()),
        Just(format!(r#"{{"version":3,"msg":{{"type":"announce","port":6000,"added":[{{"name":"a","size":1,"content_id":"{}"}}]}}}}"#, ContentId::of(b"a")).into_bytes()),
        Just(format!(r#"{{"version":3,"msg":{{"type":"chunk","content_id":"{}","index":3}}}}"#, ContentId::of(b"a")).into_bytes()),
    ]
}

/// A valid message with some bytes changed, removed or added.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (valid_request_bytes(), crate::props_bt::edits()).prop_map(|(v, edits)| crate::props_bt::mutate(v, edits))
}

fn sample_manifest() -> Manifest {
    let chunks = (0..3u8).map(|i| Sha1Hash::of(&[i])).collect();
    Manifest::new("a file.bin".into(), 2 * CHUNK_SIZE + 17, Some(Sha1Hash::of(b"w")), chunks)
}

fn check_manifest(text: &str) {
    match Manifest::parse(text) {
        Ok(m) => {
            assert_eq!(m.chunks.len() as u64, chunks_for(m.size));
            assert!(validate_name(&m.name).is_ok());
            assert_eq!(Manifest::parse(&m.to_ini()).unwrap(), m);
        }
        Err(e) => assert!(one_line(&e), "{e}"),
    }
}

proptest! {
    #[test]
    fn frame_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = Vec::new();
        match read_frame(&mut Cursor::new(&bytes), &mut buf, 32) {
            Ok(()) => prop_assert!(buf.len() <= 32 && bytes.len() >= 4 + buf.len()),
            Err(e) => prop_assert!(one_line(&e)),
        }
    }

    #[test]
    fn frames_round_trip(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut wire = Vec::new();
        write_frame(&mut wire, &body).unwrap();
        let mut buf = Vec::new();
        read_frame(&mut Cursor::new(wire), &mut buf, MAX_CONTROL_FRAME).unwrap();
        prop_assert_eq!(buf, body);
    }

    #[test]
    fn message_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = decode_request::<TrackerRequest>(&bytes) { prop_assert!(one_line(&e)); }
        if let Err(e) = decode_request::<PeerRequest>(&bytes) { prop_assert!(one_line(&e)); }
        if let Err(e) = decode_reply::<TrackerReply>(&bytes) { prop_assert!(one_line(&e)); }
        if let Err(e) = decode_reply::<PeerReply>(&bytes) { prop_assert!(one_line(&e)); }
    }

    #[test]
    fn mutated_messages_never_panic(bytes in mutated()) {
        if let Err(e) = decode_request::<TrackerRequest>(&bytes) { prop_assert!(one_line(&e)); }
        if let Err(e) = decode_request::<PeerRequest>(&bytes) { prop_assert!(one_line(&e)); }
    }

    #[test]
    fn manifest_parser_never_panics(text in "[\\[\\]a-z0-9_= \n.;#/]{0,300}") {
        check_manifest(&text);
    }

    #[test]
    fn mutated_manifests_never_panic(edits in prop::collection::vec((any::<usize>(), any::<char>()), 1..8)) {
        let mut chars: Vec<char> = sample_manifest().to_ini().chars().collect();
        for (pos, c) in edits {
            let i = pos % chars.len();
            chars[i] = c;
        }
        check_manifest(&chars.into_iter().collect::<String>());
    }

    #[test]
    fn tracker_handles_any_request_sequence(steps in prop::collection::vec(step(), 1..60)) {
        let cfg = TrackerConfig { max_files_per_peer: 5, announce_interval: Duration::from_secs(1), ..TrackerConfig::default() };
        let mut state = TrackerState::new(cfg);
        let mut sessions: Vec<Option<Session>> = vec![None; SLOTS];
        let t0 = Instant::now();
        for (i, step) in steps.iter().enumerate() {
            let now = t0 + Duration::from_millis(200 * i as u64);
            let (req, ip) = step.request(&sessions);
            let out = state.handle_write(&req, ip, now);
            match &out.reply {
                TrackerReply::Error { reason } => prop_assert!(one_line(reason)),
                TrackerReply::Registered { peer, token, .. } => {
                    if let Step::Register { slot, .. } = step {
                        sessions[*slot] = Some(Session { port: peer.port(), token: token.clone(), ip });
                    }
                }
                _ => {}
            }
            prop_assert!(state.check_invariants().is_ok(), "after {req:?}: {:?}", state.check_invariants());
            state.expire(now);
            prop_assert!(state.check_invariants().is_ok(), "after expiry: {:?}", state.check_invariants());
            // Every request survives the wire as it is.
            let mut wire = Vec::new();
            encode_request(&mut wire, &req);
            prop_assert_eq!(&decode_request::<TrackerRequest>(&wire[4..]).unwrap(), &req);
        }
    }
}

/// Peers a random sequence speaks for.
const SLOTS: usize = 3;

/// A registered peer, as the sequence learned it from the tracker's reply.
#[derive(Clone, Debug)]
struct Session {
    port: u16,
    token: String,
    ip: IpAddr,
}

/// One step of a random sequence. Most speak for a registered peer with its own port, token
/// and address (so files are announced, replaced, removed, expired); `forged` ones bring a
/// wrong token, and any step may come from another address.
#[derive(Clone, Debug)]
enum Step {
    Register {
        slot: usize,
        port: Option<u16>,
        ip: IpAddr,
        resume: bool,
    },
    Announce {
        slot: usize,
        full: Option<Vec<FileInfo>>,
        added: Vec<FileInfo>,
        removed: Vec<ContentId>,
        forged: bool,
    },
    Leave {
        slot: usize,
        forged: bool,
    },
    StartDownload {
        slot: usize,
        id: ContentId,
        forged: bool,
    },
    StopDownload {
        slot: usize,
        id: ContentId,
        forged: bool,
    },
    Search(String),
}

impl Step {
    fn request(&self, sessions: &[Option<Session>]) -> (TrackerRequest, IpAddr) {
        let home = IpAddr::from([127, 0, 0, 1]);
        let who = |slot: usize, forged: bool| {
            let s = sessions[slot].clone().unwrap_or(Session { port: 6000, token: String::new(), ip: home });
            let token = if forged { "forged".to_string() } else { s.token };
            (s.port, token, s.ip)
        };
        match self.clone() {
            Step::Register { slot, port, ip, resume } => {
                let token = resume.then(|| sessions[slot].as_ref().map(|s| s.token.clone())).flatten();
                let port = if resume { sessions[slot].as_ref().map(|s| s.port).or(port) } else { port };
                (TrackerRequest::Register { port, token }, ip)
            }
            Step::Announce { slot, full, added, removed, forged } => {
                let (port, token, ip) = who(slot, forged);
                (TrackerRequest::Announce { port, token, full, added, removed }, ip)
            }
            Step::Leave { slot, forged } => {
                let (port, token, ip) = who(slot, forged);
                (TrackerRequest::Leave { port, token }, ip)
            }
            Step::StartDownload { slot, id, forged } => {
                let (port, token, ip) = who(slot, forged);
                (TrackerRequest::StartDownload { port, token, content_id: id }, ip)
            }
            Step::StopDownload { slot, id, forged } => {
                let (port, token, ip) = who(slot, forged);
                (TrackerRequest::StopDownload { port, token, content_id: id }, ip)
            }
            Step::Search(name) => (TrackerRequest::Search { name }, home),
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    let slot = 0..SLOTS;
    let forged = prop::bool::weighted(0.15);
    let id = (0u8..4).prop_map(|i| ContentId::of(&[i]));
    let files = || prop::collection::vec(file_info(), 0..4);
    let ip = prop_oneof![3 => Just(IpAddr::from([127, 0, 0, 1])), 1 => Just(IpAddr::from([10, 0, 0, 2]))];
    let port = prop::option::of(prop_oneof![Just(0u16), Just(6000u16), Just(6001u16)]);
    prop_oneof![
        2 => (slot.clone(), port, ip, prop::bool::weighted(0.3))
            .prop_map(|(slot, port, ip, resume)| Step::Register { slot, port, ip, resume }),
        4 => (slot.clone(), prop::option::of(files()), files(), prop::collection::vec(id.clone(), 0..3), forged)
            .prop_map(|(slot, full, added, removed, forged)| Step::Announce { slot, full, added, removed, forged }),
        1 => (slot.clone(), forged).prop_map(|(slot, forged)| Step::Leave { slot, forged }),
        2 => (slot.clone(), id.clone(), forged)
            .prop_map(|(slot, id, forged)| Step::StartDownload { slot, id, forged }),
        1 => (slot, id, forged).prop_map(|(slot, id, forged)| Step::StopDownload { slot, id, forged }),
        1 => "[a-zA-Z./]{0,8}".prop_map(Step::Search),
    ]
}

fn file_info() -> impl Strategy<Value = FileInfo> {
    let name = prop_oneof![8 => Just("a.bin"), 8 => Just("b.bin"), 1 => Just("../x"), 1 => Just(""), 1 => Just("a\0b")];
    (name, 0u8..4, 0u64..3).prop_map(|(n, id, size)| FileInfo {
        name: n.to_string(),
        size,
        content_id: ContentId::of(&[id]),
    })
}
