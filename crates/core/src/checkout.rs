//! Checkout: from the visitor's lines to a placed order, with every amount computed here from the
//! catalog (RELIABILITY MONEY-2), the stock held for a while (INV-1..3) and the discount uses
//! counted (COUP-1) — all in one transaction, so an order exists exactly with its stock and uses.
//!
//! Language: a *quote* is the priced checkout before anything is written; *placing* writes the
//! order; the *hold* is how long its stock stays set aside for payment (then it is released, and a
//! payment arriving later takes the stock again if there is any); an unpaid order *expires*
//! (is cancelled) after a longer time; the *checkout token* is a one-time value of the checkout
//! form, so submitting the form twice places one order.
//!
//! Shape: [`Config`] (hold and expiry times, shipping rates by region, tax rates by region),
//! [`Submit`], [`quote`], [`place`].
//!
//! Boundaries: arithmetic in `pricing`, discounts in `discount`, the order's life after placing in
//! `order`. Choices: variants are locked in id order (no deadlock whatever order the lines come
//! in — INV-2); a discount the customer saw that can no longer be used stops the checkout with a
//! 409 instead of placing an order at another price; a region is `*`, a country code (`CN`) or a
//! country and province (`CN/广东省`), and the most specific tax rate wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yiren_store::order::{self as store, DiscountRow, LineRow, OrderRow};
use yiren_store::StoreError;

use crate::error::{DomainError, DomainResult};
use crate::pricing::{self, Bps};
use crate::{cart, catalog, discount, event, job, Ctx, Locale};

mod placing;

/// Settings key of [`Config`].
const CONFIG_KEY: &str = "checkout.config";

/// A shipping method offered in some regions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingRate {
    pub name: String,
    pub regions: Vec<String>,
    pub rule: pricing::Shipping,
}

/// A tax rate for a region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRate {
    pub region: String,
    pub rate: Bps,
    /// Prices already include it (common in China and the EU) or it is added at checkout.
    pub inclusive: bool,
}

/// What a customer who chose manual payment is shown: the owner's own receipt codes (the link a
/// WeChat or Alipay personal receipt QR code holds; the page draws it as a QR code) and free text
/// such as bank details. The owner confirms receipt by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Manual {
    pub instructions: String,
    pub wechat: String,
    pub alipay: String,
}

impl Manual {
    fn check(&self) -> DomainResult<()> {
        let bad = || Err(DomainError::invalid("manual", "checkout.manual_invalid"));
        if self.instructions.chars().count() > 2000 {
            return bad();
        }
        for link in [&self.wechat, &self.alipay] {
            let ok = link.is_empty()
                || (link.len() <= 500
                    && ["https://", "http://", "wxp://"]
                        .iter()
                        .any(|p| link.starts_with(p))
                    && !link.chars().any(|c| c.is_whitespace() || c.is_control()));
            if !ok {
                return bad();
            }
        }
        Ok(())
    }

    /// Whether the owner has said how to pay them.
    pub fn ready(&self) -> bool {
        !(self.instructions.trim().is_empty() && self.wechat.is_empty() && self.alipay.is_empty())
    }
}

/// How checkout behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Minutes an unpaid order's stock stays set aside.
    pub hold_minutes: i64,
    /// Hours after which an unpaid order is cancelled.
    pub expire_hours: i64,
    /// Downloads a paid order gives per digital product (every file counts).
    pub download_limit: i64,
    pub shipping: Vec<ShippingRate>,
    pub taxes: Vec<TaxRate>,
    pub manual: Manual,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hold_minutes: 30,
            expire_hours: 48,
            download_limit: 5,
            shipping: vec![],
            taxes: vec![],
            manual: Manual::default(),
        }
    }
}

fn valid_region(r: &str) -> bool {
    if r == "*" {
        return true;
    }
    let (country, province) = r.split_once('/').unwrap_or((r, ""));
    country.len() == 2
        && country.chars().all(|c| c.is_ascii_uppercase())
        && province.chars().count() <= 50
        && (province.is_empty() || !province.trim().is_empty())
}

