//! The EPay (彩虹易支付) gateway end to end, on both engines, against the fake aggregator in
//! `yiren_testkit::fake_epay` (written from the protocol rules, with its own MD5 signing): the
//! shared gateway suite in API mode (the aggregator's QR code on the order page; PAY-2..7), page
//! mode (the customer sent to submit.php), and the owner's admin form (the key write-only and
//! sealed at rest, SEC-1).

use yiren_testkit::fake_epay::{FakeEpay, KEY, PID};
use yiren_testkit::fake_gateway::GatewayFake;
use yiren_testkit::gateway_suite::{buy, configure, ebook, paid, state};
use yiren_testkit::{both_engines, field_of, location, text_of, TestApp};

yiren_testkit::gateway_suite!(FakeEpay);

both_engines! {
    /// Page mode: the checkout sends the customer to submit.php with the signed parameters; the
    /// fake's cashier takes the payment and sends them back.
    async fn page_mode_sends_the_customer_to_the_cashier(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakeEpay::start(PID, KEY).await.in_page_mode();
        configure(&app, &fake).await;
        let v = ebook(&app).await;
        let c = app.client();
        let (id, to) = buy(&app, &c, v, "epay").await;
        assert!(to.starts_with(&format!("{}submit.php?", fake.desk.base)), "{to}");
        let cashier = c.get(&to).send().await.unwrap();
        assert_eq!(cashier.status(), 200, "the fake accepted the signature");
        assert!(cashier.text().await.unwrap().contains("¥99.00"));
        let t = fake.desk.trade(&id.to_string()).unwrap();
        let r = c.post(format!("{}cashier/{}/pay", fake.desk.base, t.no)).send().await.unwrap();
        let back = location(&r);
        assert!(back.starts_with(&app.url(&format!("/orders/{id}?key="))) && back.contains("sign="), "{back}");
        fake.desk.wait_answers(&id.to_string(), 1).await;
        assert_eq!(state(&app, id).await, paid());
        // A tampered signed query at submit.php is refused by the aggregator.
        let tampered = to.replace("money=99.00", "money=0.01");
        assert_eq!(c.get(&tampered).send().await.unwrap().status(), 400);
    }

    /// Admin: the owner adds the gateway through the form; the key is write-only, sealed in the
    /// database (SEC-1) and kept when the form is saved again without it; bad settings are refused
    /// with the reason; a disabled gateway is no longer offered but still verifies notifications
    /// for payments already started.
    async fn the_owner_configures_epay_in_admin(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner("owner@example.com", "correct horse battery staple").await;
        let fake = FakeEpay::start(PID, KEY).await;
        let csrf = app.csrf(&owner, "/admin/payments").await;
        let page = text_of(&owner, app.url("/admin/payments")).await;
        assert!(page.contains("易支付兼容聚合支付") && page.contains("name=\"s.key\""), "{page}");
        let post = |fields: Vec<(&'static str, String)>| {
            let owner = owner.clone();
            let url = app.url("/admin/payments");
            let csrf = csrf.clone();
            async move {
                let mut f = fields;
                f.push(("_csrf", csrf));
                owner.post(url).form(&f).send().await.unwrap()
            }
        };
        let full = |key: &str, base: &str, pid: &str| -> Vec<(&'static str, String)> {
            vec![("id", "epay".into()), ("kind", "epay".into()), ("name", "支付宝".into()), ("enabled", "1".into()),
                 ("f.base_url", base.into()), ("f.pid", pid.into()), ("f.type", "alipay".into()), ("f.mode", "api".into()), ("s.key", key.into())]
        };
        for (fields, message) in [
            (full("", &fake.desk.base, PID), "请填写所有必填项"),
            (full(KEY, "ftp://pay.example.com/", PID), "接口地址须为"),
            (full(KEY, &fake.desk.base, "abc"), "商户 ID（pid）应为数字"),
            ([full(KEY, &fake.desk.base, PID), vec![("f.type", "bitcoin".into())]].concat(), "请从列出的选项中选择"),
            ([full(KEY, &fake.desk.base, PID), vec![("id", "manual".into())]].concat(), "ID 须为"),
        ] {
            let r = post(fields).await;
            assert_eq!(r.status(), 422);
            assert!(r.text().await.unwrap().contains(message), "{message}");
        }
        let r = post(full(KEY, &fake.desk.base, PID)).await;
        assert_eq!(location(&r), "/admin/payments?notice=payments.saved");
        let page = text_of(&owner, app.url("/admin/payments")).await;
        assert!(!page.contains(KEY), "the key is never shown again");
        assert!(page.contains("&#x2f;payments&#x2f;epay&#x2f;notify"), "the notification URL: {page}");
        let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'payment_gateways'")
            .fetch_one(app.state.ctx.db.read()).await.unwrap();
        assert!(!stored.contains(KEY) && stored.contains(&fake.desk.base), "sealed at rest: {stored}");
        // Saved again without the key (renamed): the stored key stays and still signs.
        let mut again = full("", &fake.desk.base, PID);
        again[2].1 = "Alipay".into();
        assert_eq!(location(&post(again).await), "/admin/payments?notice=payments.saved");
        let v = ebook(&app).await;
        let (id, _) = buy(&app, &app.client(), v, "epay").await;
        assert_eq!(fake.desk.trades().len(), 1, "mapi.php accepted the signature with the kept key");
        // Switched off: not offered, an attempt to use it is refused; started payments still settle.
        let mut off = full("", &fake.desk.base, PID);
        off.retain(|(k, _)| *k != "enabled");
        assert_eq!(location(&post(off).await), "/admin/payments?notice=payments.saved");
        let c = app.client();
        c.post(app.url("/cart/add")).form(&[("variant_id", v.to_string()), ("quantity", "1".into())]).send().await.unwrap();
        let form = text_of(&c, app.url("/checkout")).await;
        assert!(!form.contains("value=\"epay\""), "{form}");
        let token = field_of(&form, "token");
        let r = c.post(app.url("/checkout")).form(&[("token", token.as_str()), ("email", "b@example.com"), ("gateway", "epay")]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        fake.pay(&id.to_string());
        assert_eq!(fake.desk.wait_answers(&id.to_string(), 1).await, vec![(200, "success".to_string())]);
        assert_eq!(state(&app, id).await, paid());
        // Removed.
        let r = owner.post(app.url("/admin/payments/epay/delete")).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(location(&r), "/admin/payments?notice=payments.deleted");
        assert!(app.state.ctx.gateways.get("epay").is_none());
    }
}
