//! Prometheus metrics: request count and latency by route, job queue depth, job failures (counted
//! by the worker), and database pool use. Served on a separate listener (`--metrics-addr`).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use yiren_store::Db;

/// The process-wide recorder (installed once; every app in the process shares it).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

/// Middleware: count and time each request by its route pattern (never the raw path, so ids do
/// not explode the label set).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("yiren_http_requests_total", "method" => method, "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("yiren_http_request_duration_seconds", "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// The metrics router.
pub fn router(db: Db) -> Router {
    handle();
    Router::new().route("/metrics", get(render)).with_state(db)
}

async fn render(State(db): State<Db>) -> impl IntoResponse {
    let h = handle();
    if let Ok(counts) = yiren_store::job::counts(db.read()).await {
        for st in ["queued", "running", "done", "dead"] {
            let n = counts
                .iter()
                .find(|(k, _)| k == st)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            metrics::gauge!("yiren_jobs", "state" => st).set(n as f64);
        }
    }
    let (size, idle) = db.pool_usage();
    metrics::gauge!("yiren_db_pool_connections", "state" => "open").set(size as f64);
    metrics::gauge!("yiren_db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("yiren_db_pool_connections", "state" => "in_use")
        .set(size.saturating_sub(idle) as f64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        h.render(),
    )
}
