//! The files a connection keeps open between requests, within its own cap and the
//! server's, and the one way a chunk's files are opened for reading.

use crate::hash::ContentId;
use crate::holdings::shares::{Holding, Share};
use crate::manifest::ChunkIndex;
use crate::storage::Handles;
use log::warn;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shares one connection keeps files of open (one [`Handles`] per content id it asked
/// about, the oldest closed), each with at most [`storage::MAX_OPEN`](crate::storage::MAX_OPEN)
/// files.
pub const MAX_OPEN_FILES_PER_CONN: usize = 4;
/// Shares the whole server keeps files of open (at most 4 files each: 1024 descriptors).
pub const MAX_OPEN_FILES: usize = 256;

/// The files one connection has open, within its own cap and the server's.
pub struct OpenFiles<'a> {
    files: Vec<(ContentId, Handles)>,
    server_total: &'a AtomicUsize,
}

impl<'a> OpenFiles<'a> {
    /// No files open yet; `server_total` counts the server's.
    pub fn new(server_total: &'a AtomicUsize) -> OpenFiles<'a> {
        OpenFiles { files: Vec::new(), server_total }
    }

    /// The handles of `id`: the ones kept from an earlier request, or new ones from `open`.
    fn get_or_open(&mut self, id: ContentId, open: impl FnOnce() -> Handles) -> io::Result<&mut Handles> {
        if let Some(i) = self.files.iter().position(|(k, _)| *k == id) {
            return Ok(&mut self.files[i].1);
        }
        self.insert(id, open())
    }

    /// Keeps `files` open for `id`, closing this connection's oldest if it has too many.
    fn insert(&mut self, id: ContentId, file: Handles) -> io::Result<&mut Handles> {
        if self.files.len() >= MAX_OPEN_FILES_PER_CONN {
            self.files.remove(0);
            self.server_total.fetch_sub(1, Ordering::SeqCst);
        }
        if self.server_total.fetch_add(1, Ordering::SeqCst) >= MAX_OPEN_FILES {
            self.server_total.fetch_sub(1, Ordering::SeqCst);
            return Err(io::Error::other(format!("too many files open here ({MAX_OPEN_FILES}); try again")));
        }
        self.files.push((id, file));
        let last = self.files.len() - 1;
        Ok(&mut self.files[last].1)
    }
}

impl Drop for OpenFiles<'_> {
    fn drop(&mut self) {
        self.server_total.fetch_sub(self.files.len(), Ordering::SeqCst);
    }
}

/// A request that cannot be served (the reason goes back to the asker).
pub struct Refusal(pub String);

/// The handles to read chunk `idx` of `shared` through. A complete share's files are
/// opened without following links and must still be the versions that were hashed
/// (device, inode, size, mtime), checked on every read ([`Handles`]); a partial one is
/// read from the download's files, and only for chunks already verified.
pub fn open_for_chunk<'f>(
    shared: &Share,
    idx: ChunkIndex,
    files: &'f mut OpenFiles,
) -> Result<&'f mut Handles, Refusal> {
    let name = &shared.manifest.name;
    let opened = match &shared.holding {
        Holding::Complete(place) => {
            files.get_or_open(shared.content_id, || Handles::new(place.clone(), false))
        }
        Holding::Partial(store) if store.has(idx) => files.get_or_open(shared.content_id, || store.reader()),
        Holding::Partial(_) => {
            return Err(Refusal(format!("chunk {} of '{name}' is not here yet", idx.get())))
        }
    };
    opened.map_err(|e| {
        warn!("not serving '{name}': {e}");
        Refusal(format!("cannot serve '{name}': {e}"))
    })
}
