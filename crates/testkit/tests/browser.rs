//! The first-run flow a person clicks through, in headless Chromium: open the printed setup URL,
//! create the owner, sign out, sign in again. Screenshots go to target/test-artifacts/.

use std::time::Duration;

use fantoccini::Locator;
use yiren_testkit::browser::Browser;
use yiren_testkit::process::Server;
use yiren_testkit::{artifact_path, Engine, TestDb};

async fn wait_for_text(b: &fantoccini::Client, css: &str, text: &str) {
    for _ in 0..100 {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            if e.text().await.unwrap_or_default().contains(text) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{css} never showed {text:?}; page: {}",
        b.source().await.unwrap_or_default()
    );
}

/// The element `what`, waiting up to 10 s for it (a loaded CI machine can still be loading or
/// rendering the page); an element that never comes fails with the page's address and source.
async fn find(b: &fantoccini::Client, what: Locator<'_>) -> fantoccini::elements::Element {
    for _ in 0..100 {
        if let Ok(e) = b.find(what).await {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what:?} never appeared at {}; page: {}",
        b.current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default(),
        b.source().await.unwrap_or_default()
    );
}

async fn click(b: &fantoccini::Client, what: Locator<'_>) {
    find(b, what).await.click().await.unwrap();
}

async fn shot(b: &fantoccini::Client, name: &str) {
    std::fs::write(artifact_path(name), b.screenshot().await.unwrap()).unwrap();
}

/// The owner (set up with the tests' passphrase) signs in to admin from the sign-in page.
async fn owner_signs_in(b: &fantoccini::Client, base: &str) {
    b.goto(&format!("{base}/admin/sign-in")).await.unwrap();
    fill(b, "email", "owner@example.com").await;
    fill(b, "password", "a long owner passphrase").await;
    click(b, Locator::Id("sign-in-submit")).await;
    wait_for_text(b, "h1", "概览").await;
}

