//! Admin → Products: the list (search, status/kind filters, paging, bulk status and tags), the
//! editor (every field, options and variants, per-language text, kind details) and stock
//! adjustments with a reason, each recorded with who made it. No JavaScript: a new product shows
//! blank variant rows, an existing one its variants plus blank rows to add.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use serde::Deserialize;
use yiren_core::catalog::{
    self, Details, Kind, Price, Product, ProductInput, Translation, VariantInput,
};
use yiren_core::{clock, money, DomainError, Locale};
use yiren_store::catalog::ProductFilter;

use super::pages::{domain_error_page, message, unprocessable};
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm};
use crate::AppState;

const PAGE: i64 = 50;
/// Blank variant rows offered for adding variants without JavaScript.
const BLANK_ROWS: usize = 3;

const FIELDS: &[&str] = &[
    "title",
    "handle",
    "kind",
    "status",
    "vendor",
    "product_type",
    "tags",
    "body",
    "seo_title",
    "seo_description",
    "publish_at",
    "membership_days",
    "membership_months",
    "target_amount",
    "deadline",
    "booking",
    "activation_limit",
    "license_days",
    "license_pattern",
    "option1",
    "option2",
    "option3",
];
const VARIANT_FIELDS: &[&str] = &[
    "id",
    "value1",
    "value2",
    "value3",
    "sku",
    "barcode",
    "price",
    "compare_at",
    "cost",
    "grams",
    "track",
    "continue",
    "stock",
    "remove",
];
const TEXT_FIELDS: &[&str] = &[
    "title",
    "body",
    "seo_title",
    "seo_description",
    "option1",
    "option2",
    "option3",
    "values",
];

type FormMap = BTreeMap<String, String>;

fn refused(e: DomainError) -> Result<Option<String>, DomainError> {
    match e {
        DomainError::Invalid { key, .. } | DomainError::Conflict { key } => Ok(message(key)),
        e => Err(e),
    }
}

fn other_locales(default: Locale) -> Vec<Locale> {
    Locale::ALL.into_iter().filter(|l| *l != default).collect()
}

/// Every key the editor template reads, empty unless `pairs` has it.
fn complete(pairs: &[(String, String)], rows: usize, locales: &[Locale]) -> FormMap {
    let mut m = FormMap::new();
    for k in FIELDS {
        m.insert(k.to_string(), String::new());
    }
    for i in 0..rows {
        for k in VARIANT_FIELDS {
            m.insert(format!("v{i}_{k}"), String::new());
        }
    }
    for l in locales {
        for k in TEXT_FIELDS {
            m.insert(format!("{}_{k}", l.tag()), String::new());
        }
    }
    for (k, v) in pairs {
        if let Some(slot) = m.get_mut(k) {
            *slot = v.clone();
        }
    }
    m
}

