//! Crowdfunding and refunds through a gateway, on both engines: a campaign's progress (product
//! page, embeddable widget, JSON), the deadline closing it exactly once, funded orders going to
//! fulfilment (and not before), and a failed campaign refunding every backer exactly once — through
//! the gateway (`fakepay`, which keeps refund ids unique as real gateways do) or listed for the
//! owner to send by hand — while refund runs race each other and the gateway fails or loses
//! answers.

use std::sync::Arc;

use yiren_core::campaign::{self, Outcome, Stage};
use yiren_core::catalog::{self, Details, Kind, Price, ProductInput, VariantInput};
use yiren_core::checkout::{self, Submit};
use yiren_core::error::DomainError;
use yiren_core::{cart, order};
use yiren_testkit::fake_pay::FakePay;
use yiren_testkit::{both_engines, csrf_of, wait_until, TestApp};

const DAY: i64 = 86_400_000;

/// A crowdfunding product (target and deadline from now) with one ¥30.00 tier, stock 100.
async fn campaign_product(app: &TestApp, handle: &str, target: i64, ends_in: i64) -> (i64, i64) {
    let ctx = &app.state.ctx;
    let input = ProductInput {
        title: format!("众筹 {handle}"),
        handle: handle.into(),
        kind: Kind::Crowdfunding,
        status: "active".into(),
        details: Details {
            target_amount: Some(target),
            deadline: Some(ctx.now() + ends_in),
            ..Default::default()
        },
        variants: vec![VariantInput {
            sku: format!("{handle}-tier"),
            track_inventory: true,
            initial_stock: 100,
            requires_shipping: Some(false),
            prices: vec![Price {
                currency: "CNY".into(),
                amount: 3000,
                compare_at: None,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let p = catalog::create(ctx, &input, "test").await.unwrap();
    (p.row.id, p.variants[0].row.id)
}

async fn place(app: &TestApp, v: i64, i: usize, gateway: &str) -> Result<i64, DomainError> {
    let s = Submit {
        token: format!("cf-{gateway}-{i}"),
        email: format!("b{i}@example.com"),
        lines: vec![cart::Line {
            variant_id: v,
            quantity: 1,
        }],
        gateway: gateway.into(),
        ..Default::default()
    };
    checkout::place(&app.state.ctx, &s).await.map(|o| o.id)
}

async fn pay_by(app: &TestApp, id: i64, gateway: &str) {
    let ctx = &app.state.ctx;
    let r = match gateway {
        "manual" => order::confirm_manual(ctx, id, "owner").await,
        g => {
            let o = order::get(ctx, id).await.unwrap().row;
            let r = order::Received {
                gateway: g.into(),
                reference: format!("T{id}"),
                amount: o.total,
                currency: o.currency,
            };
            order::pay(ctx, id, &r, "gateway:fakepay").await
        }
    };
    assert_eq!(r.unwrap(), order::Paid::Applied);
}

async fn progress(app: &TestApp, pid: i64) -> campaign::Progress {
    let p = catalog::get(&app.state.ctx, pid).await.unwrap();
    campaign::progress(&app.state.ctx, &p)
        .await
        .unwrap()
        .unwrap()
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
}

both_engines! {
    /// Progress counts paid backers only; the widget is the one page other sites may frame; no
    /// order is sent before the campaign is funded; the deadline closes it once, by its target,
    /// and nothing more can be bought.
    async fn a_funded_campaign_shows_its_progress_and_goes_to_fulfilment(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let (pid, v) = campaign_product(&app, "lamp", 10_000, 3 * DAY + 3_600_000).await;
        let mut orders = vec![];
        for i in 0..4 {
            orders.push(place(&app, v, i, "manual").await.unwrap());
        }
        for id in &orders[..3] {
            pay_by(&app, *id, "manual").await;
        }
        let g = progress(&app, pid).await;
        assert_eq!((g.stage, g.raised, g.backers, g.percent, g.days_left), (Stage::Open, 9000, 3, 90, 4));

        let page = app.client().get(app.url("/products/lamp")).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("<span class=\"backers\">3 位支持者</span>"), "{page}");
        assert!(page.contains("¥90.00"), "{page}");
        let r = app.client().get(app.url("/campaigns/lamp/widget")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-security-policy"], "frame-ancestors *");
        assert_ne!(r.headers()["x-frame-options"], "DENY");
        let widget = r.text().await.unwrap();
        assert!(widget.contains("<progress max=\"100\" value=\"90\">"), "{widget}");
        assert!(unescape(&widget).contains("/products/lamp"), "{widget}");
        // Every other page keeps refusing to be framed.
        let r = app.client().get(app.url("/products/lamp")).send().await.unwrap();
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let j: serde_json::Value = app.client().get(app.url("/campaigns/lamp/progress")).send().await.unwrap().json().await.unwrap();
        assert_eq!((j["raised"].as_i64(), j["backers"].as_i64(), j["stage"].as_str()), (Some(9000), Some(3), Some("open")));
        let missing = app.client().get(app.url("/campaigns/nothing/widget")).send().await.unwrap();
        assert_eq!(missing.status(), 404);

        // Not funded yet: nothing is sent.
        let refused = order::fulfil(ctx, orders[0], &[], "", "", "owner").await;
        assert!(matches!(refused, Err(DomainError::Conflict { key: "campaign.not_funded" })), "{refused:?}");

        pay_by(&app, orders[3], "manual").await;
        app.clock.advance(3 * DAY + 3_600_001);
        assert_eq!(progress(&app, pid).await.stage, Stage::Ended);
        // Closed to new backers, in the cart and at checkout.
        let mut lines = vec![];
        let e = cart::add(ctx, &mut lines, v, 1).await.unwrap_err();
        assert!(matches!(e, DomainError::Invalid { key: "campaign.closed", .. }), "{e:?}");
        let e = place(&app, v, 9, "manual").await.unwrap_err();
        assert!(matches!(e, DomainError::Conflict { key: "campaign.closed" }), "{e:?}");
        let page = app.client().get(app.url("/products/lamp")).send().await.unwrap().text().await.unwrap();
        assert!(!page.contains("id=\"add-to-cart\""), "{page}");

        // Racing sweeps (these two, and the worker's own every minute) close it once, funded.
        let (a, b) = tokio::join!(campaign::sweep(ctx), campaign::sweep(ctx));
        assert!(a.unwrap() + b.unwrap() <= 1);
        assert_eq!(campaign::sweep(ctx).await.unwrap(), 0);
        let g = progress(&app, pid).await;
        assert_eq!((g.stage, g.raised, g.backers), (Stage::Funded, 12_000, 4));
        let closed = yiren_core::event::after(ctx, 0, Some("campaigns/close"), 10).await.unwrap();
        assert_eq!(closed.len(), 1);
        // A second close changes nothing.
        let again = campaign::close(ctx, pid, Outcome::Failed, "owner").await.unwrap();
        assert_eq!(again.state, "funded");

        for id in &orders {
            order::fulfil(ctx, *id, &[], "", "", "owner").await.unwrap();
        }
        assert!(order::audit(ctx).await.unwrap().is_empty());
    }

    /// A failed campaign: unpaid orders are cancelled, every paid backer is refunded exactly once
    /// — through the gateway for gateway payments (even when the gateway's answers are lost), by
    /// hand for manual ones — while three refund runs race the job's own,
    /// and the stock and ledgers come out right.
    async fn a_failed_campaign_refunds_every_backer_once(engine: Engine) {
        let gw = FakePay::new("fakepay-secret-0123456789");
        let book = gw.refunds.clone();
        let app = TestApp::spawn_with_gateways(engine, vec![Arc::new(gw)]).await;
        let ctx = &app.state.ctx;
        let (pid, v) = campaign_product(&app, "drone", 1_000_000, DAY).await;
        let mut online = vec![];
        let mut manual = vec![];
        let mut unpaid = vec![];
        for i in 0..20 {
            let id = place(&app, v, i, "fakepay").await.unwrap();
            pay_by(&app, id, "fakepay").await;
            online.push(id);
        }
        for i in 20..28 {
            let id = place(&app, v, i, "manual").await.unwrap();
            pay_by(&app, id, "manual").await;
            manual.push(id);
        }
        for i in 28..30 {
            unpaid.push(place(&app, v, i, "manual").await.unwrap());
        }
        // The owner refunded ¥10.00 of one order before (sent through the gateway).
        let early = order::Refund { amount: 1000, key: "early".into(), restock: false, reason: "goodwill".into(), lines: vec![] };
        assert!(order::refund(ctx, online[0], &early, "owner").await.unwrap());
        wait_until("the early refund is sent", || async {
            order::get(ctx, online[0]).await.unwrap().transactions.iter().any(|t| t.kind == "refund" && t.status == "done")
        }).await;
        assert_eq!(book.made().len(), 1);

        // The gateway makes the next four refunds but their answers are lost (as on a timeout):
        // each is sent again under the same refund id.
        book.fail_next(4, true);
        app.clock.advance(DAY + 1);
        let row = campaign::close(ctx, pid, Outcome::ByTarget, "system:deadline").await.unwrap();
        assert_eq!((row.state.as_str(), row.raised, row.backers), ("refunding", 28 * 3000, 28));
        let runs = futures::future::join_all((0..3).map(|_| campaign::refund_backers(ctx, pid))).await;
        let made: usize = runs.into_iter().map(|r| r.unwrap()).sum();
        assert!(made <= 28, "{made}");
        wait_until("the campaign is refunded", || async { progress(&app, pid).await.stage == Stage::Failed }).await;
        // Failed sends are retried after a backoff: move the clock until none is pending.
        wait_until("every gateway refund is answered", || async {
            app.clock.advance(60_000);
            let mut pending = 0;
            for id in &online {
                let o = order::get(ctx, *id).await.unwrap();
                pending += o.transactions.iter().filter(|t| t.status == "pending").count();
            }
            pending == 0
        }).await;

        // Every backer refunded once, all that was left of the order.
        for id in online.iter().chain(&manual) {
            let o = order::get(ctx, *id).await.unwrap();
            let mine: Vec<_> = o.transactions.iter().filter(|t| t.reference == format!("refund:campaign:{pid}:{id}")).collect();
            assert_eq!(mine.len(), 1, "order {id}");
            assert_eq!((o.row.payment.as_str(), o.row.refunded), ("refunded", 3000), "order {id}");
            let expect = if *id == online[0] { 2000 } else { 3000 };
            assert_eq!(mine[0].amount, expect);
        }
        // The gateway refunded each of its payments once, in full, despite errors and lost answers.
        let made = book.made();
        assert_eq!(made.len(), 21, "{made:?}");
        assert_eq!(made.values().sum::<i64>(), 20 * 3000);
        assert!(book.requests() >= 25, "{}", book.requests());
        for id in &online {
            let o = order::get(ctx, *id).await.unwrap();
            assert!(o.transactions.iter().filter(|t| t.kind == "refund").all(|t| t.status == "done"), "order {id}");
            assert_eq!(o.events.iter().filter(|e| e.kind == "refund_sent").count(), o.transactions.iter().filter(|t| t.kind == "refund").count());
        }
        for id in &unpaid {
            assert_eq!(order::get(ctx, *id).await.unwrap().row.cancelled, 1);
        }
        // Manual payments are listed for the owner.
        let to_send = campaign::refunds_to_send(ctx, pid).await.unwrap();
        assert_eq!(to_send.len(), 8);
        assert!(to_send.iter().all(|r| r.4 == 3000 && r.5 == "manual"));
        // Every unit is back in stock; the ledgers agree.
        let p = catalog::get(ctx, pid).await.unwrap();
        assert_eq!(p.variants[0].row.inventory_quantity, 100);
        assert!(order::audit(ctx).await.unwrap().is_empty());
        // Running the batch again changes nothing.
        assert_eq!(campaign::refund_backers(ctx, pid).await.unwrap(), 0);

        // The owner sees the list in admin and marks one sent.
        let owner = app.setup_owner("owner@example.com", "correct horse battery staple").await;
        let page = owner.get(app.url(&format!("/admin/products/{pid}"))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("id=\"campaign-refunds\""), "{page}");
        let (txn, order_id) = (to_send[0].0, to_send[0].1);
        let csrf = csrf_of(&page);
        let r = owner
            .post(app.url(&format!("/admin/orders/{order_id}/refunds/{txn}/sent")))
            .form(&[("_csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(yiren_testkit::location(&r), format!("/admin/orders/{order_id}?notice=orders.refund_marked_sent"));
        assert_eq!(campaign::refunds_to_send(ctx, pid).await.unwrap().len(), 7);
        // Another order's refund id through this order's path is not found.
        let other = to_send[1].0;
        let r = owner
            .post(app.url(&format!("/admin/orders/{order_id}/refunds/{other}/sent")))
            .form(&[("_csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(campaign::refunds_to_send(ctx, pid).await.unwrap().len(), 7);
    }

    /// An ordinary refund through the gateway: pending until the job sends it, done once the
    /// gateway takes it; one the gateway refuses is failed, shown to the owner to send by hand.
    async fn refunds_go_back_through_the_gateway(engine: Engine) {
        let gw = FakePay::new("fakepay-secret-0123456789");
        let book = gw.refunds.clone();
        let app = TestApp::spawn_with_gateways(engine, vec![Arc::new(gw)]).await;
        let ctx = &app.state.ctx;
        let v = yiren_testkit::product(ctx, "kettle", Kind::Digital, &[("K", 5000, 10)]).await[0];
        let s = |i: usize| Submit {
            token: format!("k-{i}"),
            email: "k@example.com".into(),
            lines: vec![cart::Line { variant_id: v, quantity: 1 }],
            gateway: "fakepay".into(),
            ..Default::default()
        };
        let a = checkout::place(ctx, &s(1)).await.unwrap().id;
        let b = checkout::place(ctx, &s(2)).await.unwrap().id;
        pay_by(&app, a, "fakepay").await;
        pay_by(&app, b, "fakepay").await;
        let r = order::Refund { amount: 5000, key: "k1".into(), restock: true, reason: "".into(), lines: vec![] };
        assert!(order::refund(ctx, a, &r, "owner").await.unwrap());
        // The same key again is the same refund.
        assert!(!order::refund(ctx, a, &r, "owner").await.unwrap());
        wait_until("the refund is sent", || async {
            order::get(ctx, a).await.unwrap().transactions.iter().any(|t| t.kind == "refund" && t.status == "done")
        }).await;
        assert_eq!(book.made().values().copied().collect::<Vec<_>>(), vec![5000]);

        book.refuse_next(1);
        let r = order::Refund { amount: 2000, key: "k2".into(), restock: false, reason: "".into(), lines: vec![] };
        assert!(order::refund(ctx, b, &r, "owner").await.unwrap());
        wait_until("the refusal is recorded", || async {
            order::get(ctx, b).await.unwrap().transactions.iter().any(|t| t.kind == "refund" && t.status == "failed")
        }).await;
        let o = order::get(ctx, b).await.unwrap();
        assert!(o.events.iter().any(|e| e.kind == "refund_failed" && e.detail.contains("insufficient merchant balance")));
        assert_eq!(book.made().len(), 1);
        // Sending it again does nothing; the owner settles it by hand.
        let t = o.transactions.iter().find(|t| t.status == "failed").unwrap().id;
        assert_eq!(order::send_refund(ctx, t).await.unwrap(), order::Sent::Nothing);
        assert!(order::mark_refund_sent(ctx, b, t, "owner").await.unwrap());
        assert!(!order::mark_refund_sent(ctx, b, t, "owner").await.unwrap());
        assert!(matches!(order::mark_refund_sent(ctx, a, t, "owner").await, Err(DomainError::NotFound)), "another order's refund");
        let o = order::get(ctx, b).await.unwrap();
        assert_eq!(o.transactions.iter().find(|x| x.id == t).unwrap().status, "done");
        assert!(order::audit(ctx).await.unwrap().is_empty());
    }
}
