//! Shopify product CSV in and out. Import reads all three header generations (classic ≈2019–2023,
//! 2024 with taxonomy and linked options, and the 2025 plain-English template), matching columns by
//! alias and ignoring case; rows are grouped by handle into products (variant rows, then rows that
//! only add an image). Every product is checked with the same rules as the editor before anything
//! is written, so the preview shows what will change and which lines are wrong; each product is
//! then written in its own transactions and a product with a bad line is not written at all.
//! Images named by URL are downloaded by `media.fetch` jobs. Export writes the 2025 header.
//!
//! Yiren fields Shopify has no column for travel as metafield columns, the way Shopify exports
//! metafields: `Kind (product.metafields.yiren.kind)`, the kind's details, and, per other
//! language, `Title (product.metafields.yiren.title_en)`, `Description (….body_en)` and `Options
//! (….options_en)` (JSON: option names and values in that language).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Kind, Price, Product, ProductInput, Translation, VariantInput};
use crate::error::{DomainError, DomainResult};
use crate::{media, money, Ctx, Locale};

/// The export header: Shopify's 2025 template, then Yiren's metafield columns.
pub const EXPORT_HEADER: &[&str] = &[
    "Title",
    "URL handle",
    "Description",
    "Vendor",
    "Product category",
    "Type",
    "Tags",
    "Published on online store",
    "Status",
    "SKU",
    "Barcode",
    "Option1 name",
    "Option1 value",
    "Option1 Linked To",
    "Option2 name",
    "Option2 value",
    "Option2 Linked To",
    "Option3 name",
    "Option3 value",
    "Option3 Linked To",
    "Price",
    "Compare-at price",
    "Cost per item",
    "Charge tax",
    "Tax code",
    "Unit price total measure",
    "Unit price total measure unit",
    "Unit price base measure",
    "Unit price base measure unit",
    "Inventory tracker",
    "Inventory quantity",
    "Continue selling when out of stock",
    "Weight value (grams)",
    "Weight unit for display",
    "Requires shipping",
    "Fulfillment service",
    "Product image URL",
    "Image position",
    "Image alt text",
    "Variant image URL",
    "Gift card",
    "SEO title",
    "SEO description",
    "Google Shopping / Google product category",
    "Google Shopping / Gender",
    "Google Shopping / Age group",
    "Google Shopping / Manufacturer part number (MPN)",
    "Google Shopping / Ad group name",
    "Google Shopping / Ads labels",
    "Google Shopping / Condition",
    "Google Shopping / Custom product",
    "Google Shopping / Custom label 0",
    "Google Shopping / Custom label 1",
    "Google Shopping / Custom label 2",
    "Google Shopping / Custom label 3",
    "Google Shopping / Custom label 4",
    KIND_COLUMN,
    DAYS_COLUMN,
    MONTHS_COLUMN,
    TARGET_COLUMN,
    DEADLINE_COLUMN,
    BOOKING_COLUMN,
];

const KIND_COLUMN: &str = "Kind (product.metafields.yiren.kind)";
const DAYS_COLUMN: &str = "Membership days (product.metafields.yiren.membership_days)";
const MONTHS_COLUMN: &str = "Membership months (product.metafields.yiren.membership_months)";
const TARGET_COLUMN: &str = "Campaign target (product.metafields.yiren.target_amount)";
const DEADLINE_COLUMN: &str = "Campaign deadline (product.metafields.yiren.deadline)";
const BOOKING_COLUMN: &str = "Booking (product.metafields.yiren.booking)";

