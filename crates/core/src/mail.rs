//! Outgoing email as outbox jobs. A message is enqueued in the transaction of its cause as a
//! [`Message`] — what to say, to whom, in which language — and rendered only when the worker sends
//! it, so secrets such as one-time codes never sit in the jobs table: a code is derived from its
//! row id with the server key at send time (see [`crate::customer::code`]).
//!
//! The transport (SMTP, or `.eml` files under the data directory when no SMTP server is configured)
//! lives in the `yiren` crate's `mail.send` handler.

use serde::{Deserialize, Serialize};

use crate::error::DomainResult;
use crate::job::{self, EnqueueOptions};
use crate::{Ctx, Locale};

/// Job kind that sends one email.
pub const KIND: &str = "mail.send";

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

/// A rendered email: a text and HTML pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Queue an email in the caller's transaction; `unique_key` makes the cause send it at most once.
pub async fn enqueue(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    unique_key: String,
    mail: &Outgoing,
) -> DomainResult<()> {
    job::enqueue(
        ctx,
        tx,
        KIND,
        mail,
        EnqueueOptions {
            unique_key: Some(unique_key),
            max_attempts: 8,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

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

/// Render a queued email. `Ok(None)` means there is nothing to send any more (the cause is gone).
pub async fn render(ctx: &Ctx, mail: &Outgoing) -> DomainResult<Option<Rendered>> {
    let site = crate::settings::load(ctx).await?;
    let l = mail.locale;
    let (code_id, keys) = match &mail.message {
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
    let subject = l.tf(keys[0], &args);
    let body = l.tf(keys[1], &args);
    let ignore = l.tf(keys[2], &args);
    let text = format!("{body}\n\n    {code}\n\n{ignore}\n");
    let html = format!(
        "<!doctype html><html lang=\"{}\"><body><p>{}</p><p style=\"font-size:28px;letter-spacing:6px\"><strong>{}</strong></p><p>{}</p></body></html>",
        l.tag(),
        escape_html(&body),
        escape_html(&code),
        escape_html(&ignore)
    );
    Ok(Some(Rendered {
        to: mail.to.clone(),
        subject,
        text,
        html,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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
