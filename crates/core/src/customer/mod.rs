//! The user pool: customer accounts, their sessions, sign-in identities and invite codes.
//!
//! Language: a *customer* is anyone with an account (buyer, member, subscriber); an *identity* is
//! one way they prove who they are besides email (a GitHub account, an OIDC subject, a WeChat
//! OpenID); a *customer session* is a signed-in browser, separate from staff sessions, so a
//! customer cookie can never open admin pages; an *invite code* gates registration when the owner
//! wants, and records who invited whom (referral rewards hang off it later).
//!
//! Shape: accounts ([`create`], [`get`], [`list`], [`update_profile`], [`set_disabled`],
//! [`delete_account`], [`export`]); sessions ([`start_session`], [`session_from_token`],
//! [`sign_out`], [`revoke_session`], [`sign_out_everywhere`]); passwords ([`sign_in_password`],
//! [`set_password`]); identities ([`sign_in_with_identity`], [`link_identity`],
//! [`unlink_identity`]); invites ([`resolve_invite`], [`create_invite`], [`revoke_invite`]).
//! Email codes are in [`code`]; which methods are on is in [`settings`].
//!
//! Boundaries: `yiren-store::customer`; the password hasher and throttling of [`crate::auth`].

pub mod code;
pub mod passkey;
pub mod settings;

use serde::Serialize;
use yiren_store::customer::{self as store, CustomerRow};
use yiren_store::StoreError;

use crate::auth::{self, parse_email};
use crate::error::{DomainError, DomainResult};
use crate::id::hash_token;
use crate::{password, Ctx, Locale};

/// A customer as services see it (no password hash).
#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: i64,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: String,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub locale: Option<Locale>,
    pub has_password: bool,
    /// The invite code used to register, if any.
    pub joined_with_code: Option<String>,
    pub invited_by: Option<i64>,
    /// A passkey is required after any other sign-in method.
    pub second_factor: bool,
    pub disabled: bool,
    pub deleted: bool,
    pub created_at: i64,
}

impl From<CustomerRow> for Customer {
    fn from(r: CustomerRow) -> Self {
        Customer {
            id: r.id,
            email_verified: r.email_verified_at.is_some(),
            email: r.email,
            name: r.name,
            phone: r.phone,
            avatar_url: r.avatar_url,
            locale: r.locale.as_deref().and_then(Locale::parse),
            has_password: r.password_hash.is_some(),
            joined_with_code: r.invite_code,
            invited_by: r.invited_by,
            second_factor: r.second_factor != 0,
            disabled: r.disabled_at.is_some(),
            deleted: r.deleted_at.is_some(),
            created_at: r.created_at,
        }
    }
}

impl Customer {
    /// A name to greet them by: their name, else the part of the email before `@`.
    pub fn display_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        self.email
            .as_deref()
            .and_then(|e| e.split('@').next())
            .unwrap_or("")
            .to_string()
    }
}

/// A signed-in customer browser.
#[derive(Debug, Clone)]
pub struct CustomerSession {
    pub customer: Customer,
    /// Row id (shown in the sessions list, used to revoke).
    pub id: i64,
    /// SHA-256 of the cookie token.
    pub id_hash: String,
    /// The token forms must echo back.
    pub csrf_token: String,
    /// When this session signed in (re-authentication checks use it).
    pub created_at: i64,
    /// Signed in with a first factor only; a passkey must complete it before it counts.
    pub mfa_pending: bool,
}

fn store_err(e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => DomainError::NotFound,
        StoreError::Conflict(_) => DomainError::Conflict {
            key: "customer.email_taken",
        },
        e => e.into(),
    }
}

fn clean_text(raw: &str, max: usize, field: &'static str) -> DomainResult<String> {
    let s = raw.trim();
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(DomainError::invalid(field, "customer.field_invalid"));
    }
    Ok(s.to_string())
}

fn clean_phone(raw: &str) -> DomainResult<Option<String>> {
    let p: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if p.is_empty() {
        return Ok(None);
    }
    let digits = p.strip_prefix('+').unwrap_or(&p);
    if !(5..=20).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(DomainError::invalid("phone", "customer.phone_invalid"));
    }
    Ok(Some(p))
}