fn rows_in(pairs: &[(String, String)]) -> usize {
    pairs
        .iter()
        .filter_map(|(k, _)| {
            k.strip_prefix('v')?
                .split_once('_')?
                .0
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(1 + BLANK_ROWS, |n| n + 1)
        .min(catalog::MAX_VARIANTS + BLANK_ROWS)
}

/// The editor's fields for a stored product.
fn pairs_of(p: &Product, currency: &str, tz: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("title".into(), p.row.title.clone()),
        ("handle".into(), p.row.handle.clone()),
        ("kind".into(), p.row.kind.clone()),
        ("status".into(), p.row.status.clone()),
        ("vendor".into(), p.row.vendor.clone()),
        ("product_type".into(), p.row.product_type.clone()),
        ("tags".into(), p.row.tags.clone()),
        ("body".into(), p.row.body.clone()),
        ("seo_title".into(), p.row.seo_title.clone()),
        ("seo_description".into(), p.row.seo_description.clone()),
        (
            "publish_at".into(),
            p.row
                .publish_at
                .map(|t| clock::input_in(t, tz))
                .unwrap_or_default(),
        ),
        (
            "membership_days".into(),
            p.details
                .membership_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        (
            "membership_months".into(),
            p.details
                .membership_months
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        (
            "target_amount".into(),
            p.details
                .target_amount
                .map(|a| money::format(a, currency))
                .unwrap_or_default(),
        ),
        (
            "deadline".into(),
            p.details
                .deadline
                .map(|t| clock::input_in(t, tz))
                .unwrap_or_default(),
        ),
        (
            "booking".into(),
            if p.details.booking {
                "1".into()
            } else {
                String::new()
            },
        ),
        (
            "activation_limit".into(),
            p.details
                .activation_limit
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        (
            "license_days".into(),
            p.details
                .license_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        (
            "license_pattern".into(),
            p.details.license_pattern.clone().unwrap_or_default(),
        ),
    ];
    for (i, o) in p.options.iter().enumerate() {
        v.push((format!("option{}", i + 1), o.name.clone()));
    }
    for (i, var) in p.variants.iter().enumerate() {
        let r = &var.row;
        let price = var.price(currency);
        let mut put = |k: &str, val: String| v.push((format!("v{i}_{k}"), val));
        put("id", r.id.to_string());
        put("value1", r.option1.clone());
        put("value2", r.option2.clone());
        put("value3", r.option3.clone());
        put("sku", r.sku.clone());
        put("barcode", r.barcode.clone());
        put(
            "price",
            price
                .map(|p| money::format(p.amount, currency))
                .unwrap_or_default(),
        );
        put(
            "compare_at",
            price
                .and_then(|p| p.compare_at)
                .map(|c| money::format(c, currency))
                .unwrap_or_default(),
        );
        put(
            "cost",
            r.cost
                .map(|c| money::format(c, currency))
                .unwrap_or_default(),
        );
        put("grams", r.grams.to_string());
        put(
            "track",
            if r.track_inventory == 1 {
                "1".into()
            } else {
                String::new()
            },
        );
        put(
            "continue",
            if r.inventory_policy == "continue" {
                "1".into()
            } else {
                String::new()
            },
        );
        put("stock", r.inventory_quantity.to_string());
    }
    let last = p.variants.len() + BLANK_ROWS - 1;
    v.push((format!("v{last}_id"), String::new()));
    for t in &p.translations {
        v.push((format!("{}_title", t.locale), t.title.clone()));
        v.push((format!("{}_body", t.locale), t.body.clone()));
        v.push((format!("{}_seo_title", t.locale), t.seo_title.clone()));
        v.push((
            format!("{}_seo_description", t.locale),
            t.seo_description.clone(),
        ));
        for (i, n) in t.options.iter().enumerate() {
            v.push((format!("{}_option{}", t.locale, i + 1), n.clone()));
        }
        let values: Vec<String> = t.values.iter().map(|(a, b)| format!("{a} = {b}")).collect();
        v.push((format!("{}_values", t.locale), values.join("\n")));
    }
    v
}

/// "白 = White" lines as a map (blank lines skipped; a line without " = " is refused).
fn value_lines(text: &str) -> Result<BTreeMap<String, String>, DomainError> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (a, b) = line.split_once('=').ok_or(DomainError::invalid(
            "values",
            "catalog.option_translation_invalid",
        ))?;
        out.insert(a.trim().to_string(), b.trim().to_string());
    }
    Ok(out)
}

/// The submitted editor form as a product. Money in the shop currency, times in the site's zone.
fn input_of(
    f: &FormMap,
    rows: usize,
    currency: &str,
    tz: &str,
    locales: &[Locale],
) -> Result<ProductInput, DomainError> {
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let on = |k: &str| !get(k).is_empty();
    let kind =
        Kind::parse(get("kind")).ok_or(DomainError::invalid("kind", "catalog.kind_invalid"))?;
    let time = |k: &'static str| {
        yiren_core::reach::broadcast::parse_local(get(k), tz)
            .map_err(|_| DomainError::invalid(k, "reach.when_invalid"))
    };
    let opt_money = |k: &'static str| -> Result<Option<i64>, DomainError> {
        match get(k).trim() {
            "" => Ok(None),
            s => money::parse(s, currency, k).map(Some),
        }
    };
    let whole = |k: &'static str, key: &'static str| -> Result<Option<i64>, DomainError> {
        match get(k).trim() {
            "" => Ok(None),
            s => s
                .parse::<i64>()
                .map(Some)
                .map_err(|_| DomainError::invalid(k, key)),
        }
    };
    let mut variants = Vec::new();
    for i in 0..rows {
        let g = |k: &str| get(&format!("v{i}_{k}")).to_string();
        let id = g("id").trim().parse::<i64>().ok();
        let values = vec![g("value1"), g("value2"), g("value3")];
        let filled = id.is_some()
            || values.iter().any(|v| !v.trim().is_empty())
            || !g("price").trim().is_empty()
            || !g("sku").trim().is_empty();
        if !filled || !g("remove").is_empty() {
            continue;
        }
        let price = money::parse(&g("price"), currency, "price")?;
        let compare_at = match g("compare_at").trim() {
            "" => None,
            s => Some(money::parse(s, currency, "compare_at")?),
        };
        let cost = match g("cost").trim() {
            "" => None,
            s => Some(money::parse(s, currency, "cost")?),
        };
        let grams = match g("grams").trim() {
            "" => 0,
            s => s
                .parse()
                .map_err(|_| DomainError::invalid("grams", "catalog.weight_invalid"))?,
        };
        let initial_stock = match (id, g("stock").trim()) {
            (None, s) if !s.is_empty() => s
                .parse()
                .map_err(|_| DomainError::invalid("stock", "catalog.quantity_invalid"))?,
            _ => 0,
        };
        variants.push(VariantInput {
            id,
            values,
            sku: g("sku"),
            barcode: g("barcode"),
            grams,
            requires_shipping: None,
            cost,
            track_inventory: !g("track").is_empty(),
            continue_selling: !g("continue").is_empty(),
            initial_stock,
            prices: vec![Price {
                currency: currency.into(),
                amount: price,
                compare_at,
            }],
        });
    }
    let mut translations = Vec::new();
    for l in locales {
        let mut options: Vec<String> = (1..=3)
            .map(|n| get(&format!("{}_option{n}", l.tag())).to_string())
            .collect();
        while options.last().is_some_and(String::is_empty) {
            options.pop();
        }
        translations.push(Translation {
            locale: l.tag().into(),
            title: get(&format!("{}_title", l.tag())).into(),
            body: get(&format!("{}_body", l.tag())).into(),
            seo_title: get(&format!("{}_seo_title", l.tag())).into(),
            seo_description: get(&format!("{}_seo_description", l.tag())).into(),
            options,
            values: value_lines(get(&format!("{}_values", l.tag())))?,
        });
    }
    Ok(ProductInput {
        title: get("title").into(),
        body: get("body").into(),
        handle: get("handle").into(),
        kind,
        status: get("status").into(),
        vendor: get("vendor").into(),
        product_type: get("product_type").into(),
        tags: get("tags").into(),
        seo_title: get("seo_title").into(),
        seo_description: get("seo_description").into(),
        publish_at: time("publish_at")?,
        details: Details {
            membership_days: whole("membership_days", "catalog.details_invalid")?,
            membership_months: whole("membership_months", "catalog.details_invalid")?,
            target_amount: opt_money("target_amount")?,
            deadline: time("deadline")?,
            booking: on("booking"),
            activation_limit: whole("activation_limit", "catalog.details_invalid")?,
            license_days: whole("license_days", "catalog.details_invalid")?,
            license_pattern: Some(get("license_pattern").trim().to_string())
                .filter(|s| !s.is_empty()),
        },
        options: vec![
            get("option1").into(),
            get("option2").into(),
            get("option3").into(),
        ],
        variants,
        translations,
    })
}

// ---------------------------------------------------------------------------------------------
// List

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    before: Option<i64>,
    notice: Option<String>,
}

