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
        let mut r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            ..Default::default()
        };
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        r.url = r.url.clone();
        r
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
