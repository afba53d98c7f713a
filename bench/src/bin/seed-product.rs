//! `seed-product <data-dir>`: store one active product with two variants and an English
//! translation in a fresh data directory (SQLite), for the product-page benchmark; prints its path.

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
    ctx.db.close().await;
    println!("/products/{}", p.row.handle);
}