impl Config {
    /// Check every figure; the first problem is the error.
    pub fn check(&self) -> DomainResult<()> {
        if !(1..=7 * 24 * 60).contains(&self.hold_minutes) {
            return Err(DomainError::invalid(
                "hold_minutes",
                "checkout.config_invalid",
            ));
        }
        if !(1..=90 * 24).contains(&self.expire_hours) || self.expire_hours * 60 < self.hold_minutes
        {
            return Err(DomainError::invalid(
                "expire_hours",
                "checkout.config_invalid",
            ));
        }
        if !(1..=1000).contains(&self.download_limit) {
            return Err(DomainError::invalid(
                "download_limit",
                "checkout.config_invalid",
            ));
        }
        let line = pricing::Line {
            product_id: 1,
            collections: vec![],
            unit_price: 1,
            quantity: 1,
            grams: 1,
            requires_shipping: true,
        };
        for r in &self.shipping {
            let name_ok = !r.name.trim().is_empty() && r.name.chars().count() <= 100;
            if !name_ok || r.regions.is_empty() || !r.regions.iter().all(|g| valid_region(g)) {
                return Err(DomainError::invalid("shipping", "checkout.config_invalid"));
            }
            pricing::price(std::slice::from_ref(&line), &[], Some(&r.rule), None)?;
            let prices = match r.rule {
                pricing::Shipping::Flat { price } => vec![price],
                pricing::Shipping::FreeAbove { price, threshold } => vec![price, threshold],
                pricing::Shipping::ByWeight {
                    first_price,
                    step_price,
                    first_grams,
                    ..
                } => vec![first_price, step_price, first_grams],
            };
            if prices
                .iter()
                .any(|p| !(0..=crate::money::MAX_MINOR).contains(p))
            {
                return Err(DomainError::invalid("shipping", "checkout.config_invalid"));
            }
        }
        if self
            .shipping
            .iter()
            .enumerate()
            .any(|(i, r)| self.shipping[..i].iter().any(|o| o.name == r.name))
        {
            return Err(DomainError::invalid("shipping", "checkout.config_invalid"));
        }
        for t in &self.taxes {
            if !valid_region(&t.region) || !(0..=pricing::FULL).contains(&t.rate) {
                return Err(DomainError::invalid("taxes", "checkout.config_invalid"));
            }
        }
        self.manual.check()
    }
}

/// The checkout settings (defaults when never saved).
pub async fn config(ctx: &Ctx) -> DomainResult<Config> {
    let rows = crate::settings::rows(ctx).await?;
    Ok(rows
        .iter()
        .find(|(k, _)| k == CONFIG_KEY)
        .and_then(|(_, v)| serde_json::from_str(v).ok())
        .unwrap_or_default())
}

/// The checkout settings read inside a transaction.
pub(crate) async fn config_in(tx: &mut yiren_store::Tx) -> DomainResult<Config> {
    Ok(config_from(yiren_store::settings::all(&mut **tx).await?))
}

fn config_from(all: Vec<(String, String)>) -> Config {
    all.into_iter()
        .find(|(k, _)| k == CONFIG_KEY)
        .and_then(|(_, v)| serde_json::from_str(&v).ok())
        .unwrap_or_default()
}

/// Save the checkout settings.
pub async fn save_config(ctx: &Ctx, c: &Config) -> DomainResult<()> {
    c.check()?;
    let json = serde_json::to_string(c).expect("serialisable");
    yiren_store::settings::put(ctx.db.write(), CONFIG_KEY, &json, ctx.now()).await?;
    Ok(())
}

/// Where the goods go. Mainland China addresses use province / city / district; others use the
/// same fields as state / city / (optional) district.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub name: String,
    pub phone: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub province: String,
    pub city: String,
    pub district: String,
    pub line1: String,
    pub line2: String,
    pub postal_code: String,
}

impl Address {
    /// Trimmed and checked: name, country, city and the first line are required; mainland China
    /// also needs the province and district.
    pub fn checked(&self) -> DomainResult<Address> {
        let t = |s: &str, max: usize, field: &'static str| -> DomainResult<String> {
            let s = s.trim();
            if s.chars().count() > max || s.chars().any(char::is_control) {
                return Err(DomainError::invalid(field, "checkout.address_invalid"));
            }
            Ok(s.to_string())
        };
        let a = Address {
            name: t(&self.name, 100, "name")?,
            phone: t(&self.phone, 30, "phone")?,
            country: t(&self.country, 2, "country")?.to_ascii_uppercase(),
            province: t(&self.province, 50, "province")?,
            city: t(&self.city, 50, "city")?,
            district: t(&self.district, 50, "district")?,
            line1: t(&self.line1, 200, "line1")?,
            line2: t(&self.line2, 200, "line2")?,
            postal_code: t(&self.postal_code, 20, "postal_code")?,
        };
        let need = |v: &str, field: &'static str| {
            if v.is_empty() {
                Err(DomainError::invalid(field, "checkout.address_incomplete"))
            } else {
                Ok(())
            }
        };
        need(&a.name, "name")?;
        if a.country.len() != 2 || !a.country.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(DomainError::invalid("country", "checkout.address_invalid"));
        }
        need(&a.city, "city")?;
        need(&a.line1, "line1")?;
        if a.country == "CN" {
            need(&a.province, "province")?;
            need(&a.district, "district")?;
            need(&a.phone, "phone")?;
        }
        Ok(a)
    }

    /// How specifically `region` names this address: 0 not at all, 1 everywhere, 2 the
    /// country, 3 the province.
    pub fn matches(&self, region: &str) -> u8 {
        if region == "*" {
            return 1;
        }
        match region.split_once('/') {
            None if region == self.country => 2,
            Some((c, p)) if c == self.country && p == self.province => 3,
            _ => 0,
        }
    }
}

