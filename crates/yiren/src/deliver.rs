//! `message.send`: deliver logged messages ([`yiren_core::reach`]) on their channel — email
//! through the mailer in force ([`yiren_web::mailer`]: the owner's SMTP settings, the
//! configuration's, or `.eml` files under `<data_dir>/mail/` so a fresh install works), push
//! through `yiren-providers::push` to the owner's channels or a customer's own key.

use futures::future::BoxFuture;
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::reach::{self, Content, Outcome, Prepared, SendJob};
use yiren_core::{mail, notify, Ctx};
use yiren_providers::http::HttpClient;
use yiren_providers::push::{self, PushError, PushMessage, PushTarget};
use yiren_providers::smtp::{self, Email, SendError, Sender};
use yiren_store::reach::MessageRow;
use yiren_web::mailer::{self, MailSetup, Resolved};

/// The `message.send` handler.
pub struct MessageSend {
    setup: MailSetup,
    http: HttpClient,
    base_url: String,
}

/// One job's mail session: the mailer resolved once, one SMTP connection for all its messages.
struct Session {
    resolved: Resolved,
    sender: Sender,
}

impl MessageSend {
    /// `base_url` roots the links in messages (unsubscribe, preferences).
    pub fn new(setup: MailSetup, http: HttpClient, base_url: String) -> MessageSend {
        MessageSend {
            setup,
            http,
            base_url,
        }
    }

    async fn send_mail(&self, ctx: &Ctx, m: &MessageRow, session: &mut Option<Session>) -> Outcome {
        let rendered = match mail::render(ctx, m, &self.base_url).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Gone,
            Err(e) => return retry(e.to_string()),
        };
        if session.is_none() {
            match mailer::resolve(ctx, &self.setup).await {
                Ok(resolved) => {
                    *session = Some(Session {
                        sender: Sender::new(resolved.mailer.clone()),
                        resolved,
                    })
                }
                Err(error) => return Outcome::Failed { error },
            }
        }
        let s = session.as_mut().expect("set above");
        let domain = s.resolved.from.email.domain().to_string();
        let email = Email {
            from: &s.resolved.from,
            reply_to: s.resolved.reply_to.as_ref(),
            to: &rendered.to,
            subject: &rendered.subject,
            text: &rendered.text,
            html: &rendered.html,
            message_id: format!("m{}@{domain}", m.id),
            unsubscribe_url: rendered.unsubscribe_url.as_deref(),
        };
        let msg = match smtp::build(&email) {
            Ok(msg) => msg,
            Err(error) => return Outcome::Failed { error },
        };
        // Recorded after the server's answer: a process killed in between sends the message
        // again after the restart (at least once), with the same Message-ID.
        match s.sender.send(&msg).await {
            Ok(()) => Outcome::Sent,
            Err(SendError::Transient(e)) => retry(e),
            Err(SendError::Bounce(error)) => Outcome::Bounced { error },
            Err(SendError::Permanent(error)) => Outcome::Failed { error },
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
            Content::Owner { title, body, link } => {
                let url = link.map(|l| format!("{}{l}", self.base_url.trim_end_matches('/')));
                PushMessage {
                    body: match &url {
                        Some(u) => format!("{body} {u}"),
                        None => body,
                    },
                    title,
                    url,
                }
            }
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
                }) => Outcome::Retry {
                    error: message,
                    retry_after_ms,
                },
                Err(PushError::Permanent(error)) => Outcome::Failed { error },
            },
        )
    }
}

