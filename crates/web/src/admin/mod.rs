//! Admin pages: sign in and out, dashboard (health, job queue, dead jobs with retry), jobs, site
//! settings, staff accounts, the signed-in account, API tokens. Server-rendered, no JavaScript.

pub mod apps;
pub mod checkout_apps;
pub mod collections;
pub mod customers;
pub mod import;
pub mod inventory;
pub mod mail;
pub mod media;
pub mod notify;
pub mod orders;
pub mod pages;
pub mod payments;
pub mod products;
pub mod reach;
pub mod renewals;

use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};
use serde::Serialize;
use yiren_core::auth::Session;
use yiren_core::Locale;

use crate::AppState;

/// Every state-changing admin route (the CSRF suite walks this list; keep it complete).
pub const FORM_ROUTES: &[&str] = &[
    "/admin/sign-in",
    "/admin/sign-out",
    "/admin/jobs/{id}/retry",
    "/admin/settings",
    "/admin/staff",
    "/admin/staff/{id}/disable",
    "/admin/staff/{id}/enable",
    "/admin/account/password",
    "/admin/tokens",
    "/admin/tokens/{id}/revoke",
    "/admin/customers",
    "/admin/customers/{id}/disable",
    "/admin/customers/{id}/enable",
    "/admin/customers/{id}/sign-out",
    "/admin/sign-in-methods",
    "/admin/sign-in-methods/providers",
    "/admin/sign-in-methods/providers/{slug}/delete",
    "/admin/invites",
    "/admin/invites/{code}/revoke",
    "/admin/notifications",
    "/admin/notifications/channels",
    "/admin/notifications/channels/{id}/test",
    "/admin/notifications/channels/{id}/delete",
    "/admin/apps",
    "/admin/apps/{id}",
    "/admin/apps/{id}/secret",
    "/admin/apps/{id}/disable",
    "/admin/apps/{id}/enable",
    "/admin/customers/{id}/tags",
    "/admin/mail/settings",
    "/admin/mail/test",
    "/admin/messages/rates",
    "/admin/messages/wechat",
    "/admin/messages/{id}/resend",
    "/admin/suppressions",
    "/admin/suppressions/{hash}/delete",
    "/admin/topics",
    "/admin/topics/{id}",
    "/admin/topics/{id}/delete",
    "/admin/broadcasts",
    "/admin/broadcasts/{id}",
    "/admin/broadcasts/{id}/send",
    "/admin/broadcasts/{id}/cancel",
    "/admin/broadcasts/{id}/delete",
    "/admin/products",
    "/admin/products/bulk",
    "/admin/products/import",
    "/admin/products/import/{id}/start",
    "/admin/products/{id}",
    "/admin/products/{id}/delete",
    "/admin/products/{id}/stock",
    "/admin/products/{id}/media",
    "/admin/products/{id}/media/order",
    "/admin/media/{id}",
    "/admin/media/{id}/delete",
    "/admin/inventory/adjust",
    "/admin/collections",
    "/admin/collections/{id}",
    "/admin/collections/{id}/delete",
    "/admin/orders/{id}/confirm",
    "/admin/orders/{id}/cancel",
    "/admin/orders/{id}/refund",
    "/admin/orders/{id}/fulfil",
    "/admin/orders/{id}/access/{grant}/revoke",
    "/admin/orders/{id}/refunds/{txn}/sent",
    "/admin/products/{id}/campaign/close",
    "/admin/products/{id}/files",
    "/admin/products/{id}/files/{file}/delete",
    "/admin/products/{id}/license-keys",
    "/admin/checkout",
    "/admin/payments",
    "/admin/payments/{id}/delete",
    "/admin/payments/reconcile",
    "/admin/renewals/{id}/cancel",
    "/admin/checkout-apps",
    "/admin/checkout-apps/{id}",
    "/admin/checkout-apps/{id}/secret",
    "/admin/checkout-apps/{id}/disable",
    "/admin/checkout-apps/{id}/enable",
    "/admin/discounts",
    "/admin/discounts/{id}",
    "/admin/discounts/{id}/active",
    "/admin/discounts/{id}/delete",
];