/// Each field and the header names it goes by across the generations (compared ignoring case).
const ALIASES: &[(&str, &[&str])] = &[
    ("handle", &["Handle", "URL handle"]),
    ("title", &["Title"]),
    ("body", &["Body (HTML)", "Description", "Body HTML"]),
    ("vendor", &["Vendor"]),
    ("type", &["Type", "Product Type"]),
    ("tags", &["Tags"]),
    ("published", &["Published", "Published on online store"]),
    ("status", &["Status"]),
    ("option1_name", &["Option1 Name"]),
    ("option1_value", &["Option1 Value"]),
    ("option2_name", &["Option2 Name"]),
    ("option2_value", &["Option2 Value"]),
    ("option3_name", &["Option3 Name"]),
    ("option3_value", &["Option3 Value"]),
    ("sku", &["Variant SKU", "SKU"]),
    ("barcode", &["Variant Barcode", "Barcode"]),
    ("grams", &["Variant Grams", "Weight value (grams)"]),
    (
        "tracker",
        &["Variant Inventory Tracker", "Inventory tracker"],
    ),
    ("qty", &["Variant Inventory Qty", "Inventory quantity"]),
    (
        "policy",
        &[
            "Variant Inventory Policy",
            "Continue selling when out of stock",
        ],
    ),
    ("price", &["Variant Price", "Price"]),
    (
        "compare_at",
        &[
            "Variant Compare At Price",
            "Variant Compare-at Price",
            "Compare-at price",
        ],
    ),
    ("cost", &["Cost per item", "Variant Cost"]),
    (
        "requires_shipping",
        &["Variant Requires Shipping", "Requires shipping"],
    ),
    ("image_src", &["Image Src", "Product image URL"]),
    ("image_position", &["Image Position"]),
    ("image_alt", &["Image Alt Text"]),
    ("variant_image", &["Variant Image", "Variant image URL"]),
    ("gift_card", &["Gift Card"]),
    ("seo_title", &["SEO Title"]),
    ("seo_description", &["SEO Description"]),
    ("kind", &[KIND_COLUMN]),
    ("membership_days", &[DAYS_COLUMN]),
    ("membership_months", &[MONTHS_COLUMN]),
    ("target_amount", &[TARGET_COLUMN]),
    ("deadline", &[DEADLINE_COLUMN]),
    ("booking", &[BOOKING_COLUMN]),
];

fn translation_column(what: &str, tag: &str) -> String {
    let label = match what {
        "title" => "Title",
        "body" => "Description",
        _ => "Options",
    };
    format!("{label} (product.metafields.yiren.{what}_{tag})")
}

/// Which header generation a file uses.
fn generation(headers: &[String]) -> &'static str {
    let has = |n: &str| headers.iter().any(|h| h.eq_ignore_ascii_case(n));
    if has("URL handle") || has("Product image URL") {
        "2025"
    } else if has("Option1 Linked To") || has("Product Category") {
        "2024"
    } else {
        "classic"
    }
}

struct Columns {
    idx: HashMap<&'static str, usize>,
    translations: Vec<(String, &'static str, usize)>,
}

impl Columns {
    fn new(headers: &[String]) -> Columns {
        let find = |names: &[&str]| {
            headers
                .iter()
                .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
        };
        let mut idx = HashMap::new();
        for (field, names) in ALIASES {
            if let Some(i) = find(names) {
                idx.insert(*field, i);
            }
        }
        let mut translations = Vec::new();
        for l in Locale::ALL {
            for what in ["title", "body", "options"] {
                if let Some(i) = find(&[&translation_column(what, l.tag())]) {
                    translations.push((l.tag().to_string(), what, i));
                }
            }
        }
        Columns { idx, translations }
    }

    fn get<'r>(&self, rec: &'r csv::StringRecord, field: &str) -> &'r str {
        self.idx
            .get(field)
            .and_then(|i| rec.get(*i))
            .map(str::trim)
            .unwrap_or("")
    }
}

/// What went wrong on one line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// The column or field at fault, when known.
    pub field: String,
    /// Message catalog key.
    pub key: String,
}

/// One product of the file, checked.
#[derive(Debug, Clone)]
pub struct Planned {
    pub handle: String,
    pub title: String,
    /// Lines of the file that make it.
    pub lines: (u64, u64),
    /// The product to write (variants without ids yet).
    pub input: ProductInput,
    /// Stock per variant, in the file (None: not tracked).
    pub stock: Vec<Option<i64>>,
    /// Images: URL and alt text, in position order.
    pub images: Vec<(String, String)>,
    /// The existing product with this handle, when there is one.
    pub existing: Option<i64>,
    /// Why it cannot be imported (empty: it can).
    pub errors: Vec<LineError>,
}

/// The whole file, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `classic`, `2024` or `2025`.
    pub generation: &'static str,
    pub rows: u64,
    pub products: Vec<Planned>,
    /// Problems with the file itself (no title column, unreadable CSV).
    pub errors: Vec<LineError>,
}

impl Plan {
    /// Products that can be imported.
    pub fn ready(&self) -> usize {
        self.products.iter().filter(|p| p.errors.is_empty()).count()
    }
}

fn truthy(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "y" => Some(true),
        "false" | "no" | "0" | "n" => Some(false),
        _ => None,
    }
}

fn err(line: u64, field: &str, key: &str) -> LineError {
    LineError {
        line,
        field: field.into(),
        key: key.into(),
    }
}

fn domain_err(line: u64, e: DomainError) -> LineError {
    match e {
        DomainError::Invalid { key, field } => err(line, field.unwrap_or(""), key),
        DomainError::Conflict { key } => err(line, "handle", key),
        e => err(line, "", &format!("{e}")),
    }
}

