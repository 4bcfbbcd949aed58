//! `swarm-svg OUT.svg client2=client2.csv client3=client3.csv ...`: draws the demo's swarm
//! from the timelines `peer download --timeline` wrote (see `p2p_share::timeline_svg`).

use p2p_share::timeline_svg::{parse, render};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, lanes)) = args.split_first() else {
        eprintln!("usage: swarm-svg OUT.svg NAME=TIMELINE.csv...");
        return ExitCode::from(2);
    };
    let mut drawn = Vec::new();
    for lane in lanes {
        let Some((name, path)) = lane.split_once('=') else {
            eprintln!("swarm-svg: '{lane}' is not NAME=TIMELINE.csv");
            return ExitCode::from(2);
        };
        match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| parse(&t).map_err(|e| e.to_string()))
        {
            Ok(rows) => drawn.push((name.to_string(), rows)),
            Err(e) => {
                eprintln!("swarm-svg: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = std::fs::write(out, render(&drawn)) {
        eprintln!("swarm-svg: cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
