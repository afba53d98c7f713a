//! Staff authentication.
//!
//! Language: a *staff* account is the owner or a helper; a *session* is a signed-in browser,
//! identified by a 256-bit random token the browser holds and the database stores only hashed;
//! *throttling* slows guessing per IP and per (account, IP) without letting anyone lock the real
//! owner out from another address.
//!
//! Shape: [`sign_in`], [`session_from_token`], [`sign_out`], [`change_password`], [`create_staff`],
//! [`set_staff_disabled`]; [`Role`] and [`Staff`].
//!
//! Boundaries: `yiren-store` (staff, session, throttle tables) and the password hasher.

use serde::Serialize;
use yiren_store::{session, staff, throttle};

use crate::error::{DomainError, DomainResult};
use crate::id::hash_token;
use crate::{password, Ctx, Locale};

/// How long sessions live and how hard guessing is throttled.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Sign out after this long without a request (ms).
    pub idle_timeout_ms: i64,
    /// Sign out this long after sign-in, whatever the activity (ms).
    pub absolute_timeout_ms: i64,
    /// Free failures per (account, IP) before 429.
    pub free_failures_per_account_ip: i64,
    /// Free failures per IP (any accounts) before 429: stops password spraying.
    pub free_failures_per_ip: i64,
    /// First block length (ms); doubles with each further failure.
    pub first_block_ms: i64,
    /// Longest block (ms).
    pub max_block_ms: i64,
    /// Customer sessions: sign out after this long without a request (ms).
    pub customer_idle_timeout_ms: i64,
    /// Customer sessions: sign out this long after sign-in (ms).
    pub customer_absolute_timeout_ms: i64,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            idle_timeout_ms: 30 * 60_000,
            absolute_timeout_ms: 12 * 3_600_000,
            free_failures_per_account_ip: 5,
            free_failures_per_ip: 20,
            first_block_ms: 60_000,
            max_block_ms: 30 * 60_000,
            customer_idle_timeout_ms: 14 * 24 * 3_600_000,
            customer_absolute_timeout_ms: 90 * 24 * 3_600_000,
        }
    }
}

/// A staff role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Owns the site: settings, staff, tokens.
    Owner,
    /// Helps: sees the dashboard and jobs, cannot change settings or staff.
    Staff,
}

impl Role {
    /// Stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Staff => "staff",
        }
    }
    /// Parse the stored form.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "staff" => Some(Role::Staff),
            _ => None,
        }
    }
}

/// A staff account as services see it (no password hash).
#[derive(Debug, Clone, Serialize)]
pub struct Staff {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub locale: Option<Locale>,
    pub disabled: bool,
    pub created_at: i64,
}

impl From<staff::StaffRow> for Staff {
    fn from(r: staff::StaffRow) -> Self {
        Staff {
            id: r.id,
            role: Role::parse(&r.role).unwrap_or(Role::Staff),
            locale: r.locale.as_deref().and_then(Locale::parse),
            disabled: r.disabled_at.is_some(),
            email: r.email,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

/// A signed-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account.
    pub staff: Staff,
    /// SHA-256 of the cookie token.
    pub id_hash: String,
    /// The token forms must echo back (CSRF).
    pub csrf_token: String,
}

/// Normalise an email address for lookups; refuses what is plainly not an address.
pub fn parse_email(raw: &str) -> DomainResult<String> {
    let e = raw.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
        })
        && !e.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        });
    if valid {
        Ok(e)
    } else {
        Err(DomainError::invalid("email", "email.invalid"))
    }
}

fn parse_name(raw: &str) -> DomainResult<String> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(DomainError::invalid("name", "name.invalid"));
    }
    Ok(n.to_string())
}

pub(crate) fn salt(ctx: &Ctx) -> [u8; 16] {
    let mut s = [0u8; 16];
    ctx.rng.fill(&mut s);
    s
}

/// Hash a password that passed the policy.
pub async fn hash_new_password(ctx: &Ctx, pw: &str) -> DomainResult<String> {
    password::check_policy(pw)?;
    ctx.hasher.hash(pw, salt(ctx)).await
}