/// What the checkout form sends. Nothing here is a price: amounts come from the catalog.
#[derive(Debug, Clone, Default)]
pub struct Submit {
    pub token: String,
    pub email: String,
    pub customer_id: Option<i64>,
    pub locale: Locale,
    pub lines: Vec<cart::Line>,
    pub address: Option<Address>,
    /// The chosen shipping rate's name.
    pub shipping: Option<String>,
    pub code: Option<String>,
    pub note: String,
    pub gateway: String,
    /// The browser's started checkout (`core::abandoned`) this order completes: marked converted
    /// in the order's own transaction.
    pub started: Option<String>,
    /// The order comes from one of the owner's apps (`core::checkout_app`): recorded with it.
    pub app: Option<AppPlacement>,
    /// The order renews a recurring membership (`core::recurring`): recorded as its period.
    pub renewal: Option<RenewalPlacement>,
}

/// The next period of a recurring membership: one line of the plan's product at the plan's
/// amount (the price it was bought at), payable until `expires_at`, recorded as period `period`
/// of the plan in the order's own transaction (the period key is unique).
#[derive(Debug, Clone, Default)]
pub struct RenewalPlacement {
    pub plan_id: i64,
    pub period: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub expires_at: i64,
    pub product_id: i64,
    pub variant_id: i64,
    pub title: String,
    pub amount: i64,
    pub currency: String,
}

/// An order an app sends its customer to pay for: the app, its own reference, and — when the app
/// names an amount rather than a product — the one custom line (no discounts, shipping or tax:
/// the app set the price, checked against its signature).
#[derive(Debug, Clone, Default)]
pub struct AppPlacement {
    pub app_id: i64,
    pub app_ref: String,
    pub custom: Option<CustomLine>,
}

/// A line that is not a catalog product: a title and an amount in the shop currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomLine {
    pub title: String,
    pub amount: i64,
}

/// The kind recorded on a custom line.
pub const CUSTOM_KIND: &str = "custom";

/// One line of a quote.
#[derive(Debug, Clone, Serialize)]
pub struct QuoteLine {
    /// None for a custom line.
    pub variant_id: Option<i64>,
    pub product_id: Option<i64>,
    pub kind: String,
    pub title: String,
    pub variant_title: String,
    pub sku: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub grams: i64,
    pub requires_shipping: bool,
    /// Placing the order takes the units from the stock.
    pub tracked: bool,
}

/// The priced checkout.
#[derive(Debug, Clone)]
pub struct Quote {
    pub currency: String,
    pub lines: Vec<QuoteLine>,
    pub totals: pricing::Totals,
    /// Discounts that took something off, in the order applied.
    pub discounts: Vec<DiscountRow>,
    /// Rates offered for the address (names), and the one charged.
    pub rates: Vec<String>,
    pub shipping: Option<String>,
    pub needs_shipping: bool,
    pub tax_inclusive: bool,
}

