//! The `yiren` binary's library: configuration, [`App::build`] (used by `serve` and by the tests'
//! `TestApp`, so tests run exactly what production runs), the job handlers, backup and restore.

pub mod backup;
pub mod config;
pub mod deliver;
pub mod handlers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use yiren_core::job::{Registry, Schedule, Worker, WorkerConfig};
use yiren_core::{auth::AuthPolicy, password::Hasher, Clock, Ctx, Locale, Rng};
use yiren_providers::files::Files;
use yiren_providers::http::{HttpClient, OutboundPolicy};
use yiren_store::engine::DbOptions;
use yiren_store::Db;
use yiren_web::templates::Templates;
use yiren_web::{AppState, WebConfig};

pub use config::Config;

/// Open the configured database, failing fast with an explanation. The default SQLite file is
/// created inside the data directory; nothing is ever created anywhere else.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let (url, is_default) = config.database_url();
    if is_default {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    }
    let opts = DbOptions {
        max_connections: config.database.max_connections.max(1),
        create_sqlite: is_default,
        ..Default::default()
    };
    Ok(Db::connect(&url, &opts).await?)
}

/// Everything `serve` runs, built but not yet started.
pub struct App {
    /// Shared web state (and through it the domain context).
    pub state: AppState,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    worker: Worker,
    grace: Duration,
    /// The one-time setup URL, when no owner exists yet.
    pub setup_url: Option<String>,
}

/// Test and production differ only in these.
pub struct Deps {
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub rng: Rng,
    /// Payment gateways beyond the manual one (tests add fakes that speak a gateway's protocol).
    pub gateways: Vec<Arc<dyn yiren_core::payment::PaymentGateway>>,
}

impl Default for Deps {
    fn default() -> Self {
        Deps {
            clock: Arc::new(yiren_core::SystemClock),
            rng: Rng::os(),
            gateways: vec![],
        }
    }
}

/// Mail as the configuration sets it (`mail.smtp_url`, `mail.from`, `mail.ca_file`).
pub fn mail_setup(config: &Config) -> anyhow::Result<yiren_web::mailer::MailSetup> {
    let extra_roots = match config.mail.ca_file.as_str() {
        "" => Vec::new(),
        f => vec![std::fs::read(f).with_context(|| format!("cannot read mail.ca_file {f}"))?],
    };
    if !config.mail.smtp_url.is_empty() {
        yiren_providers::smtp::SmtpServer::from_url(config.mail.smtp_url.expose())
            .map_err(|e| anyhow::anyhow!("mail.smtp_url: {e}"))?;
    }
    Ok(yiren_web::mailer::MailSetup {
        config_url: config.mail.smtp_url.expose().to_string(),
        config_from: config.mail.from.clone(),
        mail_dir: config.mail_dir(),
        extra_roots,
    })
}

/// The job kinds this build knows, with their handlers.
pub fn registry(
    search: Arc<yiren_search::SearchIndex>,
    http: HttpClient,
    sender: deliver::MessageSend,
    files: Files,
) -> Registry {
    let mut r = Registry::default();
    r.register(
        yiren_core::media::RESIZE_KIND,
        handlers::Resize {
            files: files.clone(),
        },
    );
    r.register(
        yiren_core::media::FETCH_KIND,
        handlers::Fetch {
            files: files.clone(),
            http: http.clone(),
        },
    );
    r.register(
        yiren_core::media::DELETE_KIND,
        handlers::DeleteFiles { files },
    );
    r.register(
        yiren_core::catalog::csv::IMPORT_KIND,
        yiren_core::catalog::csv::ImportJob,
    );
    r.register(
        yiren_core::catalog::INDEX_KIND,
        yiren_search::IndexJob::new(search.clone()),
    );
    r.register(
        yiren_search::REINDEX_KIND,
        yiren_search::ReindexJob::new(search),
    );
    r.register(
        yiren_core::order::DEADLINE_KIND,
        yiren_core::order::Deadline,
    );
    for kind in yiren_core::order::EARLIER_KINDS {
        r.register(kind, yiren_core::order::Deadline);
    }
    r.register(
        yiren_core::order::SEND_REFUND_KIND,
        yiren_core::order::SendRefund,
    );
    r.register(
        yiren_core::campaign::SWEEP_KIND,
        yiren_core::campaign::Sweep,
    );
    r.register(
        yiren_core::campaign::REFUND_KIND,
        yiren_core::campaign::RefundBackers,
    );
    r.register(
        yiren_core::payment::reconcile::KIND,
        yiren_core::payment::reconcile::Reconcile,
    );
    r.register(
        yiren_core::recurring::SWEEP_KIND,
        yiren_core::recurring::Sweep,
    );
    r.register("maintenance.cleanup", yiren_core::job::Cleanup);
    r.register(
        yiren_core::checkout_app::NOTIFY_KIND,
        handlers::AppNotify { http: http.clone() },
    );
    r.register("diagnostic.ping", handlers::Ping { http });
    r.register(yiren_core::reach::KIND, sender);
    r.register(
        yiren_core::reach::broadcast::KIND,
        yiren_core::reach::broadcast::BroadcastRun,
    );
    r
}

