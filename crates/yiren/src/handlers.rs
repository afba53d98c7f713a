//! Job handlers that need providers (the outbound HTTP client).

use futures::future::BoxFuture;
use serde::Deserialize;
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::Ctx;
use yiren_providers::files::{Files, FilesError};
use yiren_providers::http::{HttpClient, OutboundError};
use yiren_providers::push::webhook_signature;

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
                Ok(r) if r.status == 429 => Err(JobError::Transient {
                    message: "rate limited (429)".into(),
                    retry_after_ms: r.retry_after_ms(),
                }),
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

#[derive(Deserialize)]
struct MediaPayload {
    media_id: i64,
    #[serde(default)]
    url: String,
}

fn media_payload(job: &JobContext) -> Result<MediaPayload, JobError> {
    serde_json::from_str(&job.payload).map_err(|e| JobError::permanent(format!("bad payload: {e}")))
}

/// A media item that is gone (deleted meanwhile) or already past this step needs nothing.
async fn media_at(
    ctx: &Ctx,
    id: i64,
    status: &str,
) -> Result<Option<yiren_core::media::Media>, JobError> {
    match yiren_core::media::get(ctx, id).await {
        Ok(m) if m.row.status == status => Ok(Some(m)),
        Ok(_) | Err(yiren_core::DomainError::NotFound) => Ok(None),
        Err(e) => Err(JobError::transient(e.to_string())),
    }
}

fn files_err(e: FilesError) -> JobError {
    JobError::transient(format!("file store: {e}"))
}

/// `media.resize`: make an image's sizes (thumbnail, medium, large; JPEG or PNG, and WebP when
/// smaller) from its original, write them to the file store, then mark the item ready.
pub struct Resize {
    /// The file store.
    pub files: Files,
}

impl JobHandler for Resize {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p = media_payload(job)?;
            let Some(m) = media_at(ctx, p.media_id, "processing").await? else {
                return Ok(());
            };
            let original = match self.files.get(&m.row.storage_key, None).await {
                Ok(r) => r.bytes,
                Err(FilesError::NotFound) => {
                    let _ = yiren_core::media::failed(ctx, m.row.id, "original file missing").await;
                    return Ok(());
                }
                Err(e) => return Err(files_err(e)),
            };
            let (pid, mid) = (m.row.product_id, m.row.id);
            let rendered =
                tokio::task::spawn_blocking(move || yiren_core::media::render(&original, pid, mid))
                    .await
                    .map_err(|e| JobError::transient(e.to_string()))?;
            let (w, h, out) = match rendered {
                Ok(r) => r,
                Err(e) => {
                    yiren_core::media::failed(ctx, mid, &e)
                        .await
                        .map_err(|e| JobError::transient(e.to_string()))?;
                    return Ok(());
                }
            };
            let mut sizes = Vec::with_capacity(out.len());
            for r in out {
                self.files
                    .put(&r.file.key, r.data)
                    .await
                    .map_err(files_err)?;
                sizes.push(r.file);
            }
            yiren_core::media::processed(ctx, mid, w, h, &sizes)
                .await
                .map_err(|e| JobError::transient(e.to_string()))
        })
    }
}

/// `media.fetch`: download an image named by URL (an import's `Image Src`, the API's `src`)
/// through the guarded client — public addresses only, at most 5 redirects each checked again,
/// at most the image size limit — check it like an upload, store it, and queue its sizes.
pub struct Fetch {
    /// The file store.
    pub files: Files,
    /// The guarded client.
    pub http: HttpClient,
}

impl Fetch {
    async fn download(&self, url: &str) -> Result<Vec<u8>, JobError> {
        let mut url = url.to_string();
        for _ in 0..=5 {
            let rb = self
                .http
                .request(reqwest::Method::GET, &url)
                .map_err(|e| JobError::permanent(e.to_string()))?;
            let r = match self
                .http
                .send_capped(rb, yiren_core::media::MAX_IMAGE_BYTES)
                .await
            {
                Ok(r) => r,
                Err(
                    e @ (OutboundError::Forbidden(_)
                    | OutboundError::BadUrl(_)
                    | OutboundError::TooLarge(_)),
                ) => return Err(JobError::permanent(e.to_string())),
                Err(e) => return Err(JobError::transient(e.to_string())),
            };
            match r.status {
                200 => return Ok(r.body),
                301 | 302 | 303 | 307 | 308 => {
                    let next = r
                        .headers
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|l| url::Url::parse(&url).ok()?.join(l).ok())
                        .ok_or_else(|| JobError::permanent("redirect without a location"))?;
                    url = next.to_string();
                }
                429 | 500..=599 => {
                    return Err(JobError::transient(format!("server answered {}", r.status)))
                }
                s => return Err(JobError::permanent(format!("server answered {s}"))),
            }
        }
        Err(JobError::permanent("too many redirects"))
    }
}

