//! Yiren as an OpenID Connect provider, so the owner's other apps share the user pool (single
//! sign-on): client apps, RS256 signing keys (rotated by command; old keys stay published for
//! verification), the authorization-code flow with PKCE (S256, required), ID tokens, opaque access
//! tokens, rotating refresh tokens with reuse detection, user-info, and logout.
//!
//! Language: a *client* is one of the owner's apps; a *family* is the chain of tokens one sign-in
//! at one client produced (a replayed refresh token revokes the whole family).
//!
//! Storage: client secrets, codes and tokens are stored as SHA-256 hashes; private signing keys are
//! encrypted (AES-256-GCM) with a key derived from the server key, which lives outside the database.

use base64::Engine as _;
use serde::Serialize;
use yiren_store::oidc as store;
use yiren_store::StoreError;

use crate::error::{DomainError, DomainResult};
use crate::id::hash_token;
use crate::{customer, Ctx};

/// How long an authorization code lives.
pub const CODE_TTL_MS: i64 = 5 * 60_000;
/// How long an access token (and the ID token) lives.
pub const ACCESS_TTL_MS: i64 = 3_600_000;
/// How long a refresh token lives (each use gives a new one).
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3_600_000;
/// Scopes this provider knows.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

fn b64u(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---- keys ----

const KEY_PURPOSE: &str = "oidc-signing-key";

fn seal(ctx: &Ctx, plain: &[u8]) -> DomainResult<String> {
    let mut nonce = [0u8; 12];
    ctx.rng.fill(&mut nonce);
    Ok(ctx.keys.seal(KEY_PURPOSE, plain, nonce))
}

fn open(ctx: &Ctx, sealed: &str) -> DomainResult<Vec<u8>> {
    ctx.keys.open(KEY_PURPOSE, sealed).ok_or_else(|| {
        DomainError::Store(StoreError::Corrupt(
            "a signing key cannot be decrypted: was secret.key replaced?".into(),
        ))
    })
}

/// Make a new RS256 signing key the active one; earlier keys stay in the JWKS. Returns its `kid`.
pub async fn rotate_key(ctx: &Ctx) -> DomainResult<String> {
    let rsa = openssl::rsa::Rsa::generate(2048).map_err(|e| {
        DomainError::Store(StoreError::Corrupt(format!(
            "RSA key generation failed: {e}"
        )))
    })?;
    let pem = rsa
        .private_key_to_pem()
        .map_err(|e| DomainError::Store(StoreError::Corrupt(e.to_string())))?;
    let n = rsa.n().to_vec();
    let e = rsa.e().to_vec();
    let kid = {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(&n)[..8])
    };
    let jwk = serde_json::json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": b64u(&n), "e": b64u(&e)});
    let row = store::KeyRow {
        kid: kid.clone(),
        alg: "RS256".into(),
        private_key: seal(ctx, &pem)?,
        public_jwk: jwk.to_string(),
        created_at: ctx.now(),
        retired_at: None,
    };
    let mut tx = ctx.db.begin().await?;
    store::rotate_key(&mut tx, &row).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(kid)
}

/// Create the first signing key if there is none, and check the active one can be used (it cannot
/// when `secret.key` is not the one it was encrypted with: better to say so at start).
pub async fn ensure_key(ctx: &Ctx) -> DomainResult<()> {
    if store::keys(ctx.db.read()).await?.is_empty() {
        rotate_key(ctx).await?;
    }
    signer(ctx).await.map(|_| ())
}

/// The published keys (`{"keys": [...]}`), active first.
pub async fn jwks(ctx: &Ctx) -> DomainResult<serde_json::Value> {
    let keys: Vec<serde_json::Value> = store::keys(ctx.db.read())
        .await?
        .iter()
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    Ok(serde_json::json!({ "keys": keys }))
}

async fn signer(ctx: &Ctx) -> DomainResult<(String, jsonwebtoken::EncodingKey)> {
    let keys = store::keys(ctx.db.read()).await?;
    let active = keys
        .iter()
        .find(|k| k.retired_at.is_none())
        .or(keys.first())
        .ok_or(DomainError::NotFound)?;
    let pem = open(ctx, &active.private_key)?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem)
        .map_err(|e| DomainError::Store(StoreError::Corrupt(format!("signing key: {e}"))))?;
    Ok((active.kid.clone(), key))
}

// ---- clients ----

/// A client app as admin sees it (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The owner's own app: no consent screen.
    pub first_party: bool,
    pub disabled: bool,
    pub created_at: i64,
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

