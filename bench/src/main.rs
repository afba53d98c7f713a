//! `bare-axum ADDR DB`: the smallest honest web handler — axum, one SQLite read per request,
//! a small HTML response — to compare Yiren's home page against in the same run.

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;
use std::str::FromStr;

async fn home(State(pool): State<SqlitePool>) -> Html<String> {
    let name: String = sqlx::query_scalar("SELECT value FROM kv WHERE key = 'site.name'")
        .fetch_one(&pool)
        .await
        .unwrap_or_default();
    Html(format!("<!doctype html><html><head><title>{name}</title></head><body><h1>Welcome to {name}</h1></body></html>"))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let db = args.next().unwrap_or_else(|| "/tmp/bare-axum.db".into());
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{db}"))
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(opts)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO kv (key, value) VALUES ('site.name', 'Bench') ON CONFLICT (key) DO NOTHING",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = axum::Router::new().route("/", get(home)).with_state(pool);
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
