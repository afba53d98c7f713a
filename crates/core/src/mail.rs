//! Email content. A transactional email is queued (through [`crate::reach`], in the transaction of
//! its cause) as a [`Message`] — which template, with which row ids — and rendered only when the
//! worker sends it, so secrets such as one-time codes never sit in the database: a code is derived
//! from its row id with the server key at send time (see [`crate::customer::code`]). Broadcast
//! copies are rendered here too, with their unsubscribe links.
//!
//! The transport (SMTP, or `.eml` files under the data directory when no SMTP server is configured)
//! lives in the `yiren` crate's `message.send` handler.

use serde::{Deserialize, Serialize};

use crate::error::DomainResult;
use crate::reach::{self, Channel, Content, Recipient};
use crate::{Ctx, Locale};

/// What to send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "template", rename_all = "snake_case")]
pub enum Message {
    /// A sign-in code (the code itself is derived at send time from `code_id`).
    LoginCode {
        /// Row id of the code.
        code_id: i64,
    },
    /// A code confirming a new email address for an account.
    ConfirmEmail {
        /// Row id of the code.
        code_id: i64,
    },
    /// News about an order (`placed`, `paid`, `shipped`, `refunded`), written from the order as
    /// it is when the mail goes out, with the link to its page.
    Order { order_id: i64, kind: String },
    /// Double opt-in: a link confirming a newsletter subscription (signed at send time).
    ConfirmSubscription {
        /// Topics asked for.
        topics: Vec<i64>,
        /// When the link stops working (unix ms).
        expires_at: i64,
    },
}

/// A queued email.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outgoing {
    /// Recipient address (already validated).
    pub to: String,
    /// Language to write in.
    pub locale: Locale,
    /// What to say.
    #[serde(flatten)]
    pub message: Message,
}

/// A rendered email: a text and HTML pair, and for bulk mail its unsubscribe links.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// RFC 8058 one-click unsubscribe URL (bulk mail only).
    pub unsubscribe_url: Option<String>,
}

/// Queue an email in the caller's transaction; `cause` makes it go at most once per address.
pub async fn enqueue(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    cause: String,
    mail: &Outgoing,
) -> DomainResult<()> {
    reach::enqueue(ctx, tx, &outgoing(cause, mail)).await?;
    Ok(())
}

/// The message that delivers `mail`.
fn outgoing(cause: String, mail: &Outgoing) -> reach::Outgoing {
    let summary = match &mail.message {
        Message::LoginCode { .. } => "sign-in code",
        Message::ConfirmEmail { .. } => "email confirmation code",
        Message::ConfirmSubscription { .. } => "subscription confirmation",
        Message::Order { .. } => "order",
    };
    reach::Outgoing {
        cause,
        channel: Channel::Email,
        recipient: Recipient::Email {
            address: mail.to.clone(),
            customer_id: None,
        },
        locale: mail.locale,
        content: Content::Mail {
            message: mail.message.clone(),
        },
        summary: summary.into(),
        run_at: None,
        broadcast_id: None,
    }
}

async fn render_subscribe(
    ctx: &Ctx,
    to: &str,
    l: Locale,
    topics: &[i64],
    expires_at: i64,
    base_url: &str,
) -> DomainResult<Option<Rendered>> {
    if ctx.now() > expires_at {
        return Ok(None);
    }
    let site = crate::settings::load(ctx).await?;
    let mut names = Vec::new();
    for id in topics {
        if let Ok(t) = reach::topic::get(ctx, *id).await {
            names.push(t.name);
        }
    }
    let token = reach::topic::subscribe_token(ctx, to, topics, expires_at);
    let link = format!(
        "{}/subscribe/confirm/{token}",
        base_url.trim_end_matches('/')
    );
    let args = [("site", site.name.as_str())];
    let vars = minijinja::context! {
        locale => l.tag(), site => site.name.clone(), topics => names.join("、"), link => link,
        subject => l.tf("reach.optin_subject", &args), body => l.tf("reach.optin_body", &args),
        button => l.t("reach.optin_button"), ignore => l.t("reach.optin_ignore"),
    };
    transactional(ctx, "subscribe", to, l, vars)
}

