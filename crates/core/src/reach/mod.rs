//! Reach (触达): every message — a sign-in code, an owner notification, one recipient's copy of a
//! broadcast — goes through one durable pipeline.
//!
//! Language: a *message* is one row of the delivery log, unique per (cause, channel, recipient),
//! written in the transaction of its cause together with the `message.send` job that delivers it.
//! A *channel* is how it travels (email, push, WeChat template message). The *cause* names why it
//! exists (`code:ID`, `owner:new_customer:ID:CHANNEL`, `broadcast:ID`), so a cause can never send
//! the same recipient the same thing twice. *Suppressed* addresses are never mailed; a *sending
//! window* caps how many messages a channel sends per minute.
//!
//! Shape: [`enqueue`] (in the cause's transaction), [`prepare`] / [`finish`] around the transport
//! (the `message.send` handler in the `yiren` crate owns SMTP and HTTP), [`resend`], [`log`];
//! [`suppress`], [`topic`] (topics, subscriptions, preference tokens) and [`broadcast`].

pub mod broadcast;
pub mod suppress;
pub mod topic;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yiren_store::reach::{self as store, MessageFilter, MessageRow, NewMessage};

use crate::error::{DomainError, DomainResult};
use crate::job::{self, EnqueueOptions};
use crate::{Ctx, Locale};

/// Job kind that delivers one message.
pub const KIND: &str = "message.send";

/// Attempts before a message is given up as failed. With the backoff (5 s doubling, capped at
/// 1 h) twenty attempts span about eleven hours: a mail server down for a night loses nothing.
pub const MAX_ATTEMPTS: i64 = 20;

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Push,
    Wechat,
}

impl Channel {
    /// Every channel, in display order.
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Push, Channel::Wechat];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Push => "push",
            Channel::Wechat => "wechat",
        }
    }

    /// Parse a stored name.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Message states: queued → sent | queued again (a retry is scheduled) | failed; suppressed and
/// cancelled are decided just before sending.
pub const STATUSES: [&str; 5] = ["queued", "sent", "failed", "suppressed", "cancelled"];

/// Messages per `message.send` job when many are queued at once (a broadcast batch).
pub const SEND_CHUNK: usize = 50;

/// What a message says; rendered only when it is sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// A transactional email from a template.
    Mail {
        /// Which template, with its arguments.
        message: crate::mail::Message,
    },
    /// A notification to the owner; `link` is a path on this site the push opens (rooted at the
    /// public URL when sent).
    Owner {
        title: String,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    /// A recipient's copy of a broadcast (its text lives in the broadcast).
    Broadcast { broadcast_id: i64, topic_id: i64 },
}

/// Who receives a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipient {
    /// An email address, optionally belonging to a customer.
    Email {
        address: String,
        customer_id: Option<i64>,
    },
    /// A customer's own push key, or their WeChat openid (by channel).
    Customer(i64),
    /// One of the owner's push channels.
    Owner(String),
}

impl Recipient {
    /// The stored recipient column.
    pub fn key(&self) -> String {
        match self {
            Recipient::Email { address, .. } => address.to_lowercase(),
            Recipient::Customer(id) => format!("customer:{id}"),
            Recipient::Owner(channel) => format!("owner:{channel}"),
        }
    }

    fn customer_id(&self) -> Option<i64> {
        match self {
            Recipient::Email { customer_id, .. } => *customer_id,
            Recipient::Customer(id) => Some(*id),
            Recipient::Owner(_) => None,
        }
    }
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Why it exists; (cause, channel, recipient) is unique.
    pub cause: String,
    pub channel: Channel,
    pub recipient: Recipient,
    pub locale: Locale,
    pub content: Content,
    /// One line for the delivery log (a subject or title — never a secret).
    pub summary: String,
    /// Deliver no earlier than this (quiet hours, schedules); None = now.
    pub run_at: Option<i64>,
    /// Set for a broadcast's copies.
    pub broadcast_id: Option<i64>,
}

