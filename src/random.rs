//! Random bytes from the operating system (getrandom(2)) for secrets and ids: the tracker's
//! session tokens, BitTorrent peer ids. A leaf module: it uses nothing else of the crate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::fill(&mut out).is_err() {
        fallback(&mut out);
    }
    out
}

/// Fills `out` with random bytes (padding of any length).
pub fn fill(out: &mut [u8]) {
    if getrandom::fill(out).is_err() {
        fallback(out);
    }
}

/// A number in [0, 1), for jitter.
pub fn unit() -> f64 {
    (u64::from_le_bytes(bytes::<8>()) >> 11) as f64 / (1u64 << 53) as f64
}

/// 128 random bits as 32 hex digits (a session token).
pub fn token() -> String {
    bytes::<16>().iter().map(|b| format!("{b:02x}")).collect()
}

/// Without the system's source (it does not fail on Linux): std's randomly keyed hasher
/// over a counter and the clock.
fn fallback(out: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for part in out.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        part.copy_from_slice(&h.finish().to_le_bytes()[..part.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (token(), token());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        fallback(&mut x);
        fallback(&mut y);
        assert_ne!(x, y);
    }
}
