//! Broadcasts: one message written in Markdown, sent to everyone subscribed to a topic (optionally
//! only customers carrying a tag) on the channels the owner picks.
//!
//! Sending is a chain of `broadcast.run` jobs. Each handles one batch of recipients in one
//! transaction — a message row and its `message.send` job per (recipient, channel), the audience
//! cursor moved past the batch, the next batch's job — so a crash loses nothing and repeats
//! nothing: the batch either committed whole or runs again whole, and the unique
//! (cause, channel, recipient) key turns any repeat into a no-op. Memory does not grow with the
//! list: only one batch is ever loaded.

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use yiren_store::reach::{self as store, BroadcastRow, MessageRow};

use super::{Channel, Content, Outgoing, Recipient};
use crate::error::{DomainError, DomainResult};
use crate::job::{self, EnqueueOptions, JobContext, JobError, JobHandler};
use crate::{Ctx, Locale};

/// Job kind that queues one batch of a broadcast.
pub const KIND: &str = "broadcast.run";

/// Recipients per batch.
pub const BATCH: i64 = 500;

/// Broadcast states.
pub const STATUSES: [&str; 5] = ["draft", "scheduled", "sending", "sent", "cancelled"];

/// A subject and a Markdown body in one language.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Text {
    pub subject: String,
    pub body: String,
}

/// What the owner writes: audience, channels, and the text per language (BCP 47 tag → text).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Draft {
    pub topic_id: i64,
    pub tag: Option<String>,
    pub channels: Vec<Channel>,
    pub texts: BTreeMap<String, Text>,
}

/// A broadcast with its parsed fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    pub row: BroadcastRow,
    pub channels: Vec<Channel>,
    pub texts: BTreeMap<String, Text>,
}

impl Broadcast {
    fn from_row(row: BroadcastRow) -> Broadcast {
        let channels = row.channels.split(',').filter_map(Channel::parse).collect();
        let texts = serde_json::from_str(&row.content).unwrap_or_default();
        Broadcast {
            row,
            channels,
            texts,
        }
    }

    /// The text for `l`, falling back to `fallback`, then to any text there is.
    pub fn text_for(&self, l: Locale, fallback: Locale) -> Text {
        self.texts
            .get(l.tag())
            .or_else(|| self.texts.get(fallback.tag()))
            .or_else(|| self.texts.values().next())
            .cloned()
            .unwrap_or_default()
    }
}

fn validate(d: &Draft) -> DomainResult<(String, String, Option<String>)> {
    let mut channels: Vec<Channel> = d.channels.clone();
    channels.sort();
    channels.dedup();
    if channels.is_empty() {
        return Err(DomainError::invalid("channels", "reach.channels_invalid"));
    }
    let mut texts = BTreeMap::new();
    for (tag, t) in &d.texts {
        let Some(l) = Locale::parse(tag) else {
            return Err(DomainError::invalid("locale", "reach.locale_invalid"));
        };
        let subject = t.subject.trim();
        let body = t.body.trim();
        if subject.is_empty() && body.is_empty() {
            continue;
        }
        // A subject is one header line: line breaks and other controls are refused, not folded.
        if subject.is_empty()
            || subject.chars().count() > 200
            || subject
                .chars()
                .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
        {
            return Err(DomainError::invalid("subject", "reach.subject_invalid"));
        }
        if body.is_empty() || body.len() > 200_000 || body.contains('\0') {
            return Err(DomainError::invalid("body", "reach.body_invalid"));
        }
        texts.insert(
            l.tag().to_string(),
            Text {
                subject: subject.to_string(),
                body: body.to_string(),
            },
        );
    }
    if texts.is_empty() {
        return Err(DomainError::invalid("subject", "reach.subject_invalid"));
    }
    let tag = match d.tag.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) if t.chars().count() <= 40 && !t.chars().any(char::is_control) => {
            Some(t.to_string())
        }
        Some(_) => return Err(DomainError::invalid("tag", "reach.tag_invalid")),
    };
    let channels = channels
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
    Ok((
        channels,
        serde_json::to_string(&texts).unwrap_or_default(),
        tag,
    ))
}

