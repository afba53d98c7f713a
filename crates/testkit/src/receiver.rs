//! An idempotent HTTP receiver: records each distinct `key` it is sent (duplicates are counted but
//! change nothing), like a well-behaved webhook consumer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

/// The receiver; cheap to clone.
#[derive(Clone, Default)]
pub struct Receiver {
    seen: Arc<Mutex<HashMap<String, u32>>>,
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
}

impl Receiver {
    /// Start listening on a random loopback port.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            ..Default::default()
        };
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/slow", post(slow))
            .route("/limited", post(limited))
            .route(
                "/broken",
                post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "down") }),
            )
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        r
    }

    /// URL of another route on the same receiver (`slow`, `limited`, `broken`).
    pub fn route(&self, name: &str) -> String {
        self.url.replace("/hook", &format!("/{name}"))
    }

    /// Distinct keys received.
    pub fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Deliveries in total (duplicates included).
    pub fn deliveries(&self) -> u32 {
        self.seen.lock().unwrap().values().sum()
    }

    /// True when `key` was received.
    pub fn has(&self, key: &str) -> bool {
        self.seen.lock().unwrap().contains_key(key)
    }
}

async fn hook(State(r): State<Receiver>, Json(body): Json<serde_json::Value>) -> &'static str {
    let key = body
        .get("key")
        .and_then(|k| k.as_str())
        .unwrap_or("")
        .to_string();
    *r.seen.lock().unwrap().entry(key).or_insert(0) += 1;
    "ok"
}

/// Records, but only after a long pause (to catch a job mid-flight).
async fn slow(State(r): State<Receiver>, body: Json<serde_json::Value>) -> &'static str {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    hook(State(r), body).await
}

/// The first delivery of each key is refused with 429 and `Retry-After: 120`; later ones record.
async fn limited(
    State(r): State<Receiver>,
    Json(body): Json<serde_json::Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let key = format!(
        "limited:{}",
        body.get("key").and_then(|k| k.as_str()).unwrap_or("")
    );
    let first = {
        let mut seen = r.seen.lock().unwrap();
        let n = seen.entry(key).or_insert(0);
        *n += 1;
        *n == 1
    };
    if first {
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "120")],
            "slow down",
        )
            .into_response();
    }
    hook(State(r), Json(body)).await.into_response()
}
