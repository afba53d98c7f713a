//! Email one-time codes: 6 digits, valid [`CODE_TTL_MS`], single use, at most [`MAX_TRIES`] tries
//! (then the code is burned), bound to the browser that asked for it, at most
//! [`MAX_PER_ADDRESS_PER_HOUR`] per address and [`MAX_PER_IP_PER_HOUR`] per IP.
//!
//! The same request works whether or not an account exists (no enumeration): a code is sent
//! either way, and verifying it signs in the existing account or creates one.
//!
//! Storage: the code is never stored. It is derived from its row id with the server key
//! (`HMAC(key, "otp", id)`), so the mail job can carry just the id; the row keeps a MAC of the code
//! for checking (`HMAC(key, "otp-check", id, code)`).

use yiren_store::customer as store;
use yiren_store::StoreError;

use super::{create, registration_invite, start_session, NewAccount};
use crate::auth::parse_email;
use crate::error::{DomainError, DomainResult};
use crate::mail::{self, Message, Outgoing};
use crate::{Ctx, Locale};

/// How long a code is valid.
pub const CODE_TTL_MS: i64 = 10 * 60_000;
/// Wrong tries before a code is burned.
pub const MAX_TRIES: i64 = 5;
/// Codes per address per hour.
pub const MAX_PER_ADDRESS_PER_HOUR: i64 = 4;
/// Codes per IP per hour.
pub const MAX_PER_IP_PER_HOUR: i64 = 20;

fn derive(ctx: &Ctx, id: i64) -> String {
    let mac = ctx.keys.mac("otp", &[&id.to_string()]);
    let n = u64::from_str_radix(&mac[..15], 16).unwrap_or(0) % 1_000_000;
    format!("{n:06}")
}

fn check_mac(ctx: &Ctx, id: i64, code: &str) -> String {
    ctx.keys.mac("otp-check", &[&id.to_string(), code])
}

/// Send a sign-in code to `email` for the browser identified by `binding` (a secret the browser
/// holds; only its hash is stored). Same answer whether or not an account exists.
pub async fn send_code(
    ctx: &Ctx,
    email: &str,
    binding: &str,
    ip: &str,
    locale: Locale,
) -> DomainResult<()> {
    if !super::settings::load(ctx).await?.email_code {
        return Err(DomainError::Forbidden);
    }
    let email = parse_email(email)?;
    issue(ctx, &email, binding, ip, locale, |code_id| {
        Message::LoginCode { code_id }
    })
    .await
}

/// Store a code for (`email`, `binding`) within the send limits and queue its mail.
async fn issue(
    ctx: &Ctx,
    email: &str,
    binding: &str,
    ip: &str,
    locale: Locale,
    message: impl Fn(i64) -> Message,
) -> DomainResult<()> {
    let now = ctx.now();
    let binding_hash = crate::id::hash_token(binding);
    ctx.db
        .retrying(|| async {
            let mut tx = ctx.db.begin().await?;
            let (by_email, by_ip) =
                store::codes_sent_since(&mut tx, email, ip, now - 3_600_000).await?;
            if by_email >= MAX_PER_ADDRESS_PER_HOUR || by_ip >= MAX_PER_IP_PER_HOUR {
                return Ok(Err(DomainError::Throttled {
                    retry_after_secs: 3600,
                }));
            }
            let id = ctx.new_id();
            let code = derive(ctx, id);
            store::insert_code(
                &mut *tx,
                id,
                email,
                &check_mac(ctx, id, &code),
                &binding_hash,
                ip,
                now,
                now + CODE_TTL_MS,
            )
            .await?;
            let out = Outgoing {
                to: email.to_string(),
                locale,
                message: message(id),
            };
            if let Err(e) = mail::enqueue(ctx, &mut tx, format!("code:{id}"), &out).await {
                return Ok(Err(e));
            }
            tx.commit().await?;
            Ok(Ok(()))
        })
        .await?
}

/// Check a code typed for (`email`, `binding`): not expired, tries left (this one counted first,
/// in its own statement, so it sticks even when wrong and concurrent guesses cannot exceed the
/// limit), and the right digits. The row is returned unused: the caller marks it used in the
/// transaction that acts on it.
async fn check(ctx: &Ctx, email: &str, code: &str, binding: &str) -> DomainResult<store::CodeRow> {
    let invalid = || DomainError::invalid("code", "code.invalid");
    let row = store::latest_code(ctx.db.read(), email, &crate::id::hash_token(binding))
        .await?
        .ok_or_else(invalid)?;
    if row.expires_at <= ctx.now() {
        return Err(invalid());
    }
    if !store::add_code_attempt(ctx.db.write(), row.id, MAX_TRIES).await? {
        return Err(invalid());
    }
    if !ctx.keys.verify(
        "otp-check",
        &[&row.id.to_string(), code.trim()],
        &row.code_hash,
    ) {
        return Err(invalid());
    }
    Ok(row)
}