impl JobHandler for Fetch {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p = media_payload(job)?;
            let Some(m) = media_at(ctx, p.media_id, "fetching").await? else {
                return Ok(());
            };
            let fail = |msg: String| async move {
                yiren_core::media::failed(ctx, m.row.id, &msg)
                    .await
                    .map_err(|e| JobError::transient(e.to_string()))?;
                Err::<(), _>(JobError::permanent(msg))
            };
            let body = match self.download(&p.url).await {
                Ok(b) => b,
                Err(JobError::Permanent { message }) => return fail(message).await,
                Err(e) if job.attempt >= job.max_attempts => return fail(e.to_string()).await,
                Err(e) => return Err(e),
            };
            let f = match yiren_core::media::inspect(&body) {
                Ok(f) if f.format.is_image() => f,
                _ => return fail("not an accepted image".into()).await,
            };
            let key = yiren_core::media::original_key(m.row.product_id, m.row.id, f.format);
            self.files.put(&key, body).await.map_err(files_err)?;
            yiren_core::media::fetched(ctx, m.row.id, &f)
                .await
                .map_err(|e| JobError::transient(e.to_string()))
        })
    }
}

#[derive(Deserialize)]
struct DeletePayload {
    keys: Vec<String>,
}

/// `media.delete`: remove the files of deleted media (missing files are fine).
pub struct DeleteFiles {
    /// The file store.
    pub files: Files,
}

impl JobHandler for DeleteFiles {
    fn run<'a>(
        &'a self,
        _ctx: &'a Ctx,
        job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p: DeletePayload = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            for k in &p.keys {
                match self.files.delete(k).await {
                    Ok(()) | Err(FilesError::BadKey) => {}
                    Err(e) => return Err(files_err(e)),
                }
            }
            Ok(())
        })
    }
}

/// `apps.notify`: post an app order's news to the app's webhook URL, signed with the app's secret
/// (`Yiren-Signature: t=…,v1=…`). A 2xx is delivered; anything else is tried again on the
/// backoff schedule (a 4xx too: the app may be mid-deploy), then the dead list shows it with a
/// retry button. The body reflects the order as it stands when sent.
pub struct AppNotify {
    /// The guarded client.
    pub http: HttpClient,
}

impl JobHandler for AppNotify {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let hook = match yiren_core::checkout_app::webhook(ctx, &job.payload).await {
                Ok(Some(h)) => h,
                // No webhook URL: nothing to send.
                Ok(None) => return Ok(()),
                Err(yiren_core::DomainError::NotFound) => {
                    return Err(JobError::permanent("the order or app is gone"))
                }
                Err(e) => return Err(JobError::transient(e.to_string())),
            };
            let rb = self
                .http
                .request(reqwest::Method::POST, &hook.url)
                .map_err(|e| JobError::permanent(e.to_string()))?
                .header("content-type", "application/json")
                .header(
                    "yiren-signature",
                    // The shop's own webhook signature, under the app's secret.
                    webhook_signature(&hook.secret, hook.sent_at, hook.body.as_bytes()),
                )
                .header("yiren-event-id", &hook.event_id)
                .body(hook.body);
            match self.http.send(rb).await {
                Ok(r) if (200..300).contains(&r.status) => Ok(()),
                Ok(r) => Err(JobError::Transient {
                    message: format!("the app answered {}", r.status),
                    retry_after_ms: r.retry_after_ms(),
                }),
                Err(e @ (OutboundError::Forbidden(_) | OutboundError::BadUrl(_))) => {
                    Err(JobError::permanent(e.to_string()))
                }
                Err(e) => Err(JobError::transient(e.to_string())),
            }
        })
    }
}
