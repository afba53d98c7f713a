//! `/api/v1/orders` on both engines: scopes, the Shopify-like shape, server-side prices (anything
//! sent as a price is ignored), cursor pages, refunds never above what was received, sending and
//! cancelling — and RELIABILITY IDEM-1: 100 `Idempotency-Key`s × 10 simultaneous replays of
//! `POST /orders` and of `POST /orders/{id}/refunds` make exactly 100 orders and 100 refunds; every
//! completed replay has the first answer's status and body byte for byte; a replay that meets
//! the first still running gets 409 (retryable), never a second execution.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use yiren_core::catalog::Kind;
use yiren_testkit::{both_engines, product, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

both_engines! {
    async fn orders_are_created_read_refunded_sent_and_cancelled_through_the_api(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&owner, &["orders:read", "orders:write"]).await;
        let reader = app.api_token(&owner, &["products:read"]).await;
        let ctx = &app.state.ctx;
        let v = product(ctx, "tea", Kind::Physical, &[("T-1", 16_800, 10)]).await[0];
        let rate = yiren_core::checkout::ShippingRate { name: "顺丰".into(), regions: vec!["CN".into()], rule: yiren_core::pricing::Shipping::Flat { price: 0 } };
        yiren_core::checkout::save_config(ctx, &yiren_core::checkout::Config { shipping: vec![rate], ..Default::default() }).await.unwrap();
        let c = app.client();
        let api = |path: &str| app.url(&format!("/api/v1{path}"));

        // Scopes.
        assert_eq!(c.get(api("/orders")).bearer_auth(&reader).send().await.unwrap().status(), 403);
        assert_eq!(c.get(api("/orders")).send().await.unwrap().status(), 401);

        // Create: the server prices it; the price sent is not read.
        let body = json!({"order": {"email": "Api@Example.com", "line_items": [{"variant_id": v, "quantity": 2, "price": "0.01"}],
            "total_price": "0.01", "shipping_method": "顺丰", "shipping_address": {"name": "李四", "phone": "13900000000", "country": "CN", "province": "浙江省", "city": "杭州市", "district": "西湖区", "line1": "龙井路 1 号"}}});
        let r = c.post(api("/orders")).bearer_auth(&token).json(&body).send().await.unwrap();
        let status = r.status();
        let o: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{o}");
        let o = &o["order"];
        assert_eq!((o["name"].as_str(), o["total_price"].as_str(), o["financial_status"].as_str()), (Some("#1001"), Some("336.00"), Some("pending")));
        assert_eq!((o["email"].as_str(), o["line_items"][0]["price"].as_str(), o["line_items"][0]["quantity"].as_i64()), (Some("api@example.com"), Some("168.00"), Some(2)));
        assert_eq!(o["fulfillment_status"], Value::Null);
        assert_eq!(o["shipping_address"]["district"], "西湖区");
        let id = o["id"].as_i64().unwrap();
        // Refused: more than the stock, an unknown variant, a bad email.
        for (bad, status) in [
            (json!({"order": {"email": "a@example.com", "line_items": [{"variant_id": v, "quantity": 50}]}}), 422),
            (json!({"order": {"email": "a@example.com", "line_items": [{"variant_id": 1, "quantity": 1}]}}), 422),
            (json!({"order": {"email": "not an email", "line_items": [{"variant_id": v, "quantity": 1}]}}), 422),
        ] {
            let r = c.post(api("/orders")).bearer_auth(&token).json(&bad).send().await.unwrap();
            assert!(r.status() == status || r.status() == 409, "{bad}: {}", r.status());
        }

        // Paid by the owner's confirmation, then refunded in part, never above what came in.
        yiren_core::order::confirm_manual(ctx, id, OWNER).await.unwrap();
        let refund = |amount: &str, key: &str| c.post(api(&format!("/orders/{id}/refunds"))).bearer_auth(&token).header("idempotency-key", key).json(&json!({"refund": {"amount": amount, "note": "破损"}})).send();
        let r = refund("36.00", "r1").await.unwrap();
        assert_eq!(r.status(), 201);
        let o: Value = r.json().await.unwrap();
        assert_eq!((o["order"]["financial_status"].as_str(), o["order"]["total_refunded"].as_str()), (Some("partially_refunded"), Some("36.00")));
        assert_eq!(o["order"]["transactions"].as_array().unwrap().len(), 2);
        let over = refund("300.01", "r2").await.unwrap();
        assert_eq!(over.status(), 422);
        // The longest Idempotency-Key the API takes still names one refund.
        let long = "k".repeat(255);
        assert_eq!(refund("1.00", &long).await.unwrap().status(), 201);
        // Sent (once: nothing is left to send the second time).
        let r = c.post(api(&format!("/orders/{id}/fulfillments"))).bearer_auth(&token).json(&json!({"fulfillment": {"tracking_company": "顺丰", "tracking_number": "SF1"}})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.json::<Value>().await.unwrap()["order"]["fulfillment_status"], "fulfilled");
        let again = c.post(api(&format!("/orders/{id}/fulfillments"))).bearer_auth(&token).json(&json!({})).send().await.unwrap();
        assert_eq!(again.status(), 409);

        // A second order, cancelled; pages of one.
        let r = c.post(api("/orders")).bearer_auth(&token).json(&json!({"order": {"email": "b@example.com", "line_items": [{"variant_id": v, "quantity": 1}], "shipping_method": "顺丰", "shipping_address": body["order"]["shipping_address"]}})).send().await.unwrap();
        let second = r.json::<Value>().await.unwrap()["order"]["id"].as_i64().unwrap();
        let r = c.post(api(&format!("/orders/{second}/cancel"))).bearer_auth(&token).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["order"]["cancelled"], true);
        let first = c.get(api("/orders?limit=1")).bearer_auth(&token).send().await.unwrap();
        let link = first.headers()["link"].to_str().unwrap().to_string();
        assert_eq!(first.json::<Value>().await.unwrap()["orders"][0]["id"].as_i64(), Some(second));
        let next = link.split('<').nth(1).unwrap().split('>').next().unwrap().to_string();
        let page2: Value = c.get(&next).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(page2["orders"][0]["id"].as_i64(), Some(id));
        assert_eq!(c.get(api("/orders/1")).bearer_auth(&token).send().await.unwrap().status(), 404);
        assert!(yiren_core::order::audit(ctx).await.unwrap().is_empty());
    }

    async fn idempotent_posts_run_once_per_key(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = Arc::new(app.api_token(&owner, &["orders:read", "orders:write"]).await);
        let ctx = &app.state.ctx;
        let v = product(ctx, "ebook", Kind::Digital, &[("E-1", 2_900, 100_000)]).await[0];
        let base = Arc::new(app.base.clone());

        /// `times` simultaneous sends per key; returns (key, status, body) of every answer.
        async fn storm(base: Arc<String>, token: Arc<String>, reqs: Vec<(String, String, Value)>, times: usize) -> Vec<(String, u16, String)> {
            let c = reqwest::Client::new();
            stream::iter(reqs.into_iter().flat_map(|r| std::iter::repeat_n(r, times)))
                .map(|(key, path, body)| {
                    let (c, base, token) = (c.clone(), base.clone(), token.clone());
                    async move {
                        let r = c.post(format!("{base}/api/v1{path}")).bearer_auth(token.as_str()).header("idempotency-key", &key).json(&body).send().await.unwrap();
                        let status = r.status().as_u16();
                        (key, status, r.text().await.unwrap())
                    }
                })
                .buffer_unordered(50)
                .collect()
                .await
        }
        fn check(answers: &[(String, u16, String)], ok: u16) {
            let mut first: HashMap<&str, (u16, &str)> = HashMap::new();
            for (key, status, body) in answers {
                if *status == 409 {
                    assert!(body.contains("\"code\""), "a 409 is the in-flight answer: {body}");
                    continue;
                }
                assert_eq!(*status, ok, "{key}: {body}");
                let seen = first.entry(key).or_insert((*status, body));
                assert_eq!((seen.0, seen.1), (*status, body.as_str()), "{key}: replays differ");
            }
            assert_eq!(first.len(), 100, "every key answered at least once");
            let in_flight = answers.iter().filter(|a| a.1 == 409).count();
            eprintln!("{} answers, {in_flight} of them 409 (first request still running)", answers.len());
        }

        let orders: Vec<(String, String, Value)> = (0..100)
            .map(|i| (format!("order-{i}"), "/orders".to_string(), json!({"order": {"email": format!("k{i}@example.com"), "line_items": [{"variant_id": v, "quantity": 1 + i % 3}]}})))
            .collect();
        let answers = storm(base.clone(), token.clone(), orders.clone(), 10).await;
        check(&answers, 201);
        // Once everything has finished, every key replays its stored first answer exactly.
        let mut after = storm(base.clone(), token.clone(), orders, 1).await;
        after.extend(answers.iter().filter(|a| a.1 != 409).cloned());
        check(&after, 201);
        assert_eq!(after.iter().filter(|a| a.1 == 409).count(), 0);
        let all = yiren_core::order::list(ctx, None, 100, 0).await.unwrap().len() + yiren_core::order::list(ctx, None, 100, 100).await.unwrap().len();
        assert_eq!(all, 100, "one order per key");
        // A sequential replay after the storm: the stored first answer, byte for byte.
        let c = reqwest::Client::new();
        let again = c.post(format!("{base}/api/v1/orders")).bearer_auth(token.as_str()).header("idempotency-key", "order-7").json(&json!({"order": {"email": "k7@example.com", "line_items": [{"variant_id": v, "quantity": 2}]}})).send().await.unwrap();
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let stored = answers.iter().find(|(k, s, _)| k == "order-7" && *s == 201).unwrap();
        assert_eq!(again.text().await.unwrap(), stored.2);

        // Refunds: every order paid, then 100 keys × 10 replays of a ¥1.00 refund, one key per order.
        let ids: Vec<i64> = yiren_core::order::list(ctx, None, 100, 0).await.unwrap().iter().map(|o| o.id).collect();
        for id in &ids {
            yiren_core::order::confirm_manual(ctx, *id, OWNER).await.unwrap();
        }
        let refunds: Vec<(String, String, Value)> = ids
            .iter()
            .map(|id| (format!("refund-{id}"), format!("/orders/{id}/refunds"), json!({"refund": {"amount": "1.00"}})))
            .collect();
        let answers = storm(base.clone(), token.clone(), refunds.clone(), 10).await;
        check(&answers, 201);
        let mut after = storm(base.clone(), token.clone(), refunds, 1).await;
        after.extend(answers.iter().filter(|a| a.1 != 409).cloned());
        check(&after, 201);
        let mut refunded = HashSet::new();
        for id in &ids {
            let o = yiren_core::order::get(ctx, *id).await.unwrap();
            let n = o.transactions.iter().filter(|t| t.kind == "refund").count();
            assert_eq!((n, o.row.refunded), (1, 100), "order {id}: one refund of ¥1.00");
            refunded.insert(*id);
        }
        assert_eq!(refunded.len(), 100);
        assert!(yiren_core::order::audit(ctx).await.unwrap().is_empty());
    }

    async fn an_orders_transactions_refunds_and_fulfilments_have_their_own_lists(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&owner, &["orders:read", "orders:write"]).await;
        let reader = app.api_token(&owner, &["orders:read"]).await;
        let ctx = &app.state.ctx;
        let tea = product(ctx, "tea", Kind::Digital, &[("T", 5_000, 20)]).await[0];
        let cup = product(ctx, "cup", Kind::Digital, &[("C", 2_000, 20)]).await[0];
        let c = app.client();
        let api = |path: &str| app.url(&format!("/api/v1{path}"));
        let r = c.post(api("/orders")).bearer_auth(&token).json(&json!({"order": {"email": "t@example.com", "line_items": [{"variant_id": tea, "quantity": 2}, {"variant_id": cup, "quantity": 3}]}})).send().await.unwrap();
        let id = r.json::<Value>().await.unwrap()["order"]["id"].as_i64().unwrap();
        let post = |path: String, body: Value, t: String| { let c = c.clone(); async move { let r = c.post(path).bearer_auth(t).json(&body).send().await.unwrap(); (r.status().as_u16(), r.json::<Value>().await.unwrap()) } };
        let get = |path: String| { let c = c.clone(); let t = reader.clone(); async move { let r = c.get(path).bearer_auth(t).send().await.unwrap(); assert_eq!(r.status(), 200); r.json::<Value>().await.unwrap() } };

        // Capture: only `capture`, only the whole total, only with the write scope; once.
        let capture = |amount: &str| json!({"transaction": {"kind": "capture", "amount": amount}});
        let tx_url = api(&format!("/orders/{id}/transactions"));
        assert_eq!(post(tx_url.clone(), capture("160.00"), reader.clone()).await.0, 403);
        assert_eq!(post(tx_url.clone(), json!({"transaction": {"kind": "refund"}}), token.clone()).await.0, 422);
        let (s, v) = post(tx_url.clone(), capture("159.99"), token.clone()).await;
        assert_eq!(s, 422, "{v}");
        assert_eq!(get(api(&format!("/orders/{id}"))).await["order"]["financial_status"], "pending");
        let (s, v) = post(tx_url.clone(), capture("160.00"), token.clone()).await;
        assert_eq!((s, v["transaction"]["kind"].as_str(), v["transaction"]["amount"].as_str(), v["transaction"]["authorization"].as_str()),
            (201, Some("sale"), Some("160.00"), Some(format!("confirm:{id}").as_str())), "{v}");
        let (s, again) = post(tx_url.clone(), json!({"transaction": {"kind": "capture"}}), token.clone()).await;
        assert_eq!((s, &again["transaction"]["id"]), (200, &v["transaction"]["id"]));

        // A refund by line, one by amount, a shipment of part: each in its own list and the order.
        let (s, _) = post(api(&format!("/orders/{id}/refunds")), json!({"refund": {"refund_line_items": [{"line_item_id": 2, "quantity": 1}], "restock": true, "note": "碎了"}}), token.clone()).await;
        assert_eq!(s, 201);
        let (s, _) = post(api(&format!("/orders/{id}/refunds")), json!({"refund": {"amount": "5.00"}}), token.clone()).await;
        assert_eq!(s, 201);
        let (s, _) = post(api(&format!("/orders/{id}/fulfillments")), json!({"fulfillment": {"tracking_company": "顺丰", "tracking_number": "SF9", "line_items": [{"line_item_id": 1, "quantity": 2}]}}), token.clone()).await;
        assert_eq!(s, 201);
        let refunds = get(api(&format!("/orders/{id}/refunds"))).await;
        let rs = refunds["refunds"].as_array().unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!((rs[0]["amount"].as_str(), rs[0]["restock"].as_bool(), rs[0]["note"].as_str()), (Some("20.00"), Some(true), Some("碎了")));
        assert_eq!(rs[0]["refund_line_items"], json!([{"line_item_id": 2, "quantity": 1}]));
        assert_eq!((rs[1]["amount"].as_str(), rs[1]["refund_line_items"].as_array().unwrap().len()), (Some("5.00"), 0));
        let txs = get(tx_url.clone()).await;
        let ts = txs["transactions"].as_array().unwrap();
        assert_eq!(ts.iter().map(|t| t["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["sale", "refund", "refund"]);
        assert_eq!(rs[0]["transaction_id"], ts[1]["id"]);
        assert_eq!(ts[1]["status"], "manual");
        let sent = get(api(&format!("/orders/{id}/fulfillments"))).await;
        assert_eq!(sent["fulfillments"], json!([{"id": sent["fulfillments"][0]["id"], "tracking_company": "顺丰", "tracking_number": "SF9",
            "line_items": [{"line_item_id": 1, "quantity": 2}], "created_at": sent["fulfillments"][0]["created_at"]}]));
        let o = get(api(&format!("/orders/{id}"))).await;
        assert_eq!((o["order"]["refunds"].as_array().unwrap().len(), o["order"]["fulfillments"].as_array().unwrap().len()), (2, 1));
        assert_eq!(o["order"]["fulfillment_status"], "partial");

        // Only a manual order is captured by hand; unknown orders are 404.
        let r = c.get(api("/orders/1/transactions")).bearer_auth(&reader).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert!(yiren_core::order::audit(ctx).await.unwrap().is_empty());
    }

    async fn discounts_are_managed_through_the_api(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&owner, &["discounts:read", "discounts:write", "orders:read", "orders:write"]).await;
        let reader = app.api_token(&owner, &["discounts:read"]).await;
        let ctx = &app.state.ctx;
        let tea = product(ctx, "tea", Kind::Digital, &[("T", 10_000, 20)]).await[0];
        let cup = product(ctx, "cup", Kind::Digital, &[("C", 10_000, 20)]).await[0];
        let tea_product = yiren_core::catalog::variant_product(ctx, tea).await.unwrap();
        let c = app.client();
        let api = |path: &str| app.url(&format!("/api/v1{path}"));
        let send = |m: reqwest::Method, path: String, body: Option<Value>, t: String| { let c = c.clone(); async move {
            let mut r = c.request(m, path).bearer_auth(t).header("accept-language", "en");
            if let Some(b) = body { r = r.json(&b); }
            let r = r.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        } };
        use reqwest::Method as M;

        // Create: 20 % off the tea only, for one use per customer.
        let spring = json!({"discount": {"code": "spring", "title": "春茶", "kind": "percent", "value": "20", "applies_to": "products",
            "entitled_ids": [tea_product], "usage_limit_per_customer": 1}});
        assert_eq!(send(M::POST, api("/discounts"), Some(spring.clone()), reader.clone()).await.0, 403);
        let (s, d) = send(M::POST, api("/discounts"), Some(spring.clone()), token.clone()).await;
        assert_eq!(s, 201, "{d}");
        let d = &d["discount"];
        assert_eq!((d["code"].as_str(), d["value"].as_str(), d["status"].as_str(), d["usage_count"].as_i64()), (Some("SPRING"), Some("20"), Some("active"), Some(0)));
        assert_eq!(d["entitled_ids"], json!([tea_product]));
        let id = d["id"].as_i64().unwrap();
        // Refused: the same code, a product that does not exist, a bad date, an unknown field.
        let (s, v) = send(M::POST, api("/discounts"), Some(spring.clone()), token.clone()).await;
        assert_eq!(s, 409, "{v}");
        let mut ghost = spring.clone();
        ghost["discount"]["code"] = json!("GHOST");
        ghost["discount"]["entitled_ids"] = json!([1]);
        let (s, v) = send(M::POST, api("/discounts"), Some(ghost), token.clone()).await;
        assert_eq!(s, 422, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("does not exist"), "{v}");
        let (s, _) = send(M::POST, api("/discounts"), Some(json!({"discount": {"title": "x", "kind": "percent", "value": "10", "ends_at": "tomorrow"}})), token.clone()).await;
        assert_eq!(s, 422);
        let (s, _) = send(M::POST, api("/discounts"), Some(json!({"discount": {"title": "x", "kind": "percent", "value": "10", "price": "0"}})), token.clone()).await;
        assert_eq!(s, 422);

        // It applies to the tea, not the cup.
        let order = |code: &str, email: &str| json!({"order": {"email": email, "discount_code": code, "line_items": [{"variant_id": tea, "quantity": 1}, {"variant_id": cup, "quantity": 1}]}});
        let (s, o) = send(M::POST, api("/orders"), Some(order("spring", "a@example.com")), token.clone()).await;
        assert_eq!((s, o["order"]["total_discounts"].as_str(), o["order"]["total_price"].as_str()), (201, Some("20.00"), Some("180.00")), "{o}");
        let (_, d) = send(M::GET, api(&format!("/discounts/{id}")), None, reader.clone()).await;
        assert_eq!(d["discount"]["usage_count"], 1);

        // Update: a limit below the uses is refused; a window that has ended closes the code.
        let mut change = spring.clone();
        change["discount"]["usage_limit"] = json!(0);
        assert_eq!(send(M::PUT, api(&format!("/discounts/{id}")), Some(change.clone()), token.clone()).await.0, 422);
        change["discount"]["usage_limit"] = json!(1);
        change["discount"]["code"] = json!("SPRING");
        let (s, v) = send(M::PUT, api(&format!("/discounts/{id}")), Some(change.clone()), token.clone()).await;
        assert_eq!(s, 200, "{v}");
        change["discount"]["usage_limit"] = Value::Null;
        change["discount"]["ends_at"] = json!("2001-01-01T00:00:00Z");
        let (s, v) = send(M::PUT, api(&format!("/discounts/{id}")), Some(change.clone()), token.clone()).await;
        assert_eq!((s, v["discount"]["ends_at"].as_str(), v["discount"]["usage_limit"].as_i64()), (200, Some("2001-01-01T00:00:00Z"), None));
        let (s, v) = send(M::POST, api("/orders"), Some(order("spring", "b@example.com")), token.clone()).await;
        assert_eq!(s, 422, "{v}");
        // Turned off through the API, it stays off.
        change["discount"]["ends_at"] = Value::Null;
        change["discount"]["status"] = json!("disabled");
        let (_, v) = send(M::PUT, api(&format!("/discounts/{id}")), Some(change.clone()), token.clone()).await;
        assert_eq!(v["discount"]["status"], "disabled");
        // A change that does not name the status leaves it as it is.
        change["discount"].as_object_mut().unwrap().remove("status");
        change["discount"]["title"] = json!("春茶（停）");
        let (_, v) = send(M::PUT, api(&format!("/discounts/{id}")), Some(change), token.clone()).await;
        assert_eq!((v["discount"]["status"].as_str(), v["discount"]["title"].as_str()), (Some("disabled"), Some("春茶（停）")));
        assert_eq!(send(M::POST, api("/orders"), Some(order("spring", "b@example.com")), token.clone()).await.0, 422);

        // Delete: refused while an order holds a use; an unused one goes.
        let (s, v) = send(M::DELETE, api(&format!("/discounts/{id}")), None, token.clone()).await;
        assert_eq!(s, 409, "{v}");
        let (_, auto) = send(M::POST, api("/discounts"), Some(json!({"discount": {"title": "满 500 包邮", "kind": "free_shipping", "prerequisite_subtotal": "500.00"}})), token.clone()).await;
        assert_eq!((auto["discount"]["code"].clone(), auto["discount"]["prerequisite_subtotal"].as_str()), (Value::Null, Some("500.00")));
        // Pages of one, newest first.
        let r = c.get(api("/discounts?limit=1")).bearer_auth(&reader).send().await.unwrap();
        let link = r.headers()["link"].to_str().unwrap().to_string();
        assert_eq!(r.json::<Value>().await.unwrap()["discounts"][0]["id"], auto["discount"]["id"]);
        let next = link.split('<').nth(1).unwrap().split('>').next().unwrap().to_string();
        let r = c.get(&next).bearer_auth(&reader).send().await.unwrap();
        assert!(r.headers().get("link").is_none());
        assert_eq!(r.json::<Value>().await.unwrap()["discounts"][0]["id"].as_i64(), Some(id));
        let auto_id = auto["discount"]["id"].as_i64().unwrap();
        assert_eq!(send(M::DELETE, api(&format!("/discounts/{auto_id}")), None, token.clone()).await.0, 204);
        assert_eq!(send(M::GET, api(&format!("/discounts/{auto_id}")), None, reader.clone()).await.0, 404);
    }
}
