//! Storefront search: a tantivy index of the products visitors can see, analysed by jieba (Chinese
//! words, in search mode so 女朋友 also yields 朋友) with lower-casing and ASCII folding for Latin
//! text.
//!
//! Queries go through the same analyzer, so an unspaced Chinese question ("有没有适合送女朋友的香水")
//! becomes terms that are combined, never a phrase. Latin words also match with one typo (two
//! from eight letters) and the last word as a prefix, for search-as-you-type. Filters: price range
//! in the shop currency, in stock, and the publish time (scheduled products appear on time
//! without a reindex).
//!
//! The index lives under `<data-dir>/search/` and follows the catalog through `catalog.index`
//! jobs ([`IndexJob`]); [`rebuild`] (`yiren reindex`) makes it again from the database.

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, NgramTokenizer, RemoveLongFilter, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use yiren_core::catalog::{self, Product};
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::Ctx;

mod collect;

const ANALYZER: &str = "zh_en";
const CHARS: &str = "chars";
/// Bumped when the schema or analyzer changes: an index of another version is rebuilt.
const VERSION: &str = "4";

/// Search failures (the index files, or a bug): the caller shows "search unavailable".
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index: {0}")]
    Io(#[from] std::io::Error),
    #[error("search index is locked by another process")]
    Locked,
    #[error(transparent)]
    Domain(#[from] yiren_core::DomainError),
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    extra: Field,
    body: Field,
    min_price: Field,
    in_stock: Field,
    publish_at: Field,
    collections: Field,
    chars: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let f = Fields {
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        title: b.add_text_field("title", text.clone()),
        extra: b.add_text_field("extra", text.clone()),
        body: b.add_text_field("body", text),
        min_price: b.add_u64_field("min_price", INDEXED | FAST),
        in_stock: b.add_u64_field("in_stock", INDEXED | FAST),
        publish_at: b.add_i64_field("publish_at", INDEXED | FAST),
        collections: b.add_u64_field("collections", INDEXED | FAST),
        // Titles and tags again, one character per term: a one-character query (茶) is not a
        // word jieba emits, but it should still find 茶杯 and 茶具.
        chars: b.add_text_field(
            "chars",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(CHARS)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        ),
    };
    (b.build(), f)
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::new())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// What a product contributes to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub id: i64,
    /// Titles in every language.
    pub titles: Vec<String>,
    /// Tags, vendor, type, SKUs, option values.
    pub extra: Vec<String>,
    /// Descriptions in every language.
    pub bodies: Vec<String>,
    /// Lowest price in the shop currency (minor units), if any.
    pub min_price: Option<i64>,
    pub in_stock: bool,
    pub publish_at: i64,
    /// Collections the product is in.
    pub collections: Vec<i64>,
}

/// The document for a product in `collections`, or None when visitors must not find it (draft,
/// archived).
pub fn document(p: &Product, currency: &str, collections: Vec<i64>) -> Option<Doc> {
    if p.row.status != "active" {
        return None;
    }
    let mut titles = vec![p.row.title.clone()];
    let mut bodies = vec![p.row.body.clone()];
    for t in &p.translations {
        titles.push(t.title.clone());
        bodies.push(t.body.clone());
    }
    let translated_values = p
        .translations
        .iter()
        .flat_map(|t| t.values.values().cloned());
    let mut extra = p.tags();
    extra.extend([p.row.vendor.clone(), p.row.product_type.clone()]);
    for v in &p.variants {
        extra.push(v.row.sku.clone());
        extra.push(v.title());
    }
    extra.extend(translated_values);
    extra.retain(|s| !s.is_empty());
    Some(Doc {
        id: p.row.id,
        titles,
        extra,
        bodies,
        min_price: p.min_price(currency),
        in_stock: p.available(),
        publish_at: p.row.publish_at.unwrap_or(0),
        collections,
    })
}

