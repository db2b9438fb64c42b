//! An HTTP proxy on loopback that drops and lies (tidewal issue 16, part 2): it sits between
//! an S3 client and a real S3 server (SeaweedFS) and, on a seeded schedule, fails requests
//! the ways a network and a loaded store do. Faults after forwarding are the ones that matter
//! most: the request landed, the client sees an error, so a put's outcome is unknown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Every way the proxy fails a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The connection is dropped before the request is forwarded (nothing landed).
    ResetBeforeForward,
    /// Forwarded and answered by the store, then the connection is dropped (it landed; the
    /// client sees a broken connection).
    ResetAfterForward,
    /// Forwarded; the answer's headers and half its body are sent, then the connection drops.
    MidBody,
    /// 500 without forwarding.
    InternalErrorBefore,
    /// 503 SlowDown without forwarding.
    SlowDownBefore,
    /// Forwarded (it landed), then 503 SlowDown instead of the store's answer.
    SlowDownAfter,
    /// Forwarded, and the answer held back for a few seconds (past a client's timeout).
    Delay,
}

/// Each kind, in the order counts are kept and printed.
pub const FAULTS: [Fault; 7] = [
    Fault::ResetBeforeForward,
    Fault::ResetAfterForward,
    Fault::MidBody,
    Fault::InternalErrorBefore,
    Fault::SlowDownBefore,
    Fault::SlowDownAfter,
    Fault::Delay,
];

/// What the proxy did.
#[derive(Default)]
pub struct Counts {
    /// Requests that reached the proxy.
    pub requests: AtomicU64,
    /// Faults injected, by kind (indexed as [`FAULTS`]).
    pub faults: [AtomicU64; 7],
    /// PUTs that reached the store but whose client saw a fault: outcome unknown to it.
    pub ambiguous_puts: AtomicU64,
}

impl Counts {
    /// One line per kind and the totals.
    pub fn report(&self) -> String {
        let mut out = format!(
            "requests {}, ambiguous puts {}",
            self.requests.load(Ordering::Relaxed),
            self.ambiguous_puts.load(Ordering::Relaxed)
        );
        for (kind, n) in FAULTS.iter().zip(&self.faults) {
            out.push_str(&format!(", {kind:?} {}", n.load(Ordering::Relaxed)));
        }
        out
    }
}

/// The seeded schedule: the n-th request to arrive draws whether it is failed and how. The
/// seed fixes the sequence of draws, not the run: concurrent requests arrive in an order the
/// scheduler picks, so a seed replays the mix of faults, not each fault's request.
struct Schedule {
    state: Mutex<u64>,
    /// Chance per request, in 1/1000.
    per_mille: u64,
}

impl Schedule {
    /// splitmix64: the same draws for the same seed, no crate needed.
    fn next(&self) -> u64 {
        let mut s = self.state.lock().unwrap();
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn draw(&self) -> Option<(Fault, u64)> {
        if self.next() % 1000 >= self.per_mille {
            return None;
        }
        let kind = FAULTS[(self.next() % FAULTS.len() as u64) as usize];
        Some((kind, self.next()))
    }
}

/// A running proxy (it stops when the runtime does).
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// What it did so far.
    pub counts: Arc<Counts>,
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn full(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(whole(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// A body of these bytes, sent at once.
fn whole(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Every byte of a body, read to its end.
async fn collected(body: Incoming) -> std::io::Result<Bytes> {
    Ok(body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes())
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

impl Proxy {
    /// Starts a proxy to `upstream` failing `per_mille` of the requests on the schedule of
    /// `seed`, delaying by up to `max_delay` (a delayed PUT counts as ambiguous from the
    /// client's `timeout` on).
    pub async fn start(
        upstream: SocketAddr,
        seed: u64,
        per_mille: u64,
        max_delay: Duration,
        timeout: Duration,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let schedule = Arc::new(Schedule {
            state: Mutex::new(seed),
            per_mille,
        });
        let (c, s) = (counts.clone(), schedule.clone());
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let (c, s) = (c.clone(), s.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, upstream, c.clone(), s.clone(), (max_delay, timeout))
                    });
                    // An error here is a fault the proxy injected (or the client gave up).
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), service)
                        .await;
                });
            }
        });
        Proxy { addr, counts }
    }
}

/// Forwards `req` to `upstream` on a fresh connection; the answer's head and whole body.
async fn forward(
    req: Request<Bytes>,
    upstream: SocketAddr,
) -> std::io::Result<(hyper::http::response::Parts, Bytes)> {
    let io = TcpStream::connect(upstream).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let resp = sender
        .send_request(req.map(Full::new))
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = resp.into_parts();
    Ok((parts, collected(body).await?))
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    counts: Arc<Counts>,
    schedule: Arc<Schedule>,
    (max_delay, timeout): (Duration, Duration),
) -> Result<Response<Body>, std::io::Error> {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let fault = schedule.draw();
    let is_put = req.method() == Method::PUT;
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, collected(body).await?);
    let count = |kind: Fault| {
        let i = FAULTS.iter().position(|&k| k == kind).unwrap();
        counts.faults[i].fetch_add(1, Ordering::Relaxed);
    };
    // Faults before forwarding: nothing reaches the store.
    match fault {
        Some((kind @ Fault::ResetBeforeForward, _)) => {
            count(kind);
            return Err(std::io::Error::other("injected: reset before forwarding"));
        }
        Some((kind @ Fault::InternalErrorBefore, _)) => {
            count(kind);
            return Ok(full(StatusCode::INTERNAL_SERVER_ERROR, "injected"));
        }
        Some((kind @ Fault::SlowDownBefore, _)) => {
            count(kind);
            return Ok(full(StatusCode::SERVICE_UNAVAILABLE, SLOW_DOWN));
        }
        _ => {}
    }
    let (parts, body) = forward(req, upstream).await?;
    let Some((kind, r)) = fault else {
        return Ok(Response::from_parts(parts, whole(body)));
    };
    count(kind);
    let delay = Duration::from_millis(r % (max_delay.as_millis().max(1) as u64));
    if is_put && (kind != Fault::Delay || delay >= timeout) {
        counts.ambiguous_puts.fetch_add(1, Ordering::Relaxed);
    }
    match kind {
        Fault::ResetAfterForward => Err(std::io::Error::other("injected: reset after forwarding")),
        Fault::SlowDownAfter => Ok(full(StatusCode::SERVICE_UNAVAILABLE, SLOW_DOWN)),
        Fault::MidBody => {
            // The head promises the whole body (its Content-Length), half of it comes, then
            // the connection breaks; an empty body breaks before its first byte.
            let half = body.slice(..body.len() / 2);
            let frames = stream::iter([
                Ok(Frame::data(half)),
                Err(std::io::Error::other("injected: cut mid-body")),
            ]);
            Ok(Response::from_parts(parts, StreamBody::new(frames).boxed()))
        }
        Fault::Delay => {
            tokio::time::sleep(delay).await;
            Ok(Response::from_parts(parts, whole(body)))
        }
        _ => unreachable!("faults before forwarding returned above"),
    }
}