/// Admin routes.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin", get(pages::dashboard))
        .route(
            "/admin/sign-in",
            get(pages::sign_in_page).post(pages::sign_in),
        )
        .route("/admin/sign-out", post(pages::sign_out))
        .route(
            "/admin/products",
            get(products::list).post(products::create),
        )
        .route("/admin/products/new", get(products::new_page))
        .route("/admin/products/bulk", post(products::bulk))
        .route(
            "/admin/products/import",
            get(import::form)
                .post(import::upload)
                .layer(axum::extract::DefaultBodyLimit::max(crate::IMPORT_LIMIT)),
        )
        .route("/admin/products/import/{id}", get(import::show))
        .route("/admin/products/import/{id}/start", post(import::start))
        .route("/admin/products/export", get(import::export))
        .route("/admin/inventory", get(inventory::page))
        .route("/admin/inventory/adjust", post(inventory::adjust))
        .route(
            "/admin/products/{id}",
            get(products::edit_page).post(products::update),
        )
        .route("/admin/products/{id}/delete", post(products::delete))
        .route("/admin/products/{id}/stock", post(products::adjust))
        .route(
            "/admin/products/{id}/media",
            post(media::upload).layer(axum::extract::DefaultBodyLimit::max(crate::UPLOAD_LIMIT)),
        )
        .route("/admin/products/{id}/media/order", post(media::order))
        .route(
            "/admin/products/{id}/files",
            post(media::upload_file).layer(axum::extract::DefaultBodyLimit::max(
                crate::FILE_UPLOAD_LIMIT,
            )),
        )
        .route(
            "/admin/products/{id}/files/{file}/delete",
            post(media::delete_file),
        )
        .route("/admin/products/{id}/license-keys", post(media::add_keys))
        .route("/admin/media/{id}", post(media::update))
        .route("/admin/media/{id}/delete", post(media::delete))
        .route(
            "/admin/collections",
            get(collections::list).post(collections::create),
        )
        .route("/admin/collections/new", get(collections::new_page))
        .route(
            "/admin/collections/{id}",
            get(collections::edit_page).post(collections::update),
        )
        .route("/admin/collections/{id}/delete", post(collections::delete))
        .route("/admin/orders", get(orders::list))
        .route("/admin/orders/{id}", get(orders::detail))
        .route("/admin/orders/{id}/confirm", post(orders::confirm))
        .route("/admin/orders/{id}/cancel", post(orders::cancel))
        .route("/admin/orders/{id}/refund", post(orders::refund))
        .route("/admin/orders/{id}/fulfil", post(orders::fulfil))
        .route(
            "/admin/orders/{id}/refunds/{txn}/sent",
            post(orders::refund_sent),
        )
        .route(
            "/admin/products/{id}/campaign/close",
            post(products::close_campaign),
        )
        .route(
            "/admin/orders/{id}/access/{grant}/revoke",
            post(orders::revoke),
        )
        .route(
            "/admin/checkout",
            get(orders::settings_page).post(orders::save_settings),
        )
        .route("/admin/checkouts", get(orders::abandoned))
        .route("/admin/renewals", get(renewals::list))
        .route("/admin/renewals/{id}", get(renewals::detail))
        .route("/admin/renewals/{id}/cancel", post(renewals::cancel))
        .route("/admin/payments", get(payments::page).post(payments::save))
        .route("/admin/payments/{id}/delete", post(payments::delete))
        .route("/admin/payments/reconcile", post(payments::reconcile_now))
        .route(
            "/admin/checkout-apps",
            get(checkout_apps::page).post(checkout_apps::create),
        )
        .route("/admin/checkout-apps/{id}", post(checkout_apps::update))
        .route(
            "/admin/checkout-apps/{id}/secret",
            post(checkout_apps::rotate_secret),
        )
        .route(
            "/admin/checkout-apps/{id}/disable",
            post(checkout_apps::disable),
        )
        .route(
            "/admin/checkout-apps/{id}/enable",
            post(checkout_apps::enable),
        )
        .route(
            "/admin/discounts",
            get(orders::discounts_page).post(orders::create_discount),
        )
        .route(
            "/admin/discounts/{id}",
            get(orders::discount_page).post(orders::update_discount),
        )
        .route(
            "/admin/discounts/{id}/active",
            post(orders::toggle_discount),
        )
        .route(
            "/admin/discounts/{id}/delete",
            post(orders::delete_discount),
        )
        .route("/admin/jobs", get(pages::jobs))
        .route("/admin/jobs/{id}/retry", post(pages::retry_job))
        .route(
            "/admin/settings",
            get(pages::settings_page).post(pages::save_settings),
        )
        .route(
            "/admin/staff",
            get(pages::staff_page).post(pages::add_staff),
        )
        .route("/admin/staff/{id}/disable", post(pages::disable_staff))
        .route("/admin/staff/{id}/enable", post(pages::enable_staff))
        .route("/admin/account", get(pages::account_page))
        .route("/admin/account/password", post(pages::change_password))
        .route(
            "/admin/tokens",
            get(pages::tokens_page).post(pages::create_token),
        )
        .route("/admin/tokens/{id}/revoke", post(pages::revoke_token))
        .route(
            "/admin/customers",
            get(customers::list).post(customers::create),
        )
        .route("/admin/customers/{id}", get(customers::detail))
        .route("/admin/customers/{id}/disable", post(customers::disable))
        .route("/admin/customers/{id}/enable", post(customers::enable))
        .route(
            "/admin/customers/{id}/sign-out",
            post(customers::sign_out_everywhere),
        )
        .route(
            "/admin/sign-in-methods",
            get(customers::methods_page).post(customers::save_methods_form),
        )
        .route(
            "/admin/sign-in-methods/providers",
            post(customers::save_provider),
        )
        .route(
            "/admin/sign-in-methods/providers/{slug}/delete",
            post(customers::delete_provider),
        )
        .route(
            "/admin/invites",
            get(customers::invites_page).post(customers::create_invite),
        )
        .route(
            "/admin/invites/{code}/revoke",
            post(customers::revoke_invite),
        )
        .route(
            "/admin/notifications",
            get(notify::page).post(notify::save_routes),
        )
        .route("/admin/notifications/channels", post(notify::add_channel))
        .route(
            "/admin/notifications/channels/{id}/test",
            post(notify::test_channel),
        )
        .route(
            "/admin/notifications/channels/{id}/delete",
            post(notify::delete_channel),
        )
        .route("/admin/messages", get(reach::log_page))
        .route("/admin/messages/rates", post(reach::save_rates))
        .route("/admin/messages/wechat", post(reach::save_wechat))
        .route("/admin/messages/{id}", get(reach::message_page))
        .route("/admin/messages/{id}/resend", post(reach::resend))
        .route(
            "/admin/suppressions",
            get(reach::suppressions_page).post(reach::add_suppressions),
        )
        .route(
            "/admin/suppressions/{hash}/delete",
            post(reach::delete_suppression),
        )
        .route(
            "/admin/topics",
            get(reach::topics_page).post(reach::create_topic),
        )
        .route("/admin/topics/{id}", post(reach::update_topic))
        .route("/admin/topics/{id}/delete", post(reach::delete_topic))
        .route(
            "/admin/broadcasts",
            get(reach::broadcasts_page).post(reach::create_broadcast),
        )
        .route("/admin/broadcasts/new", get(reach::new_broadcast))
        .route(
            "/admin/broadcasts/{id}",
            get(reach::broadcast_page).post(reach::update_broadcast),
        )
        .route("/admin/broadcasts/{id}/send", post(reach::send_broadcast))
        .route(
            "/admin/broadcasts/{id}/cancel",
            post(reach::cancel_broadcast),
        )
        .route(
            "/admin/broadcasts/{id}/delete",
            post(reach::delete_broadcast),
        )
        .route("/admin/customers/{id}/tags", post(customers::set_tags))
        .route("/admin/mail", get(mail::list))
        .route("/admin/mail/settings", post(mail::save_settings))
        .route("/admin/mail/test", post(mail::send_test))
        .route("/admin/mail/{id}", get(mail::show))
        .route("/admin/apps", get(apps::page).post(apps::create))
        .route("/admin/apps/{id}", post(apps::update))
        .route("/admin/apps/{id}/secret", post(apps::rotate_secret))
        .route("/admin/apps/{id}/disable", post(apps::disable))
        .route("/admin/apps/{id}/enable", post(apps::enable))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::security::load_session,
        ))
}

