//! Debian's nginx as the HTTP server of a test (web seeds with range requests, a TLS front
//! for a tracker), in the foreground in a folder of its own, and a test CA for TLS.

use crate::libtorrent::Killed;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One `server` block and the port it listens on.
pub struct Site {
    port: u16,
    block: String,
}

impl Site {
    /// Serves the files in `root`, each response at `rate` (`limit_rate`: "512k", "0" none).
    pub fn files(port: u16, root: &Path, rate: &str) -> Site {
        let block = format!("listen 127.0.0.1:{port}; root {}; limit_rate {rate};", root.display());
        Site { port, block }
    }

    /// The same over TLS with the certificate in `tls`.
    pub fn tls_files(port: u16, root: &Path, tls: &TlsFiles) -> Site {
        let block = format!("listen 127.0.0.1:{port} ssl; {} root {};", tls.directives(), root.display());
        Site { port, block }
    }

    /// TLS in front of the plain HTTP server on 127.0.0.1:`to`.
    pub fn tls_proxy(port: u16, to: u16, tls: &TlsFiles) -> Site {
        let block = format!(
            "listen 127.0.0.1:{port} ssl; {} location / {{ proxy_pass http://127.0.0.1:{to}; }}",
            tls.directives()
        );
        Site { port, block }
    }
}

/// nginx serving `sites`, its own files in `work`; killed when dropped.
pub fn nginx(work: &Path, sites: &[Site]) -> Killed {
    std::fs::create_dir_all(work.join("tmp")).unwrap();
    let w = work.display();
    let servers: String = sites.iter().map(|s| format!("  server {{ {} }}\n", s.block)).collect();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {w}/nginx.pid; error_log {w}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {w}/access.log;
  client_body_temp_path {w}/tmp; proxy_temp_path {w}/tmp; fastcgi_temp_path {w}/tmp;
  uwsgi_temp_path {w}/tmp; scgi_temp_path {w}/tmp;
{servers}}}
"
    );
    let conf_path = work.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(work)
        .arg("-e")
        .arg(work.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx is installed (apt-get install nginx; the .ci/run script does)");
    let n = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    for s in sites {
        while std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {}", s.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    n
}

/// A test CA and a server certificate it signed for 127.0.0.1.
pub struct TlsFiles {
    /// The CA's certificate: what a client is told to trust.
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    fn directives(&self) -> String {
        format!("ssl_certificate {}; ssl_certificate_key {};", self.cert.display(), self.key.display())
    }
}

/// Makes a CA and a certificate for 127.0.0.1 with `openssl`, in `dir`.
pub fn tls_files(dir: &Path) -> TlsFiles {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
    ]
    .iter()
    .copied()
    .chain(["-subj", "/CN=p2p-share test CA"])
    .collect::<Vec<_>>());
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("srv.pem"), key: dir.join("srv.key") }
}
