//! Shopify product CSV over real HTTP: the three header generations; the preview (what will be
//! created or updated, which lines are wrong — nothing written yet); the import job (a product
//! with a bad line is skipped whole, the rest imported; images by URL downloaded through the
//! guarded client; importing again changes nothing; stock moves by a recorded adjustment); and the
//! round trip: export → import into an empty shop → export is byte-identical. On both engines.

use std::time::{Duration, Instant};

use yiren_core::catalog::{self, Price, ProductInput, Translation, VariantInput};
use yiren_core::media;
use yiren_testkit::{both_engines, wait_until, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

const CLASSIC: &str = "Handle,Title,Body (HTML),Vendor,Type,Tags,Published,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,Option3 Value,Variant SKU,Variant Grams,Variant Inventory Tracker,Variant Inventory Qty,Variant Inventory Policy,Variant Fulfillment Service,Variant Price,Variant Compare At Price,Variant Requires Shipping,Variant Taxable,Variant Barcode,Image Src,Image Position,Image Alt Text,Gift Card,SEO Title,SEO Description,Google Shopping / Google Product Category,Google Shopping / Gender,Google Shopping / Age Group,Google Shopping / MPN,Google Shopping / AdWords Grouping,Google Shopping / AdWords Labels,Google Shopping / Condition,Google Shopping / Custom Product,Google Shopping / Custom Label 0,Google Shopping / Custom Label 1,Google Shopping / Custom Label 2,Google Shopping / Custom Label 3,Google Shopping / Custom Label 4,Variant Image,Variant Weight Unit,Variant Tax Code,Cost per item,Status";
const Y2024: &str = "Handle,Title,Body (HTML),Vendor,Product Category,Type,Tags,Published,Option1 Name,Option1 Value,Option1 Linked To,Option2 Name,Option2 Value,Option2 Linked To,Option3 Name,Option3 Value,Option3 Linked To,Variant SKU,Variant Grams,Variant Inventory Tracker,Variant Inventory Qty,Variant Inventory Policy,Variant Fulfillment Service,Variant Price,Variant Compare At Price,Variant Requires Shipping,Variant Taxable,Unit Price Total Measure,Unit Price Total Measure Unit,Unit Price Base Measure,Unit Price Base Measure Unit,Variant Barcode,Image Src,Image Position,Image Alt Text,Gift Card,SEO Title,SEO Description,Variant Image,Variant Weight Unit,Variant Tax Code,Cost per item,Status";

/// A CSV from a header and rows given as (column, value) pairs.
fn csv(header: &str, rows: &[&[(&str, &str)]]) -> String {
    let cols: Vec<&str> = header.split(',').collect();
    let mut w = String::from(header);
    w.push('\n');
    for r in rows {
        let line: Vec<String> = cols
            .iter()
            .map(|c| {
                let v = r
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| *v)
                    .unwrap_or("");
                if v.contains([',', '"', '\n']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v.to_string()
                }
            })
            .collect();
        w.push_str(&line.join(","));
        w.push('\n');
    }
    w
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 200) as u8, (y % 200) as u8, 60])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out
}

