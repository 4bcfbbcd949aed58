//! The native side of the peer server: one connection's requests answered in order. Each
//! request is first *decided* ([`decide`]: which reply, which bytes from which file, from
//! the shares alone) and then *sent* ([`send`]: the bytes copied, under the upload limit, in
//! turns when the line is full; `PROTOCOL.md` sections 3 and 4). Both work over any
//! [`Socket`], so the unit tests below run them in memory.

use crate::bitfield::Bitfield;
use crate::hash::ContentId;
use crate::holdings::shares::{Holding, Share, Shares};
use crate::names::validate_name;
use crate::peer::open_files::{open_for_chunk, OpenFiles, Refusal};
use crate::peer::options::ServerOptions;
use crate::peer::upload::{Turn, UploadLine};
use crate::wire::conn::Conn;
use crate::wire::deadline::Socket;
use crate::wire::peer_msg::{Abilities, PeerReply, PeerRequest};
use crate::wire::send_deadline::DeadlineWriter;
use crate::wire::{FrameError, WireError};
use log::{debug, info};
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
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

/// One connection's standing with this server. Under an upload limit, a peer keeps one
/// place to wait in its upload line, right behind the upload being sent. A chunk request
/// that finds that place taken, or that does not get its turn within one chunk's sending
/// time, is answered `busy` when other peers have the chunk too (this peer is still
/// downloading, or has sent that chunk before) and the asker takes turns. In a crowd,
/// everyone asks a peer for the chunk it just got: queued there, their requests would hold
/// chunks that idle peers could send.
///
/// From then on the asker waits for a place in the line with a turn request, holding no
/// chunk, and names the chunk when its place comes, picked from what this peer has then
/// (the turn's answer is the have-set). The line never empties while someone waits, and a
/// chunk this peer just got goes out in the next turn, not behind one named a chunk's time
/// earlier. `PROTOCOL.md` sections 4.3 and 4.4; `cargo bench --bench bench -- crowd`
/// measures it.
struct Standing {
    /// Names the connection to super-seeding.
    id: u64,
    /// What it said it understands (`hello`); nothing until it says.
    abilities: Abilities,
    /// How long it took to name a chunk when its last turn came (a round trip and its
    /// pick): its next turn comes that much before the chunk ahead of it is sent, so the
    /// upload does not pause for the round trip.
    answer_time: Duration,
}

/// Whether a chunk request in `turn` must go elsewhere (see [`Standing`]): more than one
/// upload is ahead of it, or its turn did not come within `chunk_time`.
fn line_full(turn: &Turn, chunk_time: Duration) -> bool {
    turn.ahead() >= 2 || !turn.wait_until(Instant::now() + chunk_time)
}

/// How long a turn request waits for its place before it is answered `later` (well inside
/// a downloader's 10 s reply time-out): the asker hears what this peer has now, and keeps
/// its place by asking for the same turn again.
const TURN_WAIT: Duration = Duration::from_secs(2);
/// The most a turn comes before the chunk ahead of it is sent: a round trip that long
/// is a slow link, and the place holds the chunk named no longer than this ahead.
const MAX_LEAD: Duration = Duration::from_millis(500);
/// How long a place that came is kept for the chunk request that names its chunk.
const TURN_ANSWER: Duration = Duration::from_secs(2);

/// Answers a turn request (see [`Standing`]): waits until the asker is first in the upload
/// line, or second while the chunk being sent is due within the asker's answer time;
/// answers with what this peer has; and sends the chunk the next request names in that
/// place. Returns the next request when it is not a chunk request (the place is given up).
fn serve_turn<S: Socket>(
    conn: &mut Conn<S>,
    shares: &Shares,
    opts: &ServerOptions,
    files: &mut OpenFiles,
    asker: &mut Standing,
    content_id: &ContentId,
    mine: Option<&str>,
) -> Result<Option<PeerRequest>, WireError> {
    let Some(shared) = shares.get(content_id) else {
        let Refusal(reason) = not_shared(content_id);
        conn.send_reply(&PeerReply::Error { reason })?;
        return Ok(None);
    };
    let limit = opts.upload_limit.as_ref();
    let turn = limit.map(|l| l.turn());
    let mut mine = mine.map(str::to_string);
    loop {
        let came = turn.as_ref().is_none_or(|t| t.wait_place(asker.answer_time, Instant::now() + TURN_WAIT));
        let mut reply = have_reply(&shared, mine.as_deref(), asker)
            .unwrap_or_else(|Refusal(reason)| PeerReply::Error { reason });
        if let PeerReply::Have { later, .. } | PeerReply::Offer { later, .. } = &mut reply {
            *later = !came;
        }
        let answered = Instant::now();
        conn.send_reply(&reply)?;
        let req: PeerRequest = conn.read_request_within(TURN_ANSWER)?;
        asker.answer_time = answered.elapsed().min(MAX_LEAD);
        match req {
            // Not yet its place: the same turn asked again keeps it.
            PeerRequest::Turn { content_id: again, mine: now_mine } if !came && again == *content_id => {
                mine = now_mine;
            }
            PeerRequest::Chunk { .. } if came => {
                let plan = decide(&req, shares, files, conn.peer_addr(), asker);
                send(conn, plan, limit, asker, turn)?;
                return Ok(None);
            }
            other => return Ok(Some(other)),
        }
    }
}

