//! Recurring memberships (issue 7, "Recurring payments"): renewal orders and reminders for
//! gateways that cannot bill by themselves, subscriptions the gateway bills (Stripe, Lemon
//! Squeezy), failed renewals, cancellation — and RELIABILITY TIME-1 at the database level.

use chrono::{Datelike, LocalResult, NaiveDate, TimeZone, Timelike};
use futures::StreamExt;
use yiren_core::catalog::{self, Details, Kind, Price, ProductInput, VariantInput};
use yiren_core::checkout::{self, Submit};
use yiren_core::clock::{parse_rfc3339 as at, rfc3339};
use yiren_core::{cart, order, recurring, Ctx};
use yiren_store::recurring::{self as store, PeriodRow, PlanRow};
use yiren_testkit::{both_engines, TestApp};

const OWNER: &str = "owner@example.com";
const DAY: i64 = 86_400_000;

/// A membership product of `months` months at ¥19.00; its variant id.
async fn membership(ctx: &Ctx, handle: &str, months: i64) -> (i64, i64) {
    let input = ProductInput {
        title: "月度会员".into(),
        handle: handle.into(),
        kind: Kind::Membership,
        status: "active".into(),
        details: Details {
            membership_months: Some(months),
            ..Default::default()
        },
        variants: vec![VariantInput {
            prices: vec![Price {
                currency: "CNY".into(),
                amount: 1_900,
                compare_at: None,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let p = catalog::create(ctx, &input, "test").await.unwrap();
    (p.row.id, p.variants[0].row.id)
}

/// The start of period `k` computed apart from the server's code, from the calendar rule: the
/// anchor's local day (the month's last day when shorter) and local time, `k` months on; a time
/// the clocks skip is moved on by the jump, a time they repeat is the first.
fn expected(anchor_ms: i64, tz: &str, k: i64) -> i64 {
    let tz: chrono_tz::Tz = tz.parse().unwrap();
    let local = tz.timestamp_millis_opt(anchor_ms).unwrap().naive_local();
    let m = local.year() as i64 * 12 + local.month0() as i64 + k;
    let (y, mo) = ((m / 12) as i32, (m % 12) as u32 + 1);
    let last = (28..=31)
        .rev()
        .find(|d| NaiveDate::from_ymd_opt(y, mo, *d).is_some())
        .unwrap();
    let day = NaiveDate::from_ymd_opt(y, mo, local.day().min(last)).unwrap();
    let wall = day.and_time(local.time());
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, _) => a.timestamp_millis(),
        LocalResult::None => {
            // In a gap: the first instant after it, shifted by how far into the gap the time was.
            let mut probe = wall;
            while matches!(tz.from_local_datetime(&probe), LocalResult::None) {
                probe += chrono::Duration::minutes(1);
            }
            let after = tz
                .from_local_datetime(&probe)
                .single()
                .unwrap()
                .timestamp_millis();
            let gap_ms = (probe - wall).num_milliseconds();
            // The offset changed by the gap's length: the wall time under the old offset.
            let jump = {
                let before = tz.offset_from_utc_datetime(
                    &(tz.from_local_datetime(&probe).single().unwrap().naive_utc()
                        - chrono::Duration::hours(3)),
                );
                let after_off = tz.offset_from_utc_datetime(
                    &tz.from_local_datetime(&probe).single().unwrap().naive_utc(),
                );
                use chrono::Offset;
                (after_off.fix().local_minus_utc() - before.fix().local_minus_utc()) as i64 * 1000
            };
            after - gap_ms + jump
        }
    }
}

/// A plan as a first purchase would have started it: period 0 from `anchor` for one month.
fn plan(id: i64, product: (i64, i64), tz: &str, anchor: i64) -> (PlanRow, PeriodRow) {
    let p = PlanRow {
        id,
        customer_id: None,
        email: format!("m{id}@example.com"),
        product_id: product.0,
        variant_id: product.1,
        title: "月度会员".into(),
        amount: 1_900,
        currency: "CNY".into(),
        locale: "zh-CN".into(),
        gateway: "manual".into(),
        gateway_ref: String::new(),
        first_order_id: id,
        tz: tz.into(),
        anchor_at: anchor,
        offset_months: 0,
        every_months: 1,
        status: "active".into(),
        created_at: anchor,
        updated_at: anchor,
    };
    let first = PeriodRow {
        plan_id: id,
        period: 0,
        order_id: id,
        starts_at: anchor,
        ends_at: expected(anchor, tz, 1),
        paid_at: Some(anchor),
        created_at: anchor,
    };
    (p, first)
}

/// Pay every renewal order waiting for payment (the customer pays the day it arrives).
async fn pay_waiting(ctx: &Ctx) -> usize {
    let waiting: Vec<i64> = store::renewing(ctx.db.read())
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, last)| last.paid_at.is_none())
        .map(|(_, last)| last.order_id)
        .collect();
    let n = waiting.len();
    let paid: Vec<_> = futures::stream::iter(waiting)
        .map(|id| async move { order::confirm_manual(ctx, id, OWNER).await })
        .buffer_unordered(8)
        .collect()
        .await;
    for p in paid {
        assert_eq!(p.unwrap(), order::Paid::Applied);
    }
    n
}

both_engines! {
    /// RELIABILITY TIME-1: 1,000 monthly plans in four zones, started at random instants among
    /// them 23:30 local, the 29th–31st and 29 February; two simulated years (the injected clock,
    /// a sweep every two days, each renewal paid the day it is placed): every plan renews exactly
    /// once per period — periods 1 to 24 each once, none skipped, none twice — each period starts
    /// where the calendar rule says (31 Jan → 29 Feb → 31 Mar), the memberships granted run end to
    /// end without a gap or an overlap, and every stored instant is UTC milliseconds.
    async fn renewals_follow_the_calendar_for_two_years(engine: Engine) {
        let (_db, state, clock) = TestApp::built(engine).await;
        let ctx = &state.ctx;
        let product = membership(ctx, "monthly", 1).await;
        let zones = ["America/Los_Angeles", "Europe/Berlin", "Asia/Shanghai", "Pacific/Auckland"];
        // Starts between 28 January and 1 March 2028 (a leap year) in local time.
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut plans = vec![];
        for i in 0..1_000_i64 {
            let tz_name = zones[(i % 4) as usize];
            let tz: chrono_tz::Tz = tz_name.parse().unwrap();
            let (day, hour, minute) = match i % 5 {
                // 23:30 on the 29th, 30th or 31st of January.
                0 => (NaiveDate::from_ymd_opt(2028, 1, 29 + (next(3) as u32)).unwrap(), 23, 30),
                // 29 February, at any time.
                1 => (NaiveDate::from_ymd_opt(2028, 2, 29).unwrap(), next(24) as u32, next(60) as u32),
                // Anywhere in the five weeks.
                _ => (NaiveDate::from_ymd_opt(2028, 1, 28).unwrap() + chrono::Duration::days(next(33) as i64), next(24) as u32, next(60) as u32),
            };
            let local = day.and_hms_opt(hour, minute, 0).unwrap();
            let anchor = tz.from_local_datetime(&local).earliest().unwrap().timestamp_millis();
            plans.push(plan(i + 1, product, tz_name, anchor));
        }
        // One plan to read by eye: 31 January 23:30 in Shanghai.
        let shanghai_31 = at("2028-01-31T15:30:00Z").unwrap();
        plans[0] = plan(1, product, "Asia/Shanghai", shanghai_31);
        for chunk in plans.chunks(100) {
            let mut tx = ctx.db.begin().await.unwrap();
            for (p, first) in chunk {
                store::insert_plan(&mut tx, p, first).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
        let start = plans.iter().map(|(p, _)| p.anchor_at).min().unwrap();
        let end = plans.iter().map(|(p, _)| expected(p.anchor_at, &p.tz, 24)).max().unwrap() + DAY;
        clock.set(start);
        let (mut placed, mut paid, mut sweeps, mut last) = (0, 0, 0, start);
        let (mut sweeping, mut paying) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        while ctx.now() <= end {
            let t = std::time::Instant::now();
            let s = recurring::sweep(ctx).await.unwrap();
            assert_eq!(s.lapsed, 0);
            placed += s.placed;
            // A second sweep at the same moment (another server, a retried job) places nothing.
            if sweeps % 20 == 0 {
                assert_eq!(recurring::sweep(ctx).await.unwrap().placed, 0);
            }
            sweeping += t.elapsed();
            let t = std::time::Instant::now();
            paid += pay_waiting(ctx).await;
            paying += t.elapsed();
            sweeps += 1;
            last = ctx.now();
            // Every three days: each renewal is still placed (7 days ahead) and paid before its period.
            clock.advance(3 * DAY);
        }
        assert_eq!(placed, paid);
        let end = last;
        let mut total = 0;
        for (p, _) in &plans {
            let periods = store::periods(ctx.db.read(), p.id).await.unwrap();
            let keys: Vec<i64> = periods.iter().map(|x| x.period).collect();
            // Exactly the periods the clock reached, each once: 0 duplicates, 0 skips.
            let reached = (1..).take_while(|k| expected(p.anchor_at, &p.tz, *k) - recurring::LEAD_MS <= end).count() as i64;
            assert!(reached >= 24, "plan {} reached {reached}", p.id);
            assert_eq!(keys, (0..=reached).collect::<Vec<_>>(), "plan {}", p.id);
            for x in &periods[1..] {
                assert_eq!(x.starts_at, expected(p.anchor_at, &p.tz, x.period), "plan {} period {} start", p.id, x.period);
                assert_eq!(x.ends_at, expected(p.anchor_at, &p.tz, x.period + 1), "plan {} period {} end", p.id, x.period);
                assert!(x.paid_at.is_some());
            }
            // The memberships granted run end to end from the anchor.
            let o = order::get(ctx, periods[1].order_id).await.unwrap();
            let mut grants: Vec<(i64, Option<i64>)> = vec![];
            for x in &periods[1..] {
                let e = yiren_core::delivery::entitlements(ctx, x.order_id).await.unwrap();
                assert_eq!(e.len(), 1);
                grants.push((e[0].starts_at, e[0].ends_at));
            }
            assert_eq!(grants[0].0, periods[0].ends_at, "{}", o.row.email);
            for w in grants.windows(2) {
                assert_eq!(Some(w[1].0), w[0].1, "plan {}: no gap, no overlap", p.id);
            }
            total += periods.len() - 1;
        }
        assert_eq!(total, placed);
        // The plan read by eye (Shanghai, 31 January 23:30): 29 February, 31 March, 30 April...
        let by_eye: Vec<String> = store::periods(ctx.db.read(), 1).await.unwrap().iter().take(5).map(|x| rfc3339(x.starts_at)).collect();
        assert_eq!(by_eye, ["2028-01-31T15:30:00Z", "2028-02-29T15:30:00Z", "2028-03-31T15:30:00Z", "2028-04-30T15:30:00Z", "2028-05-31T15:30:00Z"]);
        let p1 = store::periods(ctx.db.read(), 1).await.unwrap();
        assert_eq!(rfc3339(p1[13].starts_at), "2029-02-28T15:30:00Z");
        assert_eq!(rfc3339(p1[14].starts_at), "2029-03-31T15:30:00Z");
        // The period key is unique in the database itself.
        let dup = store::insert_period_into(&mut yiren_store::Writes::new(), &PeriodRow { plan_id: 1, period: 3, order_id: -1, starts_at: 0, ends_at: 0, paid_at: None, created_at: 0 })
            .run(&mut ctx.db.begin().await.unwrap()).await;
        assert!(dup.is_err(), "a second row for one period is refused");
        // UTC: the periods in their zone keep the local time of day they started at (but where
        // the clocks skipped it), whatever the offset that day.
        for (p, _) in plans.iter().step_by(37) {
            let tz: chrono_tz::Tz = p.tz.parse().unwrap();
            let first = tz.timestamp_millis_opt(p.anchor_at).unwrap();
            for x in store::periods(ctx.db.read(), p.id).await.unwrap() {
                let local = tz.timestamp_millis_opt(x.starts_at).unwrap();
                let skipped = tz.from_local_datetime(&local.date_naive().and_time(first.time())).single().is_none();
                if !skipped {
                    assert_eq!((local.hour(), local.minute()), (first.hour(), first.minute()), "plan {} period {}", p.id, x.period);
                }
            }
        }
        // The ledger audit: stock, money and messages agree with their ledgers.
        assert_eq!(order::audit(ctx).await.unwrap(), Vec::<String>::new());
        eprintln!("TIME-1 {engine:?}: {} plans, {placed} renewals over {sweeps} sweeps; placing {sweeping:?}, paying {paying:?}", plans.len());
    }

    /// A monthly membership paid with a gateway that cannot bill by itself: a week before the
    /// period ends the renewal order is placed (once, however often the sweep runs) and the
    /// customer is mailed its pay link; access is extended only when it is paid — to the same day
    /// of the next month — and a renewal left unpaid past its grace ends the plan, with a mail.
    async fn renewal_orders_remind_and_extend_only_when_paid(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let (_, v) = membership(ctx, "monthly", 1).await;
        let member = "member@example.com";
        // Bought on 31 January at 23:30 in Shanghai (the shop's zone).
        app.clock.set(at("2027-01-31T15:30:00Z").unwrap());
        let buy = Submit { token: "first".into(), email: member.into(), lines: vec![cart::Line { variant_id: v, quantity: 1 }], gateway: "manual".into(), ..Default::default() };
        let first = checkout::place(ctx, &buy).await.unwrap();
        order::confirm_manual(ctx, first.id, OWNER).await.unwrap();
        let plans = store::list(ctx.db.read(), "", None, 10).await.unwrap();
        assert_eq!(plans.len(), 1);
        let plan = &plans[0];
        assert_eq!((plan.status.as_str(), plan.gateway.as_str(), plan.gateway_ref.as_str(), plan.amount, plan.first_order_id, plan.tz.as_str()), ("active", "manual", "", 1_900, first.id, "Asia/Shanghai"));
        let periods = || async { store::periods(ctx.db.read(), plan.id).await.unwrap() };
        assert_eq!(periods().await.iter().map(|x| (rfc3339(x.starts_at), rfc3339(x.ends_at))).collect::<Vec<_>>(), [("2027-01-31T15:30:00Z".to_string(), "2027-02-28T15:30:00Z".to_string())]);
        let sweep = || async { recurring::sweep(ctx).await.unwrap() };
        // A minute before a week ahead of 28 February: nothing; a minute after: the renewal order.
        app.clock.set(at("2027-02-21T15:29:00Z").unwrap());
        sweep().await;
        assert_eq!(periods().await.len(), 1);
        app.clock.set(at("2027-02-21T15:31:00Z").unwrap());
        sweep().await;
        assert_eq!(sweep().await.placed, 0, "once per period");
        let p = periods().await;
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].period, rfc3339(p[1].starts_at), rfc3339(p[1].ends_at), p[1].paid_at), (1, "2027-02-28T15:30:00Z".into(), "2027-03-31T15:30:00Z".into(), None));
        let r1 = order::get(ctx, p[1].order_id).await.unwrap();
        assert_eq!((r1.row.total, r1.row.payment.as_str(), r1.row.gateway.as_str(), r1.row.email.as_str()), (1_900, "pending", "manual", member));
        assert_eq!(r1.row.expires_at, p[1].starts_at + recurring::GRACE_MS, "payable until three days into the period");
        // The customer is mailed the renewal with its pay link.
        let texts = || app.mails_to(member).iter().map(|m| yiren_testkit::mail_text(m)).collect::<Vec<_>>();
        yiren_testkit::wait_until("the renewal mail", || async { texts().iter().any(|m| m.contains("下一期")) }).await;
        let mails: Vec<String> = app.mails_to(member).iter().map(|m| yiren_testkit::mail_text(m)).collect();
        let renewal: Vec<&String> = mails.iter().filter(|m| m.contains("下一期")).collect();
        assert_eq!(renewal.len(), 1, "{mails:#?}");
        assert!(renewal[0].contains(&format!("/orders/{}?key=", r1.row.id)), "{}", renewal[0]);
        // Unpaid, the membership still ends on 28 February.
        let grants = |id: i64| async move { yiren_core::delivery::entitlements(ctx, id).await.unwrap() };
        assert!(grants(r1.row.id).await.is_empty());
        // Paid: it runs on to 31 March — the day it was bought on, not 28 March.
        order::confirm_manual(ctx, r1.row.id, OWNER).await.unwrap();
        let g = &grants(r1.row.id).await[0];
        assert_eq!((rfc3339(g.starts_at), g.ends_at.map(rfc3339)), ("2027-02-28T15:30:00Z".into(), Some("2027-03-31T15:30:00Z".into())));
        assert!(periods().await[1].paid_at.is_some());
        // Period 2 is placed and left unpaid: past due once it starts, ended after its grace.
        app.clock.set(at("2027-03-24T15:31:00Z").unwrap());
        sweep().await;
        let p = periods().await;
        assert_eq!(p.len(), 3);
        app.clock.set(at("2027-04-01T00:00:00Z").unwrap());
        sweep().await;
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status, "past_due");
        app.clock.set(at("2027-04-03T15:31:00Z").unwrap());
        let _ = order::expire(ctx, p[2].order_id).await.unwrap(); // the expiry job, if it has not run yet
        assert_eq!(order::get(ctx, p[2].order_id).await.unwrap().row.cancelled, 1);
        sweep().await;
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status, "lapsed");
        yiren_testkit::wait_until("the lapsed mail", || async { texts().iter().any(|m| m.contains("已经到期")) }).await;
        // No access past 31 March, and no more renewals.
        assert!(grants(p[2].order_id).await.is_empty());
        app.clock.set(at("2027-06-01T00:00:00Z").unwrap());
        assert_eq!(sweep().await, recurring::Swept::default());
        assert_eq!(periods().await.len(), 3);
        assert_eq!(order::audit(ctx).await.unwrap(), Vec::<String>::new());
    }

    /// The customer stops renewing from their account (their plan only: another customer's is
    /// not found); the waiting renewal order is cancelled; the owner sees the plan, its periods
    /// and its status in admin and can stop one too.
    async fn renewing_stops_from_the_account_or_admin(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        app.setup_owner(OWNER, "correct horse battery").await;
        let (_, v) = membership(ctx, "monthly", 1).await;
        app.clock.set(at("2027-05-10T02:00:00Z").unwrap());
        let buy = |token: &str, email: &str| Submit { token: token.into(), email: email.into(), lines: vec![cart::Line { variant_id: v, quantity: 1 }], gateway: "manual".into(), ..Default::default() };
        for (token, email) in [("a", "alice@example.com"), ("b", "bob@example.com")] {
            let o = checkout::place(ctx, &buy(token, email)).await.unwrap();
            order::confirm_manual(ctx, o.id, OWNER).await.unwrap();
        }
        let plans = store::list(ctx.db.read(), "", None, 10).await.unwrap();
        let id_of = |email: &str| plans.iter().find(|p| p.email == email).unwrap().id;
        let (alice_plan, bob_plan) = (id_of("alice@example.com"), id_of("bob@example.com"));
        app.clock.set(at("2027-06-04T00:00:00Z").unwrap());
        recurring::sweep(ctx).await.unwrap();
        let waiting = store::latest_period(ctx.db.read(), alice_plan).await.unwrap().unwrap();
        assert_eq!((waiting.period, waiting.paid_at), (1, None));
        // (The renewal mail first, so that the sign-in code is the next mail Alice gets.)
        yiren_testkit::wait_until("the renewal mail", || async { app.mails_to("alice@example.com").iter().any(|m| yiren_testkit::mail_text(m).contains("下一期")) }).await;
        let alice = app.customer("alice@example.com").await;
        let page = yiren_testkit::text_of(&alice, app.url("/account/orders")).await;
        assert!(page.contains("id=\"my-renewals\"") && page.contains("月度会员") && page.contains(&format!("/account/renewals/{alice_plan}/cancel")), "{page}");
        assert!(!page.contains(&format!("/account/renewals/{bob_plan}/cancel")));
        let csrf = yiren_testkit::csrf_of(&page);
        // Bob's plan is not Alice's to stop.
        let r = alice.post(app.url(&format!("/account/renewals/{bob_plan}/cancel"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(store::get(ctx.db.read(), bob_plan).await.unwrap().unwrap().status, "active");
        let r = alice.post(app.url(&format!("/account/renewals/{alice_plan}/cancel"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(store::get(ctx.db.read(), alice_plan).await.unwrap().unwrap().status, "cancelled");
        let o = order::get(ctx, waiting.order_id).await.unwrap();
        assert_eq!(o.row.cancelled, 1, "the waiting renewal order is cancelled");
        // Admin (signed in now: the clock has moved past the first session): the list, the plan's
        // page, and stopping Bob's.
        let owner = app.client();
        assert_eq!(app.sign_in(&owner, OWNER, "correct horse battery").await.status(), 303);
        let renewal_order = yiren_testkit::text_of(&owner, app.url(&format!("/admin/orders/{}", waiting.order_id))).await;
        assert!(renewal_order.contains(&format!("href=\"/admin/renewals/{alice_plan}\"")) && renewal_order.contains("第 1 期"), "{renewal_order}");
        let list = yiren_testkit::text_of(&owner, app.url("/admin/renewals")).await;
        assert!(list.contains("alice@example.com") && list.contains("bob@example.com") && list.contains("data-status=\"cancelled\""), "{list}");
        let only = yiren_testkit::text_of(&owner, app.url("/admin/renewals?status=cancelled")).await;
        assert!(only.contains("alice@example.com") && !only.contains("bob@example.com"), "{only}");
        let r = owner.get(app.url(&format!("/admin/renewals/{bob_plan}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let detail = r.text().await.unwrap();
        assert!(detail.contains("id=\"periods\"") && detail.contains("id=\"cancel-plan\""), "{detail}");
        let csrf = yiren_testkit::csrf_of(&detail);
        let r = owner.post(app.url(&format!("/admin/renewals/{bob_plan}/cancel"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(store::get(ctx.db.read(), bob_plan).await.unwrap().unwrap().status, "cancelled");
        // Again: it no longer renews (a clear answer, not an error page).
        let r = owner.post(app.url(&format!("/admin/renewals/{bob_plan}/cancel"))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("不再续费"));
        // A month on: what was paid ran to its end; neither plan renewed again.
        app.clock.set(at("2027-07-04T00:00:00Z").unwrap());
        recurring::sweep(ctx).await.unwrap();
        for plan in [alice_plan, bob_plan] {
            assert_eq!(store::periods(ctx.db.read(), plan).await.unwrap().len(), 2);
            assert_eq!(store::get(ctx.db.read(), plan).await.unwrap().unwrap().status, "cancelled");
        }
    }

    /// Stripe bills a monthly membership by itself: the checkout opens a subscription-mode
    /// session; its first invoice is the order's payment (the completed session and the first
    /// `invoice.paid` are one payment); each renewal invoice becomes a paid renewal order that
    /// extends the membership, once however often it is sent; a renewal arriving before the
    /// subscription is known is refused for a retry; a failed charge mails the customer once and
    /// leaves the plan past due until the retry is paid; the subscription's end stops the plan;
    /// the sweep never bills a gateway's plan itself.
    async fn stripe_bills_the_renewals(engine: Engine) {
        use yiren_testkit::fake_gateway::GatewayFake;
        use yiren_testkit::fake_stripe::FakeStripe;
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let fake = FakeStripe::start().await;
        yiren_testkit::gateway_suite::configure(&app, &fake).await;
        let (_, v) = membership(ctx, "monthly", 1).await;
        app.clock.set(yiren_testkit::real_now());
        let c = app.client();
        let (id, to) = yiren_testkit::gateway_suite::buy(&app, &c, v, "stripe").await;
        assert!(to.starts_with(&fake.desk.base), "{to}");
        let order_ref = id.to_string();
        let t = fake.desk.trade(&order_ref).unwrap();
        assert_eq!((t.field("mode"), t.field("line_items[0][price_data][recurring][interval]"), t.field("line_items[0][price_data][recurring][interval_count]"), t.field("subscription_data[metadata][yiren_order]")), ("subscription", "month", "1", order_ref.as_str()));
        // The first invoice's event comes before the session's: one payment either way.
        let notify = app.url("/payments/stripe/notify");
        let first_invoice = fake.invoice_event(&order_ref, "invoice.paid", 0);
        let r = first_invoice.request(&reqwest::Client::new(), &notify).send().await.unwrap();
        assert_eq!(r.status(), 200);
        fake.pay(&order_ref);
        fake.desk.wait_answers(&order_ref, 1).await;
        let o = order::get(ctx, id).await.unwrap();
        assert_eq!((o.row.payment.as_str(), o.transactions.len()), ("paid", 1));
        let sub = t.field("subscription").to_string();
        let plan = store::by_gateway_ref(ctx.db.read(), "stripe", &sub).await.unwrap().expect("the plan knows its subscription");
        assert_eq!((plan.first_order_id, plan.status.as_str()), (id, "active"));
        let first_end = store::periods(ctx.db.read(), plan.id).await.unwrap()[0].ends_at;
        // The sweep leaves a gateway's plan alone, even at renewal time.
        app.clock.set(first_end - DAY);
        recurring::sweep(ctx).await.unwrap();
        assert_eq!(store::periods(ctx.db.read(), plan.id).await.unwrap().len(), 1);
        // Back to the time the fake signs its events with (Stripe's 300 s tolerance).
        app.clock.set(yiren_testkit::real_now());
        // Renewal 1 paid (and sent twice): one renewal order, paid, extending to the next month.
        let n1 = fake.renew(&order_ref);
        fake.desk.wait_answers(&order_ref, 2).await;
        let again = fake.invoice_event(&order_ref, "invoice.paid", n1);
        assert_eq!(again.request(&reqwest::Client::new(), &notify).send().await.unwrap().status(), 200);
        let p = store::periods(ctx.db.read(), plan.id).await.unwrap();
        assert_eq!(p.len(), 2, "{p:?}");
        let r1 = order::get(ctx, p[1].order_id).await.unwrap();
        assert_eq!((r1.row.payment.as_str(), r1.row.gateway.as_str(), r1.transactions.len(), r1.transactions[0].reference.clone()), ("paid", "stripe", 1, format!("in_{sub}_{n1}")));
        let g = &yiren_core::delivery::entitlements(ctx, r1.row.id).await.unwrap()[0];
        assert_eq!((g.starts_at, g.ends_at), (first_end, Some(p[1].ends_at)));
        // Renewal 2 fails: the customer hears once (the event repeated changes nothing), the plan
        // is past due; Stripe's retry is paid and the plan is active again.
        let n2 = fake.fail_renewal(&order_ref);
        fake.desk.wait_answers(&order_ref, 3).await;
        let failed_again = fake.invoice_event(&order_ref, "invoice.payment_failed", n2);
        assert_eq!(failed_again.request(&reqwest::Client::new(), &notify).send().await.unwrap().status(), 200);
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status, "past_due");
        let failed_mails = || app.mails_to("buyer@example.com").iter().filter(|m| yiren_testkit::mail_text(m).contains("未能完成您会员的续费扣款")).count();
        yiren_testkit::wait_until("the failed renewal mail", || async { failed_mails() > 0 }).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(failed_mails(), 1);
        fake.retry_paid(&order_ref, n2);
        fake.desk.wait_answers(&order_ref, 4).await;
        let p = store::periods(ctx.db.read(), plan.id).await.unwrap();
        assert_eq!((p.len(), p[2].paid_at.is_some()), (3, true));
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status, "active");
        // A renewal of a subscription not known yet (its first event still on the way): refused
        // so that Stripe sends it again; once the first is in, the retry is recorded.
        let (id2, _) = yiren_testkit::gateway_suite::buy(&app, &app.client(), v, "stripe").await;
        let ref2 = id2.to_string();
        let early = fake.invoice_event(&ref2, "invoice.paid", 1);
        assert_eq!(early.request(&reqwest::Client::new(), &notify).send().await.unwrap().status(), 503);
        let before = fake.desk.trade(&ref2).unwrap().answers.len();
        fake.pay(&ref2);
        fake.desk.wait_answers(&ref2, before + 1).await;
        assert_eq!(early.request(&reqwest::Client::new(), &notify).send().await.unwrap().status(), 200);
        let plan2 = store::by_first_order(ctx.db.read(), id2).await.unwrap().unwrap();
        assert_eq!(store::periods(ctx.db.read(), plan2.id).await.unwrap().len(), 2);
        // The subscription ends at Stripe: the plan stops.
        fake.end(&order_ref);
        fake.desk.wait_answers(&order_ref, 5).await;
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status, "cancelled");
    }

    /// Lemon Squeezy with a subscription variant: a one-month membership's checkout uses it; the
    /// payment is the order (`order_created`), `subscription_created` attaches the subscription to
    /// the plan, each paid renewal becomes a paid renewal order (once, however often it is sent),
    /// a failed one leaves the plan past due, and the subscription expiring stops the plan.
    async fn lemon_squeezy_bills_the_renewals(engine: Engine) {
        use yiren_testkit::fake_gateway::GatewayFake;
        use yiren_testkit::fake_lemonsqueezy::{FakeLemonSqueezy, SUBSCRIPTION_VARIANT};
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let fake = FakeLemonSqueezy::start().await;
        yiren_testkit::gateway_suite::configure(&app, &fake).await;
        let (_, v) = membership(ctx, "monthly", 1).await;
        app.clock.set(yiren_testkit::real_now());
        let (id, _) = yiren_testkit::gateway_suite::buy(&app, &app.client(), v, "lemonsqueezy").await;
        let order_ref = id.to_string();
        assert_eq!(fake.desk.trade(&order_ref).unwrap().field("variant"), SUBSCRIPTION_VARIANT);
        fake.pay(&order_ref);
        fake.desk.wait_answers(&order_ref, 1).await;
        let plan = store::by_first_order(ctx.db.read(), id).await.unwrap().expect("a plan");
        assert_eq!(plan.gateway_ref, "", "not attached before Lemon Squeezy names its subscription");
        let sub = fake.subscribe(&order_ref);
        fake.desk.wait_answers(&order_ref, 2).await;
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().gateway_ref, sub);
        fake.renew(&order_ref, 1, true);
        fake.desk.wait_answers(&order_ref, 3).await;
        let again = fake.renewal_event(&order_ref, 1, true);
        assert_eq!(again.request(&reqwest::Client::new(), &app.url("/payments/lemonsqueezy/notify")).send().await.unwrap().status(), 200);
        let p = store::periods(ctx.db.read(), plan.id).await.unwrap();
        assert_eq!(p.len(), 2);
        let r1 = order::get(ctx, p[1].order_id).await.unwrap();
        assert_eq!((r1.row.payment.as_str(), r1.transactions.len(), r1.transactions[0].reference.clone()), ("paid", 1, format!("invoice:{sub}01")));
        assert_eq!(yiren_core::delivery::entitlements(ctx, r1.row.id).await.unwrap()[0].ends_at, Some(p[1].ends_at));
        fake.renew(&order_ref, 2, false);
        fake.desk.wait_answers(&order_ref, 4).await;
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status, "past_due");
        assert_eq!(store::periods(ctx.db.read(), plan.id).await.unwrap().len(), 2);
        fake.expire(&order_ref);
        fake.desk.wait_answers(&order_ref, 5).await;
        assert_eq!(store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status, "cancelled");
    }

    /// PayPal: a monthly membership's checkout creates a product, a plan billing the order's
    /// total every month and a subscription on it; the first sale pays the order and starts the
    /// plan, whichever of it and the activation comes first; later sales are renewals (once
    /// each), a failed payment leaves the plan past due, a cancellation stops it.
    async fn paypal_bills_the_renewals(engine: Engine) {
        use yiren_testkit::fake_gateway::GatewayFake;
        use yiren_testkit::fake_paypal::FakePaypal;
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        let fake = FakePaypal::start().await;
        yiren_testkit::gateway_suite::configure(&app, &fake).await;
        let (_, v) = membership(ctx, "monthly", 1).await;
        let (id, to) = yiren_testkit::gateway_suite::buy(&app, &app.client(), v, "paypal").await;
        let order_ref = id.to_string();
        assert!(to.contains("ba_token=BA-"), "sent to approve the subscription: {to}");
        assert_eq!(fake.plan_of(&order_ref), Some(("19.00".into(), "CNY".into(), 1)));
        let back = fake.pay(&order_ref);
        // The customer's return changes nothing by itself (nothing to capture).
        let page = app.client().get(&back).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let sub = fake.desk.trade(&order_ref).unwrap().no;
        yiren_testkit::wait_until("the first sale recorded", || async { order::get(ctx, id).await.unwrap().row.payment == "paid" }).await;
        let plan = store::by_first_order(ctx.db.read(), id).await.unwrap().expect("a plan");
        assert_eq!(plan.gateway_ref, sub);
        assert_eq!(order::get(ctx, id).await.unwrap().transactions[0].reference, format!("SALE{sub}X0"));
        fake.renew(&order_ref, 1);
        yiren_testkit::wait_until("the renewal recorded", || async { store::periods(ctx.db.read(), plan.id).await.unwrap().iter().filter(|p| p.paid_at.is_some()).count() == 2 }).await;
        let notify = app.url("/payments/paypal/notify");
        let again = fake.sale_event(&order_ref, 1);
        assert_eq!(again.request(&reqwest::Client::new(), &notify).send().await.unwrap().status(), 200);
        let p = store::periods(ctx.db.read(), plan.id).await.unwrap();
        assert_eq!(p.len(), 2);
        let r1 = order::get(ctx, p[1].order_id).await.unwrap();
        assert_eq!((r1.row.payment.as_str(), r1.transactions.len()), ("paid", 1));
        fake.fail_renewal(&order_ref);
        yiren_testkit::wait_until("past due", || async { store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status == "past_due" }).await;
        fake.cancel(&order_ref);
        yiren_testkit::wait_until("cancelled", || async { store::get(ctx.db.read(), plan.id).await.unwrap().unwrap().status == "cancelled" }).await;
        assert_eq!(store::periods(ctx.db.read(), plan.id).await.unwrap().len(), 2);
    }
}
