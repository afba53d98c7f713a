//! Storefront search relevance: a shop of 30 products with Chinese titles and English
//! translations, and two query sets (Chinese, including unspaced questions; English, including
//! typos and prefixes), each query with the product that must come first. Plus the filters
//! (price range, in stock, scheduled publishing) and that drafts are never found. On both
//! engines: the products go through the real catalog service and database.

use yiren_core::catalog::{self, Details, Kind, Price, ProductInput, Translation, VariantInput};
use yiren_search::{SearchIndex, SearchQuery};
use yiren_testkit::{both_engines, TestDb};

/// (Chinese title, English title, tags, Chinese description, English description, price in yuan, kind, stock)
type Item = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    Kind,
    i64,
);

const SHOP: &[Item] = &[
    (
        "玫瑰香水",
        "Rose Eau de Parfum",
        "香水, 礼物",
        "浪漫的玫瑰花香，适合送给女朋友的礼物。",
        "A romantic rose perfume, the gift your girlfriend will love.",
        399,
        Kind::Physical,
        20,
    ),
    (
        "男士古龙水",
        "Men's Cologne",
        "香水",
        "清新木质调，适合日常通勤。",
        "Fresh woody notes for every day.",
        259,
        Kind::Physical,
        20,
    ),
    (
        "手工陶瓷茶杯",
        "Handmade Ceramic Teacup",
        "茶具",
        "景德镇手工拉坯，一杯一样。",
        "Thrown by hand in Jingdezhen.",
        88,
        Kind::Physical,
        20,
    ),
    (
        "紫砂茶壶",
        "Yixing Clay Teapot",
        "茶具",
        "宜兴原矿紫砂，适合泡乌龙和普洱。",
        "Raw Yixing clay, for oolong and aged tea.",
        680,
        Kind::Physical,
        5,
    ),
    (
        "西湖龙井绿茶",
        "West Lake Longjing Green Tea",
        "茶叶",
        "明前头采，豆香浓郁。",
        "First spring pick, nutty and fresh.",
        298,
        Kind::Physical,
        50,
    ),
    (
        "云南普洱茶饼",
        "Yunnan Aged Tea Cake",
        "茶叶",
        "十年陈化熟茶。",
        "Ten years of ageing.",
        368,
        Kind::Physical,
        10,
    ),
    (
        "亚麻衬衫",
        "Linen Shirt",
        "服装",
        "透气亚麻面料，夏天穿着凉爽。",
        "Breathable linen, cool in summer.",
        329,
        Kind::Physical,
        30,
    ),
    (
        "纯棉T恤",
        "Cotton Tee",
        "服装",
        "精梳棉，柔软亲肤。",
        "Combed cotton, soft on the skin.",
        99,
        Kind::Physical,
        100,
    ),
    (
        "羊毛围巾",
        "Wool Scarf",
        "服装, 冬季",
        "冬天保暖必备，百分百羊毛。",
        "Pure wool for cold winter days.",
        199,
        Kind::Physical,
        15,
    ),
    (
        "真丝睡衣",
        "Silk Pajamas",
        "服装, 家居",
        "桑蚕丝，顺滑透气。",
        "Mulberry silk, smooth and breathable.",
        599,
        Kind::Physical,
        8,
    ),
    (
        "无线蓝牙耳机",
        "Wireless Bluetooth Earbuds",
        "数码",
        "降噪，续航三十小时。",
        "Noise cancelling, 30 hours of battery.",
        499,
        Kind::Physical,
        40,
    ),
    (
        "机械键盘",
        "Mechanical Keyboard",
        "数码",
        "热插拔轴体，打字手感清脆。",
        "Hot-swappable switches with a crisp feel.",
        459,
        Kind::Physical,
        12,
    ),
    (
        "手机壳",
        "Phone Case",
        "数码",
        "防摔硅胶材质。",
        "Drop-proof silicone.",
        39,
        Kind::Physical,
        200,
    ),
    (
        "移动电源",
        "Power Bank",
        "数码, 充电宝",
        "两万毫安，支持快充。",
        "20,000 mAh with fast charging.",
        149,
        Kind::Physical,
        60,
    ),
    (
        "Python 编程入门课",
        "Python Programming Course",
        "课程",
        "零基础学编程，视频加练习。",
        "Learn to code from zero, videos and exercises.",
        199,
        Kind::Digital,
        0,
    ),
    (
        "摄影后期修图教程",
        "Photo Editing Tutorial",
        "课程",
        "手把手教你用软件修图调色。",
        "Step by step retouching and colour grading.",
        129,
        Kind::Digital,
        0,
    ),
    (
        "年度会员",
        "Annual Membership",
        "会员",
        "一年内畅享全部课程。",
        "Every course for a year.",
        699,
        Kind::Membership,
        0,
    ),
    (
        "一对一咨询",
        "One-on-One Consultation",
        "服务",
        "预约一小时视频咨询。",
        "Book an hour on video.",
        500,
        Kind::Service,
        0,
    ),
    (
        "独立游戏众筹",
        "Indie Game Crowdfunding",
        "众筹, 游戏",
        "支持我们完成第一款独立游戏。",
        "Help us finish our first indie game.",
        68,
        Kind::Crowdfunding,
        0,
    ),
    (
        "手冲咖啡豆",
        "Pour-over Coffee Beans",
        "咖啡",
        "埃塞俄比亚浅烘，花果香。",
        "Light roast Ethiopian, floral and fruity.",
        118,
        Kind::Physical,
        25,
    ),
    (
        "保温杯",
        "Insulated Water Bottle",
        "家居",
        "十二小时保温保冷。",
        "Keeps drinks hot or cold for 12 hours.",
        129,
        Kind::Physical,
        35,
    ),
    (
        "瑜伽垫",
        "Yoga Mat",
        "运动, 健身",
        "防滑加厚，居家健身。",
        "Non-slip and thick, for home workouts.",
        159,
        Kind::Physical,
        18,
    ),
    (
        "跑步鞋",
        "Running Shoes",
        "运动, 跑鞋",
        "缓震回弹，适合长跑。",
        "Cushioned for long runs.",
        699,
        Kind::Physical,
        0,
    ),
    (
        "帆布包",
        "Canvas Tote Bag",
        "配饰",
        "大容量，可装笔记本电脑。",
        "Roomy enough for a laptop.",
        79,
        Kind::Physical,
        70,
    ),
    (
        "香薰蜡烛",
        "Scented Candle",
        "家居, 助眠",
        "薰衣草香味，帮助睡眠放松。",
        "Lavender scent that helps you relax and sleep.",
        89,
        Kind::Physical,
        45,
    ),
    (
        "护手霜",
        "Hand Cream",
        "护肤",
        "乳木果滋润，不油腻。",
        "Shea butter, never greasy.",
        59,
        Kind::Physical,
        80,
    ),
    (
        "儿童绘本",
        "Children's Picture Book",
        "图书",
        "适合三到六岁孩子的睡前故事。",
        "Bedtime stories for kids aged three to six.",
        45,
        Kind::Physical,
        30,
    ),
    (
        "多肉植物盆栽",
        "Succulent Plant Pot",
        "绿植",
        "好养活的多肉组合。",
        "Easy-care succulents.",
        69,
        Kind::Physical,
        25,
    ),
    (
        "软件授权码",
        "Software License Key",
        "软件",
        "正版激活码，购买后自动发放。",
        "A genuine activation key, delivered after payment.",
        99,
        Kind::License,
        0,
    ),
    (
        "土蜂蜜",
        "Raw Honey",
        "食品",
        "农家自产天然蜂蜜。",
        "Natural honey from our own hives.",
        88,
        Kind::Physical,
        40,
    ),
];

