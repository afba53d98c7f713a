//! Templates: minijinja, embedded in the binary, each overridable by a file of the same name under
//! `<data-dir>/themes/`. Strict undefined variables; HTML auto-escaped. Every string comes from the
//! message catalog through `t("key", name=value)`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::Kwargs;
use minijinja::{Environment, State, UndefinedBehavior, Value};
use yiren_core::Locale;

/// The embedded templates, by name.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    (
        "shop/cards.html",
        include_str!("../templates/shop/cards.html"),
    ),
    (
        "shop/campaign.html",
        include_str!("../templates/shop/campaign.html"),
    ),
    (
        "shop/campaign_widget.html",
        include_str!("../templates/shop/campaign_widget.html"),
    ),
    (
        "shop/cart.html",
        include_str!("../templates/shop/cart.html"),
    ),
    (
        "admin/orders.html",
        include_str!("../templates/admin/orders.html"),
    ),
    (
        "admin/order.html",
        include_str!("../templates/admin/order.html"),
    ),
    (
        "admin/checkouts.html",
        include_str!("../templates/admin/checkouts.html"),
    ),
    (
        "admin/renewals.html",
        include_str!("../templates/admin/renewals.html"),
    ),
    (
        "admin/renewal.html",
        include_str!("../templates/admin/renewal.html"),
    ),
    (
        "admin/discounts.html",
        include_str!("../templates/admin/discounts.html"),
    ),
    (
        "admin/checkout.html",
        include_str!("../templates/admin/checkout.html"),
    ),
    (
        "shop/confirm_payment.html",
        include_str!("../templates/shop/confirm_payment.html"),
    ),
    (
        "shop/checkout.html",
        include_str!("../templates/shop/checkout.html"),
    ),
    (
        "shop/order.html",
        include_str!("../templates/shop/order.html"),
    ),
    ("shop/pay.html", include_str!("../templates/shop/pay.html")),
    (
        "shop/home.html",
        include_str!("../templates/shop/home.html"),
    ),
    (
        "shop/product.html",
        include_str!("../templates/shop/product.html"),
    ),
    (
        "shop/search.html",
        include_str!("../templates/shop/search.html"),
    ),
    (
        "shop/collection.html",
        include_str!("../templates/shop/collection.html"),
    ),
    ("error.html", include_str!("../templates/error.html")),
    ("setup.html", include_str!("../templates/setup.html")),
    (
        "account/second_factor.html",
        include_str!("../templates/account/second_factor.html"),
    ),
    (
        "account/authorize.html",
        include_str!("../templates/account/authorize.html"),
    ),
    (
        "account/logout.html",
        include_str!("../templates/account/logout.html"),
    ),
    (
        "account/email.html",
        include_str!("../templates/account/email.html"),
    ),
    (
        "account/nav.html",
        include_str!("../templates/account/nav.html"),
    ),
    (
        "account/orders.html",
        include_str!("../templates/account/orders.html"),
    ),
    (
        "account/sign_in.html",
        include_str!("../templates/account/sign_in.html"),
    ),
    (
        "account/verify.html",
        include_str!("../templates/account/verify.html"),
    ),
    (
        "account/profile.html",
        include_str!("../templates/account/profile.html"),
    ),
    (
        "account/security.html",
        include_str!("../templates/account/security.html"),
    ),
    (
        "account/delete.html",
        include_str!("../templates/account/delete.html"),
    ),
    (
        "account/wechat.html",
        include_str!("../templates/account/wechat.html"),
    ),
    (
        "admin/layout.html",
        include_str!("../templates/admin/layout.html"),
    ),
    (
        "admin/sign_in.html",
        include_str!("../templates/admin/sign_in.html"),
    ),
    (
        "admin/dashboard.html",
        include_str!("../templates/admin/dashboard.html"),
    ),
    (
        "admin/jobs.html",
        include_str!("../templates/admin/jobs.html"),
    ),
    (
        "admin/settings.html",
        include_str!("../templates/admin/settings.html"),
    ),
    (
        "admin/staff.html",
        include_str!("../templates/admin/staff.html"),
    ),
    (
        "admin/account.html",
        include_str!("../templates/admin/account.html"),
    ),
    (
        "admin/customers.html",
        include_str!("../templates/admin/customers.html"),
    ),
    (
        "admin/customer.html",
        include_str!("../templates/admin/customer.html"),
    ),
    (
        "admin/sign_in_methods.html",
        include_str!("../templates/admin/sign_in_methods.html"),
    ),
    (
        "admin/payments.html",
        include_str!("../templates/admin/payments.html"),
    ),
    (
        "admin/checkout_apps.html",
        include_str!("../templates/admin/checkout_apps.html"),
    ),
    (
        "admin/invites.html",
        include_str!("../templates/admin/invites.html"),
    ),
    (
        "admin/apps.html",
        include_str!("../templates/admin/apps.html"),
    ),
    (
        "admin/mail.html",
        include_str!("../templates/admin/mail.html"),
    ),
    (
        "admin/messages.html",
        include_str!("../templates/admin/messages.html"),
    ),
    (
        "admin/message.html",
        include_str!("../templates/admin/message.html"),
    ),
    (
        "admin/suppressions.html",
        include_str!("../templates/admin/suppressions.html"),
    ),
    (
        "admin/topics.html",
        include_str!("../templates/admin/topics.html"),
    ),
    (
        "admin/broadcasts.html",
        include_str!("../templates/admin/broadcasts.html"),
    ),
    (
        "admin/broadcast.html",
        include_str!("../templates/admin/broadcast.html"),
    ),
    (
        "account/notifications.html",
        include_str!("../templates/account/notifications.html"),
    ),
    (
        "account/subscribe.html",
        include_str!("../templates/account/subscribe.html"),
    ),
    (
        "account/unsubscribe.html",
        include_str!("../templates/account/unsubscribe.html"),
    ),
    (
        "admin/notifications.html",
        include_str!("../templates/admin/notifications.html"),
    ),
    (
        "admin/products.html",
        include_str!("../templates/admin/products.html"),
    ),
    (
        "admin/import.html",
        include_str!("../templates/admin/import.html"),
    ),
    (
        "admin/inventory.html",
        include_str!("../templates/admin/inventory.html"),
    ),
    (
        "admin/collections.html",
        include_str!("../templates/admin/collections.html"),
    ),
    (
        "admin/collection.html",
        include_str!("../templates/admin/collection.html"),
    ),
    (
        "admin/product.html",
        include_str!("../templates/admin/product.html"),
    ),
    (
        "admin/tokens.html",
        include_str!("../templates/admin/tokens.html"),
    ),
];

