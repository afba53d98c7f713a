//! Collections: manual (the owner lists the products) or automatic (rules over tag, type, vendor,
//! price and stock, all or any of them). Members of both kinds are rows of `collection_products`,
//! so a collection page is one indexed query. An automatic collection is recomputed in full when
//! it is saved, and per product when the product changes (from the `catalog.index` job that
//! follows every product change).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use yiren_store::catalog::{self as store, CollectionRow};
use yiren_store::StoreError;

use super::{enqueue_index, slugify, store_err, valid_handle, Product};
use crate::error::{DomainError, DomainResult};
use crate::{money, Ctx, Locale};

/// Most rules in an automatic collection.
pub const MAX_RULES: usize = 10;
/// Most products listed by hand.
pub const MAX_MANUAL: usize = 5_000;

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// Has this tag (case-insensitive).
    Tag,
    /// Product type equals (case-insensitive).
    Type,
    /// Vendor equals (case-insensitive).
    Vendor,
    /// Lowest price in the shop currency at least this (minor units).
    PriceAtLeast,
    /// Lowest price in the shop currency at most this (minor units).
    PriceAtMost,
    /// Can be bought now (value ignored).
    InStock,
}

impl Field {
    /// Every field, in the order the admin offers them.
    pub const ALL: [Field; 6] = [
        Field::Tag,
        Field::Type,
        Field::Vendor,
        Field::PriceAtLeast,
        Field::PriceAtMost,
        Field::InStock,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Tag => "tag",
            Field::Type => "type",
            Field::Vendor => "vendor",
            Field::PriceAtLeast => "price_at_least",
            Field::PriceAtMost => "price_at_most",
            Field::InStock => "in_stock",
        }
    }

    /// Parse a stored or submitted name.
    pub fn parse(s: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One rule. Prices are minor units of the shop currency, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub field: Field,
    #[serde(default)]
    pub value: String,
}

/// A collection's text in another language.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionText {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
}

/// A collection as submitted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionInput {
    pub title: String,
    /// Markdown.
    pub body: String,
    /// Empty: made from the title.
    pub handle: String,
    /// True for rules, false for a hand-picked list.
    pub automatic: bool,
    pub rules: Vec<Rule>,
    pub match_all: bool,
    /// Manual collections: the products, in order.
    pub products: Vec<i64>,
    /// By locale tag.
    pub translations: BTreeMap<String, CollectionText>,
}

/// A stored collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub row: CollectionRow,
    pub rules: Vec<Rule>,
    pub translations: BTreeMap<String, CollectionText>,
}

impl Collection {
    /// Title and description in `locale`, falling back to the shop language's.
    pub fn text(&self, locale: Locale) -> CollectionText {
        let t = self.translations.get(locale.tag());
        let pick = |a: Option<&String>, b: &String| {
            a.filter(|s| !s.trim().is_empty()).unwrap_or(b).clone()
        };
        CollectionText {
            title: pick(t.map(|t| &t.title), &self.row.title),
            body: pick(t.map(|t| &t.body), &self.row.body),
        }
    }

    /// Whether the rules take the product in (always false for a manual collection).
    pub fn matches(&self, p: &Product, currency: &str) -> bool {
        if self.row.kind != "automatic" || self.rules.is_empty() {
            return false;
        }
        let eq = |a: &str, b: &str| a.trim().to_lowercase() == b.trim().to_lowercase();
        let one = |r: &Rule| match r.field {
            Field::Tag => p.tags().iter().any(|t| eq(t, &r.value)),
            Field::Type => eq(&p.row.product_type, &r.value),
            Field::Vendor => eq(&p.row.vendor, &r.value),
            Field::PriceAtLeast => match (p.min_price(currency), r.value.parse::<i64>()) {
                (Some(m), Ok(v)) => m >= v,
                _ => false,
            },
            Field::PriceAtMost => match (p.min_price(currency), r.value.parse::<i64>()) {
                (Some(m), Ok(v)) => m <= v,
                _ => false,
            },
            Field::InStock => p.available(),
        };
        if self.row.match_all != 0 {
            self.rules.iter().all(one)
        } else {
            self.rules.iter().any(one)
        }
    }
}

