//! `import [rows]`: import a Shopify product CSV of `rows` rows (default 10,000: 2,500 products
//! with 4 variants each, classic header, no image URLs) into a fresh SQLite shop through the same
//! code the `catalog.import` job runs, and print the time to check the file (the preview), the time
//! to import it, rows per second, and the process's peak RSS before and after. Baseline in the
//! same run: creating the same products directly through `catalog::create`, in a second shop.

use std::time::Instant;

use yiren_core::catalog::{self, csv};

const HEADER: &str = "Handle,Title,Body (HTML),Vendor,Type,Tags,Published,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Option3 Name,Option3 Value,Variant SKU,Variant Grams,Variant Inventory Tracker,Variant Inventory Qty,Variant Inventory Policy,Variant Fulfillment Service,Variant Price,Variant Compare At Price,Variant Requires Shipping,Variant Taxable,Variant Barcode,Image Src,Image Position,Image Alt Text,Gift Card,SEO Title,SEO Description,Google Shopping / Google Product Category,Google Shopping / Gender,Google Shopping / Age Group,Google Shopping / MPN,Google Shopping / AdWords Grouping,Google Shopping / AdWords Labels,Google Shopping / Condition,Google Shopping / Custom Product,Google Shopping / Custom Label 0,Google Shopping / Custom Label 1,Google Shopping / Custom Label 2,Google Shopping / Custom Label 3,Google Shopping / Custom Label 4,Variant Image,Variant Weight Unit,Variant Tax Code,Cost per item,Status";

fn file(rows: usize) -> String {
    let mut out = String::with_capacity(rows * 300);
    out.push_str(HEADER);
    out.push('\n');
    let sizes = ["S", "M", "L", "XL"];
    for i in 0..rows.div_ceil(4) {
        for (n, s) in sizes.iter().enumerate() {
            if i * 4 + n >= rows {
                break;
            }
            let head = n == 0;
            let cell = |v: String| if head { v } else { String::new() };
            out.push_str(&format!(
                "product-{i},{},{},{},{},\"{}\",{},{},{s},,,,,SKU-{i}-{s},{},shopify,{},deny,manual,{}.{:02},,TRUE,TRUE,,,,,FALSE,,,,,,,,,,,,,,,,,g,,,{}\n",
                cell(format!("亚麻衬衫 {i} 号")),
                cell("\"<p>透气<strong>亚麻</strong>面料，夏天穿着凉爽。</p>\"".into()),
                cell("一人小店".into()),
                cell("衬衫".into()),
                if head { "服装, 夏季" } else { "" },
                cell("TRUE".into()),
                cell("尺码".into()),
                200 + n * 20,
                10 + n,
                100 + i % 900,
                n * 25,
                cell("active".into()),
            ));
        }
    }
    out
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

async fn shop(dir: &std::path::Path) -> yiren_core::Ctx {
    let config = yiren::config::Config::load(
        None,
        &yiren::config::Overrides {
            data_dir: Some(dir.into()),
            ..Default::default()
        },
    )
    .expect("config");
    yiren::context(&config, Default::default())
        .await
        .expect("database")
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("rows"))
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let text = file(rows);
    let ctx = shop(&tmp.path().join("import")).await;
    let before = peak_rss_mb();

    let t = Instant::now();
    let (id, plan) = csv::preview(&ctx, "bench.csv", text.as_bytes(), "bench")
        .await
        .expect("preview");
    let checked = t.elapsed();
    assert_eq!(
        plan.ready(),
        rows.div_ceil(4),
        "every product is importable"
    );
    let t = Instant::now();
    let outcomes = csv::run(&ctx, id).await.expect("import");
    let imported = t.elapsed();
    assert!(outcomes.iter().all(|o| o.action == "created"));
    let after = peak_rss_mb();

    // Baseline: the same products through catalog::create directly, in another shop.
    let base_ctx = shop(&tmp.path().join("baseline")).await;
    let t = Instant::now();
    for p in &plan.products {
        catalog::create(&base_ctx, &p.input, "bench")
            .await
            .expect("create");
    }
    let direct = t.elapsed();

    println!(
        "CSV import, {rows} rows ({} products × 4 variants, {:.1} MB file), SQLite:",
        plan.products.len(),
        text.len() as f64 / 1_048_576.0
    );
    println!("  check (preview):          {:.2} s", checked.as_secs_f64());
    println!(
        "  import:                   {:.2} s ({:.0} rows/s)",
        imported.as_secs_f64(),
        rows as f64 / imported.as_secs_f64()
    );
    println!(
        "  baseline catalog::create: {:.2} s for the same products (import x{:.2})",
        direct.as_secs_f64(),
        imported.as_secs_f64() / direct.as_secs_f64()
    );
    println!("  peak RSS: {before:.1} MB before, {after:.1} MB after the import");
}
