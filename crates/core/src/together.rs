//! Writing together (group commit): pieces of work submitted at the same moment — orders being
//! placed, jobs being claimed and completed, messages' delivery outcomes — are written in one
//! transaction, so they share one durable commit (one sync of the log) instead of each waiting
//! for the writer and syncing on its own.
//!
//! Language: a *piece* is one unit of work that would otherwise be its own transaction; the
//! *group* holds the pieces waiting to be written; a *batch* is what one transaction writes —
//! every piece waiting when the transaction starts, up to [`MAX_BATCH`].
//!
//! Only on SQLite, which has one writer: there every transaction waits for the one before it,
//! and both the statements and the sync are paid once per transaction. PostgreSQL runs
//! transactions side by side and groups their log flushes itself (one queue there measured a
//! third slower for orders), so each piece keeps its own transaction.
//!
//! Shape: each [`crate::Ctx`] carries a [`Group`]; its task starts on the first piece. A batch of
//! one is written as its own transaction. In a larger batch each piece is written under a
//! savepoint: a piece that fails (an order sold out, the same form twice) is undone alone and the
//! others go on. Every answer — success or refusal — is sent after the commit, so nothing is
//! acknowledged before it is durable (DUR-1), and a refusal that depends on another piece of the
//! batch is only told once that piece is visible. When the batch's own transaction fails (cannot
//! begin, cannot commit), none of it was written and each piece is written again alone.
//!
//! Rule for a piece: it writes through the transaction and the [`Writes`] it is given, never
//! through `ctx.db.write()` (the group's transaction holds SQLite's one writer connection), and
//! it may be written more than once (a failed batch is written again piece by piece; only the
//! last attempt is kept).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use yiren_store::engine::{rollback_to_savepoint, savepoint, savepoint_again};
use yiren_store::{Engine, StoreError, Tx, Writes};

use crate::error::{DomainError, DomainResult};
use crate::Ctx;

/// The savepoint each piece of a batch is written under.
const EACH: &str = "one_piece";

/// The most pieces one transaction writes.
pub const MAX_BATCH: usize = 32;

/// One unit of work written in a transaction shared with others.
pub trait Piece: Send + Sync + 'static {
    /// What the caller gets back once the piece is committed.
    type Out: Send + 'static;
    /// Its name in the figures (`yiren_commit_pieces_total{piece}`) and in
    /// [`Group::shared_commits`].
    const NAME: &'static str;
    /// Write the piece in `tx`; writes whose results nobody reads go to `w`, which the group runs
    /// right after (with the next piece's savepoint, in one round trip on SQLite).
    fn write<'a>(
        &'a self,
        ctx: &'a Ctx,
        tx: &'a mut Tx,
        w: &'a mut Writes,
    ) -> BoxFuture<'a, DomainResult<Self::Out>>;
}

/// A piece with its answer, its type forgotten so pieces of every kind share a batch.
trait Waiting: Send {
    fn name(&self) -> &'static str;
    /// Write the piece; its output is kept until [`Waiting::answer`].
    fn write<'a>(
        &'a mut self,
        ctx: &'a Ctx,
        tx: &'a mut Tx,
        w: &'a mut Writes,
    ) -> BoxFuture<'a, DomainResult<()>>;
    /// Send the answer: the kept output when `r` is Ok.
    fn answer(self: Box<Self>, r: DomainResult<()>);
}

struct Typed<P: Piece> {
    piece: P,
    out: Option<P::Out>,
    answer: oneshot::Sender<DomainResult<P::Out>>,
}

impl<P: Piece> Waiting for Typed<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn write<'a>(
        &'a mut self,
        ctx: &'a Ctx,
        tx: &'a mut Tx,
        w: &'a mut Writes,
    ) -> BoxFuture<'a, DomainResult<()>> {
        Box::pin(async move {
            self.out = None;
            self.out = Some(self.piece.write(ctx, tx, w).await?);
            Ok(())
        })
    }

    fn answer(self: Box<Self>, r: DomainResult<()>) {
        let Typed { out, answer, .. } = *self;
        let r = r.and_then(|()| {
            out.ok_or_else(|| {
                DomainError::Store(StoreError::Corrupt("a written piece kept no output".into()))
            })
        });
        let _ = answer.send(r);
    }
}

/// The pieces waiting to be written, one group per [`crate::Ctx`] (clones share it).
#[derive(Clone, Default)]
pub struct Group {
    sender: Arc<OnceLock<mpsc::UnboundedSender<Box<dyn Waiting>>>>,
    counts: Arc<Counts>,
}

/// How many commits were shared.
#[derive(Default)]
struct Counts {
    /// Per piece name: commits that wrote more than one piece of that name.
    shared: Mutex<BTreeMap<&'static str, u64>>,
    /// Commits that wrote more than one piece, whatever their names.
    shared_any: AtomicU64,
}

