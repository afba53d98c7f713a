//! Placing orders together (group commit): the orders submitted at the same moment are written in
//! one transaction, so they share one durable commit (one sync of the log) instead of waiting for
//! the writer one after another.
//!
//! Language: the *queue* holds the orders waiting to be written; a *batch* is what one
//! transaction writes — every order waiting when the transaction starts, up to [`MAX_BATCH`].
//!
//! Only on SQLite, which has one writer: there every transaction waits for the one before it,
//! and the order's statements, not the sync, are most of that wait — writing the waiting orders
//! one after another in one transaction spares a sync and a `BEGIN` per order (the checkout
//! benchmark: about +18 %, p99 −20 %). PostgreSQL runs the orders' transactions side by side and
//! groups their log flushes itself; putting them in one queue there measured slower (a third
//! fewer orders per second), so each order keeps its own transaction.
//!
//! Shape: each [`crate::Ctx`] carries a [`Queue`]; its task starts on the first order. A batch of
//! one is written as before (its own transaction). In a larger batch each order is written under
//! a savepoint: an order that cannot be placed (sold out, a code used up, the same form twice) is
//! undone alone and the others go on. Every answer — success or refusal — is sent after the
//! commit, so nothing is acknowledged before it is durable (DUR-1), and a refusal that depends on
//! another order of the batch (the same checkout token) is only told once that order is visible.
//! When the batch's own transaction fails (cannot begin, cannot commit), none of it was written
//! and each order is written again alone, with its own answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use yiren_store::engine::{rollback_to_savepoint, savepoint, savepoint_again};
use yiren_store::order::OrderRow;
use yiren_store::{Engine, StoreError, Writes};

use super::{place_in, Config, Quote, Submit};
use crate::error::{DomainError, DomainResult};
use crate::Ctx;

/// The savepoint each order of a batch is written under.
const EACH: &str = "one_order";

/// The most orders one transaction writes.
pub const MAX_BATCH: usize = 32;

/// An order to write: everything [`place_in`] needs, owned.
pub(super) struct Work {
    pub ctx: Ctx,
    pub submit: Submit,
    pub token: String,
    pub email: String,
    pub quote: Quote,
    pub config: Config,
}

impl Work {
    /// Write the order in `tx`, its inserts left in `w` for the caller to run.
    async fn write(&self, tx: &mut yiren_store::Tx, w: &mut Writes) -> DomainResult<OrderRow> {
        place_in(
            &self.ctx,
            tx,
            w,
            &self.submit,
            (&self.token, &self.email),
            &self.quote,
            &self.config,
        )
        .await
    }
}

struct Pending {
    work: Work,
    answer: oneshot::Sender<DomainResult<OrderRow>>,
}

/// The orders waiting to be written, one queue per [`crate::Ctx`] (clones share it).
#[derive(Clone, Default)]
pub struct Queue {
    sender: Arc<OnceLock<mpsc::UnboundedSender<Pending>>>,
    shared_commits: Arc<AtomicU64>,
}

impl Queue {
    /// How many commits so far wrote more than one order.
    pub fn shared_commits(&self) -> u64 {
        self.shared_commits.load(Ordering::Relaxed)
    }
}

/// Write `work` with the orders submitted at the same moment; the answer comes after the commit.
pub(super) async fn place(work: Work) -> DomainResult<OrderRow> {
    if work.ctx.db.engine() != Engine::Sqlite {
        return alone(&work).await;
    }
    let queue = work.ctx.placing.clone();
    let sender = queue.sender.get_or_init(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, queue.shared_commits.clone()));
        tx
    });
    let (answer, answered) = oneshot::channel();
    match sender.send(Pending { work, answer }) {
        Ok(()) => answered.await.unwrap_or_else(|_| {
            // The task is gone with what it held (its transaction rolled back): nothing written.
            Err(DomainError::Store(StoreError::Corrupt(
                "the order queue stopped before answering".into(),
            )))
        }),
        // The task is gone (its runtime stopped): write this order alone.
        Err(mpsc::error::SendError(p)) => alone(&p.work).await,
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Pending>, shared_commits: Arc<AtomicU64>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        if batch.len() == 1 {
            let p = batch.remove(0);
            let r = alone(&p.work).await;
            let _ = p.answer.send(r);
            continue;
        }
        metrics::histogram!("yiren_orders_per_commit").record(batch.len() as f64);
        match together(&batch).await {
            Ok(answers) => {
                shared_commits.fetch_add(1, Ordering::Relaxed);
                for (p, r) in batch.into_iter().zip(answers) {
                    let _ = p.answer.send(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, orders = batch.len(), "writing orders together failed; writing them one by one");
                for p in batch {
                    let r = alone(&p.work).await;
                    let _ = p.answer.send(r);
                }
            }
        }
    }
}

/// One order in its own transaction.
async fn alone(w: &Work) -> DomainResult<OrderRow> {
    let mut tx = w.ctx.db.begin().await?;
    let mut writes = Writes::new();
    let row = w.write(&mut tx, &mut writes).await?;
    writes.run(&mut tx).await?;
    tx.commit().await.map_err(StoreError::from)?;
    crate::catalog::stock_changed();
    Ok(row)
}

/// The batch in one transaction, each order under a savepoint. Err: nothing was written.
async fn together(batch: &[Pending]) -> DomainResult<Vec<DomainResult<OrderRow>>> {
    let mut tx = batch[0].work.ctx.db.begin().await?;
    let mut answers = Vec::with_capacity(batch.len());
    savepoint(&mut tx, EACH).await?;
    for p in batch {
        let mut w = Writes::new();
        let written = match p.work.write(&mut tx, &mut w).await {
            Ok(row) => {
                // The order's inserts and the next order's savepoint: one round trip.
                savepoint_again(&mut w, EACH);
                w.run(&mut tx)
                    .await
                    .map(|()| row)
                    .map_err(DomainError::from)
            }
            Err(e) => Err(e),
        };
        if written.is_err() {
            rollback_to_savepoint(&mut tx, EACH).await?;
        }
        answers.push(written);
    }
    tx.commit().await.map_err(StoreError::from)?;
    crate::catalog::stock_changed();
    Ok(answers)
}
