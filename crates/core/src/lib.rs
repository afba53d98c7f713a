//! Yiren's domain: types and services, one module per domain. No HTTP here.
//!
//! Language: the *owner* runs the business; *staff* help them; a *site* is the one shop this
//! server runs; a *job* is a side effect waiting in the outbox.
//!
//! Shape: [`Ctx`] carries what every service needs (database, clock, randomness, password hasher);
//! services are plain async functions in their domain module taking `&Ctx`.
//!
//! Boundaries: calls `yiren-store` for persistence; never `axum` or other web types.

pub mod abandoned;
pub mod api_token;
pub mod auth;
pub mod campaign;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod checkout_app;
pub mod clock;
pub mod customer;
pub mod delivery;
pub mod discount;
pub mod error;
pub mod event;
pub mod health;
pub mod i18n;
pub mod id;
pub mod job;
pub mod keys;
pub mod license;
pub mod mail;
pub mod media;
pub mod money;
pub mod notify;
pub mod oidc;
pub mod order;
pub mod password;
pub mod payment;
pub mod period;
pub mod pricing;
pub mod reach;
pub mod recurring;
pub mod secret;
pub mod settings;
pub mod setup;
pub mod together;

use std::sync::Arc;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::DomainError;
pub use i18n::Locale;
pub use id::Rng;
pub use secret::Secret;
use yiren_store::Db;

/// Everything a service needs, cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    /// The database.
    pub db: Db,
    /// The clock (system time in production, a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Randomness (OS randomness in production, seeded in tests when determinism helps).
    pub rng: Rng,
    /// The bounded argon2id hasher.
    pub hasher: password::Hasher,
    /// Session lifetimes and other auth policy.
    pub auth: auth::AuthPolicy,
    /// The server key (MACs of short secrets, signed browser tokens).
    pub keys: keys::Keys,
    /// The payment gateways this server offers (the manual one at least).
    pub gateways: payment::Gateways,
    /// The owner's template overrides (`<data-dir>/templates`), when that directory exists.
    pub templates_dir: Option<Arc<std::path::PathBuf>>,
    /// The settings as last read (see [`settings::rows`]).
    pub settings_cache: settings::Cache,
    /// Copies of products for pricing carts and checkouts (see [`catalog::for_variant`]).
    pub catalog_cache: catalog::Cache,
    /// The pieces of work waiting to be written together (see [`together`]).
    pub together: together::Group,
}

impl Ctx {
    /// Current time in unix milliseconds.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A new time-ordered id.
    pub fn new_id(&self) -> i64 {
        id::new_id(self.now(), &self.rng)
    }
}
