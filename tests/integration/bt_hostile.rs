//! Hostile BitTorrent input to a peer server: each gets its connection closed with a clear
//! log line, and the server goes on serving an honest download.

use crate::helpers::{peer_dir, test_bytes};
use crate::local::{LocalPeer, LocalTracker};
use p2p_share::bt::msg::{encode, read_message, Block, Handshake, Message, HANDSHAKE_LEN};
use p2p_share::hash::ContentId;
use p2p_share::manifest::hash_file;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const IO: Duration = Duration::from_secs(5);

/// Opens a BitTorrent connection for `id`; returns the stream after both handshakes.
fn greet(addr: SocketAddr, id: ContentId) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    s.write_all(&Handshake::ours(id, *b"-XX0000-hostilehosti").to_bytes()).unwrap();
    let mut theirs = [0u8; HANDSHAKE_LEN];
    s.read_exact(&mut theirs).unwrap();
    s
}

/// Sends `bytes` and says whether the server closed the connection within a few seconds
/// (reading whatever it sends until then).
fn closes_after(mut s: TcpStream, bytes: &[u8]) -> bool {
    let _ = s.write_all(bytes);
    let deadline = Instant::now() + IO;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

fn msg(m: &Message) -> Vec<u8> {
    let mut v = Vec::new();
    encode(m, &mut v);
    v
}

#[test]
fn hostile_bittorrent_peers_are_closed_and_others_still_served() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(3 * 1024 * 1024 + 1, 77);
    let dir = peer_dir(root.path(), "seed", &[("f.bin", &data)]);
    let seed = LocalPeer::start(t.addr, &dir);
    let id = hash_file(&dir.join("files/f.bin"), "f.bin", true).unwrap().content_id();
    let addr = seed.addr();

    // An info-hash not shared here: closed right after its handshake.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    s.write_all(&Handshake::ours(ContentId::of(b"nothing"), [1; 20]).to_bytes()).unwrap();
    let mut first = [0u8; 1];
    assert!(matches!(s.read(&mut first), Ok(0) | Err(_)), "an unknown info-hash is not answered");

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a 4 GB message", vec![0xff, 0xff, 0xff, 0xff, 7]),
        ("a bitfield of the wrong length", msg(&Message::Bitfield(vec![0xff; 9]))),
        ("a have past the last piece", msg(&Message::Have(4))),
        (
            "a piece nobody asked for",
            [msg(&Message::Piece(Block { index: 0, begin: 0, length: 4 })), b"abcd".to_vec()].concat(),
        ),
        ("an unknown message id", vec![0, 0, 0, 1, 99]),
        (
            "a block larger than 128 KiB",
            [
                msg(&Message::Interested),
                msg(&Message::Request(Block { index: 0, begin: 0, length: 256 * 1024 })),
            ]
            .concat(),
        ),
        (
            "a block past the end of its piece",
            [msg(&Message::Interested), msg(&Message::Request(Block { index: 3, begin: 0, length: 16384 }))]
                .concat(),
        ),
        (
            "bad bencode in the extension handshake",
            msg(&Message::Extended { id: 0, payload: b"d1:m".to_vec() }),
        ),
    ];
    for (what, bytes) in cases {
        assert!(closes_after(greet(addr, id), &bytes), "{what}: the connection stays open");
    }

    // Meanwhile an honest BitTorrent peer gets a block, and a native download works.
    let mut s = greet(addr, id);
    s.write_all(&msg(&Message::Interested)).unwrap();
    let mut unchoked = false;
    while !unchoked {
        match read_message(&mut s).unwrap() {
            Message::Unchoke => unchoked = true,
            Message::Extended { .. } | Message::HaveAll | Message::Bitfield(_) | Message::KeepAlive => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    s.write_all(&msg(&Message::Request(Block { index: 1, begin: 16384, length: 16384 }))).unwrap();
    assert_eq!(
        read_message(&mut s).unwrap(),
        Message::Piece(Block { index: 1, begin: 16384, length: 16384 })
    );
    let mut block = vec![0u8; 16384];
    s.read_exact(&mut block).unwrap();
    assert!(block == data[(1 << 20) + 16384..(1 << 20) + 32768], "the right bytes");
    let down = peer_dir(root.path(), "down", &[]);
    LocalPeer::start(t.addr, &down).download("f.bin").unwrap();
    assert!(std::fs::read(down.join("files/f.bin")).unwrap() == data);
    let mut top: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, vec!["down", "seed"], "nothing written outside the peer folders");
}

