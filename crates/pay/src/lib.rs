//! Payment gateways an individual can open, each an implementation of
//! [`yiren_core::payment::PaymentGateway`]: pure protocol — building signed requests, verifying
//! signed notifications, formatting amounts as the gateway expects — with the guarded outbound
//! HTTP client for the calls a gateway needs (creating a payment through an API, queries).
//! [`Factory`] makes them from the owner's settings.
//!
//! Gateways: `epay` (the 彩虹易支付 protocol that many aggregators speak), `xorpay` (XorPay, for
//! individuals), `xunhupay` (虎皮椒), `alipay` (支付宝开放平台), `wechatpay` (微信支付 APIv3), `stripe` (Stripe Checkout), `paypal` (PayPal Checkout), `lemonsqueezy` (Lemon Squeezy).

use std::sync::Arc;

use yiren_core::error::{DomainError, DomainResult};
use yiren_core::payment::settings::GatewayConfig;
use yiren_core::payment::{GatewayFactory, Kind, PaymentGateway, RawNotification, Rejected};
use yiren_providers::http::HttpClient;

pub mod alipay;
pub mod epay;
pub mod lemonsqueezy;
pub mod paypal;
pub mod stripe;
pub mod wechatpay;
pub mod xorpay;
pub mod xunhupay;

/// Makes the configured gateways; holds the outbound client they share.
pub struct Factory {
    pub http: HttpClient,
}

static KINDS: &[Kind] = &[
    xorpay::KIND,
    xunhupay::KIND,
    alipay::KIND,
    wechatpay::KIND,
    epay::KIND,
    stripe::KIND,
    paypal::KIND,
    lemonsqueezy::KIND,
];

impl GatewayFactory for Factory {
    fn kinds(&self) -> &'static [Kind] {
        KINDS
    }

    fn build(&self, c: &GatewayConfig) -> DomainResult<Arc<dyn PaymentGateway>> {
        match c.kind.as_str() {
            "epay" => Ok(Arc::new(epay::Epay::from_config(c, self.http.clone())?)),
            "xorpay" => Ok(Arc::new(xorpay::Xorpay::from_config(c, self.http.clone())?)),
            "xunhupay" => Ok(Arc::new(xunhupay::Xunhupay::from_config(
                c,
                self.http.clone(),
            )?)),
            "stripe" => Ok(Arc::new(stripe::Stripe::from_config(c, self.http.clone())?)),
            "paypal" => Ok(Arc::new(paypal::Paypal::from_config(c, self.http.clone())?)),
            "lemonsqueezy" => Ok(Arc::new(lemonsqueezy::LemonSqueezy::from_config(
                c,
                self.http.clone(),
            )?)),
            "alipay" => Ok(Arc::new(alipay::Alipay::from_config(c, self.http.clone())?)),
            "wechatpay" => Ok(Arc::new(wechatpay::Wechatpay::from_config(
                c,
                self.http.clone(),
            )?)),
            _ => Err(DomainError::invalid("kind", "payments.kind_unknown")),
        }
    }
}

/// Constant-time comparison of two signatures (ASCII, compared case-sensitively).
pub(crate) fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The parameters of a notification sent as a query string (GET) or a form (POST), refused when
/// malformed: not URL-encoded UTF-8, a name or value too long (nothing a gateway sends is over
/// 1 KiB), or a name twice (which of the two would be believed?).
pub(crate) fn notification_params(
    raw: &RawNotification,
) -> Result<Vec<(String, String)>, Rejected> {
    let encoded = if raw.query.is_empty() {
        std::str::from_utf8(&raw.body)
            .map_err(|_| Rejected::Malformed("not UTF-8".into()))?
            .to_string()
    } else {
        raw.query.clone()
    };
    let params: Vec<(String, String)> = serde_urlencoded::from_str(&encoded)
        .map_err(|_| Rejected::Malformed("not URL-encoded".into()))?;
    if params.iter().any(|(k, v)| k.len() > 64 || v.len() > 1024) {
        return Err(Rejected::Malformed("a parameter is too long".into()));
    }
    let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(Rejected::Malformed("a parameter appears twice".into()));
    }
    Ok(params)
}

/// A parameter's value.
pub(crate) fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A parameter that must be present and not empty.
pub(crate) fn required<'a>(params: &'a [(String, String)], k: &str) -> Result<&'a str, Rejected> {
    param(params, k)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Rejected::Malformed(format!("no {k}")))
}

/// MD5 of `text`, lowercase hex.
pub(crate) fn md5_hex(text: &str) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(text.as_bytes()))
}

/// A JSON field as text (numbers too; "" when absent).
pub(crate) fn json_text(v: &serde_json::Value, k: &str) -> String {
    match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A base URL from the settings: http(s), a host, no query or fragment; ends with `/`.
pub(crate) fn base_url(c: &GatewayConfig) -> DomainResult<String> {
    let mut base = c.field("base_url").trim().to_string();
    let ok = url::Url::parse(&base)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        && !base.contains(['?', '#']);
    if !ok {
        return Err(DomainError::invalid("base_url", "payments.url_invalid"));
    }
    if !base.ends_with('/') {
        base.push('/');
    }
    Ok(base)
}

/// Refuse a payment in anything but yuan before anything is sent (the Chinese gateways' rule).
pub(crate) fn only_cny(req: &yiren_core::payment::PaymentRequest) -> DomainResult<()> {
    if req.currency == "CNY" {
        Ok(())
    } else {
        Err(DomainError::invalid("gateway", "checkout.gateway_currency"))
    }
}

/// A secret the settings must hold.
pub(crate) fn secret(c: &GatewayConfig, name: &'static str) -> DomainResult<String> {
    let v = c.secret(name).to_string();
    if v.is_empty() {
        return Err(DomainError::invalid(name, "payments.field_required"));
    }
    Ok(v)
}

/// A gateway's answer that is not what the protocol says (network, status, JSON).
pub(crate) fn unavailable(kind: &str, e: impl std::fmt::Display) -> DomainError {
    DomainError::Unavailable(format!("{kind}: {e}"))
}

/// POST a form and read the JSON answer.
pub(crate) async fn post_form_json(
    http: &HttpClient,
    kind: &str,
    url: &str,
    form: &[(String, String)],
) -> DomainResult<serde_json::Value> {
    let rb = http
        .request(reqwest::Method::POST, url)
        .map_err(|e| unavailable(kind, e))?
        .form(form);
    read_json(http, kind, rb).await
}

/// Send a request and read the JSON answer.
pub(crate) async fn read_json(
    http: &HttpClient,
    kind: &str,
    rb: reqwest::RequestBuilder,
) -> DomainResult<serde_json::Value> {
    let r = http.send(rb).await.map_err(|e| unavailable(kind, e))?;
    serde_json::from_slice(&r.body)
        .map_err(|_| unavailable(kind, format!("answered {} without JSON", r.status)))
}
