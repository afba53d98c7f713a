//! The one place where SQLite and PostgreSQL differ: connecting, pragmas, how a write transaction
//! starts, and how a job is claimed. Everything else in this crate is engine-neutral SQL.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::StoreResult;

/// A write transaction on either engine.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite: one file, WAL, one writer and many readers.
    Sqlite,
    /// PostgreSQL: a shared pool, row locks with `SKIP LOCKED`.
    Postgres,
}

impl Engine {
    /// The engine's name as shown to people.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }

    /// The ids of up to `$4` jobs due at `$3` (queued and due, or running with a lapsed lease),
    /// earliest first, leaving out `not_mine` (` AND id NOT IN (…)` or empty). On SQLite the two
    /// kinds are each read in index order and merged, so a claim reads a few rows however many
    /// jobs are due (one sub-select with `OR` sorted every due job: 3 ms at 9,000 due instead of
    /// 13 µs); PostgreSQL keeps one sub-select, whose rows `FOR UPDATE SKIP LOCKED` can lock.
    pub fn due_jobs(self, not_mine: &str) -> String {
        match self {
            Engine::Sqlite => format!(
                "SELECT id FROM (\
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE state = 'queued' AND run_at <= $3{not_mine} ORDER BY run_at, id LIMIT $4) \
                 UNION ALL \
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE state = 'running' AND locked_until < $3{not_mine} ORDER BY run_at, id LIMIT $4)\
                 ) ORDER BY run_at, id LIMIT $4"
            ),
            Engine::Postgres => format!(
                "SELECT id FROM jobs WHERE ((state = 'queued' AND run_at <= $3) \
                 OR (state = 'running' AND locked_until < $3)){not_mine} ORDER BY run_at, id LIMIT $4{}",
                self.skip_locked()
            ),
        }
    }

    /// Clause appended to the job claim sub-select. PostgreSQL skips rows other workers hold;
    /// SQLite needs nothing because a write transaction (`BEGIN IMMEDIATE`) already excludes
    /// every other writer, so the select-then-update is atomic.
    pub fn skip_locked(self) -> &'static str {
        match self {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// Why a database could not be opened. Messages say what is wrong and how to fix it, and never
/// contain a password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL could not be understood.
    #[error("the database URL `{url}` is not valid: {reason}. Use sqlite:///path/to/yiren.db or postgres://USER:PASSWORD@HOST:5432/DATABASE")]
    Malformed { url: String, reason: String },
    /// The scheme names an engine Yiren does not support.
    #[error("the database URL `{url}` uses `{scheme}:`, which Yiren does not support. Use sqlite:///path/to/yiren.db or postgres://USER:PASSWORD@HOST:5432/DATABASE")]
    UnsupportedScheme { url: String, scheme: String },
    /// The SQLite file is missing and creating it was not asked for.
    #[error("the SQLite database {path} does not exist. Yiren creates a database only inside its data directory; to create one elsewhere add ?mode=rwc to the URL, or check the path")]
    SqliteMissing { path: String },
    /// The server could not be reached or refused the connection.
    #[error("cannot open the database at `{url}`: {reason}. Check that the server is running, that the host, port, user and password are right, and that the database exists (createdb NAME); Yiren never creates a PostgreSQL database itself")]
    Unreachable { url: String, reason: String },
    /// Applying migrations failed.
    #[error("cannot apply migrations to `{url}`: {reason}")]
    Migrate { url: String, reason: String },
}

/// Replace the password in a URL with `***` so it can be shown.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => url
            .split('@')
            .next_back()
            .map(|s| format!("…@{s}"))
            .unwrap_or_default(),
    }
}

/// Options for opening a database.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Maximum connections (PostgreSQL pool, or SQLite readers).
    pub max_connections: u32,
    /// How long to wait for a connection before failing.
    pub acquire_timeout: Duration,
    /// Create the SQLite file when missing (only for the default file inside the data directory).
    pub create_sqlite: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            create_sqlite: false,
        }
    }
}

struct Inner {
    engine: Engine,
    write: AnyPool,
    read: AnyPool,
    url: String,
}

/// A handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("engine", &self.inner.engine)
            .field("url", &self.inner.url)
            .finish()
    }
}