/// Read a CSV file into a plan; nothing is written. `existing` says which handles the shop has.
pub fn plan(
    bytes: &[u8],
    currency: &str,
    default_locale: Locale,
    existing: &HashMap<String, i64>,
) -> Plan {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(_) => {
            return Plan {
                generation: "classic",
                rows: 0,
                products: vec![],
                errors: vec![err(1, "", "import.unreadable")],
            }
        }
    };
    let cols = Columns::new(&headers);
    let mut plan = Plan {
        generation: generation(&headers),
        rows: 0,
        products: vec![],
        errors: vec![],
    };
    if !cols.idx.contains_key("title") || !cols.idx.contains_key("price") {
        plan.errors.push(err(1, "Title", "import.columns_missing"));
        return plan;
    }
    // Group rows by handle (or by title for a file without handles), in file order.
    let mut groups: Vec<(String, Vec<(u64, csv::StringRecord)>)> = Vec::new();
    for rec in reader.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                plan.errors.push(err(line, "", "import.unreadable"));
                break;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        plan.rows += 1;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let handle = cols.get(&rec, "handle").to_lowercase();
        let key = if handle.is_empty() {
            let title = cols.get(&rec, "title");
            if title.is_empty() {
                // A continuation row without a handle belongs to the product above.
                groups.last().map(|g| g.0.clone()).unwrap_or_default()
            } else {
                super::slugify(title)
            }
        } else {
            handle
        };
        match groups.iter_mut().rev().find(|g| g.0 == key) {
            Some(g) if !key.is_empty() => g.1.push((line, rec)),
            _ => groups.push((key, vec![(line, rec)])),
        }
    }
    for (handle, rows) in groups {
        plan.products.push(product_of(
            &cols,
            handle,
            &rows,
            currency,
            default_locale,
            existing,
        ));
    }
    plan
}

