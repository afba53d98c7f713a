//! `search`: storefront search latency with 1,000 and with 100,000 products (issue: p99 ≤ 5 ms and
//! flat). Builds an on-disk index of synthetic products (Chinese titles with English translations
//! and tags, drawn from a fixed vocabulary with a fixed seed), then times a fixed mix of Chinese,
//! English, typo and prefix queries, each through `SearchIndex::search` as the search page calls
//! it. Prints figures and the 100k/1k ratio; asserts nothing.

use std::time::Instant;

use yiren_search::{Doc, SearchIndex, SearchQuery};

const ZH: &[&str] = &[
    "亚麻",
    "衬衫",
    "茶杯",
    "茶壶",
    "绿茶",
    "普洱",
    "围巾",
    "睡衣",
    "耳机",
    "键盘",
    "手机壳",
    "充电宝",
    "课程",
    "教程",
    "会员",
    "咨询",
    "咖啡豆",
    "保温杯",
    "瑜伽垫",
    "跑步鞋",
    "帆布包",
    "蜡烛",
    "护手霜",
    "绘本",
    "盆栽",
    "蜂蜜",
    "香水",
    "礼物",
    "手工",
    "陶瓷",
    "纯棉",
    "羊毛",
    "真丝",
    "无线",
    "蓝牙",
    "机械",
    "夏季",
    "冬季",
];
const EN: &[&str] = &[
    "linen",
    "shirt",
    "teacup",
    "teapot",
    "green",
    "tea",
    "scarf",
    "pajamas",
    "earbuds",
    "keyboard",
    "phone",
    "case",
    "power",
    "bank",
    "course",
    "tutorial",
    "membership",
    "consultation",
    "coffee",
    "beans",
    "bottle",
    "yoga",
    "mat",
    "running",
    "shoes",
    "tote",
    "bag",
    "candle",
    "cream",
    "book",
    "plant",
    "honey",
    "perfume",
    "gift",
    "handmade",
    "ceramic",
    "cotton",
    "wool",
    "silk",
    "wireless",
    "bluetooth",
    "mechanical",
    "summer",
];
const QUERIES: &[&str] = &[
    "有没有适合送女朋友的香水",
    "亚麻衬衫",
    "茶杯",
    "我想买一个保温杯",
    "冬天保暖的围巾",
    "蓝牙耳机",
    "手工陶瓷",
    "linen shirt",
    "keybord",
    "blutooth earbuds",
    "coffee beans",
    "mech",
    "succu",
    "gift for her",
    "wool",
    "yoga mat",
    "running shoes",
    "tea",
    "power bank",
    "silk pajamas",
];

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn doc(i: usize, r: &mut Lcg) -> Doc {
    let zh: String = (0..3).map(|_| ZH[r.next(ZH.len())]).collect();
    let en: Vec<&str> = (0..3).map(|_| EN[r.next(EN.len())]).collect();
    Doc {
        id: i as i64 + 1,
        titles: vec![format!("{zh}{i}"), en.join(" ")],
        extra: vec![
            ZH[r.next(ZH.len())].to_string(),
            EN[r.next(EN.len())].to_string(),
        ],
        bodies: vec![
            format!("{}，{}。", ZH[r.next(ZH.len())], ZH[r.next(ZH.len())]),
            format!("{} and {}", EN[r.next(EN.len())], EN[r.next(EN.len())]),
        ],
        min_price: Some(100 * (1 + r.next(1000) as i64)),
        in_stock: r.next(10) > 0,
        publish_at: 0,
        collections: vec![(i % 10) as i64],
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn run(n: usize) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (index, _) = SearchIndex::open(Some(dir.path())).unwrap();
    let mut r = Lcg(42);
    let t = Instant::now();
    let docs: Vec<Doc> = (0..n).map(|i| doc(i, &mut r)).collect();
    for chunk in docs.chunks(10_000) {
        index.apply(&[], chunk).unwrap();
    }
    let build = t.elapsed().as_secs_f64();
    // Warm-up, then 50 rounds of the query mix.
    for q in QUERIES {
        index
            .search(&SearchQuery {
                text: q.to_string(),
                now: 1,
                limit: 24,
                ..Default::default()
            })
            .unwrap();
    }
    let mut times = Vec::new();
    for round in 0..50 {
        for q in QUERIES {
            let query = SearchQuery {
                text: q.to_string(),
                now: 1,
                limit: 24,
                in_stock_only: round % 5 == 0,
                max_price: (round % 7 == 0).then_some(50_000),
                ..Default::default()
            };
            let t = Instant::now();
            index.search(&query).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (build, pct(&times, 0.5), pct(&times, 0.99))
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 100_000]
    } else {
        sizes
    };
    let mut p99s = Vec::new();
    for n in &sizes {
        let (build, p50, p99) = run(*n);
        println!(
            "search, {n:>7} products: p50 {p50:.2} ms, p99 {p99:.2} ms over {} queries (target p99 <= 5 ms); index built in {build:.1} s",
            QUERIES.len() * 50
        );
        p99s.push(p99);
    }
    if p99s.len() >= 2 {
        println!(
            "search p99, {} vs {} products: x{:.2} (flat means close to 1)",
            sizes[sizes.len() - 1],
            sizes[0],
            p99s[p99s.len() - 1] / p99s[0]
        );
    }
}