/// Queue a message in the caller's transaction. Returns its id, or None when the same cause
/// already queued it for this recipient on this channel.
pub async fn enqueue(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    m: &Outgoing,
) -> DomainResult<Option<i64>> {
    let Some(id) = insert(ctx, tx, m).await? else {
        return Ok(None);
    };
    send_job(ctx, tx, &[id], m.run_at, &format!("message:{id}")).await?;
    Ok(Some(id))
}

/// [`enqueue`] added to `w`, for a caller writing many rows at once: the message and its job are
/// written when `w` runs — the job only if the message was new.
pub fn enqueue_into(ctx: &Ctx, w: &mut yiren_store::Writes, m: &Outgoing) {
    let id = ctx.new_id();
    let now = ctx.now();
    let texts = Texts::of(m);
    store::insert_message_into(w, &texts.row(id, m), now);
    let payload = serde_json::to_string(&SendJob { ids: vec![id] }).unwrap_or_default();
    let unique_key = format!("message:{id}");
    let job = yiren_store::job::NewJob {
        id: ctx.new_id(),
        kind: KIND,
        payload: &payload,
        run_at: m.run_at.unwrap_or(now),
        max_attempts: MAX_ATTEMPTS,
        unique_key: Some(&unique_key),
    };
    yiren_store::job::enqueue_for_message(w, &job, now, id);
}

/// Write a message row only (no job yet): the caller queues [`send_job`]s for many at once.
pub async fn insert(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    m: &Outgoing,
) -> DomainResult<Option<i64>> {
    let id = ctx.new_id();
    let now = ctx.now();
    let texts = Texts::of(m);
    let new = store::insert_message(&mut **tx, &texts.row(id, m), now).await?;
    Ok(new.then_some(id))
}

/// The stored text columns of a message.
struct Texts {
    content: String,
    recipient: String,
    summary: String,
}

impl Texts {
    fn of(m: &Outgoing) -> Self {
        Texts {
            content: serde_json::to_string(&m.content).unwrap_or_default(),
            recipient: m.recipient.key(),
            summary: m.summary.chars().take(200).collect(),
        }
    }

    /// `m` as the row to store under `id`.
    fn row<'a>(&'a self, id: i64, m: &'a Outgoing) -> NewMessage<'a> {
        NewMessage {
            id,
            cause: &m.cause,
            channel: m.channel.as_str(),
            recipient: &self.recipient,
            customer_id: m.recipient.customer_id(),
            broadcast_id: m.broadcast_id,
            locale: m.locale.tag(),
            content: &self.content,
            summary: &self.summary,
        }
    }
}

/// Queue one `message.send` job for `ids` (sent one after another by one worker).
pub async fn send_job(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    ids: &[i64],
    run_at: Option<i64>,
    unique_key: &str,
) -> DomainResult<()> {
    job::enqueue(
        ctx,
        tx,
        KIND,
        &SendJob { ids: ids.to_vec() },
        EnqueueOptions {
            run_at,
            max_attempts: MAX_ATTEMPTS,
            unique_key: Some(unique_key.to_string()),
        },
    )
    .await?;
    Ok(())
}

/// The `message.send` payload: messages to deliver, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SendJob {
    pub ids: Vec<i64>,
}

/// What the handler should do with a message.
#[derive(Debug)]
pub enum Prepared {
    /// Deliver it.
    Send(Box<MessageRow>),
    /// Nothing to do (already sent, cancelled, suppressed, unsubscribed).
    Skip,
    /// The channel's sending window is full: try again at this time (unix ms).
    Defer(i64),
}

