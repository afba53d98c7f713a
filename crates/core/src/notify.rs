//! Owner notifications: typed events (a new customer, a job on the dead list; later issues add new
//! orders, payments, waiting chats, low stock) reach the owner on the push channels they chose,
//! outside their quiet hours.
//!
//! Language: a *channel* is one configured push destination (Server酱, Bark, a WeCom robot, …);
//! its target (keys, tokens, secrets) is stored sealed with the server key and is opaque here — the
//! `message.send` handler decodes it for `yiren-providers::push`. A *route* says which channels an
//! event kind goes to.
//!
//! Shape: [`OwnerEvent`], [`emit`] (in the cause's transaction: one message per channel,
//! unique per (event, cause, channel), delayed past quiet hours), [`load`] / [`save`] of the
//! [`NotifySettings`], [`target`] to unseal a channel for sending.

use std::collections::BTreeMap;

use chrono::{TimeZone, Timelike};
use serde::{Deserialize, Serialize};
use yiren_store::settings as store;

use crate::error::{DomainError, DomainResult};
use crate::reach;
use crate::{Ctx, Locale};

const KEY: &str = "owner_notify";
const SEAL: &str = "push-target";

/// Something the owner may want to hear about.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnerEvent {
    /// A customer account was created.
    NewCustomer {
        customer_id: i64,
        email: Option<String>,
    },
    /// An order was placed. `confirm`: it is to be paid by hand, so the push carries the signed
    /// link that confirms the payment ([`crate::order::confirm_link`]).
    NewOrder {
        order_id: i64,
        number: i64,
        total: String,
        email: String,
        confirm: bool,
    },
    /// An order's payment arrived.
    PaymentReceived {
        number: i64,
        total: String,
        gateway: String,
    },
    /// A job kept failing and went to the dead list.
    JobDead {
        job_id: i64,
        kind: String,
        error: String,
    },
}

/// Event kinds, in the order the admin page lists them.
pub const EVENTS: &[&str] = &["new_order", "payment_received", "new_customer", "job_dead"];

impl OwnerEvent {
    /// The kind, as routes name it.
    pub fn kind(&self) -> &'static str {
        match self {
            OwnerEvent::NewCustomer { .. } => "new_customer",
            OwnerEvent::JobDead { .. } => "job_dead",
            OwnerEvent::NewOrder { .. } => "new_order",
            OwnerEvent::PaymentReceived { .. } => "payment_received",
        }
    }

    /// Title and body in `l`.
    pub fn text(&self, l: Locale) -> (String, String) {
        match self {
            OwnerEvent::NewCustomer { customer_id, email } => (
                l.t("notify.new_customer_title").to_string(),
                l.tf(
                    "notify.new_customer_body",
                    &[
                        ("email", email.as_deref().unwrap_or("—")),
                        ("id", &customer_id.to_string()),
                    ],
                ),
            ),
            OwnerEvent::NewOrder {
                number,
                total,
                email,
                ..
            } => (
                l.tf("notify.new_order_title", &[("number", &number.to_string())]),
                l.tf(
                    "notify.new_order_body",
                    &[
                        ("number", &number.to_string()),
                        ("total", total),
                        ("email", email),
                    ],
                ),
            ),
            OwnerEvent::PaymentReceived {
                number,
                total,
                gateway,
            } => (
                l.tf(
                    "notify.payment_received_title",
                    &[("number", &number.to_string())],
                ),
                l.tf(
                    "notify.payment_received_body",
                    &[
                        ("number", &number.to_string()),
                        ("total", total),
                        ("gateway", gateway),
                    ],
                ),
            ),
            OwnerEvent::JobDead {
                job_id,
                kind,
                error,
            } => (
                l.t("notify.job_dead_title").to_string(),
                l.tf(
                    "notify.job_dead_body",
                    &[
                        ("kind", kind),
                        ("id", &job_id.to_string()),
                        ("error", &error.chars().take(300).collect::<String>()),
                    ],
                ),
            ),
        }
    }
}