/// Pragmas every SQLite connection gets before the pool hands it out.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";

/// The writer's own settings. Its page cache is 32 MB instead of SQLite's default 2 MB: every
/// write walks the b-trees of the tables and indexes it changes (an order: a dozen rows, several
/// indexes on random keys such as checkout tokens), and pages that fell out of a small cache are
/// read again from the file on each write, while the writer is what every write waits for
/// (memory is taken only as pages are used).
const SQLITE_WRITER_PRAGMAS: &str = "PRAGMA cache_size = -32768;";

impl Db {
    /// Open a database from its URL, failing fast with an explanation when it is unusable.
    pub async fn connect(url: &str, opts: &DbOptions) -> Result<Db, ConnectError> {
        sqlx::any::install_default_drivers();
        let shown = redact_url(url);
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Self::connect_sqlite(url, &shown, opts).await,
            "postgres" | "postgresql" => Self::connect_postgres(url, &shown, opts).await,
            _ if scheme.is_empty() || !url.contains(':') => Err(ConnectError::Malformed {
                url: shown,
                reason: "it has no scheme".into(),
            }),
            _ => Err(ConnectError::UnsupportedScheme { url: shown, scheme }),
        }
    }

    async fn connect_sqlite(url: &str, shown: &str, opts: &DbOptions) -> Result<Db, ConnectError> {
        let malformed = |reason: String| ConnectError::Malformed {
            url: shown.to_string(),
            reason,
        };
        let sqlite_opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map_err(|e| malformed(e.to_string()))?;
        let path = sqlite_opts.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path == Path::new(":memory:") {
            return Err(malformed(
                "an in-memory database would lose everything at exit".into(),
            ));
        }
        let wants_create = url.contains("mode=rwc");
        if !(path.exists() || opts.create_sqlite || wants_create) {
            return Err(ConnectError::SqliteMissing {
                path: path.display().to_string(),
            });
        }
        let mut url = url.to_string();
        if !path.exists() && !wants_create {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        let any = AnyConnectOptions::from_str(&url).map_err(|e| malformed(e.to_string()))?;
        let unreachable = |e: sqlx::Error| ConnectError::Unreachable {
            url: shown.to_string(),
            reason: e.to_string(),
        };
        // One writer: a single connection serialises writes inside this process, and
        // BEGIN IMMEDIATE serialises them against other processes (backup, a second server).
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    conn.execute(SQLITE_WRITER_PRAGMAS).await.map(|_| ())
                })
            })
            .connect_with(any.clone())
            .await
            .map_err(unreachable)?;
        let read = AnyPoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(|conn, _| {
                Box::pin(async move { conn.execute(SQLITE_PRAGMAS).await.map(|_| ()) })
            })
            .connect_with(any)
            .await
            .map_err(unreachable)?;
        Ok(Db {
            inner: Arc::new(Inner {
                engine: Engine::Sqlite,
                write,
                read,
                url: shown.to_string(),
            }),
        })
    }

    async fn connect_postgres(
        url: &str,
        shown: &str,
        opts: &DbOptions,
    ) -> Result<Db, ConnectError> {
        let parsed = url::Url::parse(url).map_err(|e| ConnectError::Malformed {
            url: shown.to_string(),
            reason: e.to_string(),
        })?;
        if parsed.host_str().unwrap_or("").is_empty() && !url.contains("host=") {
            return Err(ConnectError::Malformed {
                url: shown.to_string(),
                reason: "it names no host".into(),
            });
        }
        let any = AnyConnectOptions::from_str(url).map_err(|e| ConnectError::Malformed {
            url: shown.to_string(),
            reason: e.to_string(),
        })?;
        // One direct attempt first: a refused or misnamed server fails now, not after the pool's
        // acquire timeout of retries.
        let unreachable = |reason: String| ConnectError::Unreachable {
            url: shown.to_string(),
            reason,
        };
        match tokio::time::timeout(
            opts.acquire_timeout,
            <sqlx::AnyConnection as sqlx::Connection>::connect_with(&any),
        )
        .await
        {
            Ok(Ok(c)) => {
                let _ = sqlx::Connection::close(c).await;
            }
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("timed out".into())),
        }
        let pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(any)
            .await
            .map_err(|e| ConnectError::Unreachable {
                url: shown.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Db {
            inner: Arc::new(Inner {
                engine: Engine::Postgres,
                write: pool.clone(),
                read: pool,
                url: shown.to_string(),
            }),
        })
    }

    /// Apply the embedded migrations.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        crate::MIGRATOR
            .run(&self.inner.write)
            .await
            .map_err(|e| ConnectError::Migrate {
                url: self.inner.url.clone(),
                reason: e.to_string(),
            })
    }

    /// True when every embedded migration has been applied.
    pub async fn migrations_applied(&self) -> StoreResult<bool> {
        let latest = crate::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_one(self.read())
                .await
                .or_else(|e| match e {
                    sqlx::Error::Database(_) => Ok(None),
                    e => Err(e),
                })?;
        Ok(applied == Some(latest))
    }

    /// The newest migration version this binary knows.
    pub fn schema_version() -> i64 {
        crate::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The engine behind this handle.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// The URL with its password hidden.
    pub fn shown_url(&self) -> &str {
        &self.inner.url
    }

    /// The pool for reads (many readers on SQLite; the shared pool on PostgreSQL).
    pub fn read(&self) -> &AnyPool {
        &self.inner.read
    }

    /// The pool for single-statement writes outside a transaction (the one writer on SQLite).
    pub fn write(&self) -> &AnyPool {
        &self.inner.write
    }

    /// Start a write transaction: `BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let tx = match self.inner.engine {
            Engine::Sqlite => self.inner.write.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.inner.write.begin().await?,
        };
        Ok(tx)
    }

    /// Run `f` (which opens and commits its own transaction) again when it fails with a
    /// serialization failure, deadlock or busy error, up to five times with a short backoff.
    pub async fn retrying<T, F, Fut>(&self, mut f: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        let mut attempt = 0u32;
        loop {
            match f().await {
                Err(e) if e.is_retryable() && attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, "retrying transaction");
                    tokio::time::sleep(Duration::from_millis(5u64 << attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// A cheap round trip proving the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.read()).await?;
        Ok(())
    }

    /// (connections open, connections idle) summed over the pools.
    pub fn pool_usage(&self) -> (u32, u32) {
        let w = &self.inner.write;
        let r = &self.inner.read;
        if self.inner.engine == Engine::Postgres {
            (w.size(), w.num_idle() as u32)
        } else {
            (w.size() + r.size(), (w.num_idle() + r.num_idle()) as u32)
        }
    }

    /// Close every connection (on shutdown, or before a test drops its database).
    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
    }
}

/// Whether `tx`'s engine runs a query of several statements with bound values in one round trip
/// (SQLite; PostgreSQL prepares one statement per query). See [`crate::writes`].
pub(crate) fn many_statements_per_query(tx: &Tx) -> bool {
    tx.backend_name() == <sqlx::Sqlite as sqlx::Database>::NAME
}

/// A savepoint `name` inside `tx`, so one piece of work among several in the same transaction
/// can be undone alone ([`rollback_to_savepoint`]) or kept ([`release_savepoint`],
/// [`savepoint_again`]). Same SQL on both engines; `name` is a constant of the caller's. The
/// commit keeps whatever is left open.
pub async fn savepoint(tx: &mut Tx, name: &str) -> StoreResult<()> {
    sqlx::query(&format!("SAVEPOINT {name}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Keep what was written since [`savepoint`] `name`.
pub async fn release_savepoint(tx: &mut Tx, name: &str) -> StoreResult<()> {
    sqlx::query(&format!("RELEASE SAVEPOINT {name}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Keep what was written since [`savepoint`] `name` and open it again, added to `w` — so a
/// piece's last writes and the next piece's savepoint go together.
pub fn savepoint_again(w: &mut crate::Writes, name: &str) {
    w.add(format!("RELEASE SAVEPOINT {name}"));
    w.add(format!("SAVEPOINT {name}"));
}

/// Undo what was written since [`savepoint`] `name` (on PostgreSQL this also clears a failed
/// statement's abort); the savepoint stays open.
pub async fn rollback_to_savepoint(tx: &mut Tx, name: &str) -> StoreResult<()> {
    sqlx::query(&format!("ROLLBACK TO SAVEPOINT {name}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
