//! The suppression list: addresses that bounced, complained or that the owner marked are never
//! mailed again. Only a keyed hash of the address is stored (plus a masked hint such as
//! `a***@example.com` for the admin list), so the list keeps working after a customer's data is
//! deleted without keeping the address.

use yiren_store::reach as store;

use crate::error::{DomainError, DomainResult};
use crate::Ctx;

/// Reasons an address is suppressed.
pub const REASONS: [&str; 3] = ["bounce", "complaint", "manual"];

fn normalize(address: &str) -> String {
    address.trim().to_lowercase()
}

/// The stored hash of an address.
pub fn hash(ctx: &Ctx, address: &str) -> String {
    ctx.keys.mac("suppress", &[&normalize(address)])
}

/// `alice@example.com` → `a***@example.com`.
pub fn hint(address: &str) -> String {
    let a = normalize(address);
    match a.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// Whether an address is suppressed.
pub async fn is_suppressed(ctx: &Ctx, address: &str) -> DomainResult<bool> {
    Ok(store::is_suppressed(ctx.db.read(), &hash(ctx, address)).await?)
}

/// Suppress an address inside a transaction; false when it already was.
pub async fn add_in(
    ctx: &Ctx,
    tx: &mut yiren_store::Tx,
    address: &str,
    reason: &str,
) -> DomainResult<bool> {
    if !REASONS.contains(&reason) {
        return Err(DomainError::invalid("reason", "error.invalid"));
    }
    Ok(store::suppress(
        &mut **tx,
        &hash(ctx, address),
        &hint(address),
        reason,
        ctx.now(),
    )
    .await?)
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportReport {
    pub added: usize,
    pub already: usize,
    /// Lines that are not addresses (1-based line numbers).
    pub invalid: Vec<usize>,
}

/// Suppress every address in `text` (one per line; commas and semicolons also separate; a CSV
/// export's first column works too). All or nothing: written in one transaction.
pub async fn import(ctx: &Ctx, text: &str, reason: &str) -> DomainResult<ImportReport> {
    if text.len() > 5_000_000 {
        return Err(DomainError::invalid("list", "reach.suppress_too_long"));
    }
    let mut report = ImportReport::default();
    let mut tx = ctx.db.begin().await?;
    for (n, line) in text.lines().enumerate() {
        for item in line.split([',', ';', '\t']) {
            let item = item.trim().trim_matches('"');
            if item.is_empty() || (n == 0 && item.eq_ignore_ascii_case("email")) {
                continue;
            }
            if crate::auth::parse_email(item).is_err() {
                if !report.invalid.contains(&(n + 1)) {
                    report.invalid.push(n + 1);
                }
                continue;
            }
            if add_in(ctx, &mut tx, item, reason).await? {
                report.added += 1;
            } else {
                report.already += 1;
            }
        }
    }
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    Ok(report)
}

/// The list, newest first.
pub async fn list(ctx: &Ctx, limit: i64) -> DomainResult<Vec<store::SuppressionRow>> {
    Ok(store::list_suppressions(ctx.db.read(), limit.clamp(1, 1000)).await?)
}

/// Lift a suppression by its hash.
pub async fn remove(ctx: &Ctx, hash: &str) -> DomainResult<()> {
    store::unsuppress(ctx.db.write(), hash)
        .await
        .map_err(|e| match e {
            yiren_store::StoreError::NotFound => DomainError::NotFound,
            e => e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_mask_the_local_part() {
        assert_eq!(hint(" Alice@Example.com "), "a***@example.com");
        assert_eq!(hint("nonsense"), "***");
    }
}