/// Price a checkout from the catalog as it is now; writes nothing.
pub async fn quote(ctx: &Ctx, s: &Submit) -> DomainResult<Quote> {
    if let Some(c) = s.app.as_ref().and_then(|a| a.custom.as_ref()) {
        return custom_quote(ctx, c).await;
    }
    if let Some(r) = &s.renewal {
        return renewal_quote(r);
    }
    if s.lines.is_empty() {
        return Err(DomainError::invalid("lines", "checkout.empty"));
    }
    if s.lines.len() > cart::MAX_LINES {
        return Err(DomainError::invalid("lines", "cart.full"));
    }
    let currency = crate::settings::load(ctx).await?.currency;
    let cfg = config(ctx).await?;
    let now = ctx.now();
    let mut merged: BTreeMap<i64, i64> = BTreeMap::new();
    let mut order: Vec<i64> = vec![];
    for l in &s.lines {
        if !(1..=cart::MAX_QUANTITY).contains(&l.quantity) {
            return Err(DomainError::invalid("quantity", "cart.quantity_invalid"));
        }
        let q = merged.entry(l.variant_id).or_insert(0);
        if *q == 0 {
            order.push(l.variant_id);
        }
        *q += l.quantity;
        if *q > cart::MAX_QUANTITY {
            return Err(DomainError::invalid("quantity", "cart.quantity_invalid"));
        }
    }
    let mut lines = vec![];
    let mut priced = vec![];
    for vid in order {
        let quantity = merged[&vid];
        let gone = || DomainError::invalid("lines", "checkout.line_gone");
        let (p, collections) = catalog::for_variant(ctx, vid).await.map_err(|e| match e {
            DomainError::NotFound => gone(),
            e => e,
        })?;
        let pid = p.row.id;
        let v = p
            .variants
            .iter()
            .find(|v| v.row.id == vid)
            .ok_or_else(gone)?;
        if !p.visible(now) {
            return Err(gone());
        }
        if !crate::campaign::accepting(ctx, &p).await? {
            return Err(DomainError::Conflict {
                key: "campaign.closed",
            });
        }
        let unit = v.price(&currency).map(|pr| pr.amount).ok_or_else(gone)?;
        let tracked = v.row.track_inventory == 1;
        if tracked && v.row.inventory_policy == "deny" && v.row.inventory_quantity < quantity {
            return Err(DomainError::Conflict {
                key: "checkout.sold_out",
            });
        }
        priced.push(pricing::Line {
            product_id: pid,
            collections,
            unit_price: unit,
            quantity,
            grams: v.row.grams,
            requires_shipping: v.row.requires_shipping == 1,
        });
        lines.push(QuoteLine {
            variant_id: Some(vid),
            product_id: Some(pid),
            kind: p.row.kind.clone(),
            title: p.text(s.locale).title,
            variant_title: p.variant_title(v, s.locale),
            sku: v.row.sku.clone(),
            quantity,
            unit_price: unit,
            grams: v.row.grams,
            requires_shipping: v.row.requires_shipping == 1,
            tracked,
        });
    }
    let needs_shipping = lines.iter().any(|l| l.requires_shipping);
    // Discounts: the automatic ones that are open, then the code.
    // Oldest first: the order they apply in.
    let mut candidates: Vec<DiscountRow> = store::discounts(ctx.db.read(), true)
        .await?
        .into_iter()
        .rev()
        .filter(|d| discount::open(d, now))
        .collect();
    let mut code_id = None;
    if let Some(code) = s.code.as_deref().filter(|c| !c.trim().is_empty()) {
        let code = discount::normalise_code(code)
            .map_err(|_| DomainError::invalid("code", "checkout.code_unknown"))?;
        let d = store::discount_by_code(ctx.db.read(), &code)
            .await?
            .filter(|d| discount::open(d, now))
            .ok_or(DomainError::invalid("code", "checkout.code_unknown"))?;
        code_id = Some(d.id);
        candidates.push(d);
    }
    // Shipping for the address.
    let address = match (&s.address, needs_shipping) {
        (Some(a), _) => Some(a.checked()?),
        (None, true) => {
            return Err(DomainError::invalid(
                "address",
                "checkout.address_incomplete",
            ))
        }
        (None, false) => None,
    };
    let rates: Vec<&ShippingRate> = match &address {
        Some(a) if needs_shipping => cfg
            .shipping
            .iter()
            .filter(|r| r.regions.iter().any(|g| a.matches(g) > 0))
            .collect(),
        _ => vec![],
    };
    let chosen = if needs_shipping {
        let r = match s.shipping.as_deref() {
            Some(name) => rates.iter().find(|r| r.name == name),
            None if rates.len() == 1 => rates.first(),
            None => None,
        };
        if rates.is_empty() {
            return Err(DomainError::invalid("address", "checkout.no_shipping"));
        }
        Some(*r.ok_or(DomainError::invalid(
            "shipping",
            "checkout.shipping_required",
        ))?)
    } else {
        None
    };
    let tax = address.as_ref().and_then(|a| {
        cfg.taxes
            .iter()
            .filter(|t| a.matches(&t.region) > 0)
            .max_by_key(|t| a.matches(&t.region))
    });
    let tax = tax.map(|t| pricing::Tax {
        rate: t.rate,
        inclusive: t.inclusive,
    });
    let ds: Vec<pricing::Discount> = candidates.iter().map(discount::to_pricing).collect();
    let totals = pricing::price(&priced, &ds, chosen.map(|r| &r.rule), tax)?;
    let applied: Vec<i64> = totals.applied.iter().map(|(id, _)| *id).collect();
    if code_id.is_some_and(|id| !applied.contains(&id)) {
        return Err(DomainError::invalid("code", "checkout.code_not_applicable"));
    }
    Ok(Quote {
        currency,
        lines,
        discounts: candidates
            .into_iter()
            .filter(|d| applied.contains(&d.id))
            .collect(),
        rates: rates.iter().map(|r| r.name.clone()).collect(),
        shipping: chosen.map(|r| r.name.clone()),
        needs_shipping,
        tax_inclusive: tax.is_some_and(|t| t.inclusive),
        totals,
    })
}