fn product_of(
    cols: &Columns,
    handle: String,
    rows: &[(u64, csv::StringRecord)],
    currency: &str,
    default_locale: Locale,
    existing: &HashMap<String, i64>,
) -> Planned {
    let first_line = rows[0].0;
    let last_line = rows.last().map(|r| r.0).unwrap_or(first_line);
    let (line, head) = rows
        .iter()
        .find(|(_, r)| !cols.get(r, "title").is_empty())
        .unwrap_or(&rows[0]);
    let g = |f: &str| cols.get(head, f);
    let mut errors = Vec::new();
    let mut input = ProductInput {
        title: g("title").to_string(),
        body: g("body").to_string(),
        handle: handle.clone(),
        vendor: g("vendor").to_string(),
        product_type: g("type").to_string(),
        tags: g("tags").to_string(),
        seo_title: g("seo_title").to_string(),
        seo_description: g("seo_description").to_string(),
        variants: vec![],
        ..Default::default()
    };
    input.status = match (
        g("status").to_ascii_lowercase().as_str(),
        truthy(g("published")),
    ) {
        (s @ ("active" | "draft" | "archived"), _) => s.to_string(),
        ("", Some(true)) => "active".into(),
        ("", _) => "draft".into(),
        _ => {
            errors.push(err(*line, "Status", "catalog.status_invalid"));
            "draft".into()
        }
    };
    match g("kind") {
        "" => {}
        k => match Kind::parse(k) {
            Some(k) => input.kind = k,
            None => errors.push(err(*line, "Kind", "catalog.kind_invalid")),
        },
    }
    match g("membership_days") {
        "" => {}
        d => match d.parse::<i64>() {
            Ok(d) => input.details.membership_days = Some(d),
            Err(_) => errors.push(err(*line, "Membership days", "catalog.details_invalid")),
        },
    }
    match g("membership_months") {
        "" => {}
        m => match m.parse::<i64>() {
            Ok(m) => input.details.membership_months = Some(m),
            Err(_) => errors.push(err(*line, "Membership months", "catalog.details_invalid")),
        },
    }
    match g("target_amount") {
        "" => {}
        a => match money::parse(a, currency, "target_amount") {
            Ok(a) => input.details.target_amount = Some(a),
            Err(e) => errors.push(domain_err(*line, e)),
        },
    }
    match g("deadline") {
        "" => {}
        d => match crate::clock::parse_rfc3339(d) {
            Some(t) => input.details.deadline = Some(t),
            None => errors.push(err(*line, "Campaign deadline", "catalog.details_invalid")),
        },
    }
    input.details.booking = truthy(g("booking")) == Some(true);
    if truthy(g("gift_card")) == Some(true) {
        errors.push(err(*line, "Gift card", "import.gift_card"));
    }
    // Options: "Title" / "Default Title" is Shopify's way of saying "no options".
    let mut names: Vec<String> = (1..=3)
        .map(|n| g(&format!("option{n}_name")).to_string())
        .collect();
    while names.last().is_some_and(String::is_empty) {
        names.pop();
    }
    let default_title = names.len() == 1
        && names[0].eq_ignore_ascii_case("title")
        && rows
            .iter()
            .all(|(_, r)| matches!(cols.get(r, "option1_value"), "" | "Default Title"));
    if default_title {
        names.clear();
    }
    input.options = names.clone();
    let mut stock = Vec::new();
    let mut images: Vec<(i64, String, String)> = Vec::new();
    let mut seen_images = HashSet::new();
    for (line, r) in rows {
        let c = |f: &str| cols.get(r, f);
        let values: Vec<String> = (1..=names.len())
            .map(|n| c(&format!("option{n}_value")).to_string())
            .collect();
        let is_variant =
            !c("price").is_empty() || !c("sku").is_empty() || values.iter().any(|v| !v.is_empty());
        if is_variant {
            match variant_of(c, values, currency, *line) {
                Ok((v, qty)) => {
                    stock.push(qty);
                    input.variants.push(v);
                }
                Err(e) => errors.push(e),
            }
        }
        for (field, pos_field) in [("image_src", "image_position"), ("variant_image", "")] {
            let url = c(field);
            if url.is_empty() || !seen_images.insert(url.to_string()) {
                continue;
            }
            if url::Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .is_none()
            {
                errors.push(err(*line, field, "media.url_invalid"));
                continue;
            }
            let pos = if pos_field.is_empty() {
                i64::MAX
            } else {
                c(pos_field).parse::<i64>().unwrap_or(i64::MAX - 1)
            };
            let alt = if field == "image_src" {
                c("image_alt").to_string()
            } else {
                String::new()
            };
            images.push((pos, url.to_string(), alt));
        }
    }
    images.sort_by_key(|(p, _, _)| *p);
    for (tag, what, i) in &cols.translations {
        if tag == default_locale.tag() {
            continue;
        }
        let value = head.get(*i).unwrap_or("").trim().to_string();
        if value.is_empty() {
            continue;
        }
        let t = match input.translations.iter_mut().find(|t| &t.locale == tag) {
            Some(t) => t,
            None => {
                input.translations.push(Translation {
                    locale: tag.clone(),
                    ..Default::default()
                });
                input.translations.last_mut().expect("just pushed")
            }
        };
        match *what {
            "title" => t.title = value,
            "body" => t.body = value,
            _ => {
                // {"names": ["Size"], "values": {"白": "White"}}
                #[derive(Deserialize)]
                struct OptionText {
                    #[serde(default)]
                    names: Vec<String>,
                    #[serde(default)]
                    values: BTreeMap<String, String>,
                }
                match serde_json::from_str::<OptionText>(&value) {
                    Ok(o) => {
                        t.options = o.names;
                        t.values = o.values;
                    }
                    Err(_) => {
                        errors.push(err(*line, "Options", "catalog.option_translation_invalid"))
                    }
                }
            }
        }
    }
    if input.variants.is_empty() && errors.is_empty() {
        errors.push(err(*line, "Price", "catalog.variant_required"));
    }
    if errors.is_empty() {
        if let Err(e) = super::validate(&input, currency) {
            errors.push(domain_err(*line, e));
        }
    }
    if images.len() > media::MAX_PER_PRODUCT {
        errors.push(err(*line, "Image Src", "media.too_many"));
    }
    Planned {
        title: input.title.clone(),
        existing: existing.get(&handle).copied(),
        handle,
        lines: (first_line, last_line),
        input,
        stock,
        images: images.into_iter().map(|(_, u, a)| (u, a)).collect(),
        errors,
    }
}

