//! A real S3 server for tests: moto's server mode (`pip install 'moto[server]'`), started on a free
//! loopback port and stopped on drop. Tests read the bucket over plain S3 HTTP (moto does not
//! check signatures, only that a request claims one), so what Yiren wrote is checked independently
//! of the client that wrote it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto S3 server.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Child,
}

impl S3Server {
    /// Start `moto_server` (from `$YIREN_MOTO_SERVER` or `PATH`); panics with the install command
    /// when it is missing, so the S3 test never passes by skipping.
    pub async fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = std::env::var("YIREN_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): install it with pip install 'moto[server]'")
            });
        let s = S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let start = Instant::now();
        loop {
            if reqwest::get(&s.endpoint).await.is_ok() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Create a bucket.
    pub async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Every key in a bucket (up to 1,000).
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let xml = reqwest::get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut keys: Vec<String> = xml
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    /// An object's bytes, or None when it does not exist.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        // moto refuses anonymous reads of private objects but does not check signatures.
        let r = reqwest::Client::new()
            .get(format!("{}/{bucket}/{key}", self.endpoint))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            return None;
        }
        assert!(r.status().is_success(), "get {key}: {}", r.status());
        Some(r.bytes().await.unwrap().to_vec())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
