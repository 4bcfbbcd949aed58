//! The tracker's HTTP listener: the shared accept loop with its caps, a bounded pool of
//! workers, keep-alive connections. Routes: `/announce`, `/scrape`, `/` (the status page,
//! with `/status.js` and `/status.css`), `/api/status`, `/metrics`.

use super::conn::{HttpConn, Request, Response, NOT_HTTP};
use super::query::{announce_reply, failure, parse_announce, parse_scrape, scrape_reply};
use crate::accept::{self, Admitted, Service, REFUSE_TIMEOUT};
use crate::conn_limit::ConnLimiter;
use crate::shutdown::{ConnRegistry, Shutdown};
use crate::tracker::metrics::{Gauges, Metrics};
use crate::tracker::pool::WorkerPool;
use crate::tracker::state::TrackerState;
use crate::wire::send_deadline::{cap_send_buffer, SMALL_REPLIES_SEND_BUFFER};
use log::{debug, info};
use parking_lot::RwLock;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const PAGE: &str = include_str!("status.html");
const SCRIPT: &str = include_str!("status.js");
const STYLE: &str = include_str!("status.css");

/// Limits of the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub workers: usize,
    pub max_conns_per_ip: usize,
    pub idle_timeout: Duration,
    pub message_deadline: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            workers: 32,
            max_conns_per_ip: 16,
            idle_timeout: Duration::from_secs(30),
            message_deadline: Duration::from_secs(10),
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct HttpCtx {
    pub state: Arc<RwLock<TrackerState>>,
    pub metrics: Arc<Metrics>,
    /// The native listener's caps (for the refused-connections metric).
    pub native_limiter: ConnLimiter,
    /// The native listener's address, named to a client that speaks it to this port.
    pub native: SocketAddr,
}

struct Http<'a> {
    pool: &'a WorkerPool<Admitted>,
}

impl Service for Http<'_> {
    fn name(&self) -> &str {
        "tracker http"
    }

    fn refuse(&self, stream: TcpStream, reason: &str) {
        let Ok(mut conn) = HttpConn::new(stream, REFUSE_TIMEOUT, REFUSE_TIMEOUT, None) else {
            return;
        };
        let _ = conn.respond(&Response::new(503, "text/plain; charset=utf-8", reason.to_string()), false);
    }

    fn dispatch(&self, conn: Admitted) -> Result<(), (TcpStream, String)> {
        self.pool.try_submit(conn).map_err(|c| (c.stream, "server busy, try again".to_string()))
    }
}

/// Serves HTTP on `listener` from a new thread until `stop`.
pub fn spawn(
    listener: TcpListener,
    shared: HttpCtx,
    opts: HttpOptions,
    stop: Shutdown,
) -> thread::JoinHandle<()> {
    thread::Builder::new()
        .name("tracker-http".into())
        .spawn(move || {
            let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
            info!("HTTP tracker on http://{addr}/ (announce: http://{addr}/announce)");
            let limiter = ConnLimiter::new(opts.max_conns_per_ip, opts.workers, opts.workers);
            let conns = ConnRegistry::default();
            let pool = {
                let (shared, limiter, opts) = (shared.clone(), limiter.clone(), opts.clone());
                WorkerPool::new(opts.workers, opts.workers * 2, "tracker-http", move |job: Admitted| {
                    let Admitted { stream, peer, hold } = job;
                    let give_way = hold.guard.give_way_test();
                    let _ = cap_send_buffer(&stream, SMALL_REPLIES_SEND_BUFFER);
                    if let Ok(conn) =
                        HttpConn::new(stream, opts.idle_timeout, opts.message_deadline, Some(give_way))
                    {
                        serve(conn, peer, &shared, &limiter);
                    }
                    drop(hold);
                })
            };
            accept::run(&listener, &limiter, &conns, &stop, &Http { pool: &pool });
            conns.close_all();
            pool.join();
        })
        .expect("spawning the HTTP listener")
}

fn serve(mut conn: HttpConn<TcpStream>, peer: SocketAddr, shared: &HttpCtx, limiter: &ConnLimiter) {
    let refusal = |status: u16, why: &'static str| {
        debug!("http: {peer}: {why}");
        let body = if why == NOT_HTTP {
            format!(
                "this is the tracker's HTTP port; p2p-share peers use its native port, {}\n",
                shared.native
            )
        } else {
            why.to_string()
        };
        Response::new(status, "text/plain; charset=utf-8", body)
    };
    conn.serve_each(refusal, |req| route(req, peer, shared, limiter));
}

/// The answer to one request.
pub fn route(req: &Request, peer: SocketAddr, shared: &HttpCtx, limiter: &ConnLimiter) -> Response {
    if req.method != "GET" {
        return Response::new(405, "text/plain; charset=utf-8", "only GET is served");
    }
    let m = &shared.metrics;
    let bencode = |body: Vec<u8>| Response::new(200, "text/plain", body);
    match req.path.as_str() {
        "/announce" => {
            m.http_announces.fetch_add(1, Ordering::Relaxed);
            let answer = parse_announce(&req.query).map_err(|e| e.to_string()).and_then(|q| {
                let addr = SocketAddr::new(peer.ip(), q.announce.port);
                let a = shared
                    .state
                    .write()
                    .http_announce(&q, addr, Instant::now())
                    .map_err(|e| e.to_string())?;
                Ok(announce_reply(&a, q.compact))
            });
            bencode(answer.unwrap_or_else(|why| {
                m.http_failures.fetch_add(1, Ordering::Relaxed);
                debug!("http: {peer}: announce refused: {why}");
                failure(&why)
            }))
        }
        "/scrape" => {
            m.http_scrapes.fetch_add(1, Ordering::Relaxed);
            match parse_scrape(&req.query) {
                Ok(ids) => bencode(scrape_reply(&shared.state.read().scrape(&ids))),
                Err(e) => {
                    m.http_failures.fetch_add(1, Ordering::Relaxed);
                    bencode(failure(&e.to_string()))
                }
            }
        }
        "/" | "/index.html" => {
            m.http_pages.fetch_add(1, Ordering::Relaxed);
            Response::new(200, "text/html; charset=utf-8", PAGE)
        }
        "/status.js" => Response::new(200, "text/javascript; charset=utf-8", SCRIPT),
        "/status.css" => Response::new(200, "text/css; charset=utf-8", STYLE),
        "/api/status" => {
            let status = shared.state.read().status(Instant::now());
            Response::new(200, "application/json", serde_json::to_vec(&status).unwrap_or_default())
        }
        "/metrics" => {
            let gauges = {
                let s = shared.state.read();
                Gauges {
                    native_peers: s.peer_count(),
                    bittorrent_peers: s.bt_swarms().peer_count(),
                    files: s.file_count(),
                    swarms: s.bt_swarms().len(),
                    refused_native: shared.native_limiter.refused(),
                    refused_http: limiter.refused(),
                }
            };
            Response::new(200, "text/plain; version=0.0.4; charset=utf-8", m.render(&gauges))
        }
        _ => Response::new(404, "text/plain; charset=utf-8", "not found"),
    }
}
