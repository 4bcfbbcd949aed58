//! The native side of the peer server: one connection's requests answered in order. Each
//! request is first *decided* (`decide`: which reply, which bytes from which file, from the
//! shares alone) and then *sent* (`send`: the bytes copied, under the upload limit, `busy`
//! when the line is full); a turn request waits for its place (`turn`). `PROTOCOL.md`
//! sections 3 and 4. All of it works over any [`Socket`], so the tests below run whole
//! connections in memory.

use super::decide::{decide, Standing};
use super::send::send;
use super::turn::serve_turn;
use crate::hash::ContentId;
use crate::holdings::shares::Shares;
use crate::peer::open_files::OpenFiles;
use crate::peer::options::ServerOptions;
use crate::wire::conn::Conn;
use crate::wire::deadline::Socket;
use crate::wire::peer_msg::{Abilities, PeerReply, PeerRequest};
use log::debug;
use std::time::{Duration, Instant};

/// Answers requests on one connection until it closes, idles out, gives way or misbehaves.
pub(super) fn serve_requests<S: Socket>(
    conn: &mut Conn<S>,
    shares: &Shares,
    opts: &ServerOptions,
    files: &mut OpenFiles,
    conn_id: u64,
) {
    // Files this connection was offered chunks of: its offers end with it.
    let mut offered: Vec<ContentId> = Vec::new();
    let mut last_offer: Option<Instant> = None;
    let mut asker = Standing { id: conn_id, abilities: Abilities::default(), answer_time: Duration::ZERO };
    // A request read after a turn's place came that was not a chunk request.
    let mut next: Option<PeerRequest> = None;
    loop {
        let req: PeerRequest = match next.take().map(Ok).unwrap_or_else(|| conn.read_request()) {
            Ok(r) => r,
            Err(e) => {
                conn.end_after("peer server", e, |reason| PeerReply::Error { reason });
                break;
            }
        };
        if let PeerRequest::Hello { abilities } = &req {
            asker.abilities = *abilities;
        }
        if let PeerRequest::Have { content_id, mine: Some(_) }
        | PeerRequest::Turn { content_id, mine: Some(_) } = &req
        {
            if asker.abilities.offers {
                if !offered.contains(content_id) && offered.len() < MAX_OFFERED_FILES {
                    offered.push(*content_id);
                }
                // An offer costs a pass over the file's chunks: one connection gets at most
                // one per OFFER_GAP (a downloader asks after a chunk or once a second).
                if let Some(wait) = last_offer.and_then(|t| OFFER_GAP.checked_sub(t.elapsed())) {
                    std::thread::sleep(wait);
                }
                last_offer = Some(Instant::now());
            }
        }
        if let PeerRequest::Turn { content_id, mine } = &req {
            match serve_turn(conn, shares, opts, files, &mut asker, content_id, mine.as_deref()) {
                Ok(follow) => {
                    next = follow;
                    continue;
                }
                Err(e) => {
                    debug!("peer server: {}: {e}", conn.peer_addr());
                    break;
                }
            }
        }
        let plan = decide(&req, shares, files, conn.peer_addr(), &asker);
        if let Err(e) = send(conn, plan, opts.upload_limit.as_ref(), &mut asker, None) {
            debug!("peer server: {}: {e}", conn.peer_addr());
            break;
        }
    }
    for id in offered {
        if let Some(shared) = shares.get(&id) {
            shared.seeding.lock().gone(conn_id);
        }
    }
}

/// The shortest time between two offers on one connection.
const OFFER_GAP: Duration = Duration::from_millis(10);

