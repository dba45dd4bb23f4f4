//! `license-server` as its own process, and plain HTTP to any port: for the tests that
//! run the binary as an operator does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `license-server serve` on the config's listen address (`127.0.0.1:0` picks a port),
/// with its stderr read line by line; killed on drop.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub port: u16,
    /// Its log lines after the `listening on` line.
    pub lines: mpsc::Receiver<String>,
}

impl ServerProcess {
    pub fn start(config: &Path) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_license-server"))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = Vec::new();
        let port = loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => panic!("license-server did not start:\n{}", seen.join("\n")),
            };
            seen.push(line.clone());
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        ServerProcess {
            child,
            port,
            lines: rx,
        }
    }

    /// Every log line up to one holding `word` (at most 20 s).
    pub fn expect(&self, word: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.contains(word);
                    seen.push(l);
                    if done {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "the server never logged `{word}`; it logged:\n{}",
            seen.join("\n")
        );
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 exchange with `127.0.0.1:port`: (status, JSON body or null); status 0
/// when the connection fails.
pub fn request(port: u16, method: &str, path: &str, bearer: &str, body: &Value) -> (u16, Value) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Value::Null);
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {bearer}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    let mut resp = Vec::new();
    if s.read_to_end(&mut resp).is_err() {
        return (0, Value::Null);
    }
    let text = String::from_utf8_lossy(&resp);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .find("\r\n\r\n")
        .and_then(|i| serde_json::from_str(&text[i + 4..]).ok())
        .unwrap_or(Value::Null);
    (status, json)
}
