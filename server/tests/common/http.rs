//! The one HTTP client of the server tests: HTTP/1.1 over a plain socket, so a test can
//! also send what no well-behaved client would (a path that is not UTF-8, a header of
//! its choosing), one exchange per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: its status, its head (lowercased, status line included) and its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or null.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends `request_line` (`GET /x HTTP/1.1`) with `headers` and `body` to
/// `127.0.0.1:port` and reads the whole answer (the connection is closed after it);
/// `None` when the connection fails or no answer comes within `timeout`.
pub fn exchange(
    port: u16,
    request_line: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Option<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut head = format!("{request_line}\r\nHost: x\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || !request_line.starts_with("GET ") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    // A server that answers before reading the body (a 413) may close first.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head,
        body: resp[split + 4..].to_vec(),
    })
}

/// A JSON request with an optional bearer token: (status, JSON body or null); status 0
/// when the connection fails.
pub fn json(
    port: u16,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let auth = bearer.map(|b| format!("Bearer {b}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    match exchange(
        port,
        &format!("{method} {path} HTTP/1.1"),
        &headers,
        &body,
        Duration::from_secs(10),
    ) {
        Some(a) => (a.status, a.json()),
        None => (0, serde_json::Value::Null),
    }
}