const ZH: &[(&str, &str)] = &[
    ("有没有适合送女朋友的香水", "玫瑰香水"),
    ("香水礼物", "玫瑰香水"),
    ("古龙水", "男士古龙水"),
    ("茶杯", "手工陶瓷茶杯"),
    ("紫砂壶", "紫砂茶壶"),
    ("龙井", "西湖龙井绿茶"),
    ("普洱茶", "云南普洱茶饼"),
    ("我想买一件亚麻衬衫", "亚麻衬衫"),
    ("冬天保暖的围巾", "羊毛围巾"),
    ("蓝牙耳机", "无线蓝牙耳机"),
    ("充电宝", "移动电源"),
    ("零基础学编程的课程", "Python 编程入门课"),
    ("怎么学修图", "摄影后期修图教程"),
    ("会员", "年度会员"),
    ("预约咨询", "一对一咨询"),
    ("众筹游戏", "独立游戏众筹"),
    ("咖啡豆", "手冲咖啡豆"),
    ("保温杯", "保温杯"),
    ("瑜伽", "瑜伽垫"),
    ("跑鞋", "跑步鞋"),
    ("助眠的香薰", "香薰蜡烛"),
    ("给孩子看的绘本", "儿童绘本"),
    ("多肉", "多肉植物盆栽"),
    ("正版软件激活码", "软件授权码"),
    ("天然蜂蜜", "土蜂蜜"),
    ("真丝睡衣", "真丝睡衣"),
    ("机械键盘", "机械键盘"),
];

