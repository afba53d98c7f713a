//! The JSON API under `/api/v1`: bearer tokens only (cookies are ignored), Shopify-like envelopes
//! (`{"job": {...}}`, `{"jobs": [...]}`), errors `{"error":{"code","message"}}` in the caller's
//! language, cursor pagination with a `Link` header, `Idempotency-Key` on POST, and an OpenAPI 3.1
//! document generated from this code at `/api/v1/openapi.json`.

pub mod app_orders;
pub mod collections;
pub mod customers;
pub mod discounts;
pub mod events;
pub mod extract;
pub mod idempotency;
pub mod jobs;
pub mod license_keys;
pub mod licenses;
pub mod media;
pub mod orders;
pub mod page;
pub mod products;
pub mod reach;
pub mod shop;
pub mod staff;
pub mod tokens;

use axum::routing::{delete, get, post};
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Yiren API", description = "REST API of a Yiren server. Authenticate with `Authorization: Bearer <token>` (create tokens in admin → API tokens)."),
    paths(
        shop::get_shop, shop::update_shop,
        staff::list_staff, staff::count_staff,
        customers::list_customers, customers::count_customers, customers::get_customer, customers::create_customer,
        jobs::list_jobs, jobs::count_jobs, jobs::get_job, jobs::retry_job,
        tokens::list_tokens, tokens::create_token, tokens::revoke_token,
        reach::list_topics, reach::create_topic, reach::get_topic, reach::update_topic, reach::delete_topic,
        reach::list_subscriptions, reach::put_subscription,
        reach::list_broadcasts, reach::create_broadcast, reach::get_broadcast, reach::update_broadcast,
        reach::send_broadcast, reach::cancel_broadcast,
        products::list_products, products::count_products, products::get_product, products::create_product,
        products::update_product, products::delete_product, products::adjust_inventory,
        media::list_images, media::create_image, media::update_image, media::delete_image,
        events::list_events,
        products::get_variant,
        collections::list_collections, collections::get_collection, collections::create_collection,
        collections::update_collection, collections::delete_collection,
        licenses::activate, licenses::validate, licenses::deactivate,
        orders::list_orders, orders::get_order, orders::create_order, orders::create_refund,
        orders::create_fulfillment, orders::cancel_order, orders::list_transactions,
        orders::create_transaction, orders::list_refunds, orders::list_fulfillments,
        discounts::list_discounts, discounts::get_discount, discounts::create_discount,
        discounts::update_discount, discounts::delete_discount,
        license_keys::list_license_keys, license_keys::get_license_key,
        license_keys::update_license_key, license_keys::release_instance,
        app_orders::get_app_order,
    ),
    components(schemas(
        extract::ErrorBody, extract::ErrorDetail, extract::CountResponse,
        shop::Shop, shop::ShopResponse, shop::UpdateShopRequest,
        staff::StaffMember, staff::StaffListResponse,
        customers::Customer, customers::CustomerListResponse, customers::CustomerResponse, customers::CustomerInput, customers::CreateCustomerRequest,
        jobs::Job, jobs::JobResponse, jobs::JobListResponse,
        tokens::ApiToken, tokens::ApiTokenListResponse, tokens::ApiTokenResponse, tokens::CreateApiTokenRequest, tokens::NewApiToken,
        reach::Topic, reach::TopicListResponse, reach::TopicResponse, reach::TopicInput, reach::TopicRequest,
        reach::Subscription, reach::SubscriptionListResponse, reach::SubscriptionResponse, reach::SubscriptionInput, reach::SubscriptionRequest,
        reach::BroadcastText, reach::BroadcastCounts, reach::Broadcast, reach::BroadcastListResponse, reach::BroadcastResponse,
        reach::BroadcastInput, reach::BroadcastRequest, reach::SendRequest,
        products::Product, products::Variant, products::ProductOption, products::ProductTranslation, products::ProductDetails,
        products::PresentmentPrice, products::ProductResponse, products::ProductListResponse, products::ProductRequest,
        products::ProductInputJson, products::VariantInput, products::OptionInput, products::AdjustRequest,
        products::InventoryLevel, products::InventoryLevelResponse, products::Image, products::ImageSize,
        media::ImageListResponse, media::ImageResponse, media::ImageInput, media::ImageRequest,
        media::ImageUpdate, media::ImageUpdateRequest,
        events::Event, events::EventListResponse, products::VariantResponse,
        collections::CollectionRule, collections::CollectionTranslation, collections::ApiCollection,
        collections::CollectionResponse, collections::CollectionListResponse, collections::CollectionInputJson,
        collections::CollectionRequest,
        licenses::LicenseRequest, licenses::LicenseKey, licenses::LicenseInstance, licenses::LicenseMeta,
        licenses::LicenseResponse,
        orders::LineItem, orders::Transaction, orders::Entitlement, orders::ApiOrder, orders::OrderResponse,
        orders::OrderListResponse, orders::LineInput, orders::OrderInput, orders::OrderRequest,
        orders::RefundInput, orders::RefundRequest, orders::FulfillmentInput, orders::FulfillmentRequest,
        orders::CancelRequest, orders::AddressInput, orders::LineUnitsInput,
        orders::LineUnitsItem, orders::ApiRefund, orders::ApiFulfillment, orders::TransactionListResponse,
        orders::TransactionResponse, orders::RefundListResponse, orders::FulfillmentListResponse,
        orders::TransactionInput, orders::TransactionRequest,
        discounts::ApiDiscount, discounts::DiscountResponse, discounts::DiscountListResponse,
        discounts::DiscountInputJson, discounts::DiscountRequest,
        license_keys::ApiLicenseKey, license_keys::LicenseKeyResponse, license_keys::LicenseKeyListResponse,
        license_keys::LicenseKeyInput, license_keys::LicenseKeyRequest,
        app_orders::AppOrder, app_orders::AppOrderResponse,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "app_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The generated document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// API routes (mounted at `/api/v1`).
pub fn routes(state: AppState) -> Router<AppState> {
    let authed = Router::new()
        .route("/shop", get(shop::get_shop).put(shop::update_shop))
        .route("/staff", get(staff::list_staff))
        .route("/staff/count", get(staff::count_staff))
        .route(
            "/customers",
            get(customers::list_customers).post(customers::create_customer),
        )
        .route("/customers/count", get(customers::count_customers))
        .route("/customers/{id}", get(customers::get_customer))
        .route("/jobs", get(jobs::list_jobs))
        .route("/jobs/count", get(jobs::count_jobs))
        .route("/jobs/{id}", get(jobs::get_job))
        .route("/jobs/{id}/retry", post(jobs::retry_job))
        .route(
            "/api_tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/api_tokens/{id}", delete(tokens::revoke_token))
        .route("/topics", get(reach::list_topics).post(reach::create_topic))
        .route(
            "/topics/{id}",
            get(reach::get_topic)
                .put(reach::update_topic)
                .delete(reach::delete_topic),
        )
        .route(
            "/subscriptions",
            get(reach::list_subscriptions).put(reach::put_subscription),
        )
        .route(
            "/broadcasts",
            get(reach::list_broadcasts).post(reach::create_broadcast),
        )
        .route(
            "/broadcasts/{id}",
            get(reach::get_broadcast).put(reach::update_broadcast),
        )
        .route("/broadcasts/{id}/send", post(reach::send_broadcast))
        .route("/broadcasts/{id}/cancel", post(reach::cancel_broadcast))
        .route(
            "/products",
            get(products::list_products).post(products::create_product),
        )
        .route("/products/count", get(products::count_products))
        .route(
            "/products/{id}",
            get(products::get_product)
                .put(products::update_product)
                .delete(products::delete_product),
        )
        .route(
            "/products/{id}/images",
            get(media::list_images).post(media::create_image).layer(
                axum::extract::DefaultBodyLimit::max(crate::API_UPLOAD_LIMIT),
            ),
        )
        .route(
            "/products/{id}/images/{image_id}",
            axum::routing::put(media::update_image).delete(media::delete_image),
        )
        .route("/inventory_levels/adjust", post(products::adjust_inventory))
        .route(
            "/orders",
            get(orders::list_orders).post(orders::create_order),
        )
        .route("/orders/{id}", get(orders::get_order))
        .route(
            "/orders/{id}/refunds",
            get(orders::list_refunds).post(orders::create_refund),
        )
        .route(
            "/orders/{id}/fulfillments",
            get(orders::list_fulfillments).post(orders::create_fulfillment),
        )
        .route(
            "/orders/{id}/transactions",
            get(orders::list_transactions).post(orders::create_transaction),
        )
        .route(
            "/discounts",
            get(discounts::list_discounts).post(discounts::create_discount),
        )
        .route(
            "/discounts/{id}",
            get(discounts::get_discount)
                .put(discounts::update_discount)
                .delete(discounts::delete_discount),
        )
        .route("/license_keys", get(license_keys::list_license_keys))
        .route(
            "/license_keys/{id}",
            get(license_keys::get_license_key).put(license_keys::update_license_key),
        )
        .route(
            "/license_keys/{id}/instances/{instance_id}",
            delete(license_keys::release_instance),
        )
        .route("/orders/{id}/cancel", post(orders::cancel_order))
        .route("/events", get(events::list_events))
        .route("/variants/{id}", get(products::get_variant))
        .route(
            "/collections",
            get(collections::list_collections).post(collections::create_collection),
        )
        .route(
            "/collections/{id}",
            get(collections::get_collection)
                .put(collections::update_collection)
                .delete(collections::delete_collection),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            extract::authenticate,
        ));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/licenses/activate", post(licenses::activate))
        .route("/licenses/validate", post(licenses::validate))
        .route("/licenses/deactivate", post(licenses::deactivate))
        .route("/app-orders/{id}", get(app_orders::get_app_order))
        .merge(authed)
        .fallback(|| async { crate::error::ApiError::not_found() })
}