/// The quote of one custom line: its amount is the total.
async fn custom_quote(ctx: &Ctx, c: &CustomLine) -> DomainResult<Quote> {
    let currency = crate::settings::load(ctx).await?.currency;
    if !(1..=crate::money::MAX_MINOR).contains(&c.amount) {
        return Err(DomainError::invalid("amount", "apps.amount_invalid"));
    }
    one_line_quote(currency, None, CUSTOM_KIND, &c.title, c.amount)
}

/// A renewal's one line, at the plan's amount.
fn renewal_quote(r: &RenewalPlacement) -> DomainResult<Quote> {
    let ids = Some((r.variant_id, r.product_id));
    one_line_quote(r.currency.clone(), ids, "membership", &r.title, r.amount)
}

/// A quote of one unit of one line at a set price (no discounts, shipping or tax): an app's
/// custom line, a renewal. `ids`: the (variant, product) when it is a catalog item.
fn one_line_quote(
    currency: String,
    ids: Option<(i64, i64)>,
    kind: &str,
    title: &str,
    amount: i64,
) -> DomainResult<Quote> {
    let line = pricing::Line {
        product_id: ids.map_or(0, |(_, p)| p),
        collections: vec![],
        unit_price: amount,
        quantity: 1,
        grams: 0,
        requires_shipping: false,
    };
    let totals = pricing::price(&[line], &[], None, None)?;
    Ok(Quote {
        currency,
        lines: vec![QuoteLine {
            variant_id: ids.map(|(v, _)| v),
            product_id: ids.map(|(_, p)| p),
            kind: kind.into(),
            title: title.to_string(),
            variant_title: String::new(),
            sku: String::new(),
            quantity: 1,
            unit_price: amount,
            grams: 0,
            requires_shipping: false,
            tracked: false,
        }],
        totals,
        discounts: vec![],
        rates: vec![],
        shipping: None,
        needs_shipping: false,
        tax_inclusive: false,
    })
}

/// The gateway an order may be placed with: one the checkout offers, or — for a renewal, which
/// keeps the gateway its membership was bought with — any the server knows.
fn usable_gateway(
    ctx: &Ctx,
    s: &Submit,
) -> Option<std::sync::Arc<dyn crate::payment::PaymentGateway>> {
    if s.renewal.is_some() {
        ctx.gateways.get(&s.gateway)
    } else {
        ctx.gateways.offered(&s.gateway)
    }
}

/// The token and the (lower-case) email, checked.
fn check_submit(ctx: &Ctx, s: &Submit) -> DomainResult<(String, String)> {
    let token = s.token.trim();
    if token.is_empty()
        || token.len() > 100
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(DomainError::invalid("token", "checkout.token_invalid"));
    }
    let email = crate::auth::parse_email(&s.email)?;
    if s.note.chars().count() > 1000 {
        return Err(DomainError::invalid("note", "checkout.note_too_long"));
    }
    if usable_gateway(ctx, s).is_none() {
        return Err(DomainError::invalid("gateway", "checkout.gateway_unknown"));
    }
    Ok((token.to_string(), email))
}