/// Create a staff account (the owner at setup, or a helper added by the owner).
pub async fn create_staff(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    email: &str,
    name: &str,
    pw: &str,
    role: Role,
    locale: Option<Locale>,
) -> DomainResult<i64> {
    let email = parse_email(email)?;
    let name = parse_name(name)?;
    let hash = hash_new_password(ctx, pw).await?;
    let id = ctx.new_id();
    let new = staff::NewStaff {
        id,
        email: &email,
        name: &name,
        password_hash: &hash,
        role: role.as_str(),
        locale: locale.map(Locale::tag),
    };
    staff::insert(&mut **tx, &new, ctx.now())
        .await
        .map_err(|e| match e {
            yiren_store::StoreError::Conflict(_) => DomainError::Conflict {
                key: "staff.email_taken",
            },
            e => e.into(),
        })?;
    Ok(id)
}

/// Disable or enable a helper's account; disabling ends all its sessions. The owner cannot be disabled.
pub async fn set_staff_disabled(ctx: &Ctx, id: i64, disabled: bool) -> DomainResult<()> {
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    staff::set_disabled(&mut *tx, id, disabled.then_some(now), now)
        .await
        .map_err(|e| match e {
            yiren_store::StoreError::NotFound => DomainError::NotFound,
            e => e.into(),
        })?;
    if disabled {
        session::delete_for_staff(&mut *tx, id, None).await?;
    }
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    Ok(())
}

/// Every staff account.
pub async fn list_staff(ctx: &Ctx, after_id: i64, limit: i64) -> DomainResult<Vec<Staff>> {
    Ok(staff::list(ctx.db.read(), after_id, limit)
        .await?
        .into_iter()
        .map(Staff::from)
        .collect())
}

/// Number of staff accounts.
pub async fn count_staff(ctx: &Ctx) -> DomainResult<i64> {
    Ok(staff::count(ctx.db.read()).await?)
}

fn block_for(policy: &AuthPolicy, failures: i64, free: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let doublings = (failures - free).min(20) as u32;
    policy
        .first_block_ms
        .saturating_mul(1i64 << doublings)
        .min(policy.max_block_ms)
}

pub(crate) async fn check_throttle(ctx: &Ctx, keys: &[String], now: i64) -> DomainResult<()> {
    for key in keys {
        if let Some(row) = throttle::find(ctx.db.read(), key).await? {
            if row.blocked_until > now {
                return Err(DomainError::Throttled {
                    retry_after_secs: ((row.blocked_until - now) + 999) / 1000,
                });
            }
        }
    }
    Ok(())
}

pub(crate) async fn record_failure(ctx: &Ctx, key: &str, free: i64, now: i64) -> DomainResult<()> {
    let policy = &ctx.auth;
    ctx.db
        .retrying(|| async {
            let mut tx = ctx.db.begin().await?;
            let failures = throttle::find(&mut *tx, key)
                .await?
                .map(|r| r.failures)
                .unwrap_or(0)
                + 1;
            let block = block_for(policy, failures, free);
            let row = throttle::ThrottleRow {
                key: key.to_string(),
                failures,
                last_failure_at: now,
                blocked_until: if block > 0 { now + block } else { 0 },
            };
            throttle::put(&mut *tx, &row).await?;
            tx.commit().await?;
            Ok(())
        })
        .await?;
    Ok(())
}

/// Sign a staff member in with email and password, from `ip`. Unknown email, wrong password and
/// disabled account give the same error after the same work (a dummy hash is verified).
pub async fn sign_in(
    ctx: &Ctx,
    email: &str,
    pw: &str,
    ip: &str,
    user_agent: Option<&str>,
) -> DomainResult<(Session, String)> {
    let now = ctx.now();
    let email_norm = email.trim().to_lowercase();
    let ip_key = format!("ip:{ip}");
    let acct_key = format!("acct:{email_norm}|{ip}");
    check_throttle(ctx, &[acct_key.clone(), ip_key.clone()], now).await?;

    let row = staff::find_by_email(ctx.db.read(), &email_norm).await?;
    let phc = row
        .as_ref()
        .map(|r| r.password_hash.as_str())
        .unwrap_or(password::Hasher::dummy_hash());
    let verified = ctx.hasher.verify(pw, phc, salt(ctx)).await;
    let row = match (row, verified) {
        (Some(r), v) if v != password::Verified::No && r.disabled_at.is_none() => {
            if let password::Verified::YesRehash(h) = v {
                staff::set_password(ctx.db.write(), r.id, &h, now)
                    .await
                    .ok();
            }
            r
        }
        _ => {
            record_failure(ctx, &acct_key, ctx.auth.free_failures_per_account_ip, now).await?;
            record_failure(ctx, &ip_key, ctx.auth.free_failures_per_ip, now).await?;
            return Err(DomainError::Unauthenticated);
        }
    };
    throttle::clear(ctx.db.write(), &acct_key).await?;
    let (session, token) = start_session(ctx, row.into(), ip, user_agent).await?;
    Ok((session, token))
}

