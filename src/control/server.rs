//! The control API's listener: the shared accept loop with small caps (it serves the
//! person at this machine, not a crowd), one thread per connection, the tracker's HTTP
//! reading (heads within the message deadline, bodies only up to a torrent's size), every
//! request checked by [`Guard`] before it is routed.
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/status` | the peer, its shares and its downloads |
//! | `POST /api/downloads` | adds the body: a name, content id or magnet link (text), or a torrent (`application/x-bittorrent`); `{"id": N}` |
//! | `GET /api/downloads/N` | one download |
//! | `POST /api/downloads/KEY/pause`, `/resume` | KEY: its number, name or target |
//! | `POST /api/downloads/KEY/remove[?delete=1]` | also a share that is no download; `delete` removes its data |
//! | `POST /api/stop` | the peer leaves the swarm and exits |
//! | `GET /api/downloads/N/timeline.svg` | when each chunk of a download arrived so far, and from whom |
//! | `GET /`, `/page.js`, `/page.css` | the page (plain HTML, CSS and a script) |
//! | `GET /login?secret=S` | the page's cookie, then `/` (`peer page` prints this link) |
//! | `GET /api/session` | the CSRF token for the page's changes |

use super::auth::{Denied, Guard, COOKIE};
use super::jobs::{JobView, Jobs};
use super::rates::{UpRates, RATE_WINDOW};
use crate::accept::{self, Admitted, Service, REFUSE_TIMEOUT};
use crate::conn_limit::ConnLimiter;
use crate::hash::{ContentId, Sha1Hash};
use crate::holdings::shares::Shares;
use crate::names::validate_name;
use crate::shutdown::{ConnRegistry, Shutdown};
use crate::torrent::MAX_TORRENT_BYTES;
use crate::tracker::http::conn::{HttpConn, Request, Response};
use crate::tracker_client::TrackerClient;
use crossbeam_channel::Sender;
use log::{debug, info, warn};
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Connections at once, in all and from one address.
const MAX_CONNS: usize = 32;
const MAX_CONNS_PER_IP: usize = 16;
const IDLE: Duration = Duration::from_secs(30);
const PAGE: &str = include_str!("page/page.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");
const MESSAGE: Duration = Duration::from_secs(10);

/// A share as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareView {
    pub name: String,
    pub content_id: String,
    pub size: u64,
    /// Complete, or a download in progress.
    pub complete: bool,
    pub private: bool,
    /// Payload bytes uploaded since the peer started, and bytes a second now.
    pub uploaded: u64,
    pub up_rate: u64,
    /// Peers sent a piece in the last few seconds.
    pub uploads: usize,
}

/// What `GET /api/status` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The address peers reach this one at.
    pub peer: SocketAddr,
    pub dir: String,
    pub shares: Vec<ShareView>,
    pub downloads: Vec<JobView>,
}

/// What the API acts on.
pub struct Control {
    pub guard: Guard,
    pub jobs: Jobs,
    pub shares: Arc<Shares>,
    /// Told at once when a file is no longer shared.
    pub tracker: Arc<TrackerClient>,
    pub peer: SocketAddr,
    pub dir: PathBuf,
    /// Told when `POST /api/stop` asks the peer to leave.
    pub stop: Sender<()>,
    /// The shares' upload rates, sampled every second.
    pub up_rates: UpRates,
}

/// A running control API.
pub struct ControlServer {
    shutdown: Shutdown,
    conns: ConnRegistry,
    thread: Option<thread::JoinHandle<()>>,
    sampler: Option<thread::JoinHandle<()>>,
}

impl ControlServer {
    pub fn start(listener: TcpListener, control: Control) -> std::io::Result<ControlServer> {
        let shutdown = Shutdown::new(listener.local_addr()?);
        let conns = ConnRegistry::default();
        let (stop, registry) = (shutdown.clone(), conns.clone());
        let limiter = ConnLimiter::new(MAX_CONNS_PER_IP, MAX_CONNS, 0);
        let control = Arc::new(control);
        let sampler = {
            let (control, stop) = (Arc::clone(&control), shutdown.clone());
            thread::Builder::new().name("control-rates".into()).spawn(move || {
                while !stop.is_stopping() {
                    control.up_rates.sample(&control.shares, std::time::Instant::now());
                    thread::sleep(Duration::from_secs(1));
                }
            })?
        };
        let service = Api(control);
        let thread = thread::Builder::new()
            .name("control".into())
            .spawn(move || accept::run(&listener, &limiter, &registry, &stop, &service))?;
        Ok(ControlServer { shutdown, conns, thread: Some(thread), sampler: Some(sampler) })
    }

    pub fn stop(&mut self) {
        self.shutdown.stop();
        for t in [self.thread.take(), self.sampler.take()].into_iter().flatten() {
            let _ = t.join();
        }
        self.conns.close_all();
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Api(Arc<Control>);

impl Service for Api {
    fn name(&self) -> &str {
        "control"
    }

    fn refuse(&self, stream: TcpStream, reason: &str) {
        if let Ok(mut conn) = HttpConn::new(stream, REFUSE_TIMEOUT, REFUSE_TIMEOUT, None) {
            let _ = conn.respond(&text(503, reason), false);
        }
    }

    fn dispatch(&self, conn: Admitted) -> Result<(), (TcpStream, String)> {
        let control = Arc::clone(&self.0);
        let Ok(spare) = conn.stream.try_clone() else { return Ok(()) };
        let spawned = thread::Builder::new().name("control-conn".into()).spawn(move || {
            let Admitted { stream, peer, hold } = conn;
            let give_way = hold.guard.give_way_test();
            if let Ok(c) = HttpConn::new(stream, IDLE, MESSAGE, Some(give_way)) {
                serve(c.with_max_body(MAX_TORRENT_BYTES), peer, &control);
            }
            drop(hold);
        });
        spawned.map(|_| ()).map_err(|e| (spare, format!("cannot start a thread: {e}")))
    }
}

fn serve(mut conn: HttpConn<TcpStream>, peer: SocketAddr, control: &Control) {
    let refusal = |status: u16, why: &'static str| {
        debug!("control: {peer}: {why}");
        text(status, why)
    };
    conn.serve_each(refusal, |req| route(req, control));
}

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::new(status, "text/plain; charset=utf-8", body.into().into_bytes())
}

fn json(status: u16, value: &impl Serialize) -> Response {
    Response::new(status, "application/json", serde_json::to_vec(value).unwrap_or_default())
}

/// An error as JSON: `{"error": "..."}`.
fn error(status: u16, why: impl Into<String>) -> Response {
    json(status, &serde_json::json!({ "error": why.into() }))
}

/// The answer to one request.
pub fn route(req: &Request, c: &Control) -> Response {
    let path = req.path.as_str();
    if path == "/login" {
        return login(req, c);
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let change = match parts.as_slice() {
        ["api", "stop"] | ["api", "downloads"] => true,
        ["api", "downloads", _, what] => *what != "timeline.svg",
        _ => false,
    };
    if let Err(Denied { status, why }) = c.guard.check(req, change) {
        if path == "/" && status == 401 {
            return text(
                401,
                "This is a p2p-share peer's control page. Open the link `peer --dir DIR page` prints.",
            );
        }
        return error(status, why);
    }
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", [""]) => Response::new(200, "text/html; charset=utf-8", PAGE),
        ("GET", ["page.js"]) => Response::new(200, "text/javascript; charset=utf-8", SCRIPT),
        ("GET", ["page.css"]) => Response::new(200, "text/css; charset=utf-8", STYLE),
        ("GET", ["api", "downloads", n, "timeline.svg"]) => {
            match n.parse::<u64>().ok().and_then(|id| c.jobs.timeline_svg(id)) {
                Some(svg) => Response::new(200, "image/svg+xml", svg),
                None => error(404, "no download by that number has chunks yet"),
            }
        }
        ("GET", ["api", "status"]) => json(200, &status(c)),
        ("GET", ["api", "session"]) => json(200, &serde_json::json!({ "csrf": c.guard.csrf_token() })),
        ("POST", ["api", "downloads"]) => add(req, c),
        ("GET", ["api", "downloads", n]) => match n.parse::<u64>().ok().and_then(|id| c.jobs.view(id)) {
            Some(v) => json(200, &v),
            None => error(404, format!("no download {}", crate::text::one_line(n))),
        },
        ("POST", ["api", "downloads", key, action]) => act(c, &decode(key), action, &req.query),
        ("POST", ["api", "stop"]) => {
            info!("Asked to stop through the control API");
            let _ = c.stop.try_send(());
            json(200, &serde_json::json!({ "stopping": true }))
        }
        _ => error(404, "not found"),
    }
}

fn status(c: &Control) -> Status {
    let now = std::time::Instant::now();
    let mut shares: Vec<ShareView> = c
        .shares
        .ids()
        .into_iter()
        .filter_map(|id| c.shares.get(&id))
        .map(|s| ShareView {
            name: s.manifest.name.clone(),
            content_id: s.content_id.to_hex(),
            size: s.manifest.size,
            complete: s.is_complete(),
            private: s.manifest.private,
            uploaded: s.uploaded.load(std::sync::atomic::Ordering::Relaxed),
            up_rate: c.up_rates.of(&s.content_id, now),
            uploads: s.uploading_to(now, RATE_WINDOW),
        })
        .collect();
    shares.sort_by(|a, b| a.name.cmp(&b.name));
    Status { peer: c.peer, dir: c.dir.display().to_string(), shares, downloads: c.jobs.views() }
}

/// Adds a download: a torrent's bytes are kept in `DIR/chunks/torrents/` and the download
/// reads them from there, like a `.torrent` path given on the command line.
fn add(req: &Request, c: &Control) -> Response {
    let is_torrent =
        req.header("content-type").is_some_and(|t| t.trim().starts_with("application/x-bittorrent"));
    let target = if is_torrent {
        if let Err(e) = crate::torrent::read_torrent(&req.body) {
            return error(400, format!("not a torrent: {e}"));
        }
        let dir = c.dir.join("chunks").join("torrents");
        let path = dir.join(format!("{}.torrent", Sha1Hash::of(&req.body).to_hex()));
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &req.body)) {
            return error(500, format!("cannot keep the torrent: {e}"));
        }
        path.display().to_string()
    } else {
        match std::str::from_utf8(&req.body).map(str::trim) {
            Ok(t) if !t.is_empty() && t.len() <= 8192 && !t.contains(['\n', '\r', '\0']) => t.to_string(),
            _ => return error(400, "the body must be one name, content id or magnet link"),
        }
    };
    if !is_torrent && target.to_ascii_lowercase().ends_with(".torrent") {
        // A path on this machine is read by the peer, which may be another user's process:
        // torrents come as their bytes.
        return error(400, "send the torrent's bytes (Content-Type: application/x-bittorrent), not its path");
    }
    match crate::download::Target::parse(&target) {
        Err(e) => error(400, e.to_string()),
        Ok(_) => match c.jobs.add(&target) {
            Ok(id) => json(200, &serde_json::json!({ "id": id })),
            Err(why) => error(409, why),
        },
    }
}

/// Pause, resume or remove what `key` names.
fn act(c: &Control, key: &str, action: &str, query: &str) -> Response {
    let job = c.jobs.find(key);
    let done = match (action, job) {
        ("pause", Some(id)) => c.jobs.pause(id).map(|v| json(200, &v)),
        ("resume", Some(id)) => c.jobs.resume(id).map(|v| json(200, &v)),
        ("remove", _) => remove(c, key, job, query.split('&').any(|p| p == "delete=1")),
        ("pause" | "resume", None) => Err(format!("no download '{}'", crate::text::one_line(key))),
        _ => return error(404, "not found"),
    };
    done.unwrap_or_else(|why| error(409, why))
}

/// Stops the download (if any), stops sharing the file, and with `delete` removes its data
/// (the file or folder in `DIR/files/`, the partial download in `DIR/chunks/`).
fn remove(c: &Control, key: &str, job: Option<u64>, delete: bool) -> Result<Response, String> {
    let ended = match job {
        Some(id) => Some(c.jobs.remove(id)?),
        None => None,
    };
    let name = ended.as_ref().map(|v| v.name.clone()).unwrap_or_else(|| key.to_string());
    let share = key
        .parse::<ContentId>()
        .ok()
        .and_then(|id| c.shares.get(&id))
        .or_else(|| c.shares.complete_by_name(&name));
    if ended.is_none() && share.is_none() {
        return Err(format!("nothing here is called '{}'", crate::text::one_line(key)));
    }
    let name = share.as_ref().map_or(name, |s| s.manifest.name.clone());
    let id = share.as_ref().map(|s| s.content_id);
    if let Some(id) = id {
        c.shares.remove_partial(&id);
    }
    let was_shared = share.as_ref().is_some_and(|s| s.is_complete() && !s.manifest.private);
    let mut deleted = Vec::new();
    if validate_name(&name).is_ok() {
        if delete {
            let file = c.dir.join("files").join(&name);
            c.shares.withhold(&name); // gone from the tracker before the file goes
            if let Ok(meta) = std::fs::symlink_metadata(&file) {
                let gone =
                    if meta.is_dir() { std::fs::remove_dir_all(&file) } else { std::fs::remove_file(&file) };
                match gone {
                    Ok(()) => deleted.push(file.display().to_string()),
                    Err(e) => warn!("control: cannot delete {}: {e}", file.display()),
                }
            }
            if std::fs::symlink_metadata(&file).is_err() {
                c.shares.share_again(&name); // a file of that name added later is shared
            }
        } else {
            c.shares.withhold(&name);
        }
    }
    if let (Some(id), true) = (id, delete) {
        let partial = c.dir.join("chunks").join(id.to_hex());
        if std::fs::remove_dir_all(&partial).is_ok() {
            deleted.push(partial.display().to_string());
        }
    }
    if let (Some(id), true, true) = (id, was_shared, c.tracker.me().is_some()) {
        if let Err(e) = c.tracker.announce(Vec::new(), vec![id]) {
            warn!("could not tell the tracker '{name}' is no longer shared: {e}");
        }
    }
    info!("Removed '{name}' through the control API{}", if delete { " with its data" } else { "" });
    Ok(json(200, &serde_json::json!({ "removed": name, "deleted": deleted })))
}

/// `%xx` in a path segment.
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// `/login?secret=S`: the page's cookie when S is the secret.
fn login(req: &Request, c: &Control) -> Response {
    let host_ok = req.header("host").is_some_and(|h| h.trim() == c.guard_addr());
    let secret = req.query.split('&').find_map(|p| p.strip_prefix("secret=")).map(decode);
    match secret {
        Some(s) if host_ok && c.guard.is_secret(&s) => text(303, "to the page")
            .with_header("Location", "/".into())
            .with_header("Set-Cookie", format!("{COOKIE}={s}; HttpOnly; SameSite=Strict; Path=/")),
        _ if !host_ok => error(421, format!("Host must be {}", c.guard_addr())),
        _ => error(401, "wrong secret"),
    }
}

impl Control {
    fn guard_addr(&self) -> String {
        self.guard.addr().to_string()
    }
}
