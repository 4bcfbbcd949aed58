//! The running peer's web page in headless Chromium (Selenium and Debian's chromedriver,
//! driven by `tests/bt/page.py`): a magnet link added through the page finishes, a file
//! whose name holds HTML is shown as text, its swarm picture is drawn, a second download is
//! paused and resumed with the page's buttons, and the first is removed with its data.

use crate::libtorrent::{all_output, bin, our_magnet, serve, tracker};
use crate::support::test_bytes;
use std::path::Path;
use std::process::Command;

const MIB: usize = 1 << 20;

#[test]
fn a_magnet_added_on_the_page_finishes_and_a_download_pauses_and_resumes() {
    let (_t, tracker) = tracker();
    let root = tempfile::tempdir().unwrap();
    let seed = root.path().join("seed");
    std::fs::create_dir_all(seed.join("files")).unwrap();
    let hostile = "<img src=x onerror=alert(1)> & more.bin";
    let first = test_bytes(3 * MIB, 61);
    let second = test_bytes(6 * MIB, 62);
    std::fs::write(seed.join("files").join(hostile), &first).unwrap();
    std::fs::write(seed.join("files/second.bin"), &second).unwrap();
    // Capped, so the second download is still running when the page pauses it.
    let (_seeder, _) = serve(tracker, &seed, &["--upload-limit", "1M"]);
    let magnet = our_magnet(&seed, hostile);

    let mine = root.path().join("mine");
    let (_running, _) = serve(tracker, &mine, &[]);
    let page = bin("peer").args(["--dir", mine.to_str().unwrap(), "page"]).output().unwrap();
    let login = String::from_utf8_lossy(&page.stdout).trim().to_string();
    assert!(login.contains("/login?secret="), "{}", all_output(&page));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bt/page.py");
    let out =
        Command::new("/usr/bin/python3").arg(script).args([&login, &magnet, "second.bin"]).output().unwrap();
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    for step in [
        "ok magnet done: <img src=x onerror=alert(1)> & more.bin",
        "ok name as text",
        "ok swarm picture",
        "ok picture while downloading",
        "ok paused",
        "ok resumed",
        "ok second done",
        "ok removed",
    ] {
        assert!(text.contains(step), "{step}:\n{text}");
    }
    assert!(!mine.join("files").join(hostile).exists(), "removed with its data");
    assert!(std::fs::read(mine.join("files/second.bin")).unwrap() == second);
}
