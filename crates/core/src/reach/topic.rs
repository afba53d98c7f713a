//! Topics the owner names ("新品", "文章更新") and each customer's choice per topic and channel.
//! Subscriptions are opt-in: no row means not subscribed. A customer manages them signed in, or
//! from the link in every bulk email, which carries a signed *preferences token* (no sign-in).

use std::collections::BTreeSet;

use yiren_store::reach::{self as store, SubscriptionRow, TopicRow};
use yiren_store::StoreError;

use super::Channel;
use crate::error::{DomainError, DomainResult};
use crate::Ctx;

fn clean(raw: &str, max: usize, field: &'static str) -> DomainResult<String> {
    let s = raw.trim();
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(DomainError::invalid(field, "reach.topic_invalid"));
    }
    Ok(s.to_string())
}

fn topic_err(e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => DomainError::NotFound,
        StoreError::Conflict(_) => DomainError::Conflict {
            key: "reach.topic_taken",
        },
        e => e.into(),
    }
}

/// Create a topic.
pub async fn create(ctx: &Ctx, name: &str, description: &str) -> DomainResult<TopicRow> {
    let name = clean(name, 60, "name")?;
    if name.is_empty() {
        return Err(DomainError::invalid("name", "reach.topic_invalid"));
    }
    let description = clean(description, 300, "description")?;
    let id = ctx.new_id();
    store::insert_topic(ctx.db.write(), id, &name, &description, ctx.now())
        .await
        .map_err(topic_err)?;
    get(ctx, id).await
}

/// Rename or redescribe a topic.
pub async fn update(ctx: &Ctx, id: i64, name: &str, description: &str) -> DomainResult<TopicRow> {
    let name = clean(name, 60, "name")?;
    if name.is_empty() {
        return Err(DomainError::invalid("name", "reach.topic_invalid"));
    }
    let description = clean(description, 300, "description")?;
    store::update_topic(ctx.db.write(), id, &name, &description, ctx.now())
        .await
        .map_err(topic_err)?;
    get(ctx, id).await
}

/// Delete a topic; refused while broadcasts were sent under it (their log needs it).
pub async fn delete(ctx: &Ctx, id: i64) -> DomainResult<()> {
    get(ctx, id).await?;
    store::delete_topic(ctx.db.write(), id)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => DomainError::Conflict {
                key: "reach.topic_in_use",
            },
            e => e.into(),
        })
}

/// One topic.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<TopicRow> {
    store::get_topic(ctx.db.read(), id).await.map_err(topic_err)
}

/// All topics.
pub async fn list(ctx: &Ctx) -> DomainResult<Vec<TopicRow>> {
    Ok(store::list_topics(ctx.db.read()).await?)
}

/// Set one customer's choice for (topic, channel).
pub async fn set(
    ctx: &Ctx,
    customer_id: i64,
    topic_id: i64,
    channel: Channel,
    subscribed: bool,
    source: &str,
) -> DomainResult<SubscriptionRow> {
    get(ctx, topic_id).await?;
    let c = yiren_store::customer::get(ctx.db.read(), customer_id)
        .await
        .map_err(topic_err)?;
    if c.deleted_at.is_some() {
        return Err(DomainError::NotFound);
    }
    let row = SubscriptionRow {
        customer_id,
        topic_id,
        channel: channel.as_str().to_string(),
        subscribed: subscribed as i64,
        source: source.chars().take(40).collect(),
        updated_at: ctx.now(),
    };
    store::put_subscription(ctx.db.write(), &row).await?;
    Ok(row)
}

/// Subscription rows, filtered, in (customer, topic, channel) order after `after`.
pub async fn subscriptions(
    ctx: &Ctx,
    customer_id: Option<i64>,
    topic_id: Option<i64>,
    after: (i64, i64, &str),
    limit: i64,
) -> DomainResult<Vec<SubscriptionRow>> {
    Ok(store::list_subscriptions(
        ctx.db.read(),
        customer_id,
        topic_id,
        after,
        limit.clamp(1, 500),
    )
    .await?)
}