/// Type into the field named `name` (waited for, as [`find`] does).
async fn fill(b: &fantoccini::Client, name: &str, value: &str) {
    let css = format!("input[name={name}]");
    find(b, Locator::Css(&css))
        .await
        .send_keys(value)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_sets_up_the_site_signs_out_and_signs_in_again_in_a_real_browser() {
    let t = TestDb::new(Engine::Sqlite).await;
    let server = Server::start(t.dir(), "", &[]);
    let setup_url = server
        .setup_url
        .clone()
        .expect("the first start prints a setup URL");
    let browser = Browser::start().await;
    let b = &browser.client;

    b.goto(&setup_url).await.unwrap();
    wait_for_text(b, "h1", "初始化").await;
    fill(b, "site_name", "一人小店").await;
    fill(b, "name", "店主").await;
    fill(b, "email", "owner@example.com").await;
    fill(b, "password", "a long owner passphrase").await;
    fill(b, "password_confirm", "a long owner passphrase").await;
    shot(b, "setup.png").await;
    click(b, Locator::Id("setup-submit")).await;

    wait_for_text(b, "h1", "概览").await;
    assert!(b.source().await.unwrap().contains("一人小店"));
    shot(b, "dashboard.png").await;

    // The setup link is dead now.
    b.goto(&setup_url).await.unwrap();
    wait_for_text(b, "h1", "404").await;

    b.goto(&format!("{}/admin", server.base)).await.unwrap();
    wait_for_text(b, "h1", "概览").await;
    click(b, Locator::Id("sign-out")).await;
    wait_for_text(b, "h1", "登录管理后台").await;

    fill(b, "email", "owner@example.com").await;
    fill(b, "password", "a long owner passphrase").await;
    click(b, Locator::Id("sign-in-submit")).await;
    wait_for_text(b, "h1", "概览").await;
    shot(b, "signed-in-again.png").await;

    // Switch to English from the language switcher.
    click(b, Locator::Css("a[hreflang=en]")).await;
    wait_for_text(b, "h1", "Dashboard").await;
    shot(b, "dashboard-en.png").await;
    browser.close().await;
}

/// Email-code sign-up with the code read from the captured mail, then a passkey registered and used
/// to sign in (Chromium's virtual authenticator over WebDriver), then the passkey as a second step
/// after an email code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_up_by_email_code_then_signs_in_with_a_passkey() {
    let app = yiren_testkit::TestApp::spawn(Engine::Sqlite).await;
    // WebAuthn needs a domain as relying party: open the site as localhost, not 127.0.0.1.
    let base = app.base.replace("127.0.0.1", "localhost");
    let browser = Browser::start().await;
    let b = &browser.client;
    let email = "buyer@example.com";

    b.goto(&format!("{base}/account/sign-in")).await.unwrap();
    wait_for_text(b, "h1", "登录或注册").await;
    fill(b, "email", email).await;
    click(b, Locator::Id("send-code")).await;
    wait_for_text(b, "h1", "输入验证码").await;
    let code = yiren_testkit::code_in_mail(&app.wait_for_mail(email, 0).await);
    fill(b, "code", &code).await;
    shot(b, "customer-code.png").await;
    click(b, Locator::Id("verify-code")).await;
    wait_for_text(b, "#my-email", email).await;
    wait_for_text(b, ".notice", "欢迎").await;

    // Register a passkey from the security page.
    let authenticator = browser.add_virtual_authenticator().await;
    b.goto(&format!("{base}/account/security")).await.unwrap();
    wait_for_text(b, "h1", "登录与安全").await;
    b.find(Locator::Id("passkey-name"))
        .await
        .unwrap()
        .send_keys("测试手机")
        .await
        .unwrap();
    click(b, Locator::Id("add-passkey")).await;
    wait_for_text(b, ".notice", "通行密钥已添加").await;
    assert!(b.source().await.unwrap().contains("测试手机"));
    let held = browser.authenticator_credentials(&authenticator).await;
    assert_eq!(held.len(), 1, "one resident credential: {held:?}");
    assert_eq!(held[0]["isResidentCredential"], true);
    shot(b, "customer-passkey-added.png").await;

    // Sign out, then sign in with the passkey alone (no email typed).
    click(b, Locator::Id("customer-sign-out")).await;
    wait_for_text(b, "h1", "登录或注册").await;
    click(b, Locator::Id("passkey-sign-in")).await;
    wait_for_text(b, "#my-email", email).await;
    let id = yiren_store::customer::find_by_email(app.state.ctx.db.read(), email)
        .await
        .unwrap()
        .unwrap()
        .id;
    let sessions = yiren_core::customer::sessions(&app.state.ctx, id)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].method, "passkey");
    let keys = yiren_core::customer::passkey::list(&app.state.ctx, id)
        .await
        .unwrap();
    assert!(keys[0].last_used_at.is_some());

    // Two-step: require the passkey after other methods; an email code then only gets half-way.
    b.goto(&format!("{base}/account/security")).await.unwrap();
    click(b, Locator::Id("second-factor-on")).await;
    wait_for_text(b, ".notice", "已保存").await;
    click(b, Locator::Id("customer-sign-out")).await;
    wait_for_text(b, "h1", "登录或注册").await;
    fill(b, "email", email).await;
    click(b, Locator::Id("send-code")).await;
    wait_for_text(b, "h1", "输入验证码").await;
    let code = yiren_testkit::code_in_mail(&app.wait_for_mail(email, 1).await);
    fill(b, "code", &code).await;
    click(b, Locator::Id("verify-code")).await;
    wait_for_text(b, "h1", "确认是你本人").await;
    shot(b, "customer-second-factor.png").await;
    click(b, Locator::Id("second-factor")).await;
    wait_for_text(b, "#my-email", email).await;
    browser.close().await;
}