async fn render_list(
    state: &AppState,
    s: &yiren_core::auth::Session,
    q: &ListQuery,
    error: Option<String>,
) -> Response {
    let site = state.settings().await;
    let filter = ProductFilter {
        status: q.status.clone(),
        query: q.q.chars().take(100).collect(),
        kind: q.kind.clone(),
    };
    let (list, total) = match (
        catalog::list(&state.ctx, &filter, q.before.unwrap_or(0), PAGE).await,
        catalog::count(&state.ctx, &filter).await,
    ) {
        (Ok(l), Ok(t)) => (l, t),
        (Err(e), _) | (_, Err(e)) => return domain_error_page(e),
    };
    let cur = site.currency.as_str();
    let rows: Vec<Value> = list
        .iter()
        .map(|p| {
            context! {
                id => p.row.id.to_string(),
                title => p.row.title.clone(),
                handle => p.row.handle.clone(),
                status => p.row.status.clone(),
                kind => p.row.kind.clone(),
                tags => p.row.tags.clone(),
                variants => p.variants.len(),
                stock => p.stock(),
                price => p.min_price(cur).map(|m| money::display(m, cur)),
                updated_at => p.row.updated_at,
            }
        })
        .collect();
    let more = (list.len() as i64 == PAGE).then(|| {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        qs.append_pair("q", &q.q)
            .append_pair("status", &q.status)
            .append_pair("kind", &q.kind)
            .append_pair(
                "before",
                &list.last().map(|p| p.row.id).unwrap_or(0).to_string(),
            );
        format!("/admin/products?{}", qs.finish())
    });
    let base = base_ctx(state, "/admin/products", Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/products.html",
        context! {
            products => rows, total => total, q => q.q.clone(), status => q.status.clone(), kind => q.kind.clone(),
            kinds => Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            statuses => catalog::STATUSES.to_vec(),
            currency => site.currency.clone(),
            more => more, error => error, notice => notice(q.notice.as_deref()), ..base
        },
    )
}

