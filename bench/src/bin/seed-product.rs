//! `seed-product <data-dir>`: store one active product with two variants and an English
//! translation and a photo in a fresh data directory (SQLite), for the product-page benchmark;
//! prints its path.

use yiren_core::catalog::{self, Price, ProductInput, Translation, VariantInput};

#[tokio::main]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: seed-product <data-dir>");
    let config = yiren::config::Config::load(
        None,
        &yiren::config::Overrides {
            data_dir: Some(dir.into()),
            ..Default::default()
        },
    )
    .expect("config");
    let ctx = yiren::context(&config, Default::default())
        .await
        .expect("database");
    let body = "透气**亚麻**面料，夏天穿着凉爽。\n\n- 100% 亚麻\n- 可机洗\n\n".repeat(3);
    let input = ProductInput {
        title: "亚麻衬衫".into(),
        handle: "linen-shirt".into(),
        body,
        status: "active".into(),
        vendor: "一人小店".into(),
        tags: "服装, 夏季".into(),
        options: vec!["尺码".into()],
        variants: ["S", "M"]
            .iter()
            .map(|s| VariantInput {
                values: vec![s.to_string()],
                sku: format!("LS-{s}"),
                track_inventory: true,
                initial_stock: 10,
                prices: vec![Price {
                    currency: "CNY".into(),
                    amount: 32900,
                    compare_at: Some(39900),
                }],
                ..Default::default()
            })
            .collect(),
        translations: vec![Translation {
            locale: "en".into(),
            title: "Linen Shirt".into(),
            body: "Breathable linen.".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let p = catalog::create(&ctx, &input, "bench")
        .await
        .expect("product");
    // A 1600×1200 photo-like image; the server's media.resize job makes its sizes when it starts.
    let img = image::RgbImage::from_fn(1600, 1200, |x, y| {
        let n = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) % 23;
        image::Rgb([(x / 7 % 256) as u8, (y / 5 % 256) as u8, (120 + n) as u8])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 88)
        .encode_image(&img)
        .expect("jpeg");
    let checked = yiren_core::media::inspect(&jpeg).expect("image");
    let files = yiren::open_files(&config).expect("files");
    let mid = ctx.new_id();
    files
        .put(
            &yiren_core::media::original_key(p.row.id, mid, checked.format),
            jpeg,
        )
        .await
        .expect("store");
    let alt = [("zh-CN".to_string(), "亚麻衬衫正面".to_string())].into();
    yiren_core::media::add_uploaded(&ctx, p.row.id, mid, &checked, &alt)
        .await
        .expect("media");
    ctx.db.close().await;
    println!("/products/{}", p.row.handle);
}
