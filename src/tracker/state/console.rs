//! The tracker's console lines, as the original printed them, cut after a few names so a
//! line stays short however many peers there are.

use crate::hash::ContentId;
use crate::text::peer_label;
use crate::wire::tracker_msg::FileInfo;
use std::net::SocketAddr;

/// Peers named in a console line before "and N more".
const MAX_LABELS_SHOWN: usize = 10;

/// `'6000', '6001'`, cut after a few with "and N more".
pub fn labels<'a>(addrs: impl ExactSizeIterator<Item = &'a SocketAddr>, quote: bool) -> String {
    let n = addrs.len();
    let shown: Vec<String> = addrs
        .take(MAX_LABELS_SHOWN)
        .map(|a| if quote { format!("'{}'", peer_label(a)) } else { peer_label(a) })
        .collect();
    let more =
        if n > MAX_LABELS_SHOWN { format!(", ... and {} more", n - MAX_LABELS_SHOWN) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// `Now downloading clients are [6001, 6002] for 'a.pdf'` (the id when the name is unknown).
pub fn downloading_line<'a>(
    info: Option<&FileInfo>,
    id: &ContentId,
    peers: impl ExactSizeIterator<Item = &'a SocketAddr>,
) -> String {
    let name = info.map_or_else(|| id.to_hex(), |i| i.name.clone());
    format!("Now downloading clients are [{}] for '{name}'", labels(peers, false))
}