const EN: &[(&str, &str)] = &[
    ("perfume for my girlfriend", "玫瑰香水"),
    ("cologne", "男士古龙水"),
    ("teacup", "手工陶瓷茶杯"),
    ("teapot", "紫砂茶壶"),
    ("green tea", "西湖龙井绿茶"),
    ("linen shirt", "亚麻衬衫"),
    ("linnen shirt", "亚麻衬衫"),
    ("keybord", "机械键盘"),
    ("mech", "机械键盘"),
    ("blutooth earbuds", "无线蓝牙耳机"),
    ("power bank", "移动电源"),
    ("python course", "Python 编程入门课"),
    ("photo editing", "摄影后期修图教程"),
    ("annual membership", "年度会员"),
    ("consultation", "一对一咨询"),
    ("indie game", "独立游戏众筹"),
    ("coffee beans", "手冲咖啡豆"),
    ("water bottle", "保温杯"),
    ("yoga", "瑜伽垫"),
    ("running shoes", "跑步鞋"),
    ("tote", "帆布包"),
    ("scented candle", "香薰蜡烛"),
    ("hand cream", "护手霜"),
    ("picture book for kids", "儿童绘本"),
    ("succu", "多肉植物盆栽"),
    ("license key", "软件授权码"),
    ("honey", "土蜂蜜"),
    ("wool scarf", "羊毛围巾"),
    ("PAJAMAS", "真丝睡衣"),
];

