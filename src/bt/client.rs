//! Our side of a BitTorrent connection we open as a downloader: connect, handshakes
//! (ours with the extension protocol and the fast extension), then messages read under
//! deadlines: waiting for the next one is bounded by the caller, and once one started it
//! must arrive whole within the time-out plus its length at the minimum payload rate.

use super::dial;
use super::metadata::{self, ExtHandshake, MetadataMsg, METADATA_PIECE, OUR_UT_METADATA};
use super::mse::Encryption;
use super::msg::{self, reserved, BtError, Handshake, Message};
use super::stream::PeerStream;
use crate::hash::ContentId;
use crate::wire::deadline::MIN_PAYLOAD_RATE;
use crate::wire::deadline::{DeadlineStream, Socket};
use crate::wire::send_deadline::DeadlineWriter;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One BitTorrent connection to a source.
pub struct BtConn {
    reader: BufReader<DeadlineStream<PeerStream>>,
    writer: DeadlineWriter<PeerStream>,
    pub addr: SocketAddr,
    pub theirs: Handshake,
    io_timeout: Duration,
    out: Vec<u8>,
    last_sent: Instant,
}

impl BtConn {
    /// Connects to `addr` for the torrent `id`; the other side must answer for the same
    /// info-hash. Our extension handshake (`offer`) goes out when the other side supports it, and
    /// with `dht_port` the handshake's DHT bit is set and a `port` message follows when the
    /// other side's bit is set too (BEP 5). `encryption`: how the connection is opened
    /// (see [`dial`]).
    pub fn connect(
        addr: SocketAddr,
        id: ContentId,
        peer_id: [u8; 20],
        io_timeout: Duration,
        dht_port: Option<u16>,
        offer: metadata::Offer,
        encryption: Encryption,
    ) -> Result<BtConn, BtError> {
        let ours = Handshake::ours(id, peer_id);
        let ours = if dht_port.is_some() { ours.with_dht() } else { ours };
        let stream = dial::open(addr, &ours, encryption, io_timeout)?;
        let writer = DeadlineWriter::new(stream.try_clone()?, io_timeout);
        let mut reader = BufReader::with_capacity(256 * 1024, DeadlineStream::new(stream));
        reader.get_mut().set_deadline(Instant::now() + io_timeout);
        let theirs = Handshake::read(&mut reader)?;
        if theirs.info_hash != id {
            return Err(BtError::Protocol(format!("answered for {} instead of {id}", theirs.info_hash)));
        }
        let mut conn =
            BtConn { reader, writer, addr, theirs, io_timeout, out: Vec::new(), last_sent: Instant::now() };
        if conn.theirs.supports(reserved::EXTENSIONS) {
            let payload = metadata::our_handshake(offer);
            conn.send(&Message::Extended { id: metadata::HANDSHAKE_ID, payload })?;
        }
        if let (Some(port), true) = (dht_port, conn.theirs.supports(reserved::DHT)) {
            conn.send(&Message::Port(port))?;
        }
        Ok(conn)
    }

    /// The connection's socket (to shut it down from another thread).
    pub fn tcp(&self) -> &std::net::TcpStream {
        self.writer.get_ref().tcp()
    }

    /// The other side is a p2p-share peer (its peer id says so), which also speaks our
    /// own protocol.
    pub fn is_p2p_share(&self) -> bool {
        self.theirs.peer_id.starts_with(&super::PEER_ID_PREFIX[..3])
    }

    pub fn fast(&self) -> bool {
        self.theirs.supports(reserved::FAST)
    }