#[derive(Serialize)]
struct LocaleOpt {
    tag: &'static str,
    name: &'static str,
}

/// The context every page gets: locale, site, language switcher, time zone, signed-in staff, CSRF.
pub async fn base_ctx(
    state: &AppState,
    path: &str,
    session: Option<&Session>,
    csrf: &str,
) -> Value {
    let locale = crate::locale::current();
    let site = state.settings().await;
    let locales: Vec<LocaleOpt> = Locale::ALL
        .iter()
        .map(|l| LocaleOpt {
            tag: l.tag(),
            name: l.native_name(),
        })
        .collect();
    context! {
        locale => locale.tag(),
        time_zone => site.time_zone.clone(),
        site => Value::from_serialize(&site),
        locales => Value::from_serialize(&locales),
        path => path,
        shop => !path.starts_with("/admin") && !path.starts_with("/setup"),
        csrf => csrf,
        staff => session.map(|s| Value::from_serialize(&s.staff)),
        notice => Value::from(()),
        error => Value::from(()),
    }
}

/// Notices that may be shown after a redirect (`?notice=key`); anything else is ignored.
pub const NOTICES: &[&str] = &[
    "settings.saved",
    "catalog.stock_adjusted",
    "media.added",
    "media.removed",
    "delivery.added",
    "delivery.removed",
    "license.pool_added",
    "staff.created",
    "admin.retried",
    "admin.password_changed",
    "admin.signed_out",
    "customer.created",
    "customer.disabled",
    "customer.enabled",
    "customer.signed_out",
    "signin.provider_saved",
    "signin.provider_deleted",
    "invite.created",
    "invite.revoked",
    "oidc.app_created",
    "notify.channel_added",
    "oidc.secret_rotated",
    "reach.resent",
    "reach.unsuppressed",
    "reach.sending",
    "reach.cancelled",
    "customer.tags_saved",
    "campaign.closed_notice",
    "payments.saved",
    "payments.deleted",
    "payments.reconciled",
    "renewals.cancelled",
];

/// Translate a notice key from the query, if it is one of [`NOTICES`].
pub fn notice(key: Option<&str>) -> Option<&'static str> {
    let key = key?;
    NOTICES
        .iter()
        .find(|k| **k == key)
        .map(|k| crate::locale::current().t(k))
}