fn variant_of<'a>(
    c: impl Fn(&str) -> &'a str,
    values: Vec<String>,
    currency: &str,
    line: u64,
) -> Result<(VariantInput, Option<i64>), LineError> {
    let money_of = |field: &'static str, column: &str| -> Result<Option<i64>, LineError> {
        match c(field) {
            "" => Ok(None),
            s => money::parse(s, currency, field)
                .map(Some)
                .map_err(|e| domain_err(line, e))
                .map_err(|mut e| {
                    e.field = column.into();
                    e
                }),
        }
    };
    let amount = money_of("price", "Price")?.ok_or(err(line, "Price", "catalog.price_required"))?;
    let compare_at = money_of("compare_at", "Compare-at price")?.filter(|c| *c > 0);
    let cost = money_of("cost", "Cost per item")?;
    let grams = match c("grams") {
        "" => 0,
        s => match s.parse::<i64>() {
            Ok(g) => g,
            Err(_) => match s.parse::<f64>() {
                Ok(f) if f.is_finite() && (0.0..=1e9).contains(&f) => f.round() as i64,
                _ => return Err(err(line, "Grams", "catalog.weight_invalid")),
            },
        },
    };
    let tracked = !c("tracker").is_empty();
    let qty = match c("qty") {
        "" => 0,
        s => s
            .parse::<i64>()
            .map_err(|_| err(line, "Inventory quantity", "catalog.quantity_invalid"))?,
    };
    if tracked && !(0..=super::MAX_QUANTITY).contains(&qty) {
        return Err(err(line, "Inventory quantity", "catalog.quantity_invalid"));
    }
    let continue_selling = match c("policy").to_ascii_lowercase().as_str() {
        "" | "deny" => false,
        "continue" => true,
        s => truthy(s).ok_or(err(line, "Inventory policy", "import.policy_invalid"))?,
    };
    let requires_shipping = match c("requires_shipping") {
        "" => None,
        s => Some(truthy(s).ok_or(err(line, "Requires shipping", "import.boolean_invalid"))?),
    };
    Ok((
        VariantInput {
            id: None,
            values,
            sku: c("sku").trim_start_matches('\'').to_string(),
            barcode: c("barcode").trim_start_matches('\'').to_string(),
            grams,
            requires_shipping,
            cost,
            track_inventory: tracked,
            continue_selling,
            initial_stock: if tracked { qty } else { 0 },
            prices: vec![Price {
                currency: currency.into(),
                amount,
                compare_at,
            }],
        },
        tracked.then_some(qty),
    ))
}

/// What importing one product did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outcome {
    pub handle: String,
    pub title: String,
    pub lines: (u64, u64),
    /// `created`, `updated` or `refused`.
    pub action: String,
    pub product_id: Option<i64>,
    pub images: usize,
    pub errors: Vec<LineError>,
}

/// Write one planned product: create it, or update the product with its handle (variants matched
/// by SKU, else by option values, keep their ids; stock moves to the file's figure through an
/// adjustment), then queue its images that are not there yet. Idempotent: importing the same file
/// again changes nothing but timestamps.
pub async fn apply(ctx: &Ctx, p: &Planned, actor: &str) -> Outcome {
    let mut out = Outcome {
        handle: p.handle.clone(),
        title: p.title.clone(),
        lines: p.lines,
        action: "refused".into(),
        product_id: None,
        images: 0,
        errors: p.errors.clone(),
    };
    if !p.errors.is_empty() {
        return out;
    }
    match apply_inner(ctx, p, actor).await {
        Ok((action, id, images)) => {
            out.action = action.into();
            out.product_id = Some(id);
            out.images = images;
        }
        Err(e) => out.errors.push(domain_err(p.lines.0, e)),
    }
    out
}

async fn apply_inner(
    ctx: &Ctx,
    p: &Planned,
    actor: &str,
) -> DomainResult<(&'static str, i64, usize)> {
    let existing = match super::by_handle(ctx, &p.handle).await {
        Ok(super::Found::Product(e)) => Some(e),
        Ok(super::Found::MovedTo(_)) | Err(DomainError::NotFound) => None,
        Err(e) => return Err(e),
    };
    let (action, product) = match existing {
        None => ("created", super::create(ctx, &p.input, actor).await?),
        Some(old) => {
            let mut input = p.input.clone();
            let mut taken = HashSet::new();
            for v in &mut input.variants {
                let by_sku = (!v.sku.is_empty())
                    .then(|| old.variants.iter().find(|o| o.row.sku == v.sku))
                    .flatten();
                let matched = by_sku.or_else(|| {
                    old.variants.iter().find(|o| {
                        let ov = [&o.row.option1, &o.row.option2, &o.row.option3];
                        ov.iter()
                            .take(v.values.len())
                            .zip(&v.values)
                            .all(|(a, b)| a.as_str() == b.as_str())
                            && ov.iter().skip(v.values.len()).all(|a| a.is_empty())
                    })
                });
                if let Some(o) = matched.filter(|o| taken.insert(o.row.id)) {
                    v.id = Some(o.row.id);
                }
            }
            let updated = super::update(ctx, old.row.id, &input, actor).await?;
            // Existing variants' stock moves to the file's figure through an adjustment.
            for (v, want) in input.variants.iter().zip(&p.stock) {
                let (Some(id), Some(want)) = (v.id, want) else {
                    continue;
                };
                let have = updated
                    .variants
                    .iter()
                    .find(|x| x.row.id == id)
                    .map(|x| x.row.inventory_quantity)
                    .unwrap_or(0);
                if *want != have {
                    super::adjust(ctx, id, want - have, "CSV import", actor).await?;
                }
            }
            ("updated", updated)
        }
    };
    let id = product.row.id;
    let have: HashSet<String> = media::of_product(ctx, id)
        .await?
        .iter()
        .flat_map(|m| [m.row.source_url.clone(), m.row.storage_key.clone()])
        .collect();
    let new: Vec<&(String, String)> = p
        .images
        .iter()
        .filter(|(u, _)| {
            !have.contains(u)
                && !have
                    .iter()
                    .any(|k| !k.is_empty() && u.ends_with(&media::file_url(k)))
        })
        .collect();
    if !new.is_empty() {
        let site = crate::settings::load(ctx).await?;
        let mut tx = ctx.db.begin().await?;
        for (url, alt) in &new {
            let mut alts = BTreeMap::new();
            if !alt.is_empty() {
                alts.insert(site.default_locale.tag().to_string(), alt.clone());
            }
            media::add_from_url_in(ctx, &mut tx, id, url, &alts).await?;
        }
        super::record_updated(ctx, &mut tx, id).await?;
        tx.commit().await.map_err(yiren_store::StoreError::from)?;
        super::changed();
    }
    Ok((action, id, p.images.len()))
}