/// WeChat message login in a real browser: the page shows the code and completes on its own (no
/// reload) once the signed message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wechat_page_completes_by_itself_when_the_code_is_sent() {
    use yiren_core::Clock as _;
    let app = yiren_testkit::TestApp::spawn(Engine::Sqlite).await;
    let mut m = yiren_core::customer::settings::load(&app.state.ctx)
        .await
        .unwrap();
    m.wechat.enabled = true;
    m.wechat.token = "browser-token".into();
    m.wechat.account_name = "小店".into();
    yiren_core::customer::settings::save(&app.state.ctx, &m)
        .await
        .unwrap();
    let browser = Browser::start().await;
    let b = &browser.client;
    b.goto(&format!("{}/account/wechat", app.base))
        .await
        .unwrap();
    click(b, Locator::Id("wechat-start")).await;
    wait_for_text(b, "#wechat-status", "等待").await;
    let code = b
        .find(Locator::Css("#wechat-code strong"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(code.len(), 6);
    shot(b, "customer-wechat-code.png").await;
    // WeChat delivers the customer's message, signed.
    let ts = (app.clock.now_ms() / 1000).to_string();
    let mut parts = ["browser-token".to_string(), ts.clone(), "n".to_string()];
    parts.sort();
    use sha1::Digest;
    let sig = hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()));
    let xml = format!("<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[oBROWSER]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{code}]]></Content><MsgId>77</MsgId></xml>");
    let r = reqwest::Client::new()
        .post(app.url(&format!(
            "/wechat/callback?signature={sig}&timestamp={ts}&nonce=n"
        )))
        .body(xml)
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("登录成功"));
    // The page notices by itself and lands in the new account.
    wait_for_text(b, ".notice", "欢迎").await;
    shot(b, "customer-wechat-signed-in.png").await;
    browser.close().await;
}