/// One push destination of the owner's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Channel {
    /// Short random id.
    pub id: String,
    /// The owner's label ("我的 iPhone").
    pub name: String,
    /// The service (`bark`, `wecom`, …), for display.
    pub kind: String,
    /// The target, sealed with the server key.
    pub sealed: String,
}

/// Which events reach the owner where, and when not to disturb.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct NotifySettings {
    pub channels: Vec<Channel>,
    /// Event kind → channel ids.
    pub routes: BTreeMap<String, Vec<String>>,
    /// Quiet hours in the site's time zone, `[start, end)` hours 0–23; equal = none.
    pub quiet_start: u32,
    pub quiet_end: u32,
}

/// Read the settings.
pub async fn load(ctx: &Ctx) -> DomainResult<NotifySettings> {
    Ok(store::get(ctx.db.read(), KEY)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

/// Save the settings (routes to unknown channels are dropped).
pub async fn save(ctx: &Ctx, s: &NotifySettings) -> DomainResult<()> {
    if s.quiet_start > 23 || s.quiet_end > 23 {
        return Err(DomainError::invalid("quiet_start", "notify.quiet_invalid"));
    }
    let mut s = s.clone();
    let ids: Vec<String> = s.channels.iter().map(|c| c.id.clone()).collect();
    for list in s.routes.values_mut() {
        list.retain(|id| ids.contains(id));
    }
    s.routes
        .retain(|k, v| EVENTS.contains(&k.as_str()) && !v.is_empty());
    store::put(
        ctx.db.write(),
        KEY,
        &serde_json::to_string(&s).unwrap_or_default(),
        ctx.now(),
    )
    .await?;
    Ok(())
}

/// Add a channel from a target (as JSON; its secrets are sealed here).
pub async fn add_channel(
    ctx: &Ctx,
    name: &str,
    kind: &str,
    target: &serde_json::Value,
) -> DomainResult<()> {
    let mut n = load(ctx).await?;
    n.channels.push(new_channel(ctx, name, kind, target)?);
    save(ctx, &n).await
}

/// Remove a channel (and, on save, its routes).
pub async fn remove_channel(ctx: &Ctx, id: &str) -> DomainResult<()> {
    let mut n = load(ctx).await?;
    let before = n.channels.len();
    n.channels.retain(|c| c.id != id);
    if n.channels.len() == before {
        return Err(DomainError::NotFound);
    }
    save(ctx, &n).await
}

/// Replace the routes (`(event kind, channel id)` pairs) and the quiet hours.
pub async fn set_routes(
    ctx: &Ctx,
    routes: &[(String, String)],
    quiet_start: u32,
    quiet_end: u32,
) -> DomainResult<()> {
    let mut n = load(ctx).await?;
    n.routes.clear();
    for (event, channel) in routes {
        n.routes
            .entry(event.clone())
            .or_default()
            .push(channel.clone());
    }
    n.quiet_start = quiet_start;
    n.quiet_end = quiet_end;
    save(ctx, &n).await
}

fn new_channel(
    ctx: &Ctx,
    name: &str,
    kind: &str,
    target: &serde_json::Value,
) -> DomainResult<Channel> {
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect();
    if name.is_empty() {
        return Err(DomainError::invalid("name", "name.invalid"));
    }
    let mut nonce = [0u8; 12];
    ctx.rng.fill(&mut nonce);
    Ok(Channel {
        id: ctx.rng.token(6),
        name,
        kind: kind.to_string(),
        sealed: ctx.keys.seal(SEAL, target.to_string().as_bytes(), nonce),
    })
}

/// A channel's target, unsealed.
pub fn target(ctx: &Ctx, c: &Channel) -> Option<serde_json::Value> {
    let raw = ctx.keys.open(SEAL, &c.sealed)?;
    serde_json::from_slice(&raw).ok()
}

/// When a notification made at `now` may go out: at once, or when quiet hours end.
pub fn deliver_at(now_ms: i64, tz: &str, quiet_start: u32, quiet_end: u32) -> i64 {
    if quiet_start == quiet_end {
        return now_ms;
    }
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    let Some(local) = tz.timestamp_millis_opt(now_ms).single() else {
        return now_ms;
    };
    let h = local.hour();
    let quiet = if quiet_start < quiet_end {
        (quiet_start..quiet_end).contains(&h)
    } else {
        h >= quiet_start || h < quiet_end
    };
    if !quiet {
        return now_ms;
    }
    // The next moment the local clock reads quiet_end:00.
    let mut day = local.date_naive();
    if h >= quiet_end {
        day = day.succ_opt().unwrap_or(day);
    }
    day.and_hms_opt(quiet_end, 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.timestamp_millis())
        .unwrap_or(now_ms)
}

/// Tell the owner about `event` (caused by `cause`, e.g. the customer id), in the cause's
/// transaction: one message per routed channel, never two for the same (event, cause, channel).
pub async fn emit(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    event: &OwnerEvent,
    cause: &str,
) -> DomainResult<()> {
    let mut w = yiren_store::Writes::new();
    emit_into(ctx, tx, &mut w, event, cause).await?;
    Ok(w.run(tx).await?)
}

/// [`emit`] with its messages added to `w` (the routes are read now, in `tx`).
pub async fn emit_into(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    w: &mut yiren_store::Writes,
    event: &OwnerEvent,
    cause: &str,
) -> DomainResult<()> {
    let all = crate::settings::rows_in(ctx, tx).await?;
    let n: NotifySettings = all
        .iter()
        .find(|(k, _)| k == KEY)
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .unwrap_or_default();
    let Some(channels) = n.routes.get(event.kind()) else {
        return Ok(());
    };
    let site = crate::settings::from_pairs(all.to_vec());
    let (title, body) = event.text(site.default_locale);
    let link = match event {
        OwnerEvent::NewOrder {
            order_id,
            confirm: true,
            ..
        } => Some(crate::order::confirm_link(ctx, *order_id)),
        _ => None,
    };
    // The deliverer puts the link (made absolute) after this line.
    let body = match link {
        Some(_) => format!("{body}\n{}", site.default_locale.t("notify.confirm_hint")),
        None => body,
    };
    let run_at = deliver_at(ctx.now(), &site.time_zone, n.quiet_start, n.quiet_end);
    for id in channels {
        let m = reach::Outgoing {
            cause: format!("owner:{}:{cause}", event.kind()),
            channel: reach::Channel::Push,
            recipient: reach::Recipient::Owner(id.clone()),
            locale: site.default_locale,
            content: reach::Content::Owner {
                title: title.clone(),
                body: body.clone(),
                link: link.clone(),
            },
            summary: title.clone(),
            run_at: Some(run_at),
            broadcast_id: None,
        };
        reach::enqueue_into(ctx, w, &m);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_delay_to_their_end_in_the_site_time_zone() {
        // 2026-11-27 15:30 UTC = 23:30 in Shanghai.
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 15, 30, 0)
            .unwrap()
            .timestamp_millis();
        let next_8am = chrono::Utc
            .with_ymd_and_hms(2026, 11, 28, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(deliver_at(t, "Asia/Shanghai", 22, 8), next_8am);
        assert_eq!(
            deliver_at(t, "UTC", 22, 8),
            t,
            "15:30 UTC is not quiet in UTC"
        );
        assert_eq!(deliver_at(t, "Asia/Shanghai", 0, 0), t, "no quiet hours");
        // 03:00 local (after midnight) → 08:00 the same day.
        let early = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 19, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(deliver_at(early, "Asia/Shanghai", 22, 8), next_8am);
        // Daytime quiet hours (13–14).
        let lunch = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 5, 10, 0)
            .unwrap()
            .timestamp_millis();
        let after = chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 6, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(deliver_at(lunch, "Asia/Shanghai", 13, 14), after);
    }
}
