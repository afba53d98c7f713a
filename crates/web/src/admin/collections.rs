//! Admin → Collections: manual (products listed by handle, one per line, in order) or automatic
//! (up to five rules shown at once, all or any must hold), with text per language.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};
use yiren_core::catalog::collection::{
    self, Collection, CollectionInput, CollectionText, Field, Rule,
};
use yiren_core::{money, DomainError, Locale};

use super::pages::{domain_error_page, message, unprocessable};
use super::products::NoticeOnly;
use super::{base_ctx, notice};
use crate::security::{AdminSession, CsrfForm};
use crate::AppState;

/// Rule rows on the form.
const RULE_ROWS: usize = 5;

type Pairs = Vec<(String, String)>;

fn get<'a>(pairs: &'a Pairs, k: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

pub async fn list(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Query(q): Query<NoticeOnly>,
) -> Response {
    let all = match collection::list(&state.ctx).await {
        Ok(c) => c,
        Err(e) => return domain_error_page(e),
    };
    let mut rows = Vec::new();
    for c in &all {
        let n = match collection::members(&state.ctx, c.row.id).await {
            Ok(m) => m.len(),
            Err(e) => return domain_error_page(e),
        };
        rows.push(context! { id => c.row.id.to_string(), title => c.row.title.clone(), handle => c.row.handle.clone(), kind => c.row.kind.clone(), count => n });
    }
    let base = base_ctx(&state, "/admin/collections", Some(&s), &s.csrf_token).await;
    state.templates.render(
        "admin/collections.html",
        context! { collections => rows, notice => notice(q.notice.as_deref()), ..base },
    )
}

/// The form's fields for a stored collection.
async fn pairs_of(state: &AppState, c: &Collection, currency: &str) -> Result<Pairs, DomainError> {
    let mut v: Pairs = vec![
        ("title".into(), c.row.title.clone()),
        ("handle".into(), c.row.handle.clone()),
        ("body".into(), c.row.body.clone()),
        ("kind".into(), c.row.kind.clone()),
        (
            "match".into(),
            if c.row.match_all == 1 { "all" } else { "any" }.into(),
        ),
    ];
    for (i, r) in c.rules.iter().enumerate() {
        v.push((format!("rule{i}_field"), r.field.as_str().into()));
        let value = match r.field {
            Field::PriceAtLeast | Field::PriceAtMost => r
                .value
                .parse::<i64>()
                .map(|m| money::format(m, currency))
                .unwrap_or_default(),
            _ => r.value.clone(),
        };
        v.push((format!("rule{i}_value"), value));
    }
    if c.row.kind == "manual" {
        let ids = collection::members(&state.ctx, c.row.id).await?;
        let products = yiren_core::catalog::get_many(&state.ctx, &ids).await?;
        v.push((
            "products".into(),
            products
                .iter()
                .map(|p| p.row.handle.clone())
                .collect::<Vec<_>>()
                .join("\n"),
        ));
    }
    for (tag, t) in &c.translations {
        v.push((format!("{tag}_title"), t.title.clone()));
        v.push((format!("{tag}_body"), t.body.clone()));
    }
    Ok(v)
}