fn assemble(row: CollectionRow) -> DomainResult<Collection> {
    let rules = serde_json::from_str(&row.rules)
        .map_err(|e| StoreError::Corrupt(format!("collection {} rules: {e}", row.id)))?;
    let translations = serde_json::from_str(&row.translations)
        .map_err(|e| StoreError::Corrupt(format!("collection {} translations: {e}", row.id)))?;
    Ok(Collection {
        row,
        rules,
        translations,
    })
}

/// Create (`id` None) or replace a collection, and recompute its members.
pub async fn save(ctx: &Ctx, id: Option<i64>, input: &CollectionInput) -> DomainResult<Collection> {
    let title = super::text(&input.title, 255, "title")?;
    if title.is_empty() {
        return Err(DomainError::invalid("title", "catalog.title_required"));
    }
    let body = super::long_text(&input.body, 65_536, "body")?;
    // An update without a handle keeps the collection's address, as products do.
    let kept = match id {
        Some(id) if input.handle.trim().is_empty() => Some(get(ctx, id).await?.row.handle),
        _ => None,
    };
    let handle = match input.handle.trim().to_lowercase() {
        _ if kept.is_some() => kept.unwrap_or_default(),
        h if h.is_empty() => {
            let s = slugify(&title);
            if s.is_empty() {
                format!("collection-{}", id.unwrap_or_else(|| ctx.new_id()))
            } else {
                s
            }
        }
        h if valid_handle(&h) => h,
        _ => return Err(DomainError::invalid("handle", "catalog.handle_invalid")),
    };
    if input.automatic && (input.rules.is_empty() || input.rules.len() > MAX_RULES) {
        return Err(DomainError::invalid("rules", "catalog.rules_invalid"));
    }
    for r in &input.rules {
        let ok = match r.field {
            Field::PriceAtLeast | Field::PriceAtMost => r
                .value
                .parse::<i64>()
                .is_ok_and(|v| (0..=money::MAX_MINOR).contains(&v)),
            Field::InStock => true,
            _ => !r.value.trim().is_empty() && r.value.chars().count() <= 120,
        };
        if !ok {
            return Err(DomainError::invalid("rules", "catalog.rules_invalid"));
        }
    }
    if input.products.len() > MAX_MANUAL {
        return Err(DomainError::invalid("products", "catalog.rules_invalid"));
    }
    let mut translations = BTreeMap::new();
    for (tag, t) in &input.translations {
        let Some(l) = Locale::parse(tag) else {
            return Err(DomainError::invalid("locale", "catalog.locale_invalid"));
        };
        let t = CollectionText {
            title: super::text(&t.title, 255, "title")?,
            body: super::long_text(&t.body, 65_536, "body")?,
        };
        if !t.title.is_empty() || !t.body.is_empty() {
            translations.insert(l.tag().to_string(), t);
        }
    }
    let now = ctx.now();
    let old = match id {
        Some(id) => Some(get(ctx, id).await?),
        None => None,
    };
    let row = CollectionRow {
        id: id.unwrap_or_else(|| ctx.new_id()),
        handle,
        title,
        body,
        kind: if input.automatic {
            "automatic"
        } else {
            "manual"
        }
        .into(),
        rules: serde_json::to_string(if input.automatic {
            &input.rules[..]
        } else {
            &[]
        })
        .expect("serialisable"),
        match_all: input.match_all as i64,
        translations: serde_json::to_string(&translations).expect("serialisable"),
        created_at: old.as_ref().map_or(now, |c| c.row.created_at),
        updated_at: now,
    };
    let c = assemble(row.clone())?;
    // Members: the list as given (existing products only), or every product the rules take in.
    let members: Vec<i64> = if input.automatic {
        let currency = crate::settings::load(ctx).await?.currency;
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = super::all_ids(ctx, after, 500).await?;
            let Some(last) = page.last().copied() else {
                break;
            };
            for p in super::get_many(ctx, &page).await? {
                if c.matches(&p, &currency) {
                    ids.push(p.row.id);
                }
            }
            after = last;
        }
        ids
    } else {
        let found: BTreeSet<i64> = store::get_products(ctx.db.read(), &input.products)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let mut seen = BTreeSet::new();
        input
            .products
            .iter()
            .copied()
            .filter(|p| found.contains(p) && seen.insert(*p))
            .collect()
    };
    let before: BTreeSet<i64> = match &old {
        Some(o) => store::members(ctx.db.read(), o.row.id)
            .await?
            .into_iter()
            .collect(),
        None => BTreeSet::new(),
    };
    let mut tx = ctx.db.begin().await?;
    store::put_collection(&mut tx, &row)
        .await
        .map_err(store_err)?;
    store::set_members(&mut tx, row.id, &members).await?;
    // Search documents carry their collections: reindex whoever joined or left.
    let after: BTreeSet<i64> = members.iter().copied().collect();
    for p in before.symmetric_difference(&after) {
        enqueue_index(ctx, &mut tx, *p).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    super::changed();
    get(ctx, row.id).await
}

