//! The files a connection keeps open between requests, within its own cap and the
//! server's, and the one way a chunk's file is opened for reading.

use crate::hash::ContentId;
use crate::holdings::shares::{Holding, Share};
use crate::manifest::ChunkIndex;
use log::warn;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Files one connection keeps open (one per content id it asked about, the oldest closed).
pub const MAX_OPEN_FILES_PER_CONN: usize = 4;
/// Files the whole server keeps open.
pub const MAX_OPEN_FILES: usize = 256;

/// The files one connection has open, within its own cap and the server's.
pub struct OpenFiles<'a> {
    files: Vec<(ContentId, File)>,
    server_total: &'a AtomicUsize,
}

impl<'a> OpenFiles<'a> {
    /// No files open yet; `server_total` counts the server's.
    pub fn new(server_total: &'a AtomicUsize) -> OpenFiles<'a> {
        OpenFiles { files: Vec::new(), server_total }
    }

    /// The open file of `id`: the one kept from an earlier request if `still_valid` accepts
    /// it (else it is closed and the error returned), or a new one from `open`.
    fn get_or_open(
        &mut self,
        id: ContentId,
        still_valid: impl FnOnce(&File) -> io::Result<()>,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<&File> {
        if let Some(i) = self.files.iter().position(|(k, _)| *k == id) {
            if let Err(e) = still_valid(&self.files[i].1) {
                self.files.remove(i);
                self.server_total.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
            return Ok(&self.files[i].1);
        }
        let file = open()?;
        self.insert(id, file)
    }

    /// Keeps `file` open for `id`, closing this connection's oldest if it has too many.
    fn insert(&mut self, id: ContentId, file: File) -> io::Result<&File> {
        if self.files.len() >= MAX_OPEN_FILES_PER_CONN {
            self.files.remove(0);
            self.server_total.fetch_sub(1, Ordering::SeqCst);
        }
        if self.server_total.fetch_add(1, Ordering::SeqCst) >= MAX_OPEN_FILES {
            self.server_total.fetch_sub(1, Ordering::SeqCst);
            return Err(io::Error::other(format!("too many files open here ({MAX_OPEN_FILES}); try again")));
        }
        self.files.push((id, file));
        Ok(&self.files[self.files.len() - 1].1)
    }
}

impl Drop for OpenFiles<'_> {
    fn drop(&mut self) {
        self.server_total.fetch_sub(self.files.len(), Ordering::SeqCst);
    }
}

/// A request that cannot be served (the reason goes back to the asker).
pub struct Refusal(pub String);

/// The open file to read chunk `idx` of `shared` from. A complete file is opened without
/// following links and must still be the file that was hashed (device, inode, size,
/// mtime), checked again before every chunk; a partial one is read through the download's
/// own handle, and only for chunks already verified.
pub fn open_for_chunk<'f>(
    shared: &Share,
    idx: ChunkIndex,
    files: &'f mut OpenFiles,
) -> Result<&'f File, Refusal> {
    let name = &shared.manifest.name;
    let opened = match &shared.holding {
        Holding::Complete(path, identity) => {
            files.get_or_open(shared.content_id, |f| identity.check(f), || identity.open(path))
        }
        Holding::Partial(store) if store.has(idx) => {
            files.get_or_open(shared.content_id, |_| Ok(()), || store.reader())
        }
        Holding::Partial(_) => {
            return Err(Refusal(format!("chunk {} of '{name}' is not here yet", idx.get())))
        }
    };
    opened.map_err(|e| {
        warn!("not serving '{name}': {e}");
        Refusal(format!("cannot serve '{name}': {e}"))
    })
}
