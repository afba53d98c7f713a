//! Shared state of the web layer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;
use yiren_core::settings::{self, SiteSettings};
use yiren_core::Ctx;

use crate::templates::Templates;

/// Web-layer configuration (derived from the server configuration).
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The public base URL, e.g. `https://shop.example.com`; when it is https, cookies get the
    /// `__Host-` prefix and `Secure`.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Mail as the configuration file sets it (the owner's admin settings take precedence).
    pub mail: crate::mailer::MailSetup,
}

impl WebConfig {
    /// True when served over HTTPS.
    pub fn https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// Site settings cached for a few seconds: they are read by every page.
#[derive(Debug)]
pub struct SettingsCache {
    value: RwLock<(SiteSettings, Instant)>,
    ttl: Duration,
}

impl SettingsCache {
    fn new(initial: SiteSettings) -> Self {
        SettingsCache {
            value: RwLock::new((initial, Instant::now())),
            ttl: Duration::from_secs(5),
        }
    }
}

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Domain context.
    pub ctx: Ctx,
    /// Web configuration.
    pub config: Arc<WebConfig>,
    /// Page templates.
    pub templates: Templates,
    /// The guarded outbound HTTP client (sign-in providers, callback forwarding).
    pub http: yiren_providers::http::HttpClient,
    /// The storefront search index.
    pub search: Arc<yiren_search::SearchIndex>,
    /// Rendered shop pages.
    pub pages: Arc<crate::page_cache::PageCache>,
    /// Uploaded files (product media).
    pub files: yiren_providers::files::Files,
    settings: Arc<SettingsCache>,
}

impl AppState {
    /// Build the state; loads the settings once.
    pub async fn new(
        ctx: Ctx,
        config: WebConfig,
        templates: Templates,
        http: yiren_providers::http::HttpClient,
        search: Arc<yiren_search::SearchIndex>,
        files: yiren_providers::files::Files,
    ) -> Result<Self, yiren_core::DomainError> {
        let s = settings::load(&ctx).await?;
        Ok(AppState {
            ctx,
            config: Arc::new(config),
            templates,
            http,
            search,
            pages: Arc::default(),
            files,
            settings: Arc::new(SettingsCache::new(s)),
        })
    }

    /// Current site settings (cached up to a few seconds; refreshed at once after a local save).
    pub async fn settings(&self) -> SiteSettings {
        {
            let g = self.settings.value.read().await;
            if g.1.elapsed() < self.settings.ttl {
                return g.0.clone();
            }
        }
        self.refresh_settings().await
    }

    /// Reload settings from the database.
    pub async fn refresh_settings(&self) -> SiteSettings {
        let mut g = self.settings.value.write().await;
        if let Ok(s) = settings::load(&self.ctx).await {
            *g = (s, Instant::now());
        }
        g.0.clone()
    }
}
