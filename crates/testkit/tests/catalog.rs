//! Admin → Products over HTTP, and the catalog service's rules: create a product with two
//! variants through the editor form, edit it, adjust stock with a reason (ledger with who and
//! why), bulk status and tags, refusals with a clear message and nothing half-written. On both
//! engines.

use yiren_core::catalog::{self, Price, ProductInput, VariantInput};
use yiren_testkit::{both_engines, location, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

fn form<'a>(csrf: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("_csrf", csrf),
        ("title", "手工茶杯"),
        ("body", "景德镇**手工**拉坯"),
        ("kind", "physical"),
        ("status", "active"),
        ("vendor", "一人小店"),
        ("tags", "茶具, 新品"),
        ("option1", "颜色"),
        ("v0_value1", "白"),
        ("v0_price", "88"),
        ("v0_compare_at", "99.90"),
        ("v0_sku", "CUP-W"),
        ("v0_track", "1"),
        ("v0_stock", "10"),
        ("v1_value1", "青"),
        ("v1_price", "98.50"),
        ("v1_sku", "CUP-G"),
        ("v1_track", "1"),
        ("v1_stock", "3"),
        ("en_title", "Handmade Teacup"),
        ("en_body", "Thrown by hand"),
        ("en_option1", "Colour"),
        ("en_values", "白 = White\n青 = Celadon"),
    ];
    f.extend_from_slice(extra);
    f
}