pub async fn list(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<ListQuery>,
) -> Response {
    render_list(&state, &s, &q, None).await
}

/// Bulk actions on the checked products.
pub async fn bulk(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    let ids: Vec<i64> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .filter_map(|(_, v)| v.parse().ok())
        .take(250)
        .collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let tags = catalog::split_tags(get("tag"));
    let result = match get("action") {
        "active" | "draft" | "archived" => catalog::set_status(&state.ctx, &ids, get("action"))
            .await
            .map(|_| ()),
        "tag_add" => catalog::bulk_tags(&state.ctx, &ids, &tags, &[]).await,
        "tag_remove" => catalog::bulk_tags(&state.ctx, &ids, &[], &tags).await,
        action @ ("price_set" | "price_add" | "price_percent") => {
            let currency = state.settings().await.currency;
            let value = get("price_value").trim();
            let change = match action {
                "price_percent" => catalog::PriceChange::percent(value),
                "price_set" => {
                    money::parse(value, &currency, "price_value").map(catalog::PriceChange::Set)
                }
                _ => {
                    let (neg, v) = match value.strip_prefix('-') {
                        Some(v) => (true, v),
                        None => (false, value.strip_prefix('+').unwrap_or(value)),
                    };
                    money::parse(v, &currency, "price_value")
                        .map(|m| catalog::PriceChange::Add(if neg { -m } else { m }))
                }
            };
            match change {
                Ok(c) => catalog::bulk_price(&state.ctx, &ids, c, get("compare_at") == "1")
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
        _ => Err(DomainError::invalid("action", "catalog.bulk_invalid")),
    };
    let result = result.and_then(|()| {
        if ids.is_empty() {
            Err(DomainError::invalid("id", "catalog.bulk_none"))
        } else {
            Ok(())
        }
    });
    match result {
        Ok(()) => Redirect::to("/admin/products?notice=settings.saved").into_response(),
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(render_list(&state, &s, &ListQuery::default(), m).await),
            Err(e) => domain_error_page(e),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Editor

/// The editor of product `id` with `e` shown (a refused media action), or the error page.
pub(super) async fn editor_refusing(
    state: &AppState,
    s: &yiren_core::auth::Session,
    id: i64,
    e: DomainError,
) -> Response {
    let p = match catalog::get(&state.ctx, id).await {
        Ok(p) => p,
        Err(e) => return domain_error_page(e),
    };
    match refused(e) {
        Ok(m) => {
            let site = state.settings().await;
            let pairs = pairs_of(&p, &site.currency, &site.time_zone);
            unprocessable(render_editor(state, s, Some(&p), &pairs, m, None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

async fn render_editor(
    state: &AppState,
    s: &yiren_core::auth::Session,
    product: Option<&Product>,
    pairs: &[(String, String)],
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let site = state.settings().await;
    let locales = other_locales(site.default_locale);
    let rows = rows_in(pairs);
    let f = complete(pairs, rows, &locales);
    let existing: BTreeMap<i64, &catalog::Variant> = product
        .map(|p| p.variants.iter().map(|v| (v.row.id, v)).collect())
        .unwrap_or_default();
    let row_views: Vec<Value> = (0..rows)
        .map(|i| {
            let id = f[&format!("v{i}_id")].parse::<i64>().ok();
            let v = id.and_then(|id| existing.get(&id));
            context! {
                i => i,
                existing => v.is_some(),
                id => id.map(|x| x.to_string()),
                stock => v.map(|v| v.row.inventory_quantity),
                tracked => v.map(|v| v.row.track_inventory == 1),
                title => v.map(|v| v.title()),
            }
        })
        .collect();
    let history: Vec<Value> = match product {
        Some(p) => match catalog::history(&state.ctx, p, 20).await {
            Ok(h) => h
                .iter()
                .map(|a| {
                    let title = existing.get(&a.variant_id).map(|v| v.title()).unwrap_or_default();
                    context! { variant => title, delta => a.delta, after => a.quantity_after, reason => a.reason.clone(), actor => a.actor.clone(), at => a.created_at }
                })
                .collect(),
            Err(e) => return domain_error_page(e),
        },
        None => vec![],
    };
    let items = match product {
        Some(p) => match yiren_core::media::of_product(&state.ctx, p.row.id).await {
            Ok(m) => m,
            Err(e) => return domain_error_page(e),
        },
        None => vec![],
    };
    let media: Vec<yiren_core::media::View> = items
        .iter()
        .map(|m| m.view(site.default_locale, site.default_locale))
        .collect();
    let media_alts: Vec<Value> = items
        .iter()
        .map(|m| {
            let alt: BTreeMap<&str, String> = Locale::ALL
                .iter()
                .map(|l| (l.tag(), m.alt.get(l.tag()).cloned().unwrap_or_default()))
                .collect();
            context! { id => m.row.id.to_string(), error => m.row.error.clone(), source => m.row.source_url.clone(), alt => alt }
        })
        .collect();
    let files: Vec<Value> = match product.filter(|p| p.row.kind == "digital") {
        Some(p) => match yiren_core::delivery::files(&state.ctx, p.row.id).await {
            Ok(f) => f
                .iter()
                .map(|f| context! { id => f.id.to_string(), name => f.name.clone(), size => f.size, at => f.created_at })
                .collect(),
            Err(e) => return domain_error_page(e),
        },
        None => vec![],
    };
    let pool = match product.filter(|p| p.row.kind == "license") {
        Some(p) => match yiren_core::license::available(&state.ctx, p.row.id).await {
            Ok(n) => Some(n),
            Err(e) => return domain_error_page(e),
        },
        None => None,
    };
    let campaign = match product {
        Some(p) => match yiren_core::campaign::progress(&state.ctx, p).await {
            Ok(c) => c,
            Err(e) => return domain_error_page(e),
        },
        None => None,
    };
    let to_send: Vec<Value> = match &campaign {
        Some(c) => match yiren_core::campaign::refunds_to_send(&state.ctx, c.product_id).await {
            Ok(rows) => rows
                .into_iter()
                .map(|(txn, order_id, number, email, amount, status)| context! { txn => txn.to_string(), order_id => order_id.to_string(), number => number, email => email, amount => yiren_core::money::display(amount, &c.currency), status => crate::locale::current().t(&format!("orders.refund_{status}")) })
                .collect(),
            Err(e) => return domain_error_page(e),
        },
        None => vec![],
    };
    let path = match product {
        Some(p) => format!("/admin/products/{}", p.row.id),
        None => "/admin/products/new".into(),
    };
    let base = base_ctx(state, &path, Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/product.html",
        context! {
            id => product.map(|p| p.row.id.to_string()),
            handle => product.map(|p| p.row.handle.clone()),
            visible => product.map(|p| p.visible(state.ctx.now())),
            f => Value::from_serialize(&f),
            rows => row_views,
            history => history,
            media => media,
            media_meta => media_alts,
            digital => product.is_some_and(|p| p.row.kind == "digital"),
            files => files,
            pool => pool,
            campaign => Value::from_serialize(&campaign),
            widget_url => product.map(|p| crate::storefront::absolute(state, &format!("/campaigns/{}/widget", crate::storefront::percent(&p.row.handle)))),
            to_send => to_send,
            all_locales => Locale::ALL.iter().map(|l| context! { tag => l.tag(), name => l.native_name() }).collect::<Vec<_>>(),
            kinds => Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            statuses => catalog::STATUSES.to_vec(),
            locales => locales.iter().map(|l| context! { tag => l.tag(), name => l.native_name() }).collect::<Vec<_>>(),
            currency => site.currency.clone(),
            error => error,
            notice => notice(notice_key),
            ..base
        },
    )
}

pub async fn new_page(State(state): State<AppState>, AdminSession(s): AdminSession) -> Response {
    let defaults = vec![
        ("kind".to_string(), "physical".to_string()),
        ("status".to_string(), "draft".to_string()),
    ];
    render_editor(&state, &s, None, &defaults, None, None).await
}

#[derive(Deserialize, Default)]
pub struct NoticeOnly {
    /// A notice key to show after a redirect.
    pub notice: Option<String>,
}

pub async fn edit_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    Query(q): Query<NoticeOnly>,
) -> Response {
    let p = match catalog::get(&state.ctx, id).await {
        Ok(p) => p,
        Err(e) => return domain_error_page(e),
    };
    let site = state.settings().await;
    let pairs = pairs_of(&p, &site.currency, &site.time_zone);
    render_editor(&state, &s, Some(&p), &pairs, None, q.notice.as_deref()).await
}

async fn save(
    state: &AppState,
    s: &yiren_core::auth::Session,
    id: Option<i64>,
    pairs: Vec<(String, String)>,
) -> Response {
    let site = state.settings().await;
    let locales = other_locales(site.default_locale);
    let rows = rows_in(&pairs);
    let f = complete(&pairs, rows, &locales);
    let old = match id {
        Some(id) => match catalog::get(&state.ctx, id).await {
            Ok(p) => Some(p),
            Err(e) => return domain_error_page(e),
        },
        None => None,
    };
    let result = match input_of(&f, rows, &site.currency, &site.time_zone, &locales) {
        Ok(input) => match id {
            Some(id) => catalog::update(&state.ctx, id, &input, &s.staff.email).await,
            None => catalog::create(&state.ctx, &input, &s.staff.email).await,
        },
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => Redirect::to(&format!(
            "/admin/products/{}?notice=settings.saved",
            p.row.id
        ))
        .into_response(),
        Err(e) => match refused(e) {
            Ok(m) => unprocessable(render_editor(state, s, old.as_ref(), &pairs, m, None).await),
            Err(e) => domain_error_page(e),
        },
    }
}

pub async fn create(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    save(&state, &s, None, pairs).await
}

pub async fn update(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Response {
    save(&state, &s, Some(id), pairs).await
}

pub async fn delete(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<super::pages::Empty>,
) -> Response {
    match catalog::delete(&state.ctx, id).await {
        Ok(()) => Redirect::to("/admin/products?notice=settings.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}

#[derive(Deserialize)]
pub struct StockForm {
    #[serde(default)]
    variant_id: String,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    reason: String,
}

/// Record a stock adjustment for one of the product's variants.
pub async fn adjust(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<StockForm>,
) -> Response {
    let p = match catalog::get(&state.ctx, id).await {
        Ok(p) => p,
        Err(e) => return domain_error_page(e),
    };
    let result = match (
        f.variant_id.parse::<i64>(),
        f.delta.trim().trim_start_matches('+').parse::<i64>(),
    ) {
        (Ok(v), Ok(d)) if p.variants.iter().any(|x| x.row.id == v) => {
            catalog::adjust(&state.ctx, v, d, &f.reason, &s.staff.email)
                .await
                .map(|_| ())
        }
        (Ok(_), Ok(_)) => Err(DomainError::invalid(
            "variant_id",
            "catalog.variant_unknown",
        )),
        _ => Err(DomainError::invalid("delta", "catalog.quantity_invalid")),
    };
    match result {
        Ok(()) => Redirect::to(&format!(
            "/admin/products/{id}?notice=catalog.stock_adjusted"
        ))
        .into_response(),
        Err(e) => match refused(e) {
            Ok(m) => {
                let site = state.settings().await;
                let pairs = pairs_of(&p, &site.currency, &site.time_zone);
                unprocessable(render_editor(&state, &s, Some(&p), &pairs, m, None).await)
            }
            Err(e) => domain_error_page(e),
        },
    }
}

#[derive(Deserialize)]
pub struct CloseForm {
    /// `funded` or `failed`.
    #[serde(default)]
    outcome: String,
}

/// Close a crowdfunding campaign before its deadline: funded (its orders may be sent) or failed
/// (every backer is refunded).
pub async fn close_campaign(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(f): CsrfForm<CloseForm>,
) -> Response {
    use yiren_core::campaign::{self, Outcome};
    let outcome = match f.outcome.as_str() {
        "funded" => Outcome::Funded,
        "failed" => Outcome::Failed,
        _ => return domain_error_page(DomainError::invalid("outcome", "campaign.outcome_invalid")),
    };
    match campaign::close(&state.ctx, id, outcome, &s.staff.email).await {
        Ok(_) => Redirect::to(&format!(
            "/admin/products/{id}?notice=campaign.closed_notice#campaign"
        ))
        .into_response(),
        Err(e) => domain_error_page(e),
    }
}
