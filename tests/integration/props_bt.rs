//! Property tests for what BitTorrent peers and files hand us: the message decoder, the
//! info dictionary (from a .torrent or ut_metadata), the extension handshake and
//! ut_metadata messages. Nothing may panic, every refusal is one line, and what is
//! accepted is what was meant.

use p2p_share::bt::metadata::{self, MetadataMsg};
use p2p_share::bt::msg::{encode, read_message, Block, Message};
use p2p_share::hash::{ContentId, Sha1Hash};
use p2p_share::manifest::{Manifest, CHUNK_SIZE};
use p2p_share::torrent::{read_torrent, torrent_file};
use proptest::prelude::*;
use std::io::Cursor;

fn one_line(e: &impl std::fmt::Display) -> bool {
    let s = e.to_string();
    !s.is_empty() && !s.contains('\n')
}

fn sample() -> Manifest {
    let chunks = (0..3u8).map(|i| Sha1Hash::of(&[i])).collect();
    Manifest::new("a file.bin".into(), 2 * CHUNK_SIZE + 17, None, chunks)
}

/// Changes, removes or adds bytes of `v` (also used by `props`).
pub fn mutate(mut v: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    for (pos, byte, kind) in edits {
        let i = pos % (v.len() + 1);
        match kind {
            0 if i < v.len() => v[i] = byte,
            1 if i < v.len() => {
                v.remove(i);
            }
            _ => v.insert(i, byte),
        }
    }
    v
}

pub fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)
}

fn valid_messages() -> Vec<u8> {
    let b = Block { index: 1, begin: 16384, length: 16384 };
    let mut out = Vec::new();
    for m in [
        Message::Have(2),
        Message::Bitfield(vec![0xe0]),
        Message::Request(b),
        Message::Cancel(b),
        Message::RejectRequest(b),
        Message::Extended {
            id: 0,
            payload: metadata::our_handshake(metadata::Offer {
                metadata_size: Some(200),
                pex: true,
                listen_port: None,
            }),
        },
        Message::Extended { id: 1, payload: metadata::encode(&MetadataMsg::Request(0)) },
    ] {
        encode(&m, &mut out);
    }
    out
}

/// Reads messages until the input ends or one is refused; a `piece` message's data is
/// skipped as the callers do.
fn read_all(bytes: &[u8]) -> Result<usize, p2p_share::bt::msg::BtError> {
    let mut r = Cursor::new(bytes);
    let mut n = 0;
    loop {
        if r.position() as usize == bytes.len() {
            return Ok(n);
        }
        match read_message(&mut r)? {
            Message::Piece(b) => {
                let mut sink = vec![0u8; b.length as usize];
                std::io::Read::read_exact(&mut r, &mut sink)?;
            }
            Message::Extended { id: 0, payload } => {
                let _ = metadata::parse_handshake(&payload);
            }
            Message::Extended { payload, .. } => {
                let _ = metadata::decode(&payload);
            }
            _ => {}
        }
        n += 1;
    }
}

proptest! {
    #[test]
    fn bt_message_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Err(e) = read_all(&bytes) { prop_assert!(one_line(&e)); }
    }

    #[test]
    fn mutated_bt_messages_never_panic(e in edits()) {
        if let Err(err) = read_all(&mutate(valid_messages(), e)) { prop_assert!(one_line(&err)); }
    }

    #[test]
    fn info_dicts_are_accepted_only_as_meant(e in edits()) {
        let raw = mutate(sample().info_bytes().into_owned(), e);
        match Manifest::from_info(&raw) {
            // Accepted: the bytes we would serve are the very bytes, so the info-hash we
            // serve under is the one that was asked for.
            Ok(m) => {
                prop_assert_eq!(m.info_bytes().into_owned(), raw.clone());
                prop_assert_eq!(m.content_id(), ContentId::of(&raw));
                prop_assert_eq!(m.chunks.len() as u64, m.size.div_ceil(m.piece_length));
                prop_assert_eq!(Manifest::parse(&m.to_ini()).map(|b| b.content_id()), Ok(m.content_id()));
            }
            Err(err) => prop_assert!(one_line(&err)),
        }
    }

    #[test]
    fn torrent_files_never_panic(e in edits(), junk in prop::collection::vec(any::<u8>(), 0..100)) {
        for bytes in [mutate(torrent_file(&sample(), Some("http://127.0.0.1:1/announce")), e), junk] {
            if let Err(err) = read_torrent(&bytes) { prop_assert!(one_line(&err)); }
        }
    }

    #[test]
    fn extension_messages_never_panic(e in edits(), size in any::<i64>()) {
        let hs = format!("d1:md11:ut_metadatai3ee13:metadata_sizei{size}e1:v3:abce").into_bytes();
        match metadata::parse_handshake(&mutate(hs.clone(), e.clone())) {
            Ok(h) => prop_assert!(h.metadata_size.is_none_or(|n| n <= p2p_share::info_dict::MAX_INFO_BYTES)),
            Err(err) => prop_assert!(one_line(&err)),
        }
        // A 20 MB claim, or any other, never exceeds the cap that bounds what we collect.
        if let Ok(h) = metadata::parse_handshake(&hs) {
            prop_assert!(h.metadata_size.is_none_or(|n| n <= p2p_share::info_dict::MAX_INFO_BYTES));
        }
        let data = metadata::encode(&MetadataMsg::Data { piece: 0, total_size: 20_000_000, data: vec![1; 10] });
        match metadata::decode(&mutate(data, e)) {
            Ok(MetadataMsg::Data { total_size, .. }) => prop_assert!(total_size <= p2p_share::info_dict::MAX_INFO_BYTES),
            Ok(_) => {}
            Err(err) => prop_assert!(one_line(&err)),
        }
    }
}

fn valid_query() -> String {
    let hash: String = (0..20u8).map(|b| format!("%{:02x}", b.wrapping_mul(13))).collect();
    format!("info_hash={hash}&peer_id=-TR3000-abcdefghijkl&port=51413&uploaded=0&downloaded=0&left=100&event=started&compact=1&numwant=30")
}

proptest! {
    #[test]
    fn announce_and_scrape_queries_never_panic(q in "[a-z_=&%0-9A-F]{0,200}", e in edits()) {
        use p2p_share::tracker::http::query::{failure, parse_announce, parse_scrape};
        let mutated = String::from_utf8_lossy(&mutate(valid_query().into_bytes(), e)).into_owned();
        for query in [q.as_str(), mutated.as_str()] {
            match parse_announce(query) {
                Ok(a) => prop_assert!(a.announce.port > 0 && a.numwant <= 200),
                Err(err) => {
                    prop_assert!(one_line(&err));
                    // Every refusal is a bencoded failure reason.
                    prop_assert!(failure(&err.to_string()).starts_with(b"d14:failure reason"));
                }
            }
            if let Err(err) = parse_scrape(query) { prop_assert!(one_line(&err)); }
        }
    }
}