/// Start a new session for an account (always a fresh token: the id rotates on every sign-in).
pub async fn start_session(
    ctx: &Ctx,
    staff: Staff,
    ip: &str,
    user_agent: Option<&str>,
) -> DomainResult<(Session, String)> {
    let now = ctx.now();
    let token = ctx.rng.token(32);
    let csrf = ctx.rng.token(32);
    let id_hash = hash_token(&token);
    let ua: Option<String> = user_agent.map(|u| u.chars().take(300).collect());
    session::insert(
        ctx.db.write(),
        &id_hash,
        staff.id,
        &csrf,
        now,
        now + ctx.auth.absolute_timeout_ms,
        Some(ip),
        ua.as_deref(),
    )
    .await?;
    Ok((
        Session {
            staff,
            id_hash,
            csrf_token: csrf,
        },
        token,
    ))
}

/// Resolve a session cookie; expired, idle or disabled sessions are removed and give None.
pub async fn session_from_token(ctx: &Ctx, token: &str) -> DomainResult<Option<Session>> {
    let now = ctx.now();
    let id_hash = hash_token(token);
    let Some(row) = session::find(ctx.db.read(), &id_hash).await? else {
        return Ok(None);
    };
    let staff = staff::get(ctx.db.read(), row.staff_id).await?;
    if row.expires_at <= now
        || now - row.last_seen_at >= ctx.auth.idle_timeout_ms
        || staff.disabled_at.is_some()
    {
        session::delete(ctx.db.write(), &id_hash).await?;
        return Ok(None);
    }
    if now - row.last_seen_at > 60_000 {
        session::touch(ctx.db.write(), &id_hash, now).await?;
    }
    Ok(Some(Session {
        staff: staff.into(),
        id_hash,
        csrf_token: row.csrf_token,
    }))
}

/// End a session.
pub async fn sign_out(ctx: &Ctx, id_hash: &str) -> DomainResult<()> {
    session::delete(ctx.db.write(), id_hash).await?;
    Ok(())
}

/// Change a password after checking the current one; every other session of the account ends
/// (and this one too unless `keep_current`).
pub async fn change_password(
    ctx: &Ctx,
    s: &Session,
    current: &str,
    new: &str,
    keep_current: bool,
) -> DomainResult<()> {
    let row = staff::get(ctx.db.read(), s.staff.id).await?;
    if ctx
        .hasher
        .verify(current, &row.password_hash, salt(ctx))
        .await
        == password::Verified::No
    {
        return Err(DomainError::invalid(
            "current_password",
            "password.current_wrong",
        ));
    }
    let hash = hash_new_password(ctx, new).await?;
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    staff::set_password(&mut *tx, row.id, &hash, now).await?;
    session::delete_for_staff(&mut *tx, row.id, keep_current.then_some(s.id_hash.as_str())).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_start_at_the_free_limit_and_double_up_to_the_cap() {
        let p = AuthPolicy::default();
        assert_eq!(block_for(&p, 4, 5), 0);
        assert_eq!(block_for(&p, 5, 5), 60_000);
        assert_eq!(block_for(&p, 6, 5), 120_000);
        assert_eq!(block_for(&p, 50, 5), 30 * 60_000);
    }

    #[test]
    fn emails_are_normalised_and_junk_refused() {
        assert_eq!(
            parse_email("  Owner@Example.COM ").unwrap(),
            "owner@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "a@.com",
            "a b@c.com",
            "x@y.com\r\nBcc: z@w.com",
            "<a@b.com>",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
    }
}
