//! Hostile counterparts speaking the wire protocol: a peer that lies in chosen ways and a
//! tracker whose answers are chosen by the test.

use crate::helpers::IO;
use p2p_share::wire::conn::Conn;
use p2p_share::wire::peer_msg::{Abilities, PeerReply, PeerRequest};
use p2p_share::wire::tracker_msg::{FileInfo, TrackerReply, TrackerRequest};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// What the fake peer does when asked for a chunk of `len` bytes.
#[derive(Clone, Copy)]
pub enum Lie {
    /// Sends the right header, then junk bytes.
    Corrupt,
    /// Claims the whole file, then refuses every chunk.
    Refuse,
    /// Announces a length other than the chunk's.
    WrongLength,
    /// Sends half the bytes, then goes silent.
    Stall,
    /// Accepts connections and never answers anything.
    Silent,
    /// Sends a chunk's header, then one byte every half second.
    Drip,
    /// Answers every chunk request `elsewhere`, asking to be asked again at once (and in a
    /// turn, which it grants at once).
    Busy,
}

/// Starts a peer that registers at `tracker`, announces `info`, serves `manifest` as its
/// manifest text and lies about chunks as `lie` says. Returns its port.
pub fn lying_peer(tracker: SocketAddr, info: FileInfo, manifest: String, lie: Lie) -> u16 {
    counted_lying_peer(tracker, info, manifest, lie).0
}

/// [`lying_peer`], and the number of chunk and turn requests it got.
pub fn counted_lying_peer(
    tracker: SocketAddr,
    info: FileInfo,
    manifest: String,
    lie: Lie,
) -> (u16, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut c = Conn::connect(tracker, IO).unwrap();
    let token = match c.call(&TrackerRequest::Register { port: Some(port), token: None }).unwrap() {
        TrackerReply::Registered { token, .. } => token,
        other => panic!("{other:?}"),
    };
    let announce = TrackerRequest::Announce {
        port,
        token,
        full: Some(vec![info.clone()]),
        added: vec![],
        removed: vec![],
    };
    let r: TrackerReply = c.call(&announce).unwrap();
    assert_eq!(r, TrackerReply::Ok, "the tracker took the announce");
    let manifest = Arc::new(manifest);
    let counter = Arc::clone(&asked);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (m, info, counter) = (Arc::clone(&manifest), info.clone(), Arc::clone(&counter));
            thread::spawn(move || {
                if matches!(lie, Lie::Silent) {
                    thread::sleep(Duration::from_secs(120));
                    return drop(stream);
                }
                let mut conn = Conn::new(stream, Duration::from_secs(120)).unwrap();
                while let Ok(req) = conn.read_request::<PeerRequest>() {
                    if matches!(req, PeerRequest::Chunk { .. } | PeerRequest::Turn { .. }) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    if !answer(&mut conn, req, &m, &info, lie) {
                        break;
                    }
                }
            });
        }
    });
    (port, asked)
}

fn answer(conn: &mut Conn, req: PeerRequest, manifest: &str, info: &FileInfo, lie: Lie) -> bool {
    match req {
        PeerRequest::Hello { .. } => conn.send_reply(&PeerReply::Hello { abilities: Abilities::ALL }).is_ok(),
        PeerRequest::Manifest { .. } => {
            let reply = PeerReply::Manifest { content_id: info.content_id, len: manifest.len() as u32 };
            conn.send_reply(&reply).is_ok() && conn.write_raw(manifest.as_bytes()).is_ok()
        }
        PeerRequest::Have { .. } | PeerRequest::Turn { .. } => conn
            .send_reply(&PeerReply::Have { complete: true, bitfield: String::new(), later: false })
            .is_ok(),
        PeerRequest::Chunk { index, .. } => {
            let len = (info.size - index as u64 * (1 << 20)).min(1 << 20) as usize;
            match lie {
                Lie::Corrupt => {
                    conn.send_reply(&PeerReply::Chunk { index, len: len as u32 }).is_ok()
                        && conn.write_raw(&vec![0xA5u8; len]).is_ok()
                }
                Lie::Refuse => conn
                    .send_reply(&PeerReply::Error { reason: format!("chunk {index} is not here yet") })
                    .is_ok(),
                Lie::WrongLength => {
                    conn.send_reply(&PeerReply::Chunk { index, len: len as u32 / 2 }).is_ok()
                        && conn.write_raw(&vec![0u8; len / 2]).is_ok()
                }
                Lie::Silent => false,
                Lie::Busy => {
                    let busy = PeerReply::Busy { index };
                    conn.send_reply(&busy).is_ok()
                }
                Lie::Drip => {
                    let _ = conn.send_reply(&PeerReply::Chunk { index, len: len as u32 });
                    for _ in 0..len {
                        if conn.write_raw(&[0]).is_err() {
                            break;
                        }
                        thread::sleep(Duration::from_millis(500));
                    }
                    false
                }
                Lie::Stall => {
                    let _ = conn.send_reply(&PeerReply::Chunk { index, len: len as u32 });
                    let _ = conn.write_raw(&vec![0u8; len / 2]);
                    thread::sleep(Duration::from_secs(120));
                    false
                }
            }
        }
    }
}

/// A tracker that answers every request with `reply(request)`, or with raw bytes.
pub fn fake_tracker(
    reply: impl Fn(&TrackerRequest) -> Result<TrackerReply, Vec<u8>> + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reply = Arc::new(reply);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let reply = Arc::clone(&reply);
            thread::spawn(move || {
                let mut conn = Conn::new(stream, IO).unwrap();
                while let Ok(req) = conn.read_request::<TrackerRequest>() {
                    let sent = match reply(&req) {
                        Ok(r) => conn.send_reply(&r).is_ok(),
                        Err(raw) => conn.write_raw(&raw).is_ok(),
                    };
                    if !sent {
                        break;
                    }
                }
            });
        }
    });
    addr
}
