//! Support for tests on tokio's paused time: a clock that follows it, and an HTTP backend
//! served from the same runtime (a server on another thread would race the clock's
//! auto-advance and see its requests time out).

use std::sync::{Arc, Mutex};

use lic4es::clock::Clock;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::{Reply, Request};

/// Wall time that advances with tokio's (paused) clock, starting at `base_secs`.
pub struct PausedClock {
    base_ms: i64,
    origin: Instant,
    shift_ms: std::sync::atomic::AtomicI64,
}

impl PausedClock {
    pub fn new(base_secs: i64) -> Self {
        PausedClock {
            base_ms: base_secs * 1000,
            origin: Instant::now(),
            shift_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }
}

impl PausedClock {
    /// Sets the wall clock back (negative) or forward by `delta_ms`, as an operator
    /// would; monotonic time is not affected.
    pub fn shift(&self, delta_ms: i64) {
        self.shift_ms
            .fetch_add(delta_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for PausedClock {
    fn now_millis(&self) -> i64 {
        self.base_ms
            + self.origin.elapsed().as_millis() as i64
            + self.shift_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn monotonic_millis(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }
}

type Handler = Box<dyn Fn(&Request) -> Reply + Send + Sync>;

/// One request, with when it arrived (ms since the server started, in tokio time).
#[derive(Debug, Clone)]
pub struct Seen {
    pub at_ms: u64,
    pub req: Request,
}

/// An HTTP/1.1 backend on 127.0.0.1, running as tasks on the current runtime.
#[derive(Clone)]
pub struct AsyncServer {
    port: u16,
    origin: Instant,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Mutex<Handler>>,
}

impl AsyncServer {
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = AsyncServer {
            port: listener.local_addr().unwrap().port(),
            origin: Instant::now(),
            seen: Arc::default(),
            handler: Arc::new(Mutex::new(Box::new(handler))),
        };
        let s = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move { s.serve(conn).await });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces what the server answers from now on.
    pub fn answer(&self, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Box::new(handler);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    async fn serve(&self, conn: tokio::net::TcpStream) {
        let (rd, mut wr) = conn.into_split();
        let mut reader = BufReader::new(rd);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            lines.push(line);
        }
        let mut req = Request::from_head(&lines);
        if reader.read_exact(&mut req.body).await.is_err() {
            return;
        }
        let reply = (self.handler.lock().unwrap())(&req);
        self.seen.lock().unwrap().push(Seen {
            at_ms: self.origin.elapsed().as_millis() as u64,
            req,
        });
        if reply.hang {
            // Never answer: the client's timeout has to end the exchange.
            std::future::pending::<()>().await;
        }
        let _ = wr.write_all(reply.head().as_bytes()).await;
        let _ = wr.write_all(&reply.body).await;
        let _ = wr.shutdown().await;
    }
}