/// Decide whether a queued message goes now. Nothing is written before the transport is
/// touched (one commit per message, after it): a process killed mid-send sends that message
/// again on restart, with the same Message-ID.
pub async fn prepare(ctx: &Ctx, id: i64) -> DomainResult<Prepared> {
    let now = ctx.now();
    let m = match store::get_message(ctx.db.read(), id).await {
        Ok(m) => m,
        Err(yiren_store::StoreError::NotFound) => return Ok(Prepared::Skip),
        Err(e) => return Err(e.into()),
    };
    if m.status != "queued" {
        return Ok(Prepared::Skip);
    }
    let skip = |status: &'static str, why: Option<&'static str>| async move {
        store::set_message_status(
            ctx.db.write(),
            id,
            &["queued"],
            status,
            None,
            why,
            None,
            now,
        )
        .await
    };
    if m.channel == "email" && suppress::is_suppressed(ctx, &m.recipient).await? {
        skip("suppressed", None).await?;
        return Ok(Prepared::Skip);
    }
    if let Ok(Content::Broadcast {
        broadcast_id,
        topic_id,
    }) = serde_json::from_str::<Content>(&m.content)
    {
        if let Some(reason) = broadcast::still_wanted(ctx, &m, broadcast_id, topic_id).await? {
            skip("cancelled", Some(reason)).await?;
            return Ok(Prepared::Skip);
        }
    }
    let settings = load_settings(ctx).await?;
    if let Some(limit) = settings.rate_per_minute.get(&m.channel).copied() {
        if limit > 0 {
            let window = now - now.rem_euclid(60_000);
            if !store::take_send_slot(ctx.db.write(), &m.channel, window, limit as i64).await? {
                return Ok(Prepared::Defer(window + 60_000));
            }
        }
    }
    Ok(Prepared::Send(Box::new(m)))
}

/// How one delivery attempt ended.
#[derive(Debug)]
pub enum Outcome {
    Sent,
    /// Worth retrying: after `retry_after_ms` when the service said so, else with backoff.
    Retry {
        error: String,
        retry_after_ms: Option<i64>,
    },
    /// Retrying cannot help.
    Failed {
        error: String,
    },
    /// The receiving server said the mailbox does not exist: failed, and the address suppressed.
    Bounced {
        error: String,
    },
    /// Nothing to send any more (the cause disappeared, e.g. a code already used).
    Gone,
}

/// Record an attempt's outcome (one transaction, shared with whatever else is written at that
/// moment: [`crate::together`]): the status and attempt count, the suppression a bounce causes,
/// and for a retry a new job at the backoff time (unless attempts ran out). Nothing happens when
/// the message is no longer queued (already recorded). `last_of`: the job this was the last
/// message of, completed in the same transaction.
pub async fn finish(
    ctx: &Ctx,
    m: &MessageRow,
    outcome: &Outcome,
    last_of: Option<&job::JobContext>,
) -> DomainResult<()> {
    let now = ctx.now();
    let attempt = m.attempts + 1;
    let trim = |e: &str| e.chars().take(500).collect::<String>();
    let (status, error, sent_at, retry_in) = match outcome {
        Outcome::Sent => ("sent", None, Some(now), None),
        Outcome::Retry {
            error,
            retry_after_ms,
        } if attempt < MAX_ATTEMPTS => {
            let unit = (ctx.rng.u64() % 10_000) as f64 / 10_000.0;
            let delay = retry_after_ms.unwrap_or_else(|| job::backoff_ms(attempt, unit));
            ("queued", Some(trim(error)), None, Some(delay))
        }
        Outcome::Retry { error, .. } => ("failed", Some(trim(error)), None, None),
        Outcome::Failed { error } | Outcome::Bounced { error } => {
            ("failed", Some(trim(error)), None, None)
        }
        Outcome::Gone => (
            "cancelled",
            Some("nothing to send any more".to_string()),
            None,
            None,
        ),
    };
    let piece = Finish {
        id: m.id,
        recipient: m.recipient.clone(),
        status,
        attempt,
        error,
        sent_at,
        retry_at: retry_in.map(|d| now + d),
        bounced: matches!(outcome, Outcome::Bounced { .. }),
        last_of: last_of.cloned(),
        now,
    };
    let completed = crate::together::write(ctx, piece).await?;
    if let (true, Some(j)) = (completed, last_of) {
        j.committed();
    }
    Ok(())
}

