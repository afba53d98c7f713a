//! `message.send`: deliver one logged message ([`yiren_core::reach`]) on its channel — email over
//! SMTP (or as an `.eml` file under `<data_dir>/mail/` when no SMTP server is configured, so a
//! fresh install works and the owner can read what would have been sent), push through
//! `yiren-providers::push` to the owner's channels or a customer's own key.

use futures::future::BoxFuture;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::reach::{self, Content, Outcome, Prepared, SendJob};
use yiren_core::{mail, notify, Ctx};
use yiren_providers::http::HttpClient;
use yiren_providers::push::{self, PushError, PushMessage, PushTarget};
use yiren_store::reach::MessageRow;

use crate::config::MailConfig;

enum Transport {
    /// `smtp://` (plain, or STARTTLS with `?tls=required|opportunistic`): connections opened here
    /// with TCP_NODELAY, one per job, reused for every message the job sends.
    Smtp(SmtpTarget),
    /// `smtps://` (implicit TLS): lettre's pooled transport.
    Smtps(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// Where and how to reach an `smtp://` server (the URL rules are lettre's `from_url`).
struct SmtpTarget {
    host: String,
    port: u16,
    starttls: Option<bool>,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl SmtpTarget {
    fn parse(raw: &str) -> anyhow::Result<SmtpTarget> {
        let u = url::Url::parse(raw).map_err(|_| anyhow::anyhow!("mail.smtp_url is not a URL"))?;
        let host = u
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("mail.smtp_url has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let tls = u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let (port, starttls) = match tls.as_deref() {
            None => (u.port().unwrap_or(25), None),
            Some("required") => (u.port().unwrap_or(587), Some(true)),
            Some("opportunistic") => (u.port().unwrap_or(587), Some(false)),
            Some(other) => anyhow::bail!("mail.smtp_url: unknown tls={other}"),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| anyhow::anyhow!("mail.smtp_url: credentials are not UTF-8"))
        };
        let credentials = match u.password() {
            Some(p) => Some(Credentials::new(decode(u.username())?, decode(p)?)),
            None => None,
        };
        let hello = match u.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_string()),
        };
        Ok(SmtpTarget {
            host,
            port,
            starttls,
            credentials,
            hello,
        })
    }

    /// Connect, say EHLO, upgrade to TLS when asked, authenticate. A refusal is the outcome
    /// every message of the job gets.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Outcome> {
        let timeout = std::time::Duration::from_secs(30);
        let tcp = match tokio::time::timeout(
            timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(retry(format!("SMTP: cannot connect: {e}"))),
            Err(_) => return Err(retry("SMTP: connect timed out".into())),
        };
        // lettre leaves Nagle on: its body and final dot are two writes, and the server's
        // delayed ACK would cost ~40 ms per message.
        let _ = tcp.set_nodelay(true);
        let step = async {
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
            if let Some(required) = self.starttls {
                if required || conn.can_starttls() {
                    let params = TlsParameters::new(self.host.clone())?;
                    conn.starttls(params, &self.hello).await?;
                }
            }
            if let Some(c) = &self.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], c).await?;
            }
            Ok::<_, lettre::transport::smtp::Error>(conn)
        };
        match tokio::time::timeout(timeout, step).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(smtp_outcome(e)),
            Err(_) => Err(retry("SMTP: the server stopped answering".into())),
        }
    }
}

