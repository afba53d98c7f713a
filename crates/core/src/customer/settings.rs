//! Which sign-in methods the owner offers, stored as one JSON setting (`customer_auth`).

use serde::{Deserialize, Serialize};
use yiren_store::settings as store;

use crate::error::{DomainError, DomainResult};
use crate::Ctx;

const KEY: &str = "customer_auth";

/// The sign-in methods and their configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SignInSettings {
    /// Email one-time codes (also how new customers sign up by email).
    pub email_code: bool,
    /// Email + password, for customers who set one.
    pub password: bool,
    /// Passkeys.
    pub passkey: bool,
    /// New accounts need an invite code.
    pub invite_only: bool,
    /// OAuth 2 / OpenID Connect providers (GitHub, Google, Gitee, Linux.do, ...).
    pub providers: Vec<OAuthProvider>,
    /// WeChat 公众号 message login.
    pub wechat: WechatSettings,
}

impl Default for SignInSettings {
    fn default() -> Self {
        SignInSettings {
            email_code: true,
            password: true,
            passkey: true,
            invite_only: false,
            providers: Vec::new(),
            wechat: WechatSettings::default(),
        }
    }
}

/// How a provider is spoken to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// GitHub's OAuth web flow (emails from `/user/emails`, verified ones only).
    #[default]
    Github,
    /// OpenID Connect: endpoints from the issuer's discovery document; `sub` and `email_verified`.
    Oidc,
    /// Plain OAuth 2 with a user-info endpoint (Gitee, Linux.do Connect, ...).
    Oauth2,
}

/// One OAuth/OIDC provider the owner configured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct OAuthProvider {
    /// URL-safe identifier, e.g. `github`, `google`; identities are stored under it.
    pub slug: String,
    /// Button label.
    pub name: String,
    pub kind: ProviderKind,
    pub enabled: bool,
    pub client_id: String,
    /// Write-only in admin.
    pub client_secret: String,
    /// OIDC issuer (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// Endpoints (GitHub and OAuth 2; filled from discovery for OIDC when empty).
    pub authorize_url: String,
    pub token_url: String,
    pub userinfo_url: String,
    /// GitHub only: the API base (default `https://api.github.com`).
    pub api_base: String,
    /// Space-separated scopes.
    pub scopes: String,
}

impl OAuthProvider {
    /// GitHub with its public endpoints.
    pub fn github(client_id: &str, client_secret: &str) -> OAuthProvider {
        OAuthProvider {
            slug: "github".into(),
            name: "GitHub".into(),
            kind: ProviderKind::Github,
            enabled: true,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            authorize_url: "https://github.com/login/oauth/authorize".into(),
            token_url: "https://github.com/login/oauth/access_token".into(),
            api_base: "https://api.github.com".into(),
            scopes: "read:user user:email".into(),
            ..Default::default()
        }
    }

    /// Check a provider the owner entered.
    pub fn validate(&self) -> DomainResult<()> {
        let slug_ok = !self.slug.is_empty()
            && self.slug.len() <= 32
            && self
                .slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !matches!(
                self.slug.as_str(),
                "email" | "wechat" | "passkey" | "password"
            );
        if !slug_ok {
            return Err(DomainError::invalid("slug", "signin.slug_invalid"));
        }
        if self.name.trim().is_empty() || self.client_id.trim().is_empty() {
            return Err(DomainError::invalid("name", "signin.provider_incomplete"));
        }
        let url_ok = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        let ok = match self.kind {
            ProviderKind::Oidc => url_ok(&self.issuer),
            ProviderKind::Github | ProviderKind::Oauth2 => {
                url_ok(&self.authorize_url)
                    && url_ok(&self.token_url)
                    && (self.kind == ProviderKind::Github || url_ok(&self.userinfo_url))
            }
        };
        if !ok {
            return Err(DomainError::invalid("issuer", "signin.provider_urls"));
        }
        Ok(())
    }
}

/// WeChat 公众号 message login.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct WechatSettings {
    pub enabled: bool,
    /// The token configured in the 公众号 console (signs every callback).
    pub token: String,
    /// Account name shown on the sign-in page.
    pub account_name: String,
    /// URL of the account's QR image.
    pub qr_image_url: String,
    /// Callback forwarding: messages are first offered to this URL; handled here if it does not.
    pub forward_url: String,
}

impl SignInSettings {
    /// An enabled provider by slug.
    pub fn provider(&self, slug: &str) -> Option<&OAuthProvider> {
        self.providers.iter().find(|p| p.enabled && p.slug == slug)
    }
}

const SECRET_PURPOSE: &str = "sign-in-provider-secret";

/// Read the settings (defaults when unset or unreadable); secrets come back decrypted.
pub async fn load(ctx: &Ctx) -> DomainResult<SignInSettings> {
    let mut s: SignInSettings = store::get(ctx.db.read(), KEY)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    let open = |v: &mut String| {
        if !v.is_empty() {
            *v = ctx
                .keys
                .open(SECRET_PURPOSE, v)
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
        }
    };
    for p in &mut s.providers {
        open(&mut p.client_secret);
    }
    open(&mut s.wechat.token);
    Ok(s)
}

/// Save the settings.
pub async fn save(ctx: &Ctx, s: &SignInSettings) -> DomainResult<()> {
    for p in &s.providers {
        p.validate()?;
    }
    let mut slugs: Vec<&str> = s.providers.iter().map(|p| p.slug.as_str()).collect();
    slugs.sort_unstable();
    if slugs.windows(2).any(|w| w[0] == w[1]) {
        return Err(DomainError::invalid("slug", "signin.slug_taken"));
    }
    // Client secrets and the WeChat token are stored encrypted with the server key (SEC-1).
    let mut stored = s.clone();
    let seal = |v: &mut String| {
        if !v.is_empty() {
            let mut nonce = [0u8; 12];
            ctx.rng.fill(&mut nonce);
            *v = ctx.keys.seal(SECRET_PURPOSE, v.as_bytes(), nonce);
        }
    };
    for p in &mut stored.providers {
        seal(&mut p.client_secret);
    }
    seal(&mut stored.wechat.token);
    let v = serde_json::to_string(&stored).unwrap_or_default();
    store::put(ctx.db.write(), KEY, &v, ctx.now()).await?;
    Ok(())
}

/// Add a provider, or replace the one with the same slug; an empty client secret keeps the stored
/// one (secrets are write-only in admin).
pub async fn put_provider(ctx: &Ctx, mut p: OAuthProvider) -> DomainResult<()> {
    let mut s = load(ctx).await?;
    match s.providers.iter().position(|x| x.slug == p.slug) {
        Some(i) => {
            if p.client_secret.is_empty() {
                p.client_secret = s.providers[i].client_secret.clone();
            }
            s.providers[i] = p;
        }
        None => s.providers.push(p),
    }
    save(ctx, &s).await
}

/// Remove a provider (NotFound when there is none with this slug).
pub async fn remove_provider(ctx: &Ctx, slug: &str) -> DomainResult<()> {
    let mut s = load(ctx).await?;
    let before = s.providers.len();
    s.providers.retain(|p| p.slug != slug);
    if s.providers.len() == before {
        return Err(DomainError::NotFound);
    }
    save(ctx, &s).await
}