/// A visitor's search.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    /// Price bounds in the shop currency, minor units, inclusive.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock_only: bool,
    /// Only products in this collection.
    pub collection: Option<i64>,
    /// Only products published by then (unix ms).
    pub now: i64,
    pub offset: usize,
    pub limit: usize,
}

/// Matching product ids, best first, and how many matched in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hits {
    pub ids: Vec<i64>,
    /// How many matched: exactly, or at least this many when `at_least`.
    pub total: usize,
    pub at_least: bool,
    /// Whether hits follow this page.
    pub more: bool,
}

/// The search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    /// Serialises this process's writers. A writer is opened for each change and closed after
    /// its commit: it holds the index lock and ~15 MB, neither needed between changes.
    writing: Mutex<()>,
    f: Fields,
}

impl SearchIndex {
    /// Open (or create) the index under `dir`; in memory when `dir` is None. An index written by
    /// another schema version is replaced by an empty one (the caller rebuilds it).
    /// Returns the index and whether it was (re)created empty.
    pub fn open(dir: Option<&Path>) -> Result<(Arc<SearchIndex>, bool), SearchError> {
        let (schema, f) = schema();
        let (index, fresh) = match dir {
            None => (Index::create_in_ram(schema), true),
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let marker = dir.join("VERSION");
                let current = std::fs::read_to_string(&marker).ok();
                if current.as_deref() != Some(VERSION) {
                    for e in std::fs::read_dir(dir)? {
                        let p = e?.path();
                        if p.is_file() {
                            std::fs::remove_file(&p)?;
                        }
                    }
                    let index = Index::create_in_dir(dir, schema)?;
                    std::fs::write(&marker, VERSION)?;
                    (index, true)
                } else {
                    (Index::open_in_dir(dir)?, false)
                }
            }
        };
        index.tokenizers().register(ANALYZER, analyzer());
        index.tokenizers().register(
            CHARS,
            TextAnalyzer::builder(NgramTokenizer::new(1, 1, false)?)
                .filter(LowerCaser)
                .build(),
        );
        // Reloaded after our own commits at once, and on a commit by another process (`yiren
        // reindex` while the server runs) shortly after.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        Ok((
            Arc::new(SearchIndex {
                index,
                reader,
                writing: Mutex::new(()),
                f,
            }),
            fresh,
        ))
    }

    fn to_tantivy(&self, d: &Doc) -> TantivyDocument {
        let f = self.f;
        let mut td = doc!(
            f.id => d.id as u64,
            f.in_stock => d.in_stock as u64,
            f.publish_at => d.publish_at,
        );
        if let Some(p) = d.min_price {
            td.add_u64(f.min_price, p.max(0) as u64);
        }
        for c in &d.collections {
            td.add_u64(f.collections, *c as u64);
        }
        for t in &d.titles {
            td.add_text(f.title, t);
            td.add_text(f.chars, t);
        }
        for t in &d.extra {
            td.add_text(f.extra, t);
            td.add_text(f.chars, t);
        }
        for t in &d.bodies {
            td.add_text(f.body, t);
        }
        td
    }

    /// Replace the documents of `ids` with `docs` (an id without a doc is removed), commit, and
    /// make the change visible to searches. Blocking: call from a blocking thread.
    pub fn apply(&self, ids: &[i64], docs: &[Doc]) -> Result<(), SearchError> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = self.writer()?;
        for id in ids {
            w.delete_term(Term::from_field_u64(self.f.id, *id as u64));
        }
        for d in docs {
            w.add_document(self.to_tantivy(d))?;
        }
        w.commit()?;
        w.wait_merging_threads()?;
        self.reader.reload()?;
        Ok(())
    }

    fn writer(&self) -> Result<IndexWriter, SearchError> {
        self.index
            .writer_with_num_threads(1, 15_000_000)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => SearchError::Locked,
                e => SearchError::Index(e),
            })
    }

    /// Remove every document. Blocking.
    pub fn clear(&self) -> Result<(), SearchError> {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = self.writer()?;
        w.delete_all_documents()?;
        w.commit()?;
        w.wait_merging_threads()?;
        self.reader.reload()?;
        Ok(())
    }

    /// How many products are indexed.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The analyzer's tokens for `text` (lower-cased, folded; Chinese cut into words).
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let mut a = analyzer();
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            if t.text.chars().any(char::is_alphanumeric) {
                out.push(t.text.clone());
            }
        }
        out
    }

    /// Run a search. Fast enough to call on the request thread (no I/O beyond mmapped files),
    /// and about as fast over 100,000 products as over 1,000: see [`collect`].
    pub fn search(&self, q: &SearchQuery) -> Result<Hits, SearchError> {
        let searcher = self.reader.searcher();
        let query: Box<dyn Query> = if q.text.trim().is_empty() {
            Box::new(AllQuery)
        } else {
            match self.text_query(&searcher, &q.text)? {
                Some(query) => query,
                None => return Ok(Hits::default()),
            }
        };
        let filter = collect::Filter {
            now: q.now,
            min_price: q.min_price.map(|p| p.max(0) as u64),
            max_price: q.max_price.map(|p| p.max(0) as u64),
            in_stock_only: q.in_stock_only,
            collection: q.collection.map(|c| c.max(0) as u64),
        };
        let limit = q.limit.clamp(1, 100);
        let offset = q.offset.min(10_000);
        // One more than the page, to know whether another page follows.
        let top = searcher.search(
            &query,
            &collect::FilteredTop {
                k: offset + limit + 1,
                filter,
            },
        )?;
        let more = top.len() > offset + limit;
        let ids = top
            .iter()
            .skip(offset)
            .take(limit)
            .map(|h| h.id as i64)
            .collect();
        let (counted, exact) =
            collect::count(&searcher, query.as_ref(), filter, COUNT_CAP, 10 * COUNT_CAP)?;
        Ok(Hits {
            ids,
            total: counted.max(top.len().min(offset + limit)),
            at_least: !exact,
            more,
        })
    }

    /// The scored part of a search: a flat union of term queries (see [`collect`]), or None when
    /// the text has nothing to search for.
    fn text_query(
        &self,
        searcher: &tantivy::Searcher,
        text: &str,
    ) -> Result<Option<Box<dyn Query>>, SearchError> {
        let f = self.f;
        let mut terms = self.tokens(text);
        let mut seen = std::collections::HashSet::new();
        terms.retain(|t| seen.insert(t.clone()));
        let meaningful: Vec<String> = terms
            .iter()
            .filter(|t| !STOP_WORDS.contains(&String::as_str(t)))
            .cloned()
            .collect();
        // A query of only stop words ("the", "有没有") still searches for them.
        let terms = if meaningful.is_empty() {
            terms
        } else {
            meaningful
        };
        // A Chinese word the analyzer made up from an unknown phrase ("学修图") may hold indexed
        // words ("修图"): its inner runs of two or more characters are searched too, weighted less.
        let mut parts: Vec<String> = Vec::new();
        for t in &terms {
            let chars: Vec<char> = t.chars().collect();
            if chars.len() >= 3 && chars.iter().all(|c| !c.is_ascii()) {
                for len in 2..chars.len() {
                    for start in 0..=chars.len() - len {
                        let p: String = chars[start..start + len].iter().collect();
                        if !STOP_WORDS.contains(&p.as_str()) && seen.insert(p.clone()) {
                            parts.push(p);
                        }
                    }
                }
            }
        }
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut add = |field: Field, word: &str, boost: f32| {
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, word),
                        IndexRecordOption::WithFreqs,
                    )),
                    boost,
                )),
            ));
        };
        // A typo or prefix match adds about `boost` whatever the matched word's rarity (its
        // BM25 weight is divided by the word's IDF), so a rare near-miss never outranks the
        // word the visitor typed.
        let docs = searcher.num_docs().max(1) as f32;
        let flat = |n: u64, boost: f32| -> f32 {
            let n = (n as f32).min(docs);
            boost / (1.0 + (docs - n + 0.5) / (n + 0.5)).ln().max(0.05)
        };
        let last = terms.len().saturating_sub(1);
        for (i, t) in terms.iter().enumerate() {
            add(f.title, t, 3.0);
            add(f.extra, t, 2.0);
            add(f.body, t, 1.0);
            let latin = t.chars().all(|c| c.is_ascii_alphanumeric());
            let len = t.chars().count();
            if len == 1 && !latin {
                add(f.chars, t, 1.0);
            }
            for (field, boost) in [(f.title, 1.5), (f.extra, 1.0)] {
                if latin && len >= 4 && !t.chars().all(|c| c.is_ascii_digit()) {
                    let distance = if len >= 8 { 2 } else { 1 };
                    for (w, n) in collect::fuzzy_terms(searcher, field, t, distance, 16)? {
                        add(field, &w, flat(n, boost));
                    }
                }
                if latin && i == last && len >= 2 {
                    for (w, n) in collect::prefix_terms(searcher, field, t, 32)? {
                        add(field, &w, flat(n, boost));
                    }
                }
            }
        }
        for p in &parts {
            add(f.title, p, 1.5);
            add(f.extra, p, 1.0);
            add(f.body, p, 0.5);
        }
        if should.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(BooleanQuery::new(should))))
    }
}

