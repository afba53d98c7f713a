//! Digital delivery over real HTTP, on both engines (RELIABILITY DL-1): the owner uploads a digital
//! product's files (checked by their bytes: mismatches, polyglots, active SVG, archives with links
//! or too many entries refused), a paid order grants downloads through signed links that expire
//! within 15 minutes, and 1,000 download attempts — valid, expired, too long-lived, for another
//! order, for a refunded or revoked order, tampered, path tricks, another product's file — give
//! 200 only for the valid ones, 403/404 for every other. The download limit holds under
//! simultaneous downloads; a membership runs for its days × quantity; a free order grants at once.

use yiren_core::catalog::Kind;
use yiren_core::checkout::{self, Config, Submit};
use yiren_core::order::{self, Refund};
use yiren_core::{cart, delivery, Ctx};
use yiren_store::delivery::EntitlementRow;
use yiren_testkit::{both_engines, location, product, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";
const PDF: &[u8] = b"%PDF-1.7\n% a course handout\n%%EOF\n";

async fn product_of(ctx: &Ctx, variant: i64) -> i64 {
    yiren_store::catalog::get_variant(ctx.db.read(), variant)
        .await
        .unwrap()
        .product_id
}

/// A guest's order for one unit of `variant`, paid by the owner's manual confirmation.
async fn paid_order(ctx: &Ctx, token: &str, email: &str, variant: i64) -> i64 {
    let s = Submit {
        token: token.into(),
        email: email.into(),
        lines: vec![cart::Line {
            variant_id: variant,
            quantity: 1,
        }],
        gateway: "manual".into(),
        ..Default::default()
    };
    let o = checkout::place(ctx, &s).await.unwrap();
    order::confirm_manual(ctx, o.id, OWNER).await.unwrap();
    o.id
}

async fn grant_of(ctx: &Ctx, order_id: i64) -> EntitlementRow {
    let mut g = delivery::entitlements(ctx, order_id).await.unwrap();
    assert_eq!(g.len(), 1, "{g:?}");
    g.remove(0)
}

/// A link with a genuine signature for any expiry.
fn signed(ctx: &Ctx, e: &EntitlementRow, file: i64, exp: i64) -> String {
    delivery::link_expiring(ctx, e, file, exp)
}

async fn upload(
    app: &TestApp,
    owner: &reqwest::Client,
    product: i64,
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let csrf = app.csrf(owner, &format!("/admin/products/{product}")).await;
    let form = reqwest::multipart::Form::new().text("_csrf", csrf).part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
    );
    owner
        .post(app.url(&format!("/admin/products/{product}/files")))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

both_engines! {
    async fn uploads_are_checked_and_downloads_are_signed_counted_and_revoked(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let ctx = &app.state.ctx;
        checkout::save_config(ctx, &Config { download_limit: 1000, ..Default::default() }).await.unwrap();
        let v = product(ctx, "course", Kind::Digital, &[("C-1", 9_900, 1000)]).await[0];
        let p = product_of(ctx, v).await;
        let other_v = product(ctx, "ebook", Kind::Digital, &[("E-1", 1_900, 1000)]).await[0];
        let other_p = product_of(ctx, other_v).await;
        let tea = product(ctx, "tea", Kind::Physical, &[("T-1", 1_000, 10)]).await[0];

        // Uploads: the good ones are kept under a clean name; every bad one is a 422 naming why.
        let ok = upload(&app, &owner, p, "../../讲义 第1讲.pdf", PDF.to_vec()).await;
        assert_eq!(location(&ok), format!("/admin/products/{p}?notice=delivery.added#files"));
        let refused = [
            ("book.pdf", b"\x89PNG\r\n\x1a\n....".to_vec(), "文件内容与扩展名不符"),
            ("cover.jpg", [&b"\xff\xd8\xff\xe0"[..], b"<html><script>alert(1)</script>"].concat(), "含有网页或脚本内容"),
            ("x.svg", b"<svg onload=alert(1)></svg>".to_vec(), "含有网页或脚本内容"),
            ("CON.pdf", PDF.to_vec(), "这个文件名不能使用"),
            ("tool.xyz", b"MZ....".to_vec(), "不接受这种类型的文件"),
            ("broken.zip", b"PK\x03\x04garbage".to_vec(), "无法读取这个压缩包"),
        ];
        for (name, bytes, says) in refused {
            let r = upload(&app, &owner, p, name, bytes).await;
            assert_eq!(r.status(), 422, "{name}");
            assert!(r.text().await.unwrap().contains(says), "{name}");
        }
        let not_digital = upload(&app, &owner, product_of(ctx, tea).await, "a.pdf", PDF.to_vec()).await;
        assert_eq!(not_digital.status(), 422);
        assert!(upload(&app, &owner, other_p, "other.pdf", PDF.to_vec()).await.status().is_redirection());
        let files = delivery::files(ctx, p).await.unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "讲义 第1讲.pdf");
        let file = files[0].id;
        let other_file = delivery::files(ctx, other_p).await.unwrap()[0].id;
        let editor = owner.get(app.url(&format!("/admin/products/{p}"))).send().await.unwrap().text().await.unwrap();
        assert!(editor.contains("讲义 第1讲.pdf") && editor.contains("id=\"file-upload\""));

        // An unpaid order grants nothing; paid ones grant downloads.
        let s = Submit { token: "unpaid".into(), email: "e@example.com".into(), lines: vec![cart::Line { variant_id: v, quantity: 1 }], gateway: "manual".into(), ..Default::default() };
        let unpaid = checkout::place(ctx, &s).await.unwrap();
        assert!(delivery::entitlements(ctx, unpaid.id).await.unwrap().is_empty());
        let unpaid_page = app.client().get(app.url(&format!("/orders/{}?key={}", unpaid.id, order::access_key(ctx, unpaid.id)))).send().await.unwrap().text().await.unwrap();
        assert!(!unpaid_page.contains("downloads&#x2f;") && !unpaid_page.contains("id=\"downloads\""));
        let a = grant_of(ctx, paid_order(ctx, "a", "a@example.com", v).await).await;
        let b = grant_of(ctx, paid_order(ctx, "b", "b@example.com", v).await).await;
        let c = grant_of(ctx, paid_order(ctx, "c", "c@example.com", v).await).await;
        let d = grant_of(ctx, paid_order(ctx, "d", "d@example.com", v).await).await;
        assert_eq!((a.kind.as_str(), a.download_limit, a.downloads), ("download", 1000, 0));

        // The order page offers fresh links; one works, as an attachment that is never rendered.
        let page = app.client().get(app.url(&format!("/orders/{}?key={}", a.order_id, order::access_key(ctx, a.order_id)))).send().await.unwrap().text().await.unwrap();
        let page = page.replace("&#x2f;", "/");
        let href = page.split("href=\"/downloads/").nth(1).unwrap_or_else(|| panic!("no download link: {page}")).split('"').next().unwrap().replace("&amp;", "&");
        let r = app.client().get(app.url(&format!("/downloads/{href}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "application/octet-stream");
        assert_eq!(h["content-disposition"], "attachment; filename=\"__ _1_.pdf\"; filename*=UTF-8''%E8%AE%B2%E4%B9%89%20%E7%AC%AC1%E8%AE%B2.pdf");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
        assert_eq!(h["cache-control"], "private, no-store");
        assert_eq!(&r.bytes().await.unwrap()[..], PDF);
        let sig = href.split("sig=").nth(1).unwrap();
        assert_eq!(sig.len(), 64, "a 256-bit MAC");

        // C's link works until C is refunded in full; D's until the owner withdraws it.
        let c_link = delivery::link(ctx, &c, file);
        let d_link = delivery::link(ctx, &d, file);
        assert_eq!(app.client().get(app.url(&c_link)).send().await.unwrap().status(), 200);
        assert_eq!(app.client().get(app.url(&d_link)).send().await.unwrap().status(), 200);
        order::refund(ctx, c.order_id, &Refund { amount: 9_900, key: "c-refund".into(), restock: false, reason: "不想要了".into(), lines: vec![] }, OWNER).await.unwrap();
        let csrf = app.csrf(&owner, &format!("/admin/orders/{}", d.order_id)).await;
        let withdrawn = owner.post(app.url(&format!("/admin/orders/{}/access/{}/revoke", d.order_id, d.id))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(location(&withdrawn), format!("/admin/orders/{}?notice=orders.access_revoked", d.order_id));
        let admin_page = owner.get(app.url(&format!("/admin/orders/{}", d.order_id))).send().await.unwrap().text().await.unwrap();
        assert!(admin_page.contains("权益已收回"), "timeline and notice");

        // 1,000 attempts.
        let now = ctx.now() / 1000;
        let a_link = delivery::link(ctx, &a, file);
        let mut rng = rand::random::<u64>();
        let mut ok = 0;
        let cl = app.client();
        for i in 0..1000 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (url, good) = match i % 10 {
                0 => (a_link.clone(), true),
                1 => (signed(ctx, &a, file, now - 1 - (rng % 10_000) as i64), false),
                2 => (signed(ctx, &a, file, now + 16 * 60 + (rng % 10_000) as i64), false),
                // A's genuine signature on B's entitlement.
                3 => (a_link.replace(&format!("/downloads/{}/", a.id), &format!("/downloads/{}/", b.id)), false),
                4 => (c_link.clone(), false),
                5 => (d_link.clone(), false),
                6 => {
                    let at = a_link.len() - 1 - (rng % 64) as usize;
                    let mut bytes = a_link.clone().into_bytes();
                    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
                    (String::from_utf8(bytes).unwrap(), false)
                }
                7 => {
                    let tricks = [
                        "/downloads/../../etc/passwd".to_string(),
                        "/downloads/%2e%2e/%2e%2e/etc/passwd".into(),
                        format!("/downloads/{}/..%2f..%2fkeys", a.id),
                        format!("/downloads/{}/{file}%00.pdf?exp={now}&sig=00", a.id),
                        format!("/downloads/{}/CON", a.id),
                        format!("/downloads/{}/..%5c..%5cwindows%5cwin.ini", a.id),
                        format!("/downloads/{}/{}", a.id, "%2e%2e%2f".repeat(8)),
                    ];
                    (tricks[(rng % tricks.len() as u64) as usize].clone(), false)
                }
                // A genuine signature for a file of another product.
                8 => (signed(ctx, &a, other_file, now + 60), false),
                _ => {
                    let base = format!("/downloads/{}/{file}", a.id);
                    let garbled = [base.clone(), format!("{base}?exp={now}"), format!("{base}?exp=x&sig=ab"), format!("{base}?exp={}&sig={}", now + 60, "a".repeat(64))];
                    (garbled[(rng % 4) as usize].clone(), false)
                }
            };
            let r = cl.get(app.url(&url)).send().await.unwrap();
            let status = r.status().as_u16();
            if good {
                assert_eq!(status, 200, "{url}");
                ok += 1;
            } else {
                assert!(status == 403 || status == 404, "attempt {i}: {url} gave {status}");
                assert!(!r.bytes().await.unwrap().starts_with(b"%PDF"), "{url}");
            }
        }
        assert_eq!(ok, 100);
        // Every valid attempt was counted, nothing else.
        let a_after = grant_of(ctx, a.order_id).await;
        assert_eq!(a_after.downloads, 1 + 100);
    }

    async fn the_download_limit_holds_under_simultaneous_downloads(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        checkout::save_config(ctx, &Config { download_limit: 3, ..Default::default() }).await.unwrap();
        let v = product(ctx, "album", Kind::Digital, &[("A-1", 3_000, 100)]).await[0];
        let p = product_of(ctx, v).await;
        let fid = ctx.new_id();
        app.state.files.put(&delivery::file_key(p, fid), b"ID3 an album".to_vec()).await.unwrap();
        let checked = delivery::inspect("album.mp3", b"ID3 an album", 1 << 20).unwrap();
        delivery::add_file(ctx, p, fid, &checked, 12).await.unwrap();
        let g = grant_of(ctx, paid_order(ctx, "lim", "l@example.com", v).await).await;
        let link = delivery::link(ctx, &g, fid);
        let statuses: Vec<u16> = futures::future::join_all((0..12).map(|_| {
            let (c, url) = (app.client(), app.url(&link));
            async move { c.get(url).send().await.unwrap().status().as_u16() }
        }))
        .await;
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 9, "{statuses:?}");
        assert_eq!(grant_of(ctx, g.order_id).await.downloads, 3);
        // The page says so, and offers no more links.
        let page = app.client().get(app.url(&format!("/orders/{}?key={}", g.order_id, order::access_key(ctx, g.order_id)))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("下载次数已用完") && !page.contains("&#x2f;downloads&#x2f;"), "{page}");
    }

    async fn memberships_run_for_their_days_and_free_orders_grant_at_once(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        use yiren_core::catalog::{self, Details, Price, ProductInput, VariantInput};
        let club = ProductInput {
            title: "读书会".into(), handle: "club".into(), kind: Kind::Membership, status: "active".into(),
            details: Details { membership_days: Some(30), ..Default::default() },
            variants: vec![VariantInput { prices: vec![Price { currency: "CNY".into(), amount: 2_900, compare_at: None }], ..Default::default() }],
            ..Default::default()
        };
        let m = catalog::create(ctx, &club, "test").await.unwrap().variants[0].row.id;
        let s = Submit { token: "club".into(), email: "m@example.com".into(), lines: vec![cart::Line { variant_id: m, quantity: 2 }], gateway: "manual".into(), ..Default::default() };
        let o = checkout::place(ctx, &s).await.unwrap();
        assert!(delivery::entitlements(ctx, o.id).await.unwrap().is_empty());
        let before = ctx.now();
        order::confirm_manual(ctx, o.id, OWNER).await.unwrap();
        // A second confirmation grants nothing more.
        order::confirm_manual(ctx, o.id, OWNER).await.unwrap();
        let g = grant_of(ctx, o.id).await;
        assert_eq!(g.kind, "membership");
        let days = (g.ends_at.unwrap() - g.starts_at) / 86_400_000;
        assert_eq!(days, 60, "30 days × 2");
        assert!(g.starts_at >= before);
        let page = app.client().get(app.url(&format!("/orders/{}?key={}", o.id, order::access_key(ctx, o.id)))).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("会员有效期至"), "{page}");
        // Bought again while still a member: the new 30 days follow the 60 already held.
        let again = Submit { token: "club-again".into(), email: "m@example.com".into(), lines: vec![cart::Line { variant_id: m, quantity: 1 }], gateway: "manual".into(), ..Default::default() };
        let o2 = checkout::place(ctx, &again).await.unwrap();
        order::confirm_manual(ctx, o2.id, OWNER).await.unwrap();
        let g2 = grant_of(ctx, o2.id).await;
        assert_eq!((g2.starts_at, g2.ends_at), (g.ends_at.unwrap(), Some(g.ends_at.unwrap() + 30 * 86_400_000)));
        // Someone else's membership starts when they pay.
        let other = Submit { token: "club-other".into(), email: "n@example.com".into(), lines: vec![cart::Line { variant_id: m, quantity: 1 }], gateway: "manual".into(), ..Default::default() };
        let o3 = checkout::place(ctx, &other).await.unwrap();
        order::confirm_manual(ctx, o3.id, OWNER).await.unwrap();
        let g3 = grant_of(ctx, o3.id).await;
        assert!(g3.starts_at < g.ends_at.unwrap() && g3.starts_at >= before);
        order::refund(ctx, o.id, &Refund { amount: 5_800, key: "m".into(), restock: false, reason: String::new(), lines: vec![] }, OWNER).await.unwrap();
        assert!(grant_of(ctx, o.id).await.revoked_at.is_some());

        // A free digital product: paid at checkout, granted in the same transaction.
        let free = product(ctx, "sample", Kind::Digital, &[("S-0", 0, 100)]).await[0];
        let s = Submit { token: "free".into(), email: "f@example.com".into(), lines: vec![cart::Line { variant_id: free, quantity: 1 }], gateway: "manual".into(), ..Default::default() };
        let o = checkout::place(ctx, &s).await.unwrap();
        assert_eq!(o.payment, "paid");
        assert_eq!(grant_of(ctx, o.id).await.kind, "download");
        assert!(order::audit(ctx).await.unwrap().is_empty());
    }

    async fn monthly_memberships_keep_the_day_they_were_bought_on(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let ctx = &app.state.ctx;
        use yiren_core::catalog::{self, Details, Price, ProductInput, VariantInput};
        use yiren_core::clock::{parse_rfc3339 as at, rfc3339};
        let input = |details: Details| ProductInput {
            title: "月度会员".into(), handle: "monthly".into(), kind: Kind::Membership, status: "active".into(), details,
            variants: vec![VariantInput { prices: vec![Price { currency: "CNY".into(), amount: 1_900, compare_at: None }], ..Default::default() }],
            ..Default::default()
        };
        // Days or months: one of the two.
        for d in [Details::default(), Details { membership_days: Some(30), membership_months: Some(1), ..Default::default() }] {
            let e = catalog::create(ctx, &input(d), "test").await.unwrap_err();
            assert!(matches!(&e, yiren_core::DomainError::Invalid { field, .. } if *field == Some("membership_days")), "{e:?}");
        }
        assert!(catalog::create(ctx, &input(Details { membership_months: Some(1_201), ..Default::default() }), "test").await.is_err());
        let m = catalog::create(ctx, &input(Details { membership_months: Some(1), ..Default::default() }), "test").await.unwrap().variants[0].row.id;
        let buy = |token: &'static str, quantity: i64| Submit { token: token.into(), email: "m@example.com".into(), lines: vec![cart::Line { variant_id: m, quantity }], gateway: "manual".into(), ..Default::default() };
        // Bought on 31 January at 23:30 in Shanghai (the shop's zone): 15:30 UTC.
        app.clock.set(at("2027-01-31T15:30:00Z").unwrap());
        let o1 = checkout::place(ctx, &buy("m1", 1)).await.unwrap();
        order::confirm_manual(ctx, o1.id, OWNER).await.unwrap();
        let g1 = grant_of(ctx, o1.id).await;
        assert_eq!((rfc3339(g1.starts_at), g1.ends_at.map(rfc3339)), ("2027-01-31T15:30:00Z".into(), Some("2027-02-28T15:30:00Z".into())));
        // Two more months bought on 10 February follow on, counted from 31 January: to 30 April.
        app.clock.set(at("2027-02-10T02:00:00Z").unwrap());
        let o2 = checkout::place(ctx, &buy("m2", 2)).await.unwrap();
        order::confirm_manual(ctx, o2.id, OWNER).await.unwrap();
        let g2 = grant_of(ctx, o2.id).await;
        assert_eq!((g2.starts_at, g2.ends_at.map(rfc3339)), (g1.ends_at.unwrap(), Some("2027-04-30T15:30:00Z".into())));
        assert_eq!(g2.period_anchor, Some(g1.starts_at));
        // And one more runs to the 31st again, not to the 30th.
        let o3 = checkout::place(ctx, &buy("m3", 1)).await.unwrap();
        order::confirm_manual(ctx, o3.id, OWNER).await.unwrap();
        assert_eq!(grant_of(ctx, o3.id).await.ends_at.map(rfc3339), Some("2027-05-31T15:30:00Z".into()));
        // After a run has lapsed, a purchase starts a new one from the day it is paid.
        app.clock.set(at("2027-07-15T04:00:00Z").unwrap());
        let o4 = checkout::place(ctx, &buy("m4", 1)).await.unwrap();
        order::confirm_manual(ctx, o4.id, OWNER).await.unwrap();
        let g4 = grant_of(ctx, o4.id).await;
        assert_eq!((rfc3339(g4.starts_at), g4.ends_at.map(rfc3339), g4.period_anchor), ("2027-07-15T04:00:00Z".into(), Some("2027-08-15T04:00:00Z".into()), Some(g4.starts_at)));
    }
}
