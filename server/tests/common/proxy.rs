//! A forward proxy on loopback as corporate networks run them: HTTP `CONNECT` with Basic
//! proxy credentials, resolving names the engine's host cannot (every host is sent to
//! 127.0.0.1, its port kept), and remembering what it was asked.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine as _;

pub struct ConnectProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    /// A proxy that wants `user:password` (Basic), or nothing when `None`.
    pub fn start(credentials: Option<(&str, &str)>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let want = credentials.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let want = want.clone();
                let log = log.clone();
                std::thread::spawn(move || tunnel(conn, want.as_deref(), &log));
            }
        });
        ConnectProxy { port, seen }
    }

    /// `CONNECT host:port` lines asked for, each followed by ` -> 200` or ` -> 407`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// The proxy URL with `credentials` in it.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((u, p)) => format!("http://{u}:{p}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }
}

/// The request head (on TCP or through TLS), read a byte at a time so nothing past it is
/// consumed.
fn head(conn: &mut impl Read) -> Option<String> {
    let mut raw = Vec::new();
    let mut b = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if raw.len() > 16 * 1024 || conn.read(&mut b).ok()? == 0 {
            return None;
        }
        raw.push(b[0]);
    }
    String::from_utf8(raw).ok()
}

fn tunnel(mut client: TcpStream, want: Option<&str>, log: &Mutex<Vec<String>>) {
    let Some(head) = head(&mut client) else {
        return;
    };
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("").to_string();
    let auth = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("proxy-authorization")
            .then(|| v.trim().to_string())
    });
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "CONNECT" {
        log.lock().unwrap().push(format!("{first} -> 405"));
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    if want.is_some() && auth.as_deref() != want {
        log.lock().unwrap().push(format!("CONNECT {target} -> 407"));
        let _ = client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 0\r\n\r\n",
        );
        return;
    }
    let port: u16 = target
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(443);
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
        log.lock().unwrap().push(format!("CONNECT {target} -> 502"));
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    log.lock().unwrap().push(format!("CONNECT {target} -> 200"));
    // A tunnel relays small TLS records as they come, as real proxies do.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let (mut client, mut upstream) = (client, upstream);
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// A TLS-inspecting proxy, as a customer's middlebox runs one: it answers `CONNECT`,
/// then speaks TLS to the client itself with a certificate for the name asked for,
/// issued by a CA of the customer's (which the customer's hosts trust), reads each
/// request in clear (API key and all) and forwards it to the real server over TLS of its
/// own. It could answer anything instead; that it reads is enough to show.
pub struct InspectingProxy {
    pub port: u16,
    read: Arc<Mutex<Vec<String>>>,
}

impl InspectingProxy {
    /// A proxy presenting certificates of `customer_ca` for `name`, forwarding to the
    /// server it is asked for on loopback, which it trusts by `server_ca` (PEM).
    pub fn start(
        customer_ca: &super::tls::TestCa,
        name: &str,
        server_ca: &std::path::Path,
    ) -> InspectingProxy {
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = customer_ca.issue("inspecting-proxy", &[name]);
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let upstream = super::tls::client_config(server_ca);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let read = Arc::new(Mutex::new(Vec::new()));
        let log = read.clone();
        let name = name.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (server, upstream, log, name) =
                    (server.clone(), upstream.clone(), log.clone(), name.clone());
                std::thread::spawn(move || inspect(conn, server, upstream, &name, &log));
            }
        });
        InspectingProxy { port, read }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The request heads it read in clear.
    pub fn read(&self) -> Vec<String> {
        self.read.lock().unwrap().clone()
    }
}

fn inspect(
    mut client: TcpStream,
    server: Arc<rustls::ServerConfig>,
    upstream: Arc<rustls::ClientConfig>,
    name: &str,
    log: &Mutex<Vec<String>>,
) {
    let Some(connect) = head(&mut client) else {
        return;
    };
    let target = connect.split_whitespace().nth(1).unwrap_or("").to_string();
    let port: u16 = target
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(443);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(server).unwrap(), client);
    // The request, in clear.
    let Some(request_head) = head(&mut tls) else {
        return;
    };
    let len: usize = request_head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    if tls.read_exact(&mut body).is_err() {
        return;
    }
    log.lock().unwrap().push(request_head.clone());
    // Forwarded over a TLS session of the proxy's own.
    let Ok(sock) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let mut up = rustls::StreamOwned::new(
        rustls::ClientConnection::new(upstream, server_name).unwrap(),
        sock,
    );
    let forwarded = request_head.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    if up.write_all(forwarded.as_bytes()).is_err() || up.write_all(&body).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    let _ = tls.write_all(&answer);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
