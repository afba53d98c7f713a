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

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, NgramTokenizer, RemoveLongFilter, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use yiren_core::catalog::{self, Product};
use yiren_core::job::{JobContext, JobError, JobHandler};
use yiren_core::Ctx;

const ANALYZER: &str = "zh_en";
const CHARS: &str = "chars";
/// Bumped when the schema or analyzer changes: an index of another version is rebuilt.
const VERSION: &str = "3";

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
        collections: b.add_u64_field("collections", INDEXED),
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
    pub total: usize,
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

    /// Run a search. Fast enough to call on the request thread (no I/O beyond mmapped files).
    pub fn search(&self, q: &SearchQuery) -> Result<Hits, SearchError> {
        let f = self.f;
        let mut terms = self.tokens(&q.text);
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
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !q.text.trim().is_empty() {
            let last = terms.len().saturating_sub(1);
            let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (i, t) in terms.iter().enumerate() {
                let term = |field: Field| Term::from_field_text(field, t);
                let exact = |field: Field, boost: f32| -> Box<dyn Query> {
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(term(field), IndexRecordOption::WithFreqs)),
                        boost,
                    ))
                };
                should.push((Occur::Should, exact(f.title, 3.0)));
                should.push((Occur::Should, exact(f.extra, 2.0)));
                should.push((Occur::Should, exact(f.body, 1.0)));
                let latin = t.chars().all(|c| c.is_ascii_alphanumeric());
                let len = t.chars().count();
                if len == 1 && !latin {
                    should.push((
                        Occur::Should,
                        Box::new(TermQuery::new(term(f.chars), IndexRecordOption::WithFreqs)),
                    ));
                }
                if latin && len >= 4 && !t.chars().all(|c| c.is_ascii_digit()) {
                    let distance = if len >= 8 { 2 } else { 1 };
                    for (field, boost) in [(f.title, 1.5), (f.extra, 1.0)] {
                        should.push((
                            Occur::Should,
                            Box::new(BoostQuery::new(
                                Box::new(FuzzyTermQuery::new(term(field), distance, true)),
                                boost,
                            )),
                        ));
                    }
                }
                if latin && i == last && len >= 2 {
                    for (field, boost) in [(f.title, 1.5), (f.extra, 1.0)] {
                        should.push((
                            Occur::Should,
                            Box::new(BoostQuery::new(
                                Box::new(FuzzyTermQuery::new_prefix(term(field), 0, false)),
                                boost,
                            )),
                        ));
                    }
                }
            }
            for p in &parts {
                for (field, boost) in [(f.title, 1.5), (f.extra, 1.0), (f.body, 0.5)] {
                    should.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, p),
                                IndexRecordOption::WithFreqs,
                            )),
                            boost,
                        )),
                    ));
                }
            }
            if should.is_empty() {
                return Ok(Hits::default());
            }
            must.push((Occur::Must, Box::new(BooleanQuery::new(should))));
        } else {
            must.push((Occur::Must, Box::new(AllQuery)));
        }
        must.push((
            Occur::Must,
            Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Included(Term::from_field_i64(f.publish_at, q.now)),
            )),
        ));
        if let Some(c) = q.collection {
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.collections, c as u64),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if q.in_stock_only {
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.in_stock, 1),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if q.min_price.is_some() || q.max_price.is_some() {
            let lo = q.min_price.map_or(Bound::Unbounded, |p| {
                Bound::Included(Term::from_field_u64(f.min_price, p.max(0) as u64))
            });
            let hi = q.max_price.map_or(Bound::Unbounded, |p| {
                Bound::Included(Term::from_field_u64(f.min_price, p.max(0) as u64))
            });
            must.push((Occur::Must, Box::new(RangeQuery::new(lo, hi))));
        }
        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        let limit = q.limit.clamp(1, 100);
        let (top, total) = searcher.search(
            &query,
            &(
                TopDocs::with_limit(limit)
                    .and_offset(q.offset.min(10_000))
                    .order_by_score(),
                Count,
            ),
        )?;
        let mut ids = Vec::with_capacity(top.len());
        for (_, addr) in top {
            let d: TantivyDocument = searcher.doc(addr)?;
            if let Some(id) = d.get_first(f.id).and_then(|v| v.as_u64()) {
                ids.push(id as i64);
            }
        }
        Ok(Hits { ids, total })
    }
}

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
