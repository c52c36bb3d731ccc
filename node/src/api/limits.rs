//! What one client can take from a node's API: requests in flight and time per request
//! (503 with `Retry-After` past either), the replay window's nonces (a bounded store), and
//! the time a body may take to arrive (408); synced disk writes run on the blocking pool
//! ([`on_disk`]).
//!
//! Nonces need not survive a restart: a node refuses requests signed before it started
//! (the header checks in `auth`), so nothing signed for the previous run can be replayed. Nor need
//! they outlive the clock-skew window: a request signed longer ago is refused as stale.
//! So the store keeps exactly the window, and a window holding more than
//! [`NonceStore::max`] requests answers 503 instead of growing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// Routes an operator must reach under any load (not counted against the limit).
const UNLIMITED: [&str; 2] = ["/health", "/metrics"];

/// Concurrency and time limits of the API.
#[derive(Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max: usize,
    time_max: Duration,
}

impl Admission {
    pub fn new(max: usize, time_max: Duration) -> Self {
        Self { permits: Arc::new(Semaphore::new(max)), max, time_max }
    }
}

/// The middleware: at most `max` requests in flight, each cut after `time_max`.
pub(super) async fn admit(State(a): State<Admission>, req: Request, next: Next) -> Response {
    if UNLIMITED.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Ok(_permit) = a.permits.clone().try_acquire_owned() else {
        return ApiError::busy("busy", format!("this node is serving {} requests; try again", a.max), 1)
            .into_response();
    };
    match tokio::time::timeout(a.time_max, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            ApiError::busy("too-slow", format!("the request took longer than {:?}; it was stopped", a.time_max), 5)
                .into_response()
        }
    }
}

/// Reads a body within `within`, else 408.
pub(super) async fn within<T, E>(
    limit: Duration,
    read: impl std::future::Future<Output = Result<T, E>>,
) -> Result<Result<T, E>, ApiError> {
    tokio::time::timeout(limit, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "body-timeout",
            format!("the body did not arrive within {limit:?}"),
        )
    })
}

/// Runs disk work (synced writes) with the worker's other tasks moved to other threads, so
/// no async task waits behind a disk. Unlike a task on the blocking pool it cannot be cut
/// off halfway by a dropped request (a time limit, a client hanging up): the caller's
/// state update after it always runs with it. Needs the multi-threaded runtime, as the
/// consensus engine does.
pub fn on_disk<T>(work: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    tokio::task::block_in_place(work)
}

/// The nonces of the replay window: (signed time, member, nonce), oldest first.
pub struct NonceStore {
    seen: BTreeSet<(u64, String, String)>,
    max: usize,
    /// Nothing signed before this is accepted any more; it only rises (a clock stepping
    /// back does not bring forgotten nonces' times back into the window).
    floor: u64,
}

impl NonceStore {
    pub fn new(max: usize) -> Self {
        Self { seen: BTreeSet::new(), max, floor: 0 }
    }

    /// Records a request signed at `time` (ms); a request with the same time, member and
    /// nonce is a replay. Forgets whatever was signed before `oldest` (already stale).
    /// A request signed before `oldest` is refused as stale here too (its body may have
    /// taken long enough to arrive for its nonce to be forgotten already).
    pub fn record(&mut self, oldest: u64, time: u64, member: &str, nonce: &str) -> Result<(), ApiError> {
        self.floor = self.floor.max(oldest);
        if time < self.floor {
            return Err(ApiError::unauthorized("stale", "the request became stale before its body arrived"));
        }
        if self.seen.first().is_some_and(|(t, _, _)| *t < self.floor) {
            self.seen = self.seen.split_off(&(self.floor, String::new(), String::new()));
        }
        let key = (time, member.to_string(), nonce.to_string());
        if self.seen.contains(&key) {
            return Err(ApiError::conflict("replayed", "this request was already received"));
        }
        if self.seen.len() >= self.max {
            return Err(ApiError::busy(
                "busy",
                format!("{} signed requests in the replay window; try again", self.max),
                1,
            ));
        }
        self.seen.insert(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nonce_store_refuses_replays_forgets_stale_nonces_and_stays_bounded() {
        let mut s = NonceStore::new(3);
        s.record(0, 100, "a", "n1").unwrap();
        assert_eq!(s.record(0, 100, "a", "n1").unwrap_err().reason, "replayed");
        s.record(0, 100, "b", "n1").unwrap(); // another member's nonce
        s.record(0, 101, "a", "n1").unwrap(); // another time is another request
        let full = s.record(0, 102, "a", "n2").unwrap_err();
        assert_eq!((full.status, full.reason, full.retry_after_s), (StatusCode::SERVICE_UNAVAILABLE, "busy", Some(1)));
        assert_eq!(s.seen.len(), 3);
        // Time passes: everything signed before 101 is stale and forgotten.
        s.record(101, 150, "a", "n3").unwrap();
        assert_eq!(s.seen.len(), 2);
        assert_eq!(s.record(101, 101, "a", "n1").unwrap_err().reason, "replayed", "still in the window");
        // A request whose body arrived after its time left the window is stale, so a replay
        // with a slow body cannot slip past a forgotten nonce.
        assert_eq!(s.record(151, 150, "a", "n3").unwrap_err().reason, "stale");
        // The clock steps back: what was forgotten stays refused.
        assert_eq!(s.record(90, 100, "a", "n1").unwrap_err().reason, "stale");
    }

    async fn serve(admission: Admission) -> String {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_millis(300)).await }))
            .route("/forever", get(|| async { tokio::time::sleep(Duration::from_secs(3600)).await }))
            .route("/health", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(admission, admit));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_past_the_limits_get_503_with_retry_after() {
        let url = serve(Admission::new(1, Duration::from_millis(1000))).await;
        let http = reqwest::Client::new();
        let first = tokio::spawn({
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(format!("{url}/slow")).send().await.unwrap().status() }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = http.get(format!("{url}/slow")).send().await.unwrap();
        assert_eq!(second.status(), 503, "one request at a time");
        assert_eq!(second.headers()["retry-after"], "1");
        let health = http.get(format!("{url}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "health is reachable under load");
        assert_eq!(first.await.unwrap(), 200);
        let slow = http.get(format!("{url}/forever")).send().await.unwrap();
        assert_eq!(slow.status(), 503, "a request is cut at the time limit");
        assert_eq!(slow.headers()["retry-after"], "5");
        assert_eq!(http.get(format!("{url}/slow")).send().await.unwrap().status(), 200, "the permit came back");
    }
}