fn not_found(e: yiren_store::StoreError) -> DomainError {
    match e {
        yiren_store::StoreError::NotFound => DomainError::NotFound,
        e => e.into(),
    }
}

/// Save a new draft.
pub async fn create(ctx: &Ctx, d: &Draft) -> DomainResult<Broadcast> {
    let (channels, content, tag) = validate(d)?;
    super::topic::get(ctx, d.topic_id).await?;
    let id = ctx.new_id();
    let now = ctx.now();
    let row = BroadcastRow {
        id,
        topic_id: d.topic_id,
        tag,
        channels,
        content,
        status: "draft".into(),
        scheduled_at: None,
        after_customer: 0,
        recipients: 0,
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    store::insert_broadcast(ctx.db.write(), &row).await?;
    get(ctx, id).await
}

/// Change a draft; a broadcast that was scheduled or sent cannot change.
pub async fn update(ctx: &Ctx, id: i64, d: &Draft) -> DomainResult<Broadcast> {
    let (channels, content, tag) = validate(d)?;
    super::topic::get(ctx, d.topic_id).await?;
    let mut row = get(ctx, id).await?.row;
    row.topic_id = d.topic_id;
    row.tag = tag;
    row.channels = channels;
    row.content = content;
    if !store::update_draft(ctx.db.write(), &row, ctx.now()).await? {
        return Err(DomainError::Conflict {
            key: "reach.not_a_draft",
        });
    }
    get(ctx, id).await
}

/// Delete a draft.
pub async fn delete(ctx: &Ctx, id: i64) -> DomainResult<()> {
    get(ctx, id).await?;
    store::delete_draft(ctx.db.write(), id)
        .await
        .map_err(|_| DomainError::Conflict {
            key: "reach.not_a_draft",
        })
}

/// One broadcast.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<Broadcast> {
    Ok(Broadcast::from_row(
        store::get_broadcast(ctx.db.read(), id)
            .await
            .map_err(not_found)?,
    ))
}

/// Broadcasts, newest first.
pub async fn list(ctx: &Ctx, before_id: i64, limit: i64) -> DomainResult<Vec<Broadcast>> {
    Ok(
        store::list_broadcasts(ctx.db.read(), before_id, limit.clamp(1, 200))
            .await?
            .into_iter()
            .map(Broadcast::from_row)
            .collect(),
    )
}

/// Send a draft now (`at` None or not in the future) or schedule it.
pub async fn send(ctx: &Ctx, id: i64, at: Option<i64>) -> DomainResult<Broadcast> {
    let now = ctx.now();
    get(ctx, id).await?;
    let at = at.filter(|t| *t > now);
    let status = if at.is_some() { "scheduled" } else { "sending" };
    let mut tx = ctx.db.begin().await?;
    if !store::set_broadcast_status(&mut *tx, id, &["draft"], status, at, now).await? {
        return Err(DomainError::Conflict {
            key: "reach.not_a_draft",
        });
    }
    run_job(ctx, &mut tx, id, 0, at).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    get(ctx, id).await
}

/// Stop a broadcast: not yet queued recipients are never queued, queued copies are cancelled.
/// Copies already sent stay sent.
pub async fn cancel(ctx: &Ctx, id: i64) -> DomainResult<Broadcast> {
    let now = ctx.now();
    get(ctx, id).await?;
    let mut tx = ctx.db.begin().await?;
    if !store::set_broadcast_status(
        &mut *tx,
        id,
        &["draft", "scheduled", "sending", "sent"],
        "cancelled",
        None,
        now,
    )
    .await?
    {
        return Err(DomainError::Conflict {
            key: "reach.already_cancelled",
        });
    }
    store::cancel_broadcast_messages(&mut *tx, id, now).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    get(ctx, id).await
}