/// Search the shop in the browser until `q` lists a result titled `title` (the index follows the
/// catalog through the job queue), then open it.
async fn search_and_open(b: &fantoccini::Client, base: &str, q: &str, title: &str) {
    for _ in 0..100 {
        b.goto(&format!("{base}/")).await.unwrap();
        fill(b, "q", q).await;
        click(b, Locator::Css("form.search button")).await;
        wait_for_text(b, "main", "").await;
        if let Ok(card) = b.find(Locator::Css("ul.cards a")).await {
            if card.text().await.unwrap_or_default().contains(title) {
                card.click().await.unwrap();
                wait_for_text(b, "h1", title).await;
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "search for {q:?} never listed {title:?}: {}",
        b.source().await.unwrap_or_default()
    );
}

/// The owner creates a product with two variants in admin, uploads a photo to it, and a shopper
/// finds it through the shop's search in Chinese and in English and opens it; the photo loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_adds_a_product_with_a_photo_and_a_shopper_finds_it_in_both_languages() {
    let app = yiren_testkit::TestApp::spawn(Engine::Sqlite).await;
    app.setup_owner("owner@example.com", "a long owner passphrase")
        .await;
    let browser = Browser::start().await;
    let b = &browser.client;
    let base = app.base.clone();

    owner_signs_in(b, &base).await;

    b.goto(&format!("{base}/admin/products/new")).await.unwrap();
    wait_for_text(b, "h1", "新建商品").await;
    fill(b, "title", "手工陶瓷马克杯").await;
    b.find(Locator::Css("select[name=status]"))
        .await
        .unwrap()
        .select_by_value("active")
        .await
        .unwrap();
    fill(b, "option1", "颜色").await;
    fill(b, "v0_value1", "白色").await;
    fill(b, "v0_price", "88").await;
    fill(b, "v1_value1", "黑色").await;
    fill(b, "v1_price", "98.50").await;
    fill(b, "en_title", "Handmade Ceramic Mug").await;
    shot(b, "product-new.png").await;
    click(b, Locator::Id("save-product")).await;
    wait_for_text(b, "h1", "手工陶瓷马克杯").await;

    // The photo, through the file picker.
    let photo = artifact_path("mug.jpg");
    let img = image::RgbImage::from_fn(1200, 900, |x, y| {
        image::Rgb([(x / 5 % 256) as u8, (y / 4 % 256) as u8, 160])
    });
    img.save(&photo).unwrap();
    b.find(Locator::Css("input[type=file][name=file]"))
        .await
        .unwrap()
        .send_keys(photo.to_str().unwrap())
        .await
        .unwrap();
    fill(b, "alt_zh-CN", "白色陶瓷马克杯").await;
    fill(b, "alt_en", "White ceramic mug").await;
    click(b, Locator::Id("media-add")).await;
    wait_for_text(b, "main", "已添加").await;
    let id = yiren_core::catalog::list(&app.state.ctx, &Default::default(), 0, 10)
        .await
        .unwrap()[0]
        .row
        .id;
    for _ in 0..200 {
        let m = yiren_core::media::of_product(&app.state.ctx, id)
            .await
            .unwrap();
        if m.len() == 1 && m[0].row.status == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.refresh().await.unwrap();
    shot(b, "product-editor-with-photo.png").await;

    // A shopper: Chinese search, unspaced, then English after switching language.
    search_and_open(b, &base, "陶瓷杯子", "手工陶瓷马克杯").await;
    let source = b.source().await.unwrap();
    assert!(
        source.contains("白色") && source.contains("黑色"),
        "both variants"
    );
    assert!(source.contains("¥98.50"), "{source}");
    let loaded = b
        .execute(
            "const i = document.querySelector('.gallery img'); return [i.complete, i.naturalWidth, i.alt, i.currentSrc];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(loaded[0], true, "{loaded}");
    assert_eq!(loaded[1], 640, "the medium size is shown: {loaded}");
    assert_eq!(loaded[2], "白色陶瓷马克杯");
    assert!(
        loaded[3].as_str().unwrap().ends_with(".webp"),
        "Chromium takes the WebP source: {loaded}"
    );
    shot(b, "product-zh.png").await;

    click(b, Locator::Css("a[hreflang=en]")).await;
    search_and_open(b, &base, "ceramic mug", "Handmade Ceramic Mug").await;
    let alt = b
        .execute("return document.querySelector('.gallery img').alt;", vec![])
        .await
        .unwrap();
    assert_eq!(alt, "White ceramic mug");
    shot(b, "product-en.png").await;
    browser.close().await;
}

/// A guest buys a digital product with manual payment, the owner confirms the payment in admin,
/// and the guest downloads the file from the order page: the owner uploads the file in the
/// product editor, the guest sees the receipt QR code, and the saved file is the uploaded one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_buys_a_digital_product_the_owner_confirms_and_the_guest_downloads_it() {
    use yiren_core::catalog::Kind;
    let app = yiren_testkit::TestApp::spawn(Engine::Sqlite).await;
    app.setup_owner("owner@example.com", "a long owner passphrase")
        .await;
    let ctx = &app.state.ctx;
    let cfg = yiren_core::checkout::Config {
        manual: yiren_core::checkout::Manual {
            wechat: "wxp://f2f0browser".into(),
            instructions: "招商银行 6225 0000 0000 0000（张三）".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    yiren_core::checkout::save_config(ctx, &cfg).await.unwrap();
    let v = yiren_testkit::product(ctx, "handbook", Kind::Digital, &[("HB", 4_900, 100)]).await[0];
    let product = yiren_store::catalog::get_variant(ctx.db.read(), v)
        .await
        .unwrap()
        .product_id;
    let saved = tempfile::tempdir().unwrap();
    let browser = Browser::start_with_downloads(Some(saved.path())).await;
    let b = &browser.client;
    let base = app.base.clone();

    // The owner uploads the handbook in the product editor.
    owner_signs_in(b, &base).await;
    b.goto(&format!("{base}/admin/products/{product}"))
        .await
        .unwrap();
    let handbook = artifact_path("一人公司手册.pdf");
    let pdf = b"%PDF-1.7\n% the handbook\n%%EOF\n".to_vec();
    std::fs::write(&handbook, &pdf).unwrap();
    b.find(Locator::Css("#file-upload input[type=file]"))
        .await
        .unwrap()
        .send_keys(handbook.to_str().unwrap())
        .await
        .unwrap();
    click(b, Locator::Id("file-add")).await;
    wait_for_text(b, "#product-files", "一人公司手册.pdf").await;
    shot(b, "digital-files.png").await;

    // A guest buys it with manual payment.
    b.goto(&format!("{base}/products/handbook")).await.unwrap();
    click(b, Locator::Css("#add-to-cart button")).await;
    // The add answers with the cart page; going on before it has come raced it (CI once saw
    // /checkout bounce to the cart, still empty for that request).
    wait_for_text(b, "main.cart", "handbook").await;
    click(b, Locator::Id("to-checkout")).await;
    fill(b, "email", "reader@example.com").await;
    click(b, Locator::Css("#checkout-form button[type=submit]")).await;
    wait_for_text(b, "#order-status", "等待付款").await;
    assert!(
        b.find(Locator::Css("#pay svg")).await.is_ok(),
        "the receipt QR code"
    );
    let order_url = b.current_url().await.unwrap().to_string();
    shot(b, "digital-order-pending.png").await;
    assert!(
        b.find(Locator::Css("#downloads")).await.is_err(),
        "nothing to download before payment"
    );

    // The owner confirms the payment in admin.
    b.goto(&format!("{base}/admin/orders")).await.unwrap();
    click(b, Locator::Css("main table a[href^='/admin/orders/']")).await;
    click(b, Locator::Css("#confirm-form button")).await;
    wait_for_text(b, "main", "已确认收款").await;

    // The guest comes back to the order page and downloads the file.
    b.goto(&order_url).await.unwrap();
    wait_for_text(b, "#order-status", "已付款").await;
    shot(b, "digital-order-paid.png").await;
    click(b, Locator::Css("#downloads a[download]")).await;
    let file = saved.path().join("一人公司手册.pdf");
    for _ in 0..100 {
        if std::fs::read(&file).is_ok_and(|got| got == pdf) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read(&file).unwrap_or_default(),
        pdf,
        "saved: {:?}",
        std::fs::read_dir(saved.path()).unwrap().collect::<Vec<_>>()
    );
    let orders = yiren_core::order::list(ctx, None, 10, 0).await.unwrap();
    let granted = yiren_core::delivery::entitlements(ctx, orders[0].id)
        .await
        .unwrap();
    assert_eq!(granted[0].downloads, 1);
    browser.close().await;
}

/// A fake EPay aggregator, and the shop's "支付宝" gateway set up to show its QR code.
async fn epay_qr_gateway(ctx: &yiren_core::Ctx) -> yiren_testkit::fake_epay::FakeEpay {
    use std::collections::BTreeMap;
    let fake = yiren_testkit::fake_epay::FakeEpay::start("1001", "browser-epay-key").await;
    let gateway = yiren_core::payment::settings::GatewayConfig {
        id: "epay".into(),
        kind: "epay".into(),
        name: "支付宝".into(),
        enabled: true,
        fields: BTreeMap::from([
            ("base_url".into(), fake.desk.base.clone()),
            ("pid".into(), "1001".into()),
            ("type".into(), "alipay".into()),
            ("mode".into(), "api".into()),
        ]),
        secrets: BTreeMap::from([("key".into(), "browser-epay-key".into())]),
    };
    yiren_core::payment::settings::put(ctx, gateway)
        .await
        .unwrap();
    fake
}

/// A guest pays through an EPay aggregator: the order page shows the aggregator's QR code; the
/// customer pays on their phone (the fake aggregator takes the payment and notifies the shop);
/// the page turns to "paid" by itself — the same page, never reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_pays_by_epay_qr_and_the_order_page_turns_paid_without_a_reload() {
    use yiren_core::catalog::Kind;
    let app = yiren_testkit::TestApp::spawn(Engine::Sqlite).await;
    let ctx = &app.state.ctx;
    let fake = epay_qr_gateway(ctx).await;
    yiren_testkit::product(ctx, "qrbook", Kind::Digital, &[("QB", 2_900, 100)]).await;
    let browser = Browser::start().await;
    let b = &browser.client;
    let base = app.base.clone();

    b.goto(&format!("{base}/products/qrbook")).await.unwrap();
    click(b, Locator::Css("#add-to-cart button")).await;
    wait_for_text(b, "main.cart", "qrbook").await;
    click(b, Locator::Id("to-checkout")).await;
    fill(b, "email", "scanner@example.com").await;
    click(b, Locator::Css("input[name=gateway][value=epay]")).await;
    click(b, Locator::Css("#checkout-form button[type=submit]")).await;
    wait_for_text(b, "#order-status", "等待付款").await;
    find(b, Locator::Css("#pay-qr svg")).await;
    shot(b, "epay-order-qr.png").await;
    // Marked, so a reload (which would forget the mark) is seen.
    b.execute("window.__sameDocument = 42; return true;", vec![])
        .await
        .unwrap();

    let order = yiren_core::order::list(ctx, None, 1, 0).await.unwrap()[0].id;
    fake.desk
        .trade(&order.to_string())
        .expect("mapi.php was asked");
    yiren_testkit::fake_gateway::GatewayFake::pay(&fake, &order.to_string());
    wait_for_text(b, "#order-status", "已付款").await;
    assert_eq!(
        b.execute("return window.__sameDocument;", vec![])
            .await
            .unwrap(),
        serde_json::json!(42),
        "the page changed without a reload"
    );
    assert!(
        b.find(Locator::Css("#pay-qr")).await.is_err(),
        "the QR code is gone"
    );
    shot(b, "epay-order-paid.png").await;
    assert_eq!(
        fake.desk.trade(&order.to_string()).unwrap().answers,
        vec![(200, "success".to_string())]
    );
    browser.close().await;
}

/// A guest pays through Stripe Checkout: the checkout sends the browser out to Stripe's hosted
/// page (the fake), the customer pays there and is sent back to the order page, which shows the
/// order paid once the signed webhook has arrived — whichever of the two comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_pays_by_stripe_checkout_out_and_back() {
    use yiren_core::catalog::Kind;
    use yiren_testkit::fake_gateway::GatewayFake;
    let app = yiren_testkit::TestApp::spawn(Engine::Sqlite).await;
    let ctx = &app.state.ctx;
    let fake = yiren_testkit::fake_stripe::FakeStripe::start().await;
    yiren_testkit::gateway_suite::configure(&app, &fake).await;
    yiren_testkit::product(ctx, "cardbook", Kind::Digital, &[("CB", 4_900, 100)]).await;
    let browser = Browser::start().await;
    let b = &browser.client;
    let base = app.base.clone();

    b.goto(&format!("{base}/products/cardbook")).await.unwrap();
    click(b, Locator::Css("#add-to-cart button")).await;
    wait_for_text(b, "main.cart", "cardbook").await;
    click(b, Locator::Id("to-checkout")).await;
    fill(b, "email", "card@example.com").await;
    click(b, Locator::Css("input[name=gateway][value=stripe]")).await;
    click(b, Locator::Css("#checkout-form button[type=submit]")).await;
    // Out: Stripe's hosted page, with the amount the server computed.
    wait_for_text(b, "#stripe-amount", "4900 cny").await;
    assert!(b
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&fake.desk.base));
    shot(b, "stripe-hosted.png").await;
    click(b, Locator::Id("stripe-pay")).await;
    // And back: the order page, paid.
    wait_for_text(b, "#order-status", "已付款").await;
    let url = b.current_url().await.unwrap();
    assert!(
        url.as_str().starts_with(&format!("{base}/orders/")),
        "{url}"
    );
    shot(b, "stripe-order-paid.png").await;
    let order = yiren_core::order::list(ctx, None, 1, 0).await.unwrap()[0].id;
    assert_eq!(
        fake.desk.wait_answers(&order.to_string(), 1).await[0].0,
        200,
        "the webhook was acknowledged"
    );
    let o = yiren_core::order::get(ctx, order).await.unwrap();
    assert_eq!((o.row.payment.as_str(), o.transactions.len()), ("paid", 1));
    browser.close().await;
}

/// One of the owner's apps sends its customer to the shared checkout (收银台) with a signed
/// request; the customer pays by the EPay QR code; the order page, seeing the payment, takes the
/// browser back to the app, whose page checks the signed order id it was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_customer_pays_by_qr_and_the_browser_returns_to_the_app() {
    use hmac::Mac;
    use std::collections::BTreeMap;
    let app = yiren_testkit::TestApp::spawn(Engine::Sqlite).await;
    let ctx = &app.state.ctx;
    let fake = epay_qr_gateway(ctx).await;
    // The app: a page at /paid that shows whether the signed return is genuine.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_base = format!("http://{}", listener.local_addr().unwrap());
    let (created, secret) = yiren_core::checkout_app::create(
        ctx,
        &yiren_core::checkout_app::AppInput {
            name: "课程站".into(),
            return_url: format!("{app_base}/paid"),
            webhook_url: String::new(),
        },
    )
    .await
    .unwrap();
    let key = secret.clone();
    let mac = move |text: &str| {
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
        m.update(text.as_bytes());
        hex::encode(m.finalize().into_bytes())
    };
    let check = mac.clone();
    let paid_page = move |axum::extract::RawQuery(q): axum::extract::RawQuery| {
        let check = check.clone();
        async move {
            let p: BTreeMap<String, String> =
                url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
            let text = ["order_id", "ref", "status", "ts"]
                .iter()
                .map(|k| format!("{k}={}", p.get(*k).cloned().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join("&");
            let verdict = if p.get("sig") == Some(&check(&text)) {
                format!("verified {} {}", p["status"], p["ref"])
            } else {
                "forged".to_string()
            };
            axum::response::Html(format!("<p id=\"app-result\">{verdict}</p>"))
        }
    };
    let router = axum::Router::new().route("/paid", axum::routing::get(paid_page));
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });

    let ts = (yiren_core::Clock::now_ms(&app.clock) / 1000).to_string();
    let mut params = vec![
        ("amount", "1990".to_string()),
        ("currency", "CNY".to_string()),
        ("ref", "course-7".to_string()),
        ("title", "Rust 入门课".to_string()),
        ("ts", ts),
    ];
    let text = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    params.push(("sig", mac(&text)));
    let link = format!(
        "{}/pay/{}?{}",
        app.base,
        created.id,
        serde_urlencoded::to_string(&params).unwrap()
    );
    let browser = Browser::start().await;
    let b = &browser.client;
    b.goto(&link).await.unwrap();
    wait_for_text(b, "#pay-item", "Rust 入门课").await;
    wait_for_text(b, "#pay-amount", "19.90").await;
    fill(b, "email", "learner@example.com").await;
    click(b, Locator::Css("input[name=gateway][value=epay]")).await;
    shot(b, "app-checkout.png").await;
    click(b, Locator::Css("#pay-form button[type=submit]")).await;
    wait_for_text(b, "#order-status", "等待付款").await;
    find(b, Locator::Css("#pay-qr svg")).await;
    let order = yiren_core::order::list(ctx, None, 1, 0).await.unwrap()[0].id;
    yiren_testkit::fake_gateway::GatewayFake::pay(&fake, &order.to_string());
    // Back in the app, with a return it can verify.
    wait_for_text(b, "#app-result", "verified paid course-7").await;
    let url = b.current_url().await.unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{app_base}/paid?order_id={order}&")),
        "{url}"
    );
    shot(b, "app-returned.png").await;
    browser.close().await;
}
