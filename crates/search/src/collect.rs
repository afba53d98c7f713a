//! How a search is run so that its cost follows the page asked for, not the catalog's size.
//!
//! tantivy skips whole blocks of postings that cannot reach the current top-k (block-max WAND)
//! only when the scored query is a flat union of term queries. So the search (1) expands typo
//! and prefix words into the concrete terms of the dictionary they match ([`expand`]), keeping
//! the query a union of terms, and (2) applies the filters (publish time, price, stock,
//! collection) inside the top-k collector ([`FilteredTop`]) from fast fields rather than as
//! required clauses, which would turn the union into an intersection that must visit every
//! match. A rejected document never raises the bar, so the result is exactly what the filtered
//! query would return. The total is counted separately, up to a cap ([`count`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{EnableScoring, FuzzyTermQuery, Query, Weight};
use tantivy::schema::Field;
use tantivy::{
    DocAddress, DocId, DocSet, Score, Searcher, SegmentOrdinal, SegmentReader, Term, TERMINATED,
};

/// The filters of a search, applied per document from fast fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Filter {
    pub now: i64,
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    pub in_stock_only: bool,
    pub collection: Option<u64>,
}

/// A filter bound to one segment's columns.
struct SegmentFilter {
    f: Filter,
    id: Column<u64>,
    publish_at: Column<i64>,
    price: Column<u64>,
    in_stock: Column<u64>,
    collections: Column<u64>,
}

impl SegmentFilter {
    fn open(f: Filter, reader: &SegmentReader) -> tantivy::Result<SegmentFilter> {
        let ff = reader.fast_fields();
        // A segment where no document has a value (no product in any collection, say) has no
        // column for it: an empty one answers "no value" alike.
        let max = reader.max_doc();
        Ok(SegmentFilter {
            f,
            id: ff
                .column_opt("id")?
                .unwrap_or_else(|| Column::build_empty_column(max)),
            publish_at: ff
                .column_opt("publish_at")?
                .unwrap_or_else(|| Column::build_empty_column(max)),
            price: ff
                .column_opt("min_price")?
                .unwrap_or_else(|| Column::build_empty_column(max)),
            in_stock: ff
                .column_opt("in_stock")?
                .unwrap_or_else(|| Column::build_empty_column(max)),
            collections: ff
                .column_opt("collections")?
                .unwrap_or_else(|| Column::build_empty_column(max)),
        })
    }

    fn accepts(&self, doc: DocId) -> bool {
        let f = &self.f;
        if self.publish_at.first(doc).unwrap_or(0) > f.now {
            return false;
        }
        if f.in_stock_only && self.in_stock.first(doc) != Some(1) {
            return false;
        }
        if f.min_price.is_some() || f.max_price.is_some() {
            // A product without a price in the shop currency has no price to compare.
            let Some(p) = self.price.first(doc) else {
                return false;
            };
            if f.min_price.is_some_and(|m| p < m) || f.max_price.is_some_and(|m| p > m) {
                return false;
            }
        }
        if let Some(c) = f.collection {
            if !self.collections.values_for_doc(doc).any(|v| v == c) {
                return false;
            }
        }
        true
    }
}

/// A hit: score, where it is, and the product id (from the fast field, no stored-doc read).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub score: Score,
    pub addr: DocAddress,
    pub id: u64,
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
/// Better is greater: a higher score, then the earlier document.
impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.addr.cmp(&self.addr))
    }
}

/// The best `k` documents that pass the filter.
pub(crate) struct FilteredTop {
    pub k: usize,
    pub filter: Filter,
}

pub(crate) struct SegmentTop {
    k: usize,
    segment: SegmentOrdinal,
    filter: SegmentFilter,
    /// A min-heap (by `Reverse`) of the best hits so far: its top is the bar to beat.
    heap: BinaryHeap<std::cmp::Reverse<Hit>>,
}

impl SegmentTop {
    /// Offer a document; returns the score a document must now beat.
    fn offer(&mut self, doc: DocId, score: Score) -> Score {
        if self.filter.accepts(doc) {
            let hit = Hit {
                score,
                addr: DocAddress::new(self.segment, doc),
                id: self.filter.id.first(doc).unwrap_or(0),
            };
            if self.heap.len() < self.k {
                self.heap.push(std::cmp::Reverse(hit));
            } else if self.heap.peek().is_some_and(|w| hit > w.0) {
                self.heap.pop();
                self.heap.push(std::cmp::Reverse(hit));
            }
        }
        self.bar()
    }

    fn bar(&self) -> Score {
        if self.heap.len() < self.k {
            Score::MIN
        } else {
            self.heap.peek().map_or(Score::MIN, |w| w.0.score)
        }
    }
}

