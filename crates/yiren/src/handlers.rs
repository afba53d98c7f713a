//! Job handlers that need providers (the outbound HTTP client).

use futures::future::BoxFuture;
use serde::Deserialize;
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::Ctx;
use yiren_providers::http::{HttpClient, OutboundError};

/// `diagnostic.ping`: POST `{"key": ...}` to a URL. Used to check that outbound delivery works
/// (and by the crash test as an idempotent receiver's feed).
pub struct Ping {
    /// The guarded client.
    pub http: HttpClient,
}

#[derive(Deserialize)]
struct PingPayload {
    url: String,
    key: String,
}

impl JobHandler for Ping {
    fn run<'a>(
        &'a self,
        _ctx: &'a Ctx,
        job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p: PingPayload = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            let rb = self
                .http
                .request(reqwest::Method::POST, &p.url)
                .map_err(|e| JobError::permanent(e.to_string()))?;
            let rb = rb.json(&serde_json::json!({"key": p.key, "job_id": job.id}));
            match self.http.send(rb).await {
                Ok(r) if (200..300).contains(&r.status) => Ok(()),
                Ok(r) if r.status == 429 => {
                    let after = r
                        .headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i64>().ok());
                    Err(JobError::Transient {
                        message: "rate limited (429)".into(),
                        retry_after_ms: after.map(|s| s * 1000),
                    })
                }
                Ok(r) if r.status >= 500 => {
                    Err(JobError::transient(format!("server error {}", r.status)))
                }
                Ok(r) => Err(JobError::permanent(format!("refused with {}", r.status))),
                Err(e @ (OutboundError::Forbidden(_) | OutboundError::BadUrl(_))) => {
                    Err(JobError::permanent(e.to_string()))
                }
                Err(e) => Err(JobError::transient(e.to_string())),
            }
        })
    }
}
