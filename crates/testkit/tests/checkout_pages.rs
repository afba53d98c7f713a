//! The checkout over real HTTP, on both engines: a guest fills the cart, checks out with manual
//! payment (every amount from the server, whatever the form says — MONEY-2), sees how to pay on
//! the order page (reachable only with its key), and the owner confirms the payment in admin
//! (once) or cancels; the owner's checkout settings round-trip through their text form.

use yiren_core::catalog::{self, Kind};
use yiren_testkit::{both_engines, field_of, location, product, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

async fn tea(app: &TestApp) -> i64 {
    product(
        &app.state.ctx,
        "longjing",
        Kind::Physical,
        &[("LJ-250", 16_800, 5)],
    )
    .await[0]
}

both_engines! {
    async fn a_guest_checks_out_and_the_owner_confirms_the_manual_payment(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let v = tea(&app).await;

        // The owner sets up shipping, tax and how to be paid.
        let csrf = app.csrf(&owner, "/admin/checkout").await;
        let bad = owner.post(app.url("/admin/checkout")).form(&[("_csrf", csrf.as_str()), ("hold_minutes", "30"), ("expire_hours", "48"), ("download_limit", "5"), ("shipping", "顺丰 | CN | teleport 1"), ("taxes", ""), ("wechat", ""), ("alipay", ""), ("instructions", "")]).send().await.unwrap();
        assert_eq!(bad.status(), 422);
        assert!(bad.text().await.unwrap().contains("每行运费规则的格式"));
        let saved = owner.post(app.url("/admin/checkout")).form(&[
            ("_csrf", csrf.as_str()), ("hold_minutes", "30"), ("expire_hours", "48"), ("download_limit", "5"),
            ("shipping", "顺丰 | CN | by_weight 1000 12.00 500 3.00\nAbroad | * | flat 90.00"),
            ("taxes", "CN | 13% | included"),
            ("wechat", "wxp://f2f0example"), ("alipay", ""), ("instructions", "招商银行 6225 0000 0000 0000（张三）"),
        ]).send().await.unwrap();
        assert_eq!(location(&saved), "/admin/checkout?notice=settings.saved");
        let page = owner.get(app.url("/admin/checkout")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("顺丰 | CN | by_weight 1000 12.00 500 3.00") && page.contains("CN | 13% | included"), "{page}");

        // A guest: cart → checkout. An empty cart has nothing to check out.
        let c = app.client();
        assert_eq!(location(&c.get(app.url("/checkout")).send().await.unwrap()), "/cart");
        c.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "2".into())]).send().await.unwrap();
        let cart = c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap();
        assert!(cart.contains("href=\"/checkout\""));
        let form = c.get(app.url("/checkout")).send().await.unwrap();
        assert_eq!(form.headers()["cache-control"], "no-store");
        let form = form.text().await.unwrap();
        assert!(form.contains("¥336.00") && form.contains("顺丰"), "{form}");
        let token = field_of(&form, "token");
        let mut fields: Vec<(&str, String)> = vec![
            ("token", token.clone()), ("email", "Buyer@Example.com".into()), ("name", "李四".into()), ("phone", "13900000000".into()),
            ("country", "CN".into()), ("province", "浙江省".into()), ("city", "杭州市".into()), ("district", "西湖区".into()),
            ("line1", "龙井路 1 号".into()), ("shipping", "顺丰".into()),
            // Never read: the server prices everything.
            ("price", "0.01".into()), ("total", "0".into()), ("currency", "USD".into()), ("discount", "100%".into()),
        ];
        // A cross-site post is refused before anything is read.
        let forged = c.post(app.url("/checkout")).header("origin", "https://evil.example").form(&fields).send().await.unwrap();
        assert_eq!(forged.status(), 403);
        let opaque = c.post(app.url("/checkout")).header("origin", "null").form(&fields).send().await.unwrap();
        assert_eq!(opaque.status(), 403, "an opaque origin without the browser's word");
        // A missing district (mainland China) comes back with the form filled in.
        let mut partial = fields.clone();
        partial.retain(|(k, _)| *k != "district");
        let r = c.post(app.url("/checkout")).form(&partial).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let body = r.text().await.unwrap();
        assert!(body.contains("请填写完整的收货地址") && body.contains("value=\"龙井路 1 号\"") && body.contains(&token), "{body}");
        fields.push(("district", "西湖区".into()));
        // Chromium posts the form of a no-referrer page with `Origin: null` and its own
        // `Sec-Fetch-Site: same-origin`: that is the shop's own form.
        let placed = c.post(app.url("/checkout")).header("origin", "null").header("sec-fetch-site", "same-origin").form(&fields).send().await.unwrap();
        assert_eq!(placed.status(), 303);
        let order_url = location(&placed);
        assert!(order_url.starts_with("/orders/") && order_url.contains("?key="), "{order_url}");
        // The cart is emptied; the same form again finds the same order.
        assert!(c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap().contains("购物车是空的"));
        c.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "2".into())]).send().await.unwrap();
        let again = c.post(app.url("/checkout")).form(&fields).send().await.unwrap();
        assert_eq!(location(&again), order_url);

        // The order page: 2 × 168.00 + 12.00 shipping (2 × 500 g, within the first 1 kg), 13 % included; how to pay.
        let r = c.get(app.url(&order_url)).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        let page = r.text().await.unwrap();
        assert!(page.contains("订单 #1001") && page.contains("等待付款"), "{page}");
        assert!(page.contains("<strong id=\"order-total\">¥348.00</strong>") && page.contains("¥38.65"), "{page}");
        assert!(page.contains("请支付 ¥348.00") && page.contains("<svg") && page.contains("招商银行"), "{page}");
        assert!(!page.contains("wxp://f2f0example"), "the link is drawn, not printed");
        // Without the right key, no order (and no hint that it exists).
        let id = order_url.trim_start_matches("/orders/").split('?').next().unwrap().to_string();
        for wrong in [format!("/orders/{id}"), format!("/orders/{id}?key=00"), format!("/orders/{}?{}", id.parse::<i64>().unwrap() + 1, order_url.split('?').nth(1).unwrap())] {
            assert_eq!(c.get(app.url(&wrong)).send().await.unwrap().status(), 404, "{wrong}");
        }

        // The owner sees it, confirms the payment once.
        let list = owner.get(app.url("/admin/orders")).send().await.unwrap().text().await.unwrap();
        assert!(list.contains("#1001") && list.contains("buyer@example.com") && list.contains("¥348.00"), "{list}");
        let detail_url = format!("/admin/orders/{id}");
        let detail = owner.get(app.url(&detail_url)).send().await.unwrap().text().await.unwrap();
        assert!(detail.contains("confirm-form") && detail.contains("西湖区") && detail.contains("库存保留中"), "{detail}");
        let csrf = app.csrf(&owner, &detail_url).await;
        let confirm = |csrf: String| owner.post(app.url(&format!("{detail_url}/confirm"))).form(&[("_csrf", csrf)]).send();
        assert_eq!(location(&confirm(csrf.clone()).await.unwrap()), format!("{detail_url}?notice=orders.confirmed"));
        assert_eq!(location(&confirm(csrf.clone()).await.unwrap()), format!("{detail_url}?notice=orders.already_confirmed"));
        let detail = owner.get(app.url(&detail_url)).send().await.unwrap().text().await.unwrap();
        assert!(detail.contains("已付款") && detail.contains("confirm:") && !detail.contains("confirm-form") && detail.contains("收到付款"), "{detail}");
        let page = c.get(app.url(&order_url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("已付款，谢谢！") && !page.contains("请支付"), "{page}");
        // Without a CSRF token nothing happens.
        assert_eq!(owner.post(app.url(&format!("{detail_url}/cancel"))).form(&[("restock", "1")]).send().await.unwrap().status(), 403);
        // Cancelling the paid order with restock: flagged for a refund, units back.
        let cancelled = owner.post(app.url(&format!("{detail_url}/cancel"))).form(&[("_csrf", csrf.as_str()), ("restock", "1")]).send().await.unwrap();
        assert_eq!(location(&cancelled), format!("{detail_url}?notice=orders.cancelled"));
        let detail = owner.get(app.url(&detail_url)).send().await.unwrap().text().await.unwrap();
        assert!(detail.contains("需要退款") && !detail.contains("cancel-form"), "{detail}");
        assert_eq!(yiren_store::order::stock_of(app.state.ctx.db.read(), v).await.unwrap(), (5, 0));
        assert!(yiren_core::order::audit(&app.state.ctx).await.unwrap().is_empty());
        // A stranger's session is not the owner's.
        assert!(location(&app.client().get(app.url(&detail_url)).send().await.unwrap()).starts_with("/admin/sign-in?"));
        app.stop().await;
    }

    async fn sold_out_and_bad_codes_come_back_to_the_form(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let v = tea(&app).await;
        // The owner creates a code in admin, then turns it off.
        let csrf = app.csrf(&owner, "/admin/discounts").await;
        let form = |value: &str| vec![("_csrf", csrf.clone()), ("title", "新茶九折".into()), ("code", "tea10".into()), ("kind", "percent".into()), ("value", value.into()), ("usage_limit", "1".into())];
        let bad = owner.post(app.url("/admin/discounts")).form(&form("ten")).send().await.unwrap();
        assert_eq!(bad.status(), 422);
        assert!(bad.text().await.unwrap().contains("value=\"新茶九折\""), "the form comes back filled in");
        let made = owner.post(app.url("/admin/discounts")).form(&form("10")).send().await.unwrap();
        assert_eq!(location(&made), "/admin/discounts?notice=discounts.created");
        let page = owner.get(app.url("/admin/discounts")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("TEA10") && page.contains("10%") && page.contains("0 / 1"), "{page}");
        let d = yiren_core::discount::list(&app.state.ctx).await.unwrap().remove(0);
        let off = owner.post(app.url(&format!("/admin/discounts/{}/active", d.id))).form(&[("_csrf", csrf.as_str()), ("active", "0")]).send().await.unwrap();
        assert_eq!(off.status(), 303);
        assert_eq!(yiren_core::discount::get(&app.state.ctx, d.id).await.unwrap().status, "disabled");
        let c = app.client();
        c.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "2".into())]).send().await.unwrap();
        let token = field_of(&c.get(app.url("/checkout")).send().await.unwrap().text().await.unwrap(), "token");
        // A code that is turned off is no code.
        let fields = [("token", token.as_str()), ("email", "x@example.com"), ("name", "王五"), ("phone", "1"), ("country", "CN"), ("province", "北京市"), ("city", "北京市"), ("district", "朝阳区"), ("line1", "1 号"), ("code", "TEA10")];
        let r = c.post(app.url("/checkout")).form(&fields).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("优惠码不存在"));
        // Someone else buys the stock meanwhile: 409 with the reason, nothing placed.
        catalog::adjust(&app.state.ctx, v, -4, "sold in the shop", "test").await.unwrap();
        let mut no_code = fields.to_vec();
        no_code.retain(|(k, _)| *k != "code");
        let r = c.post(app.url("/checkout")).form(&no_code).send().await.unwrap();
        assert_eq!(r.status(), 409);
        assert!(r.text().await.unwrap().contains("售罄"));
        assert!(yiren_core::order::list(&app.state.ctx, None, 10, 0).await.unwrap().is_empty());
        app.stop().await;
    }

    async fn the_owner_aims_dates_edits_and_deletes_discounts_in_admin(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let ctx = &app.state.ctx;
        tea(&app).await;
        let csrf = app.csrf(&owner, "/admin/discounts").await;
        let tz = yiren_core::settings::load(ctx).await.unwrap().time_zone;
        let base = |targets: &str, ends: &str| vec![("_csrf", csrf.clone()), ("title", "龙井八折".to_string()), ("code", "lj20".into()), ("kind", "percent".into()),
            ("value", "20".into()), ("applies", "products".into()), ("targets", targets.into()), ("starts_at", "2030-05-01T09:00".into()), ("ends_at", ends.into())];
        // An unknown handle and an end before the start come back to the form with the reason.
        let r = owner.post(app.url("/admin/discounts")).form(&base("longjing\nno-such-tea", "")).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let page = r.text().await.unwrap();
        assert!(page.contains("不存在") && page.contains("no-such-tea"), "{page}");
        let r = owner.post(app.url("/admin/discounts")).form(&base("longjing", "2030-04-01T09:00")).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let r = owner.post(app.url("/admin/discounts")).form(&base("longjing", "2030-05-08T21:30")).send().await.unwrap();
        assert_eq!(location(&r), "/admin/discounts?notice=discounts.created");
        let d = yiren_core::discount::list(ctx).await.unwrap().remove(0);
        let product_id = catalog::ids_by_handle(ctx, &["longjing"]).await.unwrap()[0];
        assert_eq!((d.applies.as_str(), d.targets.clone()), ("products", format!("[{product_id}]")));
        let at = |s: &str| yiren_core::reach::broadcast::parse_local(s, &tz).unwrap();
        assert_eq!((d.starts_at, d.ends_at), (at("2030-05-01T09:00"), at("2030-05-08T21:30")));
        // The list says when it starts; the edit page shows it as it was entered.
        let list = owner.get(app.url("/admin/discounts")).send().await.unwrap().text().await.unwrap();
        assert!(list.contains("2030-05-01 09:00") && list.contains("开始") && list.contains("指定商品"), "{list}");
        let edit = owner.get(app.url(&format!("/admin/discounts/{}", d.id))).send().await.unwrap().text().await.unwrap();
        assert!(edit.contains("value=\"2030-05-08T21:30\"") && edit.contains(">longjing</textarea>") && edit.contains("value=\"LJ20\""), "{edit}");
        // Turned off in the list, then edited: still off, with the new settings.
        owner.post(app.url(&format!("/admin/discounts/{}/active", d.id))).form(&[("_csrf", csrf.as_str()), ("active", "0")]).send().await.unwrap();
        let mut changed = base("", "");
        changed.retain(|(k, _)| !["applies", "targets", "ends_at"].contains(k));
        changed.push(("value", "25".into()));
        changed.retain(|(k, v)| *k != "value" || v == "25");
        let r = owner.post(app.url(&format!("/admin/discounts/{}", d.id))).form(&changed).send().await.unwrap();
        assert_eq!(location(&r), "/admin/discounts?notice=discounts.saved");
        let d = yiren_core::discount::get(ctx, d.id).await.unwrap();
        assert_eq!((d.value, d.applies.as_str(), d.ends_at, d.status.as_str()), (2_500, "all", None, "disabled"));
        // Unused, it can be deleted; another discount's page that does not exist is 404.
        let r = owner.post(app.url(&format!("/admin/discounts/{}/delete", d.id))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(location(&r), "/admin/discounts?notice=discounts.deleted");
        assert!(yiren_core::discount::list(ctx).await.unwrap().is_empty());
        assert_eq!(owner.get(app.url(&format!("/admin/discounts/{}", d.id))).send().await.unwrap().status(), 404);
        app.stop().await;
    }

    async fn the_owner_sends_and_refunds_from_the_order_page(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let ctx = &app.state.ctx;
        yiren_core::checkout::save_config(ctx, &yiren_core::checkout::Config {
            shipping: vec![yiren_core::checkout::ShippingRate { name: "顺丰".into(), regions: vec!["*".into()], rule: yiren_core::pricing::Shipping::Flat { price: 1000 } }],
            ..Default::default()
        }).await.unwrap();
        let v = tea(&app).await;
        let s = yiren_core::checkout::Submit {
            token: "send".into(), email: "send@example.com".into(), gateway: "manual".into(),
            lines: vec![yiren_core::cart::Line { variant_id: v, quantity: 1 }],
            address: Some(yiren_core::checkout::Address { name: "Ann".into(), country: "US".into(), city: "Austin".into(), line1: "1 Main St".into(), ..Default::default() }),
            ..Default::default()
        };
        let o = yiren_core::checkout::place(ctx, &s).await.unwrap();
        assert_eq!(o.total, 17_800);
        let mail = yiren_testkit::mail_text(&app.wait_for_mail("send@example.com", 0).await);
        assert!(mail.contains("我们已收到您的订单 #1001（¥178.00）") && mail.contains(&format!("/orders/{}?key=", o.id)), "{mail}");
        let detail_url = format!("/admin/orders/{}", o.id);
        let csrf = app.csrf(&owner, &detail_url).await;
        owner.post(app.url(&format!("{detail_url}/confirm"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        let page = owner.get(app.url(&detail_url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("fulfil-form") && page.contains("refund-form") && page.contains("value=\"178.00\""), "{page}");
        let token = field_of(&page, "token");
        let mail = yiren_testkit::mail_text(&app.wait_for_mail("send@example.com", 1).await);
        assert!(mail.contains("我们已收到订单 #1001 的付款 ¥178.00"), "{mail}");
        let sent = owner.post(app.url(&format!("{detail_url}/fulfil"))).form(&[("_csrf", csrf.as_str()), ("carrier", "顺丰"), ("tracking", "SF1234567890")]).send().await.unwrap();
        assert_eq!(location(&sent), format!("{detail_url}?notice=orders.fulfilled"));
        let customer = app.client().get(app.url(&format!("/orders/{}?key={}", o.id, yiren_core::order::access_key(ctx, o.id)))).send().await.unwrap().text().await.unwrap();
        assert!(customer.contains("已付款，已发货") && customer.contains("已由顺丰发出，运单号 SF1234567890"), "{customer}");
        // A partial refund; the same form posted again is the same refund; more than is left is refused.
        let refund = |amount: &str, token: &str| owner.post(app.url(&format!("{detail_url}/refund"))).form(&[("_csrf", csrf.clone()), ("amount", amount.into()), ("reason", "破损".into()), ("token", token.into())]).send();
        assert_eq!(location(&refund("50.00", &token).await.unwrap()), format!("{detail_url}?notice=orders.refunded"));
        assert_eq!(location(&refund("50.00", &token).await.unwrap()), format!("{detail_url}?notice=orders.refunded"));
        let over = refund("128.01", "another").await.unwrap();
        assert_eq!(over.status(), 422);
        assert!(over.text().await.unwrap().contains("不超过已付未退的金额"));
        let row = yiren_store::order::get(ctx.db.read(), o.id).await.unwrap();
        assert_eq!((row.payment.as_str(), row.refunded), ("partially_refunded", 5000));
        // One mail per order and kind: placed, paid, shipped, refunded.
        let mail = yiren_testkit::mail_text(&app.wait_for_mail("send@example.com", 3).await);
        assert!(mail.contains("订单 #1001 已退款 ¥50.00"), "{mail}");
        let all: Vec<String> = app.mails_to("send@example.com").iter().map(|m| yiren_testkit::mail_text(m)).collect();
        assert_eq!(all.len(), 4, "{all:#?}");
        assert!(all[2].contains("已由顺丰发出，运单号 SF1234567890"), "{}", all[2]);
        let page = owner.get(app.url(&detail_url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("部分退款") && page.contains("value=\"128.00\""), "{page}");
        assert!(yiren_core::order::audit(ctx).await.unwrap().is_empty());
        app.stop().await;
    }

    /// A signed-in customer's checkout starts with their email, the order is theirs, and their
    /// order history lists it — only theirs: another customer's list does not, and a visitor is
    /// sent to sign in.
    async fn a_signed_in_customer_finds_the_order_in_their_history(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let _owner = app.setup_owner(OWNER, PW).await;
        let v = product(&app.state.ctx, "ebook", Kind::Digital, &[("EB", 2_900, 10)]).await[0];
        let me = app.customer("reader@example.com").await;
        me.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "1".into())]).send().await.unwrap();
        let form = me.get(app.url("/checkout")).send().await.unwrap().text().await.unwrap();
        assert!(form.contains("value=\"reader@example.com\""), "{form}");
        let placed = me.post(app.url("/checkout")).form(&[("token", field_of(&form, "token")), ("email", String::new())]).send().await.unwrap();
        assert_eq!(placed.status(), 303);
        let orders = yiren_core::order::list(&app.state.ctx, None, 10, 0).await.unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].email, "reader@example.com");
        let mine = yiren_store::customer::find_by_email(app.state.ctx.db.read(), "reader@example.com").await.unwrap().unwrap();
        assert_eq!(orders[0].customer_id, Some(mine.id));
        let history = me.get(app.url("/account/orders")).send().await.unwrap().text().await.unwrap();
        assert!(history.contains("订单 #1001") && history.replace("&#x2f;", "/").contains(&location(&placed)), "{history}");
        let other = app.customer("other@example.com").await;
        let theirs = other.get(app.url("/account/orders")).send().await.unwrap().text().await.unwrap();
        assert!(!theirs.contains("#1001") && theirs.contains("还没有订单"), "{theirs}");
        let anon = app.client().get(app.url("/account/orders")).send().await.unwrap();
        assert_eq!(location(&anon), "/account/sign-in?next=%2Faccount%2Forders");
        // Their data export holds the order, the saved cart and the checkouts they started.
        me.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "2".into())]).send().await.unwrap();
        me.get(app.url("/checkout")).send().await.unwrap().text().await.unwrap();
        let data: serde_json::Value = me.get(app.url("/account/data")).send().await.unwrap().json().await.unwrap();
        assert_eq!((data["orders"][0]["number"].as_i64(), data["orders"][0]["total"].as_str(), data["orders"][0]["lines"][0]["quantity"].as_i64()), (Some(1001), Some("29.00"), Some(1)), "{data}");
        assert_eq!(data["saved_cart"], serde_json::json!([{"variant_id": v, "quantity": 2}]));
        let started = data["started_checkouts"].as_array().unwrap();
        let mut placed: Vec<bool> = started.iter().map(|k| k["order_placed"].as_bool().unwrap()).collect();
        placed.sort();
        assert_eq!(placed, [false, true], "{data}");
        // Deleting the account forgets the cart and the checkout that never became an order.
        yiren_core::customer::delete_account(&app.state.ctx, mine.id).await.unwrap();
        assert!(yiren_core::cart::saved(&app.state.ctx, mine.id).await.unwrap().is_empty());
        let left = yiren_store::abandoned::of_customer(app.state.ctx.db.read(), mine.id).await.unwrap();
        assert_eq!(left.iter().map(|k| k.order_id.is_some()).collect::<Vec<_>>(), [true]);
    }

    /// An unpaid order is reminded once, three quarters of the way to its expiry; a paid one is
    /// not. One job per order walks its deadlines on the injected clock: the hold's end, then the
    /// reminder, then the expiry; an order paid before them leaves the job nothing to do.
    async fn an_unpaid_order_is_reminded_once(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let v = product(ctx, "ebook", Kind::Digital, &[("EB", 2_900, 10)]).await[0];
        let submit = |token: &str, email: &str| yiren_core::checkout::Submit {
            token: token.into(), email: email.into(), gateway: "manual".into(),
            lines: vec![yiren_core::cart::Line { variant_id: v, quantity: 1 }],
            ..Default::default()
        };
        let o = yiren_core::checkout::place(ctx, &submit("late", "late@example.com")).await.unwrap();
        let paid = yiren_core::checkout::place(ctx, &submit("paid", "paid@example.com")).await.unwrap();
        yiren_core::order::confirm_manual(ctx, paid.id, OWNER).await.unwrap();
        let job = |id: i64| async move {
            sqlx::query_as::<_, (String, i64)>("SELECT state, run_at FROM jobs WHERE unique_key = $1")
                .bind(format!("order.deadline:{id}")).fetch_all(ctx.db.read()).await.unwrap()
        };
        assert_eq!(job(o.id).await, [("queued".to_string(), o.hold_until)], "one job per order, first due when the hold ends");
        let remind = yiren_core::order::remind_at(o.created_at, o.expires_at);
        assert_eq!(remind - o.created_at, 36 * 3_600_000, "36 h into the default 48");
        // The hold ends: stock back, the job waits for the reminder.
        app.clock.advance(o.hold_until - o.created_at);
        yiren_testkit::wait_until("the hold released", || async { job(o.id).await[0].1 == remind }).await;
        assert_eq!(yiren_core::order::get(ctx, o.id).await.unwrap().row.stock, "released");
        yiren_testkit::wait_until("the paid order's job done", || async { job(paid.id).await[0].0 == "done" }).await;
        // The reminder: once, then the job waits for the expiry.
        app.clock.advance(remind - o.hold_until);
        yiren_testkit::wait_until("reminded", || async { job(o.id).await[0].1 == o.expires_at }).await;
        assert!(!yiren_core::order::remind(ctx, o.id).await.unwrap(), "once");
        let timeline = yiren_core::order::get(ctx, o.id).await.unwrap().events;
        assert_eq!(timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["placed", "hold_released", "reminded"]);
        app.wait_for_mail("late@example.com", 1).await;
        // The expiry: cancelled, the job done.
        app.clock.advance(o.expires_at - remind);
        yiren_testkit::wait_until("expired", || async { job(o.id).await[0].0 == "done" }).await;
        assert_eq!(yiren_core::order::get(ctx, o.id).await.unwrap().row.cancelled, 1);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let all: Vec<String> = app.mails_to("late@example.com").iter().map(|m| yiren_testkit::mail_text(m)).collect();
        assert_eq!(all.iter().filter(|m| m.contains("还没有收到付款")).count(), 1, "one reminder: {all:#?}");
        assert!(!yiren_core::order::remind(ctx, paid.id).await.unwrap());
        let theirs: Vec<String> = app.mails_to("paid@example.com").iter().map(|m| yiren_testkit::mail_text(m)).collect();
        assert!(!theirs.iter().any(|m| m.contains("还没有收到付款")), "{theirs:#?}");
    }

    /// Admin → Orders: search by number, email and note (a `%` is literal), filters by payment
    /// state, junk filter values ignored; Admin → Abandoned checkouts: a checkout left with an
    /// email typed in and one left without any contact are listed after 30 minutes, one that
    /// became an order is not.
    async fn the_owner_finds_orders_and_sees_abandoned_checkouts(engine: Engine) {
        use yiren_core::checkout::{self, Submit};
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let v = product(ctx, "ebook", Kind::Digital, &[("EB", 5_000, 100)]).await[0];
        let place = |token: &str, email: &str, note: &str| Submit {
            token: token.into(),
            email: email.into(),
            note: note.into(),
            lines: vec![yiren_core::cart::Line { variant_id: v, quantity: 1 }],
            gateway: "manual".into(),
            ..Default::default()
        };
        let zhang = checkout::place(ctx, &place("s1", "zhang@example.com", "")).await.unwrap();
        let li = checkout::place(ctx, &place("s2", "li@example.com", "")).await.unwrap();
        let wang = checkout::place(ctx, &place("s3", "wang@example.com", "请礼物包装 100%")).await.unwrap();
        yiren_core::order::confirm_manual(ctx, zhang.id, OWNER).await.unwrap();
        yiren_core::order::confirm_manual(ctx, wang.id, OWNER).await.unwrap();

        // Browsers at checkout: one types an email but leaves (a bad code brings the form back),
        // one only looks, one places its order.
        let checkout_of = |c: &reqwest::Client| {
            let (c, add, co) = (c.clone(), app.url("/cart/add"), app.url("/checkout"));
            async move {
                c.post(add).form(&[("variant_id", v.to_string()), ("quantity", "2".into())]).send().await.unwrap();
                c.get(co).send().await.unwrap().text().await.unwrap()
            }
        };
        let left = app.client();
        let form = checkout_of(&left).await;
        let r = left.post(app.url("/checkout")).form(&[("token", field_of(&form, "token")), ("email", "Left@Example.com".into()), ("code", "NOPE".into()), ("gateway", "manual".into())]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let looked = app.client();
        checkout_of(&looked).await;
        let bought = app.client();
        let form = checkout_of(&bought).await;
        let r = bought.post(app.url("/checkout")).form(&[("token", field_of(&form, "token")), ("email", "bought@example.com".into()), ("gateway", "manual".into())]).send().await.unwrap();
        assert_eq!(r.status(), 303);

        app.clock.advance(31 * 60_000);
        let owner = app.setup_owner(OWNER, PW).await;
        let list = |q: &str| {
            let (owner, url) = (owner.clone(), app.url(&format!("/admin/orders{q}")));
            async move { owner.get(url).send().await.unwrap().text().await.unwrap() }
        };
        let has = |page: &str, o: &yiren_store::order::OrderRow| page.contains(&format!("#{}</a>", o.number));
        let page = list("?q=ZHANG").await;
        assert!(has(&page, &zhang) && !has(&page, &li) && !has(&page, &wang), "{page}");
        let page = list(&format!("?q=%23{}", li.number)).await;
        assert!(has(&page, &li) && !has(&page, &zhang) && !has(&page, &wang), "{page}");
        let page = list("?q=%E7%A4%BC%E7%89%A9").await; // 礼物
        assert!(has(&page, &wang) && !has(&page, &zhang), "{page}");
        let page = list("?q=100%25").await;
        assert!(has(&page, &wang) && !has(&page, &zhang), "a % is the character: {page}");
        let page = list("?q=%25").await;
        assert!(has(&page, &wang) && !has(&page, &li), "{page}");
        let page = list("?payment=pending").await;
        assert!(has(&page, &li) && !has(&page, &zhang) && !has(&page, &wang), "{page}");
        let page = list("?payment=paid&q=wang").await;
        assert!(has(&page, &wang) && !has(&page, &zhang) && !has(&page, &li), "{page}");
        let page = list("?payment=bogus&show=whatever&fulfilment=%27").await;
        assert!(has(&page, &wang) && has(&page, &zhang) && has(&page, &li), "junk values are ignored: {page}");

        let page = owner.get(app.url("/admin/checkouts")).send().await.unwrap().text().await.unwrap();
        let table = &page[page.find("id=\"abandoned\"").unwrap()..];
        assert!(table.contains("left@example.com"), "{table}");
        assert_eq!(table.matches("× 2").count(), 2, "the left and the looked-at checkouts: {table}");
        assert!(!table.contains("bought@example.com"), "{table}");
        assert!(table.contains("未知"), "the checkout without a contact: {table}");
    }
}