impl Group {
    /// How many commits so far wrote more than one piece named `name`.
    pub fn shared_commits(&self, name: &str) -> u64 {
        self.counts
            .shared
            .lock()
            .expect("not poisoned")
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// How many commits so far wrote more than one piece.
    pub fn shared_commits_any(&self) -> u64 {
        self.counts.shared_any.load(Ordering::Relaxed)
    }
}

/// Write `piece` with the pieces submitted at the same moment; the answer comes after the commit.
pub async fn write<P: Piece>(ctx: &Ctx, piece: P) -> DomainResult<P::Out> {
    if ctx.db.engine() != Engine::Sqlite {
        return alone_typed(ctx, &piece).await;
    }
    let group = ctx.together.clone();
    let sender = group.sender.get_or_init(|| start(ctx, &group));
    let (answer, answered) = oneshot::channel();
    let waiting: Box<dyn Waiting> = Box::new(Typed {
        piece,
        out: None,
        answer,
    });
    if let Err(mpsc::error::SendError(mut w)) = sender.send(waiting) {
        // The task is gone (its runtime stopped): write this piece alone.
        let r = alone(ctx, w.as_mut()).await;
        w.answer(r);
    }
    answered.await.unwrap_or_else(|_| {
        // The task is gone with what it held (its transaction rolled back): nothing written.
        Err(DomainError::Store(StoreError::Corrupt(
            "the write queue stopped before answering".into(),
        )))
    })
}

/// Start the group's writer: a thread of its own with a one-thread runtime, so that between the
/// statements of a batch the writer never waits for a runtime worker busy with requests (each
/// statement is a hand-off to SQLite's connection thread and back; the checkout benchmark's
/// whole flow measured 625–661 loops/s on a runtime worker, 839–981 on this thread). Its [`Ctx`]
/// has no group of its own (a piece never writes through another group), so the channel
/// closes, and the thread ends, when every other `Ctx` is gone.
fn start(ctx: &Ctx, group: &Group) -> mpsc::UnboundedSender<Box<dyn Waiting>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut own = ctx.clone();
    own.together = Group::default();
    let counts = group.counts.clone();
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            std::thread::Builder::new()
                .name("yiren-writer".into())
                .spawn(move || rt.block_on(run(own, rx, counts)))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = started {
        // The receiver is gone with it: `write` then writes each piece alone.
        tracing::error!(error = %e, "cannot start the writer thread; pieces are written alone");
    }
    tx
}

async fn run(ctx: Ctx, mut rx: mpsc::UnboundedReceiver<Box<dyn Waiting>>, counts: Arc<Counts>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        for p in &batch {
            metrics::counter!("yiren_commit_pieces_total", "piece" => p.name()).increment(1);
        }
        if batch.len() == 1 {
            let mut p = batch.remove(0);
            let r = alone(&ctx, p.as_mut()).await;
            p.answer(r);
            continue;
        }
        metrics::histogram!("yiren_pieces_per_commit").record(batch.len() as f64);
        match together(&ctx, &mut batch).await {
            Ok(answers) => {
                count_shared(&counts, &batch);
                for (p, r) in batch.into_iter().zip(answers) {
                    p.answer(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, pieces = batch.len(), "writing together failed; writing the pieces one by one");
                for mut p in batch {
                    let r = alone(&ctx, p.as_mut()).await;
                    p.answer(r);
                }
            }
        }
    }
}

fn count_shared(counts: &Counts, batch: &[Box<dyn Waiting>]) {
    counts.shared_any.fetch_add(1, Ordering::Relaxed);
    let mut names: BTreeMap<&'static str, u64> = BTreeMap::new();
    for p in batch {
        *names.entry(p.name()).or_default() += 1;
    }
    let mut shared = counts.shared.lock().expect("not poisoned");
    for (name, n) in names {
        if n > 1 {
            *shared.entry(name).or_default() += 1;
        }
    }
}

/// One piece in its own transaction.
async fn alone(ctx: &Ctx, p: &mut dyn Waiting) -> DomainResult<()> {
    let mut tx = ctx.db.begin().await?;
    let mut w = Writes::new();
    p.write(ctx, &mut tx, &mut w).await?;
    w.run(&mut tx).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

async fn alone_typed<P: Piece>(ctx: &Ctx, p: &P) -> DomainResult<P::Out> {
    let mut tx = ctx.db.begin().await?;
    let mut w = Writes::new();
    let out = p.write(ctx, &mut tx, &mut w).await?;
    w.run(&mut tx).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(out)
}

/// The batch in one transaction, each piece under a savepoint. Err: nothing was written.
async fn together(
    ctx: &Ctx,
    batch: &mut [Box<dyn Waiting>],
) -> DomainResult<Vec<DomainResult<()>>> {
    let mut tx = ctx.db.begin().await?;
    let mut answers = Vec::with_capacity(batch.len());
    savepoint(&mut tx, EACH).await?;
    for p in batch.iter_mut() {
        let mut w = Writes::new();
        let written = match p.write(ctx, &mut tx, &mut w).await {
            Ok(()) => {
                // The piece's writes and the next piece's savepoint: one round trip.
                savepoint_again(&mut w, EACH);
                w.run(&mut tx).await.map_err(DomainError::from)
            }
            Err(e) => Err(e),
        };
        if written.is_err() {
            rollback_to_savepoint(&mut tx, EACH).await?;
        }
        answers.push(written);
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(answers)
}
