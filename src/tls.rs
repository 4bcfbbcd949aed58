//! The byte stream of the HTTP this side speaks as a client (a torrent's trackers, web
//! seeds): plain TCP for `http://`, TLS for `https://`. TLS is rustls (with ring), and the
//! certificates trusted are the system's (`rustls-native-certs`: on Debian the
//! `ca-certificates` bundle; `SSL_CERT_FILE` or `SSL_CERT_DIR` name others, as for OpenSSL).
//! The server's name (or IP address) in the URL must be in its certificate.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A connection to an HTTP server, encrypted or not.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `addr` within `timeout`; with `tls`, as the server `host_port` names (the
    /// URL's `host:port`) whose certificate must say so.
    pub fn connect(addr: SocketAddr, host_port: &str, tls: bool, timeout: Duration) -> io::Result<Stream> {
        let tcp = TcpStream::connect_timeout(&addr, timeout)?;
        tcp.set_nodelay(true)?;
        if !tls {
            return Ok(Stream::Plain(tcp));
        }
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(name.to_string()).map_err(|_| {
            io::Error::other(format!("'{}' is not a server name", crate::text::one_line(host)))
        })?;
        let conn = ClientConnection::new(config()?, name).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    /// One `read` that returns by `deadline` (the end of the stream is `Ok(0)`); when it
    /// has passed, or nothing comes before it, `TimedOut`: "`who` is too slow".
    pub fn read_by(&mut self, buf: &mut [u8], deadline: Instant, who: &str) -> io::Result<usize> {
        let too_slow = || io::Error::new(io::ErrorKind::TimedOut, format!("{who} is too slow"));
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(too_slow());
        }
        self.tcp().set_read_timeout(Some(left))?;
        match self.read(buf) {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(too_slow())
            }
            other => other,
        }
    }

    /// The TCP connection underneath (for its time-outs).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The client configuration, made once: the system's trusted certificates.
fn config() -> io::Result<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no trusted certificates found (install ca-certificates, or name a bundle in SSL_CERT_FILE)".into()
                );
            }
            // ring, not aws-lc-rs (which needs cmake and a C build): rustls deprecates it for
            // lacking post-quantum key exchange, which a tracker's announce does not need.
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(io::Error::other)
}
