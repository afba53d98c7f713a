//! Pricing a checkout from the catalog's numbers: line subtotals, discounts spread over the lines
//! exactly to the minor unit, shipping, and tax included in or added to the prices.
//!
//! Everything is integer minor units of one currency; rates are basis points (13 % = 1300). Every
//! operation is checked: a sum or product beyond [`MAX_MINOR`] is a 422 (`money.overflow`), never
//! a wrap-around or a panic. The caller picks the shipping rate and tax rate for the address;
//! this module only computes. Nothing here trusts a number the client sent: the caller builds the
//! lines from the catalog.
//!
//! Choices: discounts apply in the order given, each to what earlier ones left of its eligible
//! lines, so a stack of discounts never takes a line below zero; shipping is not taxed; a line's
//! share of an order-level amount (a fixed discount, the tax) is its share of the base, by largest
//! remainder, so the shares always add up to the amount.

use crate::error::{DomainError, DomainResult};
use crate::money::MAX_MINOR;

/// A rate in basis points: 1 % = 100, 100 % = 10 000.
pub type Bps = i64;

/// The most units of one line a checkout may hold.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// 100 % in basis points.
pub const FULL: Bps = 10_000;

/// A rate as people write it: `13`, `7.25` (percent, without the sign).
pub fn percent_text(rate: Bps) -> String {
    if rate % 100 == 0 {
        format!("{}", rate / 100)
    } else {
        format!("{}.{:02}", rate / 100, rate % 100)
    }
}

fn overflow() -> DomainError {
    DomainError::invalid("total", "pricing.overflow")
}

/// Keep an amount within [0, MAX_MINOR].
fn bounded(v: i128) -> DomainResult<i64> {
    if (0..=MAX_MINOR as i128).contains(&v) {
        Ok(v as i64)
    } else {
        Err(overflow())
    }
}

/// `amount × rate` (at most 100 %), rounded half up.
pub fn percent(amount: i64, rate: Bps) -> DomainResult<i64> {
    if rate > FULL {
        return Err(overflow());
    }
    crate::money::mul_bps(amount, rate).ok_or_else(overflow)
}

/// The tax inside a tax-inclusive `amount` at `rate`: `amount × rate / (1 + rate)`, half up.
pub fn included_tax(amount: i64, rate: Bps) -> DomainResult<i64> {
    if amount < 0 || !(0..=FULL).contains(&rate) {
        return Err(overflow());
    }
    let den = (FULL + rate) as i128;
    bounded((amount as i128 * rate as i128 + den / 2) / den)
}

/// Split `amount` over `weights` in proportion, exact to the minor unit: each share is the floor
/// of its exact part, and the units left over go one each to the largest remainders (the earlier
/// weight wins a tie). The shares add up to `amount`. Weights must not be negative, and may all
/// be zero only when `amount` is zero.
pub fn allocate(amount: i64, weights: &[i64]) -> DomainResult<Vec<i64>> {
    if amount < 0 || weights.iter().any(|w| *w < 0) {
        return Err(overflow());
    }
    let total: i128 = weights.iter().map(|w| *w as i128).sum();
    if total == 0 {
        return if amount == 0 {
            Ok(vec![0; weights.len()])
        } else {
            Err(overflow())
        };
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut rems = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let exact = amount as i128 * *w as i128;
        shares.push((exact / total) as i64);
        rems.push((exact % total, i));
    }
    let left = amount - shares.iter().sum::<i64>();
    // Largest remainder first; equal remainders in line order.
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rems.into_iter().take(left as usize) {
        shares[i] += 1;
    }
    Ok(shares)
}

/// A line to price, built by the caller from the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub product_id: i64,
    pub collections: Vec<i64>,
    pub unit_price: i64,
    pub quantity: i64,
    /// Weight of one unit, grams.
    pub grams: i64,
    pub requires_shipping: bool,
}

/// What a discount takes off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A percentage of the eligible lines.
    Percent(Bps),
    /// A fixed amount off the eligible lines together (never more than they cost).
    Amount(i64),
    /// The shipping costs nothing.
    FreeShipping,
    /// For every `buy` eligible units, `get` more of them (the cheapest) are `off` cheaper
    /// (100 % = free).
    BuyXGetY { buy: i64, get: i64, off: Bps },
}

/// Which lines a discount applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    All,
    Products(Vec<i64>),
    Collections(Vec<i64>),
}