/// The file store: the configured S3-compatible bucket, else `<data-dir>/files`.
pub fn open_files(config: &Config) -> anyhow::Result<Files> {
    let s = &config.storage;
    let files = if s.s3_bucket.is_empty() {
        Files::local(&config.files_dir())
    } else {
        Files::s3(&yiren_providers::files::S3Settings {
            bucket: s.s3_bucket.clone(),
            endpoint: s.s3_endpoint.clone(),
            region: s.s3_region.clone(),
            access_key_id: s.s3_access_key_id.clone(),
            secret_access_key: s.s3_secret_access_key.expose().to_string(),
            prefix: s.s3_prefix.clone(),
        })
    };
    files.map_err(|e| anyhow::anyhow!("storage: {e}"))
}

/// The product search index under `<data-dir>/indexes/products`, and whether it starts empty (new,
/// or written by an older schema) and must be rebuilt.
pub fn open_search(config: &Config) -> anyhow::Result<(Arc<yiren_search::SearchIndex>, bool)> {
    let dir = config.data_dir.join("indexes").join("products");
    yiren_search::SearchIndex::open(Some(&dir))
        .with_context(|| format!("cannot open the search index in {}", dir.display()))
}

/// The domain context for one-off commands: open and migrate the database, load the server key.
pub async fn context(config: &Config, deps: Deps) -> anyhow::Result<Ctx> {
    let db = open_db(config).await?;
    db.migrate().await?;
    context_with(config, db, deps)
}

/// The outbound HTTP client as the configuration sets it (`outbound.*`).
pub fn outbound(config: &Config) -> anyhow::Result<HttpClient> {
    Ok(HttpClient::new(OutboundPolicy {
        allow_private: config.outbound.allow_private,
        timeout: Duration::from_secs(config.outbound.timeout_secs.max(1)),
        max_response_bytes: config.outbound.max_response_bytes,
        ..Default::default()
    })?)
}

fn context_with(config: &Config, db: Db, deps: Deps) -> anyhow::Result<Ctx> {
    let factory = yiren_pay::Factory {
        http: outbound(config)?,
    };
    let keys = yiren_core::keys::Keys::load_or_create(&config.key_file(), &deps.rng)
        .with_context(|| format!("cannot read or create {}", config.key_file().display()))?;
    Ok(Ctx {
        db,
        clock: deps.clock,
        rng: deps.rng,
        hasher: Hasher::default(),
        auth: AuthPolicy::default(),
        keys,
        gateways: yiren_core::payment::Gateways::with_factory(
            deps.gateways,
            Some(Arc::new(factory)),
        ),
        templates_dir: Some(Arc::new(config.data_dir.join("templates"))),
        settings_cache: Default::default(),
        catalog_cache: Default::default(),
        together: Default::default(),
    })
}