/// A delivery attempt's outcome, written by [`finish`]. Its output: whether the job was
/// completed with it.
struct Finish {
    id: i64,
    recipient: String,
    status: &'static str,
    attempt: i64,
    error: Option<String>,
    sent_at: Option<i64>,
    retry_at: Option<i64>,
    bounced: bool,
    last_of: Option<job::JobContext>,
    now: i64,
}

impl crate::together::Piece for Finish {
    type Out = bool;
    const NAME: &'static str = "message.outcome";

    fn write<'a>(
        &'a self,
        ctx: &'a Ctx,
        tx: &'a mut yiren_store::Tx,
        w: &'a mut yiren_store::Writes,
    ) -> futures::future::BoxFuture<'a, DomainResult<bool>> {
        Box::pin(async move {
            let moved = store::set_message_status(
                &mut **tx,
                self.id,
                &["queued"],
                self.status,
                Some(self.attempt),
                self.error.as_deref(),
                self.sent_at,
                self.now,
            )
            .await?;
            if !moved {
                return Ok(false);
            }
            if let Some(at) = self.retry_at {
                let key = format!("message:{}:a{}", self.id, self.attempt);
                send_job(ctx, tx, &[self.id], Some(at), &key).await?;
            }
            if self.bounced {
                suppress::add_in(ctx, tx, &self.recipient, "bounce").await?;
            }
            if let Some(j) = &self.last_of {
                j.complete_into(w, self.now);
            }
            Ok(self.last_of.is_some())
        })
    }
}

/// Send a message again (from the delivery log): back to `queued` with a fresh job.
pub async fn resend(ctx: &Ctx, id: i64) -> DomainResult<MessageRow> {
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    let moved = store::set_message_status(
        &mut *tx,
        id,
        &["sent", "failed", "suppressed", "cancelled"],
        "queued",
        Some(0),
        None,
        None,
        now,
    )
    .await?;
    if !moved {
        return match store::get_message(ctx.db.read(), id).await {
            Ok(_) => Err(DomainError::Conflict {
                key: "reach.resend_in_flight",
            }),
            Err(_) => Err(DomainError::NotFound),
        };
    }
    send_job(ctx, &mut tx, &[id], None, &format!("message:{id}:{now}")).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    get(ctx, id).await
}

/// One message.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<MessageRow> {
    store::get_message(ctx.db.read(), id)
        .await
        .map_err(|e| match e {
            yiren_store::StoreError::NotFound => DomainError::NotFound,
            e => e.into(),
        })
}

/// The delivery log, newest first.
pub async fn log(
    ctx: &Ctx,
    f: &MessageFilter<'_>,
    before_id: i64,
    limit: i64,
) -> DomainResult<Vec<MessageRow>> {
    if let Some(s) = f.status {
        if !STATUSES.contains(&s) {
            return Err(DomainError::invalid("status", "error.invalid"));
        }
    }
    if let Some(c) = f.channel {
        if Channel::parse(c).is_none() {
            return Err(DomainError::invalid("channel", "error.invalid"));
        }
    }
    Ok(store::list_messages(ctx.db.read(), f, before_id, limit.clamp(1, 500)).await?)
}

const CUSTOMER_PUSH_SEAL: &str = "customer-push";

/// Save a customer's own push target (Bark, Server酱, PushDeer, …; JSON as
/// `yiren-providers::push` reads it), sealed with the server key.
pub async fn set_customer_push(
    ctx: &Ctx,
    customer_id: i64,
    kind: &str,
    target: &serde_json::Value,
) -> DomainResult<()> {
    let mut nonce = [0u8; 12];
    ctx.rng.fill(&mut nonce);
    let sealed = ctx
        .keys
        .seal(CUSTOMER_PUSH_SEAL, target.to_string().as_bytes(), nonce);
    store::put_customer_push(ctx.db.write(), customer_id, kind, &sealed, ctx.now()).await?;
    Ok(())
}

