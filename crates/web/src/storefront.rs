//! The shop front: home (newest products, collections), product and collection pages, search,
//! robots.txt and sitemap.xml.
//! Server-rendered, no JavaScript needed; every text in the visitor's language with the shop's
//! default as fallback; prices in the shop currency, computed from the catalog.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};
use yiren_core::catalog::{self, Found, Product};
use yiren_core::{money, Locale};

use crate::admin::base_ctx;
use crate::templates::error_page;
use crate::AppState;

/// Products per search page.
const PER_PAGE: usize = 24;

/// Public routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/products/{handle}", get(product_page))
        .route("/campaigns/{handle}/widget", get(campaign_widget))
        .route("/campaigns/{handle}/progress", get(campaign_progress))
        .route("/collections/{handle}", get(collection_page))
        .route("/search", get(search_page))
        .route("/robots.txt", get(robots))
        .route("/sitemap.xml", get(sitemap))
        .route("/lang/{tag}", get(crate::locale::switch))
}

/// A product as a card in a grid.
#[derive(Serialize)]
struct Card {
    handle: String,
    title: String,
    price: String,
    compare_at: Option<String>,
    available: bool,
    /// The first image, if the product has one.
    image: Option<yiren_core::media::View>,
}

/// Cards for products, each with its first image (one query for all of them).
async fn cards<'a>(
    state: &AppState,
    products: impl Iterator<Item = &'a Product>,
    l: Locale,
    site: &yiren_core::settings::SiteSettings,
) -> Result<Vec<Card>, yiren_core::DomainError> {
    let products: Vec<&Product> = products.collect();
    let ids: Vec<i64> = products.iter().map(|p| p.row.id).collect();
    let media = yiren_core::media::of_products(&state.ctx, &ids).await?;
    Ok(products
        .into_iter()
        .map(|p| {
            let mut c = card(p, l, &site.currency);
            c.image = media
                .get(&p.row.id)
                .and_then(|m| {
                    m.iter()
                        .find(|m| m.row.kind == "image" && !m.row.storage_key.is_empty())
                })
                .map(|m| m.view(l, site.default_locale));
            c
        })
        .collect())
}

fn card(p: &Product, l: Locale, currency: &str) -> Card {
    let cheapest = p
        .variants
        .iter()
        .filter_map(|v| v.price(currency))
        .min_by_key(|pr| pr.amount);
    Card {
        handle: p.row.handle.clone(),
        title: p.text(l).title,
        price: cheapest
            .map(|pr| money::display(pr.amount, currency))
            .unwrap_or_default(),
        compare_at: cheapest
            .and_then(|pr| pr.compare_at.filter(|c| *c > pr.amount))
            .map(|c| money::display(c, currency)),
        available: p.available(),
        image: None,
    }
}

/// Paging of a collection page.
#[derive(Deserialize, Default)]
pub struct PageParam {
    page: Option<usize>,
}

async fn collection_page(
    State(state): State<AppState>,
    Path(handle): Path<String>,
    Query(q): Query<PageParam>,
) -> Response {
    let key = format!(
        "{}|/collections/{handle}?page={}",
        crate::locale::current().tag(),
        q.page.unwrap_or(1).clamp(1, 1000)
    );
    state
        .pages
        .clone()
        .render(key, render_collection(state, handle, q))
        .await
}

