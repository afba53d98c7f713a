//! The owner's payment gateways, stored as one JSON setting (`payment_gateways`): each has an id
//! (its URLs and the orders' `gateway`), a kind, the name customers see, whether the checkout
//! offers it, its settings, and its secrets — write-only in admin and sealed with the server key
//! (kept outside the database) before they are stored (RELIABILITY SEC-1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yiren_store::settings as store;

use crate::error::{DomainError, DomainResult};
use crate::Ctx;

const KEY: &str = "payment_gateways";
const SEAL: &str = "payment-gateway-secret";

/// One configured gateway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct GatewayConfig {
    /// URL-safe id (`epay`, `epay-wx`); unique; never `manual`.
    pub id: String,
    /// Which protocol (see [`super::Kind`]).
    pub kind: String,
    /// What customers see at checkout.
    pub name: String,
    /// Offered at checkout.
    pub enabled: bool,
    pub fields: BTreeMap<String, String>,
    /// Decrypted in memory; sealed in the database.
    pub secrets: BTreeMap<String, String>,
}

impl GatewayConfig {
    /// A setting's value ("" when unset).
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    /// A secret's value ("" when unset).
    pub fn secret(&self, name: &str) -> &str {
        self.secrets.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
struct Stored {
    gateways: Vec<GatewayConfig>,
}

/// The configured gateways, secrets decrypted (a secret that no longer opens — another server
/// key — comes back empty, so the owner sees it is missing).
pub async fn load(ctx: &Ctx) -> DomainResult<Vec<GatewayConfig>> {
    let mut s: Stored = store::get(ctx.db.read(), KEY)
        .await?
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    for g in &mut s.gateways {
        for v in g.secrets.values_mut() {
            *v = ctx
                .keys
                .open(SEAL, v)
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
        }
    }
    Ok(s.gateways)
}

async fn save(ctx: &Ctx, all: &[GatewayConfig]) -> DomainResult<()> {
    let mut stored = Stored {
        gateways: all.to_vec(),
    };
    for g in &mut stored.gateways {
        for v in g.secrets.values_mut() {
            let mut nonce = [0u8; 12];
            ctx.rng.fill(&mut nonce);
            *v = ctx.keys.seal(SEAL, v.as_bytes(), nonce);
        }
    }
    let v = serde_json::to_string(&stored).unwrap_or_default();
    store::put(ctx.db.write(), KEY, &v, ctx.now()).await?;
    ctx.gateways.install(all);
    Ok(())
}

/// Build the configured gateways into the registry (at start-up).
pub async fn install(ctx: &Ctx) -> DomainResult<()> {
    let all = load(ctx).await?;
    ctx.gateways.install(&all);
    Ok(())
}

/// Add a gateway, or replace the one with the same id. A secret left empty keeps the stored one
/// (secrets are write-only); settings of the kind left empty take their default. The gateway is
/// built before it is saved, so a configuration that cannot work is refused with the reason.
pub async fn put(ctx: &Ctx, mut c: GatewayConfig) -> DomainResult<()> {
    let id_ok = !c.id.is_empty()
        && c.id.len() <= 32
        && c.id
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && c.id != "manual";
    if !id_ok {
        return Err(DomainError::invalid("id", "payments.id_invalid"));
    }
    let kind = *ctx
        .gateways
        .kinds()
        .iter()
        .find(|k| k.kind == c.kind)
        .ok_or(DomainError::invalid("kind", "payments.kind_unknown"))?;
    c.name = c.name.trim().to_string();
    if c.name.is_empty() || c.name.chars().count() > 60 {
        return Err(DomainError::invalid("name", "payments.name_invalid"));
    }
    let mut all = load(ctx).await?;
    let old = all.iter().find(|g| g.id == c.id).cloned();
    if old.as_ref().is_some_and(|o| o.kind != c.kind) {
        return Err(DomainError::invalid("id", "payments.id_taken"));
    }
    // Only the kind's own settings are kept.
    let mut fields = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for f in kind.fields {
        if f.secret {
            let mut v = c.secret(f.name).trim().to_string();
            if v.is_empty() {
                v = old
                    .as_ref()
                    .map(|o| o.secret(f.name).to_string())
                    .unwrap_or_default();
            }
            if f.required && v.is_empty() {
                return Err(DomainError::invalid(f.name, "payments.field_required"));
            }
            // A 4096-bit private key in PEM is about 3.3 KB.
            if v.len() > 8_000 {
                return Err(DomainError::invalid(f.name, "payments.field_invalid"));
            }
            secrets.insert(f.name.to_string(), v);
        } else {
            let mut v = c.field(f.name).trim().to_string();
            if v.is_empty() {
                v = f.default.to_string();
            }
            if f.required && v.is_empty() {
                return Err(DomainError::invalid(f.name, "payments.field_required"));
            }
            if !f.choices.is_empty() && !f.choices.contains(&v.as_str()) {
                return Err(DomainError::invalid(f.name, "payments.field_choice"));
            }
            // Room for a public key (Alipay's, about 400 characters; 800 for 4096 bits).
            if v.chars().count() > 4_000 {
                return Err(DomainError::invalid(f.name, "payments.field_invalid"));
            }
            fields.insert(f.name.to_string(), v);
        }
    }
    c.fields = fields;
    c.secrets = secrets;
    ctx.gateways.build(&c)?;
    match all.iter().position(|g| g.id == c.id) {
        Some(i) => all[i] = c,
        None => all.push(c),
    }
    save(ctx, &all).await
}

/// Remove a gateway (NotFound when there is none with this id). Orders it took keep its id; their
/// late notifications find no gateway and are refused, so the owner settles them by hand.
pub async fn remove(ctx: &Ctx, id: &str) -> DomainResult<()> {
    let mut all = load(ctx).await?;
    let before = all.len();
    all.retain(|g| g.id != id);
    if all.len() == before {
        return Err(DomainError::NotFound);
    }
    save(ctx, &all).await
}