    pub fn send(&mut self, m: &Message) -> io::Result<()> {
        self.out.clear();
        msg::encode(m, &mut self.out);
        self.writer.send(&self.out)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Sends several messages in one write (pipelined requests).
    pub fn send_all(&mut self, ms: &[Message]) -> io::Result<()> {
        self.out.clear();
        ms.iter().for_each(|m| msg::encode(m, &mut self.out));
        self.writer.send(&self.out)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// A `piece` message with its data, in one write.
    pub fn send_block(&mut self, b: super::msg::Block, data: &[u8]) -> io::Result<()> {
        self.out.clear();
        msg::encode(&Message::Piece(b), &mut self.out);
        self.out.extend_from_slice(data);
        self.writer.send(&self.out)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Whether more of the other side's bytes are already read in (a pipelined request).
    pub fn has_buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// A keep-alive when we have been silent for a minute.
    pub fn keep_alive(&mut self) -> io::Result<()> {
        if self.last_sent.elapsed() > Duration::from_secs(60) {
            self.send(&Message::KeepAlive)?;
        }
        Ok(())
    }

    /// The next message, if one starts within `wait`; it must then arrive whole in time.
    /// For a `piece`, the caller reads its data next with [`read_data`](BtConn::read_data).
    pub fn next(&mut self, wait: Duration) -> Result<Option<Message>, BtError> {
        let now = Instant::now();
        self.reader.get_mut().set_deadline(now + wait);
        match self.reader.fill_buf() {
            Ok([]) => return Err(BtError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"))),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let budget = self.io_timeout + Duration::from_secs(u64::from(msg::MAX_MESSAGE) / MIN_PAYLOAD_RATE);
        self.reader.get_mut().set_deadline(Instant::now() + budget);
        msg::read_message(&mut self.reader).map(Some)
    }

    /// Reads a `piece` message's data.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<(), BtError> {
        Ok(self.reader.read_exact(buf)?)
    }

    /// Reads the other side's extension handshake among the first messages (others are
    /// handed to `other`), waiting at most `wait`.
    pub fn ext_handshake(
        &mut self,
        wait: Duration,
        mut other: impl FnMut(&mut BtConn, Message) -> Result<(), BtError>,
    ) -> Result<ExtHandshake, BtError> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            match self.next(deadline.saturating_duration_since(Instant::now()))? {
                Some(Message::Extended { id: metadata::HANDSHAKE_ID, payload }) => {
                    return metadata::parse_handshake(&payload)
                }
                Some(m) => other(self, m)?,
                None => break,
            }
        }
        Err(BtError::Protocol("no extension handshake".into()))
    }

    /// The info dictionary of `id`, fetched with ut_metadata piece by piece and checked
    /// against the info-hash. Other messages meanwhile are skipped (a block's data too).
    pub fn fetch_info(&mut self, id: ContentId, wait: Duration) -> Result<Vec<u8>, BtError> {
        let ext = self.ext_handshake(wait, skip)?;
        let theirs =
            ext.ut_metadata.ok_or_else(|| BtError::Protocol("it does not offer ut_metadata".into()))?;
        let size = ext.metadata_size.ok_or_else(|| BtError::Protocol("no usable metadata_size".into()))?;
        // The whole dictionary within the time-out plus its size at the minimum payload
        // rate: a peer dripping pieces of a 20 MB claim cannot hold this for hours.
        let all_by = Instant::now() + wait + Duration::from_secs(size as u64 / MIN_PAYLOAD_RATE);
        let mut info = Vec::new();
        for piece in 0..size.div_ceil(METADATA_PIECE) as u32 {
            let payload = metadata::encode(&MetadataMsg::Request(piece));
            self.send(&Message::Extended { id: theirs, payload })?;
            let deadline = (Instant::now() + wait).min(all_by);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let m = self
                    .next(left)?
                    .ok_or_else(|| BtError::Protocol(format!("no metadata piece {piece}")))?;
                let Message::Extended { id: OUR_UT_METADATA, payload } = m else {
                    skip(self, m)?;
                    continue;
                };
                match metadata::decode(&payload)? {
                    MetadataMsg::Data { piece: p, total_size, data } if p == piece => {
                        let want = (size - info.len()).min(METADATA_PIECE);
                        if total_size != size || data.len() != want {
                            return Err(BtError::Protocol(format!(
                                "metadata piece {piece} of {} bytes (total {total_size}), expected {want} (total {size})",
                                data.len()
                            )));
                        }
                        info.extend_from_slice(&data);
                        break;
                    }
                    MetadataMsg::Reject(_) => {
                        return Err(BtError::Protocol(format!("rejected metadata piece {piece}")))
                    }
                    _ => {}
                }
            }
        }
        if ContentId::of(&info) != id {
            return Err(BtError::Protocol("its metadata does not match the info-hash".into()));
        }
        Ok(info)
    }
}

/// Skips a message we have no use for now (a block's data is read and dropped).
fn skip(conn: &mut BtConn, m: Message) -> Result<(), BtError> {
    if let Message::Piece(b) = m {
        let mut sink = vec![0u8; b.length as usize];
        conn.read_data(&mut sink)?;
    }
    Ok(())
}