impl Applies {
    fn covers(&self, l: &Line) -> bool {
        match self {
            Applies::All => true,
            Applies::Products(ids) => ids.contains(&l.product_id),
            Applies::Collections(ids) => l.collections.iter().any(|c| ids.contains(c)),
        }
    }
}

/// A discount the caller found applicable (code entered, dates, usage limits checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    pub id: i64,
    pub value: Value,
    pub applies: Applies,
    /// The order's subtotal must reach this for the discount to apply.
    pub min_subtotal: i64,
}

/// How shipping is charged (the rate the caller chose for the address). Stored in the checkout
/// settings as JSON tagged by `kind` (`flat`, `free_above`, `by_weight`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shipping {
    Flat {
        price: i64,
    },
    /// `price`, or nothing when the subtotal after discounts reaches `threshold`.
    FreeAbove {
        price: i64,
        threshold: i64,
    },
    /// `first_price` for the first `first_grams`, then `step_price` per `step_grams` begun.
    ByWeight {
        first_grams: i64,
        first_price: i64,
        step_grams: i64,
        step_price: i64,
    },
}

/// A tax rate, and whether prices already include it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tax {
    pub rate: Bps,
    pub inclusive: bool,
}

/// One line's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineTotal {
    /// unit price × quantity.
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
}

/// The priced checkout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub lines: Vec<LineTotal>,
    pub subtotal: i64,
    /// Σ line discounts.
    pub discount: i64,
    pub shipping: i64,
    /// Shipping taken off by a free-shipping discount.
    pub shipping_discount: i64,
    /// Σ line taxes (included in the prices or added, as the rate says).
    pub tax: i64,
    /// What the customer pays.
    pub total: i64,
    /// Discounts that took something off, with how much (shipping included).
    pub applied: Vec<(i64, i64)>,
}

/// Price `lines` with `discounts` (in order), a shipping rate (None: nothing ships or no rate)
/// and a tax rate.
pub fn price(
    lines: &[Line],
    discounts: &[Discount],
    shipping: Option<&Shipping>,
    tax: Option<Tax>,
) -> DomainResult<Totals> {
    let mut t = Totals::default();
    for l in lines {
        if !(1..=MAX_QUANTITY).contains(&l.quantity) || l.unit_price < 0 || l.grams < 0 {
            return Err(DomainError::invalid("quantity", "pricing.quantity_invalid"));
        }
        let subtotal = bounded(l.unit_price as i128 * l.quantity as i128)?;
        t.subtotal = bounded(t.subtotal as i128 + subtotal as i128)?;
        t.lines.push(LineTotal {
            subtotal,
            ..Default::default()
        });
    }
    let mut free_shipping = None;
    for d in discounts {
        if t.subtotal < d.min_subtotal {
            continue;
        }
        let eligible: Vec<usize> = (0..lines.len())
            .filter(|i| d.applies.covers(&lines[*i]))
            .collect();
        let left: Vec<i64> = eligible
            .iter()
            .map(|i| t.lines[*i].subtotal - t.lines[*i].discount)
            .collect();
        let base: i64 = left.iter().sum();
        let shares = match &d.value {
            Value::FreeShipping => {
                free_shipping.get_or_insert(d.id);
                continue;
            }
            Value::Percent(rate) => allocate(percent(base, *rate)?, &left)?,
            Value::Amount(a) => {
                if *a < 0 {
                    return Err(overflow());
                }
                allocate((*a).min(base), &left)?
            }
            Value::BuyXGetY { buy, get, off } => {
                buy_x_get_y(lines, &eligible, &left, *buy, *get, *off)?
            }
        };
        let taken: i64 = shares.iter().sum();
        if taken > 0 {
            for (i, s) in eligible.iter().zip(shares) {
                t.lines[*i].discount += s;
            }
            t.discount += taken;
            t.applied.push((d.id, taken));
        }
    }
    let after = t.subtotal - t.discount;
    if lines.iter().any(|l| l.requires_shipping) {
        if let Some(s) = shipping {
            let grams: i128 = lines
                .iter()
                .filter(|l| l.requires_shipping)
                .map(|l| l.grams as i128 * l.quantity as i128)
                .sum();
            t.shipping = shipping_cost(s, after, bounded(grams)?)?;
            if let Some(id) = free_shipping {
                if t.shipping > 0 {
                    t.shipping_discount = t.shipping;
                    t.applied.push((id, t.shipping));
                }
            }
        }
    }
    if let Some(tax) = tax {
        let bases: Vec<i64> = t.lines.iter().map(|l| l.subtotal - l.discount).collect();
        t.tax = if tax.inclusive {
            included_tax(after, tax.rate)?
        } else {
            percent(after, tax.rate)?
        };
        for (l, s) in t.lines.iter_mut().zip(allocate(t.tax, &bases)?) {
            l.tax = s;
        }
    }
    let added_tax = match tax {
        Some(x) if !x.inclusive => t.tax,
        _ => 0,
    };
    t.total = bounded(
        after as i128 + t.shipping as i128 - t.shipping_discount as i128 + added_tax as i128,
    )?;
    Ok(t)
}

