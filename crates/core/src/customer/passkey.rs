//! Passkeys as stored credentials: list, add, remove (never the last way to sign in), the passkey
//! second factor, and completing a half-signed-in session. The WebAuthn ceremonies themselves
//! (challenges, signatures) are done by `webauthn-rs` in the web layer; here the credential is an
//! opaque JSON document keyed by its credential id.

use serde::Serialize;
use yiren_store::customer as store;
use yiren_store::StoreError;

use super::CustomerSession;
use crate::error::{DomainError, DomainResult};
use crate::id::hash_token;
use crate::Ctx;

/// Passkeys one customer may register.
pub const MAX_PER_CUSTOMER: usize = 20;

/// A passkey as its owner sees it.
#[derive(Debug, Clone, Serialize)]
pub struct PasskeyInfo {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A customer's passkeys.
pub async fn list(ctx: &Ctx, customer_id: i64) -> DomainResult<Vec<PasskeyInfo>> {
    Ok(store::passkeys(ctx.db.read(), customer_id)
        .await?
        .into_iter()
        .map(|p| PasskeyInfo {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        })
        .collect())
}

/// The stored credentials (JSON) of a customer, with their row ids.
pub async fn credentials(ctx: &Ctx, customer_id: i64) -> DomainResult<Vec<store::PasskeyRow>> {
    Ok(store::passkeys(ctx.db.read(), customer_id).await?)
}

/// The stored credential with this id.
pub async fn find(ctx: &Ctx, credential_id: &str) -> DomainResult<Option<store::PasskeyRow>> {
    Ok(store::find_passkey(ctx.db.read(), credential_id).await?)
}

/// Register a passkey for a customer.
pub async fn add(
    ctx: &Ctx,
    customer_id: i64,
    credential_id: &str,
    name: &str,
    passkey_json: &str,
) -> DomainResult<i64> {
    if store::passkeys(ctx.db.read(), customer_id).await?.len() >= MAX_PER_CUSTOMER {
        return Err(DomainError::invalid("name", "passkey.too_many"));
    }
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect();
    let name = if name.is_empty() {
        "Passkey".to_string()
    } else {
        name
    };
    let id = ctx.new_id();
    store::insert_passkey(
        ctx.db.write(),
        &store::PasskeyRow {
            id,
            customer_id,
            credential_id: credential_id.to_string(),
            name,
            passkey: passkey_json.to_string(),
            created_at: ctx.now(),
            last_used_at: None,
        },
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict(_) => DomainError::Conflict {
            key: "passkey.registered",
        },
        e => e.into(),
    })?;
    Ok(id)
}

/// Record a successful use (the credential's updated counter and flags).
pub async fn used(ctx: &Ctx, id: i64, passkey_json: &str) -> DomainResult<()> {
    store::update_passkey(ctx.db.write(), id, passkey_json, ctx.now()).await?;
    Ok(())
}

/// Remove a passkey, unless it is the customer's last way to sign in. Removing the last passkey
/// turns the second factor off.
pub async fn remove(ctx: &Ctx, customer_id: i64, id: i64) -> DomainResult<()> {
    let c = store::get(ctx.db.read(), customer_id).await?;
    let keys = store::passkeys(ctx.db.read(), customer_id).await?;
    if !keys.iter().any(|k| k.id == id) {
        return Err(DomainError::NotFound);
    }
    let ids = store::identities(ctx.db.read(), customer_id).await?.len();
    let other_ways = (keys.len() - 1) + ids + usize::from(c.email_verified_at.is_some());
    if other_ways == 0 {
        return Err(DomainError::Conflict {
            key: "identity.last_method",
        });
    }
    let mut tx = ctx.db.begin().await?;
    store::delete_owned(&mut *tx, store::Owned::Passkeys, customer_id, id).await?;
    if keys.len() == 1 {
        store::set_second_factor(&mut *tx, customer_id, false, ctx.now()).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Require (or stop requiring) a passkey after every other sign-in method. Turning it on needs a
/// registered passkey.
pub async fn set_second_factor(ctx: &Ctx, customer_id: i64, on: bool) -> DomainResult<()> {
    if on
        && store::passkeys(ctx.db.read(), customer_id)
            .await?
            .is_empty()
    {
        return Err(DomainError::invalid("second_factor", "passkey.none"));
    }
    store::set_second_factor(ctx.db.write(), customer_id, on, ctx.now()).await?;
    Ok(())
}

/// Complete a half-signed-in session after its passkey check: it becomes a full session under a
/// new token (the id rotates on this privilege change). Returns the new cookie token.
pub async fn complete_second_factor(ctx: &Ctx, s: &CustomerSession) -> DomainResult<String> {
    let token = ctx.rng.token(32);
    let csrf = ctx.rng.token(32);
    if !store::complete_second_factor(ctx.db.write(), &s.id_hash, &hash_token(&token), &csrf)
        .await?
    {
        return Err(DomainError::Unauthenticated);
    }
    Ok(token)
}
