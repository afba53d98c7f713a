//! The cart page over real HTTP: add from the product page, every amount computed by the server
//! from the catalog (a price change shows at once), quantities checked, stock respected, items that
//! go off sale dropped with a notice, a tampered cookie harmless, cross-site posts refused. On both
//! engines.

use yiren_core::catalog::{self, Price, ProductInput, VariantInput};
use yiren_testkit::{both_engines, location, TestApp};

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
