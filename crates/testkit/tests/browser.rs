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