/// The channels a customer can be reached on for topics: email when they have an address, push
/// when they added their own key, WeChat when they signed in with WeChat and the owner set up
/// template messages.
pub async fn channels_for(ctx: &Ctx, customer_id: i64) -> DomainResult<Vec<Channel>> {
    let c = yiren_store::customer::get(ctx.db.read(), customer_id)
        .await
        .map_err(topic_err)?;
    let mut out = Vec::new();
    if c.email.is_some() {
        out.push(Channel::Email);
    }
    if store::get_customer_push(ctx.db.read(), customer_id)
        .await?
        .is_some()
    {
        out.push(Channel::Push);
    }
    if super::load_wechat(ctx).await?.configured()
        && super::wechat_openid(ctx, customer_id).await?.is_some()
    {
        out.push(Channel::Wechat);
    }
    Ok(out)
}

/// A customer's subscribed (topic, channel) pairs.
pub async fn chosen(ctx: &Ctx, customer_id: i64) -> DomainResult<BTreeSet<(i64, Channel)>> {
    let rows = store::list_subscriptions(
        ctx.db.read(),
        Some(customer_id),
        None,
        (i64::MIN, i64::MIN, ""),
        10_000,
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter(|r| r.subscribed == 1)
        .filter_map(|r| Channel::parse(&r.channel).map(|c| (r.topic_id, c)))
        .collect())
}

/// Replace a customer's choices with `wanted` (every topic × reachable channel not in it is
/// unsubscribed). Only changed pairs are written.
pub async fn set_preferences(
    ctx: &Ctx,
    customer_id: i64,
    wanted: &BTreeSet<(i64, Channel)>,
    source: &str,
) -> DomainResult<()> {
    let topics = list(ctx).await?;
    let channels = channels_for(ctx, customer_id).await?;
    let current = chosen(ctx, customer_id).await?;
    for t in &topics {
        for ch in &channels {
            let want = wanted.contains(&(t.id, *ch));
            if want != current.contains(&(t.id, *ch)) {
                set(ctx, customer_id, t.id, *ch, want, source).await?;
            }
        }
    }
    Ok(())
}

/// The signed token in preference and unsubscribe links: `ID.MAC`. It does not expire (a link in
/// an old email must still unsubscribe) and only reaches subscription choices.
pub fn token(ctx: &Ctx, customer_id: i64) -> String {
    let id = customer_id.to_string();
    let mac = ctx.keys.mac("preferences", &[&id]);
    format!("{id}.{}", &mac[..32])
}

/// The customer a preferences token names; NotFound when it is forged or mangled.
pub fn customer_from_token(ctx: &Ctx, token: &str) -> DomainResult<i64> {
    let (id, mac) = token.split_once('.').ok_or(DomainError::NotFound)?;
    let n: i64 = id.parse().map_err(|_| DomainError::NotFound)?;
    let expected = ctx.keys.mac("preferences", &[id]);
    let ok = mac.len() == 32
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            mac.as_bytes(),
            &expected.as_bytes()[..32],
        ));
    if ok && n.to_string() == id {
        Ok(n)
    } else {
        Err(DomainError::NotFound)
    }
}

/// One-click unsubscribe (RFC 8058) from one topic's emails.
pub async fn unsubscribe(
    ctx: &Ctx,
    customer_id: i64,
    topic_id: i64,
    channel: Channel,
) -> DomainResult<()> {
    set(ctx, customer_id, topic_id, channel, false, "unsubscribe").await?;
    Ok(())
}

/// Sends of subscription confirmations allowed per hour from one IP and to one address
/// (RELIABILITY RL-3).
pub const OPTIN_PER_IP_HOUR: i64 = 20;
/// See [`OPTIN_PER_IP_HOUR`].
pub const OPTIN_PER_ADDRESS_HOUR: i64 = 3;
/// How long a confirmation link works.
pub const OPTIN_TTL_MS: i64 = 3 * 24 * 3_600_000;

/// The signed token of a confirmation link: base64url(JSON {e, t, x}) + "." + MAC.
pub fn subscribe_token(ctx: &Ctx, email: &str, topics: &[i64], expires_at: i64) -> String {
    use base64::Engine as _;
    let body = serde_json::json!({"e": email, "t": topics, "x": expires_at}).to_string();
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body.as_bytes());
    let mac = ctx.keys.mac("subscribe", &[&b]);
    format!("{b}.{}", &mac[..32])
}

