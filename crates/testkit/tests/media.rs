//! Product media over real HTTP: admin uploads checked by their bytes, sizes made by the job
//! (JPEG/PNG and WebP), alt text per language on the shop front, video files and Bilibili links,
//! order, removal (files deleted by a job); the API adding images from a URL (through the guarded
//! client, following a redirect) or inline; the event log; and files in an S3 bucket (moto's real
//! S3 server) instead of the data directory. On both engines.

use std::io::Cursor;

use base64::Engine as _;
use serde_json::json;
use yiren_core::catalog::{self, Price, ProductInput, VariantInput};
use yiren_core::media;
use yiren_testkit::s3::S3Server;
use yiren_testkit::{both_engines, wait_until, TestApp};

const OWNER: &str = "owner@example.com";
const PW: &str = "correct horse battery staple";

fn product(title: &str) -> ProductInput {
    ProductInput {
        title: title.into(),
        status: "active".into(),
        variants: vec![VariantInput {
            prices: vec![Price {
                currency: "CNY".into(),
                amount: 32900,
                compare_at: None,
            }],
            track_inventory: true,
            initial_stock: 3,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, 120])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, _| image::Rgba([200, (x % 256) as u8, 30, 255]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// The smallest thing that starts like an MP4 file.
fn mp4() -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    v.resize(4096, 0);
    v
}

async fn statuses(app: &TestApp, id: i64) -> Vec<String> {
    media::of_product(&app.state.ctx, id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.row.status.clone())
        .collect()
}

async fn upload(
    app: &TestApp,
    c: &reqwest::Client,
    id: i64,
    csrf: Option<&str>,
    files: Vec<(&str, Vec<u8>)>,
    text: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new();
    if let Some(t) = csrf {
        form = form.text("_csrf", t.to_string());
    }
    for (k, v) in text {
        form = form.text(k.to_string(), v.to_string());
    }
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
    }
    c.post(app.url(&format!("/admin/products/{id}/media")))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, String, Vec<u8>) {
    let r = c.get(url).send().await.unwrap();
    let st = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (st, ct, r.bytes().await.unwrap().to_vec())
}

both_engines! {
    async fn admin_media_reach_the_shop_front_in_every_size_and_language(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let c = app.setup_owner(OWNER, PW).await;
        let ctx = app.state.ctx.clone();
        let p = catalog::create(&ctx, &product("亚麻衬衫"), "test").await.unwrap();
        let id = p.row.id;
        let editor = format!("/admin/products/{id}");
        let csrf = app.csrf(&c, &editor).await;

        // Refused, and nothing stored: no token; an HTML page named .jpg; an unknown format; a
        // file over the limit; a link to a site that is not Bilibili or YouTube.
        let r = upload(&app, &c, id, None, vec![("a.jpg", jpeg(10, 10))], &[]).await;
        assert_eq!(r.status(), 403);
        let r = upload(&app, &c, id, Some("wrong"), vec![("a.jpg", jpeg(10, 10))], &[]).await;
        assert_eq!(r.status(), 403);
        let r = upload(&app, &c, id, Some(&csrf), vec![("photo.jpg", b"<html><script>alert(1)</script>".to_vec())], &[]).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("以文件内容判断"), "the reason, in the owner's language");
        let r = upload(&app, &c, id, Some(&csrf), vec![("x.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec())], &[]).await;
        assert_eq!(r.status(), 422);
        let mut huge = jpeg(8, 8);
        huge.resize(media::MAX_IMAGE_BYTES + 1, 0);
        let r = upload(&app, &c, id, Some(&csrf), vec![("huge.jpg", huge)], &[]).await;
        assert_eq!(r.status(), 422);
        assert!(r.text().await.unwrap().contains("20 MB"));
        let r = upload(&app, &c, id, Some(&csrf), vec![], &[("embed_url", "https://evil.example/video/BV1GJ411x7h7")]).await;
        assert_eq!(r.status(), 422);
        let r = upload(&app, &c, id, Some(&csrf), vec![], &[]).await;
        assert_eq!(r.status(), 422);
        assert!(statuses(&app, id).await.is_empty());
        assert!(!app.db.dir().join("files/products").exists() || std::fs::read_dir(app.db.dir().join("files/products")).unwrap().next().is_none());

        // A photo with alt text in both languages, a video file and a Bilibili link.
        let r = upload(&app, &c, id, Some(&csrf), vec![("正面.jpg", jpeg(1600, 900))],
            &[("alt_zh-CN", "白色亚麻衬衫正面"), ("alt_en", "White linen shirt, front")]).await;
        assert_eq!(r.status(), 303);
        assert!(yiren_testkit::location(&r).ends_with("#media"));
        let r = upload(&app, &c, id, Some(&csrf), vec![("clip.mp4", mp4())], &[]).await;
        assert_eq!(r.status(), 303);
        let r = upload(&app, &c, id, Some(&csrf), vec![], &[("embed_url", "https://www.bilibili.com/video/BV1GJ411x7h7/?p=1")]).await;
        assert_eq!(r.status(), 303);
        wait_until("the photo's sizes are made", || async { statuses(&app, id).await == ["ready", "ready", "ready"] }).await;

        let items = media::of_product(&ctx, id).await.unwrap();
        let photo = &items[0];
        assert_eq!((photo.row.kind.as_str(), photo.row.width, photo.row.height), ("image", 1600, 900));
        let jpegs: Vec<_> = photo.sizes.iter().filter(|s| s.mime == "image/jpeg").map(|s| (s.name.as_str(), s.width, s.height)).collect();
        assert_eq!(jpegs, [("thumb", 200, 113), ("medium", 640, 360), ("large", 1280, 720)]);
        assert!(photo.sizes.iter().any(|s| s.mime == "image/webp"), "WebP is smaller for a photo like this");
        let anon = app.client();
        for s in &photo.sizes {
            let (st, ct, body) = get(&anon, &app.url(&media::file_url(&s.key))).await;
            assert_eq!((st, ct.as_str()), (200, s.mime.as_str()), "{}", s.key);
            assert_eq!(media::sniff(&body).unwrap().mime(), s.mime);
            assert_eq!(body.len() as u64, s.bytes);
        }
        let r = anon.get(app.url(&media::file_url(&photo.sizes[0].key))).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        // One byte range (how browsers seek in a video); paths outside product media are not served.
        let video = &items[1];
        let r = anon.get(app.url(&media::file_url(&video.row.storage_key))).header("range", "bytes=4-11").send().await.unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.headers()["content-range"], "bytes 4-11/4096");
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"ftypmp42");
        let r = anon.get(app.url(&media::file_url(&video.row.storage_key))).header("range", "bytes=5000-").send().await.unwrap();
        assert_eq!(r.status(), 416, "a range past the end");
        let r = anon.get(app.url(&media::file_url(&video.row.storage_key))).header("range", "bytes=4000-").send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["content-range"].to_str().unwrap()), (206, "bytes 4000-4095/4096"));
        for bad in ["/media/products/1/2/../../yiren.db", "/media/settings.toml", "/media/products/1/2/x.html"] {
            assert_eq!(anon.get(app.url(bad)).send().await.unwrap().status(), 404, "{bad}");
        }

        // The shop front: a <picture> with WebP and JPEG sizes and the page's dimensions, alt text
        // in the visitor's language, the video, the Bilibili player; Open Graph and JSON-LD images.
        let page = |lang: &'static str| {
            let anon = anon.clone();
            let url = app.url("/products/%E4%BA%9A%E9%BA%BB%E8%A1%AC%E8%A1%AB");
            // (minijinja escapes "/" in attribute values as "&#x2f;", which browsers read as "/")
            async move { anon.get(url).header("accept-language", lang).send().await.unwrap().text().await.unwrap().replace("&#x2f;", "/") }
        };
        let zh = page("zh-CN").await;
        assert!(zh.contains("<picture><source type=\"image/webp\""), "{zh}");
        assert!(zh.contains("width=\"640\" height=\"360\" alt=\"白色亚麻衬衫正面\""), "{zh}");
        assert!(zh.contains(&format!("<video src=\"/media/products/{id}/{}/original.mp4\"", video.row.id)));
        assert!(zh.contains("<iframe src=\"https://player.bilibili.com/player.html?bvid=BV1GJ411x7h7&amp;autoplay=0\""), "{zh}");
        assert!(zh.contains("<meta property=\"og:image\""));
        assert!(zh.contains("\"image\":[\"/media/products/"), "JSON-LD names the image");
        let en = page("en").await;
        assert!(en.contains("alt=\"White linen shirt, front\""), "{en}");
        // The home page card: the thumbnail with its size, lazily loaded.
        let home = anon.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("width=\"200\" height=\"113\""), "{home}");
        assert!(home.contains("loading=\"lazy\""));

        // Order: the numbers (what drag and drop also sets) put the link first.
        let ids: Vec<i64> = items.iter().map(|m| m.row.id).collect();
        let r = c.post(app.url(&format!("/admin/products/{id}/media/order"))).form(&[
            ("_csrf", csrf.as_str()), (&format!("pos_{}", ids[0]), "3"), (&format!("pos_{}", ids[1]), "2"), (&format!("pos_{}", ids[2]), "1"),
        ]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let now: Vec<i64> = media::of_product(&ctx, id).await.unwrap().iter().map(|m| m.row.id).collect();
        assert_eq!(now, [ids[2], ids[1], ids[0]]);
        // An order that leaves one out is refused.
        let r = c.post(app.url(&format!("/admin/products/{id}/media/order"))).form(&[
            ("_csrf", csrf.as_str()), (&format!("pos_{}", ids[0]), "1"),
        ]).send().await.unwrap();
        assert_eq!(r.status(), 422);

        // Alt text edited; too long refused.
        let r = c.post(app.url(&format!("/admin/media/{}", ids[0]))).form(&[("_csrf", csrf.as_str()), ("alt_en", "Linen shirt, front view")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let m = media::get(&ctx, ids[0]).await.unwrap();
        assert_eq!(m.alt.get("en").map(String::as_str), Some("Linen shirt, front view"));
        assert_eq!(m.alt.get("zh-CN"), None, "a field left empty clears that language");
        let long = "长".repeat(301);
        let r = c.post(app.url(&format!("/admin/media/{}", ids[0]))).form(&[("_csrf", csrf.as_str()), ("alt_en", long.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 422);

        // Removal: the row at once, the files by a job.
        let files_dir = app.db.dir().join("files");
        assert!(files_dir.join(&photo.row.storage_key).exists());
        let r = c.post(app.url(&format!("/admin/media/{}/delete", ids[0]))).form(&[("_csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(media::of_product(&ctx, id).await.unwrap().len(), 2);
        let keys = photo.keys();
        wait_until("the photo's files are deleted", || async { keys.iter().all(|k| !files_dir.join(k).exists()) }).await;
        assert_eq!(anon.get(app.url(&media::file_url(&photo.row.storage_key))).send().await.unwrap().status(), 404);

        // Deleting the product deletes every remaining file.
        catalog::delete(&ctx, id).await.unwrap();
        let video_key = video.row.storage_key.clone();
        wait_until("the product's files are deleted", || async { !files_dir.join(&video_key).exists() }).await;
    }

    async fn images_over_the_api_from_a_url_or_inline_and_the_event_log(engine: Engine) {
        let app = TestApp::spawn(engine).await;
        let owner = app.setup_owner(OWNER, PW).await;
        let token = app.api_token(&owner, &["products:read", "products:write", "events:read"]).await;
        let no_events = app.api_token(&owner, &["products:read"]).await;
        let api = reqwest::Client::new();
        let url = |p: &str| app.url(&format!("/api/v1{p}"));

        // A picture host: an image behind a redirect, a web page, and an error.
        let picture = png(900, 1200);
        let served = picture.clone();
        let host = axum::Router::new()
            .route("/shirt.png", axum::routing::get(move || { let b = served.clone(); async move { ([("content-type", "image/png")], b) } }))
            .route("/moved", axum::routing::get(|| async { axum::response::Redirect::temporary("/shirt.png") }))
            .route("/page.html", axum::routing::get(|| async { axum::response::Html("<html>not an image</html>") }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, host).await.unwrap() });

        let r = api.post(url("/products")).bearer_auth(&token).json(&json!({"product": {"title": "T恤", "status": "active", "variants": [{"price": "99.00", "inventory_management": "yiren", "inventory_quantity": 2}]}})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let p: serde_json::Value = r.json().await.unwrap();
        let id = p["product"]["id"].as_i64().unwrap();
        let vid = p["product"]["variants"][0]["id"].as_i64().unwrap();
        assert_eq!(p["product"]["images"], json!([]));

        let add = |body: serde_json::Value| api.post(url(&format!("/products/{id}/images"))).bearer_auth(&token).json(&body).send();
        let r = add(json!({"image": {"src": format!("{host_url}/moved"), "alt": "正面"}})).await.unwrap();
        assert_eq!(r.status(), 201);
        let fetched: serde_json::Value = r.json().await.unwrap();
        assert_eq!(fetched["image"]["status"], "fetching");
        let r = add(json!({"image": {"attachment": base64::engine::general_purpose::STANDARD.encode(jpeg(300, 200)), "alt_translations": {"en": "Back"}}})).await.unwrap();
        assert_eq!(r.status(), 201);
        let inline: serde_json::Value = r.json().await.unwrap();
        assert_eq!(inline["image"]["status"], "processing");
        assert_eq!((inline["image"]["width"].as_i64(), inline["image"]["height"].as_i64()), (Some(300), Some(200)));
        let r = add(json!({"image": {"src": format!("{host_url}/page.html")}})).await.unwrap();
        assert_eq!(r.status(), 201);
        let not_image: serde_json::Value = r.json().await.unwrap();

        // Refused: a page as an attachment, nothing, two sources, a ftp URL, an unknown field.
        for (body, field) in [
            (json!({"image": {"attachment": base64::engine::general_purpose::STANDARD.encode("<svg/>")}}), "attachment"),
            (json!({"image": {"attachment": base64::engine::general_purpose::STANDARD.encode(mp4())}}), "attachment"),
            (json!({"image": {}}), "src"),
            (json!({"image": {"src": format!("{host_url}/shirt.png"), "attachment": "AAAA"}}), "src"),
            (json!({"image": {"src": "ftp://example.com/a.png"}}), "src"),
        ] {
            let r = add(body.clone()).await.unwrap();
            assert_eq!(r.status(), 422, "{body}");
            let e: serde_json::Value = r.json().await.unwrap();
            assert_eq!(e["error"]["field"], field, "{body}: {e}");
        }
        let r = add(json!({"image": {"src": "https://example.com/a.png", "colour": "red"}})).await.unwrap();
        assert_eq!(r.status(), 422);

        let list = |tok: String| { let api = api.clone(); let u = url(&format!("/products/{id}/images")); async move { api.get(u).bearer_auth(tok).send().await.unwrap().json::<serde_json::Value>().await.unwrap() } };
        let t = token.clone();
        wait_until("the images are fetched and sized", || { let t = t.clone(); let list = &list; async move {
            let l = list(t).await;
            l["images"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap().to_string()).collect::<Vec<_>>() == ["ready", "ready", "failed"]
        }}).await;
        let l = list(token.clone()).await;
        let imgs = l["images"].as_array().unwrap();
        assert_eq!((imgs[0]["width"].as_i64(), imgs[0]["height"].as_i64()), (Some(900), Some(1200)));
        assert_eq!(imgs[0]["alt"], "正面");
        assert_eq!(imgs[1]["alt_translations"], json!({"en": "Back"}));
        assert_eq!(imgs[2]["error"], "not an accepted image");
        assert_eq!(imgs[0]["media_content_type"], "IMAGE");
        let original = api.get(imgs[0]["src"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(original.as_ref(), picture.as_slice(), "the downloaded original is stored as it was");
        let large = imgs[0]["sizes"].as_array().unwrap().iter().find(|s| s["name"] == "large" && s["mime_type"] != "image/webp").unwrap();
        assert_eq!((large["width"].as_i64(), large["height"].as_i64()), (Some(900), Some(1200)), "never enlarged");

        // Move the inline image first; delete the failed one; the product shows the order.
        let inline_id = inline["image"]["id"].as_i64().unwrap();
        let r = api.put(url(&format!("/products/{id}/images/{inline_id}"))).bearer_auth(&token).json(&json!({"image": {"position": 1, "alt": "背面"}})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let moved: serde_json::Value = r.json().await.unwrap();
        assert_eq!((moved["image"]["position"].as_i64(), moved["image"]["alt"].as_str()), (Some(1), Some("背面")));
        let r = api.delete(url(&format!("/products/{id}/images/{}", not_image["image"]["id"]))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let r = api.delete(url(&format!("/products/{}/images/{}", id + 1, inline_id))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 404, "an image is reached only through its own product");
        let p: serde_json::Value = api.get(url(&format!("/products/{id}"))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let order: Vec<i64> = p["product"]["images"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
        assert_eq!(order, [inline_id, fetched["image"]["id"].as_i64().unwrap()]);
        assert_eq!(p["product"]["image"]["id"].as_i64(), Some(inline_id));

        // The event log: created, updated (by each media change), stock changed, deleted.
        let r = api.post(url("/inventory_levels/adjust")).bearer_auth(&token).json(&json!({"variant_id": vid, "available_adjustment": -1, "reason": "样品"})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = api.delete(url(&format!("/products/{id}"))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 204);
        let events: serde_json::Value = api.get(url("/events?limit=250")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let events = events["events"].as_array().unwrap();
        let topics: Vec<&str> = events.iter().map(|e| e["topic"].as_str().unwrap()).collect();
        assert_eq!(topics.first(), Some(&"products/create"));
        assert_eq!(topics.last(), Some(&"products/delete"));
        assert!(topics.iter().filter(|t| **t == "products/update").count() >= 5, "{topics:?}");
        let inv = events.iter().find(|e| e["topic"] == "inventory_levels/update").unwrap();
        assert_eq!((inv["subject_id"].as_i64(), inv["payload"]["available"].as_i64(), inv["payload"]["delta"].as_i64()), (Some(vid), Some(1), Some(-1)));
        assert_eq!(inv["payload"]["reason"], "样品");
        assert_eq!(events[0]["payload"]["title"], "T恤");
        // Paging by id and filtering by topic.
        let after: serde_json::Value = api.get(url(&format!("/events?since_id={}", inv["id"]))).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(after["events"].as_array().unwrap().last().unwrap()["topic"], "products/delete");
        assert!(after["events"].as_array().unwrap().iter().all(|e| e["id"].as_i64() > inv["id"].as_i64()));
        let only: serde_json::Value = api.get(url("/events?topic=products/create")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        assert_eq!(only["events"].as_array().unwrap().len(), 1);
        assert_eq!(api.get(url("/events?topic=products/frobnicate")).bearer_auth(&token).send().await.unwrap().status(), 422);
        assert_eq!(api.get(url("/events?limit=0")).bearer_auth(&token).send().await.unwrap().status(), 422);
        assert_eq!(api.get(url("/events")).bearer_auth(&no_events).send().await.unwrap().status(), 403);
    }
}

/// The file store is a real S3 server (moto) when a bucket is configured: originals and sizes land
/// in the bucket under the prefix, the shop serves them from there, removal deletes them, and the
/// data directory holds no media. The storage path does not depend on the database engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_live_in_an_s3_bucket_when_one_is_configured() {
    let s3 = S3Server::start().await;
    s3.create_bucket("yiren-media").await;
    let endpoint = s3.endpoint.clone();
    let app = TestApp::spawn_with(yiren_testkit::Engine::Sqlite, move |c| {
        c.storage.s3_bucket = "yiren-media".into();
        c.storage.s3_endpoint = endpoint;
        c.storage.s3_region = "us-east-1".into();
        c.storage.s3_access_key_id = "test".into();
        c.storage.s3_secret_access_key = yiren_core::Secret::new("test");
        c.storage.s3_prefix = "shop1".into();
    })
    .await;
    let c = app.setup_owner(OWNER, PW).await;
    let ctx = app.state.ctx.clone();
    let p = catalog::create(&ctx, &product("桶里的衬衫"), "test")
        .await
        .unwrap();
    let id = p.row.id;
    let csrf = app.csrf(&c, &format!("/admin/products/{id}")).await;
    let photo = jpeg(1000, 800);
    let r = upload(
        &app,
        &c,
        id,
        Some(&csrf),
        vec![("p.jpg", photo.clone())],
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    wait_until("sized in the bucket", || async {
        statuses(&app, id).await == ["ready"]
    })
    .await;
    let m = media::of_product(&ctx, id).await.unwrap().remove(0);
    let keys = s3.keys("yiren-media").await;
    let mut expected: Vec<String> = m.keys().iter().map(|k| format!("shop1/{k}")).collect();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(
        s3.object("yiren-media", &format!("shop1/{}", m.row.storage_key))
            .await
            .unwrap(),
        photo
    );
    let anon = app.client();
    for s in &m.sizes {
        let (st, ct, body) = get(&anon, &app.url(&media::file_url(&s.key))).await;
        assert_eq!((st, ct.as_str()), (200, s.mime.as_str()));
        assert_eq!(
            Some(body),
            s3.object("yiren-media", &format!("shop1/{}", s.key)).await
        );
    }
    let r = anon
        .get(app.url(&media::file_url(&m.row.storage_key)))
        .header("range", "bytes=0-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &photo[..3]);
    let r = anon
        .get(app.url(&media::file_url(&m.row.storage_key)))
        .header("range", &format!("bytes={}-", photo.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416, "a range past the end, from the bucket");
    assert!(
        !app.db.dir().join("files/products").exists(),
        "nothing in the data directory"
    );

    let r = c
        .post(app.url(&format!("/admin/media/{}/delete", m.row.id)))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    wait_until("the bucket is emptied", || async {
        s3.keys("yiren-media").await.is_empty()
    })
    .await;
}