/// Place the order: price it, hold its stock, count its discount uses, number it — one
/// transaction (shared with what is written at the same moment: see [`placing`]), retried on a
/// serialization failure or deadlock. Submitting the same token again returns the order it placed.
pub async fn place(ctx: &Ctx, s: &Submit) -> DomainResult<OrderRow> {
    let (token, email) = check_submit(ctx, s)?;
    if let Some(o) = store::by_token(ctx.db.read(), &token).await? {
        return Ok(o);
    }
    let q = quote(ctx, s).await?;
    if !usable_gateway(ctx, s).is_some_and(|g| g.accepts(&q.currency)) {
        return Err(DomainError::invalid("gateway", "checkout.gateway_currency"));
    }
    let cfg = config(ctx).await?;
    let mut attempt = 0u32;
    loop {
        let work = placing::Work {
            submit: s.clone(),
            token: token.clone(),
            email: email.clone(),
            quote: q.clone(),
            config: cfg.clone(),
        };
        match crate::together::write(ctx, work).await {
            Ok(row) => {
                crate::catalog::stock_changed();
                return Ok(row);
            }
            Err(DomainError::Store(e)) if e.is_retryable() && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5u64 << attempt)).await;
            }
            Err(DomainError::Store(StoreError::Conflict(_))) => {
                // The same form submitted twice at once: the other one placed it.
                return store::by_token(ctx.db.read(), &token).await?.ok_or(
                    DomainError::Conflict {
                        key: "error.conflict",
                    },
                );
            }
            // Refused (sold out, a code used up) — but if the same form was placed meanwhile by
            // a submission that got there first, this one's answer is that order.
            Err(e @ DomainError::Conflict { .. }) => {
                return match store::by_token(ctx.db.read(), &token).await? {
                    Some(o) => Ok(o),
                    None => Err(e),
                };
            }
            other => return other,
        }
    }
}