/// The built-in mail templates: for each message a subject, a text and an HTML part.
const TEMPLATES: &[(&str, &str)] = &[
    ("code.subject", include_str!("../mail/code.subject")),
    ("code.txt", include_str!("../mail/code.txt")),
    ("code.html", include_str!("../mail/code.html")),
    (
        "broadcast.subject",
        include_str!("../mail/broadcast.subject"),
    ),
    ("broadcast.txt", include_str!("../mail/broadcast.txt")),
    ("broadcast.html", include_str!("../mail/broadcast.html")),
    (
        "subscribe.subject",
        include_str!("../mail/subscribe.subject"),
    ),
    ("subscribe.txt", include_str!("../mail/subscribe.txt")),
    ("subscribe.html", include_str!("../mail/subscribe.html")),
    ("order.subject", include_str!("../mail/order.subject")),
    ("order.txt", include_str!("../mail/order.txt")),
    ("order.html", include_str!("../mail/order.html")),
];

/// Template names, for the documentation and the override check.
pub fn template_names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
}

/// The source of template `name` (`code.txt`) for locale `l`: the owner's override
/// `<templates>/mail/code.zh-CN.txt` or `<templates>/mail/code.txt`, else the built-in one.
fn source(ctx: &Ctx, name: &str, l: Locale) -> Option<String> {
    if let Some(dir) = ctx.templates_dir.as_deref() {
        let (stem, ext) = name.rsplit_once('.')?;
        for file in [format!("{stem}.{}.{ext}", l.tag()), name.to_string()] {
            if let Ok(s) = std::fs::read_to_string(dir.join("mail").join(&file)) {
                return Some(s);
            }
        }
    }
    TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.to_string())
}

