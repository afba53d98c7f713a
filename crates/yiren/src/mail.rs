//! `message.send`: deliver one logged message ([`yiren_core::reach`]) on its channel — email over
//! SMTP (or as an `.eml` file under `<data_dir>/mail/` when no SMTP server is configured, so a
//! fresh install works and the owner can read what would have been sent), push through
//! `yiren-providers::push` to the owner's channels or a customer's own key.

use futures::future::BoxFuture;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::reach::{self, Content, Outcome, Prepared, SendJob};
use yiren_core::{mail, notify, Ctx};
use yiren_providers::http::HttpClient;
use yiren_providers::push::{self, PushError, PushMessage, PushTarget};
use yiren_store::reach::MessageRow;

use crate::config::MailConfig;

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// The `message.send` handler.
pub struct MessageSend {
    transport: Transport,
    from: Mailbox,
    http: HttpClient,
    base_url: String,
}

impl MessageSend {
    /// Build from the configuration; `mail_dir` is used when `smtp_url` is empty; `base_url`
    /// roots the links in messages (unsubscribe, preferences).
    pub fn new(
        cfg: &MailConfig,
        mail_dir: std::path::PathBuf,
        http: HttpClient,
        base_url: String,
    ) -> anyhow::Result<MessageSend> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from {:?} is not an address: {e}", cfg.from))?;
        let transport = if cfg.smtp_url.is_empty() {
            std::fs::create_dir_all(&mail_dir)?;
            Transport::Files(AsyncFileTransport::new(mail_dir))
        } else {
            Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(cfg.smtp_url.expose())
                    .map_err(|_| anyhow::anyhow!("mail.smtp_url is not a valid SMTP URL"))?
                    // A server that stops answering must not hold a worker: the job is retried.
                    .timeout(Some(std::time::Duration::from_secs(30)))
                    .build(),
            )
        };
        Ok(MessageSend {
            transport,
            from,
            http,
            base_url,
        })
    }

    async fn send_mail(&self, ctx: &Ctx, m: &MessageRow) -> Outcome {
        let rendered = match mail::render(ctx, m, &self.base_url).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Gone,
            Err(e) => return retry(e.to_string(), false),
        };
        let msg = match build(&self.from, m.id, &rendered) {
            Ok(msg) => msg,
            Err(error) => return Outcome::Failed { error },
        };
        match &self.transport {
            Transport::Files(t) => match t.send(msg).await {
                Ok(_) => Outcome::Sent,
                Err(e) => retry(format!("cannot write mail file: {e}"), false),
            },
            Transport::Smtp(t) => match t.send(msg).await {
                Ok(_) => Outcome::Sent,
                // The receiving server says the mailbox does not exist.
                Err(e) if e.is_permanent() && is_bounce(&e) => Outcome::Bounced {
                    error: format!("SMTP refused: {e}"),
                },
                // Other 5xx answers, and client-side refusals (no AUTH mechanism the credentials
                // pass, a bad address): problems a retry will not fix.
                Err(e) if e.is_permanent() || e.is_client() => Outcome::Failed {
                    error: format!("SMTP refused: {e}"),
                },
                Err(e) => retry(format!("SMTP: {e}"), false),
            },
        }
    }

    async fn send_push(&self, ctx: &Ctx, m: &MessageRow) -> Result<Outcome, JobError> {
        let content: Content = serde_json::from_str(&m.content)
            .map_err(|e| JobError::permanent(format!("bad message content: {e}")))?;
        let target = if let Some(channel_id) = m.recipient.strip_prefix("owner:") {
            let settings = notify::load(ctx)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?;
            let Some(channel) = settings.channels.iter().find(|c| c.id == channel_id) else {
                return Ok(Outcome::Gone);
            };
            notify::target(ctx, channel)
        } else if let Some(customer) = m.customer_id {
            reach::customer_push(ctx, customer)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?
                .map(|(_, t)| t)
        } else {
            None
        };
        let Some(target) = target.and_then(|v| serde_json::from_value::<PushTarget>(v).ok()) else {
            return Ok(Outcome::Failed {
                error: "no push target (removed, or secret.key replaced)".into(),
            });
        };
        let msg = match content {
            Content::Owner { title, body } => PushMessage {
                title,
                body,
                url: None,
            },
            Content::Broadcast { broadcast_id, .. } => {
                let site = yiren_core::settings::load(ctx)
                    .await
                    .map_err(|e| JobError::transient(e.to_string()))?;
                let b = match reach::broadcast::get(ctx, broadcast_id).await {
                    Ok(b) => b,
                    Err(_) => return Ok(Outcome::Gone),
                };
                let l = yiren_core::Locale::parse(&m.locale).unwrap_or_default();
                let text = b.text_for(l, site.default_locale);
                PushMessage {
                    title: text.subject,
                    body: reach::broadcast::markdown_text(&text.body)
                        .chars()
                        .take(1000)
                        .collect(),
                    url: None,
                }
            }
            Content::Mail { .. } => return Ok(Outcome::Gone),
        };
        Ok(
            match push::send(&self.http, &target, &msg, ctx.now()).await {
                Ok(()) => Outcome::Sent,
                Err(PushError::Transient {
                    message,
                    retry_after_ms,
                }) => {
                    return Err(JobError::Transient {
                        message,
                        retry_after_ms,
                    })
                }
                Err(PushError::Permanent(error)) => Outcome::Failed { error },
            },
        )
    }
}

