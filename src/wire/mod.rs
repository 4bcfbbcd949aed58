//! The wire protocol shared by the tracker and the peers (specified in `PROTOCOL.md`).
//!
//! Every message is a frame ([`frame`]): a 4-byte big-endian length, then a JSON body.
//! Requests travel in an envelope that names the protocol version,
//! `{"version":3,"msg":{"type":"search","name":"a.pdf"}}`; replies are the bare tagged
//! message. Chunk bytes follow a `chunk` reply raw, outside any frame (see [`peer_msg`]).
//! A peer that sends an oversized frame, truncated input, invalid JSON, an unknown message
//! or an unknown version gets an `error` reply with a one-line reason, and is disconnected.

pub mod conn;
pub mod deadline;
pub mod frame;
pub mod mem;
pub mod peer_msg;
pub mod send_deadline;
pub mod tracker_msg;

use crate::text::one_line;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

pub use frame::{FrameError, MAX_CONTROL_FRAME};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 3;

/// Why a message could not be read.
#[derive(Debug)]
pub enum WireError {
    Frame(FrameError),
    InvalidJson(String),
    BadMessage(String),
    UnsupportedVersion(u64),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Frame(e) => write!(f, "{e}"),
            WireError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            WireError::BadMessage(e) => write!(f, "bad message: {e}"),
            WireError::UnsupportedVersion(v) => {
                write!(f, "unsupported protocol version {v} (this side speaks {PROTOCOL_VERSION})")
            }
        }
    }
}

impl std::error::Error for WireError {}

impl From<FrameError> for WireError {
    fn from(e: FrameError) -> Self {
        WireError::Frame(e)
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Frame(FrameError::Io(e))
    }
}

impl WireError {
    /// True when the peer simply went away between messages (not worth a warning).
    pub fn is_closed(&self) -> bool {
        matches!(self, WireError::Frame(FrameError::Closed))
    }

    /// True for errors the other side should be told about before disconnecting.
    pub fn deserves_reply(&self) -> bool {
        matches!(
            self,
            WireError::Frame(FrameError::TooLarge { .. })
                | WireError::InvalidJson(_)
                | WireError::BadMessage(_)
                | WireError::UnsupportedVersion(_)
        )
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    version: u32,
    msg: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    version: u64,
    #[serde(borrow)]
    msg: &'a RawValue,
}

/// Appends `msg` as one framed request (with the version envelope) to `out`.
pub fn encode_request<T: Serialize>(out: &mut Vec<u8>, msg: &T) {
    let start = frame::begin_frame(out);
    let env = EnvelopeOut { version: PROTOCOL_VERSION, msg };
    serde_json::to_writer(&mut *out, &env).expect("serializing to memory cannot fail");
    frame::finish_frame(out, start);
}

/// Appends `msg` as one framed reply to `out`.
pub fn encode_reply<T: Serialize>(out: &mut Vec<u8>, msg: &T) {
    let start = frame::begin_frame(out);
    serde_json::to_writer(&mut *out, msg).expect("serializing to memory cannot fail");
    frame::finish_frame(out, start);
}

/// Decodes a request body: checks the envelope and its version, then the message.
pub fn decode_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let env: EnvelopeIn = serde_json::from_slice(body).map_err(json_error)?;
    if env.version != u64::from(PROTOCOL_VERSION) {
        return Err(WireError::UnsupportedVersion(env.version));
    }
    serde_json::from_str(env.msg.get()).map_err(json_error)
}

/// Decodes a reply body.
pub fn decode_reply<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(json_error)
}

fn json_error(e: serde_json::Error) -> WireError {
    use serde_json::error::Category;
    let text = one_line(&e.to_string());
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => WireError::InvalidJson(text),
        Category::Data => WireError::BadMessage(text),
    }
}

#[cfg(test)]
mod tests {
    use super::tracker_msg::TrackerRequest;
    use super::*;

    fn body(frame: &[u8]) -> &[u8] {
        &frame[4..]
    }

    #[test]
    fn request_round_trip_with_version() {
        let mut out = Vec::new();
        encode_request(&mut out, &TrackerRequest::Search { name: "a.pdf".into() });
        let text = std::str::from_utf8(body(&out)).unwrap();
        assert_eq!(text, r#"{"version":3,"msg":{"type":"search","name":"a.pdf"}}"#);
        let back: TrackerRequest = decode_request(body(&out)).unwrap();
        assert_eq!(back, TrackerRequest::Search { name: "a.pdf".into() });
    }

    #[test]
    fn rejects_unknown_version() {
        let err =
            decode_request::<TrackerRequest>(br#"{"version":7,"msg":{"type":"list_files"}}"#).unwrap_err();
        assert!(matches!(err, WireError::UnsupportedVersion(7)));
        assert_eq!(err.to_string(), "unsupported protocol version 7 (this side speaks 3)");
    }

    #[test]
    fn rejects_invalid_json() {
        let err = decode_request::<TrackerRequest>(b"{not json").unwrap_err();
        assert!(matches!(err, WireError::InvalidJson(_)), "{err}");
        let err = decode_request::<TrackerRequest>(b"\xff\xfe").unwrap_err();
        assert!(matches!(err, WireError::InvalidJson(_)), "{err}");
    }

    #[test]
    fn rejects_unknown_message_and_missing_fields() {
        let err = decode_request::<TrackerRequest>(br#"{"version":3,"msg":{"type":"explode"}}"#).unwrap_err();
        assert!(matches!(err, WireError::BadMessage(_)), "{err}");
        assert!(err.to_string().contains("explode"), "{err}");
        let err = decode_request::<TrackerRequest>(br#"{"version":3,"msg":{"type":"search"}}"#).unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
        let err = decode_request::<TrackerRequest>(br#"{"msg":{"type":"list_files"}}"#).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
    }
}