fn clean_url(raw: &str) -> DomainResult<Option<String>> {
    let u = raw.trim();
    if u.is_empty() {
        return Ok(None);
    }
    if u.len() > 500 || !(u.starts_with("https://") || u.starts_with("/")) || u.starts_with("//") {
        return Err(DomainError::invalid("avatar_url", "customer.url_invalid"));
    }
    Ok(Some(u.to_string()))
}

/// What a new account starts with.
#[derive(Debug, Default)]
pub struct NewAccount<'a> {
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub name: &'a str,
    pub phone: Option<&'a str>,
    pub locale: Option<Locale>,
    pub password: Option<&'a str>,
    /// The invite used, if any: its owner becomes the inviter.
    pub invite: Option<&'a store::InviteRow>,
}

fn new_invite_code(ctx: &Ctx) -> String {
    // 10 characters of Crockford-like base32 (50 bits): short enough to type, long enough not to guess.
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut bytes = [0u8; 10];
    ctx.rng.fill(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Create a customer (and their personal invite code) in the caller's transaction.
pub async fn create(ctx: &Ctx, tx: &mut yiren_store::Tx, a: &NewAccount<'_>) -> DomainResult<i64> {
    let email = a.email.map(parse_email).transpose()?;
    let name = clean_text(a.name, 100, "name")?;
    let phone = a.phone.map(clean_phone).transpose()?.flatten();
    let hash = match a.password {
        Some(pw) => Some(auth::hash_new_password(ctx, pw).await?),
        None => None,
    };
    let id = ctx.new_id();
    let now = ctx.now();
    let code = new_invite_code(ctx);
    if let Some(inv) = a.invite {
        if !store::use_invite(&mut **tx, &inv.code).await? {
            return Err(DomainError::invalid("invite", "signup.invite_invalid"));
        }
    }
    store::insert(
        &mut **tx,
        &store::NewCustomer {
            id,
            email: email.as_deref(),
            email_verified: a.email_verified && email.is_some(),
            name: &name,
            phone: phone.as_deref(),
            locale: a.locale.map(Locale::tag),
            password_hash: hash.as_deref(),
            invite_code: a.invite.map(|i| i.code.as_str()),
            invited_by: a.invite.and_then(|i| i.customer_id),
        },
        now,
    )
    .await
    .map_err(store_err)?;
    store::insert_invite(&mut **tx, &code, Some(id), "", None, now).await?;
    let event = crate::notify::OwnerEvent::NewCustomer {
        customer_id: id,
        email: email.clone(),
    };
    crate::notify::emit(ctx, tx, &event, &id.to_string()).await?;
    Ok(id)
}

/// One customer.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<Customer> {
    Ok(store::get(ctx.db.read(), id)
        .await
        .map_err(store_err)?
        .into())
}

/// Customers newest first.
pub async fn list(
    ctx: &Ctx,
    filter: &store::ListFilter,
    before_id: i64,
    limit: i64,
) -> DomainResult<Vec<Customer>> {
    Ok(store::list(ctx.db.read(), filter, before_id, limit)
        .await?
        .into_iter()
        .map(Customer::from)
        .collect())
}

/// Number of customers (not deleted).
pub async fn count(ctx: &Ctx) -> DomainResult<i64> {
    Ok(store::count(ctx.db.read()).await?)
}

/// The personal invite code's owner, for an invite code that can still be used.
pub async fn resolve_invite(ctx: &Ctx, code: &str) -> DomainResult<Option<store::InviteRow>> {
    let code = code.trim().to_ascii_uppercase();
    if code.is_empty() || code.len() > 40 {
        return Ok(None);
    }
    Ok(store::find_invite(ctx.db.read(), &code)
        .await?
        .filter(|i| i.revoked_at.is_none() && i.max_uses.is_none_or(|m| i.uses < m)))
}

/// The invite to use for a new account, or an error when registration is invite-only and there is
/// no usable invite.
pub async fn registration_invite(
    ctx: &Ctx,
    invite: Option<&str>,
) -> DomainResult<Option<store::InviteRow>> {
    let found = match invite {
        Some(c) => resolve_invite(ctx, c).await?,
        None => None,
    };
    if found.is_none() && settings::load(ctx).await?.invite_only {
        return Err(DomainError::invalid("invite", "signup.invite_required"));
    }
    Ok(found)
}

/// A customer's personal invite code (None once revoked, e.g. after deletion).
pub async fn personal_invite(ctx: &Ctx, customer_id: i64) -> DomainResult<Option<String>> {
    Ok(store::personal_invite(ctx.db.read(), customer_id).await?)
}

/// An invite code made by the owner (`max_uses` None = unlimited).
pub async fn create_invite(ctx: &Ctx, note: &str, max_uses: Option<i64>) -> DomainResult<String> {
    let note = clean_text(note, 200, "note")?;
    if max_uses.is_some_and(|m| !(1..=1_000_000).contains(&m)) {
        return Err(DomainError::invalid("max_uses", "invite.max_uses_invalid"));
    }
    let code = new_invite_code(ctx);
    store::insert_invite(ctx.db.write(), &code, None, &note, max_uses, ctx.now()).await?;
    Ok(code)
}

/// Revoke an owner-made invite code.
pub async fn revoke_invite(ctx: &Ctx, code: &str) -> DomainResult<()> {
    store::revoke_invite(ctx.db.write(), code, ctx.now())
        .await
        .map_err(store_err)
}

/// Owner-made invite codes.
pub async fn owner_invites(ctx: &Ctx) -> DomainResult<Vec<store::InviteRow>> {
    Ok(store::owner_invites(ctx.db.read()).await?)
}

/// Start a session for a customer in the caller's transaction (always a fresh token).
pub async fn start_session(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    customer_id: i64,
    method: &str,
    ip: &str,
    user_agent: Option<&str>,
) -> DomainResult<String> {
    let token = ctx.rng.token(32);
    let csrf = ctx.rng.token(32);
    let id_hash = hash_token(&token);
    let ua: Option<String> = user_agent.map(|u| u.chars().take(300).collect());
    let now = ctx.now();
    // With the passkey second factor on, every other method only gets half-way.
    let mfa_pending = method != "passkey"
        && store::get(&mut **tx, customer_id).await?.second_factor != 0
        && !store::passkeys(&mut **tx, customer_id).await?.is_empty();
    store::insert_session(
        &mut **tx,
        &store::NewSession {
            id: ctx.new_id(),
            id_hash: &id_hash,
            customer_id,
            csrf_token: &csrf,
            method,
            mfa_pending,
            expires_at: now + ctx.auth.customer_absolute_timeout_ms,
            ip: Some(ip),
            user_agent: ua.as_deref(),
        },
        now,
    )
    .await?;
    Ok(token)
}

/// Resolve a customer session cookie; expired, idle, disabled or deleted give None (and the
/// session row is removed).
pub async fn session_from_token(ctx: &Ctx, token: &str) -> DomainResult<Option<CustomerSession>> {
    let now = ctx.now();
    let id_hash = hash_token(token);
    let Some(row) = store::find_session(ctx.db.read(), &id_hash).await? else {
        return Ok(None);
    };
    let c = store::get(ctx.db.read(), row.customer_id).await?;
    if row.expires_at <= now
        || now - row.last_seen_at >= ctx.auth.customer_idle_timeout_ms
        || c.disabled_at.is_some()
        || c.deleted_at.is_some()
    {
        store::delete_session(ctx.db.write(), &id_hash).await?;
        return Ok(None);
    }
    if now - row.last_seen_at > 60_000 {
        store::touch_session(ctx.db.write(), &id_hash, now).await?;
    }
    Ok(Some(CustomerSession {
        customer: c.into(),
        id: row.id,
        id_hash,
        csrf_token: row.csrf_token,
        created_at: row.created_at,
        mfa_pending: row.mfa_pending != 0,
    }))
}

/// End a session.
pub async fn sign_out(ctx: &Ctx, id_hash: &str) -> DomainResult<()> {
    store::delete_session(ctx.db.write(), id_hash).await?;
    Ok(())
}

/// A session as its customer sees it in the list.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub id: i64,
    pub method: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A customer's sessions, newest first.
pub async fn sessions(ctx: &Ctx, customer_id: i64) -> DomainResult<Vec<SessionInfo>> {
    Ok(store::sessions(ctx.db.read(), customer_id)
        .await?
        .into_iter()
        .map(|s| SessionInfo {
            id: s.id,
            method: s.method,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            ip: s.ip,
            user_agent: s.user_agent,
        })
        .collect())
}

/// End one of a customer's own sessions (NotFound for anyone else's).
pub async fn revoke_session(ctx: &Ctx, customer_id: i64, session_id: i64) -> DomainResult<()> {
    store::delete_owned(
        ctx.db.write(),
        store::Owned::Sessions,
        customer_id,
        session_id,
    )
    .await
    .map_err(store_err)
}

/// End every session of a customer but `keep` (a token hash). With nothing kept (the owner's
/// "sign out everywhere"), the tokens the customer's apps hold through single sign-on end too.
pub async fn sign_out_everywhere(
    ctx: &Ctx,
    customer_id: i64,
    keep: Option<&str>,
) -> DomainResult<u64> {
    let mut tx = ctx.db.begin().await?;
    let n = store::delete_sessions(&mut *tx, customer_id, keep).await?;
    if keep.is_none() {
        crate::oidc::revoke_customer(ctx, &mut tx, customer_id).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(n)
}

/// Sign in with email and password. Unknown email, wrong password, no password set and disabled
/// account all give the same error after the same work; guessing is throttled per IP and per
/// (account, IP), as for staff.
pub async fn sign_in_password(
    ctx: &Ctx,
    email: &str,
    pw: &str,
    ip: &str,
    user_agent: Option<&str>,
) -> DomainResult<String> {
    let now = ctx.now();
    let email_norm = email.trim().to_lowercase();
    let ip_key = format!("cip:{ip}");
    let acct_key = format!("cacct:{email_norm}|{ip}");
    auth::check_throttle(ctx, &[acct_key.clone(), ip_key.clone()], now).await?;
    let row = store::find_by_email(ctx.db.read(), &email_norm).await?;
    let phc = row
        .as_ref()
        .and_then(|r| r.password_hash.as_deref())
        .unwrap_or(password::Hasher::dummy_hash())
        .to_string();
    let verified = ctx.hasher.verify(pw, &phc, auth::salt(ctx)).await;
    let row = match (row, verified) {
        (Some(r), v)
            if v != password::Verified::No
                && r.password_hash.is_some()
                && r.disabled_at.is_none()
                && r.deleted_at.is_none() =>
        {
            if let password::Verified::YesRehash(h) = v {
                store::set_password(ctx.db.write(), r.id, Some(&h), now)
                    .await
                    .ok();
            }
            r
        }
        _ => {
            auth::record_failure(ctx, &acct_key, ctx.auth.free_failures_per_account_ip, now)
                .await?;
            auth::record_failure(ctx, &ip_key, ctx.auth.free_failures_per_ip, now).await?;
            return Err(DomainError::Unauthenticated);
        }
    };
    yiren_store::throttle::clear(ctx.db.write(), &acct_key).await?;
    let mut tx = ctx.db.begin().await?;
    let token = start_session(ctx, &mut tx, row.id, "password", ip, user_agent).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(token)
}

/// How recently a session must have signed in to change a password without the current one.
pub const REAUTH_WINDOW_MS: i64 = 15 * 60_000;

/// Re-authentication for sensitive changes (email, second factor, passkeys): the session must
/// have signed in within [`REAUTH_WINDOW_MS`].
pub fn require_recent_sign_in(ctx: &Ctx, s: &CustomerSession) -> DomainResult<()> {
    if ctx.now() - s.created_at > REAUTH_WINDOW_MS {
        return Err(DomainError::invalid("session", "customer.reauth_sensitive"));
    }
    Ok(())
}

/// Set or change the password. With a password already set, the current one is required; without
/// one, the session must have signed in within [`REAUTH_WINDOW_MS`]. Every other session ends.
pub async fn set_password(
    ctx: &Ctx,
    s: &CustomerSession,
    current: Option<&str>,
    new: &str,
) -> DomainResult<()> {
    let row = store::get(ctx.db.read(), s.customer.id).await?;
    match row.password_hash.as_deref() {
        Some(hash) => {
            let ok = ctx
                .hasher
                .verify(current.unwrap_or(""), hash, auth::salt(ctx))
                .await;
            if ok == password::Verified::No {
                return Err(DomainError::invalid(
                    "current_password",
                    "password.current_wrong",
                ));
            }
        }
        None if ctx.now() - s.created_at > REAUTH_WINDOW_MS => {
            return Err(DomainError::invalid("current_password", "customer.reauth"));
        }
        None => {}
    }
    let hash = auth::hash_new_password(ctx, new).await?;
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    store::set_password(&mut *tx, row.id, Some(&hash), now).await?;
    store::delete_sessions(&mut *tx, row.id, Some(&s.id_hash)).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Profile input.
#[derive(Debug, Default)]
pub struct ProfileInput<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub avatar_url: &'a str,
    pub locale: &'a str,
}

/// Update name, phone, avatar and language.
pub async fn update_profile(ctx: &Ctx, id: i64, p: &ProfileInput<'_>) -> DomainResult<()> {
    let name = clean_text(p.name, 100, "name")?;
    let phone = clean_phone(p.phone)?;
    let avatar = clean_url(p.avatar_url)?;
    let locale = match p.locale.trim() {
        "" => None,
        l => Some(
            Locale::parse(l).ok_or(DomainError::invalid("locale", "settings.locale_invalid"))?,
        ),
    };
    store::set_profile(
        ctx.db.write(),
        id,
        &store::Profile {
            name: &name,
            phone: phone.as_deref(),
            avatar_url: avatar.as_deref(),
            locale: locale.map(Locale::tag),
        },
        ctx.now(),
    )
    .await
    .map_err(store_err)
}

/// Disable or enable an account; disabling ends every session at once.
pub async fn set_disabled(ctx: &Ctx, id: i64, disabled: bool) -> DomainResult<()> {
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    store::set_disabled(&mut *tx, id, disabled.then_some(now), now)
        .await
        .map_err(store_err)?;
    if disabled {
        store::delete_sessions(&mut *tx, id, None).await?;
        crate::oidc::revoke_customer(ctx, &mut tx, id).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// An identity from a provider, as the provider vouched for it.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    /// `github`, an OIDC provider's slug, or `wechat`.
    pub provider: String,
    /// The provider's stable id for the person.
    pub subject: String,
    /// An email the provider says is verified (never an unverified one).
    pub verified_email: Option<String>,
    /// A name or login to show.
    pub display: Option<String>,
}

/// Sign in through an identity: its linked account; else the account whose *verified* email the
/// provider also vouches for (the identity is linked to it); else a new account (subject to the
/// invite rules). Returns the session token and whether the account is new.
pub async fn sign_in_with_identity(
    ctx: &Ctx,
    ext: &ExternalIdentity,
    method: &str,
    invite: Option<&str>,
    ip: &str,
    user_agent: Option<&str>,
) -> DomainResult<(String, bool)> {
    let now = ctx.now();
    let verified_email = ext
        .verified_email
        .as_deref()
        .and_then(|e| parse_email(e).ok());
    let display: Option<String> = ext
        .display
        .as_deref()
        .map(|d| d.chars().take(100).collect());
    let existing = store::find_identity(ctx.db.read(), &ext.provider, &ext.subject).await?;
    let invite_row = if existing.is_none() {
        let by_email = match verified_email.as_deref() {
            Some(e) => store::find_by_email(ctx.db.read(), e)
                .await?
                .filter(|r| r.email_verified_at.is_some()),
            None => None,
        };
        if by_email.is_none() {
            registration_invite(ctx, invite).await?
        } else {
            None
        }
    } else {
        None
    };
    let mut tx = ctx.db.begin().await?;
    let (customer_id, created) = match existing {
        Some(i) => {
            store::touch_identity(&mut *tx, i.id, now).await?;
            (i.customer_id, false)
        }
        None => {
            let holder = match verified_email.as_deref() {
                Some(e) => store::find_by_email(&mut *tx, e).await?,
                None => None,
            };
            // An unverified account holding the address keeps it; the new account goes without.
            let free_email = verified_email.as_deref().filter(|_| holder.is_none());
            let (cid, created) = match holder.filter(|r| r.email_verified_at.is_some()) {
                Some(r) => (r.id, false),
                None => {
                    let name = display.clone().unwrap_or_default();
                    let cid = create(
                        ctx,
                        &mut tx,
                        &NewAccount {
                            email: free_email,
                            email_verified: true,
                            name: &name,
                            invite: invite_row.as_ref(),
                            ..Default::default()
                        },
                    )
                    .await?;
                    (cid, true)
                }
            };
            store::insert_identity(
                &mut *tx,
                ctx.new_id(),
                cid,
                &ext.provider,
                &ext.subject,
                verified_email.as_deref(),
                display.as_deref(),
                now,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => DomainError::Conflict {
                    key: "identity.linked_elsewhere",
                },
                e => e.into(),
            })?;
            (cid, created)
        }
    };
    let row = store::get(&mut *tx, customer_id).await?;
    if row.disabled_at.is_some() || row.deleted_at.is_some() {
        return Err(DomainError::Unauthenticated);
    }
    let token = start_session(ctx, &mut tx, customer_id, method, ip, user_agent).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((token, created))
}

/// Link an identity to a signed-in customer. An identity already linked to this customer is fine;
/// one linked to anyone else is refused (never moved).
pub async fn link_identity(
    ctx: &Ctx,
    customer_id: i64,
    ext: &ExternalIdentity,
) -> DomainResult<()> {
    if let Some(i) = store::find_identity(ctx.db.read(), &ext.provider, &ext.subject).await? {
        return if i.customer_id == customer_id {
            Ok(())
        } else {
            Err(DomainError::Conflict {
                key: "identity.linked_elsewhere",
            })
        };
    }
    let email = ext
        .verified_email
        .as_deref()
        .and_then(|e| parse_email(e).ok());
    let display: Option<String> = ext
        .display
        .as_deref()
        .map(|d| d.chars().take(100).collect());
    store::insert_identity(
        ctx.db.write(),
        ctx.new_id(),
        customer_id,
        &ext.provider,
        &ext.subject,
        email.as_deref(),
        display.as_deref(),
        ctx.now(),
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict(_) => DomainError::Conflict {
            key: "identity.linked_elsewhere",
        },
        e => e.into(),
    })
}

/// An identity as its customer and the owner see it.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub id: i64,
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub display: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A customer's identities.
pub async fn identities(ctx: &Ctx, customer_id: i64) -> DomainResult<Vec<Identity>> {
    Ok(store::identities(ctx.db.read(), customer_id)
        .await?
        .into_iter()
        .map(|i| Identity {
            id: i.id,
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            display: i.display,
            created_at: i.created_at,
            last_used_at: i.last_used_at,
        })
        .collect())
}

/// Unlink one of a customer's identities, unless it is their last way to sign in.
pub async fn unlink_identity(ctx: &Ctx, customer_id: i64, identity_id: i64) -> DomainResult<()> {
    let c = store::get(ctx.db.read(), customer_id).await?;
    let ids = store::identities(ctx.db.read(), customer_id).await?;
    if !ids.iter().any(|i| i.id == identity_id) {
        return Err(DomainError::NotFound);
    }
    let keys = store::passkeys(ctx.db.read(), customer_id).await?.len();
    let other_ways = (ids.len() - 1) + keys + usize::from(c.email_verified_at.is_some());
    if other_ways == 0 {
        return Err(DomainError::Conflict {
            key: "identity.last_method",
        });
    }
    store::delete_owned(
        ctx.db.write(),
        store::Owned::Identities,
        customer_id,
        identity_id,
    )
    .await
    .map_err(store_err)
}

/// Everything Yiren holds about a customer, as JSON (their "download my data").
pub async fn export(ctx: &Ctx, customer_id: i64) -> DomainResult<serde_json::Value> {
    let c = get(ctx, customer_id).await?;
    let ids = identities(ctx, customer_id).await?;
    let sessions = sessions(ctx, customer_id).await?;
    let invited = store::list(
        ctx.db.read(),
        &store::ListFilter {
            invited_by: Some(customer_id),
            ..Default::default()
        },
        0,
        10_000,
    )
    .await?
    .len();
    let keys = passkey::list(ctx, customer_id).await?;
    let subs = yiren_store::reach::list_subscriptions(
        ctx.db.read(),
        Some(customer_id),
        None,
        (i64::MIN, i64::MIN, ""),
        10_000,
    )
    .await?;
    let topics = crate::reach::topic::list(ctx).await?;
    let push = yiren_store::reach::get_customer_push(ctx.db.read(), customer_id).await?;
    let messages = yiren_store::reach::list_messages(
        ctx.db.read(),
        &yiren_store::reach::MessageFilter {
            customer_id: Some(customer_id),
            ..Default::default()
        },
        i64::MAX,
        10_000,
    )
    .await?;
    let ts = |ms: i64| crate::clock::rfc3339(ms);
    let mut orders = vec![];
    let mut offset = 0;
    loop {
        let page = crate::order::list(ctx, Some(customer_id), 100, offset).await?;
        for o in &page {
            let lines = yiren_store::order::lines(ctx.db.read(), o.id).await?;
            let m = |v: i64| crate::money::format(v, &o.currency);
            orders.push(serde_json::json!({
                "number": o.number, "email": o.email, "currency": o.currency, "total": m(o.total),
                "payment": o.payment, "fulfilment": o.fulfilment, "cancelled": o.cancelled == 1,
                "refunded": m(o.refunded), "address": serde_json::from_str::<serde_json::Value>(&o.address).ok(),
                "note": o.note, "created_at": ts(o.created_at),
                "lines": lines.iter().map(|l| serde_json::json!({
                    "title": l.title, "variant_title": l.variant_title, "sku": l.sku,
                    "quantity": l.quantity, "unit_price": m(l.unit_price),
                })).collect::<Vec<_>>(),
            }));
        }
        if page.len() < 100 {
            break;
        }
        offset += 100;
    }
    let cart = crate::cart::saved(ctx, customer_id).await?;
    let checkouts = yiren_store::abandoned::of_customer(ctx.db.read(), customer_id).await?;
    let plans =
        crate::recurring::of_customer(ctx, customer_id, c.email.as_deref().unwrap_or("")).await?;
    Ok(serde_json::json!({
        "format": "yiren.customer-export.v1",
        "exported_at": ts(ctx.now()),
        "customer": {
            "id": c.id,
            "email": c.email,
            "email_verified": c.email_verified,
            "name": c.name,
            "phone": c.phone,
            "avatar_url": c.avatar_url,
            "locale": c.locale.map(Locale::tag),
            "has_password": c.has_password,
            "invite_code": personal_invite(ctx, customer_id).await?,
            "joined_with_invite_code": c.joined_with_code,
            "invited_by": c.invited_by,
            "created_at": ts(c.created_at),
        },
        "identities": ids.iter().map(|i| serde_json::json!({
            "provider": i.provider, "subject": i.subject, "email": i.email, "display": i.display,
            "linked_at": ts(i.created_at), "last_used_at": i.last_used_at.map(ts),
        })).collect::<Vec<_>>(),
        "sessions": sessions.iter().map(|s| serde_json::json!({
            "method": s.method, "signed_in_at": ts(s.created_at), "last_seen_at": ts(s.last_seen_at),
            "ip": s.ip, "user_agent": s.user_agent,
        })).collect::<Vec<_>>(),
        "passkeys": keys.iter().map(|k| serde_json::json!({
            "name": k.name, "added_at": ts(k.created_at), "last_used_at": k.last_used_at.map(ts),
        })).collect::<Vec<_>>(),
        "second_factor": c.second_factor,
        "customers_invited": invited,
        "tags": tags(ctx, customer_id).await?,
        "subscriptions": subs.iter().map(|r| serde_json::json!({
            "topic": topics.iter().find(|t| t.id == r.topic_id).map(|t| t.name.clone()),
            "channel": r.channel, "subscribed": r.subscribed == 1, "source": r.source,
            "updated_at": ts(r.updated_at),
        })).collect::<Vec<_>>(),
        "push_service": push.map(|(kind, _)| kind),
        "messages": messages.iter().map(|m| serde_json::json!({
            "channel": m.channel, "summary": m.summary, "status": m.status,
            "created_at": ts(m.created_at), "sent_at": m.sent_at.map(ts),
        })).collect::<Vec<_>>(),
        "orders": orders,
        "saved_cart": cart.iter().map(|l| serde_json::json!({
            "variant_id": l.variant_id, "quantity": l.quantity,
        })).collect::<Vec<_>>(),
        "started_checkouts": checkouts.iter().map(|k| serde_json::json!({
            "email": k.email, "items": serde_json::from_str::<serde_json::Value>(&k.items).ok(),
            "subtotal": crate::money::format(k.subtotal, &k.currency), "currency": k.currency,
            "order_placed": k.order_id.is_some(), "started_at": ts(k.created_at),
            "last_seen_at": ts(k.updated_at),
        })).collect::<Vec<_>>(),
        "renewing_memberships": plans.iter().map(|p| serde_json::json!({
            "title": p.row.title, "price": crate::money::format(p.row.amount, &p.row.currency),
            "currency": p.row.currency, "every_months": p.row.every_months, "status": p.row.status,
            "renews_through": p.row.gateway, "started_at": ts(p.row.created_at),
            "paid_through": p.paid_through().map(ts), "next_renewal": p.next_renewal().map(ts),
        })).collect::<Vec<_>>(),
    }))
}

/// Delete an account: personal data removed (name, email, phone, avatar, password, identities,
/// sessions, codes, invite codes); the row stays, anonymised, so records the law requires
/// (orders, later) keep pointing at something without saying who it was.
pub async fn delete_account(ctx: &Ctx, customer_id: i64) -> DomainResult<()> {
    let now = ctx.now();
    let c = store::get(ctx.db.read(), customer_id)
        .await
        .map_err(store_err)?;
    let mut tx = ctx.db.begin().await?;
    store::delete_sessions(&mut *tx, customer_id, None).await?;
    store::delete_all_owned(&mut *tx, store::Owned::Identities, customer_id).await?;
    store::delete_all_owned(&mut *tx, store::Owned::Passkeys, customer_id).await?;
    crate::oidc::revoke_customer(ctx, &mut tx, customer_id).await?;
    yiren_store::oidc::delete_customer_consents(&mut *tx, customer_id).await?;
    store::revoke_customer_invites(&mut *tx, customer_id, now).await?;
    if let Some(e) = c.email.as_deref() {
        store::delete_codes(&mut *tx, Some(e), 0).await?;
    }
    store::delete_customer_flows(&mut *tx, customer_id).await?;
    // The delivery log names the address; subscriptions, push key and tags are personal data.
    // (A suppression stays: it holds only a keyed hash of the address.)
    yiren_store::reach::delete_customer_messages(&mut *tx, customer_id, c.email.as_deref()).await?;
    yiren_store::reach::delete_customer_reach(&mut tx, customer_id).await?;
    if let Some(e) = c.email.as_deref() {
        // Outbox rows that name the address (sent mail, queued mail) and throttle counters keyed by it.
        let quoted = serde_json::to_string(e).unwrap_or_default();
        yiren_store::job::redact_mentioning(&mut *tx, &quoted, now).await?;
        yiren_store::throttle::delete_prefix(&mut *tx, &format!("cacct:{e}|")).await?;
    }
    // The saved cart and checkouts that never became an order are theirs alone.
    store::put_cart(&mut *tx, customer_id, "", now).await?;
    yiren_store::abandoned::delete_unconverted_of(&mut *tx, customer_id).await?;
    store::set_second_factor(&mut *tx, customer_id, false, now).await?;
    store::anonymise(&mut *tx, customer_id, now).await?;
    // Their memberships stop renewing (what was paid runs out; no more renewal orders or mail).
    yiren_store::recurring::stop_customer(&mut *tx, customer_id, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Create a customer from admin or the API (no password; they sign in with an email code).
pub async fn create_by_staff(
    ctx: &Ctx,
    email: &str,
    name: &str,
    phone: Option<&str>,
    locale: Option<Locale>,
) -> DomainResult<Customer> {
    let mut tx = ctx.db.begin().await?;
    let id = create(
        ctx,
        &mut tx,
        &NewAccount {
            email: Some(email),
            email_verified: false,
            name,
            phone,
            locale,
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    get(ctx, id).await
}

/// Parse a comma-separated tag list: trimmed, deduplicated, each 1–40 characters without control
/// characters, at most 30.
pub fn parse_tags(raw: &str) -> DomainResult<Vec<String>> {
    let mut tags: Vec<String> = raw
        .split([',', '，'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    tags.sort();
    tags.dedup();
    if tags.len() > 30
        || tags
            .iter()
            .any(|t| t.chars().count() > 40 || t.chars().any(char::is_control))
    {
        return Err(DomainError::invalid("tags", "customer.tags_invalid"));
    }
    Ok(tags)
}

/// Replace a customer's tags (broadcast audiences and, later, CRM segments select by them).
pub async fn set_tags(ctx: &Ctx, id: i64, raw: &str) -> DomainResult<Vec<String>> {
    let tags = parse_tags(raw)?;
    get(ctx, id).await?;
    let mut tx = ctx.db.begin().await?;
    yiren_store::reach::set_customer_tags(&mut tx, id, &tags, ctx.now()).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    Ok(tags)
}

/// A customer's tags, sorted.
pub async fn tags(ctx: &Ctx, id: i64) -> DomainResult<Vec<String>> {
    Ok(yiren_store::reach::customer_tags(ctx.db.read(), id).await?)
}
