//! Licence keys end to end, on both engines: the owner fills a product's pool in admin, a paid
//! order takes the oldest pool key and generates the rest from the product's pattern, the buyer
//! sees them on the order page, and the public licence API (activate / validate / deactivate,
//! form-encoded or JSON) enforces the device limit under simultaneous activations, answers in the
//! caller's language, refuses keys of refunded orders, expired keys and unsold pool keys, and makes
//! an address that guesses keys wait before it learns anything.

use serde_json::Value;
use yiren_core::catalog::{self, Details, Kind, Price, ProductInput, VariantInput};
use yiren_core::checkout::{self, Submit};
use yiren_core::order::{self, Refund};
use yiren_core::{cart, license, Ctx};
use yiren_testkit::{both_engines, location, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

async fn app_product(ctx: &Ctx) -> (i64, i64) {
    let input = ProductInput {
        title: "一人记账 Pro".into(),
        handle: "ledger-pro".into(),
        kind: Kind::License,
        status: "active".into(),
        details: Details {
            activation_limit: Some(2),
            license_days: Some(365),
            license_pattern: Some("YIREN-####-####-####-####".into()),
            ..Default::default()
        },
        variants: vec![VariantInput {
            prices: vec![Price {
                currency: "CNY".into(),
                amount: 19_900,
                compare_at: None,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let p = catalog::create(ctx, &input, "test").await.unwrap();
    (p.row.id, p.variants[0].row.id)
}

async fn buy(ctx: &Ctx, token: &str, email: &str, variant: i64, quantity: i64) -> i64 {
    let s = Submit {
        token: token.into(),
        email: email.into(),
        lines: vec![cart::Line {
            variant_id: variant,
            quantity,
        }],
        gateway: "manual".into(),
        ..Default::default()
    };
    let o = checkout::place(ctx, &s).await.unwrap();
    order::confirm_manual(ctx, o.id, OWNER).await.unwrap();
    o.id
}

async fn call(app: &TestApp, what: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = app
        .client()
        .post(app.url(&format!("/api/v1/licenses/{what}")))
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

both_engines! {
    async fn licence_keys_are_assigned_shown_and_checked_by_the_public_api(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let ctx = &app.state.ctx;
        let (product, variant) = app_product(ctx).await;

        // The pool: bad input is refused; good keys are added once.
        let csrf = app.csrf(&owner, &format!("/admin/products/{product}")).await;
        let url = app.url(&format!("/admin/products/{product}/license-keys"));
        let bad = owner.post(&url).form(&[("_csrf", csrf.as_str()), ("keys", "short\nfine-key-0001")]).send().await.unwrap();
        assert_eq!(bad.status(), 422);
        assert!(bad.text().await.unwrap().contains("每个 8–100 个字符"));
        let added = owner.post(&url).form(&[("_csrf", csrf.as_str()), ("keys", "POOL-0001-AAAA\n\nPOOL-0001-AAAA\n")]).send().await.unwrap();
        assert_eq!(location(&added), format!("/admin/products/{product}?notice=license.pool_added#keys"));
        assert_eq!(license::available(ctx, product).await.unwrap(), 1);
        let editor = owner.get(app.url(&format!("/admin/products/{product}"))).send().await.unwrap().text().await.unwrap();
        assert!(editor.contains("密钥池中还有 1 个密钥"));
        // An unsold pool key is nobody's: the API does not know it.
        assert_eq!(call(&app, "validate", &[("license_key", "POOL-0001-AAAA")]).await.0, 404);

        // Two units: the pool key, then one from the pattern.
        let o = buy(ctx, "two", "dev@example.com", variant, 2).await;
        let keys = license::of_order(ctx, o).await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].license_key, "POOL-0001-AAAA");
        let generated = &keys[1].license_key;
        assert!(generated.starts_with("YIREN-") && generated.len() == 25, "{generated}");
        assert!(keys.iter().all(|k| k.status == "inactive" && k.activation_limit == Some(2) && k.expires_at.is_some()));
        assert_eq!(license::available(ctx, product).await.unwrap(), 0);
        let page = app.client().get(app.url(&format!("/orders/{o}?key={}", order::access_key(ctx, o)))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("POOL-0001-AAAA") && page.contains(generated.as_str()) && page.contains("尚未激活"), "{page}");

        // Activate on one device (form-encoded, as Lemon Squeezy clients send it).
        let (s, a) = call(&app, "activate", &[("license_key", generated), ("instance_name", "MacBook Air")]).await;
        assert_eq!(s, 200, "{a}");
        assert_eq!(a["activated"], true);
        assert_eq!(a["error"], Value::Null);
        assert_eq!(a["license_key"]["status"], "active");
        assert_eq!(a["license_key"]["activation_usage"], 1);
        assert_eq!(a["license_key"]["activation_limit"], 2);
        assert_eq!(a["meta"]["product_name"], "一人记账 Pro");
        assert_eq!(a["meta"]["customer_email"], "dev@example.com");
        let mac = a["instance"]["id"].as_str().unwrap().to_string();
        assert_eq!(mac.len(), 32);
        // Validate: the key, the key on that device, the key on an unknown device.
        let (s, v) = call(&app, "validate", &[("license_key", generated), ("instance_id", &mac)]).await;
        assert_eq!((s, &v["valid"], &v["instance"]["name"]), (200, &Value::Bool(true), &Value::from("MacBook Air")));
        assert_eq!(call(&app, "validate", &[("license_key", generated)]).await.0, 200);
        let (s, v) = call(&app, "validate", &[("license_key", generated), ("instance_id", "nope")]).await;
        assert_eq!((s, &v["valid"], &v["error_code"]), (404, &Value::Bool(false), &Value::from("license.instance_not_found")));

        // Ten devices at once for the one slot left: exactly one gets it.
        let results: Vec<(u16, Value)> = futures::future::join_all((0..10).map(|i| {
            let name = format!("PC {i}");
            let (c, url, key) = (app.client(), app.url("/api/v1/licenses/activate"), generated.clone());
            async move {
                let r = c.post(url).form(&[("license_key", key.as_str()), ("instance_name", name.as_str())]).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        })).await;
        assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 1, "{results:?}");
        assert!(results.iter().filter(|(s, _)| *s != 200).all(|(s, v)| *s == 400 && v["error_code"] == "license.limit_reached" && v["activated"] == false));
        let row = license::of_order(ctx, o).await.unwrap().remove(1);
        assert_eq!(row.activations, 2);

        // Deactivate frees a slot (JSON works too); a second deactivation of it is a 404.
        let r = app.client().post(app.url("/api/v1/licenses/deactivate")).json(&serde_json::json!({"license_key": generated, "instance_id": mac})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let d: Value = r.json().await.unwrap();
        assert_eq!((&d["deactivated"], &d["license_key"]["activation_usage"]), (&Value::Bool(true), &Value::from(1)));
        assert_eq!(call(&app, "deactivate", &[("license_key", generated), ("instance_id", &mac)]).await.0, 404);

        // Missing fields: 422, in the caller's language.
        let r = app.client().post(app.url("/api/v1/licenses/activate")).header("accept-language", "en").form(&[("license_key", generated.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("instance_name (to activate)"));

        // An expired key, and the keys of a refunded order.
        let other = buy(ctx, "one", "x@example.com", variant, 1).await;
        let expired = license::of_order(ctx, other).await.unwrap().remove(0);
        sqlx::query("UPDATE license_keys SET expires_at = 1 WHERE id = $1").bind(expired.id).execute(ctx.db.write()).await.unwrap();
        let (s, v) = call(&app, "activate", &[("license_key", &expired.license_key), ("instance_name", "PC")]).await;
        assert_eq!((s, &v["error_code"]), (400, &Value::from("license.expired")));
        order::refund(ctx, o, &Refund { amount: 39_800, key: "r".into(), restock: false, reason: String::new(), lines: vec![] }, OWNER).await.unwrap();
        let (s, v) = call(&app, "validate", &[("license_key", "POOL-0001-AAAA")]).await;
        assert_eq!((s, &v["valid"], &v["error_code"]), (400, &Value::Bool(false), &Value::from("license.disabled")));
        assert_eq!(call(&app, "activate", &[("license_key", generated), ("instance_name", "New PC")]).await.0, 400);
        let page = app.client().get(app.url(&format!("/orders/{o}?key={}", order::access_key(ctx, o)))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("权益已被收回") || page.contains("已停用"), "{page}");

        // Guessing: after 30 unknown keys in a window (one was the pool key above) this address
        // gets 429 for every key, even a real one. (A window boundary during the loop would reset
        // the count once, hence up to twice as many tries.)
        let mut misses = 1;
        loop {
            let guess = format!("YIREN-GUES-{misses:04}-AAAA-AAAA");
            let (s, _) = call(&app, "validate", &[("license_key", &guess)]).await;
            if s == 429 {
                break;
            }
            assert_eq!(s, 404, "{guess}");
            misses += 1;
            assert!(misses <= 2 * license::MISSES_PER_WINDOW, "never throttled");
        }
        assert!(misses >= license::MISSES_PER_WINDOW, "throttled after {misses}");
        let (s, v) = call(&app, "validate", &[("license_key", &expired.license_key)]).await;
        assert_eq!((s, &v["error_code"]), (429, &Value::from("license.throttled")));
    }

    async fn the_owner_lists_changes_and_frees_keys_through_the_api(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let ctx = &app.state.ctx;
        let token = app.api_token(&owner, &["licenses:read", "licenses:write"]).await;
        let reader = app.api_token(&owner, &["licenses:read"]).await;
        let (product, variant) = app_product(ctx).await;
        let first = buy(ctx, "owner-api-1", "a@example.com", variant, 2).await;
        let second = buy(ctx, "owner-api-2", "b@example.com", variant, 1).await;
        let c = app.client();
        let api = |path: &str| app.url(&format!("/api/v1{path}"));
        let get = |url: String, t: String| { let c = c.clone(); async move { let r = c.get(url).bearer_auth(t).send().await.unwrap(); (r.status().as_u16(), r.json::<Value>().await.unwrap()) } };

        // Lists: newest first, by order and by product; pages carry the filter.
        let (s, all) = get(api(&format!("/license_keys?product_id={product}&limit=2")), reader.clone()).await;
        assert_eq!(s, 200);
        assert_eq!(all["license_keys"].as_array().unwrap().len(), 2);
        let (_, mine) = get(api(&format!("/license_keys?order_id={first}")), reader.clone()).await;
        let keys = mine["license_keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.iter().all(|k| k["order_id"].as_i64() == Some(first) && k["status"] == "inactive" && k["activation_limit"] == 2));
        let (_, theirs) = get(api(&format!("/license_keys?order_id={second}")), reader.clone()).await;
        assert_eq!(theirs["license_keys"].as_array().unwrap().len(), 1);
        let key = keys[0]["key"].as_str().unwrap().to_string();
        let id = keys[0]["id"].as_i64().unwrap();

        // Two devices: the limit is reached; the owner sees them.
        let (_, a) = call(&app, "activate", &[("license_key", &key), ("instance_name", "Mac")]).await;
        call(&app, "activate", &[("license_key", &key), ("instance_name", "PC")]).await;
        assert_eq!(call(&app, "activate", &[("license_key", &key), ("instance_name", "Third")]).await.0, 400);
        let (_, one) = get(api(&format!("/license_keys/{id}")), reader.clone()).await;
        let k = &one["license_key"];
        assert_eq!((k["status"].as_str(), k["activation_usage"].as_i64(), k["instances"].as_array().unwrap().len()), (Some("active"), Some(2), 2));

        // Changes: a reader may not; a limit below the devices in use is refused (in the caller's
        // language); a higher limit lets the third device in.
        let put = |body: Value, t: String| { let c = c.clone(); let url = api(&format!("/license_keys/{id}")); async move { let r = c.put(url).bearer_auth(t).header("accept-language", "zh-CN").json(&body).send().await.unwrap(); (r.status().as_u16(), r.json::<Value>().await.unwrap()) } };
        assert_eq!(put(serde_json::json!({"license_key": {"activation_limit": 3}}), reader.clone()).await.0, 403);
        let (s, v) = put(serde_json::json!({"license_key": {"activation_limit": 1}}), token.clone()).await;
        assert_eq!(s, 422, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("设备上限"), "{v}");
        let (s, v) = put(serde_json::json!({"license_key": {"activation_limit": 0}}), token.clone()).await;
        assert_eq!(s, 422, "{v}");
        let (s, v) = put(serde_json::json!({"license_key": {"activation_limit": 3, "expires_at": "2099-01-01T00:00:00Z"}}), token.clone()).await;
        assert_eq!((s, v["license_key"]["activation_limit"].as_i64(), v["license_key"]["expires_at"].as_str()), (200, Some(3), Some("2099-01-01T00:00:00Z")));
        assert_eq!(call(&app, "activate", &[("license_key", &key), ("instance_name", "Third")]).await.0, 200);

        // Off: every call with the key is refused; on again: it works. The timeline says who.
        let (s, v) = put(serde_json::json!({"license_key": {"status": "disabled", "activation_limit": 3}}), token.clone()).await;
        assert_eq!((s, v["license_key"]["status"].as_str()), (200, Some("disabled")));
        let (s, v) = call(&app, "validate", &[("license_key", &key)]).await;
        assert_eq!((s, &v["error_code"]), (400, &Value::from("license.disabled")));
        // A change that does not name the status leaves it as it is.
        let (s, v) = put(serde_json::json!({"license_key": {"activation_limit": 3}}), token.clone()).await;
        assert_eq!((s, v["license_key"]["status"].as_str()), (200, Some("disabled")));
        let (s, v) = put(serde_json::json!({"license_key": {"status": "enabled", "activation_limit": 3}}), token.clone()).await;
        assert_eq!((s, v["license_key"]["status"].as_str()), (200, Some("active")));
        assert_eq!(call(&app, "validate", &[("license_key", &key)]).await.0, 200);
        let timeline = order::get(ctx, first).await.unwrap().events;
        assert_eq!(timeline.iter().filter(|e| e.kind == "license_changed" && e.actor == format!("api:{OWNER}")).count(), 4);

        // A device released by the owner frees its place; releasing it again is 404.
        let instance = a["instance"]["id"].as_str().unwrap().to_string();
        let del = |t: String| { let c = c.clone(); let url = api(&format!("/license_keys/{id}/instances/{instance}")); async move { c.delete(url).bearer_auth(t).send().await.unwrap() } };
        let r = del(token.clone()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["license_key"]["activation_usage"].as_i64(), Some(2));
        assert_eq!(del(token.clone()).await.status(), 404);
        let (s, v) = call(&app, "validate", &[("license_key", &key), ("instance_id", &instance)]).await;
        assert_eq!((s, &v["error_code"]), (404, &Value::from("license.instance_not_found")));

        // Pool keys are nobody's: not listed, not found by id.
        license::add_pool(ctx, product, "POOL-ONLY-0001").await.unwrap();
        let pool_id: i64 = sqlx::query_scalar("SELECT id FROM license_keys WHERE license_key = 'POOL-ONLY-0001'").fetch_one(ctx.db.read()).await.unwrap();
        assert_eq!(get(api(&format!("/license_keys/{pool_id}")), reader.clone()).await.0, 404);
        let (_, all) = get(api("/license_keys?limit=250"), reader.clone()).await;
        assert_eq!(all["license_keys"].as_array().unwrap().len(), 3);
    }
}