fn retry(error: String, last_attempt: bool) -> Outcome {
    Outcome::Retry {
        error,
        last_attempt,
    }
}

/// 550 (no such mailbox), 551 (not local), 553 (mailbox name not allowed).
fn is_bounce(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|c| {
        let s = c.to_string();
        s == "550" || s == "551" || s == "553"
    })
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Build the MIME message: From, To, Subject, Date, a Message-ID that stays the same when the
/// message is retried (so a receiving system can tell a retry from a second message), the
/// unsubscribe headers for bulk mail, and a text + HTML alternative.
pub fn build(from: &Mailbox, message_id: i64, r: &mail::Rendered) -> Result<Message, String> {
    let to: Mailbox = r.to.parse().map_err(|e| format!("bad recipient: {e}"))?;
    let domain = from.email.domain().to_string();
    let mut b = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject.clone())
        // Providers score mail without these as spam.
        .date_now()
        .message_id(Some(format!("<m{message_id}@{domain}>")));
    if let Some(url) = &r.unsubscribe_url {
        // RFC 2369 + RFC 8058: one-click unsubscribe by POST to the URL.
        b = b
            .raw_header(header("List-Unsubscribe", format!("<{url}>")))
            .raw_header(header(
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    b.multipart(
        MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(r.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(r.html.clone()),
            ),
    )
    .map_err(|e| format!("cannot build message: {e}"))
}

impl JobHandler for MessageSend {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p: SendJob = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            let m = match reach::prepare(ctx, p.message_id, job.attempt).await {
                Ok(Prepared::Send(m)) => m,
                Ok(Prepared::Skip) => return Ok(()),
                Ok(Prepared::Defer(until_ms)) => {
                    return Err(JobError::Defer {
                        until_ms,
                        reason: "sending window full".into(),
                    })
                }
                Err(e) => return Err(JobError::transient(e.to_string())),
            };
            let last_attempt = job.attempt >= job.max_attempts;
            let (outcome, job_result) = match m.channel.as_str() {
                "email" => (self.send_mail(ctx, &m).await, Ok(())),
                "push" => match self.send_push(ctx, &m).await {
                    Ok(o) => (o, Ok(())),
                    Err(e) => (retry(e.to_string(), false), Err(e)),
                },
                other => (
                    Outcome::Failed {
                        error: format!("channel {other} is not configured"),
                    },
                    Ok(()),
                ),
            };
            let (outcome, job_result) = match outcome {
                Outcome::Retry { error, .. } => (
                    retry(error.clone(), last_attempt),
                    job_result.and(Err(JobError::transient(error))),
                ),
                o => (o, job_result),
            };
            reach::finish(ctx, &m, &outcome)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?;
            job_result
        })
    }
}
