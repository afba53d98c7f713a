//! Staff API tokens: shown once at creation, stored hashed, scoped, revocable, `last_used_at` kept.

use serde::Serialize;
use yiren_store::{api_token as store, staff};

use crate::auth::{Role, Staff};
use crate::error::{DomainError, DomainResult};
use crate::id::hash_token;
use crate::Ctx;

/// Every scope a token can carry.
pub const SCOPES: &[&str] = &[
    "shop:read",
    "shop:write",
    "staff:read",
    "customers:read",
    "customers:write",
    "jobs:read",
    "jobs:write",
    "tokens:read",
    "tokens:write",
    "reach:read",
    "reach:write",
    "products:read",
    "products:write",
    "orders:read",
    "orders:write",
    "discounts:read",
    "discounts:write",
    "licenses:read",
    "licenses:write",
    "events:read",
];

/// Scopes only the owner may grant.
const OWNER_ONLY: &[&str] = &["shop:write", "tokens:write", "tokens:read"];

/// A token as listed (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub staff_id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked: bool,
}

impl From<store::ApiTokenRow> for ApiToken {
    fn from(r: store::ApiTokenRow) -> Self {
        ApiToken {
            id: r.id,
            staff_id: r.staff_id,
            name: r.name,
            prefix: r.token_prefix,
            scopes: r.scopes.split_whitespace().map(str::to_string).collect(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked: r.revoked_at.is_some(),
        }
    }
}

impl ApiToken {
    /// True when the token carries `scope`.
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Create a token for `owner_of`; returns it and the secret (shown once).
pub async fn create(
    ctx: &Ctx,
    creator: &Staff,
    name: &str,
    scopes: &[String],
) -> DomainResult<(ApiToken, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(DomainError::invalid("name", "token.name_invalid"));
    }
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(DomainError::invalid("scopes", "token.scopes_invalid"));
    }
    if creator.role != Role::Owner && scopes.iter().any(|s| OWNER_ONLY.contains(&s.as_str())) {
        return Err(DomainError::Forbidden);
    }
    let mut scopes: Vec<String> = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let secret = format!("yiren_{}", ctx.rng.token(32));
    let prefix: String = secret.chars().take(12).collect();
    let id = ctx.new_id();
    let now = ctx.now();
    store::insert(
        ctx.db.write(),
        id,
        creator.id,
        name,
        &prefix,
        &hash_token(&secret),
        &scopes.join(" "),
        now,
    )
    .await?;
    let token = ApiToken {
        id,
        staff_id: creator.id,
        name: name.to_string(),
        prefix,
        scopes,
        created_at: now,
        last_used_at: None,
        revoked: false,
    };
    Ok((token, secret))
}

/// Resolve a bearer secret to its token and account; None when unknown, revoked or disabled.
pub async fn authenticate(ctx: &Ctx, secret: &str) -> DomainResult<Option<(ApiToken, Staff)>> {
    let Some(row) = store::find_live(ctx.db.read(), &hash_token(secret)).await? else {
        return Ok(None);
    };
    let now = ctx.now();
    if row.last_used_at.is_none_or(|t| t < now - 60_000) {
        store::touch(ctx.db.write(), row.id, now).await?;
    }
    let staff = staff::get(ctx.db.read(), row.staff_id).await?;
    Ok(Some((row.into(), staff.into())))
}

/// Every token, newest first.
pub async fn list(ctx: &Ctx) -> DomainResult<Vec<ApiToken>> {
    Ok(store::list(ctx.db.read())
        .await?
        .into_iter()
        .map(ApiToken::from)
        .collect())
}

/// Revoke a token on behalf of `actor`: the owner may revoke any token, staff only their own.
pub async fn revoke_as(ctx: &Ctx, actor: &Staff, id: i64) -> DomainResult<()> {
    if actor.role != Role::Owner {
        let own = store::list(ctx.db.read())
            .await?
            .iter()
            .any(|t| t.id == id && t.staff_id == actor.id);
        if !own {
            return Err(DomainError::Forbidden);
        }
    }
    revoke(ctx, id).await
}

/// Revoke a token.
pub async fn revoke(ctx: &Ctx, id: i64) -> DomainResult<()> {
    store::revoke(ctx.db.write(), id, ctx.now())
        .await
        .map_err(|e| match e {
            yiren_store::StoreError::NotFound => DomainError::NotFound,
            e => e.into(),
        })
}