/// The total is counted exactly up to this many matches; beyond, the page says "1000+".
const COUNT_CAP: usize = 1_000;

/// Words that carry no meaning in a shopper's question; dropped unless the query is only these.
const STOP_WORDS: &[&str] = &[
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "呀",
    "有没有",
    "有",
    "没有",
    "我",
    "你",
    "您",
    "想",
    "要",
    "想要",
    "买",
    "给",
    "在",
    "是",
    "和",
    "与",
    "哪",
    "哪些",
    "哪个",
    "什么",
    "怎么",
    "推荐",
    "一个",
    "一些",
    "一下",
    "请问",
    "可以",
    "能",
    "a",
    "an",
    "the",
    "for",
    "of",
    "to",
    "and",
    "or",
    "with",
    "in",
    "on",
    "is",
    "are",
    "do",
    "does",
    "you",
    "have",
    "has",
    "any",
    "i",
    "my",
    "me",
    "want",
    "need",
    "some",
    "what",
    "which",
    "looking",
    "something",
    "sell",
    "buy",
];

/// Bring the documents of `ids` up to date from the database.
pub async fn refresh(ctx: &Ctx, index: &Arc<SearchIndex>, ids: &[i64]) -> Result<(), SearchError> {
    let currency = yiren_core::settings::load(ctx).await?.currency;
    let products = catalog::get_many(ctx, ids).await?;
    let mut docs = Vec::with_capacity(products.len());
    let all = catalog::collection::list(ctx).await?;
    for p in &products {
        // Automatic collections follow the product here, on the job that follows every change.
        let collections = catalog::collection::refresh_product(ctx, &all, p, &currency).await?;
        docs.extend(document(p, &currency, collections));
    }
    let index = index.clone();
    let ids = ids.to_vec();
    tokio::task::spawn_blocking(move || index.apply(&ids, &docs))
        .await
        .map_err(|e| SearchError::Io(std::io::Error::other(e.to_string())))?
}

