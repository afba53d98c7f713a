//! The API base: tokens, scopes, error envelopes in the caller's language, pagination, idempotency,
//! body limits, and the OpenAPI document.

use yiren_testkit::{both_engines, Engine, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "a long owner passphrase";

async fn app_with_token(engine: Engine, scopes: &[&str]) -> (TestApp, reqwest::Client, String) {
    let app = TestApp::spawn(engine).await;
    let c = app.setup_owner(OWNER, PW).await;
    let token = app.api_token(&c, scopes).await;
    (app, c, token)
}

both_engines! {
    async fn tokens_are_shown_once_stored_hashed_scoped_and_revocable(engine: Engine) {
        let (app, c, token) = app_with_token(engine, &["shop:read", "jobs:read"]).await;
        assert!(token.starts_with("yiren_") && token.len() > 40);
        let api = reqwest::Client::new();
        let r = api.get(app.url("/api/v1/shop")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["shop"]["name"], "测试小店");
        assert_eq!(body["shop"]["currency"], "CNY");
        // Stored hashed: the secret is nowhere in the database, nor on the token page.
        let hashes: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens").fetch_all(app.state.ctx.db.read()).await.unwrap();
        assert!(hashes.iter().all(|h| !h.contains(&token[6..])));
        assert!(!c.get(app.url("/admin/tokens")).send().await.unwrap().text().await.unwrap().contains(&token));
        // last_used_at is recorded.
        let used: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM api_tokens").fetch_one(app.state.ctx.db.read()).await.unwrap();
        assert!(used.is_some());
        // A scope it lacks: 403 with a message naming it.
        let r = api.put(app.url("/api/v1/shop")).bearer_auth(&token).header("accept-language", "en").json(&serde_json::json!({"shop": {"name": "x"}})).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "forbidden");
        assert!(e["error"]["message"].as_str().unwrap().contains("shop:write"));
        // Revoke through the admin page: the token stops working.
        let id: i64 = sqlx::query_scalar("SELECT id FROM api_tokens").fetch_one(app.state.ctx.db.read()).await.unwrap();
        let csrf = app.csrf(&c, "/admin/tokens").await;
        c.post(app.url(&format!("/admin/tokens/{id}/revoke"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        let r = api.get(app.url("/api/v1/shop")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }

    async fn errors_speak_the_callers_language(engine: Engine) {
        let (app, _c, token) = app_with_token(engine, &["jobs:read"]).await;
        let api = reqwest::Client::new();
        let zh: serde_json::Value = api.get(app.url("/api/v1/jobs/42")).bearer_auth(&token).header("accept-language", "zh-CN,zh;q=0.9").send().await.unwrap().json().await.unwrap();
        let en = api.get(app.url("/api/v1/jobs/42")).bearer_auth(&token).header("accept-language", "en-US").send().await.unwrap();
        assert_eq!(en.status(), 404);
        let en: serde_json::Value = en.json().await.unwrap();
        assert_eq!((zh["error"]["code"].as_str(), en["error"]["code"].as_str()), (Some("not_found"), Some("not_found")));
        assert_eq!(zh["error"]["message"], "未找到。");
        assert_eq!(en["error"]["message"], "Not found.");
        // No Accept-Language: the site default (zh-CN from setup).
        let d: serde_json::Value = api.get(app.url("/api/v1/nope")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(d["error"]["message"], "未找到。");
        // Malformed input is a 4xx with the envelope, never a 500.
        let r = api.get(app.url("/api/v1/jobs?limit=1000")).bearer_auth(&token).header("accept-language", "en").send().await.unwrap();
        assert_eq!(r.status(), 422);
        let r = api.get(app.url("/api/v1/jobs?page_info=%%%")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let r = api.get(app.url("/api/v1/jobs/notanumber")).bearer_auth(&token).send().await.unwrap();
        assert!(r.status().is_client_error());
    }

    async fn lists_page_with_a_link_header_until_the_end(engine: Engine) {
        let (app, _c, token) = app_with_token(engine, &["jobs:read"]).await;
        let ctx = &app.state.ctx;
        let mut tx = ctx.db.begin().await.unwrap();
        for i in 0..7 {
            let opts = yiren_core::job::EnqueueOptions { run_at: Some(i64::MAX / 2), ..Default::default() };
            yiren_core::job::enqueue(ctx, &mut tx, "test.noop", &serde_json::json!({"i": i}), opts).await.unwrap();
        }
        tx.commit().await.unwrap();
        let api = reqwest::Client::new();
        let mut url = app.url("/api/v1/jobs?state=queued&limit=3");
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let r = api.get(&url).bearer_auth(&token).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let link = r.headers().get("link").map(|v| v.to_str().unwrap().to_string());
            let body: serde_json::Value = r.json().await.unwrap();
            seen.extend(body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()));
            pages += 1;
            match link {
                Some(l) => {
                    assert!(l.ends_with("rel=\"next\""), "{l}");
                    url = l.trim_start_matches('<').split('>').next().unwrap().to_string();
                    assert!(!url.contains("state="), "filters travel inside page_info");
                }
                None => break,
            }
        }
        assert_eq!((pages, seen.len()), (3, 7));
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted, "newest first, no duplicates across pages");
        let count: serde_json::Value = api.get(app.url("/api/v1/jobs/count?state=queued")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(count["count"], 7);
    }

    async fn an_idempotency_key_replays_the_first_response_and_refuses_a_different_body(engine: Engine) {
        let (app, _c, token) = app_with_token(engine, &["tokens:write", "tokens:read"]).await;
        let api = reqwest::Client::new();
        let body = serde_json::json!({"api_token": {"name": "ci", "scopes": ["jobs:read"]}});
        let send = |b: serde_json::Value| api.post(app.url("/api/v1/api_tokens")).bearer_auth(&token).header("idempotency-key", "k-123").json(&b).send();
        let first = send(body.clone()).await.unwrap();
        assert_eq!(first.status(), 201);
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first: serde_json::Value = first.json().await.unwrap();
        let second = send(body.clone()).await.unwrap();
        assert_eq!(second.status(), 201);
        assert_eq!(second.headers()["idempotent-replayed"], "true");
        let second: serde_json::Value = second.json().await.unwrap();
        assert_eq!(first, second, "the same token, not a second one");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(app.state.ctx.db.read()).await.unwrap();
        assert_eq!(n, 2, "the admin token and exactly one created through the API");
        let other = send(serde_json::json!({"api_token": {"name": "other", "scopes": ["jobs:read"]}})).await.unwrap();
        assert_eq!(other.status(), 422);
        let e: serde_json::Value = other.json().await.unwrap();
        assert_eq!(e["error"]["code"], "idempotency_key_reused");
        // After 24 hours the key may be used afresh.
        app.clock.advance(24 * 3_600_000 + 1);
        let later = send(serde_json::json!({"api_token": {"name": "other", "scopes": ["jobs:read"]}})).await.unwrap();
        assert_eq!(later.status(), 201);
        assert!(later.headers().get("idempotent-replayed").is_none());
    }

    async fn oversized_and_malformed_bodies_get_clear_errors(engine: Engine) {
        let (app, _c, token) = app_with_token(engine, &["shop:write", "shop:read"]).await;
        let api = reqwest::Client::new();
        // Declared too large: refused from the headers alone, before any of the body is sent.
        let head = format!(
            "PUT /api/v1/shop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            2 << 20
        );
        let mut sock = tokio::net::TcpStream::connect(app.url("").trim_start_matches("http://")).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut sock, head.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), tokio::io::AsyncReadExt::read(&mut sock, &mut buf)).await.unwrap().unwrap();
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
        assert!(reply.contains("payload_too_large"));
        let r = api.put(app.url("/api/v1/shop")).bearer_auth(&token).header("content-type", "application/json").body("{not json").send().await.unwrap();
        assert_eq!(r.status(), 400);
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "bad_request");
        let r = api.put(app.url("/api/v1/shop")).bearer_auth(&token).header("accept-language", "en").json(&serde_json::json!({"shop": {"currency": "XYZ"}})).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], "currency");
        let r = api.put(app.url("/api/v1/shop")).bearer_auth(&token).json(&serde_json::json!({"shop": {"name": "New name", "default_locale": "en"}})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let home = app.client().get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("New name") && home.contains("Welcome"), "settings apply at once");
    }
}