/// Delete a collection (products stay).
pub async fn delete(ctx: &Ctx, id: i64) -> DomainResult<()> {
    let members = store::members(ctx.db.read(), id).await?;
    let mut tx = ctx.db.begin().await?;
    store::delete_collection(&mut tx, id)
        .await
        .map_err(store_err)?;
    for p in members {
        enqueue_index(ctx, &mut tx, p).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    super::changed();
    Ok(())
}

/// One collection.
pub async fn get(ctx: &Ctx, id: i64) -> DomainResult<Collection> {
    assemble(
        store::get_collection(ctx.db.read(), id)
            .await
            .map_err(store_err)?,
    )
}

/// The collection at `handle`.
pub async fn by_handle(ctx: &Ctx, handle: &str) -> DomainResult<Collection> {
    assemble(
        store::collection_by_handle(ctx.db.read(), handle)
            .await
            .map_err(store_err)?,
    )
}

/// Every collection, by title.
pub async fn list(ctx: &Ctx) -> DomainResult<Vec<Collection>> {
    store::list_collections(ctx.db.read())
        .await?
        .into_iter()
        .map(assemble)
        .collect()
}

/// Member ids, in order.
pub async fn members(ctx: &Ctx, id: i64) -> DomainResult<Vec<i64>> {
    Ok(store::members(ctx.db.read(), id).await?)
}

/// A page of the products a visitor sees in a collection.
pub async fn visible_products(
    ctx: &Ctx,
    id: i64,
    offset: i64,
    limit: i64,
) -> DomainResult<Vec<Product>> {
    let ids = store::visible_members(ctx.db.read(), id, ctx.now(), offset, limit).await?;
    super::get_many(ctx, &ids).await
}

/// Bring one product's automatic memberships up to date against `all` collections (it changed)
/// and return the collections it is in.
pub async fn refresh_product(
    ctx: &Ctx,
    all: &[Collection],
    p: &Product,
    currency: &str,
) -> DomainResult<Vec<i64>> {
    let mut tx = ctx.db.begin().await?;
    let before = store::collections_of(&mut *tx, p.row.id).await?;
    for c in all.iter().filter(|c| c.row.kind == "automatic") {
        store::set_member(&mut tx, c.row.id, p.row.id, c.matches(p, currency)).await?;
    }
    let mut ids = store::collections_of(&mut *tx, p.row.id).await?;
    tx.commit().await.map_err(StoreError::from)?;
    let mut was = before;
    was.sort_unstable();
    ids.sort_unstable();
    if was != ids {
        // A collection page lists it now, or no longer.
        super::changed();
    }
    Ok(ids)
}
