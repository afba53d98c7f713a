//! WeChat Pay APIv3 end to end, on both engines, against `yiren_testkit::fake_wechatpay`
//! (written from the rules, with its own RSA and AES-256-GCM code on keys it makes at start):
//! the shared gateway suite — the Native QR code on the order page, signed requests and answers,
//! encrypted notifications acknowledged with 204, PAY-2..7 (signature headers, replays, probes,
//! the wrong APIv3 key) and SEC-1 — then refunds through the API, once per refund id.

use yiren_testkit::both_engines;
use yiren_testkit::fake_gateway::GatewayFake;
use yiren_testkit::fake_wechatpay::FakeWechatpay;
use yiren_testkit::gateway_suite::{buy, paid, refund_through_gateway, shop, state};

yiren_testkit::gateway_suite!(FakeWechatpay);

both_engines! {
    async fn refunds_go_through_wechat_pay_once(engine: Engine) {
        let (app, fake, v) = shop::<FakeWechatpay>(engine).await;
        let (id, _) = buy(&app, &app.client(), v, "wechatpay").await;
        fake.pay(&id.to_string());
        fake.desk.wait_answers(&id.to_string(), 1).await;
        assert_eq!(state(&app, id).await, paid());
        let refund = refund_through_gateway(&app, id, 2_500).await;
        assert_eq!(fake.refunds(), vec![(refund.id.to_string(), 2_500)]);
    }
}
