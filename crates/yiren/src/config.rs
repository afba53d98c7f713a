//! Configuration: defaults < `yiren.toml` < `YIREN_*` environment (`__` nests) < command-line
//! flags. Everything derives from one data directory, so no configuration is needed at all.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use yiren_core::Secret;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where Yiren keeps everything: the SQLite database, uploaded files, indexes, theme overrides.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub jobs: JobsConfig,
    pub outbound: OutboundConfig,
    pub mail: MailConfig,
    pub storage: StorageConfig,
    pub log: LogConfig,
}

/// Where uploaded files go: `<data_dir>/files` unless an S3-compatible bucket is named.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Bucket name; empty = files under the data directory.
    pub s3_bucket: String,
    /// e.g. `https://s3.us-east-1.amazonaws.com`, `https://<account>.r2.cloudflarestorage.com`,
    /// `https://oss-cn-hangzhou.aliyuncs.com`, `http://127.0.0.1:9000`; empty = AWS.
    pub s3_endpoint: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: Secret,
    /// Prefix for every key, so several shops can share a bucket.
    pub s3_prefix: String,
}

/// Outgoing email.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `smtps://USER:PASSWORD@HOST:465` (implicit TLS) or `smtp://USER:PASSWORD@HOST:587?tls=required`
    /// (STARTTLS); empty = write each message as an .eml file under `<data_dir>/mail/`.
    pub smtp_url: Secret,
    /// The From address.
    pub from: String,
    /// A PEM file of extra trusted root certificates, for an SMTP server with a private CA.
    pub ca_file: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp_url: Secret::default(),
            from: "Yiren <noreply@localhost>".into(),
            ca_file: String::new(),
        }
    }
}

/// The HTTP listeners.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: String,
    pub metrics_addr: String,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub shutdown_grace_secs: u64,
}

/// The database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub max_connections: u32,
}

/// One scheduled job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    pub cron: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// The job worker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub concurrency: usize,
    pub poll_interval_ms: u64,
    pub lease_secs: u64,
    pub schedules: Vec<ScheduleConfig>,
}

/// Outbound HTTP.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    pub allow_private: bool,
    pub timeout_secs: u64,
    pub max_response_bytes: usize,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./yiren-data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            jobs: JobsConfig::default(),
            outbound: OutboundConfig::default(),
            mail: MailConfig::default(),
            storage: StorageConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:8080".into(),
            metrics_addr: String::new(),
            public_url: String::new(),
            max_body_bytes: 1 << 20,
            shutdown_grace_secs: 20,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::default(),
            max_connections: 8,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: 4,
            poll_interval_ms: 500,
            lease_secs: 300,
            schedules: vec![ScheduleConfig {
                name: "cleanup".into(),
                cron: "17 * * * *".into(),
                kind: "maintenance.cleanup".into(),
                payload: None,
            }],
        }
    }
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allow_private: false,
            timeout_secs: 15,
            max_response_bytes: 1 << 20,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// Values given on the command line (they win over everything else).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub addr: Option<String>,
    pub metrics_addr: Option<String>,
}

/// An error in the configuration, shown to the operator.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Load from the optional file, the environment and the flags.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) if !f.is_file() => {
                return Err(ConfigError(format!(
                    "the configuration file {} does not exist",
                    f.display()
                )))
            }
            Some(f) => fig = fig.merge(Toml::file(f)),
            None if Path::new("yiren.toml").is_file() => fig = fig.merge(Toml::file("yiren.toml")),
            None => {}
        }
        // Only keys that are options: other YIREN_* variables (YIREN_CONFIG, test settings) are not.
        fig = fig.merge(
            Env::prefixed("YIREN_")
                .filter(|k| is_option_key(k.as_str()))
                .split("__"),
        );
        if let Some(d) = &overrides.data_dir {
            fig = fig.merge(("data_dir", d));
        }
        if let Some(u) = &overrides.database_url {
            fig = fig.merge(("database.url", u));
        }
        if let Some(a) = &overrides.addr {
            fig = fig.merge(("server.addr", a));
        }
        if let Some(a) = &overrides.metrics_addr {
            fig = fig.merge(("server.metrics_addr", a));
        }
        // Figment's own messages may quote values: keep them out of the database URL's way by
        // naming only the key.
        fig.extract::<Config>().map_err(|e| {
            let keys: Vec<String> = e
                .clone()
                .into_iter()
                .map(|e| {
                    let path = e.path.join(".");
                    if path.contains("url") {
                        format!("{path}: invalid value")
                    } else {
                        format!("{path}: {}", e.kind)
                    }
                })
                .collect();
            ConfigError(keys.join("; "))
        })
    }

    /// The database URL to use: the configured one, or the SQLite file in the data directory.
    pub fn database_url(&self) -> (String, bool) {
        if self.database.url.is_empty() {
            let path = self.data_dir.join("yiren.db");
            (format!("sqlite://{}", path.display()), true)
        } else {
            (self.database.url.expose().to_string(), false)
        }
    }

    /// Directory of theme overrides.
    pub fn themes_dir(&self) -> PathBuf {
        self.data_dir.join("themes")
    }

    /// Directory of outgoing mail written as .eml files when no SMTP server is configured.
    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.join("mail")
    }

    /// The server key file.
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("secret.key")
    }

    /// Directory of uploaded files.
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }
}