impl SegmentCollector for SegmentTop {
    type Fruit = Vec<Hit>;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.offer(doc, score);
    }

    fn harvest(self) -> Vec<Hit> {
        self.heap.into_iter().map(|r| r.0).collect()
    }
}

impl Collector for FilteredTop {
    type Fruit = Vec<Hit>;
    type Child = SegmentTop;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentTop> {
        Ok(SegmentTop {
            k: self.k,
            segment,
            filter: SegmentFilter::open(self.filter, reader)?,
            heap: BinaryHeap::with_capacity(self.k + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Hit>>) -> tantivy::Result<Vec<Hit>> {
        let mut all: Vec<Hit> = fruits.into_iter().flatten().collect();
        all.sort_by(|a, b| b.cmp(a));
        all.truncate(self.k);
        Ok(all)
    }

    /// Drive the weight with pruning: documents that cannot beat the current k-th best are
    /// skipped in blocks when the query allows it.
    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Vec<Hit>> {
        let mut top = self.for_segment(segment, reader)?;
        let alive = reader.alive_bitset();
        weight.for_each_pruning(Score::MIN, reader, &mut |doc, score| {
            if alive.is_some_and(|a| a.is_deleted(doc)) {
                return top.bar();
            }
            top.offer(doc, score)
        })?;
        Ok(top.harvest())
    }
}

/// How many documents match `query` and pass `filter`, counting up to `cap` and looking at no
/// more than `scan` matches. Returns the count and whether it is exact.
pub(crate) fn count(
    searcher: &Searcher,
    query: &dyn Query,
    filter: Filter,
    cap: usize,
    scan: usize,
) -> tantivy::Result<(usize, bool)> {
    let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
    let (mut counted, mut scanned) = (0usize, 0usize);
    for reader in searcher.segment_readers() {
        let sf = SegmentFilter::open(filter, reader)?;
        let alive = reader.alive_bitset();
        let mut scorer = weight.scorer(reader, 1.0)?;
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if counted >= cap || scanned >= scan {
                return Ok((counted, false));
            }
            scanned += 1;
            if !alive.is_some_and(|a| a.is_deleted(doc)) && sf.accepts(doc) {
                counted += 1;
            }
            doc = scorer.advance();
        }
    }
    Ok((counted, true))
}

/// The terms of `field` within `distance` edits of `word` (a swap of two letters is one edit),
/// with their document frequency across the index: at most `max`, the most frequent first.
pub(crate) fn fuzzy_terms(
    searcher: &Searcher,
    field: Field,
    word: &str,
    distance: u8,
    max: usize,
) -> tantivy::Result<Vec<(String, u64)>> {
    let q = FuzzyTermQuery::new(Term::from_field_text(field, word), distance, true);
    let mut found = BTreeMap::new();
    for reader in searcher.segment_readers() {
        let inverted = reader.inverted_index(field)?;
        let mut stream = inverted.terms().search(q.automaton()?).into_stream()?;
        while let Some((key, info)) = stream.next() {
            *found.entry(key.to_vec()).or_insert(0u64) += u64::from(info.doc_freq);
        }
    }
    Ok(most_frequent(found, max))
}

/// The terms of `field` starting with `prefix`, as [`fuzzy_terms`]. Looks at no more than
/// `SCAN` dictionary entries per segment, so a one-letter prefix costs no more than a longer one.
pub(crate) fn prefix_terms(
    searcher: &Searcher,
    field: Field,
    prefix: &str,
    max: usize,
) -> tantivy::Result<Vec<(String, u64)>> {
    const SCAN: usize = 2_000;
    let mut found = BTreeMap::new();
    for reader in searcher.segment_readers() {
        let inverted = reader.inverted_index(field)?;
        let mut stream = inverted
            .terms()
            .range()
            .ge(prefix.as_bytes())
            .into_stream()?;
        let mut seen = 0;
        while let Some((key, info)) = stream.next() {
            seen += 1;
            if !key.starts_with(prefix.as_bytes()) || seen > SCAN {
                break;
            }
            *found.entry(key.to_vec()).or_insert(0u64) += u64::from(info.doc_freq);
        }
    }
    Ok(most_frequent(found, max))
}

fn most_frequent(found: BTreeMap<Vec<u8>, u64>, max: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = found
        .into_iter()
        .filter_map(|(k, n)| String::from_utf8(k).ok().map(|k| (k, n)))
        .collect();
    // Stable: equally frequent terms stay in dictionary order.
    v.sort_by_key(|t| std::cmp::Reverse(t.1));
    v.truncate(max);
    v
}
