//! Alipay (支付宝开放平台) end to end, on both engines, against `yiren_testkit::fake_alipay`
//! (written from the rules, with its own RSA2 code on keys it makes at start): the shared gateway
//! suite — 当面付's QR code on the order page, signed answers checked, notifications until exactly
//! `success`, PAY-2..7 and SEC-1 — then page pay and refunds through the API.

use yiren_testkit::fake_alipay::FakeAlipay;
use yiren_testkit::fake_gateway::GatewayFake;
use yiren_testkit::gateway_suite::{buy, ebook, paid, refund_through_gateway, state};
use yiren_testkit::{both_engines, location, TestApp};

yiren_testkit::gateway_suite!(FakeAlipay);

both_engines! {
    /// 电脑网站支付: the customer is sent to Alipay with a signed GET (the fake checks the RSA2
    /// signature), pays there and comes back; a tampered amount is refused by Alipay. Then a
    /// partial refund goes through alipay.trade.refund once, under our refund id.
    async fn page_pay_and_refunds_through_alipay(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let fake = FakeAlipay::start().await;
        let (mut fields, secrets) = fake.settings();
        fields.insert("product".into(), "page".into());
        let c = yiren_core::payment::settings::GatewayConfig {
            id: "alipay".into(), kind: "alipay".into(), name: "支付宝".into(), enabled: true, fields, secrets,
        };
        yiren_core::payment::settings::put(&app.state.ctx, c).await.unwrap();
        let v = ebook(&app).await;
        let client = app.client();
        let (id, to) = buy(&app, &client, v, "alipay").await;
        assert!(to.starts_with(&format!("{}gateway.do?", fake.desk.base)) && to.contains("alipay.trade.page.pay"), "{to}");
        let tampered = to.replace("99.00", "0.01");
        assert_eq!(client.get(&tampered).send().await.unwrap().status(), 400, "the signature covers the amount");
        let at = client.get(&to).send().await.unwrap();
        assert_eq!(at.status(), 303, "signature accepted: sent on to the cashier");
        let cashier = client.get(format!("{}{}", fake.desk.base, location(&at).trim_start_matches('/'))).send().await.unwrap();
        assert_eq!(cashier.status(), 200);
        assert!(cashier.text().await.unwrap().contains("¥99.00"));
        let t = fake.desk.trade(&id.to_string()).unwrap();
        let r = client.post(format!("{}pay/{}", fake.desk.base, t.no)).send().await.unwrap();
        assert!(location(&r).starts_with(&app.url(&format!("/orders/{id}?key="))));
        assert_eq!(fake.desk.wait_answers(&id.to_string(), 1).await, vec![(200, "success".to_string())]);
        assert_eq!(state(&app, id).await, paid());

        let refund = refund_through_gateway(&app, id, 1_990).await;
        assert_eq!(fake.refunds(), vec![(refund.id.to_string(), "19.90".to_string())]);
    }
}