/// Render the subject, text and HTML of `base` (`code`, `broadcast`) in `l` with `vars`. HTML is
/// auto-escaped; a subject is one line (line breaks in an override become spaces).
fn render_parts(
    ctx: &Ctx,
    base: &str,
    l: Locale,
    vars: minijinja::Value,
) -> DomainResult<(String, String, String)> {
    let mut env = minijinja::Environment::new();
    let mut out = Vec::new();
    for ext in ["subject", "txt", "html"] {
        let name = format!("{base}.{ext}");
        let src = source(ctx, &name, l).unwrap_or_default();
        let rendered = env
            .template_from_named_str(if ext == "html" { "t.html" } else { "t.txt" }, &src)
            .and_then(|t| t.render(&vars));
        match rendered {
            Ok(r) => out.push(r),
            Err(e) => {
                tracing::error!(template = %name, error = %e, "mail template does not render; using the built-in one");
                let builtin = TEMPLATES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| *s)
                    .unwrap_or("");
                out.push(
                    env.template_from_named_str(
                        if ext == "html" { "b.html" } else { "b.txt" },
                        builtin,
                    )
                    .and_then(|t| t.render(&vars))
                    .unwrap_or_default(),
                );
            }
        }
        env = minijinja::Environment::new();
    }
    let subject: String = out[0]
        .chars()
        .map(|c| {
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Ok((subject, out[1].clone(), out[2].clone()))
}

#[cfg(test)]
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Render a logged email message for sending; `base_url` roots its links. `Ok(None)` means
/// there is nothing to send any more (the cause is gone).
pub async fn render(
    ctx: &Ctx,
    m: &yiren_store::reach::MessageRow,
    base_url: &str,
) -> DomainResult<Option<Rendered>> {
    let l = Locale::parse(&m.locale).unwrap_or_default();
    match serde_json::from_str::<Content>(&m.content) {
        Ok(Content::Mail {
            message: Message::ConfirmSubscription { topics, expires_at },
        }) => render_subscribe(ctx, &m.recipient, l, &topics, expires_at, base_url).await,
        Ok(Content::Mail {
            message: Message::Order { order_id, kind },
        }) => render_order(ctx, &m.recipient, l, order_id, &kind, base_url).await,
        Ok(Content::Mail { message }) => render_template(ctx, &m.recipient, l, &message).await,
        Ok(Content::Broadcast {
            broadcast_id,
            topic_id,
        }) => render_broadcast(ctx, m, l, broadcast_id, topic_id, base_url).await,
        Ok(Content::Owner { .. }) | Err(_) => Ok(None),
    }
}

async fn render_broadcast(
    ctx: &Ctx,
    m: &yiren_store::reach::MessageRow,
    l: Locale,
    broadcast_id: i64,
    topic_id: i64,
    base_url: &str,
) -> DomainResult<Option<Rendered>> {
    let site = crate::settings::load(ctx).await?;
    let b = match reach::broadcast::get(ctx, broadcast_id).await {
        Ok(b) => b,
        Err(crate::DomainError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(customer_id) = m.customer_id else {
        return Ok(None);
    };
    let topic = reach::topic::get(ctx, topic_id).await?;
    let text = b.text_for(l, site.default_locale);
    let base = base_url.trim_end_matches('/');
    let token = reach::topic::token(ctx, customer_id);
    let unsubscribe_url = format!("{base}/unsubscribe/{token}/{topic_id}");
    let preferences_url = format!("{base}/preferences/{token}");
    let why = l.tf(
        "reach.footer_why",
        &[("site", site.name.as_str()), ("topic", topic.name.as_str())],
    );
    let vars = minijinja::context! {
        locale => l.tag(), site => site.name.clone(), topic => topic.name.clone(),
        subject => text.subject.clone(), body_text => text.body.clone(),
        body_html => reach::broadcast::markdown_html(&text.body),
        why => why, unsubscribe_url => unsubscribe_url.clone(), preferences_url => preferences_url,
        unsubscribe_label => l.t("reach.footer_unsubscribe"), preferences_label => l.t("reach.footer_preferences"),
    };
    let (subject, body_text, html) = render_parts(ctx, "broadcast", l, vars)?;
    Ok(Some(Rendered {
        to: m.recipient.clone(),
        subject,
        text: body_text,
        html,
        unsubscribe_url: Some(unsubscribe_url),
    }))
}

async fn render_template(
    ctx: &Ctx,
    to: &str,
    l: Locale,
    message: &Message,
) -> DomainResult<Option<Rendered>> {
    let site = crate::settings::load(ctx).await?;
    let (code_id, keys) = match message {
        Message::LoginCode { code_id } => (
            *code_id,
            ["mail.code_subject", "mail.code_body", "mail.code_ignore"],
        ),
        Message::ConfirmEmail { code_id } => (
            *code_id,
            [
                "mail.confirm_subject",
                "mail.confirm_body",
                "mail.confirm_ignore",
            ],
        ),
        Message::ConfirmSubscription { .. } | Message::Order { .. } => return Ok(None),
    };
    let Some(code) = crate::customer::code::code_for_mail(ctx, code_id).await? else {
        return Ok(None);
    };
    let minutes = (crate::customer::code::CODE_TTL_MS / 60_000).to_string();
    let args = [
        ("site", site.name.as_str()),
        ("code", code.as_str()),
        ("minutes", minutes.as_str()),
    ];
    let vars = minijinja::context! {
        locale => l.tag(), site => site.name.clone(), code => code.clone(), minutes => minutes.clone(),
        subject => l.tf(keys[0], &args), body => l.tf(keys[1], &args), ignore => l.tf(keys[2], &args),
        template => match message { Message::LoginCode { .. } => "login_code", _ => "confirm_email" },
    };
    transactional(ctx, "code", to, l, vars)
}

/// Order kinds that mail the customer.
pub const ORDER_MAILS: [&str; 8] = [
    "placed",
    "paid",
    "shipped",
    "refunded",
    "reminder",
    // A recurring membership's next period (the renewal order), a renewal the gateway could not
    // charge (sent about the plan's first order), a renewal left unpaid (the plan ended).
    "renewal",
    "renewal_failed",
    "lapsed",
];

async fn render_order(
    ctx: &Ctx,
    to: &str,
    l: Locale,
    order_id: i64,
    kind: &str,
    base_url: &str,
) -> DomainResult<Option<Rendered>> {
    if !ORDER_MAILS.contains(&kind) {
        return Ok(None);
    }
    let o = match crate::order::for_message(ctx, order_id, kind == "shipped").await {
        Ok(o) => o,
        Err(crate::error::DomainError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    // A reminder to pay is moot once the order is paid or cancelled.
    if (kind == "reminder" || kind == "renewal")
        && (o.row.payment != "pending" || o.row.cancelled == 1)
    {
        return Ok(None);
    }
    let site = crate::settings::load(ctx).await?;
    let r = &o.row;
    let link = format!(
        "{}/orders/{}?key={}",
        base_url.trim_end_matches('/'),
        r.id,
        crate::order::access_key(ctx, r.id)
    );
    let shipped = o.shipment().unwrap_or(crate::order::Shipment {
        carrier: String::new(),
        tracking: String::new(),
    });
    let number = r.number.to_string();
    let total = crate::money::display(r.total, &r.currency);
    let refunded = crate::money::display(r.refunded, &r.currency);
    let args = [
        ("site", site.name.as_str()),
        ("number", number.as_str()),
        ("total", total.as_str()),
        ("refunded", refunded.as_str()),
        ("carrier", shipped.carrier.as_str()),
        ("tracking", shipped.tracking.as_str()),
    ];
    let lines: Vec<String> = o
        .lines
        .iter()
        .map(|x| {
            let v = if x.variant_title.is_empty() {
                String::new()
            } else {
                format!(" ({})", x.variant_title)
            };
            format!("{}{v} × {}", x.title, x.quantity)
        })
        .collect();
    let vars = minijinja::context! {
        locale => l.tag(), site => site.name.clone(), link => link, lines => lines, total => total.clone(),
        subject => l.tf(&format!("mail.order_{kind}_subject"), &args),
        body => l.tf(&format!("mail.order_{kind}_body"), &args),
        button => l.t("mail.order_button"),
        template => format!("order_{kind}"),
    };
    transactional(ctx, "order", to, l, vars)
}

/// Queue the customer's mail about an order in the change's transaction: at most one per order
/// and kind (the message's cause is unique).
pub async fn order_mail(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    o: &yiren_store::order::OrderRow,
    kind: &str,
) -> DomainResult<()> {
    reach::enqueue(
        ctx,
        tx,
        &order_message(o, kind, &format!("order:{}:{kind}", o.id)),
    )
    .await?;
    Ok(())
}

/// [`order_mail`] once per `cause` rather than once per order and kind (a message that can come
/// again about the same order: a recurring membership's failed renewal, once per period).
pub async fn order_mail_once(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    o: &yiren_store::order::OrderRow,
    kind: &str,
    cause: String,
) -> DomainResult<()> {
    reach::enqueue(ctx, tx, &order_message(o, kind, &cause)).await?;
    Ok(())
}

/// [`order_mail`] added to `w`.
pub fn order_mail_into(
    ctx: &Ctx,
    w: &mut yiren_store::Writes,
    o: &yiren_store::order::OrderRow,
    kind: &str,
) {
    reach::enqueue_into(
        ctx,
        w,
        &order_message(o, kind, &format!("order:{}:{kind}", o.id)),
    );
}

fn order_message(o: &yiren_store::order::OrderRow, kind: &str, cause: &str) -> reach::Outgoing {
    let mail = Outgoing {
        to: o.email.clone(),
        locale: Locale::parse(&o.locale).unwrap_or_default(),
        message: Message::Order {
            order_id: o.id,
            kind: kind.to_string(),
        },
    };
    outgoing(cause.to_string(), &mail)
}

/// A transactional message (no unsubscribe link) from template `base`.
fn transactional(
    ctx: &Ctx,
    base: &str,
    to: &str,
    l: Locale,
    vars: minijinja::Value,
) -> DomainResult<Option<Rendered>> {
    let (subject, text, html) = render_parts(ctx, base, l, vars)?;
    Ok(Some(Rendered {
        to: to.to_string(),
        subject,
        text,
        html,
        unsubscribe_url: None,
    }))
}

/// The SMTP server the owner set in admin (it overrides `mail.smtp_url` from the configuration).
/// The password is sealed with the server key and never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// `tls` (implicit, 465), `starttls` (587) or `none`.
    pub security: String,
    pub username: String,
    pub password_sealed: Option<String>,
    pub from_name: String,
    pub from_address: String,
    pub reply_to: String,
}

/// Security choices.
pub const SECURITY: [&str; 3] = ["tls", "starttls", "none"];

const SMTP_KEY: &str = "smtp";
const SMTP_SEAL: &str = "smtp-password";

impl SmtpSettings {
    /// True when the owner configured a server.
    pub fn configured(&self) -> bool {
        !self.host.is_empty()
    }
}

/// What the admin form sends. `password` None keeps the stored one.
#[derive(Debug, Clone, Default)]
pub struct SmtpInput<'a> {
    pub host: &'a str,
    pub port: &'a str,
    pub security: &'a str,
    pub username: &'a str,
    pub password: Option<&'a str>,
    pub from_name: &'a str,
    pub from_address: &'a str,
    pub reply_to: &'a str,
}

fn header_text(s: &str, max: usize, field: &'static str) -> DomainResult<String> {
    let t = s.trim();
    // A header value is one line: CR, LF, NUL and the Unicode line separators are refused.
    if t.chars().count() > max
        || t.chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(crate::DomainError::invalid(field, "mail.header_invalid"));
    }
    Ok(t.to_string())
}

/// Read the owner's SMTP settings.
pub async fn load_smtp(ctx: &Ctx) -> DomainResult<SmtpSettings> {
    Ok(crate::settings::value(ctx, SMTP_KEY)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default())
}

/// The stored password, unsealed.
pub fn smtp_password(ctx: &Ctx, s: &SmtpSettings) -> Option<String> {
    let sealed = s.password_sealed.as_deref()?;
    ctx.keys
        .open(SMTP_SEAL, sealed)
        .and_then(|p| String::from_utf8(p).ok())
}

/// Validate and save the owner's SMTP settings; an empty host removes them (back to the
/// configuration file, or .eml files).
pub async fn save_smtp(ctx: &Ctx, i: &SmtpInput<'_>) -> DomainResult<SmtpSettings> {
    use crate::DomainError;
    let host = i.host.trim().to_ascii_lowercase();
    let s = if host.is_empty() {
        SmtpSettings::default()
    } else {
        if host.len() > 253
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(DomainError::invalid("host", "mail.host_invalid"));
        }
        if !SECURITY.contains(&i.security) {
            return Err(DomainError::invalid("security", "error.invalid"));
        }
        let port: u16 = match i.port.trim() {
            "" if i.security == "tls" => 465,
            "" if i.security == "starttls" => 587,
            "" => 25,
            p => p
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(DomainError::invalid("port", "mail.port_invalid"))?,
        };
        let from_address = crate::auth::parse_email(i.from_address)
            .map_err(|_| DomainError::invalid("from_address", "email.invalid"))?;
        let reply_to = match i.reply_to.trim() {
            "" => String::new(),
            r => crate::auth::parse_email(r)
                .map_err(|_| DomainError::invalid("reply_to", "email.invalid"))?,
        };
        let username = header_text(i.username, 200, "username")?;
        let old = load_smtp(ctx).await?;
        let password_sealed = match i.password {
            None | Some("") => old.password_sealed.filter(|_| old.host == host),
            Some(p) if p.len() > 500 || p.contains(['\r', '\n', '\0']) => {
                return Err(DomainError::invalid("password", "error.invalid"))
            }
            Some(p) => {
                let mut nonce = [0u8; 12];
                ctx.rng.fill(&mut nonce);
                Some(ctx.keys.seal(SMTP_SEAL, p.as_bytes(), nonce))
            }
        };
        SmtpSettings {
            host,
            port,
            security: i.security.to_string(),
            username,
            password_sealed,
            from_name: header_text(i.from_name, 100, "from_name")?,
            from_address,
            reply_to,
        }
    };
    yiren_store::settings::put(
        ctx.db.write(),
        SMTP_KEY,
        &serde_json::to_string(&s).unwrap_or_default(),
        ctx.now(),
    )
    .await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_a_built_in_subject_text_and_html() {
        for base in ["code", "broadcast", "subscribe"] {
            for ext in ["subject", "txt", "html"] {
                let name = format!("{base}.{ext}");
                assert!(
                    TEMPLATES
                        .iter()
                        .any(|(n, s)| *n == name && !s.trim().is_empty()),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn payloads_carry_no_code_and_round_trip() {
        let m = Outgoing {
            to: "a@b.cn".into(),
            locale: Locale::En,
            message: Message::LoginCode { code_id: 42 },
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(
            s,
            r#"{"to":"a@b.cn","locale":"en","template":"login_code","code_id":42}"#
        );
        assert_eq!(serde_json::from_str::<Outgoing>(&s).unwrap(), m);
        assert_eq!(
            escape_html("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
    }
}