/// The shortest time between two offers on one connection.
const OFFER_GAP: Duration = Duration::from_millis(10);

/// Files one connection's offers are withdrawn from when it ends; past this, its offers
/// of more files lapse after `super_seed::PRESENT`.
const MAX_OFFERED_FILES: usize = 16;

/// What to send for one request, decided from the shares alone; no byte moved yet.
enum Plan<'f> {
    /// A reply alone (a have-set, or a refusal: the connection stays open).
    Reply(PeerReply),
    /// The manifest reply, then its text.
    Manifest { content_id: ContentId, text: String },
    /// The chunk reply, then `len` bytes of `file` from `offset`.
    /// `shared` counts what went out (super-seeding) and says whether others have it.
    Chunk { index: u32, file: &'f File, offset: u64, len: usize, shared: Arc<Share> },
}

/// Decides the answer to `req` from `asker`.
fn decide<'f>(
    req: &PeerRequest,
    shares: &Shares,
    files: &'f mut OpenFiles,
    from: SocketAddr,
    asker: &Standing,
) -> Plan<'f> {
    let planned = match req {
        PeerRequest::Hello { .. } => Ok(Plan::Reply(PeerReply::Hello { abilities: Abilities::ALL })),
        PeerRequest::Manifest { content_id, name } => {
            find(shares, content_id.as_ref(), name.as_deref()).map(|shared| {
                info!("Sending file.ini of '{}' to {from}", shared.manifest.name);
                Plan::Manifest { content_id: shared.content_id, text: shared.manifest.to_ini() }
            })
        }
        PeerRequest::Have { content_id, mine } | PeerRequest::Turn { content_id, mine } => {
            let shared = shares.get(content_id).ok_or_else(|| not_shared(content_id));
            shared.and_then(|shared| have_reply(&shared, mine.as_deref(), asker)).map(Plan::Reply)
        }
        PeerRequest::Chunk { content_id, index } => match shares.get(content_id) {
            None => Err(not_shared(content_id)),
            Some(shared) if shared.is_complete() => {
                if !shared.seeding.lock().may_send(*index, asker.id) {
                    return Plan::Reply(PeerReply::Elsewhere { index: *index });
                }
                plan_chunk(&shared, *index, files)
            }
            Some(shared) => plan_chunk(&shared, *index, files),
        },
    };
    planned.unwrap_or_else(|Refusal(reason)| {
        debug!("peer server: {from}: {reason}");
        Plan::Reply(PeerReply::Error { reason })
    })
}

/// Which chunks we have: a partial file's bitfield; for a complete file, `complete`, or,
/// to an asker that takes offers and says what it has, an offer (super-seeding).
fn have_reply(shared: &Share, mine: Option<&str>, asker: &Standing) -> Result<PeerReply, Refusal> {
    Ok(match (&shared.holding, mine) {
        (Holding::Partial(store), _) => {
            PeerReply::Have { complete: false, bitfield: store.bitfield().to_hex(), later: false }
        }
        (Holding::Complete(..), Some(mine)) if asker.abilities.offers => {
            let has = Bitfield::from_hex(mine, shared.manifest.chunk_count())
                .map_err(|e| Refusal(format!("the have-set sent: {e}")))?;
            let offer = shared.seeding.lock().offer(asker.id, &has, Instant::now());
            debug!(
                "super-seeding '{}': connection {} has {}, is offered {}",
                shared.manifest.name,
                asker.id,
                has.count(),
                offer.count()
            );
            PeerReply::Offer { bitfield: offer.to_hex(), later: false }
        }
        (Holding::Complete(..), _) => {
            PeerReply::Have { complete: true, bitfield: String::new(), later: false }
        }
    })
}