async fn render(
    state: &AppState,
    s: &yiren_core::auth::Session,
    id: Option<i64>,
    pairs: &Pairs,
    error: Option<String>,
    notice_key: Option<&str>,
) -> Response {
    let site = state.settings().await;
    let mut f: BTreeMap<String, String> = BTreeMap::new();
    let mut keys: Vec<String> = ["title", "handle", "body", "kind", "match", "products"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    for i in 0..RULE_ROWS {
        keys.push(format!("rule{i}_field"));
        keys.push(format!("rule{i}_value"));
    }
    let locales: Vec<Locale> = Locale::ALL
        .into_iter()
        .filter(|l| *l != site.default_locale)
        .collect();
    for l in &locales {
        keys.push(format!("{}_title", l.tag()));
        keys.push(format!("{}_body", l.tag()));
    }
    for k in keys {
        let v = get(pairs, &k).to_string();
        f.insert(k, v);
    }
    let path = match id {
        Some(id) => format!("/admin/collections/{id}"),
        None => "/admin/collections/new".into(),
    };
    let base = base_ctx(state, &path, Some(s), &s.csrf_token).await;
    state.templates.render(
        "admin/collection.html",
        context! {
            id => id.map(|i| i.to_string()),
            f => Value::from_serialize(&f),
            rules => (0..RULE_ROWS).collect::<Vec<_>>(),
            fields => Field::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            locales => locales.iter().map(|l| context! { tag => l.tag(), name => l.native_name() }).collect::<Vec<_>>(),
            currency => site.currency.clone(),
            error => error,
            notice => notice(notice_key),
            ..base
        },
    )
}

pub async fn new_page(State(state): State<AppState>, AdminSession(s): AdminSession) -> Response {
    let defaults: Pairs = vec![
        ("kind".into(), "manual".into()),
        ("match".into(), "all".into()),
    ];
    render(&state, &s, None, &defaults, None, None).await
}

pub async fn edit_page(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    Query(q): Query<NoticeOnly>,
) -> Response {
    let site = state.settings().await;
    let c = match collection::get(&state.ctx, id).await {
        Ok(c) => c,
        Err(e) => return domain_error_page(e),
    };
    match pairs_of(&state, &c, &site.currency).await {
        Ok(p) => render(&state, &s, Some(id), &p, None, q.notice.as_deref()).await,
        Err(e) => domain_error_page(e),
    }
}

async fn input_of(state: &AppState, pairs: &Pairs) -> Result<CollectionInput, DomainError> {
    let site = state.settings().await;
    let mut rules = Vec::new();
    for i in 0..RULE_ROWS {
        let field = get(pairs, &format!("rule{i}_field"));
        let value = get(pairs, &format!("rule{i}_value")).trim();
        if field.is_empty() {
            continue;
        }
        let field =
            Field::parse(field).ok_or(DomainError::invalid("rules", "catalog.rules_invalid"))?;
        let value = match field {
            Field::PriceAtLeast | Field::PriceAtMost => {
                money::parse(value, &site.currency, "rules")?.to_string()
            }
            Field::InStock => String::new(),
            _ => value.to_string(),
        };
        rules.push(Rule { field, value });
    }
    let handles: Vec<&str> = get(pairs, "products")
        .lines()
        .map(|l| l.trim().trim_start_matches("/products/"))
        .filter(|l| !l.is_empty())
        .collect();
    let products = yiren_core::catalog::ids_by_handle(&state.ctx, &handles).await?;
    let mut translations = BTreeMap::new();
    for l in Locale::ALL
        .into_iter()
        .filter(|l| *l != site.default_locale)
    {
        translations.insert(
            l.tag().to_string(),
            CollectionText {
                title: get(pairs, &format!("{}_title", l.tag())).into(),
                body: get(pairs, &format!("{}_body", l.tag())).into(),
            },
        );
    }
    Ok(CollectionInput {
        title: get(pairs, "title").into(),
        body: get(pairs, "body").into(),
        handle: get(pairs, "handle").into(),
        automatic: get(pairs, "kind") == "automatic",
        rules,
        match_all: get(pairs, "match") != "any",
        products,
        translations,
    })
}

async fn save(
    state: &AppState,
    s: &yiren_core::auth::Session,
    id: Option<i64>,
    pairs: Pairs,
) -> Response {
    let result = match input_of(state, &pairs).await {
        Ok(input) => collection::save(&state.ctx, id, &input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => Redirect::to(&format!(
            "/admin/collections/{}?notice=settings.saved",
            c.row.id
        ))
        .into_response(),
        Err(DomainError::Invalid { key, .. } | DomainError::Conflict { key }) => {
            unprocessable(render(state, s, id, &pairs, message(key), None).await)
        }
        Err(e) => domain_error_page(e),
    }
}

pub async fn create(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    CsrfForm(pairs): CsrfForm<Pairs>,
) -> Response {
    save(&state, &s, None, pairs).await
}

pub async fn update(
    State(state): State<AppState>,
    AdminSession(s): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(pairs): CsrfForm<Pairs>,
) -> Response {
    save(&state, &s, Some(id), pairs).await
}

pub async fn delete(
    State(state): State<AppState>,
    AdminSession(_): AdminSession,
    Path(id): Path<i64>,
    CsrfForm(_): CsrfForm<super::pages::Empty>,
) -> Response {
    match collection::delete(&state.ctx, id).await {
        Ok(()) => Redirect::to("/admin/collections?notice=settings.saved").into_response(),
        Err(e) => domain_error_page(e),
    }
}