impl App {
    /// Build the app exactly as `serve` runs it: open and migrate the database, bind listeners,
    /// prepare the worker, and issue a setup token when no owner exists.
    pub async fn build(config: &Config, deps: Deps) -> anyhow::Result<App> {
        yiren_web::metrics::handle(); // record from the first moment, whether or not metrics are served
        let db = open_db(config).await?;
        db.migrate().await?;
        // Everything else the server keeps lives here too (uploads, search indexes, theme overrides).
        for dir in [
            config.files_dir(),
            config.themes_dir(),
            config.data_dir.join("indexes"),
        ] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let ctx = context_with(config, db, deps)?;
        yiren_core::oidc::ensure_key(&ctx).await?;
        // The owner's payment gateways, as saved in admin (rebuilt whenever they are saved).
        yiren_core::payment::settings::install(&ctx).await?;
        let public_url = Some(config.server.public_url.clone()).filter(|u| !u.is_empty());
        let web = WebConfig {
            public_url: public_url.clone(),
            max_body_bytes: config.server.max_body_bytes,
            mail: mail_setup(config)?,
        };
        let themes = config.themes_dir();
        let templates = Templates::new(Some(themes));
        let http = outbound(config)?;
        let (search, fresh) = open_search(config)?;
        if fresh {
            // A new or outdated index is made again from the database in the background; search
            // answers from what is indexed so far.
            let (ctx, search) = (ctx.clone(), search.clone());
            tokio::spawn(async move {
                match yiren_search::rebuild(&ctx, &search).await {
                    Ok(n) => tracing::info!(products = n, "search index built"),
                    Err(e) => {
                        tracing::error!(error = %e, "search index could not be built; run `yiren reindex`")
                    }
                }
            });
        }
        let files = open_files(config)?;
        let state = AppState::new(
            ctx.clone(),
            web,
            templates,
            http.clone(),
            search.clone(),
            files.clone(),
        )
        .await?;

        let listener = TcpListener::bind(&config.server.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.addr))?;
        let metrics_listener = match config.server.metrics_addr.as_str() {
            "" => None,
            a => Some(
                TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a} for metrics"))?,
            ),
        };
        let addr = listener.local_addr()?;

        let mut schedules = Vec::new();
        for s in &config.jobs.schedules {
            schedules.push(
                Schedule::new(
                    &s.name,
                    &s.cron,
                    &s.kind,
                    s.payload.clone().unwrap_or_default(),
                )
                .map_err(anyhow::Error::msg)?,
            );
        }
        // Built in: campaigns close within a minute of their deadline.
        if !schedules.iter().any(|s| s.name == "campaigns") {
            schedules.push(
                Schedule::new(
                    "campaigns",
                    "* * * * *",
                    yiren_core::campaign::SWEEP_KIND,
                    serde_json::json!({}),
                )
                .map_err(anyhow::Error::msg)?,
            );
        }
        // Built in: pending online payments are asked about every five minutes (PAY-7).
        if !schedules.iter().any(|s| s.name == "payments") {
            schedules.push(
                Schedule::new(
                    "payments",
                    "*/5 * * * *",
                    yiren_core::payment::reconcile::KIND,
                    serde_json::json!({}),
                )
                .map_err(anyhow::Error::msg)?,
            );
        }
        // Built in: recurring memberships' renewal orders are placed, and unpaid ones ended, hourly.
        if !schedules.iter().any(|s| s.name == "renewals") {
            schedules.push(
                Schedule::new(
                    "renewals",
                    "17 * * * *",
                    yiren_core::recurring::SWEEP_KIND,
                    serde_json::json!({}),
                )
                .map_err(anyhow::Error::msg)?,
            );
        }
        let worker_id = format!("{}-{}", std::process::id(), ctx.rng.token(6));
        let worker = Worker::new(
            ctx.clone(),
            registry(
                search,
                http.clone(),
                deliver::MessageSend::new(
                    mail_setup(config)?,
                    http,
                    public_url
                        .clone()
                        .unwrap_or_else(|| format!("http://{}", display_addr(addr))),
                ),
                files,
            ),
            schedules,
            WorkerConfig {
                worker_id,
                concurrency: config.jobs.concurrency.max(1),
                poll_interval: Duration::from_millis(config.jobs.poll_interval_ms.max(10)),
                lease: Duration::from_secs(config.jobs.lease_secs.max(1)),
                shutdown_grace: Duration::from_secs(config.server.shutdown_grace_secs),
            },
        );

        let setup_url = yiren_core::setup::issue_token_if_needed(&ctx)
            .await?
            .map(|token| {
                let base = public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", display_addr(addr)));
                format!("{}/setup/{token}", base.trim_end_matches('/'))
            });
        Ok(App {
            state,
            listener,
            metrics_listener,
            worker,
            grace: Duration::from_secs(config.server.shutdown_grace_secs),
            setup_url,
        })
    }

    /// The address the web server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The address of the metrics listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serve until `shutdown` fires: then stop accepting, finish in-flight requests, let running
    /// jobs finish (or return them to the queue), and close the database.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let db = self.state.ctx.db.clone();
        let router = yiren_web::router(self.state);
        let worker_task = tokio::spawn(self.worker.run(shutdown.child_token()));
        let metrics_task = self.metrics_listener.map(|l| {
            let router = yiren_web::metrics::router(db.clone());
            let s = shutdown.clone();
            tokio::spawn(async move {
                axum::serve(l, router)
                    .with_graceful_shutdown(s.cancelled_owned())
                    .await
            })
        });
        let s = shutdown.clone();
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { s.cancelled().await })
        .await;
        tracing::info!("web server stopped");
        if tokio::time::timeout(self.grace + Duration::from_secs(5), worker_task)
            .await
            .is_err()
        {
            tracing::error!("job worker did not stop in time");
        }
        if let Some(t) = metrics_task {
            t.abort();
        }
        db.close().await;
        served.context("web server failed")
    }
}

fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// The line printed at start when setup is pending.
pub fn setup_message(url: &str, locale: Locale) -> String {
    locale.tf("setup.printed", &[("url", url)])
}

/// Fire `token` on SIGTERM or SIGINT. The handlers are registered before this returns, so a
/// signal that arrives right after start-up is not lost.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received: shutting down"),
            }
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
    Ok(())
}