/// Make the index again from every product in the database; returns how many are searchable.
pub async fn rebuild(ctx: &Ctx, index: &Arc<SearchIndex>) -> Result<u64, SearchError> {
    let i = index.clone();
    tokio::task::spawn_blocking(move || i.clear())
        .await
        .map_err(|e| SearchError::Io(std::io::Error::other(e.to_string())))??;
    let mut after = 0;
    loop {
        let ids = catalog::all_ids(ctx, after, 500).await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        refresh(ctx, index, &ids).await?;
        after = last;
    }
    Ok(index.len())
}

/// The `catalog.index` job: one product's document follows its row.
pub struct IndexJob {
    index: Arc<SearchIndex>,
}

impl IndexJob {
    /// A handler writing to `index`.
    pub fn new(index: Arc<SearchIndex>) -> IndexJob {
        IndexJob { index }
    }
}

#[derive(serde::Deserialize)]
struct IndexPayload {
    product_id: i64,
}

impl JobHandler for IndexJob {
    fn run<'a>(&'a self, ctx: &'a Ctx, job: &'a JobContext) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let p: IndexPayload = serde_json::from_str(&job.payload)
                .map_err(|e| JobError::permanent(format!("bad payload: {e}")))?;
            refresh(ctx, &self.index, &[p.product_id])
                .await
                .map_err(|e| JobError::transient(e.to_string()))
        })
    }
}

