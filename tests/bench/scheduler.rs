//! The scheduler alone: picks per second at 10^3, 10^5 and 10^6 chunks with 1, 8 and 32
//! sources that each have every chunk (each pick is completed at once). The cost of a pick
//! should not grow with the file.

use p2p_share::bitfield::Bitfield;
use p2p_share::download::scheduler::Scheduler;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub fn run() {
    println!(
        "scheduler: picks per second (assign + completed), every source has every chunk; the clock \
         stops while the plan is rebuilt for the next round"
    );
    let mut small = None;
    for n in [1_000u32, 100_000, 1_000_000] {
        let mut line = format!("  {n:>9} chunks:");
        let mut setup = Duration::ZERO;
        for sources in [1usize, 8, 32] {
            let (rate, built) = picks_per_second(n, sources, Duration::from_millis(700));
            if n == 1_000 && sources == 32 {
                small = Some(rate);
            }
            line += &format!("  {sources:>2} sources {rate:>12.0}/s");
            if n == 1_000_000 && sources == 32 {
                if let Some(s) = small {
                    line += &format!("   (10^6 / 10^3 at 32 sources: {:.3}; target at least 0.5)", rate / s);
                }
            }
            setup = built;
        }
        println!("{line}");
        println!(
            "  {:>9}  a new plan and 32 sources with every chunk: {:.2} ms",
            "",
            setup.as_secs_f64() * 1e3
        );
    }
}

/// Picks until `for_at_least` of picking passed; returns the picks per second and how long
/// building the plan and adding the sources took. The plan is rebuilt, off the clock, when
/// the file completes: building it is the cost of a source joining (a pass over its
/// have-set), not of a pick, and at 10^3 chunks it came every thousand picks.
fn picks_per_second(n: u32, sources: usize, for_at_least: Duration) -> (f64, Duration) {
    let addrs: Vec<SocketAddr> =
        (0..sources).map(|i| SocketAddr::from(([127, 0, 2, i as u8], 7000))).collect();
    let fresh = || {
        let t = Instant::now();
        let mut s = Scheduler::new(n, &Bitfield::new(n));
        for a in &addrs {
            s.update_source(*a, None);
        }
        (s, t.elapsed())
    };
    let (mut s, built) = fresh();
    let (mut picking, mut picks) = (Duration::ZERO, 0u64);
    let mut k = 0;
    while picking < for_at_least {
        let t = Instant::now();
        let mut done = false;
        for _ in 0..1000 {
            let a = addrs[k % sources];
            k += 1;
            match s.assign(a) {
                Some(i) => {
                    s.completed(a, i);
                    picks += 1;
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        picking += t.elapsed();
        if done {
            s = fresh().0;
        }
    }
    (picks as f64 / picking.as_secs_f64(), built)
}
