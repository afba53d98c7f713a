//! The shop front over real HTTP: products created through the catalog reach the search index
//! through the job queue; home, product and search pages in both languages; a renamed handle
//! redirects permanently; drafts and scheduled products stay hidden; SEO markup; robots.txt and
//! sitemap.xml. On both engines.

use std::time::{Duration, Instant};

use yiren_core::catalog::{self, Price, ProductInput, Translation, VariantInput};
use yiren_testkit::{both_engines, location, TestApp};

fn shirt() -> ProductInput {
    ProductInput {
        title: "亚麻衬衫".into(),
        body: "透气**亚麻**面料。<script>alert(1)</script>".into(),
        status: "active".into(),
        vendor: "一人小店".into(),
        tags: "服装, 夏季".into(),
        options: vec!["尺码".into()],
        variants: ["S", "M"]
            .iter()
            .enumerate()
            .map(|(i, s)| VariantInput {
                values: vec![s.to_string()],
                sku: format!("LS-{s}"),
                track_inventory: true,
                initial_stock: i as i64 * 5,
                prices: vec![Price {
                    currency: "CNY".into(),
                    amount: 32900 + i as i64 * 1000,
                    compare_at: Some(39900),
                }],
                ..Default::default()
            })
            .collect(),
        translations: vec![Translation {
            locale: "en".into(),
            title: "Linen Shirt".into(),
            body: "Breathable linen.".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

async fn search(app: &TestApp, c: &reqwest::Client, q: &str) -> String {
    let url = app.url(&format!(
        "/search?q={}",
        url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    ));
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// Poll the search page until `q` finds (or stops finding) `needle`: the index follows the
/// catalog through the job queue.
async fn eventually(
    app: &TestApp,
    c: &reqwest::Client,
    q: &str,
    needle: &str,
    present: bool,
) -> String {
    let start = Instant::now();
    loop {
        let page = search(app, c, q).await;
        if page.contains(needle) == present {
            return page;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "search for {q:?}: {needle:?} present={present} never held:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

both_engines! {
    async fn the_shop_front_shows_finds_and_redirects(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = app.state.ctx.clone();
        let c = app.client();
        let p = catalog::create(&ctx, &shirt(), "test").await.unwrap();
        assert_eq!(p.row.handle, "亚麻衬衫");
        let mut draft = shirt();
        draft.title = "草稿茶杯".into();
        draft.status = "draft".into();
        let d = catalog::create(&ctx, &draft, "test").await.unwrap();

        // Search in Chinese (unspaced) and English, through the index the jobs keep.
        let page = eventually(&app, &c, "我想买亚麻衬衫", "/products/%E4%BA%9A%E9%BA%BB%E8%A1%AC%E8%A1%AB", true).await;
        assert!(page.contains("¥329.00"), "{page}");
        let en = c.get(app.url("/search?q=linen")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(en.contains("Linen Shirt") && en.contains("Results: 1"), "{en}");
        assert!(!search(&app, &c, "草稿茶杯").await.contains("草稿茶杯</span>"), "drafts are not found");

        // Home lists it; the product page renders it with SEO markup and sanitised Markdown.
        let home = c.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("亚麻衬衫") && !home.contains("草稿茶杯"), "{home}");
        let r = c.get(app.url("/products/亚麻衬衫")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("<strong>亚麻</strong>") && !html.contains("<script>alert"), "{html}");
        assert!(html.contains(r#"<link rel="canonical" href="/products/%E4%BA%9A%E9%BA%BB%E8%A1%AC%E8%A1%AB">"#), "{html}");
        assert!(html.contains(r#"<meta property="og:title" content="亚麻衬衫">"#), "{html}");
        assert!(html.contains(r#""@type":"Product""#) && html.contains(r#""price":"329.00""#) && html.contains(r#""priceCurrency":"CNY""#), "{html}");
        assert!(html.contains("¥399.00"), "compare-at price shown: {html}");
        let en = c.get(app.url("/products/亚麻衬衫")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(en.contains("<h1>Linen Shirt</h1>") && en.contains("Breathable linen."), "{en}");
        assert!(en.contains(r#"<html lang="en">"#));

        // A draft is not a page; an unknown handle is a 404.
        assert_eq!(c.get(app.url(&format!("/products/{}", d.row.handle))).send().await.unwrap().status(), 404);
        assert_eq!(c.get(app.url("/products/nope")).send().await.unwrap().status(), 404);

        // Renaming the handle keeps the old address working with a permanent redirect.
        let mut renamed = shirt();
        renamed.handle = "linen-shirt".into();
        for (v, old) in renamed.variants.iter_mut().zip(&p.variants) {
            v.id = Some(old.row.id);
        }
        catalog::update(&ctx, p.row.id, &renamed, "test").await.unwrap();
        let r = c.get(app.url("/products/亚麻衬衫")).send().await.unwrap();
        assert_eq!(r.status(), 301, "permanent redirect");
        assert_eq!(location(&r), "/products/linen-shirt");
        assert_eq!(c.get(app.url("/products/linen-shirt")).send().await.unwrap().status(), 200);

        // Archiving takes it out of search and the shop.
        catalog::set_status(&ctx, &[p.row.id], "archived").await.unwrap();
        eventually(&app, &c, "亚麻衬衫", "/products/linen-shirt", false).await;
        assert_eq!(c.get(app.url("/products/linen-shirt")).send().await.unwrap().status(), 404);

        // A bad price filter is a clear message, not an error page.
        let r = c.get(app.url("/search?q=x&min=abc")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("199.99"));

        let robots = c.get(app.url("/robots.txt")).send().await.unwrap().text().await.unwrap();
        assert!(robots.contains("Disallow: /admin") && robots.contains("Sitemap: /sitemap.xml"), "{robots}");
        catalog::set_status(&ctx, &[p.row.id], "active").await.unwrap();
        let sitemap = c.get(app.url("/sitemap.xml")).send().await.unwrap().text().await.unwrap();
        assert!(sitemap.contains("<loc>/products/linen-shirt</loc>") && !sitemap.contains(&d.row.handle), "{sitemap}");
        app.stop().await;
    }
}

fn item(title: &str, tags: &str, yuan: i64, stock: i64) -> ProductInput {
    ProductInput {
        title: title.into(),
        status: "active".into(),
        tags: tags.into(),
        variants: vec![VariantInput {
            track_inventory: true,
            initial_stock: stock,
            prices: vec![Price {
                currency: "CNY".into(),
                amount: yuan * 100,
                compare_at: None,
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

both_engines! {
    async fn collections_by_hand_and_by_rules_follow_the_catalog(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner("owner@example.com", "correct horse battery staple").await;
        let ctx = app.state.ctx.clone();
        let c = app.client();
        let cup = catalog::create(&ctx, &item("手工茶杯", "茶具", 88, 5), "t").await.unwrap();
        let pot = catalog::create(&ctx, &item("紫砂茶壶", "茶具", 680, 0), "t").await.unwrap();
        let tea = catalog::create(&ctx, &item("龙井绿茶", "茶叶", 298, 9), "t").await.unwrap();

        // Automatic: tag 茶具 AND price at most 100 yuan, in stock; through the admin form.
        let csrf = app.csrf(&owner, "/admin/collections/new").await;
        let form = [("_csrf", csrf.as_str()), ("title", "百元茶具"), ("handle", "cheap-teaware"), ("kind", "automatic"), ("match", "all"),
            ("rule0_field", "tag"), ("rule0_value", "茶具"), ("rule1_field", "price_at_most"), ("rule1_value", "100"), ("en_title", "Teaware under ¥100")];
        let r = owner.post(app.url("/admin/collections")).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        // A rule without a value is refused with a message.
        let bad = [("_csrf", csrf.as_str()), ("title", "x"), ("kind", "automatic"), ("rule0_field", "price_at_most"), ("rule0_value", "abc")];
        assert_eq!(owner.post(app.url("/admin/collections")).form(&bad).send().await.unwrap().status(), 422);
        // Manual: tea first, then the pot; an unknown handle is refused.
        let manual = [("_csrf", csrf.as_str()), ("title", "店长推荐"), ("handle", "picks"), ("kind", "manual"), ("products", "龙井绿茶\n紫砂茶壶")];
        assert_eq!(owner.post(app.url("/admin/collections")).form(&manual).send().await.unwrap().status(), 303);
        let unknown = [("_csrf", csrf.as_str()), ("title", "y"), ("kind", "manual"), ("products", "no-such-thing")];
        let r = owner.post(app.url("/admin/collections")).form(&unknown).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("不存在"));

        let page = c.get(app.url("/collections/cheap-teaware")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("手工茶杯") && !page.contains("紫砂茶壶") && !page.contains("龙井绿茶"), "{page}");
        let en = c.get(app.url("/collections/cheap-teaware")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(en.contains("<h1>Teaware under ¥100</h1>"), "{en}");
        let picks = c.get(app.url("/collections/picks")).send().await.unwrap().text().await.unwrap();
        let (a, b) = (picks.find("龙井绿茶").unwrap(), picks.find("紫砂茶壶").unwrap());
        assert!(a < b, "hand-picked order kept");
        assert_eq!(c.get(app.url("/collections/nope")).send().await.unwrap().status(), 404);
        let home = c.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("/collections/cheap-teaware") && home.contains("店长推荐"), "{home}");

        // A product that changes enters the automatic collection through the job queue, and search
        // filters by collection.
        let mut cheaper = item("紫砂茶壶", "茶具", 99, 0);
        cheaper.handle = pot.row.handle.clone();
        for (v, old) in cheaper.variants.iter_mut().zip(&pot.variants) {
            v.id = Some(old.row.id);
        }
        catalog::update(&ctx, pot.row.id, &cheaper, "t").await.unwrap();
        eventually(&app, &c, "茶壶", "紫砂茶壶", true).await;
        let start = Instant::now();
        loop {
            let page = c.get(app.url("/collections/cheap-teaware")).send().await.unwrap().text().await.unwrap();
            if page.contains("紫砂茶壶") {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the pot never joined: {page}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The membership commits just before the search document: wait for the document.
        let filtered = eventually(&app, &c, "茶", "紫砂茶壶", true).await;
        let start = Instant::now();
        let filtered = loop {
            let page = c.get(app.url("/search?q=茶&collection=cheap-teaware")).send().await.unwrap().text().await.unwrap();
            if page.contains("紫砂茶壶") {
                break page;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "never in the filtered search: {page}\n{filtered}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(filtered.contains("手工茶杯") && !filtered.contains("龙井绿茶"), "{filtered}");
        let unknown = c.get(app.url("/search?q=茶&collection=nope")).send().await.unwrap().text().await.unwrap();
        assert!(!unknown.contains("手工茶杯"), "an unknown collection matches nothing");
        let _ = (cup, tea);
        app.stop().await;
    }
}

both_engines! {
    async fn shop_pages_come_from_memory_until_the_catalog_changes(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = app.state.ctx.clone();
        let c = app.client();
        let p = catalog::create(&ctx, &item("手工茶杯", "茶具", 88, 5), "t").await.unwrap();
        let url = app.url(&format!("/products/{}", p.row.handle));
        eventually(&app, &c, "茶杯", "手工茶杯", true).await; // the index job has run
        assert!(c.get(&url).send().await.unwrap().text().await.unwrap().contains("<h1>手工茶杯</h1>"));
        // A write that bypasses the catalog service (as another process would) is not seen while
        // the cached page is current...
        sqlx::query("UPDATE products SET title = '改名茶杯' WHERE id = $1").bind(p.row.id).execute(ctx.db.write()).await.unwrap();
        assert!(c.get(&url).send().await.unwrap().text().await.unwrap().contains("<h1>手工茶杯</h1>"), "served from memory");
        // ...each language has its own entry...
        let en = c.get(&url).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
        assert!(en.contains("<h1>改名茶杯</h1>") && en.contains(r#"<html lang="en">"#));
        // ...and a change through the catalog renders it again at once.
        catalog::adjust(&ctx, p.variants[0].row.id, 1, "盘点", "t").await.unwrap();
        assert!(c.get(&url).send().await.unwrap().text().await.unwrap().contains("<h1>改名茶杯</h1>"));
        // At most TTL later even an outside change shows.
        sqlx::query("UPDATE products SET title = '再改茶杯' WHERE id = $1").bind(p.row.id).execute(ctx.db.write()).await.unwrap();
        tokio::time::sleep(yiren_web::page_cache::TTL + Duration::from_millis(100)).await;
        assert!(c.get(&url).send().await.unwrap().text().await.unwrap().contains("<h1>再改茶杯</h1>"));
        app.stop().await;
    }
}