both_engines! {
    async fn the_owner_creates_edits_and_stocks_a_product_in_admin(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let csrf = app.csrf(&owner, "/admin/products/new").await;

        // Refusals: a price with too many decimals, a duplicate variant; nothing is stored.
        for (bad, msg) in [
            (vec![("v1_price", "98.555")], "小数位"),
            (vec![("v1_value1", "白")], "选项值相同"),
            (vec![("title", " ")], "商品需要标题"),
            (vec![("kind", "membership")], "有效天数"),
            (vec![("en_option1", "Colour"), ("en_option2", "Size")], "选项名称每个选项一个"),
        ] {
            let mut f = form(&csrf, &[]);
            for (k, v) in &bad {
                f.retain(|(n, _)| n != k);
                f.push((k, v));
            }
            let r = owner.post(app.url("/admin/products")).form(&f).send().await.unwrap();
            assert_eq!(r.status(), 422, "{bad:?}");
            let page = r.text().await.unwrap();
            assert!(page.contains(msg), "{bad:?}: {page}");
            assert!(page.contains("CUP-G"), "the form keeps what was typed");
        }
        assert_eq!(catalog::count(&app.state.ctx, &Default::default()).await.unwrap(), 0);

        let r = owner.post(app.url("/admin/products")).form(&form(&csrf, &[])).send().await.unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let at = location(&r);
        let id: i64 = at.trim_start_matches("/admin/products/").split('?').next().unwrap().parse().unwrap();
        let p = catalog::get(&app.state.ctx, id).await.unwrap();
        assert_eq!(p.row.handle, "手工茶杯");
        assert_eq!(p.options[0].values, vec!["白", "青"]);
        let amounts: Vec<(i64, Option<i64>, i64)> = p.variants.iter().map(|v| (v.prices[0].amount, v.prices[0].compare_at, v.row.inventory_quantity)).collect();
        assert_eq!(amounts, vec![(8800, Some(9990), 10), (9850, None, 3)]);
        assert_eq!(p.translations[0].title, "Handmade Teacup");
        assert_eq!(p.translations[0].options, ["Colour"]);
        assert_eq!(p.translations[0].values.get("青").map(String::as_str), Some("Celadon"));
        // The shop speaks the visitor's language down to option names and values.
        let en = app.client().get(app.url("/products/%E6%89%8B%E5%B7%A5%E8%8C%B6%E6%9D%AF")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(en.contains("<th>Colour</th>") && en.contains("Celadon") && !en.contains(">青<"), "{en}");
        let zh = app.client().get(app.url("/products/%E6%89%8B%E5%B7%A5%E8%8C%B6%E6%9D%AF")).header("accept-language", "zh-CN").send().await.unwrap().text().await.unwrap();
        assert!(zh.contains("<th>颜色</th>") && zh.contains("青"), "{zh}");

        // The editor shows it back; the list finds it.
        let page = owner.get(app.url(&at)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(r#"value="98.50""#) && page.contains("库存 10") && page.contains("Handmade Teacup"), "{page}");
        let list = owner.get(app.url("/admin/products?q=茶杯&status=active")).send().await.unwrap().text().await.unwrap();
        assert!(list.contains("手工茶杯") && list.contains("¥88.00") && list.contains("共 1 个商品"), "{list}");

        // Stock changes only through adjustments, each with a reason and who made it.
        let white = p.variants[0].row.id.to_string();
        let r = owner.post(app.url(&format!("/admin/products/{id}/stock"))).form(&[("_csrf", csrf.as_str()), ("variant_id", &white), ("delta", "-4"), ("reason", "盘点")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let r = owner.post(app.url(&format!("/admin/products/{id}/stock"))).form(&[("_csrf", csrf.as_str()), ("variant_id", &white), ("delta", "0"), ("reason", "x")]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let page = owner.get(app.url(&format!("/admin/products/{id}"))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("盘点") && page.contains(OWNER) && page.contains("库存 6"), "{page}");
        let p = catalog::get(&app.state.ctx, id).await.unwrap();
        let hist = catalog::history(&app.state.ctx, &p, 10).await.unwrap();
        assert_eq!(hist.iter().map(|a| (a.delta, a.quantity_after)).collect::<Vec<_>>(), vec![(-4, 6), (3, 3), (10, 10)]);

        // The inventory view: every tracked variant, a low-stock filter, adjustments from the list,
        // the latest adjustments with who made them.
        let inv = owner.get(app.url("/admin/inventory")).send().await.unwrap().text().await.unwrap();
        assert!(inv.contains("CUP-W") && inv.contains("CUP-G") && inv.contains("盘点"), "{inv}");
        let low = owner.get(app.url("/admin/inventory?low=3")).send().await.unwrap().text().await.unwrap();
        assert!(low.contains("CUP-G") && !low.contains("CUP-W"), "only 3 or fewer: {low}");
        let green_id = p.variants[1].row.id.to_string();
        let r = owner.post(app.url("/admin/inventory/adjust")).form(&[("_csrf", csrf.as_str()), ("variant_id", green_id.as_str()), ("delta", "+7"), ("reason", "到货"), ("low", "3")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(location(&r).starts_with("/admin/inventory?q=&low=3"));
        let r = owner.post(app.url("/admin/inventory/adjust")).form(&[("_csrf", csrf.as_str()), ("variant_id", green_id.as_str()), ("delta", "x"), ("reason", "到货")]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let r = owner.post(app.url("/admin/inventory/adjust")).form(&[("_csrf", csrf.as_str()), ("variant_id", green_id.as_str()), ("delta", "1"), ("reason", " ")]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let inv = owner.get(app.url("/admin/inventory")).send().await.unwrap().text().await.unwrap();
        assert!(inv.contains("到货") && inv.contains(">10<"), "{inv}");
        assert_eq!(catalog::get(&app.state.ctx, id).await.unwrap().variants[1].row.inventory_quantity, 10);

        // Editing keeps variant ids and stock; a removed row deletes that variant; a new handle
        // leaves the old address redirecting.
        let green = p.variants[1].row.id.to_string();
        let edit = form(&csrf, &[("v0_id", white.as_str()), ("v1_id", green.as_str()), ("v1_remove", "1"), ("v0_stock", "999"), ("handle", "teacup"), ("title", "手工陶瓷茶杯")]);
        let r = owner.post(app.url(&format!("/admin/products/{id}"))).form(&edit).send().await.unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let p = catalog::get(&app.state.ctx, id).await.unwrap();
        assert_eq!((p.row.title.as_str(), p.row.handle.as_str(), p.variants.len()), ("手工陶瓷茶杯", "teacup", 1));
        assert_eq!(p.translations[0].values.keys().collect::<Vec<_>>(), ["白"], "the removed variant's value translation goes with it");
        assert_eq!((p.variants[0].row.id.to_string(), p.variants[0].row.inventory_quantity), (white.clone(), 6), "stock is not set by the form");
        let r = app.client().get(app.url("/products/手工茶杯")).send().await.unwrap();
        assert_eq!((r.status().as_u16(), location(&r)), (301, "/products/teacup".to_string()));

        // A second product cannot take the handle.
        let other = form(&csrf, &[("handle", "teacup")]);
        let r = owner.post(app.url("/admin/products")).form(&other).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("已被其他商品使用"));

        // Bulk price: −10 % on two products, the old price shown struck through where there was
        // no higher compare-at price; a change that would take a price below zero changes nothing.
        let second = form(&csrf, &[("handle", "cup-2")]);
        let r = owner.post(app.url("/admin/products")).form(&second).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let id2: i64 = location(&r).trim_start_matches("/admin/products/").split('?').next().unwrap().parse().unwrap();
        let (a, b) = (id.to_string(), id2.to_string());
        let bulk = |action: &'static str, value: &'static str| {
            let owner = owner.clone();
            let url = app.url("/admin/products/bulk");
            let f = vec![("_csrf", csrf.clone()), ("id", a.clone()), ("id", b.clone()), ("action", action.to_string()), ("price_value", value.to_string()), ("compare_at", "1".to_string())];
            async move { owner.post(url).form(&f).send().await.unwrap() }
        };
        let prices = |id: i64| { let ctx = app.state.ctx.clone(); async move {
            catalog::get(&ctx, id).await.unwrap().variants.iter().map(|v| (v.prices[0].amount, v.prices[0].compare_at)).collect::<Vec<_>>()
        }};
        assert_eq!(bulk("price_percent", "-10").await.status(), 303);
        assert_eq!(prices(id).await, vec![(7920, Some(9990))]);
        assert_eq!(prices(id2).await, vec![(7920, Some(9990)), (8865, Some(9850))]);
        for (action, value, msg) in [("price_add", "-80", "价格"), ("price_set", "abc", "金额"), ("price_percent", "0", "百分比"), ("price_percent", "-100", "百分比")] {
            let r = bulk(action, value).await;
            assert_eq!(r.status(), 422, "{action} {value}");
            assert!(r.text().await.unwrap().contains(msg), "{action} {value}");
        }
        assert_eq!(prices(id2).await, vec![(7920, Some(9990)), (8865, Some(9850))], "all or nothing");
        assert_eq!(bulk("price_set", "120").await.status(), 303);
        assert_eq!(prices(id2).await, vec![(12000, None), (12000, None)], "a compare-at at or below the price is dropped");
        catalog::delete(&app.state.ctx, id2).await.unwrap();

        // Bulk: tags and status.
        let ids = id.to_string();
        let r = owner.post(app.url("/admin/products/bulk")).form(&[("_csrf", csrf.as_str()), ("id", ids.as_str()), ("action", "tag_add"), ("tag", "礼物，夏季")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let r = owner.post(app.url("/admin/products/bulk")).form(&[("_csrf", csrf.as_str()), ("id", ids.as_str()), ("action", "tag_remove"), ("tag", "新品")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let r = owner.post(app.url("/admin/products/bulk")).form(&[("_csrf", csrf.as_str()), ("id", ids.as_str()), ("action", "archived")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let r = owner.post(app.url("/admin/products/bulk")).form(&[("_csrf", csrf.as_str()), ("action", "archived")]).send().await.unwrap();
        assert_eq!(r.status(), 422, "nothing checked");
        let p = catalog::get(&app.state.ctx, id).await.unwrap();
        assert_eq!((p.row.tags.as_str(), p.row.status.as_str()), ("茶具, 礼物, 夏季", "archived"));

        let r = owner.post(app.url(&format!("/admin/products/{id}/delete"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(catalog::get(&app.state.ctx, id).await.is_err());
        app.stop().await;
    }

    async fn kinds_variants_and_money_are_checked_by_the_service(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let v = |values: &[&str], amount: i64| VariantInput {
            values: values.iter().map(|s| s.to_string()).collect(),
            prices: vec![Price { currency: "CNY".into(), amount, compare_at: None }],
            ..Default::default()
        };
        let base = ProductInput { title: "T".into(), options: vec!["尺码".into(), "颜色".into()], variants: vec![v(&["S", "红"], 100), v(&["M", "红"], 100)], ..Default::default() };
        assert!(catalog::create(ctx, &base, "t").await.is_ok());
        let cases: Vec<(ProductInput, &str)> = vec![
            (ProductInput { variants: vec![v(&["S"], 100)], ..base.clone() }, "catalog.variant_values"),
            (ProductInput { variants: vec![v(&["S", "红"], -1)], ..base.clone() }, "catalog.price_invalid"),
            (ProductInput { variants: vec![v(&["S", "红"], i64::MAX)], ..base.clone() }, "catalog.price_invalid"),
            (ProductInput { options: vec!["a".into(), "b".into(), "c".into(), "d".into()], ..base.clone() }, "catalog.too_many_options"),
            (ProductInput { options: vec!["尺码".into(), "尺码".into()], ..base.clone() }, "catalog.option_duplicate"),
            (ProductInput { options: vec![], ..base.clone() }, "catalog.options_required"),
            (ProductInput { variants: vec![], ..base.clone() }, "catalog.variant_required"),
            (ProductInput { variants: (0..101).map(|i| v(&[&i.to_string(), "x"], 1)).collect(), ..base.clone() }, "catalog.too_many_variants"),
            (ProductInput { handle: "Bad Handle".into(), ..base.clone() }, "catalog.handle_invalid"),
            (ProductInput { status: "live".into(), ..base.clone() }, "catalog.status_invalid"),
            (ProductInput { kind: catalog::Kind::Crowdfunding, ..base.clone() }, "catalog.campaign_required"),
            (ProductInput { title: "a\u{0}b".into(), ..base.clone() }, "catalog.field_invalid"),
            (ProductInput { variants: vec![VariantInput { prices: vec![Price { currency: "USD".into(), amount: 1, compare_at: None }], ..v(&["S", "红"], 1) }], ..base.clone() }, "catalog.price_required"),
        ];
        for (input, key) in cases {
            match catalog::create(ctx, &input, "t").await {
                Err(yiren_core::DomainError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        assert_eq!(catalog::count(ctx, &Default::default()).await.unwrap(), 1, "no refused product was stored");
        // Automatic handles never collide: the second "T" gets t-2.
        let second = catalog::create(ctx, &base, "t").await.unwrap();
        assert_eq!(second.row.handle, "t-2");
        // A second price currency is kept beside the shop's.
        let mut multi = base.clone();
        multi.variants[0].prices.push(Price { currency: "USD".into(), amount: 1500, compare_at: Some(2000) });
        let p = catalog::create(ctx, &multi, "t").await.unwrap();
        assert_eq!(p.variants[0].price("USD").map(|p| p.amount), Some(1500));
        app.stop().await;
    }
}