fn email_binding(s: &super::CustomerSession) -> String {
    format!("email-change:{}", s.id_hash)
}

/// Start adding or changing the signed-in customer's email: a code goes to the new address. Needs
/// a recent sign-in (re-authentication before an email change).
pub async fn start_email_change(
    ctx: &Ctx,
    s: &super::CustomerSession,
    email: &str,
    ip: &str,
    locale: Locale,
) -> DomainResult<String> {
    if ctx.now() - s.created_at > super::REAUTH_WINDOW_MS {
        return Err(DomainError::invalid("email", "customer.reauth_email"));
    }
    let email = parse_email(email)?;
    if s.customer.email.as_deref() == Some(email.as_str()) && s.customer.email_verified {
        return Err(DomainError::invalid("email", "customer.email_same"));
    }
    issue(ctx, &email, &email_binding(s), ip, locale, |code_id| {
        Message::ConfirmEmail { code_id }
    })
    .await?;
    Ok(email)
}

/// Finish an email change with the code sent to the new address. An address that belongs to
/// another account is refused (never moved).
pub async fn confirm_email_change(
    ctx: &Ctx,
    s: &super::CustomerSession,
    email: &str,
    code: &str,
) -> DomainResult<()> {
    let email = parse_email(email).map_err(|_| DomainError::invalid("code", "code.invalid"))?;
    let row = check(ctx, &email, code, &email_binding(s)).await?;
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    if !store::use_code(&mut *tx, row.id, now).await? {
        return Err(DomainError::invalid("code", "code.invalid"));
    }
    store::set_verified_email(&mut *tx, s.customer.id, &email, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => DomainError::Conflict {
                key: "customer.email_taken",
            },
            e => e.into(),
        })?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The code to put in the email for code row `id`; None when it is used or expired (nothing to send).
pub async fn code_for_mail(ctx: &Ctx, id: i64) -> DomainResult<Option<String>> {
    Ok(match store::code_state(ctx.db.read(), id).await? {
        Some((None, exp)) if exp > ctx.now() => Some(derive(ctx, id)),
        _ => None,
    })
}

/// What verifying a code did.
#[derive(Debug)]
pub struct Verified {
    /// The new session's cookie token.
    pub token: String,
    /// The account signed in.
    pub customer_id: i64,
    /// True when the account was created now.
    pub created: bool,
}

/// Check a code from the browser that asked for it and sign in (creating the account when there is
/// none, subject to the invite rules). Any failure — no code, wrong code, expired, used, burned,
/// another browser — is the same `code.invalid` error.
#[allow(clippy::too_many_arguments)]
pub async fn verify_code(
    ctx: &Ctx,
    email: &str,
    code: &str,
    binding: &str,
    invite: Option<&str>,
    locale: Option<Locale>,
    ip: &str,
    user_agent: Option<&str>,
) -> DomainResult<Verified> {
    let invalid = || DomainError::invalid("code", "code.invalid");
    let email = parse_email(email).map_err(|_| invalid())?;
    let row = check(ctx, &email, code, binding).await?;
    let now = ctx.now();
    let existing = store::find_by_email(ctx.db.read(), &email).await?;
    let invite_row = match &existing {
        Some(_) => None,
        None => registration_invite(ctx, invite).await?,
    };
    let mut tx = ctx.db.begin().await?;
    if !store::use_code(&mut *tx, row.id, now).await? {
        return Err(invalid());
    }
    let (customer_id, created) = match existing {
        Some(c) => {
            if c.disabled_at.is_some() || c.deleted_at.is_some() {
                // Commit the use: the code is spent either way.
                tx.commit().await.map_err(StoreError::from)?;
                return Err(DomainError::Unauthenticated);
            }
            if c.email_verified_at.is_none() {
                store::set_verified_email(&mut *tx, c.id, &email, now).await?;
            }
            (c.id, false)
        }
        None => {
            let id = create(
                ctx,
                &mut tx,
                &NewAccount {
                    email: Some(&email),
                    email_verified: true,
                    name: "",
                    locale,
                    invite: invite_row.as_ref(),
                    ..Default::default()
                },
            )
            .await?;
            (id, true)
        }
    };
    let token = start_session(ctx, &mut tx, customer_id, "email_code", ip, user_agent).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Verified {
        token,
        customer_id,
        created,
    })
}
