//! `/api/v1/products` and `/api/v1/inventory_levels/adjust` over HTTP: Shopify-like shapes, money
//! as decimal strings, cursor paging with a Link header, scopes, errors in the caller's language,
//! an idempotent stock adjustment. On both engines.

use serde_json::json;
use yiren_testkit::{both_engines, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

fn shirt(title: &str) -> serde_json::Value {
    json!({"product": {
        "title": title,
        "body": "透气**亚麻**",
        "status": "active",
        "vendor": "一人小店",
        "tags": "服装,夏季",
        "options": [{"name": "尺码"}],
        "variants": [
            {"option1": "S", "price": "329.00", "compare_at_price": "399", "sku": "LS-S", "inventory_management": "yiren", "inventory_quantity": 5,
             "presentment_prices": [{"amount": "45.00", "currency_code": "USD"}]},
            {"option1": "M", "price": "339.50", "sku": "LS-M"}
        ],
        "translations": [{"locale": "en", "title": "Linen Shirt"}]
    }})
}

both_engines! {
    async fn products_over_the_api(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&owner, &["products:read", "products:write"]).await;
        let read_only = app.api_token(&owner, &["products:read"]).await;
        let api = reqwest::Client::new();
        let url = |p: &str| app.url(&format!("/api/v1{p}"));

        let r = api.post(url("/products")).bearer_auth(&token).json(&shirt("亚麻衬衫")).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let p: serde_json::Value = r.json().await.unwrap();
        let p = &p["product"];
        let id = p["id"].as_i64().unwrap();
        assert_eq!(p["handle"], "亚麻衬衫");
        assert_eq!(p["tags"], "服装, 夏季");
        assert_eq!(p["body_html"], "<p>透气<strong>亚麻</strong></p>\n");
        assert_eq!(p["options"], json!([{"name": "尺码", "position": 1, "values": ["S", "M"]}]));
        let v0 = &p["variants"][0];
        assert_eq!((v0["price"].as_str(), v0["compare_at_price"].as_str(), v0["inventory_quantity"].as_i64()), (Some("329.00"), Some("399.00"), Some(5)));
        assert_eq!(v0["inventory_management"], "yiren");
        assert_eq!(v0["presentment_prices"], json!([{"amount": "329.00", "currency_code": "CNY", "compare_at_price": "399.00"}, {"amount": "45.00", "currency_code": "USD"}]));
        assert_eq!(p["variants"][1]["price"], "339.50");
        assert_eq!(p["variants"][1]["inventory_management"], serde_json::Value::Null);
        assert_eq!(p["translations"][0]["title"], "Linen Shirt");

        // Refusals: a read-only token; a price with three decimals (message in the caller's
        // language); an unknown field; nothing stored by any of them.
        let r = api.post(url("/products")).bearer_auth(&read_only).json(&shirt("x")).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let mut bad = shirt("坏价格");
        bad["product"]["variants"][1]["price"] = json!("1.999");
        let r = api.post(url("/products")).bearer_auth(&token).header("accept-language", "zh-CN").json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(e["error"]["message"].as_str().unwrap().contains("小数位"), "{e}");
        let mut unknown = shirt("x");
        unknown["product"]["total_price"] = json!("0.01");
        assert_eq!(api.post(url("/products")).bearer_auth(&token).json(&unknown).send().await.unwrap().status(), 422);
        let mut taken = shirt("另一个");
        taken["product"]["handle"] = json!("亚麻衬衫");
        assert_eq!(api.post(url("/products")).bearer_auth(&token).json(&taken).send().await.unwrap().status(), 409);
        let count: serde_json::Value = api.get(url("/products/count")).bearer_auth(&read_only).send().await.unwrap().json().await.unwrap();
        assert_eq!(count["count"], 1);

        // Paging: three more products, two per page, the Link header carries the cursor.
        for t in ["茶杯", "茶壶", "茶叶"] {
            assert_eq!(api.post(url("/products")).bearer_auth(&token).json(&shirt(t)).send().await.unwrap().status(), 201);
        }
        let r = api.get(url("/products?limit=2&query=茶")).bearer_auth(&read_only).send().await.unwrap();
        let link = r.headers()["link"].to_str().unwrap().to_string();
        let first: serde_json::Value = r.json().await.unwrap();
        let next = link.trim_start_matches('<').split('>').next().unwrap().to_string();
        let second: serde_json::Value = api.get(next).bearer_auth(&read_only).send().await.unwrap().json().await.unwrap();
        let titles: Vec<&str> = first["products"].as_array().unwrap().iter().chain(second["products"].as_array().unwrap()).map(|p| p["title"].as_str().unwrap()).collect();
        assert_eq!(titles, vec!["茶叶", "茶壶", "茶杯"]);
        assert_eq!(api.get(url("/products?status=live")).bearer_auth(&read_only).send().await.unwrap().status(), 422);

        // Update: keep variant S by id (its stock stays), drop M, add L; rename the handle.
        let s_id = p["variants"][0]["id"].as_i64().unwrap();
        let upd = json!({"product": {
            "title": "亚麻衬衫", "handle": "linen-shirt", "status": "active", "options": [{"name": "尺码"}],
            "variants": [
                {"id": s_id, "option1": "S", "price": "319", "inventory_management": "yiren", "inventory_quantity": 999},
                {"option1": "L", "price": "349", "inventory_management": "yiren", "inventory_quantity": 2}
            ]
        }});
        let r = api.put(url(&format!("/products/{id}"))).bearer_auth(&token).json(&upd).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let u: serde_json::Value = r.json().await.unwrap();
        let vs = u["product"]["variants"].as_array().unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!((vs[0]["id"].as_i64(), vs[0]["inventory_quantity"].as_i64(), vs[0]["price"].as_str()), (Some(s_id), Some(5), Some("319.00")));
        assert_eq!((vs[1]["option1"].as_str(), vs[1]["inventory_quantity"].as_i64()), (Some("L"), Some(2)));

        // Stock adjustment: a retried request with the same Idempotency-Key applies once.
        let adj = json!({"variant_id": s_id, "available_adjustment": -2, "reason": "售出"});
        for _ in 0..2 {
            let r = api.post(url("/inventory_levels/adjust")).bearer_auth(&token).header("idempotency-key", "adj-1").json(&adj).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let l: serde_json::Value = r.json().await.unwrap();
            assert_eq!(l["inventory_level"], json!({"variant_id": s_id, "available": 3}));
        }
        let zero = json!({"variant_id": s_id, "available_adjustment": 0, "reason": "x"});
        assert_eq!(api.post(url("/inventory_levels/adjust")).bearer_auth(&token).json(&zero).send().await.unwrap().status(), 422);
        let none = json!({"variant_id": 1, "available_adjustment": 1, "reason": "x"});
        assert_eq!(api.post(url("/inventory_levels/adjust")).bearer_auth(&token).json(&none).send().await.unwrap().status(), 404);

        // One variant by id.
        let v: serde_json::Value = api.get(url(&format!("/variants/{s_id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!((v["variant"]["product_id"].as_i64(), v["variant"]["inventory_quantity"].as_i64()), (Some(id), Some(3)));
        assert_eq!(api.get(url("/variants/1")).bearer_auth(&token).send().await.unwrap().status(), 404);

        // Collections: manual (ordered ids) and automatic (a price rule in decimal money); the
        // automatic one finds the shirt (lowest price 319 ≤ 320); refusals; delete.
        let r = api.post(url("/collections")).bearer_auth(&token).json(&json!({"collection": {"title": "夏季精选", "product_ids": [id], "translations": [{"locale": "en", "title": "Summer picks"}]}})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let manual: serde_json::Value = r.json().await.unwrap();
        assert_eq!((manual["collection"]["collection_type"].as_str(), manual["collection"]["product_ids"].clone()), (Some("manual"), json!([id])));
        assert_eq!(manual["collection"]["translations"], json!([{"locale": "en", "title": "Summer picks", "body": ""}]));
        let r = api.post(url("/collections")).bearer_auth(&token).json(&json!({"collection": {"title": "Under 320", "handle": "under-320", "collection_type": "automatic", "rules": [{"column": "price_at_most", "condition": "320"}]}})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let auto: serde_json::Value = r.json().await.unwrap();
        assert_eq!(auto["collection"]["rules"], json!([{"column": "price_at_most", "condition": "320.00"}]));
        assert_eq!(auto["collection"]["product_ids"], json!([id]));
        assert_eq!(auto["collection"]["disjunctive"], false);
        let list: serde_json::Value = api.get(url("/collections")).bearer_auth(&read_only).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["collections"].as_array().unwrap().len(), 2);
        for bad in [
            json!({"collection": {"title": "x", "collection_type": "smart"}}),
            json!({"collection": {"title": "x", "collection_type": "automatic", "rules": [{"column": "colour", "condition": "red"}]}}),
            json!({"collection": {"title": "x", "collection_type": "automatic", "rules": [{"column": "price_at_most", "condition": "1.999"}]}}),
            json!({"collection": {"title": "x", "handle": "under-320"}}),
        ] {
            let st = api.post(url("/collections")).bearer_auth(&token).json(&bad).send().await.unwrap().status();
            assert!(st == 422 || st == 409, "{bad}: {st}");
        }
        assert_eq!(api.post(url("/collections")).bearer_auth(&read_only).json(&json!({"collection": {"title": "x"}})).send().await.unwrap().status(), 403);
        let aid = auto["collection"]["id"].as_i64().unwrap();
        let r = api.put(url(&format!("/collections/{aid}"))).bearer_auth(&token).json(&json!({"collection": {"title": "Under 300", "collection_type": "automatic", "rules": [{"column": "price_at_most", "condition": "300"}]}})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let upd: serde_json::Value = r.json().await.unwrap();
        assert_eq!((upd["collection"]["handle"].as_str(), upd["collection"]["product_ids"].clone()), (Some("under-320"), json!([])));
        assert_eq!(api.delete(url(&format!("/collections/{aid}"))).bearer_auth(&token).send().await.unwrap().status(), 204);
        assert_eq!(api.get(url(&format!("/collections/{aid}"))).bearer_auth(&token).send().await.unwrap().status(), 404);

        assert_eq!(api.delete(url(&format!("/products/{id}"))).bearer_auth(&token).send().await.unwrap().status(), 204);
        assert_eq!(api.get(url(&format!("/products/{id}"))).bearer_auth(&token).send().await.unwrap().status(), 404);
        app.stop().await;
    }
}

/// The JSON shapes of a product (with its media), a collection and the event log, as snapshots
/// (ids, times and addresses that change per run are redacted). A change to any field shows up in
/// review as a snapshot diff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_shapes_match_their_snapshots() {
    let app = TestApp::spawn(yiren_testkit::Engine::Sqlite).await;
    let owner = app.setup_owner(OWNER, PW).await;
    let token = app
        .api_token(&owner, &["products:read", "products:write", "events:read"])
        .await;
    let api = reqwest::Client::new();
    let url = |p: &str| app.url(&format!("/api/v1{p}"));
    let r = api
        .post(url("/products"))
        .bearer_auth(&token)
        .json(&shirt("亚麻衬衫"))
        .send()
        .await
        .unwrap();
    let id = r.json::<serde_json::Value>().await.unwrap()["product"]["id"]
        .as_i64()
        .unwrap();
    let r = api
        .post(url(&format!("/products/{id}/images")))
        .bearer_auth(&token)
        .json(&json!({"image": {"embed_url": "https://www.bilibili.com/video/BV1GJ411x7h7", "alt": "穿着效果"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = api
        .post(url("/collections"))
        .bearer_auth(&token)
        .json(&json!({"collection": {"title": "夏季", "collection_type": "automatic", "rules": [{"column": "tag", "condition": "夏季"}]}}))
        .send()
        .await
        .unwrap();
    let cid = r.json::<serde_json::Value>().await.unwrap()["collection"]["id"]
        .as_i64()
        .unwrap();
    let product: serde_json::Value = api
        .get(url(&format!("/products/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let collection: serde_json::Value = api
        .get(url(&format!("/collections/{cid}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events: serde_json::Value = api
        .get(url("/events?limit=3"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    insta::assert_json_snapshot!("product", product, {
        ".product.id" => "[id]",
        ".product.variants[].id" => "[id]",
        ".product.variants[].product_id" => "[id]",
        ".product.media[].id" => "[id]",
        ".product.media[].product_id" => "[id]",
        ".**.created_at" => "[time]",
        ".**.updated_at" => "[time]",
    });
    insta::assert_json_snapshot!("collection", collection, {
        ".collection.id" => "[id]",
        ".collection.product_ids[]" => "[id]",
        ".collection.created_at" => "[time]",
        ".collection.updated_at" => "[time]",
    });
    insta::assert_json_snapshot!("events", events, {
        ".events[].id" => "[id]",
        ".events[].subject_id" => "[id]",
        ".events[].payload.id" => "[id]",
        ".events[].payload.updated_at" => "[time]",
        ".events[].created_at" => "[time]",
    });
    app.stop().await;
}