/// Write one order in `tx`: its number, stock and discount limits now; its rows (lines, ledger,
/// uses, timeline, messages, event, scheduled jobs) added to `w`, which the caller runs before
/// the commit — on SQLite they go to the database as one query.
async fn place_in(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    w: &mut yiren_store::Writes,
    s: &Submit,
    (token, email): (&str, &str),
    q: &Quote,
    cfg: &Config,
) -> DomainResult<OrderRow> {
    let now = ctx.now();
    let id = ctx.new_id();
    let free = q.totals.total == 0;
    let number = store::next_number(tx).await?;
    let reason = format!("order #{number}");
    // Stock, variant by variant in id order.
    let mut by_variant: BTreeMap<i64, i64> = BTreeMap::new();
    for l in q.lines.iter().filter(|l| l.tracked) {
        if let Some(v) = l.variant_id {
            *by_variant.entry(v).or_insert(0) += l.quantity;
        }
    }
    for (vid, n) in &by_variant {
        let held = if free { 0 } else { *n };
        let ok = crate::order::move_stock_in(
            ctx,
            tx,
            w,
            crate::order::StockMove {
                variant_id: *vid,
                delta: -n,
                reserved: held,
                guard: true,
                reason: &reason,
                actor: "checkout",
            },
        )
        .await?;
        if ok.is_none() {
            return Err(DomainError::Conflict {
                key: "checkout.sold_out",
            });
        }
    }
    // Discount uses.
    let who = match s.customer_id {
        Some(c) => c.to_string(),
        None => email.to_string(),
    };
    let mut uses = vec![];
    for d in &q.discounts {
        if !store::take_use(tx, d.id, now).await? {
            return Err(DomainError::Conflict {
                key: "checkout.code_used_up",
            });
        }
        if let Some(limit) = d.per_customer {
            if store::uses_by(tx, d.id, &who).await? >= limit {
                return Err(DomainError::Conflict {
                    key: "checkout.code_used_by_you",
                });
            }
        }
        let amount = q
            .totals
            .applied
            .iter()
            .find(|(i, _)| *i == d.id)
            .map_or(0, |(_, a)| *a);
        uses.push((d.id, amount));
    }
    let units: i64 = q.lines.iter().map(|l| l.quantity).sum();
    let t = &q.totals;
    let row = OrderRow {
        id,
        number,
        checkout_token: token.to_string(),
        customer_id: s.customer_id,
        email: email.to_string(),
        locale: s.locale.tag().to_string(),
        currency: q.currency.clone(),
        subtotal: t.subtotal,
        discount: t.discount,
        shipping: t.shipping,
        shipping_discount: t.shipping_discount,
        tax: t.tax,
        tax_inclusive: q.tax_inclusive as i64,
        total: t.total,
        payment: if free { "paid" } else { "pending" }.into(),
        fulfilment: "unfulfilled".into(),
        cancelled: 0,
        refund_review: 0,
        captured: 0,
        refunded: 0,
        units,
        fulfilled: 0,
        stock: if free { "committed" } else { "held" }.into(),
        hold_until: now + cfg.hold_minutes * 60_000,
        expires_at: s
            .renewal
            .as_ref()
            .map_or(now + cfg.expire_hours * 3_600_000, |r| r.expires_at),
        gateway: if free {
            "free".into()
        } else {
            s.gateway.clone()
        },
        shipping_method: q.shipping.clone().unwrap_or_default(),
        address: s
            .address
            .as_ref()
            .filter(|_| q.needs_shipping)
            .map(|a| serde_json::to_string(&a.checked().unwrap_or_default()).expect("serialisable"))
            .unwrap_or_default(),
        note: s.note.trim().to_string(),
        tags: String::new(),
        created_at: now,
        updated_at: now,
    };
    let lines: Vec<LineRow> = q
        .lines
        .iter()
        .zip(&t.lines)
        .enumerate()
        .map(|(i, (l, lt))| LineRow {
            order_id: id,
            position: i as i64 + 1,
            variant_id: l.variant_id,
            product_id: l.product_id,
            kind: l.kind.clone(),
            title: l.title.clone(),
            variant_title: l.variant_title.clone(),
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            subtotal: lt.subtotal,
            discount: lt.discount,
            tax: lt.tax,
            grams: l.grams,
            requires_shipping: l.requires_shipping as i64,
            tracked: l.tracked as i64,
            fulfilled: 0,
            refunded_units: 0,
            restocked: 0,
        })
        .collect();
    store::insert(w, &row, &lines);
    if let Some(app) = &s.app {
        yiren_store::checkout_app::insert_order_into(
            w,
            &yiren_store::checkout_app::AppOrderRow {
                order_id: id,
                app_id: app.app_id,
                app_ref: app.app_ref.clone(),
                created_at: now,
            },
        );
    }
    if let Some(started) = &s.started {
        yiren_store::abandoned::converted(w, started, id);
    }
    if let Some(r) = &s.renewal {
        yiren_store::recurring::insert_period_into(
            w,
            &yiren_store::recurring::PeriodRow {
                plan_id: r.plan_id,
                period: r.period,
                order_id: id,
                starts_at: r.starts_at,
                ends_at: r.ends_at,
                paid_at: None,
                created_at: now,
            },
        );
    }
    if free {
        // Delivery reads the order's lines.
        w.run(tx).await?;
        crate::delivery::grant(ctx, tx, &row, None).await?;
    }
    for (discount_id, amount) in uses {
        store::add_use(w, discount_id, id, &who, amount, now);
    }
    let actor = match s.customer_id {
        Some(c) => format!("customer:{c}"),
        None => "guest".into(),
    };
    crate::order::log_into(
        ctx,
        w,
        id,
        "placed",
        &actor,
        serde_json::json!({
            "total": row.total, "currency": row.currency, "discounts": q.discounts.iter().map(|d| d.code.clone().unwrap_or_else(|| d.title.clone())).collect::<Vec<_>>(),
        }),
    );
    let mail = if s.renewal.is_some() {
        "renewal"
    } else {
        "placed"
    };
    crate::mail::order_mail_into(ctx, w, &row, mail);
    let owner_news = crate::notify::OwnerEvent::NewOrder {
        order_id: id,
        confirm: !free && row.gateway == "manual",
        number: row.number,
        total: crate::money::display(row.total, &row.currency),
        email: row.email.clone(),
    };
    crate::notify::emit_into(ctx, tx, w, &owner_news, &id.to_string()).await?;
    event::record_into(
        ctx,
        w,
        event::ORDER_CREATED,
        id,
        &crate::order::summary(&row),
    );
    if !free {
        // Its hold, reminder and expiry: one job that walks through them.
        let first = crate::order::next_due(&row, now).unwrap_or(row.hold_until);
        job::enqueue_many_into(
            ctx,
            w,
            &[(
                crate::order::DEADLINE_KIND,
                serde_json::json!({ "order_id": id }),
                job::EnqueueOptions {
                    run_at: Some(first),
                    max_attempts: 20,
                    unique_key: Some(format!("{}:{id}", crate::order::DEADLINE_KIND)),
                },
            )],
        );
    }
    Ok(row)
}

