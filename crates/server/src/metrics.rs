//! Request metrics, recorded through the `metrics` facade. The binary installs the Prometheus
//! recorder and serves it on its own listener, away from the public API.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    // The route template (`/fhir/{type}/{id}`), never the concrete path: ids stay out of labels.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("carerecord_http_requests_total", &labels).increment(1);
    metrics::histogram!("carerecord_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}
