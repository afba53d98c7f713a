//! The visitor's cart before checkout exists: variant ids and quantities kept in a cookie (so it
//! needs no account and no database row), priced by the server from the catalog every time it is
//! shown. Nothing the browser sends is trusted but the ids and quantities, and those are checked:
//! unknown, hidden or sold-out variants drop out with a notice, quantities are integers in
//! `1..=MAX_QUANTITY` and never above the stock of a variant that may not oversell.
//!
//! A signed-in customer's cart is also saved (`customer_carts`), so it follows them: on sign-in the
//! browser's cart and the saved one are [`merge`]d — each variant at the larger of its two
//! quantities, so merging again (a second sign-in on the same browser) adds nothing — and every
//! change while signed in is saved.

use serde::Serialize;

use crate::catalog;
use crate::error::{DomainError, DomainResult};
use crate::{money, Ctx, Locale};

/// Most of one variant in a cart.
pub const MAX_QUANTITY: i64 = 99;
/// Most lines in a cart.
pub const MAX_LINES: usize = 50;

/// One line as the cookie keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub variant_id: i64,
    pub quantity: i64,
}

/// Read the cookie value `123x2_456x1`; anything malformed is left out.
pub fn parse(cookie: &str) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for part in cookie.split('_').take(MAX_LINES) {
        let Some((v, q)) = part.split_once('x') else {
            continue;
        };
        let (Ok(variant_id), Ok(quantity)) = (v.parse::<i64>(), q.parse::<i64>()) else {
            continue;
        };
        if variant_id <= 0 || !(1..=MAX_QUANTITY).contains(&quantity) {
            continue;
        }
        if !out.iter().any(|l| l.variant_id == variant_id) {
            out.push(Line {
                variant_id,
                quantity,
            });
        }
    }
    out
}

/// The union of two carts: `saved`'s lines first, then the others; a variant in both keeps the
/// larger quantity (idempotent: merging a cart into itself, or twice, changes nothing); at most
/// [`MAX_LINES`].
pub fn merge(saved: &[Line], browser: &[Line]) -> Vec<Line> {
    let mut out: Vec<Line> = saved.iter().take(MAX_LINES).copied().collect();
    for b in browser {
        if let Some(l) = out.iter_mut().find(|l| l.variant_id == b.variant_id) {
            l.quantity = l.quantity.max(b.quantity);
        } else if out.len() < MAX_LINES {
            out.push(*b);
        }
    }
    out
}

/// A customer's saved cart (empty when none).
pub async fn saved(ctx: &Ctx, customer_id: i64) -> DomainResult<Vec<Line>> {
    Ok(yiren_store::customer::cart(ctx.db.read(), customer_id)
        .await?
        .map(|c| parse(&c))
        .unwrap_or_default())
}

/// Save a customer's cart (an empty cart deletes it).
pub async fn save(ctx: &Ctx, customer_id: i64, lines: &[Line]) -> DomainResult<()> {
    let text = format(lines);
    yiren_store::customer::put_cart(ctx.db.write(), customer_id, &text, ctx.now()).await?;
    Ok(())
}

/// On sign-in: merge the browser's cart into the customer's saved one, save and return it.
pub async fn merge_on_sign_in(
    ctx: &Ctx,
    customer_id: i64,
    browser: &[Line],
) -> DomainResult<Vec<Line>> {
    let merged = merge(&saved(ctx, customer_id).await?, browser);
    save(ctx, customer_id, &merged).await?;
    Ok(merged)
}

/// The cookie value for `lines`.
pub fn format(lines: &[Line]) -> String {
    lines
        .iter()
        .take(MAX_LINES)
        .map(|l| format!("{}x{}", l.variant_id, l.quantity))
        .collect::<Vec<_>>()
        .join("_")
}

/// Check a submitted quantity: an integer in `0..=MAX_QUANTITY` (0 removes the line).
pub fn quantity(text: &str) -> DomainResult<i64> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|q| (0..=MAX_QUANTITY).contains(q))
        .ok_or(DomainError::invalid("quantity", "cart.quantity_invalid"))
}

/// Add `quantity` of a variant (capped at [`MAX_QUANTITY`]); the variant must exist and be on sale.
pub async fn add(
    ctx: &Ctx,
    lines: &mut Vec<Line>,
    variant_id: i64,
    quantity: i64,
) -> DomainResult<()> {
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(DomainError::invalid("quantity", "cart.quantity_invalid"));
    }
    let (p, _) = catalog::for_variant(ctx, variant_id).await?;
    let v = p
        .variants
        .iter()
        .find(|v| v.row.id == variant_id)
        .ok_or(DomainError::NotFound)?;
    if !p.visible(ctx.now()) {
        return Err(DomainError::NotFound);
    }
    if !v.available() {
        return Err(DomainError::invalid("variant_id", "cart.sold_out"));
    }
    if !crate::campaign::accepting(ctx, &p).await? {
        return Err(DomainError::invalid("variant_id", "campaign.closed"));
    }
    let full = lines.len() >= MAX_LINES;
    match lines.iter_mut().find(|l| l.variant_id == variant_id) {
        Some(l) => l.quantity = (l.quantity + quantity).min(MAX_QUANTITY),
        None if full => return Err(DomainError::invalid("variant_id", "cart.full")),
        None => lines.push(Line {
            variant_id,
            quantity,
        }),
    }
    Ok(())
}

