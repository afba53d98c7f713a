//! Headless Chromium through WebDriver (chromedriver + fantoccini).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running chromedriver and a WebDriver session on it.
pub struct Browser {
    /// The WebDriver client.
    pub client: fantoccini::Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Start chromedriver and open a headless Chromium session.
    pub async fn start() -> Browser {
        Browser::start_with_downloads(None).await
    }

    /// Like [`Browser::start`], saving downloads into `dir` without asking.
    pub async fn start_with_downloads(dir: Option<&std::path::Path>) -> Browser {
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chrome_bin = std::env::var("CHROME").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_bin}: {e} (apt-get install chromium chromium-driver)")
            });
        let profile = tempfile::tempdir().unwrap();
        let downloads = dir
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| profile.path().join("downloads"));
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "goog:chromeOptions": {
                "binary": chrome_bin,
                "prefs": {
                    "intl.accept_languages": "zh-CN,zh",
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "safebrowsing.enabled": false
                },
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1200,900", "--lang=zh-CN",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_err = String::new();
        for _ in 0..100 {
            match fantoccini::ClientBuilder::new(
                hyper_util::client::legacy::connect::HttpConnector::new(),
            )
            .capabilities(caps.clone())
            .connect(&url)
            .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    }
                }
                Err(e) => {
                    last_err = e.to_string();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("cannot open a WebDriver session: {last_err}");
    }

    /// Close the session and stop the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// WebDriver's WebAuthn extension: add a virtual authenticator to the session.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        let body = serde_json::json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (axum::http::Method::POST, Some(body.to_string()))
    }
}

/// WebDriver's WebAuthn extension: the credentials an authenticator holds.
#[derive(Debug)]
struct GetCredentials(String);

impl fantoccini::wd::WebDriverCompatibleCommand for GetCredentials {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator/{}/credentials",
            session_id.unwrap_or_default(),
            self.0
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::GET, None)
    }
}

impl Browser {
    /// Give the browser a platform authenticator (CTAP2, resident keys, user verification, always
    /// consenting) through WebDriver's WebAuthn extension; returns its id.
    pub async fn add_virtual_authenticator(&self) -> String {
        let v = self
            .client
            .issue_cmd(AddVirtualAuthenticator)
            .await
            .expect("add a virtual authenticator");
        v.as_str()
            .map(str::to_string)
            .or_else(|| {
                v.get("authenticatorId")
                    .and_then(|x| x.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("unexpected answer: {v}"))
    }

    /// The credentials a virtual authenticator holds (WebDriver's JSON).
    pub async fn authenticator_credentials(&self, id: &str) -> Vec<serde_json::Value> {
        let v = self
            .client
            .issue_cmd(GetCredentials(id.to_string()))
            .await
            .expect("list credentials");
        v.as_array().cloned().unwrap_or_default()
    }
}