/// A customer's push target `(kind, target)`, unsealed.
pub async fn customer_push(
    ctx: &Ctx,
    customer_id: i64,
) -> DomainResult<Option<(String, serde_json::Value)>> {
    let Some((kind, sealed)) = store::get_customer_push(ctx.db.read(), customer_id).await? else {
        return Ok(None);
    };
    Ok(ctx
        .keys
        .open(CUSTOMER_PUSH_SEAL, &sealed)
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .map(|t| (kind, t)))
}

/// Remove a customer's push target (their push subscriptions stop with it).
pub async fn remove_customer_push(ctx: &Ctx, customer_id: i64) -> DomainResult<()> {
    store::delete_customer_push(ctx.db.write(), customer_id).await?;
    Ok(())
}

/// WeChat 公众号 template messages (a verified service account): the app's credentials, the
/// template broadcasts use, and which of its fields get the title and the text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct WechatTemplate {
    pub appid: String,
    pub secret_sealed: Option<String>,
    pub template_id: String,
    /// Field for the title (e.g. `first`, or `thing1` in newer templates).
    pub title_field: String,
    /// Field for the text (e.g. `keyword1`).
    pub body_field: String,
    /// API base, `https://api.weixin.qq.com` unless a proxy is in between.
    pub api_base: String,
    /// The cached access token (sealed) and when it expires (unix ms).
    pub token_sealed: Option<String>,
    pub token_expires_at: i64,
}

const WECHAT_KEY: &str = "wechat_template";
const WECHAT_SEAL: &str = "wechat-template";

impl WechatTemplate {
    /// True when template messages can be sent.
    pub fn configured(&self) -> bool {
        !self.appid.is_empty() && self.secret_sealed.is_some() && !self.template_id.is_empty()
    }
}

/// Read the 公众号 template settings.
pub async fn load_wechat(ctx: &Ctx) -> DomainResult<WechatTemplate> {
    Ok(crate::settings::value(ctx, WECHAT_KEY)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

async fn store_wechat(ctx: &Ctx, w: &WechatTemplate) -> DomainResult<()> {
    yiren_store::settings::put(
        ctx.db.write(),
        WECHAT_KEY,
        &serde_json::to_string(w).unwrap_or_default(),
        ctx.now(),
    )
    .await?;
    Ok(())
}

fn seal(ctx: &Ctx, plain: &str) -> String {
    let mut nonce = [0u8; 12];
    ctx.rng.fill(&mut nonce);
    ctx.keys.seal(WECHAT_SEAL, plain.as_bytes(), nonce)
}

fn open(ctx: &Ctx, sealed: Option<&str>) -> Option<String> {
    ctx.keys
        .open(WECHAT_SEAL, sealed?)
        .and_then(|p| String::from_utf8(p).ok())
}

/// Save the 公众号 template settings; `secret` None keeps the stored one. An empty appid turns
/// the channel off.
pub async fn save_wechat(
    ctx: &Ctx,
    appid: &str,
    secret: Option<&str>,
    template_id: &str,
    title_field: &str,
    body_field: &str,
    api_base: &str,
) -> DomainResult<WechatTemplate> {
    let word = |s: &str, field: &'static str, max: usize| -> DomainResult<String> {
        let t = s.trim();
        if t.len() > max
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(DomainError::invalid(field, "reach.wechat_invalid"));
        }
        Ok(t.to_string())
    };
    let old = load_wechat(ctx).await?;
    let appid = word(appid, "appid", 64)?;
    let api_base = match api_base.trim() {
        "" => "https://api.weixin.qq.com".to_string(),
        b if b.starts_with("https://") || b.starts_with("http://") => {
            b.trim_end_matches('/').to_string()
        }
        _ => return Err(DomainError::invalid("api_base", "reach.wechat_invalid")),
    };
    let secret_sealed = match secret.map(str::trim) {
        None | Some("") => old.secret_sealed.filter(|_| old.appid == appid),
        Some(s) if s.len() > 200 || s.chars().any(char::is_control) => {
            return Err(DomainError::invalid("secret", "reach.wechat_invalid"))
        }
        Some(s) => Some(seal(ctx, s)),
    };
    let w = WechatTemplate {
        appid,
        secret_sealed,
        template_id: word(template_id, "template_id", 128)?,
        title_field: match word(title_field, "title_field", 40)?.as_str() {
            "" => "first".into(),
            f => f.into(),
        },
        body_field: match word(body_field, "body_field", 40)?.as_str() {
            "" => "keyword1".into(),
            f => f.into(),
        },
        api_base,
        token_sealed: None,
        token_expires_at: 0,
    };
    store_wechat(ctx, &w).await?;
    Ok(w)
}

