//! BEP 12's tiers of trackers: each tier shuffled once; an announce asks the tiers in
//! order and, within a tier, its trackers in order, stopping at the first that answers,
//! which moves to the front of its tier.

/// A torrent's trackers in tiers, only those this side can ask, at most a given number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers(Vec<Vec<String>>);

impl Tiers {
    /// `tiers` as the torrent lists them (`announce-list`, or `announce` alone), each tier
    /// shuffled, keeping the first `max` trackers that speak `http://`, `https://` or `udp://`.
    pub fn new(tiers: Vec<Vec<String>>, max: usize) -> Tiers {
        let mut left = max;
        let mut out = Vec::new();
        for tier in tiers {
            let mut tier: Vec<String> = tier.into_iter().filter(|u| super::askable(u)).take(left).collect();
            left -= tier.len();
            for i in (1..tier.len()).rev() {
                let j = (crate::random::unit() * (i + 1) as f64) as usize;
                tier.swap(i, j.min(i));
            }
            if !tier.is_empty() {
                out.push(tier);
            }
        }
        Tiers(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The trackers in the order an announce asks them: (tier, place, url).
    pub fn in_order(&self) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        for (t, tier) in self.0.iter().enumerate() {
            for (i, url) in tier.iter().enumerate() {
                out.push((t, i, url.clone()));
            }
        }
        out
    }

    /// Announces `a` to the trackers in order (each within `within`) until one answers,
    /// which moves to the front of its tier; returns it and its answer. Warnings and
    /// failures are logged.
    pub fn announce(
        &mut self,
        a: &super::Announce,
        within: std::time::Duration,
    ) -> Option<(String, super::Answer)> {
        for (tier, place, url) in self.in_order() {
            match super::announce(&url, a, within) {
                Ok(answer) => {
                    if let Some(w) = &answer.warning {
                        log::warn!("tracker {url}: {w}");
                    }
                    self.answered(tier, place);
                    return Some((url, answer));
                }
                Err(e) => log::warn!("tracker {url}: {e}"),
            }
        }
        None
    }

    /// The tracker at (`tier`, `place`) answered: it is asked first in its tier from now on.
    pub fn answered(&mut self, tier: usize, place: usize) {
        if let Some(t) = self.0.get_mut(tier) {
            if place < t.len() {
                let url = t.remove(place);
                t.insert(0, url);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize, scheme: &str) -> Vec<String> {
        (0..n).map(|i| format!("{scheme}://t{i}.example/announce")).collect()
    }

    #[test]
    fn tiers_are_asked_in_order_and_only_trackers_we_can_ask_are_kept() {
        let t = Tiers::new(vec![vec!["wss://a/x".into(), "udp://b:1".into()], vec![], urls(1, "http")], 16);
        let order: Vec<String> = t.in_order().into_iter().map(|(_, _, u)| u).collect();
        assert_eq!(order, vec!["udp://b:1".to_string(), "http://t0.example/announce".into()]);
        let capped = Tiers::new(vec![urls(10, "udp"), urls(10, "http")], 16);
        assert_eq!(capped.in_order().len(), 16);
        assert_eq!(capped.in_order().iter().filter(|(t, _, _)| *t == 1).count(), 6);
        assert!(Tiers::new(vec![vec!["wss://x".into()]], 16).is_empty());
    }

    #[test]
    fn a_tier_is_shuffled_and_the_tracker_that_answered_goes_first() {
        let shuffled = (0..20).any(|_| {
            let t = Tiers::new(vec![urls(8, "udp")], 16);
            t.in_order().into_iter().map(|(_, _, u)| u).collect::<Vec<_>>() != urls(8, "udp")
        });
        assert!(shuffled, "twenty shuffles of eight trackers all kept the listed order");
        let mut t = Tiers::new(vec![urls(3, "udp"), urls(1, "http")], 16);
        let third = t.in_order()[2].2.clone();
        t.answered(0, 2);
        assert_eq!(t.in_order()[0].2, third);
        assert_eq!(t.in_order().len(), 4, "nothing lost");
        t.answered(5, 0); // no such tier: nothing happens
    }
}
