//! Stripe Checkout end to end, on both engines, against `yiren_testkit::fake_stripe` (written
//! from the API rules, with its own HMAC code): the shared gateway suite — the customer sent to
//! Stripe's hosted page and back, the signed webhook retried until a 2xx, PAY-2..7 (every forged
//! signature header, stale and future timestamps) and SEC-1 — then what only Stripe does: a rolled
//! webhook secret (two `v1` values), events that are not ours, and refunds through the API, sent
//! once however often they are retried.

use yiren_core::order;
use yiren_testkit::both_engines;
use yiren_testkit::fake_gateway::GatewayFake;
use yiren_testkit::fake_stripe::{FakeStripe, WEBHOOK_SECRET};
use yiren_testkit::gateway_suite::{
    buy, deliver, paid, pending, refund_through_gateway, shop, state,
};

yiren_testkit::gateway_suite!(FakeStripe);

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

both_engines! {
    /// While the owner rolls the webhook secret Stripe signs with both: one `v1` matching is
    /// enough. An event about a session that is not ours (the account serves another site too)
    /// is acknowledged and changes nothing.
    async fn a_rolled_secret_and_foreign_events(engine: Engine) {
        let (app, fake, v) = shop::<FakeStripe>(engine).await;
        let (id, to) = buy(&app, &app.client(), v, "stripe").await;
        app.client().get(&to).send().await.unwrap();
        let order_ref = id.to_string();
        let foreign = {
            let mut n = fake.event(&order_ref, &[("yiren_order", "")], WEBHOOK_SECRET, now_s());
            let body = n.encoded().replace("\"yiren_order\":\"\"", "\"other_app\":\"7\"");
            let t = now_s();
            n.raw = Some(("application/json", body.clone()));
            n.headers = vec![("Stripe-Signature".into(), format!("t={t},v1={}", yiren_testkit::fake_stripe::sign(WEBHOOK_SECRET, t, &body)))];
            n
        };
        assert_eq!(deliver(&app, "stripe", &foreign).await, (200, "{\"received\":true}".into()));
        let other_type = fake.notice(&order_ref, &[("type", "customer.created")], None);
        assert_eq!(deliver(&app, "stripe", &other_type).await.0, 200);
        assert_eq!(state(&app, id).await, pending());

        let t = now_s();
        let good = fake.event(&order_ref, &[], WEBHOOK_SECRET, t);
        let body = good.encoded();
        let old = yiren_testkit::fake_stripe::sign("whsec_the_old_one", t, &body);
        let new = yiren_testkit::fake_stripe::sign(WEBHOOK_SECRET, t, &body);
        let mut rolled = good.clone();
        rolled.headers = vec![("Stripe-Signature".into(), format!("t={t},v1={old},v1={new},v0=ignored"))];
        assert_eq!(deliver(&app, "stripe", &rolled).await.0, 200);
        assert_eq!(state(&app, id).await, paid());
    }

    /// A partial refund goes through Stripe's API with one Idempotency-Key per refund: the job
    /// sends it once; sent again (a retry after a timeout) Stripe answers with the same refund;
    /// more than is left is refused by Stripe and left for the owner.
    async fn refunds_go_through_stripe_once(engine: Engine) {
        let (app, fake, v) = shop::<FakeStripe>(engine).await;
        let ctx = &app.state.ctx;
        let (id, to) = buy(&app, &app.client(), v, "stripe").await;
        app.client().get(&to).send().await.unwrap();
        fake.pay(&id.to_string());
        fake.desk.wait_answers(&id.to_string(), 1).await;
        assert_eq!(state(&app, id).await, paid());
        let refund = refund_through_gateway(&app, id, 3_000).await;
        let refunds = fake.refunds();
        assert_eq!(refunds.len(), 1, "{refunds:?}");
        assert_eq!((refunds[0].amount, refunds[0].idempotency_key.clone()), (3_000, format!("yiren-refund-{}", refund.id)));
        // The same request again, as after a timeout: the same refund, none added.
        let gw = ctx.gateways.get("stripe").unwrap();
        let o = order::get(ctx, id).await.unwrap();
        let req = yiren_core::payment::RefundRequest {
            order_ref: id.to_string(), payment_reference: o.transactions.iter().find(|t| t.kind == "sale").unwrap().reference.clone(),
            refund_ref: refund.id.to_string(), amount: 3_000, payment_amount: 9_900, currency: "CNY".into(), reason: "retry".into(),
        };
        assert_eq!(gw.refund(&req).await.unwrap(), yiren_core::payment::RefundResult::Done { reference: refunds[0].id.clone() });
        assert_eq!(fake.refunds().len(), 1);
        // More than is left at Stripe: refused, with Stripe's reason.
        let too_much = yiren_core::payment::RefundRequest { refund_ref: "other".into(), amount: 9_000, ..req };
        match gw.refund(&too_much).await.unwrap() {
            yiren_core::payment::RefundResult::Refused { reason } => assert!(reason.contains("greater than unrefunded"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