fn is_option_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k == "data_dir"
        || [
            "server__",
            "database__",
            "jobs__",
            "outbound__",
            "mail__",
            "log__",
        ]
        .iter()
        .any(|p| k.starts_with(p))
}

/// The annotated example printed by `yiren config example`.
pub const EXAMPLE: &str = include_str!("../yiren.example.toml");

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(key.clone());
                keys(&key, v, out);
            }
        }
    }

    #[test]
    fn the_example_file_lists_every_option_with_its_default() {
        let parsed: Config = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(parsed, Config::default());
        let mut all = Vec::new();
        keys(
            "",
            &toml::Value::try_from(Config::default()).unwrap(),
            &mut all,
        );
        let mut listed = Vec::new();
        keys(
            "",
            &toml::from_str::<toml::Value>(EXAMPLE).unwrap(),
            &mut listed,
        );
        for k in all.iter().filter(|k| !k.starts_with("jobs.schedules")) {
            assert!(
                listed.contains(k),
                "yiren.example.toml does not mention {k}"
            );
        }
    }

    #[test]
    fn a_secret_url_never_shows_in_debug_output() {
        let mut c = Config::default();
        c.database.url = Secret::new("postgres://u:hunter2@db/yiren");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

#[cfg(test)]
mod precedence {
    use super::*;

    // Environment variables are process-wide: nextest runs each test in its own process.
    #[test]
    fn defaults_then_file_then_environment_then_flags() {
        let dir = tempfile_dir();
        let file = dir.join("yiren.toml");
        std::fs::write(&file, "data_dir = \"/from/file\"\n[server]\naddr = \"127.0.0.1:1111\"\nmetrics_addr = \"127.0.0.1:2222\"\n[jobs]\nconcurrency = 9\n").unwrap();
        std::env::set_var("YIREN_SERVER__ADDR", "127.0.0.1:3333");
        std::env::set_var("YIREN_JOBS__CONCURRENCY", "7");
        std::env::set_var("YIREN_TEST_DATABASE_URL", "postgres://ignored"); // not an option: ignored
        let c = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(c.server.addr, "127.0.0.1:3333", "env beats file");
        assert_eq!(
            c.server.metrics_addr, "127.0.0.1:2222",
            "file beats default"
        );
        assert_eq!(c.jobs.concurrency, 7);
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.log.level, "info", "default kept");
        let flags = Overrides {
            addr: Some("127.0.0.1:4444".into()),
            data_dir: Some("/from/flag".into()),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &flags).unwrap();
        assert_eq!(
            (c.server.addr.as_str(), c.data_dir.as_path()),
            ("127.0.0.1:4444", Path::new("/from/flag")),
            "flags beat env"
        );
        std::fs::write(&file, "[server]\naddres = \"typo\"\n").unwrap();
        let err = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("addres"), "unknown keys are reported: {err}");
        std::env::set_var("YIREN_DATABASE__URL", "postgres://u:hunter2@db/x");
        std::fs::write(&file, "[database]\nmax_connections = \"many\"\n").unwrap();
        let err = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(Config::load(Some(&dir.join("missing.toml")), &Overrides::default()).is_err());
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("yiren-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
