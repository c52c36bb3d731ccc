//! The API's series: requests by route and status, latency by route, refusals by reason.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::error::Reason;
use super::ApiState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabel {
    pub client: String,
}

/// The API's series.
#[derive(Clone)]
pub struct ApiMetrics {
    pub requests: Family<RouteStatus, Counter>,
    pub seconds: Family<RouteLabel, Histogram, fn() -> Histogram>,
    pub refusals: Family<ReasonLabel, Counter>,
    /// SMART bearer tokens issued, and FHIR requests made with them, per client.
    pub tokens: Family<ClientLabel, Counter>,
    pub bearer: Family<ClientLabel, Counter>,
}

fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl ApiMetrics {
    pub fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(latency_buckets),
            refusals: Family::default(),
            tokens: Family::default(),
            bearer: Family::default(),
        };
        r.register("dualchain_api_requests", "API requests by route and status", m.requests.clone());
        r.register("dualchain_api_request_seconds", "API request latency by route", m.seconds.clone());
        r.register("dualchain_api_refusals", "API requests refused, by reason", m.refusals.clone());
        r.register("dualchain_api_smart_tokens", "SMART bearer tokens issued, by client", m.tokens.clone());
        r.register(
            "dualchain_api_smart_requests",
            "FHIR requests made with bearer tokens, by client",
            m.bearer.clone(),
        );
        m
    }
}

pub(super) async fn track(
    State(api): State<ApiState>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let resp = next.run(req).await;
    let m = &api.metrics;
    m.requests.get_or_create(&RouteStatus { route: route.clone(), status: resp.status().as_u16().to_string() }).inc();
    m.seconds.get_or_create(&RouteLabel { route }).observe(started.elapsed().as_secs_f64());
    if let Some(Reason(r)) = resp.extensions().get::<Reason>() {
        m.refusals.get_or_create(&ReasonLabel { reason: r.to_string() }).inc();
    }
    resp
}