fn shipping_cost(s: &Shipping, after_discounts: i64, grams: i64) -> DomainResult<i64> {
    match *s {
        Shipping::Flat { price } => bounded(price as i128),
        Shipping::FreeAbove { price, threshold } => {
            if after_discounts >= threshold {
                Ok(0)
            } else {
                bounded(price as i128)
            }
        }
        Shipping::ByWeight {
            first_grams,
            first_price,
            step_grams,
            step_price,
        } => {
            if first_grams < 0 || step_grams <= 0 {
                return Err(DomainError::invalid("shipping", "pricing.shipping_invalid"));
            }
            let extra = (grams - first_grams).max(0) as i128;
            let steps = (extra + step_grams as i128 - 1) / step_grams as i128;
            bounded(first_price as i128 + steps * step_price as i128)
        }
    }
}

/// Buy X get Y: the eligible units are grouped `buy + get` at a time, the cheapest units
/// discounted; each line's share is what its discounted units save, capped at what is left of it.
fn buy_x_get_y(
    lines: &[Line],
    eligible: &[usize],
    left: &[i64],
    buy: i64,
    get: i64,
    off: Bps,
) -> DomainResult<Vec<i64>> {
    if !(1..=1_000).contains(&buy) || !(1..=1_000).contains(&get) || !(0..=FULL).contains(&off) {
        return Err(DomainError::invalid("discount", "pricing.discount_invalid"));
    }
    let units: i64 = eligible.iter().map(|i| lines[*i].quantity).sum();
    let mut free = units / (buy + get) * get;
    // Cheapest first; the later line first among equal prices.
    let mut order: Vec<usize> = (0..eligible.len()).collect();
    order.sort_by(|a, b| {
        lines[eligible[*a]]
            .unit_price
            .cmp(&lines[eligible[*b]].unit_price)
            .then(b.cmp(a))
    });
    let mut shares = vec![0; eligible.len()];
    for k in order {
        if free == 0 {
            break;
        }
        let l = &lines[eligible[k]];
        let n = free.min(l.quantity);
        free -= n;
        let saved = percent(bounded(l.unit_price as i128 * n as i128)?, off)?;
        shares[k] = saved.min(left[k]);
    }
    Ok(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(price: i64, qty: i64) -> Line {
        Line {
            product_id: price,
            collections: vec![],
            unit_price: price,
            quantity: qty,
            grams: 500,
            requires_shipping: true,
        }
    }

    #[test]
    fn allocation_is_exact_and_goes_to_the_largest_remainders() {
        assert_eq!(allocate(100, &[1, 1, 1]).unwrap(), vec![34, 33, 33]);
        assert_eq!(allocate(10, &[3333, 3333, 3334]).unwrap(), vec![3, 3, 4]);
        assert_eq!(allocate(0, &[0, 0]).unwrap(), vec![0, 0]);
        assert!(allocate(1, &[0, 0]).is_err());
        assert!(allocate(-1, &[1]).is_err());
    }

    #[test]
    fn percent_rounds_half_up() {
        assert_eq!(percent(1005, 1000).unwrap(), 101); // 100.5 → 101
        assert_eq!(percent(1004, 1000).unwrap(), 100);
        assert_eq!(included_tax(11300, 1300).unwrap(), 1300);
        assert!(percent(1, FULL + 1).is_err());
    }

    #[test]
    fn a_checkout_with_every_kind_of_discount_shipping_and_tax() {
        let lines = [line(9900, 2), line(2500, 3), line(100, 1)];
        let d = |id, value| Discount {
            id,
            value,
            applies: Applies::All,
            min_subtotal: 0,
        };
        // 19800 + 7500 + 100 = 27400.
        let t = price(
            &lines,
            &[
                d(1, Value::Percent(1000)), // 2740
                d(2, Value::Amount(1000)),  // 1000
                d(3, Value::FreeShipping),  // the 1500 shipping
                d(
                    4,
                    Value::BuyXGetY {
                        buy: 2,
                        get: 1,
                        off: FULL,
                    },
                ), // 2 free: the 100 and one 2500
            ],
            Some(&Shipping::Flat { price: 1500 }),
            Some(Tax {
                rate: 1300,
                inclusive: false,
            }),
        )
        .unwrap();
        assert_eq!(t.subtotal, 27400);
        let lines_discount: i64 = t.lines.iter().map(|l| l.discount).sum();
        assert_eq!(lines_discount, t.discount);
        assert_eq!(t.applied.iter().find(|a| a.0 == 1).unwrap().1, 2740);
        assert_eq!(t.applied.iter().find(|a| a.0 == 2).unwrap().1, 1000);
        assert_eq!(t.applied.iter().find(|a| a.0 == 3).unwrap().1, 1500);
        // Buy 2 get 1: six units → two free, the cheapest: the 100 line (already 10 % and a
        // share of the 1000 off) and one 2500 unit.
        assert!(t.applied.iter().any(|a| a.0 == 4));
        assert_eq!(t.shipping, 1500);
        assert_eq!(t.shipping_discount, 1500);
        let after = t.subtotal - t.discount;
        assert_eq!(t.tax, percent(after, 1300).unwrap());
        assert_eq!(t.lines.iter().map(|l| l.tax).sum::<i64>(), t.tax);
        assert_eq!(t.total, after + t.tax);
    }

    #[test]
    fn shipping_rules() {
        let w = Shipping::ByWeight {
            first_grams: 1000,
            first_price: 1200,
            step_grams: 500,
            step_price: 300,
        };
        // 3 × 500 g = 1500 g: first kilo, then one 500 g step.
        let t = price(&[line(1000, 3)], &[], Some(&w), None).unwrap();
        assert_eq!(t.shipping, 1500);
        let free = Shipping::FreeAbove {
            price: 800,
            threshold: 3000,
        };
        assert_eq!(
            price(&[line(1000, 3)], &[], Some(&free), None)
                .unwrap()
                .shipping,
            0
        );
        assert_eq!(
            price(&[line(1000, 2)], &[], Some(&free), None)
                .unwrap()
                .shipping,
            800
        );
        let mut digital = line(1000, 1);
        digital.requires_shipping = false;
        assert_eq!(
            price(&[digital], &[], Some(&free), None).unwrap().shipping,
            0
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(price(&[line(MAX_MINOR, 2)], &[], None, None).is_err());
        assert!(price(&[line(i64::MAX, i64::MAX)], &[], None, None).is_err());
        assert!(price(&[line(100, 0)], &[], None, None).is_err());
        assert!(price(&[line(100, -1)], &[], None, None).is_err());
    }
}

/// RELIABILITY PROP-1: money properties over random carts.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn lines() -> impl Strategy<Value = Vec<Line>> {
        prop::collection::vec(
            (
                0i64..20_000_000,
                1i64..100,
                0i64..5_000,
                any::<bool>(),
                0i64..4,
            ),
            1..6,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(
                    |(i, (unit_price, quantity, grams, requires_shipping, c))| Line {
                        product_id: i as i64,
                        collections: vec![c],
                        unit_price,
                        quantity,
                        grams,
                        requires_shipping,
                    },
                )
                .collect()
        })
    }

    fn discounts() -> impl Strategy<Value = Vec<Discount>> {
        let value = prop_oneof![
            (0..=FULL).prop_map(Value::Percent),
            (0i64..50_000_000).prop_map(Value::Amount),
            Just(Value::FreeShipping),
            (1i64..4, 1i64..3, 0..=FULL).prop_map(|(buy, get, off)| Value::BuyXGetY {
                buy,
                get,
                off
            }),
        ];
        let applies = prop_oneof![
            Just(Applies::All),
            (0i64..6).prop_map(|p| Applies::Products(vec![p])),
            (0i64..4).prop_map(|c| Applies::Collections(vec![c])),
        ];
        prop::collection::vec(
            (value, applies, 0i64..100_000_000)
                .prop_map(|(value, applies, min_subtotal)| (value, applies, min_subtotal)),
            0..4,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (value, applies, min_subtotal))| Discount {
                    id: i as i64 + 1,
                    value,
                    applies,
                    min_subtotal,
                })
                .collect()
        })
    }

    fn shipping() -> impl Strategy<Value = Option<Shipping>> {
        prop_oneof![
            Just(None),
            (0i64..100_000).prop_map(|price| Some(Shipping::Flat { price })),
            (0i64..100_000, 0i64..100_000_000)
                .prop_map(|(price, threshold)| Some(Shipping::FreeAbove { price, threshold })),
            (0i64..5_000, 0i64..10_000, 1i64..2_000, 0i64..5_000).prop_map(|(a, b, c, d)| Some(
                Shipping::ByWeight {
                    first_grams: a,
                    first_price: b,
                    step_grams: c,
                    step_price: d,
                }
            )),
        ]
    }

    fn tax() -> impl Strategy<Value = Option<Tax>> {
        prop_oneof![
            Just(None),
            (0..=3_000i64, any::<bool>())
                .prop_map(|(rate, inclusive)| Some(Tax { rate, inclusive })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn allocation_adds_up_and_is_fair(amount in 0i64..=MAX_MINOR, weights in prop::collection::vec(0i64..=MAX_MINOR, 1..8)) {
            let total: i128 = weights.iter().map(|w| *w as i128).sum();
            match allocate(amount, &weights) {
                Ok(shares) => {
                    prop_assert_eq!(shares.iter().sum::<i64>(), amount);
                    let rem = |w: i64| amount as i128 * w as i128 % total;
                    let mut up = Vec::new();
                    for (s, w) in shares.iter().zip(&weights) {
                        let exact_floor = (amount as i128 * *w as i128 / total) as i64;
                        prop_assert!(*s == exact_floor || *s == exact_floor + 1);
                        up.push(*s > exact_floor);
                    }
                    // The extra units went to the largest remainders.
                    for i in 0..weights.len() {
                        for j in 0..weights.len() {
                            if up[i] && !up[j] {
                                prop_assert!(rem(weights[i]) >= rem(weights[j]));
                            }
                        }
                    }
                }
                Err(_) => prop_assert!(total == 0 && amount > 0),
            }
        }

        #[test]
        fn totals_add_up(lines in lines(), discounts in discounts(), shipping in shipping(), tax in tax()) {
            let Ok(t) = price(&lines, &discounts, shipping.as_ref(), tax) else {
                // Only an amount beyond the cap may fail; the generators stay below it.
                return Err(TestCaseError::fail("priced within the cap must not fail"));
            };
            let sum = |f: fn(&LineTotal) -> i64| t.lines.iter().map(f).sum::<i64>();
            prop_assert_eq!(sum(|l| l.subtotal), t.subtotal);
            prop_assert_eq!(sum(|l| l.discount), t.discount);
            prop_assert_eq!(sum(|l| l.tax), t.tax);
            for l in &t.lines {
                prop_assert!(l.discount >= 0 && l.discount <= l.subtotal);
                prop_assert!(l.tax >= 0);
            }
            let applied: i64 = t.applied.iter().map(|a| a.1).sum();
            prop_assert_eq!(applied, t.discount + t.shipping_discount);
            prop_assert!(t.shipping_discount <= t.shipping);
            let added = tax.filter(|x| !x.inclusive).map_or(0, |_| t.tax);
            prop_assert_eq!(t.total, t.subtotal - t.discount + t.shipping - t.shipping_discount + added);
            prop_assert!(t.total >= 0);
        }

        #[test]
        fn nothing_panics_on_any_numbers(
            price_q in prop::collection::vec((any::<i64>(), any::<i64>(), any::<i64>()), 1..4),
            amount in any::<i64>(),
            rate in any::<i64>(),
        ) {
            let lines: Vec<Line> = price_q.into_iter().map(|(unit_price, quantity, grams)| Line {
                product_id: 1,
                collections: vec![],
                unit_price,
                quantity,
                grams,
                requires_shipping: true,
            }).collect();
            let d = [Discount { id: 1, value: Value::Amount(amount), applies: Applies::All, min_subtotal: 0 },
                     Discount { id: 2, value: Value::Percent(rate), applies: Applies::All, min_subtotal: 0 }];
            let s = Shipping::ByWeight { first_grams: 0, first_price: amount, step_grams: 1, step_price: amount };
            let _ = price(&lines, &d, Some(&s), Some(Tax { rate, inclusive: false }));
        }
    }
}