/// The job kind that rebuilds the whole index (`yiren reindex` while the server runs).
pub const REINDEX_KIND: &str = "catalog.reindex";

/// The `catalog.reindex` job.
pub struct ReindexJob {
    index: Arc<SearchIndex>,
}

impl ReindexJob {
    /// A handler rebuilding `index`.
    pub fn new(index: Arc<SearchIndex>) -> ReindexJob {
        ReindexJob { index }
    }
}

impl JobHandler for ReindexJob {
    fn run<'a>(
        &'a self,
        ctx: &'a Ctx,
        _job: &'a JobContext,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let n = rebuild(ctx, &self.index)
                .await
                .map_err(|e| JobError::transient(e.to_string()))?;
            tracing::info!(products = n, "search index rebuilt");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::TopDocs;

    const WORDS: &[&str] = &[
        "linen",
        "shirt",
        "teacup",
        "teapot",
        "tea",
        "scarf",
        "keyboard",
        "coffee",
        "beans",
        "wool",
        "亚麻",
        "衬衫",
        "茶杯",
        "围巾",
        "键盘",
        "咖啡豆",
        "羊毛",
        "礼物",
    ];

    fn corpus(n: usize) -> Vec<Doc> {
        let mut seed = 7u64;
        let mut next = |m: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((seed >> 33) % m as u64) as usize
        };
        (0..n)
            .map(|i| Doc {
                id: i as i64 + 1,
                titles: vec![(0..3)
                    .map(|_| WORDS[next(WORDS.len())])
                    .collect::<Vec<_>>()
                    .join(" ")],
                extra: vec![WORDS[next(WORDS.len())].to_string()],
                bodies: vec![WORDS[next(WORDS.len())].to_string()],
                min_price: (next(5) > 0).then(|| 100 * next(100) as i64),
                in_stock: next(3) > 0,
                publish_at: if next(10) == 0 { 5_000 } else { 0 },
                collections: (0..next(3)).map(|_| next(4) as i64).collect(),
            })
            .collect()
    }

    /// The pruned, filtered search returns exactly what scoring every match and filtering after
    /// would: the same ids in the same order, the same total.
    #[test]
    fn pruned_filtered_search_equals_filtering_every_match() {
        let (index, _) = SearchIndex::open(None).unwrap();
        let docs = corpus(3_000);
        // Several segments, and deleted documents in them.
        for chunk in docs.chunks(700) {
            index.apply(&[], chunk).unwrap();
        }
        let removed: Vec<i64> = (1..=3_000).step_by(11).collect();
        index.apply(&removed, &[]).unwrap();
        let by_id: std::collections::HashMap<i64, &Doc> = docs.iter().map(|d| (d.id, d)).collect();
        let searcher = index.reader.searcher();
        let filters = [
            SearchQuery::default(),
            SearchQuery {
                in_stock_only: true,
                ..Default::default()
            },
            SearchQuery {
                min_price: Some(2_000),
                max_price: Some(6_000),
                ..Default::default()
            },
            SearchQuery {
                collection: Some(2),
                ..Default::default()
            },
            SearchQuery {
                now: 10_000,
                in_stock_only: true,
                collection: Some(1),
                ..Default::default()
            },
        ];
        let mut checked = 0;
        for text in [
            "tea",
            "linen shirt",
            "keybord",
            "te",
            "亚麻衬衫",
            "羊毛围巾礼物",
            "coffe",
        ] {
            for f in &filters {
                for (offset, limit) in [(0, 24), (24, 24), (5, 3)] {
                    let q = SearchQuery {
                        text: text.into(),
                        offset,
                        limit,
                        ..f.clone()
                    };
                    let got = index.search(&q).unwrap();
                    let query = index.text_query(&searcher, text).unwrap().unwrap();
                    let all = searcher
                        .search(&query, &TopDocs::with_limit(10_000).order_by_score())
                        .unwrap();
                    let mut want = Vec::new();
                    let mut score = std::collections::HashMap::new();
                    for (sc, addr) in all {
                        let seg = &searcher.segment_readers()[addr.segment_ord as usize];
                        let id = seg
                            .fast_fields()
                            .u64("id")
                            .unwrap()
                            .first(addr.doc_id)
                            .unwrap() as i64;
                        let d = by_id[&id];
                        let ok = d.publish_at <= q.now
                            && (!q.in_stock_only || d.in_stock)
                            && q.min_price
                                .is_none_or(|m| d.min_price.is_some_and(|p| p >= m))
                            && q.max_price
                                .is_none_or(|m| d.min_price.is_some_and(|p| p <= m))
                            && q.collection.is_none_or(|c| d.collections.contains(&c));
                        if ok {
                            want.push(id);
                            score.insert(id, sc);
                        }
                    }
                    assert!(!removed.iter().any(|r| want.contains(r)));
                    let page: Vec<i64> = want.iter().skip(offset).take(limit).copied().collect();
                    // The same ranking: block-max WAND adds a document's term scores in
                    // another order than the plain union, so equal documents may differ in the
                    // last bits and swap; position by position the scores must agree.
                    assert_eq!(got.ids.len(), page.len(), "{text:?} {q:?}");
                    for (g, w) in got.ids.iter().zip(&page) {
                        let g = score.get(g).copied();
                        assert!(g.is_some(), "{text:?} {q:?}: a hit the filters exclude");
                        assert!(
                            (g.unwrap() - score[w]).abs() < 1e-4,
                            "{text:?} {q:?}: {got:?} vs {page:?}"
                        );
                    }
                    assert_eq!(got.more, want.len() > offset + limit, "{text:?} {q:?}");
                    assert_eq!(
                        (got.total, got.at_least),
                        if want.len() > COUNT_CAP {
                            (COUNT_CAP, true)
                        } else {
                            (want.len(), false)
                        },
                        "{text:?} {q:?}"
                    );
                    checked += usize::from(!page.is_empty());
                }
            }
        }
        assert!(checked > 60, "too few non-empty pages compared: {checked}");
    }

    /// Beyond the cap the total is a lower bound, and says so.
    #[test]
    fn a_total_beyond_the_cap_is_at_least() {
        let (index, _) = SearchIndex::open(None).unwrap();
        let docs: Vec<Doc> = (0..COUNT_CAP as i64 + 50)
            .map(|i| Doc {
                id: i + 1,
                titles: vec!["linen shirt".into()],
                extra: vec![],
                bodies: vec![],
                min_price: Some(100),
                in_stock: true,
                publish_at: 0,
                collections: vec![],
            })
            .collect();
        index.apply(&[], &docs).unwrap();
        let hits = index
            .search(&SearchQuery {
                text: "linen".into(),
                limit: 10,
                now: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            (hits.total, hits.at_least, hits.more),
            (COUNT_CAP, true, true)
        );
        assert_eq!(hits.ids.len(), 10);
    }
}