/// Write every product as CSV rows in the 2025 template header. `base` is the shop's public URL
/// (for image addresses); an image downloaded from a URL is exported with that URL.
pub fn export(
    products: &[Product],
    media: &BTreeMap<i64, Vec<media::Media>>,
    currency: &str,
    default_locale: Locale,
    base: &str,
) -> Vec<u8> {
    let others: Vec<Locale> = Locale::ALL
        .into_iter()
        .filter(|l| *l != default_locale)
        .collect();
    let mut header: Vec<String> = EXPORT_HEADER.iter().map(|s| s.to_string()).collect();
    for l in &others {
        header.push(translation_column("title", l.tag()));
        header.push(translation_column("body", l.tag()));
        header.push(translation_column("options", l.tag()));
    }
    let col = |name: &str| header.iter().position(|h| h == name).expect("known column");
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(&header).expect("in memory");
    let yes = |b: bool| if b { "TRUE" } else { "FALSE" };
    for p in products {
        let images: Vec<&media::Media> = media
            .get(&p.row.id)
            .map(|m| m.iter().filter(|m| m.row.kind == "image").collect())
            .unwrap_or_default();
        let rows = p.variants.len().max(images.len());
        for i in 0..rows {
            let mut r = vec![String::new(); header.len()];
            r[col("URL handle")] = p.row.handle.clone();
            if i == 0 {
                r[col("Title")] = p.row.title.clone();
                r[col("Description")] = if p.row.body.is_empty() {
                    String::new()
                } else {
                    crate::reach::broadcast::markdown_html(&p.row.body)
                        .trim_end()
                        .to_string()
                };
                r[col("Vendor")] = p.row.vendor.clone();
                r[col("Type")] = p.row.product_type.clone();
                r[col("Tags")] = p.row.tags.clone();
                r[col("Published on online store")] = yes(p.row.status == "active").into();
                r[col("Status")] = p.row.status.clone();
                r[col("Gift card")] = "FALSE".into();
                r[col("SEO title")] = p.row.seo_title.clone();
                r[col("SEO description")] = p.row.seo_description.clone();
                r[col(KIND_COLUMN)] = p.row.kind.clone();
                let d = &p.details;
                r[col(DAYS_COLUMN)] = d.membership_days.map(|x| x.to_string()).unwrap_or_default();
                r[col(MONTHS_COLUMN)] = d
                    .membership_months
                    .map(|x| x.to_string())
                    .unwrap_or_default();
                r[col(TARGET_COLUMN)] = d
                    .target_amount
                    .map(|a| money::format(a, currency))
                    .unwrap_or_default();
                r[col(DEADLINE_COLUMN)] = d.deadline.map(crate::clock::rfc3339).unwrap_or_default();
                r[col(BOOKING_COLUMN)] = if d.booking {
                    "TRUE".into()
                } else {
                    String::new()
                };
                for t in &p.translations {
                    if let Some(l) = others.iter().find(|l| l.tag() == t.locale) {
                        r[col(&translation_column("title", l.tag()))] = t.title.clone();
                        if !t.body.is_empty() {
                            r[col(&translation_column("body", l.tag()))] =
                                crate::reach::broadcast::markdown_html(&t.body)
                                    .trim_end()
                                    .to_string();
                        }
                        if !t.options.is_empty() || !t.values.is_empty() {
                            r[col(&translation_column("options", l.tag()))] = serde_json::json!({
                                "names": t.options,
                                "values": t.values,
                            })
                            .to_string();
                        }
                    }
                }
            }
            if let Some(v) = p.variants.get(i) {
                let vals = [&v.row.option1, &v.row.option2, &v.row.option3];
                if p.options.is_empty() {
                    if i == 0 {
                        r[col("Option1 name")] = "Title".into();
                    }
                    r[col("Option1 value")] = "Default Title".into();
                } else {
                    for (n, o) in p.options.iter().enumerate() {
                        if i == 0 {
                            r[col(&format!("Option{} name", n + 1))] = o.name.clone();
                        }
                        r[col(&format!("Option{} value", n + 1))] = vals[n].clone();
                    }
                }
                r[col("SKU")] = v.row.sku.clone();
                r[col("Barcode")] = v.row.barcode.clone();
                if let Some(pr) = v.price(currency) {
                    r[col("Price")] = money::format(pr.amount, currency);
                    if let Some(c) = pr.compare_at {
                        r[col("Compare-at price")] = money::format(c, currency);
                    }
                }
                if let Some(c) = v.row.cost {
                    r[col("Cost per item")] = money::format(c, currency);
                }
                r[col("Charge tax")] = "TRUE".into();
                if v.row.track_inventory == 1 {
                    r[col("Inventory tracker")] = "shopify".into();
                    r[col("Inventory quantity")] = v.row.inventory_quantity.to_string();
                }
                r[col("Continue selling when out of stock")] =
                    if v.row.inventory_policy == "continue" {
                        "CONTINUE"
                    } else {
                        "DENY"
                    }
                    .into();
                r[col("Weight value (grams)")] = v.row.grams.to_string();
                r[col("Weight unit for display")] = "g".into();
                r[col("Requires shipping")] = yes(v.row.requires_shipping == 1).into();
                r[col("Fulfillment service")] = "manual".into();
            }
            if let Some(m) = images.get(i) {
                r[col("Product image URL")] = if m.row.source_url.is_empty() {
                    format!("{base}{}", media::file_url(&m.row.storage_key))
                } else {
                    m.row.source_url.clone()
                };
                r[col("Image position")] = (i + 1).to_string();
                r[col("Image alt text")] = m.alt_for(default_locale, default_locale);
            }
            w.write_record(&r).expect("in memory");
        }
    }
    w.into_inner().expect("in memory")
}