#[tokio::test]
async fn the_openapi_document_matches_its_snapshot() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let r = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v1/shop",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}/retry",
        "/api/v1/api_tokens",
        "/api/v1/staff",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    insta::assert_json_snapshot!("openapi", doc);
}

both_engines! {
    async fn health_and_readiness_answer_and_every_response_carries_a_request_id(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let h = reqwest::get(app.url("/healthz")).await.unwrap();
        assert_eq!(h.status(), 200);
        assert!(h.headers().get("x-request-id").is_some_and(|v| v.len() >= 32));
        let r = reqwest::get(app.url("/readyz")).await.unwrap();
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!((body["database"].as_bool(), body["migrations"].as_bool()), (Some(true), Some(true)));
        // A client-supplied id is kept, so it can be followed across systems.
        let r = reqwest::Client::new().get(app.url("/nope")).header("x-request-id", "trace-me-123").send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["x-request-id"].to_str().unwrap()), (404, "trace-me-123"));
        // Pages are in the visitor's language: zh-CN by default, English when asked.
        let en = reqwest::Client::new().get(app.url("/")).header("accept-language", "en").send().await.unwrap();
        assert_eq!(en.headers()["content-language"], "en");
        assert!(en.text().await.unwrap().contains("Welcome"));
    }
}