fn input(item: &Item) -> ProductInput {
    let (zh, en, tags, zh_body, en_body, yuan, kind, stock) = *item;
    let details = match kind {
        Kind::Membership => Details {
            membership_days: Some(365),
            ..Default::default()
        },
        Kind::Crowdfunding => Details {
            target_amount: Some(5_000_000),
            deadline: Some(4_102_444_800_000),
            ..Default::default()
        },
        _ => Details::default(),
    };
    ProductInput {
        title: zh.into(),
        body: zh_body.into(),
        kind,
        status: "active".into(),
        tags: tags.into(),
        details,
        variants: vec![VariantInput {
            track_inventory: kind == Kind::Physical,
            initial_stock: stock,
            prices: vec![Price {
                currency: "CNY".into(),
                amount: yuan * 100,
                compare_at: None,
            }],
            ..Default::default()
        }],
        translations: vec![Translation {
            locale: "en".into(),
            title: en.into(),
            body: en_body.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn query(text: &str, now: i64) -> SearchQuery {
    SearchQuery {
        text: text.into(),
        now,
        limit: 5,
        ..Default::default()
    }
}

both_engines! {
    async fn chinese_and_english_queries_find_the_right_product_first(engine: Engine) {
        let t = TestDb::new(engine).await;
        let ctx = yiren::context(&t.config(), Default::default()).await.unwrap();
        let mut titles = std::collections::HashMap::new();
        for item in SHOP {
            let p = catalog::create(&ctx, &input(item), "test").await.unwrap();
            titles.insert(p.row.id, p.row.title.clone());
        }
        // A draft and an archived product are never found.
        let mut draft = input(&("玫瑰香水草稿", "Rose Draft", "香水", "草稿", "draft", 1, Kind::Physical, 1));
        draft.status = "draft".into();
        catalog::create(&ctx, &draft, "test").await.unwrap();
        let (index, fresh) = SearchIndex::open(None).unwrap();
        assert!(fresh);
        let n = yiren_search::rebuild(&ctx, &index).await.unwrap();
        assert_eq!(n, SHOP.len() as u64, "drafts are not indexed");
        let now = ctx.now();

        let mut misses = Vec::new();
        for (set, queries) in [("zh", ZH), ("en", EN)] {
            assert!(queries.len() >= 20, "{set}: at least 20 queries");
            for (q, want) in queries {
                let hits = index.search(&query(q, now)).unwrap();
                let got: Vec<&str> = hits.ids.iter().map(|id| titles[id].as_str()).collect();
                if got.first() != Some(want) {
                    misses.push(format!("{set} {q:?}: want {want:?} first, got {got:?} (tokens {:?})", index.tokens(q)));
                }
            }
        }
        assert!(misses.is_empty(), "{} of {} queries missed:\n{}", misses.len(), ZH.len() + EN.len(), misses.join("\n"));
        ctx.db.close().await;
    }

    async fn filters_narrow_results_and_scheduled_products_appear_on_time(engine: Engine) {
        let t = TestDb::new(engine).await;
        let ctx = yiren::context(&t.config(), Default::default()).await.unwrap();
        let mut ids = std::collections::HashMap::new();
        for item in SHOP.iter().filter(|i| i.6 == Kind::Physical) {
            let p = catalog::create(&ctx, &input(item), "test").await.unwrap();
            ids.insert(p.row.id, (p.row.title.clone(), item.5, item.7));
        }
        let now = ctx.now();
        let mut later = input(&("春季新品茶杯", "Spring Teacup", "茶具", "下周上架", "Next week", 120, Kind::Physical, 5));
        later.publish_at = Some(now + 7 * 86_400_000);
        let scheduled = catalog::create(&ctx, &later, "test").await.unwrap();
        let (index, _) = SearchIndex::open(None).unwrap();
        yiren_search::rebuild(&ctx, &index).await.unwrap();

        // Price range 50–100 yuan, inclusive, over every physical product.
        let q = SearchQuery { min_price: Some(5_000), max_price: Some(10_000), now, limit: 100, ..Default::default() };
        let hits = index.search(&q).unwrap();
        let want: std::collections::BTreeSet<i64> = ids.iter().filter(|(_, v)| (50..=100).contains(&v.1)).map(|(k, _)| *k).collect();
        assert_eq!(hits.ids.iter().copied().collect::<std::collections::BTreeSet<_>>(), want);
        assert_eq!(hits.total, want.len());

        // In stock only: the running shoes (0 in stock, deny) disappear.
        let shoes = ids.iter().find(|(_, v)| v.0 == "跑步鞋").map(|(k, _)| *k).unwrap();
        let all = index.search(&SearchQuery { text: "跑鞋".into(), now, limit: 10, ..Default::default() }).unwrap();
        assert_eq!(all.ids.first(), Some(&shoes));
        let stocked = index.search(&SearchQuery { text: "跑鞋".into(), now, limit: 10, in_stock_only: true, ..Default::default() }).unwrap();
        assert!(!stocked.ids.contains(&shoes));

        // A scheduled product is indexed now and found from its publish time on.
        let before = index.search(&query("春季新品茶杯", now)).unwrap();
        assert!(!before.ids.contains(&scheduled.row.id));
        let after = index.search(&query("春季新品茶杯", now + 8 * 86_400_000)).unwrap();
        assert_eq!(after.ids.first(), Some(&scheduled.row.id));

        // Nonsense finds nothing; punctuation alone is not an error.
        assert!(index.search(&query("zzqxj", now)).unwrap().ids.is_empty());
        assert!(index.search(&query("？！…", now)).unwrap().ids.is_empty());
        ctx.db.close().await;
    }
}