/// Job: run a previewed import.
pub const IMPORT_KIND: &str = "catalog.import";

/// Largest CSV accepted (about 40,000 rows of a typical export).
pub const MAX_CSV_BYTES: usize = 20 << 20;

async fn existing_handles(
    ctx: &Ctx,
    plan_handles: &[String],
) -> DomainResult<HashMap<String, i64>> {
    let mut out = HashMap::new();
    for h in plan_handles {
        if let Some(row) = yiren_store::catalog::by_handle(ctx.db.read(), h).await? {
            out.insert(h.clone(), row.id);
        }
    }
    Ok(out)
}

async fn plan_of(ctx: &Ctx, content: &str) -> DomainResult<Plan> {
    let site = crate::settings::load(ctx).await?;
    let first = plan(
        content.as_bytes(),
        &site.currency,
        site.default_locale,
        &HashMap::new(),
    );
    let handles: Vec<String> = first.products.iter().map(|p| p.handle.clone()).collect();
    let existing = existing_handles(ctx, &handles).await?;
    let mut p = first;
    for item in &mut p.products {
        item.existing = existing.get(&item.handle).copied();
    }
    Ok(p)
}

/// Keep an uploaded file and check it; nothing in the catalog changes. Returns the import's id and
/// what importing it would do.
pub async fn preview(
    ctx: &Ctx,
    filename: &str,
    bytes: &[u8],
    actor: &str,
) -> DomainResult<(i64, Plan)> {
    if bytes.len() > MAX_CSV_BYTES {
        return Err(DomainError::invalid("file", "import.too_large"));
    }
    let content = String::from_utf8(bytes.to_vec())
        .map_err(|_| DomainError::invalid("file", "import.not_utf8"))?;
    let plan = plan_of(ctx, &content).await?;
    let id = ctx.new_id();
    let now = ctx.now();
    let row = yiren_store::media::ImportRow {
        id,
        filename: filename.chars().take(200).collect(),
        content,
        status: "previewed".into(),
        products: plan.products.len() as i64,
        done: 0,
        report: "[]".into(),
        actor: actor.chars().take(120).collect(),
        created_at: now,
        updated_at: now,
    };
    yiren_store::media::insert_import(ctx.db.write(), &row).await?;
    Ok((id, plan))
}

