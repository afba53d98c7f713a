//! The client side of OAuth 2 / OpenID Connect sign-in: authorization URL with PKCE (S256) and
//! state, code exchange, and who the user is (OIDC user-info, GitHub's `/user` + `/user/emails`,
//! or a plain OAuth 2 user-info endpoint). Every request goes through the guarded [`HttpClient`].
//!
//! Emails are returned only when the provider says they are verified.
//!
//! Written against the HTTP exchanges directly (two or three requests) rather than with the
//! `oauth2` crate, whose own HTTP client would bypass the SSRF guard.

use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest;

use crate::http::{HttpClient, OutboundError};

/// An error talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(transparent)]
    Http(#[from] OutboundError),
    #[error("the provider answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the provider's answer is not understood: {0}")]
    Malformed(String),
}

/// Where a provider's endpoints are.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Endpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: String,
}

/// The PKCE challenge for a verifier (S256).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// The URL to send the browser to.
pub fn authorize_url(
    authorize_endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &str,
    state: &str,
    verifier: &str,
    nonce: Option<&str>,
) -> Result<String, OAuthError> {
    let mut u = url::Url::parse(authorize_endpoint)
        .map_err(|e| OAuthError::Malformed(format!("authorization endpoint: {e}")))?;
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scopes)
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(n) = nonce {
            q.append_pair("nonce", n);
        }
    }
    Ok(u.to_string())
}

fn json<T: serde::de::DeserializeOwned>(f: &crate::http::Fetched) -> Result<T, OAuthError> {
    if !(200..300).contains(&f.status) {
        return Err(OAuthError::Refused {
            status: f.status,
            message: String::from_utf8_lossy(&f.body).chars().take(200).collect(),
        });
    }
    serde_json::from_slice(&f.body).map_err(|e| OAuthError::Malformed(e.to_string()))
}

/// Fetch an issuer's discovery document.
pub async fn discover(http: &HttpClient, issuer: &str) -> Result<Endpoints, OAuthError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let f = http.send(http.request(reqwest::Method::GET, &url)?).await?;
    json(&f)
}

/// The token response (fields we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// Exchange an authorization code (with the PKCE verifier) for tokens.
pub async fn exchange_code(
    http: &HttpClient,
    token_endpoint: &str,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Tokens, OAuthError> {
    let rb = http
        .request(reqwest::Method::POST, token_endpoint)?
        .header("accept", "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("code_verifier", verifier),
        ]);
    let t: Tokens = json(&http.send(rb).await?)?;
    if let Some(e) = t.error {
        return Err(OAuthError::Refused {
            status: 200,
            message: format!("{e}: {}", t.error_description.unwrap_or_default()),
        });
    }
    if t.access_token.is_empty() {
        return Err(OAuthError::Malformed("no access_token".into()));
    }
    Ok(t)
}

/// Who signed in, as the provider vouches.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    /// The provider's stable id.
    pub subject: String,
    /// An email the provider says is verified.
    pub verified_email: Option<String>,
    /// Name or login.
    pub display: Option<String>,
}

async fn get_json(
    http: &HttpClient,
    url: &str,
    token: &str,
) -> Result<serde_json::Value, OAuthError> {
    let rb = http
        .request(reqwest::Method::GET, url)?
        .bearer_auth(token)
        .header("accept", "application/json");
    json(&http.send(rb).await?)
}

fn string_of(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn verified_flag(v: &serde_json::Value) -> bool {
    match v.get("email_verified") {
        Some(serde_json::Value::Bool(b)) => *b,
        // Some providers send the string "true".
        Some(serde_json::Value::String(s)) => s == "true",
        _ => false,
    }
}

/// OIDC / OAuth 2 user-info: `sub` (or `id`), `email` only when `email_verified` is true.
pub async fn userinfo(http: &HttpClient, url: &str, token: &str) -> Result<Person, OAuthError> {
    let v = get_json(http, url, token).await?;
    let subject = string_of(&v, "sub")
        .or_else(|| string_of(&v, "id"))
        .ok_or_else(|| OAuthError::Malformed("user-info has no sub or id".into()))?;
    Ok(Person {
        subject,
        verified_email: string_of(&v, "email").filter(|_| verified_flag(&v)),
        display: string_of(&v, "name")
            .or_else(|| string_of(&v, "preferred_username"))
            .or_else(|| string_of(&v, "username"))
            .or_else(|| string_of(&v, "login")),
    })
}

/// GitHub: `/user` for the id and login, `/user/emails` for the primary verified email.
pub async fn github_person(
    http: &HttpClient,
    api_base: &str,
    token: &str,
) -> Result<Person, OAuthError> {
    let base = api_base.trim_end_matches('/');
    let user = get_json(http, &format!("{base}/user"), token).await?;
    let subject = string_of(&user, "id")
        .ok_or_else(|| OAuthError::Malformed("GitHub user has no id".into()))?;
    let emails = get_json(http, &format!("{base}/user/emails"), token)
        .await
        .unwrap_or(serde_json::Value::Null);
    let verified: Vec<&serde_json::Value> = emails
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e.get("verified") == Some(&serde_json::Value::Bool(true)))
                // GitHub's no-reply addresses are verified but reach nobody.
                .filter(|e| {
                    string_of(e, "email").is_some_and(|m| !m.ends_with("@users.noreply.github.com"))
                })
                .collect()
        })
        .unwrap_or_default();
    let email = verified
        .iter()
        .find(|e| e.get("primary") == Some(&serde_json::Value::Bool(true)))
        .or(verified.first())
        .and_then(|e| string_of(e, "email"));
    Ok(Person {
        subject,
        verified_email: email,
        display: string_of(&user, "name").or_else(|| string_of(&user, "login")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_the_rfc_7636_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_authorize_url_carries_state_and_an_s256_challenge() {
        let u = authorize_url(
            "https://p.example/auth?x=1",
            "cid",
            "https://s/cb",
            "openid email",
            "st",
            "v",
            Some("n"),
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> = url::Url::parse(&u)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(q["x"], "1");
        assert_eq!(q["state"], "st");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce_challenge("v"));
        assert_eq!(q["scope"], "openid email");
    }

    #[test]
    fn unverified_emails_are_dropped() {
        let v = serde_json::json!({"sub": "1", "email": "a@b.c", "email_verified": false});
        assert!(!verified_flag(&v));
        let v = serde_json::json!({"sub": "1", "email": "a@b.c", "email_verified": "true"});
        assert!(verified_flag(&v));
        assert!(!verified_flag(&serde_json::json!({"email": "a@b.c"})));
    }
}
