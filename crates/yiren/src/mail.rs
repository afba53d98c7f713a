//! `mail.send`: render a queued [`yiren_core::mail::Outgoing`] and deliver it over SMTP, or write it
//! as an `.eml` file under `<data_dir>/mail/` when no SMTP server is configured (so a fresh
//! install works, and the owner can read what would have been sent).

use futures::future::BoxFuture;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::mail::{self, Outgoing};
use yiren_core::Ctx;

use crate::config::MailConfig;

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// The `mail.send` handler.
pub struct MailSend {
    transport: Transport,
    from: Mailbox,
}

impl MailSend {
    /// Build from the configuration; `mail_dir` is used when `smtp_url` is empty.
    pub fn new(cfg: &MailConfig, mail_dir: std::path::PathBuf) -> anyhow::Result<MailSend> {
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
        Ok(MailSend { transport, from })
    }
}

fn build(from: &Mailbox, r: &mail::Rendered) -> Result<Message, JobError> {
    let to: Mailbox =
        r.to.parse()
            .map_err(|e| JobError::permanent(format!("bad recipient: {e}")))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject.clone())
        // Providers score mail without these as spam.
        .date_now()
        .message_id(None)
        .multipart(
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
        .map_err(|e| JobError::permanent(format!("cannot build message: {e}")))
}

impl JobHandler for MailSend {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let out: Outgoing = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            let Some(rendered) = mail::render(ctx, &out)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?
            else {
                tracing::info!(job = job.id, "nothing to send any more");
                return Ok(());
            };
            let msg = build(&self.from, &rendered)?;
            match &self.transport {
                Transport::Files(t) => t
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| JobError::transient(format!("cannot write mail file: {e}"))),
                Transport::Smtp(t) => match t.send(msg).await {
                    Ok(_) => Ok(()),
                    // 5xx answers, and client-side refusals (no AUTH mechanism the credentials
                    // pass, a bad address): configuration problems a retry will not fix.
                    Err(e) if e.is_permanent() || e.is_client() => {
                        Err(JobError::permanent(format!("SMTP refused: {e}")))
                    }
                    Err(e) => Err(JobError::transient(format!("SMTP: {e}"))),
                },
            }
        })
    }
}
