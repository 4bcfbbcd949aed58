//! What one download keeps in memory and asks at once, from its piece length. Our own files
//! have 1 MiB chunks, but a torrent's pieces are any power of two from 16 KiB to 64 MiB: a
//! fixed count of chunks in flight would idle the link on 16 KiB pieces and hold gigabytes
//! on 64 MiB ones. So the counts follow from byte budgets.

/// Most sources one download fetches from at once (one thread each).
pub const MAX_SOURCES: usize = 32;
/// Chunks read from a native source and not yet checked (`verify`), per source.
pub const AHEAD: usize = 2;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Chunk bytes asked of one native source at once (two 1 MiB chunks).
const NATIVE_IN_FLIGHT: u64 = 2 * MIB;
/// Piece bytes asked of one BitTorrent source at once (eight 1 MiB pieces).
const BT_IN_FLIGHT: u64 = 8 * MIB;
/// Most requests in flight at one BitTorrent source (clients queue a few hundred).
const MAX_BT_PIECES: u64 = 256;
/// Chunk buffers the sources of one download may hold in all.
const SOURCE_BUFFERS: u64 = 512 * MIB;
/// Recycled buffers kept, in bytes (enough for every piece in flight at a BitTorrent source
/// and the queue), and verified chunks queued for the reassembler.
const POOL_BYTES: u64 = 64 * MIB;
const QUEUE_BYTES: u64 = 4 * MIB;

/// The most sizes of these things, for a piece length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Chunk requests kept in flight at a native source.
    pub native_depth: usize,
    /// Pieces requested at once from a BitTorrent source, at most (fewer from a slow one:
    /// `request_depth`).
    pub bt_depth: usize,
    /// Sources fetched from at once.
    pub sources: usize,
    /// Chunk buffers kept for reuse.
    pub pool: usize,
    /// Verified chunks queued for the reassembler.
    pub queue: usize,
}

impl Budget {
    pub fn for_piece(piece_length: u64) -> Budget {
        let piece = piece_length.max(16 * KIB);
        let count = |bytes: u64, min: u64, max: u64| (bytes / piece).clamp(min, max) as usize;
        // A native source holds the chunk being read and the ones waiting for its checker.
        let per_native = (1 + AHEAD as u64) * piece;
        Budget {
            native_depth: count(NATIVE_IN_FLIGHT, 2, MAX_BT_PIECES),
            bt_depth: count(BT_IN_FLIGHT, 1, MAX_BT_PIECES),
            sources: (SOURCE_BUFFERS / per_native).clamp(2, MAX_SOURCES as u64) as usize,
            pool: count(POOL_BYTES, 2, 4096),
            queue: count(QUEUE_BYTES, 1, MAX_BT_PIECES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_chunks_keep_the_counts_they_always_had() {
        let b = Budget::for_piece(MIB);
        assert_eq!(b, Budget { native_depth: 2, bt_depth: 8, sources: MAX_SOURCES, pool: 64, queue: 4 });
    }

    #[test]
    fn small_pieces_ask_more_at_once_and_big_ones_hold_less() {
        let small = Budget::for_piece(16 * KIB);
        assert_eq!((small.native_depth, small.bt_depth), (128, 256), "megabytes in flight, not kilobytes");
        for shift in 14..=26 {
            // The pool holds every piece in flight at a BitTorrent source and the queue, so
            // a steady download allocates no buffer.
            let b = Budget::for_piece(1 << shift);
            assert!(b.pool >= b.bt_depth + b.queue, "{shift}: {b:?}");
        }
        let big = Budget::for_piece(64 * MIB);
        assert_eq!((big.native_depth, big.bt_depth, big.sources, big.pool, big.queue), (2, 1, 2, 2, 1));
        // What the sources and queues may hold in all stays well under a gigabyte.
        for shift in 14..=26 {
            let piece = 1u64 << shift;
            let b = Budget::for_piece(piece);
            let held = b.sources as u64 * (1 + AHEAD as u64).max(b.bt_depth as u64) * piece
                + (b.pool + b.queue) as u64 * piece;
            assert!(held <= 1 << 30, "{piece}: {held} bytes");
        }
    }
}
