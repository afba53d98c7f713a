//! First run: a one-time setup token lets whoever holds the console create the owner account.
//! No default credentials exist; once the owner exists no token is issued and the used one is dead.

use yiren_store::{settings as store, staff};

use crate::auth::{self, Role, Session};
use crate::error::{DomainError, DomainResult};
use crate::id::hash_token;
use crate::settings::{self, SiteSettings};
use crate::{Ctx, Locale};

/// If no owner exists yet, issue a setup token and return it. A link printed by an earlier start
/// stays valid until the owner is created (then every unused link dies).
pub async fn issue_token_if_needed(ctx: &Ctx) -> DomainResult<Option<String>> {
    if staff::count_owners(ctx.db.read()).await? > 0 {
        return Ok(None);
    }
    let token = ctx.rng.token(24);
    store::add_setup_token(ctx.db.write(), &hash_token(&token), ctx.now()).await?;
    Ok(Some(token))
}

/// True when `token` is an unused setup token.
pub async fn token_is_valid(ctx: &Ctx, token: &str) -> DomainResult<bool> {
    Ok(store::setup_token_valid(ctx.db.read(), &hash_token(token)).await?)
}

/// What the owner enters on the setup page.
#[derive(Debug)]
pub struct SetupInput<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub site: SiteSettings,
}

/// Create the owner and the site settings, consume the token, and sign the owner in — all or nothing.
pub async fn complete(
    ctx: &Ctx,
    token: &str,
    input: SetupInput<'_>,
    ip: &str,
    user_agent: Option<&str>,
) -> DomainResult<(Session, String)> {
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    if !store::consume_setup_token(&mut tx, &hash_token(token), now).await?
        || staff::count_owners(&mut *tx).await? > 0
    {
        return Err(DomainError::Conflict {
            key: "setup.link_used",
        });
    }
    store::drop_unused_setup_tokens(&mut tx).await?;
    let locale: Option<Locale> = Some(input.site.default_locale);
    let id = auth::create_staff(
        ctx,
        &mut tx,
        input.email,
        input.name,
        input.password,
        Role::Owner,
        locale,
    )
    .await?;
    settings::save_in(&mut tx, &input.site, now).await?;
    let row = staff::get(&mut *tx, id).await?;
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    yiren_store::settings::note_write();
    auth::start_session(ctx, row.into(), ip, user_agent).await
}
