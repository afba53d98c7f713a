//! The cart page over real HTTP: add from the product page, every amount computed by the server
//! from the catalog (a price change shows at once), quantities checked, stock respected, items that
//! go off sale dropped with a notice, a tampered cookie harmless, cross-site posts refused; a
//! signed-in customer's cart merged on sign-in and following them. On both engines.

use yiren_core::catalog::{self, Price, ProductInput, VariantInput};
use yiren_testkit::{both_engines, location, wait_until, TestApp};

fn mug() -> ProductInput {
    let v = |value: &str, amount: i64, tracked: bool, stock: i64| VariantInput {
        values: vec![value.into()],
        track_inventory: tracked,
        initial_stock: stock,
        prices: vec![Price {
            currency: "CNY".into(),
            amount,
            compare_at: None,
        }],
        ..Default::default()
    };
    ProductInput {
        title: "手工陶瓷马克杯".into(),
        handle: "mug".into(),
        status: "active".into(),
        options: vec!["颜色".into()],
        variants: vec![v("白", 8800, true, 2), v("青", 9850, false, 0)],
        ..Default::default()
    }
}

both_engines! {
    async fn the_cart_is_priced_by_the_server_and_checked(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = app.state.ctx.clone();
        let p = catalog::create(&ctx, &mug(), "test").await.unwrap();
        let (white, green) = (p.variants[0].row.id.to_string(), p.variants[1].row.id.to_string());
        let c = app.client();

        let page = c.get(app.url("/products/mug")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("action=\"/cart/add\"") && page.contains(&format!("<option value=\"{white}\">")), "{page}");
        let empty = c.get(app.url("/cart")).send().await.unwrap();
        assert_eq!(empty.headers()["cache-control"], "no-store");
        assert!(empty.text().await.unwrap().contains("购物车是空的"));

        // Add: a price field in the form is ignored; five white ones are capped at the stock of 2.
        let add = |variant: &str, qty: &str| c.post(app.url("/cart/add")).form(&[("variant_id", variant.to_string()), ("quantity", qty.to_string()), ("price", "0.01".into())]).send();
        let r = add(&green, "3").await.unwrap();
        assert_eq!((r.status().as_u16(), location(&r)), (303, "/cart".to_string()));
        add(&white, "5").await.unwrap();
        let cart = c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap();
        assert!(cart.contains("¥98.50") && cart.contains("¥295.50"), "{cart}");
        assert!(cart.contains("已调整为现有库存"), "{cart}");
        assert!(cart.contains("合计（5 件）： <strong>¥471.50</strong>"), "3 × 98.50 + 2 × 88.00: {cart}");
        // The owner changes a price: the cart shows the new one.
        let mut input = mug();
        input.handle = "mug".into();
        for (v, old) in input.variants.iter_mut().zip(&p.variants) {
            v.id = Some(old.row.id);
        }
        input.variants[1].prices[0].amount = 9000;
        catalog::update(&ctx, p.row.id, &input, "test").await.unwrap();
        let cart = c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap();
        assert!(cart.contains("¥446.00"), "3 × 90.00 + 2 × 88.00: {cart}");

        // Refused: bad quantities, an unknown variant, a cross-site post; the cart is unchanged.
        for q in ["0", "100", "1.5", "-1", "abc"] {
            assert_eq!(add(&green, q).await.unwrap().status(), 422, "{q}");
        }
        assert_eq!(add("1", "1").await.unwrap().status(), 422);
        let r = c.post(app.url("/cart/add")).header("origin", "https://evil.example").form(&[("variant_id", green.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let r = c.post(app.url("/cart/update")).header("sec-fetch-site", "cross-site").form(&[(format!("q_{green}"), "0")]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let cart = c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap();
        assert!(cart.contains("¥446.00"), "{cart}");

        // Update and remove.
        let r = c.post(app.url("/cart/update")).form(&[(format!("q_{green}"), "1".to_string()), (format!("q_{white}"), "1".to_string())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let cart = c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap();
        assert!(cart.contains("合计（2 件）： <strong>¥178.00</strong>"), "{cart}");
        let r = c.post(app.url("/cart/update")).form(&[("remove", white.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap().contains("合计（1 件）"));

        // A product taken off sale drops out with a notice; a tampered cookie is harmless.
        catalog::set_status(&ctx, &[p.row.id], "draft").await.unwrap();
        let cart = c.get(app.url("/cart")).send().await.unwrap().text().await.unwrap();
        assert!(cart.contains("已下架") && cart.contains("购物车是空的"), "{cart}");
        assert_eq!(add(&green, "1").await.unwrap().status(), 422, "hidden products cannot be added");
        let raw = reqwest::Client::new();
        let r = raw.get(app.url("/cart")).header("cookie", format!("yiren_cart=1x5_{green}x99999_x_%00_{white}x-3")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains("购物车是空的") && body.contains("已下架"), "{body}");
    }
}

/// The quantity of `variant` in the cart page, if it is there.
fn qty(page: &str, variant: &str) -> Option<i64> {
    let marker = format!("name=\"q_{variant}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    page[start..].split('"').next()?.parse().ok()
}

both_engines! {
    /// A visitor's cart is merged into the customer's saved cart on sign-in (each variant at the
    /// larger quantity), follows them to another browser, is saved on every change while signed
    /// in, leaves the browser on sign-out and comes back on the next sign-in; checking out empties
    /// it.
    async fn the_cart_follows_the_customer_across_sign_ins(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = app.state.ctx.clone();
        let p = catalog::create(&ctx, &mug(), "test").await.unwrap();
        let (white, green) = (p.variants[0].row.id.to_string(), p.variants[1].row.id.to_string());
        let email = "shopper@example.com";
        let cart_of = |c: &reqwest::Client| {
            let c = c.clone();
            let url = app.url("/cart");
            async move { c.get(url).send().await.unwrap().text().await.unwrap() }
        };
        let add = |c: &reqwest::Client, variant: &str, q: &str| {
            c.post(app.url("/cart/add")).form(&[("variant_id", variant.to_string()), ("quantity", q.to_string())]).send()
        };

        // Browser one: a guest puts 2 white in the cart, then signs in.
        let one = app.client();
        add(&one, &white, "2").await.unwrap();
        let code = app.request_code(&one, email).await;
        assert_eq!(app.submit_code(&one, email, &code).await.status(), 303);
        let page = cart_of(&one).await;
        assert_eq!((qty(&page, &white), qty(&page, &green)), (Some(2), None), "{page}");

        // Browser two: a guest with 1 white and 3 green signs in: the union, white at its larger 2.
        let two = app.client();
        add(&two, &white, "1").await.unwrap();
        add(&two, &green, "3").await.unwrap();
        let code = app.request_code(&two, email).await;
        assert_eq!(app.submit_code(&two, email, &code).await.status(), 303);
        let page = cart_of(&two).await;
        assert_eq!((qty(&page, &white), qty(&page, &green)), (Some(2), Some(3)), "{page}");

        // Signed in, a change is saved: green down to 1.
        let r = two.post(app.url("/cart/update")).form(&[(format!("q_{green}"), "1".to_string())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        // Signing out leaves an empty cart on the browser; signing in brings the saved one back.
        let csrf = app.csrf(&two, "/account").await;
        let r = two.post(app.url("/account/sign-out")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let page = cart_of(&two).await;
        assert_eq!((qty(&page, &white), qty(&page, &green)), (None, None), "{page}");
        let code = app.request_code(&two, email).await;
        assert_eq!(app.submit_code(&two, email, &code).await.status(), 303);
        let page = cart_of(&two).await;
        assert_eq!((qty(&page, &white), qty(&page, &green)), (Some(2), Some(1)), "{page}");
        // A third browser with 1 white signs in: white stays at the larger 2 (no sum).
        let three = app.client();
        add(&three, &white, "1").await.unwrap();
        let code = app.request_code(&three, email).await;
        assert_eq!(app.submit_code(&three, email, &code).await.status(), 303);
        let page = cart_of(&three).await;
        assert_eq!((qty(&page, &white), qty(&page, &green)), (Some(2), Some(1)), "{page}");

        // Checking out empties the saved cart.
        use yiren_core::checkout::{self, Config, ShippingRate};
        let rate = ShippingRate { name: "顺丰".into(), regions: vec!["CN".into()], rule: yiren_core::pricing::Shipping::Flat { price: 1000 } };
        checkout::save_config(&ctx, &Config { shipping: vec![rate], ..Default::default() }).await.unwrap();
        let csrf_page = two.get(app.url("/checkout")).send().await.unwrap().text().await.unwrap();
        assert!(csrf_page.contains("name=\"token\""), "{csrf_page}");
        let token = yiren_testkit::field_of(&csrf_page, "token");
        let r = two
            .post(app.url("/checkout"))
            .header("origin", app.url(""))
            .form(&[("token", token.as_str()), ("email", email), ("gateway", "manual"), ("name", "张三"), ("phone", "13800000000"), ("country", "CN"), ("province", "浙江省"), ("city", "杭州市"), ("district", "西湖区"), ("line1", "文三路 1 号")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        assert!(location(&r).starts_with("/orders/"), "{}", location(&r));
        // (its confirmation mail first, so the next sign-in code is the next mail)
        wait_until("the order mail", || async { app.mails_to(email).iter().any(|m| yiren_testkit::mail_text(m).contains("#1001")) }).await;
        // Browser one signs out and in again: the saved cart it gets back is empty.
        let csrf = app.csrf(&one, "/account").await;
        let r = one.post(app.url("/account/sign-out")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        // (past the hourly limit on sign-in codes for one address)
        app.clock.advance(3_600_001);
        let code = app.request_code(&one, email).await;
        assert_eq!(app.submit_code(&one, email, &code).await.status(), 303);
        let page = cart_of(&one).await;
        assert_eq!((qty(&page, &white), qty(&page, &green)), (None, None), "{page}");
    }
}

both_engines! {
    /// The copies the cart and the checkout price from: a change through the catalog shows at
    /// once, stock is always read fresh, and a change made outside this process (here: straight
    /// in the database) shows within the copies' lifetime.
    async fn prices_come_from_copies_that_follow_the_catalog(engine: Engine) {
        use yiren_core::cart::{self, Line};
        let app = TestApp::spawn(engine).await;
        let ctx = app.state.ctx.clone();
        let p = catalog::create(&ctx, &mug(), "test").await.unwrap();
        let white = p.variants[0].row.id;
        let line = [Line { variant_id: white, quantity: 2 }];
        let locale = yiren_core::Locale::ZhCn;
        assert_eq!(cart::price(&ctx, &line, locale).await.unwrap().subtotal, 17_600);
        // Through the catalog: at once.
        let mut input = mug();
        input.variants[0].prices[0].amount = 9_000;
        for (v, old) in input.variants.iter_mut().zip(&p.variants) {
            v.id = Some(old.row.id);
        }
        catalog::update(&ctx, p.row.id, &input, "test").await.unwrap();
        assert_eq!(cart::price(&ctx, &line, locale).await.unwrap().subtotal, 18_000);
        // Stock is never copied: one unit sold elsewhere caps the line now.
        sqlx::query("UPDATE variants SET inventory_quantity = 1 WHERE id = $1").bind(white).execute(ctx.db.write()).await.unwrap();
        let priced = cart::price(&ctx, &line, locale).await.unwrap();
        assert_eq!((priced.subtotal, priced.notices.clone()), (9_000, vec!["cart.line_capped"]));
        // Outside the catalog service (as another process would): within the copies' lifetime.
        sqlx::query("UPDATE variant_prices SET amount = 7000 WHERE variant_id = $1").bind(white).execute(ctx.db.write()).await.unwrap();
        tokio::time::sleep(catalog::COPY_TTL + std::time::Duration::from_millis(50)).await;
        assert_eq!(cart::price(&ctx, &line, locale).await.unwrap().subtotal, 7_000);
        // The settings likewise: a save shows at once, an outside write within a second.
        let mut site = yiren_core::settings::load(&ctx).await.unwrap();
        site.name = "一人小店".into();
        yiren_core::settings::save(&ctx, &site).await.unwrap();
        assert_eq!(yiren_core::settings::load(&ctx).await.unwrap().name, "一人小店");
        sqlx::query("UPDATE settings SET value = '另一家店' WHERE key = 'site.name'").execute(ctx.db.write()).await.unwrap();
        tokio::time::sleep(yiren_core::settings::CACHE_TTL + std::time::Duration::from_millis(50)).await;
        assert_eq!(yiren_core::settings::load(&ctx).await.unwrap().name, "另一家店");
        app.stop().await;
    }
}