/// The shipping rates as the admin form shows them, one per line:
/// `name | regions | flat 12.00`, `… | free_above 12.00 99.00`, `… | by_weight 1000 12.00 500 3.00`
/// (grams and amounts in the shop currency; regions separated by commas).
pub fn shipping_text(rates: &[ShippingRate], currency: &str) -> String {
    let m = |v: i64| crate::money::format(v, currency);
    rates
        .iter()
        .map(|r| {
            let rule = match r.rule {
                pricing::Shipping::Flat { price } => format!("flat {}", m(price)),
                pricing::Shipping::FreeAbove { price, threshold } => {
                    format!("free_above {} {}", m(price), m(threshold))
                }
                pricing::Shipping::ByWeight {
                    first_grams,
                    first_price,
                    step_grams,
                    step_price,
                } => format!(
                    "by_weight {first_grams} {} {step_grams} {}",
                    m(first_price),
                    m(step_price)
                ),
            };
            format!("{} | {} | {rule}", r.name, r.regions.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read [`shipping_text`]'s format back; any malformed line is an error naming the field.
pub fn parse_shipping(text: &str, currency: &str) -> DomainResult<Vec<ShippingRate>> {
    let bad = || DomainError::invalid("shipping", "checkout.shipping_line_invalid");
    let mut out = vec![];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [name, regions, rule] = parts[..] else {
            return Err(bad());
        };
        let words: Vec<&str> = rule.split_whitespace().collect();
        let amount = |s: &str| crate::money::parse(s, currency, "shipping").map_err(|_| bad());
        let grams = |s: &str| s.parse::<i64>().ok().filter(|g| *g >= 0).ok_or_else(bad);
        let rule = match words[..] {
            ["flat", p] => pricing::Shipping::Flat { price: amount(p)? },
            ["free_above", p, t] => pricing::Shipping::FreeAbove {
                price: amount(p)?,
                threshold: amount(t)?,
            },
            ["by_weight", fg, fp, sg, sp] => pricing::Shipping::ByWeight {
                first_grams: grams(fg)?,
                first_price: amount(fp)?,
                step_grams: grams(sg)?,
                step_price: amount(sp)?,
            },
            _ => return Err(bad()),
        };
        out.push(ShippingRate {
            name: name.to_string(),
            regions: regions
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            rule,
        });
    }
    Ok(out)
}

/// The tax rates as the admin form shows them: `region | 13% | included` or `… | added`.
pub fn taxes_text(taxes: &[TaxRate]) -> String {
    taxes
        .iter()
        .map(|t| {
            let pct = pricing::percent_text(t.rate);
            let how = if t.inclusive { "included" } else { "added" };
            format!("{} | {pct}% | {how}", t.region)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read [`taxes_text`]'s format back.
pub fn parse_taxes(text: &str) -> DomainResult<Vec<TaxRate>> {
    let bad = || DomainError::invalid("taxes", "checkout.tax_line_invalid");
    let mut out = vec![];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [region, pct, how] = parts[..] else {
            return Err(bad());
        };
        // A percentage with up to two decimals is a whole number of basis points.
        let rate =
            crate::money::parse(pct.trim_end_matches('%'), "USD", "taxes").map_err(|_| bad())?;
        let inclusive = match how {
            "included" | "含税" => true,
            "added" | "另计" => false,
            _ => return Err(bad()),
        };
        out.push(TaxRate {
            region: region.to_string(),
            rate,
            inclusive,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_text_formats_read_back_what_they_write() {
        let text = "顺丰 | CN, HK | by_weight 1000 12.00 500 3.50\n\nAbroad | * | free_above 90.00 500.00\n自提 | CN/广东省 | flat 0.00";
        let rates = parse_shipping(text, "CNY").unwrap();
        assert_eq!(rates.len(), 3);
        assert_eq!(rates[0].regions, ["CN", "HK"]);
        assert_eq!(
            rates[0].rule,
            pricing::Shipping::ByWeight {
                first_grams: 1000,
                first_price: 1200,
                step_grams: 500,
                step_price: 350
            }
        );
        assert_eq!(
            parse_shipping(&shipping_text(&rates, "CNY"), "CNY").unwrap(),
            rates
        );
        for bad in [
            "a | CN",
            "a | CN | flat",
            "a | CN | flat 1.234",
            "a | CN | by_weight -1 1 1 1",
            "a | CN | teleport 1",
        ] {
            assert!(parse_shipping(bad, "CNY").is_err(), "{bad}");
        }
        let taxes = parse_taxes("CN | 13% | included\nUS/CA | 7.25% | added").unwrap();
        assert_eq!(
            (
                taxes[0].rate,
                taxes[0].inclusive,
                taxes[1].rate,
                taxes[1].inclusive
            ),
            (1300, true, 725, false)
        );
        assert_eq!(parse_taxes(&taxes_text(&taxes)).unwrap(), taxes);
        for bad in [
            "CN | 13%",
            "CN | x% | added",
            "CN | 13% | maybe",
            "CN | 1.234% | added",
        ] {
            assert!(parse_taxes(bad).is_err(), "{bad}");
        }
    }
}
