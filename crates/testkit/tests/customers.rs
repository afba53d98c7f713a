//! The user pool: email-code sign-up and sign-in, passwords, sessions, profile, data export and
//! deletion, invites (RELIABILITY AUTH-2, AUTH-3, SESS-1, CSRF-1, IDOR-1 for customer routes),
//! through real HTTP on loopback, on both engines.

use yiren_testkit::{both_engines, mail_text, TestApp};

both_engines! {
    async fn an_email_code_signs_a_new_customer_up_and_works_once(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.client();
        let code = app.request_code(&c, "new@example.com").await;
        let r = app.submit_code(&c, "new@example.com", &code).await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/account?notice=account.welcome");
        let cookie = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).find(|v| v.starts_with("yiren_sid=")).expect("session cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
        let page = c.get(app.url("/account")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("new@example.com"));
        // Single use.
        let again = app.submit_code(&app.client(), "new@example.com", &code).await;
        assert_eq!(again.status(), 422);
        let mail = app.mails_to("new@example.com").pop().unwrap();
        assert!(mail_text(&mail).contains(&code));
    }
}