/// Where a broadcast stands: its copies by status (every status present, zero included).
pub async fn counts(ctx: &Ctx, id: i64) -> DomainResult<Vec<(&'static str, i64)>> {
    let rows = store::broadcast_counts(ctx.db.read(), id).await?;
    Ok(super::STATUSES
        .iter()
        .map(|s| {
            (
                *s,
                rows.iter()
                    .find(|(k, _)| k == s)
                    .map(|(_, n)| *n)
                    .unwrap_or(0),
            )
        })
        .collect())
}

/// Whether a queued copy should still go; Some(reason) when not.
pub(super) async fn still_wanted(
    ctx: &Ctx,
    m: &MessageRow,
    broadcast_id: i64,
    topic_id: i64,
) -> DomainResult<Option<&'static str>> {
    match store::get_broadcast(ctx.db.read(), broadcast_id).await {
        Ok(b) if b.status == "cancelled" => return Ok(Some("broadcast cancelled")),
        Ok(_) => {}
        Err(yiren_store::StoreError::NotFound) => return Ok(Some("broadcast deleted")),
        Err(e) => return Err(e.into()),
    }
    let Some(customer_id) = m.customer_id else {
        return Ok(Some("customer deleted"));
    };
    if !store::is_subscribed(ctx.db.read(), customer_id, topic_id, &m.channel).await? {
        return Ok(Some("unsubscribed"));
    }
    Ok(None)
}

/// The `broadcast.run` payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunJob {
    pub broadcast_id: i64,
}

/// Queue the `broadcast.run` job for the batch after customer `after` (one per position).
async fn run_job(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    id: i64,
    after: i64,
    run_at: Option<i64>,
) -> DomainResult<()> {
    job::enqueue(
        ctx,
        tx,
        KIND,
        &RunJob { broadcast_id: id },
        EnqueueOptions {
            run_at,
            max_attempts: 20,
            unique_key: Some(format!("broadcast:{id}:{after}")),
        },
    )
    .await?;
    Ok(())
}

/// Queue the next batch. Returns how many messages it queued and whether the audience is done.
pub async fn run_batch(ctx: &Ctx, id: i64) -> DomainResult<(u64, bool)> {
    let now = ctx.now();
    let b = get(ctx, id).await?;
    if b.row.status == "scheduled" {
        store::set_broadcast_status(ctx.db.write(), id, &["scheduled"], "sending", None, now)
            .await?;
    } else if b.row.status != "sending" {
        return Ok((0, true));
    }
    let site = crate::settings::load(ctx).await?;
    let mut tx = ctx.db.begin().await?;
    let after = b.row.after_customer;
    let Some(end) = store::audience_page_end(&mut *tx, b.row.topic_id, after, BATCH).await? else {
        store::set_broadcast_status(&mut *tx, id, &["sending"], "sent", None, now).await?;
        tx.commit().await.map_err(yiren_store::StoreError::from)?;
        return Ok((0, true));
    };
    let rows =
        store::audience_page(&mut *tx, b.row.topic_id, b.row.tag.as_deref(), after, end).await?;
    let mut ids = Vec::new();
    for r in rows {
        let Some(channel) = Channel::parse(&r.channel).filter(|c| b.channels.contains(c)) else {
            continue;
        };
        let recipient = match channel {
            Channel::Email => match r.email {
                Some(address) => Recipient::Email {
                    address,
                    customer_id: Some(r.id),
                },
                None => continue,
            },
            Channel::Push => {
                if store::get_customer_push(&mut *tx, r.id).await?.is_none() {
                    continue;
                }
                Recipient::Customer(r.id)
            }
            Channel::Wechat => {
                if super::wechat_openid(ctx, r.id).await?.is_none() {
                    continue;
                }
                Recipient::Customer(r.id)
            }
        };
        let locale = r
            .locale
            .as_deref()
            .and_then(Locale::parse)
            .unwrap_or(site.default_locale);
        let text = b.text_for(locale, site.default_locale);
        let out = Outgoing {
            cause: format!("broadcast:{id}"),
            channel,
            recipient,
            locale,
            content: Content::Broadcast {
                broadcast_id: id,
                topic_id: b.row.topic_id,
            },
            summary: text.subject,
            run_at: None,
            broadcast_id: Some(id),
        };
        if let Some(mid) = super::insert(ctx, &mut tx, &out).await? {
            ids.push(mid);
        }
    }
    let queued = ids.len() as u64;
    for chunk in ids.chunks(super::SEND_CHUNK) {
        let key = format!("message:{}", chunk[0]);
        super::send_job(ctx, &mut tx, chunk, None, &key).await?;
    }
    store::advance_broadcast(&mut *tx, id, end, queued as i64, now).await?;
    run_job(ctx, &mut tx, id, end, None).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    Ok((queued, false))
}

