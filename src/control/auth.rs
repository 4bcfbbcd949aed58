//! Who may use a running peer's control API, decided from the request alone (pure; the
//! server asks before it routes).
//!
//! - **Host** must be the address the API is bound to, as written (`127.0.0.1:PORT`):
//!   a page of another site that got a name of its own pointed at 127.0.0.1 (DNS
//!   rebinding, as in Transmission's 2018 advisory) sends its own name and is refused.
//! - **Origin**, when a browser sends one, must be the API's own (`http://127.0.0.1:PORT`).
//! - **The secret**, written in the folder's lock file (readable by its owner only), comes
//!   as `Authorization: Bearer SECRET` (the `peer` commands) or in the cookie the page gets
//!   at `/login?secret=SECRET` (`HttpOnly`, `SameSite=Strict`).
//! - **A change** (add, pause, resume, remove, stop) is a POST; one authorised by the cookie
//!   also carries `X-CSRF-Token`, a token derived from the secret that only a page of this
//!   origin can read (from `/api/session`). A bearer secret is not sent by browsers on
//!   their own, so it needs none.

use crate::hash::Sha1Hash;
use crate::tracker::http::conn::Request;
use std::net::SocketAddr;

/// The cookie the page's secret travels in.
pub const COOKIE: &str = "p2p_share";

/// How a request proved it knows the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Bearer,
    Cookie,
}

/// Why a request is refused: its status and a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub status: u16,
    pub why: String,
}

fn denied(status: u16, why: impl Into<String>) -> Denied {
    Denied { status, why: why.into() }
}

/// The API's address and secret.
#[derive(Clone)]
pub struct Guard {
    addr: SocketAddr,
    secret: String,
}

impl Guard {
    pub fn new(addr: SocketAddr, secret: String) -> Guard {
        Guard { addr, secret }
    }

    /// The address the API is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token a page sends with its changes.
    pub fn csrf_token(&self) -> String {
        csrf_token(&self.secret)
    }

    /// Whether `req` may be answered; `change` when it would change something.
    pub fn check(&self, req: &Request, change: bool) -> Result<Proof, Denied> {
        let host = self.addr.to_string();
        match req.header("host") {
            Some(h) if h.trim() == host => {}
            Some(h) => return Err(denied(421, format!("Host must be {host}, not {}", shown(h)))),
            None => return Err(denied(421, format!("Host must be {host}"))),
        }
        if let Some(origin) = req.header("origin") {
            if origin.trim() != format!("http://{host}") {
                return Err(denied(403, format!("requests from {} are refused", shown(origin))));
            }
        }
        let proof = if let Some(auth) = req.header("authorization") {
            match auth.trim().strip_prefix("Bearer ") {
                Some(s) if same(s.trim(), &self.secret) => Proof::Bearer,
                _ => return Err(denied(401, "wrong secret")),
            }
        } else {
            match cookie(req, COOKIE) {
                Some(s) if same(s, &self.secret) => Proof::Cookie,
                Some(_) => return Err(denied(401, "wrong secret")),
                None => return Err(denied(401, "the secret is required (see the folder's lock file)")),
            }
        };
        if change {
            if req.method != "POST" {
                return Err(denied(405, "changes are made with POST"));
            }
            if proof == Proof::Cookie
                && !req.header("x-csrf-token").is_some_and(|t| same(t.trim(), &self.csrf_token()))
            {
                return Err(denied(403, "a change from the page needs its X-CSRF-Token"));
            }
        }
        Ok(proof)
    }

    /// Whether `candidate` is the secret (for `/login`).
    pub fn is_secret(&self, candidate: &str) -> bool {
        same(candidate, &self.secret)
    }
}

/// The CSRF token of `secret`.
pub fn csrf_token(secret: &str) -> String {
    Sha1Hash::of(format!("p2p-share csrf:{secret}").as_bytes()).to_hex()
}

/// The value of cookie `name`, if sent.
fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    let all = req.header("cookie")?;
    all.split(';').filter_map(|c| c.trim().split_once('=')).find(|(n, _)| *n == name).map(|(_, v)| v)
}

/// Compares in time that does not depend on where the strings differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A header value as it may appear in a reason: one line, at most 64 characters.
fn shown(v: &str) -> String {
    crate::text::one_line(&v.chars().take(64).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn guard() -> Guard {
        Guard::new("127.0.0.1:4321".parse().unwrap(), SECRET.into())
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: "/api/status".into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            ..Request::default()
        }
    }

    const HOST: (&str, &str) = ("host", "127.0.0.1:4321");
    const BEARER: (&str, &str) = ("authorization", "Bearer 0123456789abcdef0123456789abcdef");

    #[test]
    fn the_commands_secret_opens_reads_and_changes() {
        assert_eq!(guard().check(&req("GET", &[HOST, BEARER]), false), Ok(Proof::Bearer));
        assert_eq!(guard().check(&req("POST", &[HOST, BEARER]), true), Ok(Proof::Bearer));
    }

    #[test]
    fn no_secret_or_a_wrong_one_is_refused() {
        assert_eq!(guard().check(&req("GET", &[HOST]), false).unwrap_err().status, 401);
        let wrong = ("authorization", "Bearer 0123456789abcdef0123456789abcdee");
        assert_eq!(guard().check(&req("GET", &[HOST, wrong]), false).unwrap_err().status, 401);
        let short = ("authorization", "Bearer 0123");
        assert_eq!(guard().check(&req("GET", &[HOST, short]), false).unwrap_err().status, 401);
        let cookie = ("cookie", "p2p_share=nope");
        assert_eq!(guard().check(&req("GET", &[HOST, cookie]), false).unwrap_err().status, 401);
    }

    #[test]
    fn a_host_other_than_the_address_is_refused_even_with_the_secret() {
        for host in ["localhost:4321", "evil.example:4321", "127.0.0.1:4322", "127.0.0.1"] {
            let r = req("GET", &[("host", host), BEARER]);
            assert_eq!(guard().check(&r, false).unwrap_err().status, 421, "{host}");
        }
        assert_eq!(guard().check(&req("GET", &[BEARER]), false).unwrap_err().status, 421);
    }

    #[test]
    fn a_foreign_origin_is_refused_and_our_own_taken() {
        let evil = ("origin", "http://evil.example");
        assert_eq!(guard().check(&req("POST", &[HOST, BEARER, evil]), true).unwrap_err().status, 403);
        let ours = ("origin", "http://127.0.0.1:4321");
        assert!(guard().check(&req("POST", &[HOST, BEARER, ours]), true).is_ok());
    }

    #[test]
    fn a_change_is_a_post_and_from_the_page_carries_the_csrf_token() {
        assert_eq!(guard().check(&req("GET", &[HOST, BEARER]), true).unwrap_err().status, 405);
        let cookie = ("cookie", "theme=dark; p2p_share=0123456789abcdef0123456789abcdef");
        assert_eq!(guard().check(&req("GET", &[HOST, cookie]), false), Ok(Proof::Cookie));
        assert_eq!(guard().check(&req("POST", &[HOST, cookie]), true).unwrap_err().status, 403);
        let token = guard().csrf_token();
        let with = [HOST, cookie, ("x-csrf-token", token.as_str())];
        assert_eq!(guard().check(&req("POST", &with), true), Ok(Proof::Cookie));
        let wrong = [HOST, cookie, ("x-csrf-token", "0000")];
        assert_eq!(guard().check(&req("POST", &wrong), true).unwrap_err().status, 403);
        assert_ne!(token, SECRET, "the token does not give the secret away");
    }
}