impl From<store::ClientRow> for Client {
    fn from(r: store::ClientRow) -> Self {
        Client {
            id: r.id,
            redirect_uris: lines(&r.redirect_uris),
            post_logout_redirect_uris: lines(&r.post_logout_redirect_uris),
            client_id: r.client_id,
            name: r.name,
            first_party: r.first_party != 0,
            disabled: r.disabled_at.is_some(),
            created_at: r.created_at,
        }
    }
}

/// Check redirect URIs: one per line, absolute, https (http only for localhost), no fragment.
pub fn parse_uris(raw: &str, field: &'static str, required: bool) -> DomainResult<Vec<String>> {
    let list = lines(raw);
    if list.len() > 20 || (required && list.is_empty()) {
        return Err(DomainError::invalid(field, "oidc.redirect_uris_invalid"));
    }
    for u in &list {
        let ok = url::Url::parse(u).is_ok_and(|p| {
            let local = matches!(p.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
            (p.scheme() == "https" || (p.scheme() == "http" && local))
                && p.fragment().is_none()
                && p.username().is_empty()
        });
        if !ok {
            return Err(DomainError::invalid(field, "oidc.redirect_uris_invalid"));
        }
    }
    Ok(list)
}

fn clean_name(name: &str) -> DomainResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 80 || n.chars().any(char::is_control) {
        return Err(DomainError::invalid("name", "name.invalid"));
    }
    Ok(n.to_string())
}

/// Register a client app; returns it and its secret (shown once).
pub async fn create_client(
    ctx: &Ctx,
    name: &str,
    redirect_uris: &str,
    post_logout_redirect_uris: &str,
    first_party: bool,
) -> DomainResult<(Client, String)> {
    let name = clean_name(name)?;
    let redirects = parse_uris(redirect_uris, "redirect_uris", true)?;
    let logouts = parse_uris(
        post_logout_redirect_uris,
        "post_logout_redirect_uris",
        false,
    )?;
    let secret = format!("yoc_{}", ctx.rng.token(32));
    let row = store::ClientRow {
        id: ctx.new_id(),
        client_id: format!("app_{}", ctx.rng.token(12)),
        name,
        secret_hash: hash_token(&secret),
        redirect_uris: redirects.join("\n"),
        post_logout_redirect_uris: logouts.join("\n"),
        first_party: i64::from(first_party),
        created_at: ctx.now(),
        disabled_at: None,
    };
    store::insert_client(ctx.db.write(), &row).await?;
    Ok((row.into(), secret))
}

/// Change a client's name, URIs and first-party flag.
pub async fn update_client(
    ctx: &Ctx,
    id: i64,
    name: &str,
    redirect_uris: &str,
    post_logout_redirect_uris: &str,
    first_party: bool,
) -> DomainResult<()> {
    let name = clean_name(name)?;
    let redirects = parse_uris(redirect_uris, "redirect_uris", true)?;
    let logouts = parse_uris(
        post_logout_redirect_uris,
        "post_logout_redirect_uris",
        false,
    )?;
    store::update_client(
        ctx.db.write(),
        id,
        &name,
        &redirects.join("\n"),
        &logouts.join("\n"),
        first_party,
    )
    .await
    .map_err(|e| match e {
        StoreError::NotFound => DomainError::NotFound,
        e => e.into(),
    })
}