/// The opening of an encrypted (MSE) handshake as far as its first encrypted field:
/// our key, then (after the server's key) the two hashes and `VC, crypto_provide,
/// len(PadC)` with the PadC length given.
fn mse_opening(addr: SocketAddr, id: ContentId, pad_c: u16) -> TcpStream {
    use p2p_share::bt::mse::{req2, KeyPair, KEY_LEN};
    use rc4::StreamCipher;
    use sha1::{Digest, Sha1};
    let hash = |parts: &[&[u8]]| -> [u8; 20] {
        let mut h = Sha1::new();
        parts.iter().for_each(|p| h.update(p));
        h.finalize().into()
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    let keys = KeyPair::new();
    s.write_all(&keys.public).unwrap();
    let mut yb = [0u8; KEY_LEN];
    s.read_exact(&mut yb).unwrap();
    let secret = keys.shared(&yb).unwrap();
    let mask = hash(&[b"req3", &secret]);
    let named: Vec<u8> = req2(&id).iter().zip(&mask).map(|(a, b)| a ^ b).collect();
    let mut enc = p2p_share::bt::stream::cipher(&hash(&[b"keyA", &secret, id.as_bytes()]));
    let mut head = [&[0u8; 8][..], &2u32.to_be_bytes(), &pad_c.to_be_bytes()].concat();
    enc.apply_keystream(&mut head);
    s.write_all(&[&hash(&[b"req1", &secret])[..], &named, &head].concat()).unwrap();
    s
}

/// Hostile encrypted handshakes all at once: garbage that never syncs, a key then
/// silence, a drip of one byte every 200 ms, and a pad longer than the spec allows. Each
/// is closed, at the latest when the handshake's deadline (10 s) passes, while an honest
/// encrypted client and a native download are served.
#[test]
fn hostile_encrypted_handshakes_are_closed_within_their_deadline() {
    let t = LocalTracker::start();
    let root = tempfile::tempdir().unwrap();
    let data = test_bytes(2 * 1024 * 1024 + 3, 78);
    let dir = peer_dir(root.path(), "seed", &[("g.bin", &data)]);
    let seed = LocalPeer::start(t.addr, &dir);
    let id = hash_file(&dir.join("files/g.bin"), "g.bin", true).unwrap().content_id();
    let addr = seed.addr();
    let started = Instant::now();
    let key_like = |n: usize| (0..n).map(|i| (i * 7 + 0x40) as u8).collect::<Vec<u8>>();
    let hostile: Vec<(&str, std::thread::JoinHandle<bool>)> = vec![
        ("garbage with no sync in 512 bytes", {
            let bytes = key_like(96 + 2000);
            std::thread::spawn(move || closes_after(TcpStream::connect(addr).unwrap(), &bytes))
        }),
        ("a key, then silence", {
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                closes_after(s, &key_like(96))
            })
        }),
        ("a drip of one byte every 200 ms", {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&key_like(96)).unwrap();
                for b in 0..100u8 {
                    std::thread::sleep(Duration::from_millis(200));
                    if s.write_all(&[b]).is_err() {
                        return true;
                    }
                }
                false
            })
        }),
        (
            "a PadC of 60 000 bytes",
            std::thread::spawn(move || closes_after(mse_opening(addr, id, 60_000), &[])),
        ),
    ];
    // Meanwhile: an honest encrypted BitTorrent client is answered (the server's
    // handshake comes back inside the encrypted stream), and a native download works.
    let tcp = TcpStream::connect(addr).unwrap();
    let ours = Handshake::ours(id, *b"-XX0000-encrypted-01");
    let deadline = Instant::now() + IO;
    let mut stream = p2p_share::bt::mse::initiate(&tcp, &id, &ours.to_bytes(), 2, deadline).unwrap();
    assert!(stream.is_encrypted(), "RC4 was the only method offered");
    stream.tcp().set_read_timeout(Some(IO)).unwrap();
    let theirs = Handshake::read(&mut stream).unwrap();
    assert_eq!(theirs.info_hash, id);
    let down = peer_dir(root.path(), "down", &[]);
    LocalPeer::start(t.addr, &down).download("g.bin").unwrap();
    assert!(std::fs::read(down.join("files/g.bin")).unwrap() == data);
    for (what, h) in hostile {
        assert!(h.join().unwrap(), "{what}: the connection stays open");
    }
    assert!(started.elapsed() < Duration::from_secs(16), "closed by the deadline: {:?}", started.elapsed());
}
