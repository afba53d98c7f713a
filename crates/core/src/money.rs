//! Money: integer minor units plus an ISO 4217 currency, never floats. Text in and out is the
//! plain decimal form gateways and Shopify use (`"199.99"`, `"1200"` for yen).

use crate::error::{DomainError, DomainResult};
use crate::settings::CURRENCIES;

/// The largest amount we accept: 10^13 minor units (a hundred billion yuan), far from overflow
/// when lines are multiplied and summed.
pub const MAX_MINOR: i64 = 10_000_000_000_000;

/// Minor-unit exponent of a currency we know (CNY 2, JPY 0); None for others.
pub fn exponent(currency: &str) -> Option<u8> {
    CURRENCIES
        .iter()
        .find(|(c, _)| *c == currency)
        .map(|(_, e)| *e)
}

/// Parse `"199.99"` into minor units of `currency`. Accepts digits with at most the currency's
/// number of decimals, surrounding spaces, and a `,` or `_` as thousands separators; refuses signs,
/// exponents, too many decimals and amounts above [`MAX_MINOR`].
pub fn parse(text: &str, currency: &str, field: &'static str) -> DomainResult<i64> {
    let bad = || DomainError::invalid(field, "catalog.price_invalid");
    let e = exponent(currency).ok_or(DomainError::invalid(
        "currency",
        "settings.currency_invalid",
    ))?;
    let t: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '_'))
        .collect();
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t.as_str(), ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > e as usize {
        return Err(bad());
    }
    if whole.len() > 15 {
        return Err(bad());
    }
    let mut minor: i64 = whole.parse().map_err(|_| bad())?;
    for i in 0..e as usize {
        let d = frac
            .as_bytes()
            .get(i)
            .map(|b| (b - b'0') as i64)
            .unwrap_or(0);
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(d))
            .ok_or_else(bad)?;
    }
    if minor > MAX_MINOR {
        return Err(bad());
    }
    Ok(minor)
}

/// `amount × bps / 10 000` (basis points: 1 % = 100), rounded half up, exactly in integers; None
/// when `amount` or `bps` is negative or the result leaves `0..=MAX_MINOR`.
pub fn mul_bps(amount: i64, bps: i64) -> Option<i64> {
    if amount < 0 || bps < 0 {
        return None;
    }
    let v = (i128::from(amount) * i128::from(bps) + 5_000) / 10_000;
    i64::try_from(v)
        .ok()
        .filter(|v| (0..=MAX_MINOR).contains(v))
}

/// Minor units as a decimal string with the currency's decimals: `19999, "CNY"` → `"199.99"`.
pub fn format(minor: i64, currency: &str) -> String {
    let e = exponent(currency).unwrap_or(2) as u32;
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if e == 0 {
        return format!("{sign}{abs}");
    }
    let unit = 10u64.pow(e);
    format!(
        "{sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = e as usize
    )
}

/// For people: the currency's sign and the amount (`¥199.00`, `$5.00`, `HK$10.00`).
pub fn display(minor: i64, currency: &str) -> String {
    let sign = match currency {
        "CNY" | "JPY" => "¥",
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "HKD" => "HK$",
        "TWD" => "NT$",
        "SGD" => "S$",
        "AUD" => "A$",
        "CAD" => "C$",
        "KRW" => "₩",
        "NZD" => "NZ$",
        "THB" => "฿",
        "MYR" => "RM",
        _ => "",
    };
    if sign.is_empty() {
        format!("{} {currency}", format(minor, currency))
    } else {
        format!("{sign}{}", format(minor, currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_exactly() {
        assert_eq!(parse("199.99", "CNY", "p").unwrap(), 19999);
        assert_eq!(parse(" 1,299 ", "CNY", "p").unwrap(), 129900);
        assert_eq!(parse("0.1", "USD", "p").unwrap(), 10);
        assert_eq!(parse("1200", "JPY", "p").unwrap(), 1200);
        for bad in [
            "",
            "-1",
            "+1",
            "1e3",
            "1.999",
            ".5",
            "abc",
            "1..2",
            "99999999999999999",
        ] {
            assert!(parse(bad, "CNY", "p").is_err(), "{bad}");
        }
        assert!(parse("1.5", "JPY", "p").is_err(), "yen has no decimals");
        assert!(parse("1", "XXX", "p").is_err(), "unknown currency");
        assert_eq!(format(19999, "CNY"), "199.99");
        assert_eq!(format(5, "USD"), "0.05");
        assert_eq!(format(1200, "JPY"), "1200");
        assert_eq!(display(19900, "CNY"), "¥199.00");
        for m in [0, 1, 99, 100, 123456789, MAX_MINOR] {
            assert_eq!(parse(&format(m, "CNY"), "CNY", "p").unwrap(), m);
        }
    }
}
