//! PayPal Checkout end to end, on both engines, against `yiren_testkit::fake_paypal` (written
//! from the Orders v2 rules): the shared gateway suite — the customer out to PayPal's approval
//! page and back, the money captured by whichever comes first of the return, the
//! `CHECKOUT.ORDER.APPROVED` webhook (believed only when PayPal's verification says SUCCESS) and
//! reconciliation, captured once, PAY-2..7 and SEC-1 — then refunds through the API and a return
//! naming another PayPal order.

use yiren_testkit::both_engines;
use yiren_testkit::fake_gateway::GatewayFake;
use yiren_testkit::fake_paypal::FakePaypal;
use yiren_testkit::gateway_suite::{buy, paid, pending, refund_through_gateway, shop, state};

yiren_testkit::gateway_suite!(FakePaypal);

both_engines! {
    /// A return carrying another order's token captures nothing; the right one captures once;
    /// a partial refund goes through PayPal once per refund id.
    async fn returns_capture_only_their_own_order_and_refunds_go_through_paypal(engine: Engine) {
        let (app, fake, v) = shop::<FakePaypal>(engine).await;
        fake.desk.set_notify(false);
        let c = app.client();
        let (first, to1) = buy(&app, &c, v, "paypal").await;
        let (second, to2) = buy(&app, &c, v, "paypal").await;
        c.get(&to1).send().await.unwrap();
        c.get(&to2).send().await.unwrap();
        let back1 = fake.pay(&first.to_string());
        let back2 = fake.pay(&second.to_string());
        // The first order's page with the second order's token.
        let token2 = back2.split("token=").nth(1).unwrap().to_string();
        let crossed = back1.replace(back1.split("token=").nth(1).unwrap(), &token2);
        c.get(&crossed).send().await.unwrap();
        assert_eq!((state(&app, first).await, state(&app, second).await), (pending(), pending()));
        assert_eq!(fake.desk.count("capture"), 0);
        assert!(c.get(&back1).send().await.unwrap().text().await.unwrap().contains("已付款"));
        assert_eq!(state(&app, first).await, paid());
        assert_eq!(fake.desk.count("capture"), 1);

        let refund = refund_through_gateway(&app, first, 1_000).await;
        assert_eq!(fake.refunds(), vec![(format!("yiren-refund-{}", refund.id), "10.00".to_string())]);
    }
}