async fn upload(app: &TestApp, c: &reqwest::Client, name: &str, body: &str) -> reqwest::Response {
    let csrf = app.csrf(c, "/admin/products/import").await;
    let form = reqwest::multipart::Form::new().text("_csrf", csrf).part(
        "file",
        reqwest::multipart::Part::bytes(body.as_bytes().to_vec()).file_name(name.to_string()),
    );
    c.post(app.url("/admin/products/import"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Upload, check the preview says `expect`, start, wait until done; returns the report page.
async fn import(app: &TestApp, c: &reqwest::Client, body: &str, expect: &str) -> String {
    let r = upload(app, c, "products.csv", body).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let at = yiren_testkit::location(&r);
    let page = c
        .get(app.url(&at))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(expect),
        "preview should say {expect:?}:\n{page}"
    );
    let csrf = yiren_testkit::csrf_of(&page);
    let r = c
        .post(app.url(&format!("{at}/start")))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let start = Instant::now();
    loop {
        let page = c
            .get(app.url(&at))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains("完成") {
            return page;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the import never finished:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn export(app: &TestApp, c: &reqwest::Client) -> String {
    let r = c
        .get(app.url("/admin/products/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    r.text().await.unwrap()
}

async fn all_ready(app: &TestApp) -> bool {
    let ctx = &app.state.ctx;
    let ids = catalog::all_ids(ctx, 0, 1000).await.unwrap();
    let m = media::of_products(ctx, &ids).await.unwrap();
    m.values().flatten().all(|m| m.row.status == "ready")
}

both_engines! {
    async fn every_header_generation_imports_with_a_preview_and_a_per_line_report(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.setup_owner(OWNER, PW).await;
        let ctx = app.state.ctx.clone();
        // A picture host for the image URLs.
        let served = jpeg(800, 600);
        let host = axum::Router::new().route("/cdn/mug.jpg", axum::routing::get(move || { let b = served.clone(); async move { ([("content-type", "image/jpeg")], b) } }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let img = format!("http://{}/cdn/mug.jpg", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, host).await.unwrap() });

        // Classic: a mug with two colours and an image row, a single-variant product, and a
        // product with a bad price on its second line (skipped whole), and a gift card.
        let classic = csv(CLASSIC, &[
            &[("Handle", "ceramic-mug"), ("Title", "手工陶瓷马克杯"), ("Body (HTML)", "<p>手工拉坯, <strong>釉下彩</strong></p>"), ("Vendor", "一人小店"), ("Type", "杯子"), ("Tags", "陶瓷, 杯子"), ("Published", "TRUE"),
              ("Option1 Name", "颜色"), ("Option1 Value", "白"), ("Variant SKU", "MUG-W"), ("Variant Grams", "350"), ("Variant Inventory Tracker", "shopify"), ("Variant Inventory Qty", "12"), ("Variant Inventory Policy", "deny"),
              ("Variant Price", "88.00"), ("Variant Compare At Price", "99.00"), ("Variant Requires Shipping", "TRUE"), ("Image Src", img.as_str()), ("Image Position", "1"), ("Image Alt Text", "白色马克杯"), ("Gift Card", "FALSE"), ("Cost per item", "30.00"), ("Status", "active")],
            &[("Handle", "ceramic-mug"), ("Option1 Value", "青"), ("Variant SKU", "MUG-G"), ("Variant Grams", "350"), ("Variant Inventory Tracker", "shopify"), ("Variant Inventory Qty", "3"), ("Variant Inventory Policy", "continue"), ("Variant Price", "98.50"), ("Variant Requires Shipping", "TRUE")],
            &[("Handle", "ceramic-mug"), ("Image Src", img.as_str()), ("Image Position", "2")],
            &[("Handle", "tea-towel"), ("Title", "Tea towel"), ("Published", "FALSE"), ("Option1 Name", "Title"), ("Option1 Value", "Default Title"), ("Variant Price", "25"), ("Variant Requires Shipping", "TRUE"), ("Status", "draft")],
            &[("Handle", "broken"), ("Title", "Broken"), ("Option1 Name", "Size"), ("Option1 Value", "S"), ("Variant Price", "10.00")],
            &[("Handle", "broken"), ("Option1 Value", "M"), ("Variant Price", "ten yuan")],
            &[("Handle", "card"), ("Title", "Gift card"), ("Gift Card", "TRUE"), ("Variant Price", "100")],
        ]);
        let r = upload(&app, &c, "classic.csv", &classic).await;
        let at = yiren_testkit::location(&r);
        let preview = c.get(app.url(&at)).send().await.unwrap().text().await.unwrap();
        assert!(preview.contains("Shopify 旧版表头") && preview.contains("7 行"), "{preview}");
        assert!(preview.contains("将新建 2 个商品、更新 0 个；2 个无法导入"), "{preview}");
        assert!(preview.contains("第 7 行 (Price)"), "the bad price, by line and column: {preview}");
        assert!(preview.contains("不导入礼品卡"), "{preview}");
        assert_eq!(catalog::count(&ctx, &Default::default()).await.unwrap(), 0, "the preview writes nothing");
        let done = import(&app, &c, &classic, "将新建 2 个商品").await;
        assert!(done.contains("新建 2 个商品，更新 0 个，跳过 2 个"), "{done}");
        let mug = match catalog::by_handle(&ctx, "ceramic-mug").await.unwrap() { catalog::Found::Product(p) => p, _ => panic!() };
        assert_eq!((mug.row.status.as_str(), mug.row.vendor.as_str(), mug.row.tags.as_str()), ("active", "一人小店", "陶瓷, 杯子"));
        let vs: Vec<_> = mug.variants.iter().map(|v| (v.row.sku.as_str(), v.prices[0].amount, v.prices[0].compare_at, v.row.inventory_quantity, v.row.inventory_policy.as_str(), v.row.cost)).collect();
        assert_eq!(vs, [("MUG-W", 8800, Some(9900), 12, "deny", Some(3000)), ("MUG-G", 9850, None, 3, "continue", None)]);
        assert!(matches!(catalog::by_handle(&ctx, "broken").await, Err(yiren_core::DomainError::NotFound)), "nothing of a bad product");
        let towel = match catalog::by_handle(&ctx, "tea-towel").await.unwrap() { catalog::Found::Product(p) => p, _ => panic!() };
        assert!(towel.options.is_empty() && towel.variants.len() == 1 && towel.row.status == "draft");
        // The image, once (the two rows name the same URL), downloaded and sized.
        wait_until("the image is downloaded", || async { all_ready(&app).await }).await;
        let m = media::of_product(&ctx, mug.row.id).await.unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].row.width, m[0].row.source_url.as_str()), (800, img.as_str()));
        assert_eq!(m[0].alt.get("zh-CN").map(String::as_str), Some("白色马克杯"));

        // Importing the same file again: both updated, nothing duplicated; a changed quantity
        // becomes a recorded adjustment.
        let again = classic.replace("\"12\"", "12").replacen(",12,deny", ",20,deny", 1);
        assert!(again.contains(",20,deny"));
        let done = import(&app, &c, &again, "将新建 0 个商品、更新 2 个").await;
        assert!(done.contains("更新 2 个"), "{done}");
        let mug2 = catalog::get(&ctx, mug.row.id).await.unwrap();
        assert_eq!(mug2.variants.iter().map(|v| (v.row.id, v.row.inventory_quantity)).collect::<Vec<_>>(), vec![(mug.variants[0].row.id, 20), (mug.variants[1].row.id, 3)], "same variants");
        let hist = catalog::history(&ctx, &mug2, 5).await.unwrap();
        assert_eq!((hist[0].delta, hist[0].reason.as_str()), (8, "CSV import"));
        assert!(hist[0].actor.contains(OWNER));
        assert_eq!(media::of_product(&ctx, mug.row.id).await.unwrap().len(), 1, "the image is not added twice");

        // 2024 header: handle-less continuation rows, a product category column ignored.
        let y2024 = csv(Y2024, &[
            &[("Handle", "linen-shirt"), ("Title", "Linen shirt"), ("Product Category", "Apparel"), ("Option1 Name", "Size"), ("Option1 Value", "S"), ("Option1 Linked To", ""), ("Variant Price", "329"), ("Variant Inventory Tracker", "shopify"), ("Variant Inventory Qty", "5"), ("Status", "active")],
            &[("Handle", "linen-shirt"), ("Option1 Value", "M"), ("Variant Price", "339.5"), ("Variant Inventory Tracker", "shopify"), ("Variant Inventory Qty", "0")],
        ]);
        let done = import(&app, &c, &y2024, "Shopify 2024 版表头").await;
        assert!(done.contains("新建 1 个商品"), "{done}");
        // 2025 template: plain-English names.
        let y2025 = "Title,URL handle,Description,Vendor,Product category,Type,Tags,Published on online store,Status,SKU,Barcode,Option1 name,Option1 value,Option1 Linked To,Option2 name,Option2 value,Option2 Linked To,Option3 name,Option3 value,Option3 Linked To,Price,Compare-at price,Cost per item,Charge tax,Tax code,Unit price total measure,Unit price total measure unit,Unit price base measure,Unit price base measure unit,Inventory tracker,Inventory quantity,Continue selling when out of stock,Weight value (grams),Weight unit for display,Requires shipping,Fulfillment service,Product image URL,Image position,Image alt text,Variant image URL,Gift card,SEO title,SEO description\n\
            Ebook,guide-ebook,<p>PDF</p>,,,,,TRUE,active,EB-1,,Title,Default Title,,,,,,,,19.90,,,TRUE,,,,,,,,DENY,0,g,FALSE,manual,,,,,FALSE,,\n\
            Notebook,notebook,,,,,,TRUE,active,NB-A5,,Size,A5,,Paper,Dotted,,,,,12.00,15.00,,TRUE,,,,,,shopify,40,CONTINUE,200,g,TRUE,manual,,,,,FALSE,,\n\
            ,notebook,,,,,,,,NB-A4,,,A4,,,Dotted,,,,,16.00,,,TRUE,,,,,,shopify,10,DENY,300.4,g,TRUE,manual,,,,,,,\n";
        let done = import(&app, &c, y2025, "Shopify 2025 版模板").await;
        assert!(done.contains("新建 2 个商品"), "{done}");
        let nb = match catalog::by_handle(&ctx, "notebook").await.unwrap() { catalog::Found::Product(p) => p, _ => panic!() };
        assert_eq!(nb.options.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["Size", "Paper"]);
        assert_eq!(nb.variants.iter().map(|v| (v.title(), v.row.grams, v.row.inventory_quantity, v.row.inventory_policy.as_str())).collect::<Vec<_>>(),
            vec![("A5 / Dotted".to_string(), 200, 40, "continue"), ("A4 / Dotted".to_string(), 300, 10, "deny")]);
        let eb = match catalog::by_handle(&ctx, "guide-ebook").await.unwrap() { catalog::Found::Product(p) => p, _ => panic!() };
        assert_eq!((eb.variants[0].row.requires_shipping, eb.variants[0].row.track_inventory), (0, 0));

        // Refusals of the file itself: not CSV columns we know, not UTF-8, no file.
        let r = upload(&app, &c, "x.csv", "a,b\n1,2\n").await;
        let page = c.get(app.url(&yiren_testkit::location(&r))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("至少需要 Title 和 Price"), "{page}");
        let csrf = app.csrf(&c, "/admin/products/import").await;
        let form = reqwest::multipart::Form::new().text("_csrf", csrf).part("file", reqwest::multipart::Part::bytes(vec![0xff, 0xfe, 0x00]).file_name("x.csv"));
        let r = c.post(app.url("/admin/products/import")).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("UTF-8"));
    }

    async fn export_then_import_into_an_empty_shop_then_export_is_identical(engine: Engine) {
        let a = TestApp::spawn(engine).await;
        let ca = a.setup_owner(OWNER, PW).await;
        let ctx = a.state.ctx.clone();
        let price = |amount: i64, compare_at: Option<i64>| vec![Price { currency: "CNY".into(), amount, compare_at }];
        let shirt = ProductInput {
            title: "亚麻衬衫".into(),
            body: "透气**亚麻**面料，\n\n- 宽松\n- 可机洗".into(),
            status: "active".into(),
            vendor: "一人小店".into(),
            product_type: "衬衫".into(),
            tags: "服装, 夏季, 新品".into(),
            seo_title: "亚麻衬衫 | 一人小店".into(),
            seo_description: "夏天穿的亚麻衬衫".into(),
            options: vec!["尺码".into(), "颜色".into()],
            variants: vec![
                VariantInput { values: vec!["S".into(), "白".into()], sku: "LS-S-W".into(), barcode: "6901234567890".into(), grams: 220, track_inventory: true, initial_stock: 5, cost: Some(12000), prices: price(32900, Some(39900)), ..Default::default() },
                VariantInput { values: vec!["M".into(), "白".into()], sku: "LS-M-W".into(), grams: 240, track_inventory: true, initial_stock: 0, continue_selling: true, prices: price(33950, None), ..Default::default() },
                VariantInput { values: vec!["M".into(), "蓝, 深".into()], sku: "LS-M-B".into(), grams: 240, prices: price(33950, None), ..Default::default() },
            ],
            translations: vec![Translation {
                locale: "en".into(),
                title: "Linen shirt".into(),
                body: "Breathable \"linen\".".into(),
                options: vec!["Size".into(), "Colour".into()],
                values: [("白".to_string(), "White".to_string()), ("蓝, 深".to_string(), "Deep blue".to_string())].into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let course = ProductInput {
            title: "摄影课".into(),
            kind: catalog::Kind::Membership,
            details: catalog::Details { membership_days: Some(365), ..Default::default() },
            status: "draft".into(),
            variants: vec![VariantInput { requires_shipping: Some(false), prices: price(19900, None), ..Default::default() }],
            ..Default::default()
        };
        let s = catalog::create(&ctx, &shirt, "test").await.unwrap();
        catalog::create(&ctx, &course, "test").await.unwrap();
        // An uploaded photo with alt text.
        let csrf = a.csrf(&ca, &format!("/admin/products/{}", s.row.id)).await;
        let form = reqwest::multipart::Form::new().text("_csrf", csrf).text("alt_zh-CN", "白色亚麻衬衫").part("file", reqwest::multipart::Part::bytes(jpeg(640, 480)).file_name("s.jpg"));
        let r = ca.post(a.url(&format!("/admin/products/{}/media", s.row.id))).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 303);
        wait_until("shop A's photo is ready", || async { all_ready(&a).await }).await;

        let first = export(&a, &ca).await;
        assert!(first.starts_with("Title,URL handle,Description,Vendor,Product category,Type,Tags,Published on online store,Status,SKU,"), "{first}");
        assert!(first.contains("\"蓝, 深\"") && first.contains("Linen shirt") && first.contains("membership"), "{first}");
        assert!(first.contains("Options (product.metafields.yiren.options_en)") && first.contains("Deep blue"), "{first}");
        assert!(first.contains(&format!("{}/media/products/{}/", a.base, s.row.id)), "the photo's address at shop A");

        let b = TestApp::spawn(engine).await;
        let cb = b.setup_owner(OWNER, PW).await;
        let done = import(&b, &cb, &first, "将新建 2 个商品、更新 0 个；0 个无法导入").await;
        assert!(done.contains("新建 2 个商品"), "{done}");
        wait_until("shop B downloaded the photo from shop A", || async { all_ready(&b).await }).await;
        let second = export(&b, &cb).await;
        assert_eq!(second, first, "export → import into an empty shop → export is identical");
        // The copy is real: shop B serves the photo from its own files.
        let ids = catalog::all_ids(&b.state.ctx, 0, 10).await.unwrap();
        let m = media::of_products(&b.state.ctx, &ids).await.unwrap();
        let photo = m.values().flatten().next().unwrap();
        let r = cb.get(b.url(&media::file_url(&photo.row.storage_key))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let course_b = match catalog::by_handle(&b.state.ctx, "摄影课").await.unwrap() { catalog::Found::Product(p) => p, _ => panic!() };
        assert_eq!(course_b.row.kind, "membership");
    }
}