both_engines! {
    async fn shutdown_lets_an_in_flight_request_finish(engine: Engine) {
        let (app, _c, token) = app_with_token(engine, &["shop:write", "shop:read"]).await;
        let body = r#"{"shop":{"name":"Finished"}}"#;
        let head = format!(
            "PUT /api/v1/shop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut sock = tokio::net::TcpStream::connect(app.url("").trim_start_matches("http://")).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        sock.write_all(head.as_bytes()).await.unwrap();
        sock.write_all(&body.as_bytes()[..10]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // Shut down while the request is half sent.
        let stopping = tokio::spawn(app.stop());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!stopping.is_finished(), "shutdown waits for the request in flight");
        sock.write_all(&body.as_bytes()[10..]).await.unwrap();
        let mut reply = String::new();
        sock.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains("Finished"));
        let db = stopping.await.unwrap();
        drop(db);
    }
}

both_engines! {
    async fn a_dead_job_is_retried_through_the_api_and_only_a_dead_one(engine: Engine) {
        let (app, _c, token) = app_with_token(engine, &["jobs:read", "jobs:write"]).await;
        let ctx = &app.state.ctx;
        let mut tx = ctx.db.begin().await.unwrap();
        // A kind no handler knows goes straight to the dead list.
        let id = yiren_core::job::enqueue(ctx, &mut tx, "no.such.kind", &serde_json::json!({}), Default::default()).await.unwrap().unwrap();
        tx.commit().await.unwrap();
        let api = reqwest::Client::new();
        let mut state = String::new();
        for _ in 0..200 {
            let j: serde_json::Value = api.get(app.url(&format!("/api/v1/jobs/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
            state = j["job"]["state"].as_str().unwrap().to_string();
            if state == "dead" { break; }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(state, "dead");
        let r = api.post(app.url(&format!("/api/v1/jobs/{id}/retry"))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["job"]["attempts"], 0);
        let r = api.post(app.url(&format!("/api/v1/jobs/{}/retry", id + 1))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 404);
    }
}
