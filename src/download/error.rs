//! Why a download failed.

use crate::hash::ContentId;
use crate::magnet::MagnetError;
use crate::names::BadName;
use crate::torrent::TorrentError;
use crate::tracker_client::TrackerError;
use crate::wire::tracker_msg::FileListing;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a download failed. The partial state stays on disk unless said otherwise.
#[derive(Debug)]
pub enum DownloadError {
    Tracker(TrackerError),
    BadName(BadName),
    NotFound(String),
    Ambiguous {
        name: String,
        choices: Vec<FileListing>,
    },
    UnknownSource(String),
    NoManifest {
        id: ContentId,
        why: String,
    },
    Disk {
        path: PathBuf,
        err: io::Error,
    },
    Stalled {
        name: String,
        have: u32,
        total: u32,
    },
    Exists(PathBuf),
    Magnet(MagnetError),
    Torrent(TorrentError),
    /// A private torrent (BEP 27): its peers may come only from its own trackers.
    Private(String),
    /// No thread could be started for part of the download.
    Thread {
        what: &'static str,
        err: io::Error,
    },
    /// A part of the download crashed (a bug: please report it).
    Crashed(&'static str),
    /// The folder the download would write into refuses files.
    NotWritable {
        path: PathBuf,
        err: io::Error,
    },
    /// Stopped on request (Ctrl+C, a pause), its verified chunks kept.
    Stopped {
        name: String,
        have: u32,
        total: u32,
    },
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownloadError::Tracker(e) => write!(f, "{e}"),
            DownloadError::BadName(e) => write!(f, "{e}"),
            DownloadError::NotFound(name) => write!(f, "no peer shares '{name}'"),
            DownloadError::Ambiguous { name, choices } => {
                let ids: Vec<String> = choices.iter().map(|c| format!("{} ({} bytes)", c.info.content_id, c.info.size)).collect();
                write!(f, "several different files are named '{name}'; download one by id: {}", ids.join(", "))
            }
            DownloadError::UnknownSource(s) => write!(f, "'{s}' is not a peer that has this file"),
            DownloadError::NoManifest { id, why } => write!(f, "could not get the manifest of {id} from any source: {why}"),
            DownloadError::Disk { path, err } => write!(f, "{}: {err} (partial download kept)", path.display()),
            DownloadError::Stalled { name, have, total } => write!(
                f,
                "download of '{name}' stalled: no source sent the missing chunks ({have} of {total} kept; run the command again to resume)"
            ),
            DownloadError::Exists(path) => write!(f, "{} already exists with different content", path.display()),
            DownloadError::Magnet(e) => write!(f, "{e}"),
            DownloadError::Torrent(e) => write!(f, "{e}"),
            DownloadError::Private(name) => write!(
                f,
                "'{name}' is a private torrent: its peers may come only from its own trackers, and it names none this side can ask (http://, https:// or udp://)"
            ),
            DownloadError::Thread { what, err } => write!(f, "cannot start the {what} thread: {err} (partial download kept)"),
            DownloadError::Crashed(what) => write!(f, "the {what} thread crashed; this is a bug (partial download kept)"),
            DownloadError::NotWritable { path, err } => {
                write!(f, "cannot write into {}: {err}; nothing was downloaded", path.display())
            }
            DownloadError::Stopped { name, have, total } => {
                write!(f, "download of '{name}' stopped ({have} of {total} chunks kept; run the command again to resume)")
            }
        }
    }
}

impl std::error::Error for DownloadError {}

impl From<TrackerError> for DownloadError {
    fn from(e: TrackerError) -> Self {
        DownloadError::Tracker(e)
    }
}

pub(crate) fn disk(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + '_ {
    move |err| DownloadError::Disk { path: path.to_path_buf(), err }
}
