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

async fn click(b: &fantoccini::Client, what: Locator<'_>) {
    b.find(what).await.unwrap().click().await.unwrap();
}

async fn shot(b: &fantoccini::Client, name: &str) {
    std::fs::write(artifact_path(name), b.screenshot().await.unwrap()).unwrap();
}

async fn fill(b: &fantoccini::Client, name: &str, value: &str) {
    let field = b
        .find(Locator::Css(&format!("input[name={name}]")))
        .await
        .unwrap();
    field.send_keys(value).await.unwrap();
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