/// What a confirmation token says: `(email, topics)`; NotFound when forged, Conflict when expired.
pub fn read_subscribe_token(ctx: &Ctx, token: &str) -> DomainResult<(String, Vec<i64>)> {
    use base64::Engine as _;
    let (b, mac) = token.split_once('.').ok_or(DomainError::NotFound)?;
    let expected = ctx.keys.mac("subscribe", &[b]);
    if mac.len() != 32
        || !bool::from(subtle::ConstantTimeEq::ct_eq(
            mac.as_bytes(),
            &expected.as_bytes()[..32],
        ))
    {
        return Err(DomainError::NotFound);
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b)
        .map_err(|_| DomainError::NotFound)?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| DomainError::NotFound)?;
    if v["x"].as_i64().unwrap_or(0) < ctx.now() {
        return Err(DomainError::Conflict {
            key: "reach.optin_expired",
        });
    }
    let email = v["e"].as_str().ok_or(DomainError::NotFound)?.to_string();
    let topics = v["t"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_i64()).collect())
        .unwrap_or_default();
    Ok((email, topics))
}

/// A visitor asks to subscribe `email` to `topics`: nothing is subscribed yet — a confirmation
/// link is mailed (double opt-in), within the per-IP and per-address hourly budgets.
pub async fn request_subscription(
    ctx: &Ctx,
    email: &str,
    topics: &[i64],
    ip: &str,
    locale: crate::Locale,
) -> DomainResult<()> {
    let email = crate::auth::parse_email(email)?;
    let mut wanted: Vec<i64> = topics.to_vec();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() || wanted.len() > 50 {
        return Err(DomainError::invalid("topic", "reach.optin_topics"));
    }
    for t in &wanted {
        get(ctx, *t)
            .await
            .map_err(|_| DomainError::invalid("topic", "reach.optin_topics"))?;
    }
    let now = ctx.now();
    let window = now - now.rem_euclid(3_600_000);
    let end = window + 3_600_000;
    let retry = DomainError::Throttled {
        retry_after_secs: ((end - now) / 1000).max(1),
    };
    let w = ctx.db.write();
    // The IP's budget first: a flood from one address spends only its own.
    if yiren_store::throttle::bump_window(w, &format!("optin-ip:{ip}"), window, end).await?
        > OPTIN_PER_IP_HOUR
    {
        return Err(retry);
    }
    if yiren_store::throttle::bump_window(w, &format!("optin-addr:{email}"), window, end).await?
        > OPTIN_PER_ADDRESS_HOUR
    {
        return Err(retry);
    }
    let mut tx = ctx.db.begin().await?;
    crate::mail::enqueue(
        ctx,
        &mut tx,
        format!("subscribe:{email}:{}", ctx.new_id()),
        &crate::mail::Outgoing {
            to: email.clone(),
            locale,
            message: crate::mail::Message::ConfirmSubscription {
                topics: wanted,
                expires_at: now + OPTIN_TTL_MS,
            },
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The link was followed and confirmed: the address gets an account if it has none (it proved
/// it reads the mailbox) and is subscribed by email to the topics.
pub async fn confirm_subscription(ctx: &Ctx, token: &str) -> DomainResult<Vec<TopicRow>> {
    let (email, topics) = read_subscribe_token(ctx, token)?;
    let id = match yiren_store::customer::find_by_email(ctx.db.read(), &email).await? {
        Some(c) if c.deleted_at.is_none() => c.id,
        Some(_) => return Err(DomainError::NotFound),
        None => {
            match crate::customer::create_by_staff(ctx, &email, "", None, None).await {
                Ok(c) => c.id,
                // Created meanwhile by a second click.
                Err(DomainError::Conflict { .. }) => {
                    yiren_store::customer::find_by_email(ctx.db.read(), &email)
                        .await?
                        .ok_or(DomainError::NotFound)?
                        .id
                }
                Err(e) => return Err(e),
            }
        }
    };
    let mut out = Vec::new();
    for t in topics {
        if let Ok(topic) = get(ctx, t).await {
            set(ctx, id, t, Channel::Email, true, "double_opt_in").await?;
            out.push(topic);
        }
    }
    Ok(out)
}
