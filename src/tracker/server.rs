//! The tracker's network side: an accept loop that hands connections to a worker pool.

use super::http::{self, server::HttpOptions};
use super::metrics::Metrics;
use super::pool::WorkerPool;
use super::state::{TrackerConfig, TrackerState};
use crate::accept::{self, Admitted, Service, REFUSE_TIMEOUT};
use crate::conn_limit::ConnLimiter;
use crate::shutdown::{ConnRegistry, Shutdown};
use crate::wire::conn::Conn;
use crate::wire::send_deadline::{cap_send_buffer, SMALL_REPLIES_SEND_BUFFER};
use crate::wire::tracker_msg::{TrackerReply, TrackerRequest};
use crossbeam_channel::{select, tick};
use log::{debug, info};
use parking_lot::RwLock;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// How the tracker runs.
#[derive(Debug, Clone)]
pub struct TrackerOptions {
    pub bind: SocketAddr,
    pub workers: usize,
    pub rules: TrackerConfig,
    /// Open connections allowed from one address (keep it below `workers`).
    pub max_conns_per_ip: usize,
    /// A connection idle this long is closed (sooner when others wait for a worker).
    pub idle_timeout: Duration,
    /// A request must arrive whole within this once its first byte came.
    pub message_deadline: Duration,
    /// Where to serve HTTP (BitTorrent announce and scrape, the status page, metrics).
    pub http: Option<SocketAddr>,
    pub http_opts: HttpOptions,
}

impl Default for TrackerOptions {
    fn default() -> Self {
        TrackerOptions {
            bind: "127.0.0.1:5000".parse().expect("valid address"),
            workers: 128,
            rules: TrackerConfig::default(),
            max_conns_per_ip: 16,
            idle_timeout: Duration::from_secs(30),
            message_deadline: Duration::from_secs(10),
            http: None,
            http_opts: HttpOptions::default(),
        }
    }
}

/// A bound tracker, ready to [`run`](Tracker::run).
pub struct Tracker {
    listener: TcpListener,
    http: Option<TcpListener>,
    metrics: Arc<Metrics>,
    opts: TrackerOptions,
    state: Arc<RwLock<TrackerState>>,
    shutdown: Shutdown,
}

/// The tracker as the accept loop sees it: connections go to the worker pool.
struct NativeService<'a> {
    pool: &'a WorkerPool<Admitted>,
}

impl Service for NativeService<'_> {
    fn name(&self) -> &str {
        "tracker"
    }

    fn log_connects(&self) -> bool {
        true
    }

    fn refuse(&self, stream: TcpStream, reason: &str) {
        if let Ok(mut conn) = Conn::new(stream, REFUSE_TIMEOUT) {
            let _ = conn.send_reply(&TrackerReply::Busy { reason: reason.to_string() });
        }
    }

    fn dispatch(&self, conn: Admitted) -> Result<(), (TcpStream, String)> {
        self.pool.try_submit(conn).map_err(|conn| (conn.stream, "server busy, try again".to_string()))
    }
}