async fn render_collection(state: AppState, handle: String, q: PageParam) -> Response {
    use yiren_core::catalog::collection;
    let c = match collection::by_handle(&state.ctx, &handle).await {
        Ok(c) => c,
        Err(yiren_core::DomainError::NotFound) => {
            return error_page(StatusCode::NOT_FOUND, "error.not_found")
        }
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let site = state.settings().await;
    let l = crate::locale::current();
    let page = q.page.unwrap_or(1).clamp(1, 1000);
    let products = match collection::visible_products(
        &state.ctx,
        c.row.id,
        ((page - 1) * PER_PAGE) as i64,
        PER_PAGE as i64 + 1,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let more = products.len() > PER_PAGE;
    let cards = match cards(&state, products.iter().take(PER_PAGE), l, &site).await {
        Ok(c) => c,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let text = c.text(l);
    let path = format!("/collections/{}", percent(&c.row.handle));
    let base = base_ctx(&state, &path, None, "").await;
    state.templates.render(
        "shop/collection.html",
        context! {
            title => text.title,
            body_html => yiren_core::reach::broadcast::markdown_html(&text.body),
            description => yiren_core::reach::broadcast::markdown_text(&text.body).chars().take(160).collect::<String>(),
            canonical => absolute(&state, &path),
            handle => c.row.handle.clone(),
            products => Value::from_serialize(&cards),
            prev => (page > 1).then(|| format!("{path}?page={}", page - 1)),
            next => more.then(|| format!("{path}?page={}", page + 1)),
            ..base
        },
    )
}

async fn home(State(state): State<AppState>) -> Response {
    let key = format!("{}|/", crate::locale::current().tag());
    state.pages.clone().render(key, render_home(state)).await
}

async fn render_home(state: AppState) -> Response {
    let site = state.settings().await;
    let l = crate::locale::current();
    let products = match catalog::visible(&state.ctx, 48).await {
        Ok(p) => p,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let cards = match cards(&state, products.iter(), l, &site).await {
        Ok(c) => c,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let collections: Vec<Value> = match yiren_core::catalog::collection::list(&state.ctx).await {
        Ok(cs) => cs
            .iter()
            .map(|c| context! { handle => c.row.handle.clone(), title => c.text(l).title })
            .collect(),
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let base = base_ctx(&state, "/", None, "").await;
    state.templates.render(
        "shop/home.html",
        context! { products => Value::from_serialize(&cards), collections => collections, ..base },
    )
}

pub(crate) fn absolute(state: &AppState, path: &str) -> String {
    match &state.config.public_url {
        Some(u) => format!("{}{path}", u.trim_end_matches('/')),
        None => path.to_string(),
    }
}

pub(crate) fn percent(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn product_page(State(state): State<AppState>, Path(handle): Path<String>) -> Response {
    let key = format!("{}|/products/{handle}", crate::locale::current().tag());
    state
        .pages
        .clone()
        .render(key, render_product(state, handle))
        .await
}

async fn render_product(state: AppState, handle: String) -> Response {
    let p = match catalog::by_handle(&state.ctx, &handle).await {
        Ok(Found::Product(p)) => p,
        Ok(Found::MovedTo(h)) => {
            let to = format!("/products/{}", percent(&h));
            return (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, to)]).into_response();
        }
        Err(yiren_core::DomainError::NotFound) => {
            return error_page(StatusCode::NOT_FOUND, "error.not_found")
        }
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    if !p.visible(state.ctx.now()) {
        return error_page(StatusCode::NOT_FOUND, "error.not_found");
    }
    let site = state.settings().await;
    let l = crate::locale::current();
    let cur = site.currency.as_str();
    let text = p.text(l);
    let path = format!("/products/{}", percent(&p.row.handle));
    let canonical = absolute(&state, &path);
    let variants: Vec<Value> = p
        .variants
        .iter()
        .map(|v| {
            let price = v.price(cur);
            context! {
                id => v.row.id.to_string(),
                title => p.variant_title(v, l),
                sku => v.row.sku.clone(),
                price => price.map(|pr| money::display(pr.amount, cur)),
                compare_at => price.and_then(|pr| pr.compare_at.filter(|c| *c > pr.amount)).map(|c| money::display(c, cur)),
                available => v.available(),
            }
        })
        .collect();
    let description = if text.seo_description.is_empty() {
        yiren_core::reach::broadcast::markdown_text(&text.body)
            .chars()
            .take(160)
            .collect::<String>()
    } else {
        text.seo_description.clone()
    };
    let offers: Vec<serde_json::Value> = p
        .variants
        .iter()
        .filter_map(|v| {
            v.price(cur).map(|pr| {
                serde_json::json!({
                    "@type": "Offer",
                    "price": money::format(pr.amount, cur),
                    "priceCurrency": cur,
                    "sku": v.row.sku,
                    "availability": if v.available() { "https://schema.org/InStock" } else { "https://schema.org/OutOfStock" },
                    "url": canonical,
                })
            })
        })
        .collect();
    let media: Vec<yiren_core::media::View> =
        match yiren_core::media::of_product(&state.ctx, p.row.id).await {
            Ok(m) => m
                .iter()
                .filter(|m| m.row.status == "ready" || m.row.status == "processing")
                .map(|m| m.view(l, site.default_locale))
                .collect(),
            Err(e) => return crate::admin::pages::domain_error_page(e),
        };
    let images: Vec<String> = media
        .iter()
        .filter(|m| m.kind == "image" && !m.src.is_empty())
        .map(|m| absolute(&state, &m.src))
        .collect();
    let mut ld = serde_json::json!({
        "@context": "https://schema.org",
        "@type": "Product",
        "name": text.title,
        "description": description,
        "offers": offers,
    });
    if !images.is_empty() {
        ld["image"] = serde_json::json!(images);
    }
    if !p.row.vendor.is_empty() {
        ld["brand"] = serde_json::json!({ "@type": "Brand", "name": p.row.vendor });
    }
    // Safe inside <script>: no "</" can close it early, and no "<!--" can open a comment.
    let json_ld = ld.to_string().replace('<', "\\u003c");
    let campaign = match yiren_core::campaign::progress(&state.ctx, &p).await {
        Ok(c) => c,
        Err(e) => return crate::admin::pages::domain_error_page(e),
    };
    let base = base_ctx(&state, &path, None, "").await;
    state.templates.render(
        "shop/product.html",
        context! {
            product => context! {
                title => text.title,
                body_html => yiren_core::reach::broadcast::markdown_html(&text.body),
                vendor => p.row.vendor.clone(),
                kind => p.row.kind.clone(),
                tags => p.tags(),
                options => p.option_names(l).into_iter().map(|name| context! { name => name }).collect::<Vec<_>>(),
                available => p.available() && campaign.as_ref().is_none_or(|c| c.accepting()),
            },
            campaign => Value::from_serialize(&campaign),
            card => Value::from_serialize(card(&p, l, cur)),
            variants => variants,
            media => Value::from_serialize(&media),
            og_image => images.first().cloned(),
            seo_title => if text.seo_title.is_empty() { text.title.clone() } else { text.seo_title.clone() },
            description => description,
            canonical => canonical,
            json_ld => json_ld,
            ..base
        },
    )
}

/// A visible crowdfunding product's campaign by handle (an old handle works too).
async fn campaign_of(
    state: &AppState,
    handle: &str,
) -> Result<(yiren_core::catalog::Product, yiren_core::campaign::Progress), Response> {
    let p = match catalog::by_handle(&state.ctx, handle).await {
        Ok(Found::Product(p)) => p,
        Ok(Found::MovedTo(h)) => catalog::by_handle(&state.ctx, &h)
            .await
            .ok()
            .and_then(|f| match f {
                Found::Product(p) => Some(p),
                Found::MovedTo(_) => None,
            })
            .ok_or_else(|| error_page(StatusCode::NOT_FOUND, "error.not_found"))?,
        Err(yiren_core::DomainError::NotFound) => {
            return Err(error_page(StatusCode::NOT_FOUND, "error.not_found"))
        }
        Err(e) => return Err(crate::admin::pages::domain_error_page(e)),
    };
    if !p.visible(state.ctx.now()) {
        return Err(error_page(StatusCode::NOT_FOUND, "error.not_found"));
    }
    match yiren_core::campaign::progress(&state.ctx, &p).await {
        Ok(Some(c)) => Ok((*p, c)),
        Ok(None) => Err(error_page(StatusCode::NOT_FOUND, "error.not_found")),
        Err(e) => Err(crate::admin::pages::domain_error_page(e)),
    }
}

/// A campaign's progress alone, for the owner to embed anywhere in an `<iframe>`: the one page
/// other sites may frame.
async fn campaign_widget(State(state): State<AppState>, Path(handle): Path<String>) -> Response {
    // Cached like product pages (dropped on any change, and after a few seconds).
    let key = format!(
        "{}|/campaigns/{handle}/widget",
        crate::locale::current().tag()
    );
    let pages = state.pages.clone();
    let page = pages.render(key, async move {
        let (p, c) = match campaign_of(&state, &handle).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let path = format!("/products/{}", percent(&p.row.handle));
        let base = base_ctx(&state, &path, None, "").await;
        state.templates.render(
            "shop/campaign_widget.html",
            context! {
                title => p.text(crate::locale::current()).title,
                url => absolute(&state, &path),
                campaign => Value::from_serialize(&c),
                ..base
            },
        )
    });
    let mut r = page.await;
    if r.status().is_success() {
        let h = r.headers_mut();
        // Set here, so the router's `X-Frame-Options: DENY` (set only when absent) stays off.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static("frame-ancestors *"),
        );
        h.insert(
            header::HeaderName::from_static("x-frame-options"),
            header::HeaderValue::from_static("ALLOWALL"),
        );
    }
    r
}

/// A campaign's progress as JSON (amounts in minor units), readable from any origin.
async fn campaign_progress(State(state): State<AppState>, Path(handle): Path<String>) -> Response {
    match campaign_of(&state, &handle).await {
        Ok((_, c)) => (
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                (header::CACHE_CONTROL, "public, max-age=60"),
            ],
            axum::Json(c),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// The search form.
#[derive(Deserialize, Default)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    #[serde(default)]
    in_stock: Option<String>,
    /// A collection handle.
    #[serde(default)]
    collection: String,
    #[serde(default)]
    page: Option<usize>,
}

async fn search_page(State(state): State<AppState>, Query(f): Query<SearchForm>) -> Response {
    let site = state.settings().await;
    let l = crate::locale::current();
    let cur = site.currency.as_str();
    let q = f.q.chars().take(200).collect::<String>();
    let mut error = None;
    let mut bound = |s: &str, field: &'static str| -> Option<i64> {
        if s.trim().is_empty() {
            return None;
        }
        match money::parse(s, cur, field) {
            Ok(v) => Some(v),
            Err(_) => {
                error = Some(l.t("catalog.price_invalid").to_string());
                None
            }
        }
    };
    let min_price = bound(&f.min, "min");
    let max_price = bound(&f.max, "max");
    let page = f.page.unwrap_or(1).clamp(1, 100);
    let in_stock_only = f.in_stock.is_some();
    let collection = match f.collection.trim() {
        "" => None,
        h => match yiren_core::catalog::collection::by_handle(&state.ctx, h).await {
            Ok(c) => Some(c.row.id),
            // An unknown collection matches nothing rather than everything.
            Err(yiren_core::DomainError::NotFound) => Some(0),
            Err(e) => return crate::admin::pages::domain_error_page(e),
        },
    };
    let searching = !q.trim().is_empty()
        || min_price.is_some()
        || max_price.is_some()
        || in_stock_only
        || collection.is_some();
    let (cards, total) = if searching {
        let query = yiren_search::SearchQuery {
            text: q.clone(),
            min_price,
            max_price,
            in_stock_only,
            collection,
            now: state.ctx.now(),
            offset: (page - 1) * PER_PAGE,
            limit: PER_PAGE,
        };
        let hits = match state.search.search(&query) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "search failed");
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "catalog.search_unavailable",
                );
            }
        };
        let products = match catalog::get_many(&state.ctx, &hits.ids).await {
            Ok(p) => p,
            Err(e) => return crate::admin::pages::domain_error_page(e),
        };
        let now = state.ctx.now();
        let cards = match cards(&state, products.iter().filter(|p| p.visible(now)), l, &site).await
        {
            Ok(c) => c,
            Err(e) => return crate::admin::pages::domain_error_page(e),
        };
        (cards, hits.total)
    } else {
        (vec![], 0)
    };
    let pages = total.div_ceil(PER_PAGE).clamp(1, 100);
    let link = |n: usize| -> String {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        qs.append_pair("q", &q);
        if !f.min.is_empty() {
            qs.append_pair("min", &f.min);
        }
        if !f.max.is_empty() {
            qs.append_pair("max", &f.max);
        }
        if in_stock_only {
            qs.append_pair("in_stock", "1");
        }
        if !f.collection.is_empty() {
            qs.append_pair("collection", &f.collection);
        }
        qs.append_pair("page", &n.to_string());
        format!("/search?{}", qs.finish())
    };
    let base = base_ctx(&state, "/search", None, "").await;
    let mut r = state.templates.render(
        "shop/search.html",
        context! {
            q => q,
            min => f.min.clone(),
            max => f.max.clone(),
            in_stock => in_stock_only,
            collection => f.collection.clone(),
            searching => searching,
            products => Value::from_serialize(&cards),
            total => total,
            prev => (page > 1).then(|| link(page - 1)),
            next => (page < pages).then(|| link(page + 1)),
            error => error,
            ..base
        },
    );
    if searching {
        // Result pages are not for search engines.
        r.headers_mut()
            .insert("x-robots-tag", header::HeaderValue::from_static("noindex"));
    }
    r
}

async fn robots(State(state): State<AppState>) -> Response {
    let body = format!(
        "User-agent: *\nDisallow: /admin\nDisallow: /account\nDisallow: /api/\nDisallow: /search\n\nSitemap: {}\n",
        absolute(&state, "/sitemap.xml")
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

async fn sitemap(State(state): State<AppState>) -> Response {
    // The sitemap protocol allows 50,000 URLs per file.
    let products =
        match yiren_store::catalog::visible_products(state.ctx.db.read(), state.ctx.now(), 49_999)
            .await
        {
            Ok(p) => p,
            Err(e) => return crate::admin::pages::domain_error_page(e.into()),
        };
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    xml.push_str(&format!(
        "<url><loc>{}</loc></url>\n",
        xml_escape(&absolute(&state, "/"))
    ));
    for p in &products {
        let loc = absolute(&state, &format!("/products/{}", percent(&p.handle)));
        let lastmod = time::OffsetDateTime::from_unix_timestamp(p.updated_at / 1000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        xml.push_str(&format!(
            "<url><loc>{}</loc><lastmod>{}</lastmod></url>\n",
            xml_escape(&loc),
            lastmod
        ));
    }
    xml.push_str("</urlset>\n");
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response()
}