/// An import, and while it is only previewed its plan (checked again now, against the catalog as
/// it is).
pub async fn get(
    ctx: &Ctx,
    id: i64,
) -> DomainResult<(yiren_store::media::ImportRow, Option<Plan>)> {
    let row = yiren_store::media::get_import(ctx.db.read(), id)
        .await
        .map_err(super::store_err)?;
    // Once started, the report says what happened; the file is not read again for every view.
    let plan = if row.status == "previewed" {
        Some(plan_of(ctx, &row.content).await?)
    } else {
        None
    };
    Ok((row, plan))
}

/// The report of a running or finished import.
pub fn report(row: &yiren_store::media::ImportRow) -> Vec<Outcome> {
    serde_json::from_str(&row.report).unwrap_or_default()
}

/// Queue a previewed import (once: a second start is a no-op).
pub async fn start(ctx: &Ctx, id: i64) -> DomainResult<()> {
    let mut tx = ctx.db.begin().await?;
    if yiren_store::media::import_status(&mut *tx, id, "previewed", "queued", ctx.now()).await? {
        crate::job::enqueue(
            ctx,
            &mut tx,
            IMPORT_KIND,
            &serde_json::json!({ "import_id": id }),
            crate::job::EnqueueOptions {
                max_attempts: 3,
                unique_key: Some(format!("catalog.import:{id}")),
                ..Default::default()
            },
        )
        .await?;
    } else {
        yiren_store::media::get_import(&mut *tx, id)
            .await
            .map_err(super::store_err)?;
    }
    tx.commit().await.map_err(yiren_store::StoreError::from)?;
    Ok(())
}

/// Run an import to the end, recording each product's outcome as it goes. Running it again (after
/// a crash) is safe: products are matched by handle and images by address.
pub async fn run(ctx: &Ctx, id: i64) -> DomainResult<Vec<Outcome>> {
    let row = yiren_store::media::get_import(ctx.db.read(), id)
        .await
        .map_err(super::store_err)?;
    if row.status == "done" {
        return Ok(report(&row));
    }
    let plan = plan_of(ctx, &row.content).await?;
    let actor = format!("{} (CSV import)", row.actor);
    let mut outcomes = Vec::with_capacity(plan.products.len());
    let mut last_saved = std::time::Instant::now();
    for (i, p) in plan.products.iter().enumerate() {
        outcomes.push(apply(ctx, p, &actor).await);
        if last_saved.elapsed() > std::time::Duration::from_secs(1) {
            let report = serde_json::to_string(&outcomes).expect("serialisable");
            yiren_store::media::import_progress(
                ctx.db.write(),
                id,
                "running",
                i as i64 + 1,
                &report,
                ctx.now(),
            )
            .await?;
            last_saved = std::time::Instant::now();
        }
    }
    let report = serde_json::to_string(&outcomes).expect("serialisable");
    yiren_store::media::import_progress(
        ctx.db.write(),
        id,
        "done",
        outcomes.len() as i64,
        &report,
        ctx.now(),
    )
    .await?;
    Ok(outcomes)
}

/// `catalog.import`: run an import queued from the preview.
pub struct ImportJob;

impl crate::job::JobHandler for ImportJob {
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        job: &'a crate::job::JobContext,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::job::JobError>> {
        Box::pin(async move {
            let id = serde_json::from_str::<serde_json::Value>(&job.payload)
                .ok()
                .and_then(|v| v["import_id"].as_i64())
                .ok_or_else(|| crate::job::JobError::permanent("bad payload"))?;
            run(ctx, id)
                .await
                .map(|_| ())
                .map_err(|e| crate::job::JobError::transient(e.to_string()))
        })
    }
}

/// Every product, oldest first, as CSV.
pub async fn export_all(ctx: &Ctx, base: &str) -> DomainResult<Vec<u8>> {
    let site = crate::settings::load(ctx).await?;
    let mut products = Vec::new();
    let mut after = 0;
    loop {
        let ids = super::all_ids(ctx, after, 500).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        let mut batch = super::get_many(ctx, &ids).await?;
        batch.sort_by_key(|p| p.row.id);
        products.extend(batch);
        after = last;
    }
    let ids: Vec<i64> = products.iter().map(|p| p.row.id).collect();
    let mut media = BTreeMap::new();
    for chunk in ids.chunks(500) {
        media.extend(media::of_products(ctx, chunk).await?);
    }
    Ok(export(
        &products,
        &media,
        &site.currency,
        site.default_locale,
        base,
    ))
}
