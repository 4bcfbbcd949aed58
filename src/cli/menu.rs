//! The original's interactive session: a menu to list, search and download, with its
//! prompts and words, minus its bugs and sleeps. End of input leaves like Ctrl+C.

use super::commands::{print_list, print_report, print_search, progress_display};
use crate::download::Options;
use crate::peer::Node;
use crate::text::peer_label;
use crate::wire::tracker_msg::FileListing;
use std::io::{BufRead, Write};

const MENU: &str = "Enter your choice.\n\n1 - List all the files.\n2 - Search files.\n3 - Download files.\n\nPress ctrl + c to shutdown this peer.";

/// Runs the menu until the input ends.
pub fn run(node: &Node, input: &mut impl BufRead, out: &mut impl Write) {
    loop {
        let _ = writeln!(out, "{MENU}");
        let _ = out.flush();
        let Some(choice) = read_line(input) else { return };
        let choice = choice.trim();
        if choice.is_empty() {
            continue;
        }
        let _ = writeln!(out, "-----\nYou have chose: {choice}\n-----");
        let keep_going = match choice {
            "1" => list(node, out),
            "2" => search(node, input, out),
            "3" => download(node, input, out),
            other => {
                let _ = writeln!(out, "Invalid choice '{other}': enter 1, 2 or 3.");
                true
            }
        };
        let _ = writeln!(out, "-----\n");
        if !keep_going {
            return;
        }
    }
}

fn read_line(input: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
    }
}

fn ask(input: &mut impl BufRead, out: &mut impl Write, prompt: &str) -> Option<String> {
    let _ = writeln!(out, "{prompt}");
    let _ = out.flush();
    read_line(input)
}

fn list(node: &Node, out: &mut impl Write) -> bool {
    match node.tracker.list() {
        Ok(files) => print_list(&files, out),
        Err(e) => {
            let _ = writeln!(out, "Could not list files: {e}");
        }
    }
    true
}

fn search(node: &Node, input: &mut impl BufRead, out: &mut impl Write) -> bool {
    let Some(name) = ask(input, out, "Enter file name:") else { return false };
    let _ = writeln!(out, "Searching the file from active peers...\n");
    match node.tracker.search(name.trim()) {
        Ok(files) => print_search(&files, out),
        Err(e) => {
            let _ = writeln!(out, "Could not search: {e}");
        }
    }
    true
}

fn download(node: &Node, input: &mut impl BufRead, out: &mut impl Write) -> bool {
    let Some(name) = ask(input, out, "Enter the file you want:") else { return false };
    let name = name.trim().to_string();
    let _ = writeln!(out, "Searching the file from active peers...\n");
    let found: Vec<FileListing> = match node.tracker.search(&name) {
        Ok(page) => page.files.into_iter().filter(|l| l.info.name == name).collect(),
        Err(e) => {
            let _ = writeln!(out, "Could not search: {e}");
            return true;
        }
    };
    if found.is_empty() {
        let _ = writeln!(out, "No peer has '{name}'.");
        return true;
    }
    let _ = writeln!(out, "Following peers have the file:");
    for l in &found {
        for h in &l.holders {
            let _ = writeln!(out, "{}", peer_label(h));
        }
    }
    let Some(peer) = ask(input, out, "From which peer you want to download?") else { return false };
    let peer = peer.trim().to_string();
    let Some(listing) =
        found.iter().find(|l| l.holders.iter().any(|h| peer_label(h) == peer || h.to_string() == peer))
    else {
        let _ = writeln!(out, "'{peer}' does not have '{name}'.");
        return true;
    };
    let mbs = listing.info.size as f64 / 1e6;
    let _ = write!(out, "File is {mbs:.1} Mbs, downloaded? (Y/N)? ->");
    let _ = out.flush();
    let Some(yes) = read_line(input) else { return false };
    let _ = writeln!(out);
    if !yes.trim().eq_ignore_ascii_case("y") {
        let _ = writeln!(out, "Not downloading.");
        return true;
    }
    let opts = Options { progress: Some(progress_display()), ..Options::default() };
    let target = if found.len() > 1 { listing.info.content_id.to_hex() } else { name.clone() };
    match node.download(&target, Some(&peer), &opts) {
        Ok(report) => print_report(&report.summary(), out),
        Err(e) => {
            let _ = writeln!(out, "Download failed: {e}");
            return true;
        }
    }
    let Some(stay) = ask(input, out, "Do you want to continue as a server to help others? (Y/N)?") else {
        return false;
    };
    if stay.trim().eq_ignore_ascii_case("n") {
        let _ = writeln!(out, "Removing chunks...");
        if let Some(id) = node.shares.withhold(&name) {
            if let Err(e) = node.tracker.announce(vec![], vec![id]) {
                let _ = writeln!(out, "Could not tell the tracker: {e}");
            }
        }
        let _ = writeln!(out, "Chunks have been removed. '{name}' stays in files/ but is no longer shared.");
    } else {
        let _ = writeln!(out, "Sharing '{name}' with others.");
    }
    true
}