/// The app secret, unsealed.
pub fn wechat_secret(ctx: &Ctx, w: &WechatTemplate) -> Option<String> {
    open(ctx, w.secret_sealed.as_deref())
}

/// The cached access token while it has more than five minutes left.
pub fn wechat_cached_token(ctx: &Ctx, w: &WechatTemplate) -> Option<String> {
    (w.token_expires_at - 300_000 > ctx.now())
        .then(|| open(ctx, w.token_sealed.as_deref()))
        .flatten()
}

/// Cache a fresh access token (valid `expires_in` seconds), sealed.
pub async fn wechat_cache_token(ctx: &Ctx, token: &str, expires_in: i64) -> DomainResult<()> {
    let mut w = load_wechat(ctx).await?;
    w.token_sealed = Some(seal(ctx, token));
    w.token_expires_at = ctx.now() + expires_in.clamp(0, 7 * 24 * 3600) * 1000;
    store_wechat(ctx, &w).await
}

/// A customer's 公众号 openid (from WeChat sign-in), if any.
pub async fn wechat_openid(ctx: &Ctx, customer_id: i64) -> DomainResult<Option<String>> {
    Ok(
        yiren_store::customer::identities(ctx.db.read(), customer_id)
            .await?
            .into_iter()
            .find(|i| i.provider == "wechat")
            .map(|i| i.subject),
    )
}

/// Reach settings the owner controls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct ReachSettings {
    /// Messages per minute per channel (`email`, `push`, `wechat`); absent or 0 = no cap.
    pub rate_per_minute: BTreeMap<String, u32>,
}

const SETTINGS_KEY: &str = "reach";

/// Read the settings.
pub async fn load_settings(ctx: &Ctx) -> DomainResult<ReachSettings> {
    Ok(crate::settings::value(ctx, SETTINGS_KEY)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

/// Set a channel's sending rate (messages per minute; 0 = no cap, at most 100,000).
pub async fn set_rate(ctx: &Ctx, channel: Channel, per_minute: u32) -> DomainResult<()> {
    if per_minute > 100_000 {
        return Err(DomainError::invalid("rate", "reach.rate_invalid"));
    }
    let mut s = load_settings(ctx).await?;
    s.rate_per_minute
        .insert(channel.as_str().to_string(), per_minute);
    yiren_store::settings::put(
        ctx.db.write(),
        SETTINGS_KEY,
        &serde_json::to_string(&s).unwrap_or_default(),
        ctx.now(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_tagged_json_without_secrets() {
        let c = Content::Mail {
            message: crate::mail::Message::LoginCode { code_id: 7 },
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(
            s,
            r#"{"kind":"mail","message":{"template":"login_code","code_id":7}}"#
        );
        assert_eq!(serde_json::from_str::<Content>(&s).unwrap(), c);
        assert_eq!(
            Recipient::Email {
                address: "A@B.cn".into(),
                customer_id: None
            }
            .key(),
            "a@b.cn"
        );
        assert_eq!(Channel::parse("push"), Some(Channel::Push));
        assert_eq!(Channel::parse("sms"), None);
    }
}