/// Classify an SMTP error.
fn smtp_outcome(e: lettre::transport::smtp::Error) -> Outcome {
    if e.is_permanent() && is_bounce(&e) {
        // The receiving server says the mailbox does not exist.
        Outcome::Bounced {
            error: format!("SMTP refused: {e}"),
        }
    } else if e.is_permanent() || e.is_client() {
        // Other 5xx answers, and client-side refusals (no AUTH mechanism the credentials pass,
        // a bad address, TLS the server does not offer): a retry will not fix them.
        Outcome::Failed {
            error: format!("SMTP refused: {e}"),
        }
    } else {
        retry(format!("SMTP: {e}"))
    }
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
        let url = cfg.smtp_url.expose();
        let transport = if url.is_empty() {
            std::fs::create_dir_all(&mail_dir)?;
            Transport::Files(AsyncFileTransport::new(mail_dir))
        } else if url.starts_with("smtp://") {
            Transport::Smtp(SmtpTarget::parse(url)?)
        } else {
            Transport::Smtps(
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

    async fn send_mail(
        &self,
        ctx: &Ctx,
        m: &MessageRow,
        session: &mut Option<AsyncSmtpConnection>,
    ) -> Outcome {
        let rendered = match mail::render(ctx, m, &self.base_url).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Gone,
            Err(e) => return retry(e.to_string()),
        };
        let msg = match build(&self.from, m.id, &rendered) {
            Ok(msg) => msg,
            Err(error) => return Outcome::Failed { error },
        };
        match &self.transport {
            Transport::Files(t) => match t.send(msg).await {
                Ok(_) => Outcome::Sent,
                Err(e) => retry(format!("cannot write mail file: {e}")),
            },
            Transport::Smtps(t) => match t.send(msg).await {
                Ok(_) => Outcome::Sent,
                Err(e) => smtp_outcome(e),
            },
            Transport::Smtp(target) => {
                if session.as_ref().is_some_and(|c| c.has_broken()) {
                    *session = None;
                }
                if session.is_none() {
                    *session = Some(match target.connect().await {
                        Ok(c) => c,
                        Err(o) => return o,
                    });
                }
                let conn = session.as_mut().expect("connected above");
                let sent = tokio::time::timeout(
                    std::time::Duration::from_secs(60),
                    conn.send(msg.envelope(), &msg.formatted()),
                )
                .await;
                match sent {
                    Ok(Ok(_)) => Outcome::Sent,
                    Ok(Err(e)) => {
                        // After a refusal the session may be mid-transaction: start afresh.
                        if let Some(mut c) = session.take() {
                            c.abort().await;
                        }
                        smtp_outcome(e)
                    }
                    Err(_) => {
                        *session = None;
                        retry("SMTP: the server stopped answering".into())
                    }
                }
            }
        }
    }

    async fn send_push(&self, ctx: &Ctx, m: &MessageRow) -> Result<Outcome, JobError> {
        let Ok(content) = serde_json::from_str::<Content>(&m.content) else {
            return Ok(Outcome::Failed {
                error: "unreadable message content".into(),
            });
        };
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

fn retry(error: String) -> Outcome {
    Outcome::Retry {
        error,
        retry_after_ms: None,
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

impl MessageSend {
    /// Deliver one message and record the outcome. `Err` only when the store failed (the job is
    /// retried; messages already recorded are skipped then).
    async fn deliver(
        &self,
        ctx: &Ctx,
        m: &MessageRow,
        session: &mut Option<AsyncSmtpConnection>,
    ) -> Result<(), JobError> {
        let outcome = match m.channel.as_str() {
            "email" => self.send_mail(ctx, m, session).await,
            "push" => self.send_push(ctx, m).await?,
            other => Outcome::Failed {
                error: format!("channel {other} is not configured"),
            },
        };
        reach::finish(ctx, m, &outcome)
            .await
            .map_err(|e| JobError::transient(e.to_string()))
    }
}

impl JobHandler for MessageSend {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p: SendJob = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            let mut session = None;
            let result = self.run_ids(ctx, &p.ids, &mut session).await;
            if let Some(mut c) = session {
                let _ = c.quit().await;
            }
            result
        })
    }
}

impl MessageSend {
    /// Deliver `ids` in order over one SMTP session. A full sending window hands the rest to a
    /// job of its own at the window's end.
    async fn run_ids(
        &self,
        ctx: &Ctx,
        ids: &[i64],
        session: &mut Option<AsyncSmtpConnection>,
    ) -> Result<(), JobError> {
        let store_err = |e: yiren_core::DomainError| JobError::transient(e.to_string());
        for (i, id) in ids.iter().enumerate() {
            match reach::prepare(ctx, *id).await.map_err(store_err)? {
                Prepared::Skip => {}
                Prepared::Send(m) => self.deliver(ctx, &m, session).await?,
                Prepared::Defer(until_ms) if i == 0 => {
                    return Err(JobError::Defer {
                        until_ms,
                        reason: "sending window full".into(),
                    })
                }
                Prepared::Defer(until_ms) => {
                    let rest = &ids[i..];
                    let mut tx = ctx
                        .db
                        .begin()
                        .await
                        .map_err(|e| JobError::transient(e.to_string()))?;
                    let key = format!("message:{}:w{until_ms}", rest[0]);
                    reach::send_job(ctx, &mut tx, rest, Some(until_ms), &key)
                        .await
                        .map_err(store_err)?;
                    tx.commit()
                        .await
                        .map_err(|e| JobError::transient(e.to_string()))?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