/// The `broadcast.run` handler.
pub struct BroadcastRun;

impl JobHandler for BroadcastRun {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p: RunJob = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            match run_batch(ctx, p.broadcast_id).await {
                Ok(_) => Ok(()),
                Err(DomainError::NotFound) => Ok(()),
                Err(e) => Err(JobError::transient(e.to_string())),
            }
        })
    }
}

/// A schedule time typed in a form: a local date-time (`YYYY-MM-DDTHH:MM`) in the site's time
/// zone, or empty for "now". `Err` when it is not one.
#[allow(clippy::result_unit_err)]
pub fn parse_local(at: &str, tz: &str) -> Result<Option<i64>, ()> {
    use chrono::TimeZone;
    let at = at.trim();
    if at.is_empty() {
        return Ok(None);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M").map_err(|_| ())?;
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| Some(t.timestamp_millis()))
        .ok_or(())
}

/// Markdown → sanitised HTML (images allowed; scripts, styles, event handlers and foreign
/// schemes removed).
pub fn markdown_html(md: &str) -> String {
    use pulldown_cmark::{Options, Parser};
    let mut html = String::new();
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH);
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer"))
        .clean(&html)
        .to_string()
}

/// Markdown → plain text (for push channels): the words, paragraphs separated by blank lines,
/// links followed by their URL.
pub fn markdown_text(md: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut out = String::new();
    let mut link: Option<String> = None;
    for ev in Parser::new(md) {
        match ev {
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::Start(Tag::Link { dest_url, .. }) => link = Some(dest_url.to_string()),
            Event::End(TagEnd::Link) => {
                if let Some(u) = link.take() {
                    out.push_str(&format!(" ({u})"));
                }
            }
            Event::Start(Tag::Item) => out.push_str("• "),
            Event::End(TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item) => {
                out.push_str("\n\n")
            }
            _ => {}
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_sanitised_and_keeps_images() {
        let html = markdown_html(
            "# 新品\n\n![cover](https://x.cn/a.png) <script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>",
        );
        assert!(html.contains("<h1>新品</h1>"), "{html}");
        assert!(
            html.contains(r#"<img src="https://x.cn/a.png" alt="cover">"#),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert_eq!(
            markdown_text("Hello **world**\n\n- one\n- [two](https://a.cn)"),
            "Hello world\n\n• one\n\n• two (https://a.cn)"
        );
    }

    #[test]
    fn drafts_refuse_header_breaking_subjects_and_empty_texts() {
        let mut d = Draft {
            topic_id: 1,
            tag: None,
            channels: vec![Channel::Email],
            texts: BTreeMap::from([(
                "en".to_string(),
                Text {
                    subject: "Hi\r\nBcc: x@y.cn".into(),
                    body: "b".into(),
                },
            )]),
        };
        assert!(validate(&d).is_err());
        d.texts.get_mut("en").unwrap().subject = "Hi".into();
        assert!(validate(&d).is_ok());
        d.channels.clear();
        assert!(validate(&d).is_err());
        d.channels.push(Channel::Push);
        d.texts.get_mut("en").unwrap().body = "".into();
        assert!(validate(&d).is_err());
    }
}