/// Files one connection's offers are withdrawn from when it ends; past this, its offers
/// of more files lapse after `super_seed::PRESENT`.
const MAX_OFFERED_FILES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitfield::Bitfield;
    use crate::chunk_store::ChunkStore;
    use crate::manifest::{hash_file, Manifest, CHUNK_SIZE};
    use crate::peer::server::turn::{MAX_LEAD, TURN_ANSWER, TURN_WAIT};
    use crate::peer::upload::{Turn, UploadLine};
    use crate::storage::Place;
    use crate::wire::frame::read_frame;
    use crate::wire::mem::MemSocket;
    use crate::wire::{decode_reply, encode_request, MAX_CONTROL_FRAME};
    use std::io::{Cursor, Read};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const FROM: &str = "127.0.0.9:4000";

    /// Runs `requests` through one connection in memory; returns what was written.
    fn exchange(shares: &Shares, requests: &[PeerRequest], opts: &ServerOptions) -> Vec<u8> {
        let mut input = Vec::new();
        requests.iter().for_each(|r| encode_request(&mut input, r));
        let socket = MemSocket::new(input);
        let mut conn = Conn::over(socket.clone(), FROM.parse().unwrap(), Duration::from_secs(1)).unwrap();
        let total = AtomicUsize::new(0);
        let mut files = OpenFiles::new(&total);
        serve_requests(&mut conn, shares, opts, &mut files, 1);
        drop(files);
        assert_eq!(total.load(Ordering::SeqCst), 0, "every open file is closed and counted back");
        socket.written()
    }

    /// Serves `requests` on an in-memory connection from a thread of `scope`: the socket
    /// shows the replies as they are written; the thread returns when it ended.
    fn serve_in<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        shares: &'scope Shares,
        opts: &'scope ServerOptions,
        requests: &[PeerRequest],
    ) -> (MemSocket, std::thread::ScopedJoinHandle<'scope, Instant>) {
        let mut input = Vec::new();
        requests.iter().for_each(|r| encode_request(&mut input, r));
        let socket = MemSocket::new(input);
        let conn_socket = socket.clone();
        let server = scope.spawn(move || {
            let mut conn = Conn::over(conn_socket, FROM.parse().unwrap(), Duration::from_secs(5)).unwrap();
            let total = AtomicUsize::new(0);
            serve_requests(&mut conn, shares, opts, &mut OpenFiles::new(&total), 1);
            Instant::now()
        });
        (socket, server)
    }

    /// Reads one reply frame, and the raw bytes a chunk or manifest reply announces.
    fn next_reply(out: &mut Cursor<Vec<u8>>) -> (PeerReply, Vec<u8>) {
        let mut body = Vec::new();
        read_frame(out, &mut body, MAX_CONTROL_FRAME).unwrap();
        let reply: PeerReply = decode_reply(&body).unwrap();
        let raw_len = match &reply {
            PeerReply::Chunk { len, .. } | PeerReply::Manifest { len, .. } => *len as usize,
            _ => 0,
        };
        let mut raw = vec![0u8; raw_len];
        out.read_exact(&mut raw).unwrap();
        (reply, raw)
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        shares: Shares,
        data: Vec<u8>,
        id: ContentId,
    }

    /// One complete file of 2.5 chunks, shared.
    fn complete() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let data: Vec<u8> = (0..(5 * CHUNK_SIZE as usize) / 2).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let m = hash_file(&path, "a.bin", false).unwrap();
        let id = m.content_id();
        let shares = Shares::default();
        shares.add_complete(Arc::new(m), id, Place::file(path).unwrap());
        Fixture { _dir: dir, shares, data, id }
    }

    #[test]
    fn serves_have_manifest_and_chunks_of_a_complete_file() {
        let f = complete();
        let reqs = [
            PeerRequest::Have { content_id: f.id, mine: None },
            PeerRequest::Manifest { content_id: None, name: Some("a.bin".into()) },
            PeerRequest::Chunk { content_id: f.id, index: 2 },
            PeerRequest::Chunk { content_id: f.id, index: 0 },
        ];
        let mut out = Cursor::new(exchange(&f.shares, &reqs, &ServerOptions::default()));
        assert_eq!(
            next_reply(&mut out).0,
            PeerReply::Have { complete: true, bitfield: String::new(), later: false }
        );
        let (reply, text) = next_reply(&mut out);
        assert!(matches!(reply, PeerReply::Manifest { content_id, .. } if content_id == f.id));
        let m = Manifest::parse(std::str::from_utf8(&text).unwrap()).unwrap();
        assert_eq!(m.content_id(), f.id, "the manifest rebuilds the info dict the id names");
        let chunk = CHUNK_SIZE as usize;
        let (reply, bytes) = next_reply(&mut out);
        assert_eq!(reply, PeerReply::Chunk { index: 2, len: (f.data.len() - 2 * chunk) as u32 });
        assert!(bytes == f.data[2 * chunk..], "the last, short chunk");
        let (_, bytes) = next_reply(&mut out);
        assert!(bytes == f.data[..chunk]);
        assert_eq!(out.position() as usize, out.get_ref().len(), "nothing else was written");
    }

    #[test]
    fn refusals_keep_the_connection_open() {
        let f = complete();
        let other = ContentId::of(b"another file");
        let reqs = [
            PeerRequest::Chunk { content_id: f.id, index: 3 },
            PeerRequest::Have { content_id: other, mine: None },
            PeerRequest::Manifest { content_id: None, name: Some("../etc/passwd".into()) },
            PeerRequest::Manifest { content_id: None, name: None },
            PeerRequest::Chunk { content_id: f.id, index: 1 },
        ];
        let mut out = Cursor::new(exchange(&f.shares, &reqs, &ServerOptions::default()));
        for expected in
            ["chunk 3 is out of range", "is not shared here", "invalid file name", "must name a file"]
        {
            match next_reply(&mut out).0 {
                PeerReply::Error { reason } => assert!(reason.contains(expected), "{reason}"),
                other => panic!("refusal expected, got {other:?}"),
            }
        }
        let (reply, _) = next_reply(&mut out);
        assert_eq!(reply.kind(), "chunk", "the connection still serves after four refusals");
    }

    /// The fixture's file as a download in progress that has chunk 1 only (the chunk store
    /// lives in the returned directory).
    fn only_chunk_one(f: &Fixture) -> (tempfile::TempDir, Shares) {
        let m = f.shares.get(&f.id).unwrap().manifest.as_ref().clone();
        let chunks = tempfile::tempdir().unwrap();
        let (store, _) = ChunkStore::open(chunks.path(), m.clone()).unwrap();
        let chunk = CHUNK_SIZE as usize;
        store.write_chunk(m.index(1).unwrap(), &f.data[chunk..2 * chunk]).unwrap();
        let partial = Shares::default();
        partial.add_partial(Arc::new(store));
        (chunks, partial)
    }

    #[test]
    fn a_partial_file_serves_only_verified_chunks() {
        let f = complete();
        let (_chunks, partial) = only_chunk_one(&f);
        let chunk = CHUNK_SIZE as usize;
        let reqs = [
            PeerRequest::Have { content_id: f.id, mine: None },
            PeerRequest::Chunk { content_id: f.id, index: 0 },
            PeerRequest::Chunk { content_id: f.id, index: 1 },
        ];
        let mut out = Cursor::new(exchange(&partial, &reqs, &ServerOptions::default()));
        assert_eq!(
            next_reply(&mut out).0,
            PeerReply::Have { complete: false, bitfield: "40".into(), later: false }
        );
        assert!(
            matches!(next_reply(&mut out).0, PeerReply::Error { reason } if reason.contains("not here yet"))
        );
        let (reply, bytes) = next_reply(&mut out);
        assert_eq!(reply, PeerReply::Chunk { index: 1, len: chunk as u32 });
        assert!(bytes == f.data[chunk..2 * chunk]);
    }

    #[test]
    fn a_file_changed_since_hashing_is_not_served() {
        let f = complete();
        let path = f._dir.path().join("a.bin");
        std::fs::write(&path, b"rewritten").unwrap();
        let reqs = [PeerRequest::Chunk { content_id: f.id, index: 0 }];
        let mut out = Cursor::new(exchange(&f.shares, &reqs, &ServerOptions::default()));
        assert!(
            matches!(next_reply(&mut out).0, PeerReply::Error { reason } if reason.contains("cannot serve"))
        );
    }

    #[test]
    fn the_upload_limit_paces_chunks_but_sends_them_whole() {
        let f = complete();
        // 4 MiB/s with a burst of 204.8 KiB: two chunks (2 MiB) take at least 0.45 s.
        let limit = Some(UploadLine::new(4 << 20));
        let opts = ServerOptions { upload_limit: limit, ..Default::default() };
        let ask = |index| PeerRequest::Chunk { content_id: f.id, index };
        let started = Instant::now();
        let mut out = Cursor::new(exchange(&f.shares, &[ask(1), ask(0)], &opts));
        let took = started.elapsed();
        let chunk = CHUNK_SIZE as usize;
        assert!(next_reply(&mut out).1 == f.data[chunk..2 * chunk]);
        assert!(next_reply(&mut out).1 == f.data[..chunk]);
        assert!(took >= Duration::from_millis(440), "2 MiB at 4 MiB/s went in {took:?}");
    }

    #[test]
    fn a_downloading_peer_with_a_full_line_sends_an_asker_that_takes_turns_elsewhere() {
        let f = complete();
        let (_chunks, partial) = only_chunk_one(&f);
        let limit = UploadLine::new(16 << 20);
        let ask = PeerRequest::Chunk { content_id: f.id, index: 1 };
        let run = |abilities: Option<Abilities>| {
            let mut reqs = vec![PeerRequest::Have { content_id: f.id, mine: Some("00".into()) }];
            if let Some(abilities) = abilities {
                reqs.insert(0, PeerRequest::Hello { abilities });
            }
            let skip = reqs.len();
            reqs.push(ask.clone());
            behind_a_line(&partial, &limit, &reqs, Line::Full)[skip..].to_vec()
        };
        // One chunk is being sent and another waits: a downloader that takes turns is
        // sent elsewhere.
        assert_eq!(run(Some(Abilities::ALL)), vec![PeerReply::Busy { index: 1 }]);
        // One that takes no turns, or did not say, waits in line and gets the chunk.
        let sent = PeerReply::Chunk { index: 1, len: CHUNK_SIZE as u32 };
        let offers_only = Abilities { offers: true, turns: false };
        assert_eq!(run(Some(offers_only)), vec![sent.clone()]);
        assert_eq!(run(None), vec![sent]);
    }

    #[test]
    fn a_request_in_the_waiting_place_goes_elsewhere_when_its_turn_does_not_come() {
        let f = complete();
        let (_chunks, partial) = only_chunk_one(&f);
        let limit = UploadLine::new(16 << 20);
        let hello = PeerRequest::Hello { abilities: Abilities::ALL };
        let ask = PeerRequest::Chunk { content_id: f.id, index: 1 };
        let t = Instant::now();
        let replies = behind_a_line(&partial, &limit, &[hello, ask], Line::Sending);
        // It waited one chunk's sending time (62.5 ms), and a place is free now.
        assert_eq!(replies[1], PeerReply::Busy { index: 1 });
        assert!(t.elapsed() >= Duration::from_millis(62), "{:?}", t.elapsed());
    }

    #[test]
    fn a_seeder_with_a_long_line_sends_away_only_chunks_it_sent_before() {
        let f = complete();
        let limit = UploadLine::new(16 << 20);
        let opts = ServerOptions { upload_limit: Some(Arc::clone(&limit)), ..Default::default() };
        let hello = PeerRequest::Hello { abilities: Abilities::ALL };
        let ask = |index| PeerRequest::Chunk { content_id: f.id, index };
        let sent = |index| PeerReply::Chunk { index, len: CHUNK_SIZE as u32 };
        // No one else has chunk 0: it waits its turn.
        assert_eq!(behind_a_line(&f.shares, &limit, &[hello.clone(), ask(0)], Line::Full)[1], sent(0));
        exchange(&f.shares, &[ask(1), ask(2)], &opts);
        // Every chunk went out once: now chunk 0 can be had from the peer that got it.
        let replies = behind_a_line(&f.shares, &limit, &[hello, ask(0)], Line::Full);
        assert_eq!(replies[1], PeerReply::Busy { index: 0 });
    }

    #[test]
    fn a_turn_request_is_answered_when_its_place_comes_and_its_chunk_goes_in_it() {
        let f = complete();
        let (_chunks, partial) = only_chunk_one(&f);
        let limit = UploadLine::new(16 << 20);
        let opts = ServerOptions { upload_limit: Some(Arc::clone(&limit)), ..Default::default() };
        let reqs = [
            PeerRequest::Turn { content_id: f.id, mine: Some("00".into()) },
            PeerRequest::Chunk { content_id: f.id, index: 1 },
        ];
        // Two chunks ahead in line, half a second each at 16 MiB/s.
        let ahead: Vec<Turn> = (0..2).map(|_| limit.turn()).collect();
        let t = Instant::now();
        let (answered, socket) = std::thread::scope(|s| {
            for turn in ahead {
                s.spawn(move || (0..128).for_each(|_| turn.take(64 << 10)));
            }
            let (socket, _) = serve_in(s, &partial, &opts, &reqs);
            while socket.written().is_empty() {
                std::thread::sleep(Duration::from_millis(5));
            }
            (t.elapsed(), socket)
        });
        // The have-set came when the place did, after the two chunks ahead: the chunk is
        // named then, not a second earlier; and it went out in that place.
        assert!(answered >= Duration::from_millis(900), "answered after {answered:?}");
        let mut out = Cursor::new(socket.written());
        assert_eq!(
            next_reply(&mut out).0,
            PeerReply::Have { complete: false, bitfield: "40".into(), later: false }
        );
        assert_eq!(next_reply(&mut out).0, PeerReply::Chunk { index: 1, len: CHUNK_SIZE as u32 });
    }

    #[test]
    fn a_turn_not_come_is_answered_later_and_asked_again_keeps_its_place() {
        let f = complete();
        let (_chunks, partial) = only_chunk_one(&f);
        let limit = UploadLine::new(16 << 20);
        let opts = ServerOptions { upload_limit: Some(Arc::clone(&limit)), ..Default::default() };
        let turn = PeerRequest::Turn { content_id: f.id, mine: Some("00".into()) };
        let reqs = [turn.clone(), turn, PeerRequest::Chunk { content_id: f.id, index: 1 }];
        // A chunk being sent for 2.25 s, longer than a turn waits before `later`.
        let hog = limit.turn();
        hog.take(64 << 10);
        let (socket, served, rival) = std::thread::scope(|s| {
            s.spawn(move || (0..36 * 16).for_each(|_| hog.take(64 << 10)));
            let (socket, server) = serve_in(s, &partial, &opts, &reqs);
            // Another chunk joins the line after our turn (once the line holds the hog and
            // our turn) and before our second ask (after TURN_WAIT).
            while limit.waiting() < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let other = limit.turn();
            let rival = s.spawn(move || {
                other.take(64 << 10);
                Instant::now()
            });
            (socket, server.join().unwrap(), rival.join().unwrap())
        });
        let mut out = Cursor::new(socket.written());
        let mut later = PeerReply::Have { complete: false, bitfield: "40".into(), later: true };
        assert_eq!(next_reply(&mut out).0, later);
        if let PeerReply::Have { later, .. } = &mut later {
            *later = false;
        }
        assert_eq!(next_reply(&mut out).0, later, "the place came");
        assert_eq!(next_reply(&mut out).0, PeerReply::Chunk { index: 1, len: CHUNK_SIZE as u32 });
        assert!(served <= rival, "asked again, the turn kept its place ahead of the later chunk");
    }

    #[test]
    fn a_place_given_up_serves_the_request_that_came_instead() {
        let f = complete();
        let limit = UploadLine::new(16 << 20);
        let opts = ServerOptions { upload_limit: Some(Arc::clone(&limit)), ..Default::default() };
        let reqs = [
            PeerRequest::Turn { content_id: f.id, mine: None },
            PeerRequest::Have { content_id: f.id, mine: None },
            PeerRequest::Chunk { content_id: f.id, index: 0 },
        ];
        let mut out = Cursor::new(exchange(&f.shares, &reqs, &opts));
        let have = PeerReply::Have { complete: true, bitfield: String::new(), later: false };
        assert_eq!(next_reply(&mut out).0, have, "the place came at once: the line was empty");
        assert_eq!(next_reply(&mut out).0, have);
        assert_eq!(next_reply(&mut out).0.kind(), "chunk");
        assert!(limit.turn().wait_place(Duration::ZERO, Instant::now()), "no place is left held");
    }

    /// What holds the upload line in [`behind_a_line`].
    enum Line {
        /// A chunk being sent for half a second.
        Sending,
        /// That, and another chunk waiting for its turn, sent next for half a second.
        Full,
    }

    /// The replies to `reqs` while other uploads hold the line of `limit` (at 16 MiB/s a
    /// chunk's turn is due within 62.5 ms).
    fn behind_a_line(
        shares: &Shares,
        limit: &Arc<UploadLine>,
        reqs: &[PeerRequest],
        line: Line,
    ) -> Vec<PeerReply> {
        let opts = ServerOptions { upload_limit: Some(Arc::clone(limit)), ..Default::default() };
        let hog = limit.turn();
        hog.take(64 << 10);
        let next = matches!(line, Line::Full).then(|| limit.turn());
        std::thread::scope(|s| {
            s.spawn(move || (0..128).for_each(|_| hog.take(64 << 10)));
            if let Some(next) = next {
                s.spawn(move || (0..128).for_each(|_| next.take(64 << 10)));
            }
            let written = exchange(shares, reqs, &opts);
            let len = written.len() as u64;
            let mut out = Cursor::new(written);
            std::iter::from_fn(|| (out.position() < len).then(|| next_reply(&mut out).0)).collect()
        })
    }

    #[test]
    fn offers_are_paced_per_connection() {
        let f = complete();
        let mine = Some(Bitfield::new(3).to_hex());
        let hello = PeerRequest::Hello { abilities: Abilities::ALL };
        let asks = (0..11).map(|_| PeerRequest::Have { content_id: f.id, mine: mine.clone() });
        let reqs: Vec<PeerRequest> = std::iter::once(hello).chain(asks).collect();
        let t = Instant::now();
        let mut out = Cursor::new(exchange(&f.shares, &reqs, &ServerOptions::default()));
        assert!(t.elapsed() >= OFFER_GAP * 10, "11 offers in {:?}", t.elapsed());
        assert_eq!(next_reply(&mut out).0, PeerReply::Hello { abilities: Abilities::ALL });
        for _ in 0..11 {
            assert_eq!(next_reply(&mut out).0.kind(), "offer");
        }
    }

    #[test]
    fn a_malformed_request_gets_an_error_and_the_end() {
        let f = complete();
        let mut input = Vec::new();
        encode_request(&mut input, &PeerRequest::Have { content_id: f.id, mine: None });
        input.extend_from_slice(&[0, 0, 0, 5, b'{', b'"', b'x', b'"', b':']);
        encode_request(&mut input, &PeerRequest::Have { content_id: f.id, mine: None });
        let socket = MemSocket::new(input);
        let mut conn = Conn::over(socket.clone(), FROM.parse().unwrap(), Duration::from_secs(1)).unwrap();
        let total = AtomicUsize::new(0);
        let mut files = OpenFiles::new(&total);
        serve_requests(&mut conn, &f.shares, &ServerOptions::default(), &mut files, 1);
        let mut out = Cursor::new(socket.written());
        assert_eq!(next_reply(&mut out).0.kind(), "have");
        assert!(
            matches!(next_reply(&mut out).0, PeerReply::Error { reason } if reason.contains("invalid JSON"))
        );
        assert_eq!(out.position() as usize, out.get_ref().len(), "nothing is read after bad input");
    }

    #[test]
    fn the_turn_constants_keep_their_order() {
        // PROTOCOL.md section 5: a first in line that stalls loses its turn before a turn may
        // come early, which is before a turn request is answered `later`, which is before
        // the downloader gives up on the reply.
        assert!(crate::peer::upload::STUCK < MAX_LEAD);
        assert!(MAX_LEAD < TURN_WAIT);
        assert!(TURN_WAIT < crate::download::Options::default().io_timeout);
        assert!(MAX_LEAD < TURN_ANSWER, "a place waits longer than a round trip may take");
    }
}