impl MessageSend {
    /// A 公众号 template message to the customer's openid; the access token is cached and fetched
    /// again when WeChat rejects it.
    async fn send_wechat(&self, ctx: &Ctx, m: &MessageRow) -> Outcome {
        use yiren_providers::wechat::{self as wx, ApiError};
        let w = match reach::load_wechat(ctx).await {
            Ok(w) if w.configured() => w,
            Ok(_) => {
                return Outcome::Failed {
                    error: "WeChat template messages are not set up".into(),
                }
            }
            Err(e) => return retry(e.to_string()),
        };
        let openid = match m.customer_id {
            Some(c) => match reach::wechat_openid(ctx, c).await {
                Ok(Some(o)) => o,
                Ok(None) => return Outcome::Gone,
                Err(e) => return retry(e.to_string()),
            },
            None => return Outcome::Gone,
        };
        let (title, body) = match serde_json::from_str::<Content>(&m.content) {
            Ok(Content::Broadcast { broadcast_id, .. }) => {
                let Ok(b) = reach::broadcast::get(ctx, broadcast_id).await else {
                    return Outcome::Gone;
                };
                let site = match yiren_core::settings::load(ctx).await {
                    Ok(s) => s,
                    Err(e) => return retry(e.to_string()),
                };
                let l = yiren_core::Locale::parse(&m.locale).unwrap_or_default();
                let t = b.text_for(l, site.default_locale);
                let text: String = reach::broadcast::markdown_text(&t.body)
                    .chars()
                    .take(200)
                    .collect();
                (t.subject, text)
            }
            Ok(Content::Owner { title, body, .. }) => (title, body),
            _ => return Outcome::Gone,
        };
        let Some(secret) = reach::wechat_secret(ctx, &w) else {
            return Outcome::Failed {
                error: "the app secret cannot be read (was secret.key replaced?)".into(),
            };
        };
        let fields = [
            (w.title_field.as_str(), title.as_str()),
            (w.body_field.as_str(), body.as_str()),
        ];
        let mut cached = reach::wechat_cached_token(ctx, &w);
        for _ in 0..2 {
            let token = match cached.take() {
                Some(t) => t,
                None => match wx::access_token(&self.http, &w.api_base, &w.appid, &secret).await {
                    Ok((t, expires_in)) => {
                        if let Err(e) = reach::wechat_cache_token(ctx, &t, expires_in).await {
                            return retry(e.to_string());
                        }
                        t
                    }
                    Err(ApiError::Permanent(error)) => return Outcome::Failed { error },
                    Err(e) => return retry(e.to_string()),
                },
            };
            match wx::send_template(
                &self.http,
                &w.api_base,
                &token,
                &openid,
                &w.template_id,
                None,
                &fields,
            )
            .await
            {
                Ok(()) => return Outcome::Sent,
                // Expired or revoked early: fetch a new token once.
                Err(ApiError::TokenRejected(_)) => continue,
                Err(ApiError::Transient {
                    message,
                    retry_after_ms,
                }) => {
                    return Outcome::Retry {
                        error: message,
                        retry_after_ms,
                    }
                }
                Err(ApiError::Permanent(error)) => return Outcome::Failed { error },
            }
        }
        retry("WeChat kept rejecting fresh access tokens".into())
    }
}

fn retry(error: String) -> Outcome {
    Outcome::Retry {
        error,
        retry_after_ms: None,
    }
}

impl MessageSend {
    /// Deliver one message and record the outcome — with the job's completion when it is the
    /// job's last (`last_of`). `Err` only when the store failed (the job is retried; messages
    /// already recorded are skipped then).
    async fn deliver(
        &self,
        ctx: &Ctx,
        m: &MessageRow,
        session: &mut Option<Session>,
        last_of: Option<&JobContext>,
    ) -> Result<(), JobError> {
        let outcome = match m.channel.as_str() {
            "email" => self.send_mail(ctx, m, session).await,
            "push" => self.send_push(ctx, m).await?,
            "wechat" => self.send_wechat(ctx, m).await,
            other => Outcome::Failed {
                error: format!("channel {other} is not configured"),
            },
        };
        reach::finish(ctx, m, &outcome, last_of)
            .await
            .map_err(|e| JobError::transient(e.to_string()))
    }

    /// Deliver `ids` in order over one mail session. A full sending window hands the rest to a
    /// job of its own at the window's end.
    async fn run_ids(
        &self,
        ctx: &Ctx,
        job: &JobContext,
        ids: &[i64],
        session: &mut Option<Session>,
    ) -> Result<(), JobError> {
        let store_err = |e: yiren_core::DomainError| JobError::transient(e.to_string());
        for (i, id) in ids.iter().enumerate() {
            match reach::prepare(ctx, *id).await.map_err(store_err)? {
                Prepared::Skip => {}
                Prepared::Send(m) => {
                    let last_of = (i + 1 == ids.len()).then_some(job);
                    self.deliver(ctx, &m, session, last_of).await?
                }
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

impl JobHandler for MessageSend {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p: SendJob = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            let mut session = None;
            let result = self.run_ids(ctx, job, &p.ids, &mut session).await;
            if let Some(s) = session {
                s.sender.close().await;
            }
            result
        })
    }
}