impl Tracker {
    pub fn bind(opts: TrackerOptions) -> io::Result<Tracker> {
        let listener = TcpListener::bind(opts.bind)?;
        let addr = listener.local_addr()?;
        let http = opts.http.map(TcpListener::bind).transpose()?;
        let state = Arc::new(RwLock::new(TrackerState::new(opts.rules.clone())));
        let metrics = Arc::new(Metrics::default());
        Ok(Tracker { listener, http, metrics, opts, state, shutdown: Shutdown::new(addr) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shutdown.addr()
    }

    /// Where HTTP is served, when it is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// A handle that stops [`run`](Tracker::run) from another thread (or a Ctrl+C handler).
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Serves until shut down.
    pub fn run(self) -> io::Result<()> {
        info!("Server started on port: {}", self.local_addr().port());
        info!("Press ctrl + c to shutdown server.");
        info!("Waiting for clients...");
        // Every worker busy is pressure: connections beyond the workers wait in the queue
        // while those that hoard workers without sending give way.
        let workers = self.opts.workers;
        let limiter = ConnLimiter::new(self.opts.max_conns_per_ip, workers, workers);
        let conns = ConnRegistry::default();
        let reaper = self.spawn_reaper();
        let http_port = self.http_addr().map(|a| a.port());
        let http_stop = Shutdown::new(self.http_addr().unwrap_or(self.local_addr()));
        let native = self.local_addr();
        let http = self.http.map(|listener| {
            let shared = http::server::HttpCtx {
                state: Arc::clone(&self.state),
                metrics: Arc::clone(&self.metrics),
                native_limiter: limiter.clone(),
                native,
            };
            http::server::spawn(listener, shared, self.opts.http_opts.clone(), http_stop.clone())
        });
        let pool = {
            let (state, metrics) = (Arc::clone(&self.state), Arc::clone(&self.metrics));
            let (idle, message) = (self.opts.idle_timeout, self.opts.message_deadline);
            WorkerPool::new(workers, workers * 2, "tracker-worker", move |job: Admitted| {
                let Admitted { stream, hold, .. } = job;
                let _ = cap_send_buffer(&stream, SMALL_REPLIES_SEND_BUFFER);
                let Ok(conn) = Conn::new(stream, idle) else { return };
                let conn = conn.with_message_deadline(message).with_give_way(hold.guard.give_way_test());
                serve_connection(conn, &state, &metrics, http_port);
                drop(hold);
            })
        };
        accept::run(&self.listener, &limiter, &conns, &self.shutdown, &NativeService { pool: &pool });
        info!("Shutting down the tracker...");
        http_stop.stop();
        conns.close_all();
        pool.join();
        if let Some(h) = http {
            let _ = h.join();
        }
        let _ = reaper.join();
        info!("Tracker stopped.");
        Ok(())
    }

    fn spawn_reaper(&self) -> thread::JoinHandle<()> {
        let state = Arc::clone(&self.state);
        let stop = self.shutdown.subscribe();
        let every =
            (self.opts.rules.announce_interval / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        thread::Builder::new()
            .name("tracker-reaper".into())
            .spawn(move || {
                let ticker = tick(every);
                loop {
                    select! {
                        recv(stop) -> _ => break,
                        recv(ticker) -> _ => {
                            let notes = state.write().expire(Instant::now());
                            notes.iter().for_each(|n| info!("{n}"));
                        }
                    }
                }
            })
            .expect("spawning the reaper thread")
    }
}

/// Answers requests on one connection until it closes, idles out, gives way or misbehaves.
/// A registering peer is told the HTTP announce URL at the address it reached us by.
fn serve_connection(mut conn: Conn, state: &RwLock<TrackerState>, metrics: &Metrics, http_port: Option<u16>) {
    let from = conn.peer_addr();
    let local_ip = conn.stream().local_addr().map(|a| a.ip()).ok();
    loop {
        let req: TrackerRequest = match conn.read_request() {
            Ok(req) => req,
            Err(e) => return conn.end_after("tracker", e, |reason| TrackerReply::Error { reason }),
        };
        metrics.native_request(req.kind());
        let mut reply = dispatch(state, &req, from.ip());
        match &mut reply {
            TrackerReply::Registered { http_announce, .. } | TrackerReply::Files { http_announce, .. } => {
                *http_announce = http_port
                    .zip(local_ip)
                    .map(|(p, ip)| format!("http://{}/announce", SocketAddr::new(ip, p)));
            }
            TrackerReply::Error { .. } => {
                metrics.native_errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if let Err(e) = conn.send_reply(&reply) {
            debug!("{from}: could not reply: {e}");
            return;
        }
    }
}

fn dispatch(state: &RwLock<TrackerState>, req: &TrackerRequest, ip: IpAddr) -> TrackerReply {
    if req.is_read_only() {
        return state.read().handle_read(req);
    }
    let outcome = state.write().handle_write(req, ip, Instant::now());
    // Log after the lock is released: never hold it across I/O.
    outcome.notes.iter().for_each(|n| info!("{n}"));
    outcome.reply
}