/// The template environment. Cheap to clone.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

fn t(state: &State, key: &str, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let locale = state
        .lookup("locale")
        .and_then(|v| v.as_str().and_then(Locale::parse))
        .unwrap_or_default();
    let mut args: Vec<(String, String)> = Vec::new();
    for k in kwargs.args() {
        let v: Value = kwargs.get(k)?;
        args.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Ok(locale.tf(key, &refs))
}

fn datetime(state: &State, ms: Option<i64>) -> String {
    let tz = state
        .lookup("time_zone")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "UTC".into());
    ms.map(|m| yiren_core::clock::display_in(m, &tz))
        .unwrap_or_default()
}

/// A size in bytes for people: `820 B`, `14.2 KB`, `3.5 MB` (decimal units, one decimal place).
fn filesize(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match bytes {
        ..=999 => format!("{} B", bytes.max(0)),
        1_000..=999_999 => format!("{:.1} KB", b / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.1} GB", b / 1e9),
    }
}

impl Templates {
    /// Load templates, preferring files under `themes_dir` when given.
    pub fn new(themes_dir: Option<PathBuf>) -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_loader(move |name: &str| {
            if name.contains("..") || name.starts_with('/') {
                return Ok(None);
            }
            if let Some(dir) = &themes_dir {
                let p = dir.join(name);
                if p.is_file() {
                    return std::fs::read_to_string(&p).map(Some).map_err(|e| {
                        minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("cannot read theme file {}: {e}", p.display()),
                        )
                    });
                }
            }
            Ok(EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| s.to_string()))
        });
        env.add_function("t", t);
        env.add_filter("datetime", datetime);
        env.add_filter("filesize", filesize);
        Templates { env: Arc::new(env) }
    }

    /// Render a page; a template error is logged and answered with a 500.
    pub fn render(&self, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "template failed");
                error_page(StatusCode::INTERNAL_SERVER_ERROR, "error.internal")
            }
        }
    }
}

/// A minimal error page that needs no template or database (used when those may be the problem).
pub fn error_page(status: StatusCode, key: &str) -> Response {
    let locale = crate::locale::current();
    let msg = locale.tf(key, &[("request_id", &crate::locale::current_request_id())]);
    let html = format!(
        "<!doctype html><html lang=\"{}\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <link rel=\"stylesheet\" href=\"/assets/yiren.css\"><title>{}</title><main class=\"narrow\"><h1>{}</h1><p>{}</p>\
         <p><a href=\"/\">{}</a></p></main></html>",
        locale.tag(),
        status.as_u16(),
        status.as_u16(),
        minijinja::HtmlEscape(&msg),
        minijinja::HtmlEscape(locale.t("nav.home")),
    );
    (status, Html(html)).into_response()
}