fn not_shared(id: &ContentId) -> Refusal {
    Refusal(format!("file {id} is not shared here"))
}

fn find(shares: &Shares, id: Option<&ContentId>, name: Option<&str>) -> Result<Arc<Share>, Refusal> {
    match (id, name) {
        (Some(id), _) => shares.get(id).ok_or_else(|| not_shared(id)),
        (None, Some(name)) => {
            validate_name(name).map_err(|e| Refusal(e.to_string()))?;
            shares.complete_by_name(name).ok_or_else(|| Refusal(format!("'{name}' is not shared here")))
        }
        (None, None) => Err(Refusal("a manifest request must name a file".into())),
    }
}

fn plan_chunk<'f>(shared: &Arc<Share>, index: u32, files: &'f mut OpenFiles) -> Result<Plan<'f>, Refusal> {
    let m = &shared.manifest;
    let Some(idx) = m.index(index) else {
        return Err(Refusal(format!(
            "chunk {index} is out of range: '{}' has {} chunks",
            m.name,
            m.chunk_count()
        )));
    };
    let file = open_for_chunk(shared, idx, files)?;
    Ok(Plan::Chunk { index, file, offset: idx.offset(), len: m.chunk_len(idx), shared: Arc::clone(shared) })
}

/// Sends what [`decide`] planned.
fn send<S: Socket>(
    conn: &mut Conn<S>,
    plan: Plan,
    limit: Option<&Arc<UploadLine>>,
    asker: &mut Standing,
    place: Option<Turn>,
) -> Result<(), WireError> {
    match plan {
        Plan::Reply(reply) => conn.send_reply(&reply),
        Plan::Manifest { content_id, text } => {
            conn.send_reply(&PeerReply::Manifest { content_id, len: text.len() as u32 })?;
            Ok(conn.write_raw(text.as_bytes())?)
        }
        Plan::Chunk { index, file, offset, len, shared } => {
            let complete = shared.is_complete();
            let in_place = place.is_some();
            let turn = place.or_else(|| limit.map(|l| l.turn()));
            if let (Some(turn), Some(limit), false) = (&turn, limit, in_place) {
                // Only a chunk others have too: a seeder's chunk that never went out waits.
                let elsewhere = !complete || shared.seeding.lock().times_sent(index) > 0;
                if elsewhere && asker.abilities.turns && line_full(turn, limit.time_for(len)) {
                    return conn.send_reply(&PeerReply::Busy { index });
                }
            }
            if complete {
                shared.seeding.lock().sent(index, asker.id);
            }
            conn.send_reply(&PeerReply::Chunk { index, len: len as u32 })?;
            let sent = match turn {
                None => conn.writer().send_file(file, offset, len),
                Some(turn) => copy_range_limited(file, offset, len, conn.writer(), &turn),
            };
            match sent? {
                n if n == len => Ok(()),
                // The file shrank under us: the promised bytes cannot be sent, so close.
                n => Err(WireError::Frame(FrameError::Truncated { expected: len, got: n })),
            }
        }
    }
}

/// Copies a file range in slices, taking tokens from the shared upload limit first, in
/// its turn.
fn copy_range_limited<S: Socket>(
    file: &File,
    offset: u64,
    len: usize,
    out: &mut DeadlineWriter<S>,
    turn: &Turn,
) -> io::Result<usize> {
    const SLICE: usize = 64 * 1024;
    let mut buf = vec![0u8; SLICE];
    let mut done = 0;
    while done < len {
        let n = SLICE.min(len - done);
        turn.take(n);
        turn.left(len - done - n);
        let got = file.read_at(&mut buf[..n], offset + done as u64)?;
        if got == 0 {
            break;
        }
        out.send(&buf[..got])?;
        done += got;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk_store::ChunkStore;
    use crate::holdings::shares::FileIdentity;
    use crate::manifest::{hash_file, Manifest, CHUNK_SIZE};
    use crate::wire::frame::read_frame;
    use crate::wire::mem::MemSocket;
    use crate::wire::{decode_reply, encode_request, MAX_CONTROL_FRAME};
    use std::io::{Cursor, Read};
    use std::sync::atomic::{AtomicUsize, Ordering};

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
        let identity = FileIdentity::of(&std::fs::metadata(&path).unwrap());
        shares.add_complete(Arc::new(m), id, path, identity);
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
