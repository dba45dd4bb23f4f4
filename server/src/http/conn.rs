//! Accepting and serving connections so that slow or idle clients cannot exhaust the
//! server: headers must arrive within `header-timeout-secs`, a connection that makes no
//! progress for `idle-timeout-secs` is closed, at most `max-connections` are served at
//! once (more wait in the listen backlog rather than taking file descriptors), and one
//! client address holds at most `max-connections-per-client` of them (more are closed at
//! once), so a single address cannot hold every slot.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::tls::Tls;

/// Default cap on connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// File descriptors kept back from the cap for the store, the listener and logs.
const FD_RESERVE: usize = 64;
/// How long in-flight requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(5);
/// What a plain-HTTP client over its address's cap is told before its connection closes
/// (`server_codes::TOO_MANY_CONNECTIONS`: a test checks they agree).
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
content-length: 83\r\nconnection: close\r\n\r\n\
{\"error\":\"too_many_connections\",\"message\":\"too many connections from this address\"}";

/// The limits connections are served under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Time without progress before a connection is closed.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections one client address holds at once.
    pub per_client: usize,
}

/// The per-client cap: the configured one, else a sixteenth of the cap (at least 16),
/// never above the cap.
pub fn per_client_cap(configured: Option<usize>, cap: usize) -> usize {
    configured.unwrap_or((cap / 16).max(16)).min(cap).max(1)
}

/// Connections held per client address; [`Held`] gives its place back when dropped.
#[derive(Default)]
struct PerClient {
    held: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of one address, counted while it lives.
struct Held {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// A place for a connection from `ip`, unless it holds `cap` already.
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Held> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Held {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.clients.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// The cap on connections: the configured one, else the default, never above what the
/// open-file limit allows (`nofile` soft limit less a reserve).
pub fn connection_cap(configured: Option<usize>, nofile: Option<u64>) -> usize {
    let wanted = configured.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    match nofile {
        Some(n) => wanted.min((n as usize).saturating_sub(FD_RESERVE).max(1)),
        None => wanted,
    }
}

/// Raises the soft open-file limit to the hard one (a server's usual first step) and
/// returns the soft limit in effect.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// A connection that fails once it has made no progress (read or write) for a while, so
/// a client that stops sending a body or stops reading its response lets go of it.
struct Watched<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> Watched<T> {
    fn new(inner: T, idle: Duration) -> Self {
        Watched {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// After the inner I/O returned `Pending`: an error once the deadline has passed.
    /// `poll` of the inner stream: progress, or the deadline's check when it waits.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
        progress: bool,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(r) => {
                if progress {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check(cx),
        }
    }

    fn check<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no progress on the connection",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.watch(cx, poll, true)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, poll, true)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        // A flush that completes moves no bytes: it is not progress.
        this.watch(cx, poll, false)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then stops
/// accepting and gives in-flight requests a few seconds.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    trusted: Arc<Vec<ipnet::IpNet>>,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first: at the cap, new clients wait in the backlog instead of taking a
        // descriptor each.
        let permit = tokio::select! {
            _ = shutdown.as_mut() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, addr) = tokio::select! {
            _ = shutdown.as_mut() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off
                    // briefly rather than spin.
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        // A trusted proxy carries many clients on its connections: it is not capped.
        let held = if trusted.iter().any(|n| n.contains(&addr.ip())) {
            None
        } else {
            match clients.take(addr.ip(), limits.per_client) {
                Some(h) => Some(h),
                None => {
                    if tls.is_none() {
                        let _ = stream.try_write(TOO_MANY);
                    }
                    continue;
                }
            }
        };
        let permit = (permit, held);
        let _ = stream.set_nodelay(true);
        let stream = Watched::new(stream, limits.idle_timeout);
        match &tls {
            None => {
                let watched = graceful.watch(serve_one(stream, addr, router.clone(), limits));
                tokio::spawn(async move {
                    let _ = watched.await;
                    drop(permit);
                });
            }
            Some(tls) => {
                // The handshake is bounded like the headers it comes before; it runs in
                // the connection's task so a slow one holds only its own slot.
                let acceptor = tls.acceptor();
                let watcher = graceful.watcher();
                let router = router.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        let _ = watcher.watch(serve_one(stream, addr, router, limits)).await;
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {}
    }
    Ok(())
}

fn serve_one<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    addr: SocketAddr,
    router: Router,
    limits: Limits,
) -> hyper::server::conn::http1::Connection<
    TokioIo<S>,
    impl hyper::service::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future = impl Future + Send,
        > + Send,
> {
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        let mut router = router.clone();
        tower_service::Service::call(&mut router, req)
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_refusal_is_well_formed_and_names_its_code() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            body["error"],
            super::super::server_codes::TOO_MANY_CONNECTIONS
        );
    }

    #[test]
    fn one_address_gets_a_sixteenth_of_the_cap_unless_configured() {
        // (configured, cap, per client)
        let cases = [
            (None, 4096, 256),
            (None, 960, 60),
            (None, 100, 16),
            (None, 10, 10),
            (Some(1000), 4096, 1000),
            (Some(100_000), 4096, 4096),
        ];
        for (configured, cap, want) in cases {
            assert_eq!(
                per_client_cap(configured, cap),
                want,
                "{configured:?} {cap}"
            );
        }
        let clients = Arc::new(PerClient::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = clients.take(a, 2).unwrap();
        let second = clients.take(a, 2).unwrap();
        assert!(clients.take(a, 2).is_none(), "a third from one address");
        assert!(
            clients.take(b, 2).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(clients.take(a, 2).is_some(), "a place given back");
        drop(second);
    }

    #[test]
    fn the_cap_stays_under_the_open_file_limit() {
        let cases = [
            (None, None, DEFAULT_MAX_CONNECTIONS),
            (None, Some(1024), 1024 - FD_RESERVE),
            (None, Some(1_048_576), DEFAULT_MAX_CONNECTIONS),
            (Some(100), Some(1024), 100),
            (Some(5000), Some(1024), 1024 - FD_RESERVE),
            (Some(10), Some(10), 1),
        ];
        for (configured, nofile, want) in cases {
            assert_eq!(
                connection_cap(configured, nofile),
                want,
                "{configured:?} {nofile:?}"
            );
        }
    }
}