/// A cart line priced from the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct PricedLine {
    pub variant_id: i64,
    pub handle: String,
    pub title: String,
    pub variant_title: String,
    pub quantity: i64,
    /// Minor units of the shop currency.
    pub unit: i64,
    pub total: i64,
    pub unit_display: String,
    pub total_display: String,
}

/// The cart as shown: what can be bought, the subtotal, and what changed and why.
#[derive(Debug, Clone, Serialize)]
pub struct Priced {
    pub lines: Vec<PricedLine>,
    /// Units in the cart.
    pub count: i64,
    pub subtotal: i64,
    pub subtotal_display: String,
    /// Message keys: a line dropped (gone, hidden, sold out) or a quantity lowered to the stock.
    pub notices: Vec<&'static str>,
}

impl Priced {
    /// The lines as they should be kept (after drops and caps).
    pub fn kept(&self) -> Vec<Line> {
        self.lines
            .iter()
            .map(|l| Line {
                variant_id: l.variant_id,
                quantity: l.quantity,
            })
            .collect()
    }
}

/// Price the cart in the shop currency, from the catalog as it is now.
pub async fn price(ctx: &Ctx, lines: &[Line], locale: Locale) -> DomainResult<Priced> {
    let currency = crate::settings::load(ctx).await?.currency;
    let now = ctx.now();
    let mut out = Priced {
        lines: vec![],
        count: 0,
        subtotal: 0,
        subtotal_display: String::new(),
        notices: vec![],
    };
    for l in lines {
        let product = match catalog::for_variant(ctx, l.variant_id).await {
            Ok((p, _)) => Some(p),
            Err(DomainError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let found = product.as_ref().and_then(|p| {
            p.variants
                .iter()
                .find(|v| v.row.id == l.variant_id)
                .map(|v| (p, v))
        });
        let Some((p, v)) = found.filter(|(p, _)| p.visible(now)) else {
            out.notices.push("cart.line_gone");
            continue;
        };
        let Some(unit) = v.price(&currency).map(|pr| pr.amount) else {
            out.notices.push("cart.line_gone");
            continue;
        };
        if !crate::campaign::accepting(ctx, p).await? {
            out.notices.push("campaign.closed");
            continue;
        }
        if !v.available() {
            out.notices.push("cart.line_sold_out");
            continue;
        }
        let mut quantity = l.quantity;
        if v.row.track_inventory == 1
            && v.row.inventory_policy == "deny"
            && quantity > v.row.inventory_quantity
        {
            quantity = v.row.inventory_quantity;
            out.notices.push("cart.line_capped");
        }
        let total = unit
            .checked_mul(quantity)
            .ok_or(DomainError::invalid("quantity", "cart.quantity_invalid"))?;
        out.subtotal = out
            .subtotal
            .checked_add(total)
            .ok_or(DomainError::invalid("quantity", "cart.quantity_invalid"))?;
        out.count += quantity;
        out.lines.push(PricedLine {
            variant_id: v.row.id,
            handle: p.row.handle.clone(),
            title: p.text(locale).title,
            variant_title: p.variant_title(v, locale),
            quantity,
            unit,
            total,
            unit_display: money::display(unit, &currency),
            total_display: money::display(total, &currency),
        });
    }
    out.subtotal_display = money::display(out.subtotal, &currency);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_keeps_only_well_formed_lines() {
        assert_eq!(
            parse("12x2_34x1"),
            vec![
                Line {
                    variant_id: 12,
                    quantity: 2
                },
                Line {
                    variant_id: 34,
                    quantity: 1
                }
            ]
        );
        // Bad numbers, negative or zero or huge quantities, repeats and junk are dropped.
        assert_eq!(
            parse("12x0_13x-1_14x100_15x1.5_x3_16_abc_17x1_17x5_-4x1"),
            vec![Line {
                variant_id: 17,
                quantity: 1
            }]
        );
        let many: Vec<String> = (1..=80).map(|i| format!("{i}x1")).collect();
        assert_eq!(parse(&many.join("_")).len(), MAX_LINES);
        let lines = parse("7x3_9x1");
        assert_eq!(parse(&format(&lines)), lines);
        assert!(quantity("1e3").is_err() && quantity("-1").is_err() && quantity("100").is_err());
        assert_eq!(quantity(" 0 ").unwrap(), 0);
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    fn l(v: i64, q: i64) -> Line {
        Line {
            variant_id: v,
            quantity: q,
        }
    }

    #[test]
    fn merging_keeps_every_variant_once_at_its_larger_quantity() {
        let saved = [l(1, 2), l(2, 1)];
        let browser = [l(2, 5), l(3, 1)];
        let m = merge(&saved, &browser);
        assert_eq!(m, vec![l(1, 2), l(2, 5), l(3, 1)]);
        // Idempotent: merging again, or the result into itself, changes nothing.
        assert_eq!(merge(&m, &browser), m);
        assert_eq!(merge(&m, &m), m);
        assert_eq!(merge(&[], &browser), browser.to_vec());
        assert_eq!(merge(&saved, &[]), saved.to_vec());
    }

    #[test]
    fn a_merged_cart_never_passes_the_line_limit() {
        let saved: Vec<Line> = (1..=MAX_LINES as i64).map(|v| l(v, 1)).collect();
        let browser = [l(1000, 1), l(1, 3)];
        let m = merge(&saved, &browser);
        assert_eq!(m.len(), MAX_LINES);
        assert_eq!(m[0], l(1, 3));
        assert!(!m.iter().any(|x| x.variant_id == 1000));
    }
}
