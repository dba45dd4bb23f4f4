//! A relay on the customer's network, as an attacker would run one between the engines
//! and the vendor's server: it sees every request in clear (the customer holds the
//! network and, without a pinned build, the CA), and answers each as its `handler`
//! decides — forwarded to the server as it is or changed, or answered itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request the relay received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// The `Authorization` header (the engine's API key as bearer).
    pub auth: String,
    pub body: Value,
}

/// An answer: its status and JSON body.
#[derive(Debug, Clone)]
pub struct Ans {
    pub status: u16,
    pub body: Value,
}

/// Where the relay forwards to: the vendor's server.
#[derive(Clone, Copy)]
pub struct Upstream {
    pub port: u16,
}

impl Upstream {
    /// `req` (its body replaced by `body`) sent to the server as it stands.
    pub fn forward(&self, req: &Req, body: &Value) -> Ans {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let a = super::http::exchange(
            self.port,
            &format!("{} {} HTTP/1.1", req.method, req.path),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", req.auth.as_str()),
            ],
            &bytes,
            Duration::from_secs(10),
        )
        .expect("the server answers");
        Ans {
            status: a.status,
            body: a.json(),
        }
    }
}

type Handler = dyn Fn(&Req, Upstream) -> Ans + Send + Sync;

pub struct Relay {
    pub port: u16,
    seen: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Relay {
    /// A relay in front of the server on `upstream`.
    pub fn start(
        upstream: u16,
        handler: impl Fn(&Req, Upstream) -> Ans + Send + Sync + 'static,
    ) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (handler, log) = (handler.clone(), log.clone());
                std::thread::spawn(move || {
                    serve(conn, &*handler, Upstream { port: upstream }, &log)
                });
            }
        });
        Relay { port, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (path, status answered) of every request, in order.
    pub fn seen(&self) -> Vec<(String, u16)> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, handler: &Handler, up: Upstream, log: &Mutex<Vec<(String, u16)>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut len, mut auth) = (0usize, String::new());
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "authorization" => auth = v.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let req = Req {
        method,
        path,
        auth,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let ans = handler(&req, up);
    log.lock().unwrap().push((req.path.clone(), ans.status));
    let text = if ans.body.is_null() {
        String::new()
    } else {
        ans.body.to_string()
    };
    let mut out = conn;
    let _ = write!(
        out,
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{text}",
        ans.status,
        text.len()
    );
}