/// Give a client a new secret (the old one stops working, and its tokens are revoked).
pub async fn rotate_secret(ctx: &Ctx, id: i64) -> DomainResult<String> {
    let c = store::get_client(ctx.db.read(), id)
        .await
        .map_err(|_| DomainError::NotFound)?;
    let secret = format!("yoc_{}", ctx.rng.token(32));
    let mut tx = ctx.db.begin().await?;
    store::set_client_secret(&mut *tx, id, &hash_token(&secret)).await?;
    store::revoke_client_tokens(&mut *tx, &c.client_id, ctx.now()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(secret)
}

/// Disable or enable a client; disabling revokes its tokens.
pub async fn set_client_disabled(ctx: &Ctx, id: i64, disabled: bool) -> DomainResult<()> {
    let c = store::get_client(ctx.db.read(), id)
        .await
        .map_err(|_| DomainError::NotFound)?;
    let now = ctx.now();
    let mut tx = ctx.db.begin().await?;
    store::set_client_disabled(&mut *tx, id, disabled.then_some(now)).await?;
    if disabled {
        store::revoke_client_tokens(&mut *tx, &c.client_id, now).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Every client app.
pub async fn clients(ctx: &Ctx) -> DomainResult<Vec<Client>> {
    Ok(store::clients(ctx.db.read())
        .await?
        .into_iter()
        .map(Client::from)
        .collect())
}

/// An enabled client by its public id.
pub async fn find_client(ctx: &Ctx, client_id: &str) -> DomainResult<Option<Client>> {
    Ok(store::find_client(ctx.db.read(), client_id)
        .await?
        .map(Client::from)
        .filter(|c| !c.disabled))
}

// ---- authorization ----

/// An authorization request, as received.
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
pub struct AuthRequest {
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    #[serde(default)]
    pub code_challenge: String,
    #[serde(default)]
    pub code_challenge_method: String,
    pub prompt: Option<String>,
}

/// What is wrong with an authorization request.
#[derive(Debug, PartialEq)]
pub enum AuthError {
    /// Unknown client or unregistered redirect URI: show an error, never redirect.
    NoRedirect(&'static str),
    /// Redirect back to the client with `error` (RFC 6749 §4.1.2.1).
    Redirect(&'static str, &'static str),
}

/// A request that passed every check.
#[derive(Debug, Clone)]
pub struct ValidAuth {
    pub client: Client,
    pub scopes: Vec<String>,
    pub req: AuthRequest,
}

/// Check an authorization request.
pub async fn validate(ctx: &Ctx, req: &AuthRequest) -> Result<ValidAuth, AuthError> {
    let client = match find_client(ctx, &req.client_id).await {
        Ok(Some(c)) => c,
        _ => return Err(AuthError::NoRedirect("oidc.unknown_client")),
    };
    if !client.redirect_uris.contains(&req.redirect_uri) {
        return Err(AuthError::NoRedirect("oidc.bad_redirect_uri"));
    }
    if req.response_type != "code" {
        return Err(AuthError::Redirect(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let scopes: Vec<String> = req.scope.split_whitespace().map(str::to_string).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(AuthError::Redirect(
            "invalid_scope",
            "the openid scope is required",
        ));
    }
    let scopes: Vec<String> = scopes
        .into_iter()
        .filter(|s| SCOPES.contains(&s.as_str()))
        .collect();
    if req.code_challenge_method != "S256" || req.code_challenge.len() != 43 {
        return Err(AuthError::Redirect(
            "invalid_request",
            "PKCE with code_challenge_method=S256 is required",
        ));
    }
    if req.nonce.as_deref().is_some_and(|n| n.len() > 255)
        || req.state.as_deref().is_some_and(|s| s.len() > 1000)
    {
        return Err(AuthError::Redirect(
            "invalid_request",
            "nonce or state too long",
        ));
    }
    Ok(ValidAuth {
        client,
        scopes,
        req: req.clone(),
    })
}

/// True when the customer must approve this app (third-party app without a covering consent).
pub async fn needs_consent(ctx: &Ctx, v: &ValidAuth, customer_id: i64) -> DomainResult<bool> {
    if v.client.first_party {
        return Ok(false);
    }
    let given = store::consent(ctx.db.read(), &v.client.client_id, customer_id).await?;
    Ok(!given.is_some_and(|g| {
        let g: Vec<&str> = g.split_whitespace().collect();
        v.scopes.iter().all(|s| g.contains(&s.as_str()))
    }))
}

/// Issue a code for a signed-in customer (recording consent when they just gave it).
pub async fn issue_code(
    ctx: &Ctx,
    v: &ValidAuth,
    s: &customer::CustomerSession,
    consented: bool,
) -> DomainResult<String> {
    let code = ctx.rng.token(32);
    let now = ctx.now();
    let scope = v.scopes.join(" ");
    let mut tx = ctx.db.begin().await?;
    if consented {
        store::put_consent(&mut *tx, &v.client.client_id, s.customer.id, &scope, now).await?;
    }
    store::insert_code(
        &mut *tx,
        &store::CodeRow {
            code_hash: hash_token(&code),
            client_id: v.client.client_id.clone(),
            customer_id: s.customer.id,
            redirect_uri: v.req.redirect_uri.clone(),
            scope,
            nonce: v.req.nonce.clone(),
            code_challenge: v.req.code_challenge.clone(),
            auth_time: s.created_at,
            created_at: now,
            expires_at: now + CODE_TTL_MS,
            used_at: None,
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(code)
}

// ---- tokens ----

/// An error at the token endpoint (RFC 6749 §5.2 codes).
#[derive(Debug, PartialEq)]
pub enum TokenError {
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    UnsupportedGrantType,
    Server,
}

impl TokenError {
    /// The wire code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidGrant => "invalid_grant",
            TokenError::InvalidRequest => "invalid_request",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::Server => "server_error",
        }
    }
}

impl From<DomainError> for TokenError {
    fn from(e: DomainError) -> Self {
        tracing::error!(error = %e, "token endpoint failed");
        TokenError::Server
    }
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        TokenError::from(DomainError::from(e))
    }
}

/// A successful token response.
#[derive(Debug, Serialize)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub id_token: String,
    pub scope: String,
}

/// Authenticate a client by id and secret.
pub async fn authenticate_client(
    ctx: &Ctx,
    client_id: &str,
    secret: &str,
) -> Result<store::ClientRow, TokenError> {
    let row = store::find_client(ctx.db.read(), client_id)
        .await?
        .ok_or(TokenError::InvalidClient)?;
    use subtle::ConstantTimeEq;
    let ok: bool = row
        .secret_hash
        .as_bytes()
        .ct_eq(hash_token(secret).as_bytes())
        .into();
    if !ok || row.disabled_at.is_some() {
        return Err(TokenError::InvalidClient);
    }
    Ok(row)
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<&'a str>,
}

/// The claims about a customer that a scope allows.
fn person_claims(
    c: &customer::Customer,
    scope: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let has = |s: &str| scope.split_whitespace().any(|x| x == s);
    let mut m = serde_json::Map::new();
    m.insert("sub".into(), c.id.to_string().into());
    if has("email") {
        if let Some(e) = &c.email {
            m.insert("email".into(), e.clone().into());
            m.insert("email_verified".into(), c.email_verified.into());
        }
    }
    if has("profile") {
        m.insert("name".into(), c.display_name().into());
        if let Some(l) = c.locale {
            m.insert("locale".into(), l.tag().into());
        }
        if let Some(p) = &c.avatar_url {
            m.insert("picture".into(), p.clone().into());
        }
    }
    m
}

#[allow(clippy::too_many_arguments)]
async fn mint(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    issuer: &str,
    client_id: &str,
    c: &customer::Customer,
    scope: &str,
    auth_time: i64,
    nonce: Option<&str>,
    family: &str,
) -> Result<Tokens, TokenError> {
    let now = ctx.now();
    let access = ctx.rng.token(32);
    let refresh = ctx.rng.token(32);
    for (token, kind, ttl) in [
        (&access, "access", ACCESS_TTL_MS),
        (&refresh, "refresh", REFRESH_TTL_MS),
    ] {
        store::insert_token(
            &mut **tx,
            &store::TokenRow {
                token_hash: hash_token(token),
                kind: kind.into(),
                family: family.into(),
                client_id: client_id.into(),
                customer_id: c.id,
                scope: scope.into(),
                auth_time,
                created_at: now,
                expires_at: now + ttl,
                revoked_at: None,
            },
        )
        .await?;
    }
    let claims = person_claims(c, scope);
    let id = IdClaims {
        iss: issuer,
        sub: c.id.to_string(),
        aud: client_id,
        exp: (now + ACCESS_TTL_MS) / 1000,
        iat: now / 1000,
        auth_time: auth_time / 1000,
        nonce,
        email: claims
            .get("email")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        email_verified: claims.get("email_verified").and_then(|v| v.as_bool()),
        name: claims
            .get("name")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        locale: c
            .locale
            .map(|l| l.tag())
            .filter(|_| claims.contains_key("locale")),
    };
    let (kid, key) = signer(ctx).await?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid);
    let id_token = jsonwebtoken::encode(&header, &id, &key).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an ID token");
        TokenError::Server
    })?;
    Ok(Tokens {
        access_token: access,
        token_type: "Bearer",
        expires_in: ACCESS_TTL_MS / 1000,
        refresh_token: refresh,
        id_token,
        scope: scope.into(),
    })
}

async fn usable_customer(ctx: &Ctx, id: i64) -> Result<customer::Customer, TokenError> {
    match customer::get(ctx, id).await {
        Ok(c) if !c.disabled && !c.deleted => Ok(c),
        _ => Err(TokenError::InvalidGrant),
    }
}

/// `grant_type=authorization_code`: a code (single use; a replay revokes what it gave), checked
/// against client, redirect URI and the PKCE verifier.
pub async fn exchange_code(
    ctx: &Ctx,
    issuer: &str,
    client: &store::ClientRow,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Tokens, TokenError> {
    let now = ctx.now();
    let code_hash = hash_token(code);
    let mut tx = ctx.db.begin().await?;
    let Some(row) = store::use_code(&mut *tx, &code_hash, now).await? else {
        drop(tx);
        if store::code_was_used(ctx.db.read(), &code_hash).await? {
            // RFC 6749 §4.1.2: a code used twice revokes the tokens issued with it.
            store::revoke_family(ctx.db.write(), &code_hash, now).await?;
        }
        return Err(TokenError::InvalidGrant);
    };
    let challenge = {
        use sha2::Digest;
        b64u(&sha2::Sha256::digest(verifier.as_bytes()))
    };
    if row.client_id != client.client_id
        || row.redirect_uri != redirect_uri
        || row.expires_at <= now
        || verifier.len() < 43
        || challenge != row.code_challenge
    {
        // The code is spent either way.
        tx.commit().await.map_err(StoreError::from)?;
        return Err(TokenError::InvalidGrant);
    }
    let c = usable_customer(ctx, row.customer_id).await?;
    let tokens = mint(
        ctx,
        &mut tx,
        issuer,
        &client.client_id,
        &c,
        &row.scope,
        row.auth_time,
        row.nonce.as_deref(),
        &code_hash,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(tokens)
}

/// `grant_type=refresh_token`: rotate. A refresh token used twice revokes its whole family.
pub async fn refresh(
    ctx: &Ctx,
    issuer: &str,
    client: &store::ClientRow,
    refresh_token: &str,
) -> Result<Tokens, TokenError> {
    let now = ctx.now();
    let hash = hash_token(refresh_token);
    let row = store::find_token(ctx.db.read(), &hash)
        .await?
        .ok_or(TokenError::InvalidGrant)?;
    if row.kind != "refresh" || row.client_id != client.client_id {
        return Err(TokenError::InvalidGrant);
    }
    if row.revoked_at.is_some() {
        store::revoke_family(ctx.db.write(), &row.family, now).await?;
        return Err(TokenError::InvalidGrant);
    }
    if row.expires_at <= now {
        return Err(TokenError::InvalidGrant);
    }
    let c = usable_customer(ctx, row.customer_id).await?;
    let mut tx = ctx.db.begin().await?;
    if !store::revoke_token(&mut *tx, &hash, now).await? {
        // Lost a race with another use of the same token: treat as reuse.
        drop(tx);
        store::revoke_family(ctx.db.write(), &row.family, now).await?;
        return Err(TokenError::InvalidGrant);
    }
    let tokens = mint(
        ctx,
        &mut tx,
        issuer,
        &client.client_id,
        &c,
        &row.scope,
        row.auth_time,
        None,
        &row.family,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(tokens)
}

/// The user-info claims for a valid access token (None: invalid, expired or revoked).
pub async fn userinfo(ctx: &Ctx, access_token: &str) -> DomainResult<Option<serde_json::Value>> {
    let Some(row) = store::find_token(ctx.db.read(), &hash_token(access_token)).await? else {
        return Ok(None);
    };
    if row.kind != "access" || row.revoked_at.is_some() || row.expires_at <= ctx.now() {
        return Ok(None);
    }
    let c = match customer::get(ctx, row.customer_id).await {
        Ok(c) if !c.disabled && !c.deleted => c,
        _ => return Ok(None),
    };
    Ok(Some(serde_json::Value::Object(person_claims(
        &c, &row.scope,
    ))))
}

/// Revoke every token a customer holds at every app.
pub async fn revoke_customer(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    customer_id: i64,
) -> DomainResult<()> {
    store::revoke_customer_tokens(&mut **tx, customer_id, ctx.now()).await?;
    Ok(())
}

/// Check an `id_token_hint` we issued (signature, issuer; expiry ignored as logout allows):
/// returns (customer id, client id).
pub async fn id_token_hint(ctx: &Ctx, issuer: &str, token: &str) -> Option<(i64, String)> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    let kid = header.kid?;
    let keys = store::keys(ctx.db.read()).await.ok()?;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_str(&keys.iter().find(|k| k.kid == kid)?.public_jwk).ok()?;
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.set_issuer(&[issuer]);
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).ok()?;
    let sub = data.claims.get("sub")?.as_str()?.parse().ok()?;
    let aud = data.claims.get("aud")?.as_str()?.to_string();
    Some((sub, aud))
}
