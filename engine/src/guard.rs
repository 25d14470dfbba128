//! [`QueryGuard`]: the deadline, the cancellation flag and the bound on the points of one
//! query, checked by the operators while they compute, so that a CPU-bound query stops
//! within a small margin of its timeout (or as soon as its caller gives up) and never
//! holds more points than it may.
//!
//! `PromExec` installs the query's guard for the duration of each poll of an operator's
//! output ([`GuardedStream`]), when it also checks the deadline and counts the points the
//! operator produced; the operators' loops call [`checkpoint`] per series and every
//! [`CHECK_EVERY`] steps, and [`hold`] with the points they built so far. Operators are
//! synchronous within a poll, so the guard of the poll is the guard of the query.
//!
//! Besides each operator's own bound, the guard keeps a query-wide count of the points
//! held at once: the points an operator received from its inputs ([`Inputs`]) count from
//! the moment they are handed over until that operator is done (its output ended, failed
//! or was dropped), since every operator keeps its inputs whole while it computes. So
//! `m + (m + (m + ...))`, whose every level holds its left side while the right one is
//! evaluated, is bounded as a whole, not level by level.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use hypnos_planner::ops::EvalError;
use thiserror::Error;

use crate::QueryBudget;

/// How many steps (or samples) an operator's loop runs between two checks of the guard.
pub const CHECK_EVERY: usize = 4096;

/// Prometheus' error when a query would hold more samples than `--query.max-samples`.
pub const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// The query ran past its deadline or was cancelled while operators were running.
#[derive(Debug, Error)]
pub enum Interrupted {
    /// Past the deadline.
    #[error("query timed out in query execution")]
    Timeout,
    /// The caller gave up on the query.
    #[error("query cancelled")]
    Cancelled,
}

/// The limits one query's operators check as they run.
#[derive(Debug)]
pub struct QueryGuard {
    deadline: Option<Instant>,
    cancel: Arc<AtomicBool>,
    /// The most points one operator may hold; 0: unlimited.
    max_points: usize,
    /// The budget whose `max_samples_per_query` set `max_points`, marked when it stops
    /// the query.
    budget: Option<Arc<QueryBudget>>,
    /// The points handed from operators to their consumers and not yet released
    /// ([`Inputs`]), held against `max_points` for the whole query.
    held: AtomicUsize,
}

impl QueryGuard {
    /// A guard that stops the query at `deadline`, when `cancel` is raised, or when an
    /// operator holds more than `max_points` points (0: unlimited). When `budget` is given
    /// and its `max_samples_per_query` is stricter, that is the bound, and the budget
    /// records that it stopped the query.
    pub fn new(
        deadline: Option<Instant>,
        cancel: Arc<AtomicBool>,
        max_points: usize,
        budget: Option<Arc<QueryBudget>>,
    ) -> Self {
        let tenant_max = budget.as_ref().map_or(0, |b| b.max_samples());
        let (max_points, budget) = match (max_points, tenant_max) {
            (_, 0) => (max_points, None),
            (0, t) => (t, budget),
            (m, t) if t <= m => (t, budget),
            (m, _) => (m, None),
        };
        Self {
            deadline,
            cancel,
            max_points,
            budget,
            held: AtomicUsize::new(0),
        }
    }

    /// The points held across the query's operators at the moment ([`Inputs`]).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Adds `points` handed to an operator to the query-wide count; an error when the
    /// query would then hold more than it may.
    fn take(&self, points: usize) -> Result<()> {
        let held = self
            .held
            .fetch_add(points, Ordering::Relaxed)
            .saturating_add(points);
        self.check_points(held)
    }

    /// Releases `points` taken with [`Self::take`].
    fn give_back(&self, points: usize) {
        // Never below zero, whatever the order of releases.
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(points))
            });
    }

    /// An error once the query is past its deadline or cancelled.
    pub fn check(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(DataFusionError::External(Box::new(Interrupted::Cancelled)));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(DataFusionError::External(Box::new(Interrupted::Timeout)));
        }
        Ok(())
    }

    /// An error when one operator would hold `points` points, more than it may.
    pub fn check_points(&self, points: usize) -> Result<()> {
        if self.max_points > 0 && points > self.max_points {
            if let Some(b) = &self.budget {
                b.mark_exceeded("max_samples_per_query");
            }
            return Err(DataFusionError::External(Box::new(EvalError(
                TOO_MANY_SAMPLES.into(),
            ))));
        }
        Ok(())
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<QueryGuard>>> = const { RefCell::new(None) };
}

/// Runs `f` with `guard` as the guard of this thread's operators.
pub fn scoped<R>(guard: &Arc<QueryGuard>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(Some(Arc::clone(guard))));
    // Restored even when `f` unwinds.
    struct Restore(Option<Arc<QueryGuard>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Checks the deadline and cancellation of the query running on this thread (nothing
/// outside a query).
pub fn checkpoint() -> Result<()> {
    CURRENT.with(|c| c.borrow().as_ref().map_or(Ok(()), |g| g.check()))
}

/// [`checkpoint`], and an error when the operator holds `points` points, more than the
/// query may.
pub fn hold(points: usize) -> Result<()> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .map_or(Ok(()), |g| g.check().and_then(|()| g.check_points(points)))
    })
}

/// The points one operator received from its inputs, counted in the query-wide total of
/// its [`QueryGuard`] from the moment each batch is handed over ([`Inputs::counted`])
/// until the operator is done ([`Inputs::release`], called by its [`GuardedStream`] when
/// its output ends, fails or is dropped).
#[derive(Debug)]
pub struct Inputs {
    guard: Arc<QueryGuard>,
    taken: Arc<AtomicUsize>,
}

impl Inputs {
    /// No points received yet, for an operator of the query of `guard`.
    pub fn new(guard: Arc<QueryGuard>) -> Self {
        Self {
            guard,
            taken: Arc::default(),
        }
    }

    /// `input`, counting the points of each batch it hands over against the query-wide
    /// bound (an error in the stream once the query would hold too many).
    pub fn counted(&self, input: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = input.schema();
        let (guard, taken) = (Arc::clone(&self.guard), Arc::clone(&self.taken));
        let counted = futures::StreamExt::map(input, move |b| {
            let b = b?;
            let n = b.num_rows();
            taken.fetch_add(n, Ordering::Relaxed);
            guard.take(n)?;
            Ok(b)
        });
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, counted))
    }

    /// Gives back every point received so far (the operator is done with them).
    pub fn release(&self) {
        let n = self.taken.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.guard.give_back(n);
        }
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        self.release();
    }
}

/// An operator's output stream under the query's guard: each poll runs with the guard
/// installed ([`scoped`]), after a check of the deadline, and the points the operator has
/// produced so far are held against the query's bound. The points of its inputs are
/// released once its output has ended or failed (or when it is dropped).
pub struct GuardedStream {
    inner: SendableRecordBatchStream,
    guard: Arc<QueryGuard>,
    points: usize,
    inputs: Option<Inputs>,
}

impl GuardedStream {
    /// `inner` under `guard`; `inputs` counts what the operator received from its inputs.
    pub fn new(
        inner: SendableRecordBatchStream,
        guard: Arc<QueryGuard>,
        inputs: Option<Inputs>,
    ) -> Self {
        Self {
            inner,
            guard,
            points: 0,
            inputs,
        }
    }

    /// The operator is done: its inputs' points no longer count.
    fn done(&mut self) {
        if let Some(i) = self.inputs.take() {
            i.release();
        }
    }
}

impl Stream for GuardedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Err(e) = self.guard.check() {
            self.done();
            return Poll::Ready(Some(Err(e)));
        }
        let this = &mut *self;
        let polled = scoped(&this.guard, || this.inner.as_mut().poll_next(cx));
        match &polled {
            Poll::Ready(Some(Ok(b))) => {
                this.points = this.points.saturating_add(b.num_rows());
                if let Err(e) = this.guard.check_points(this.points) {
                    this.done();
                    return Poll::Ready(Some(Err(e)));
                }
            }
            Poll::Ready(_) => this.done(),
            Poll::Pending => {}
        }
        polled
    }
}

impl RecordBatchStream for GuardedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn checks_deadline_cancellation_and_points() {
        let cancel = Arc::new(AtomicBool::new(false));
        let g = Arc::new(QueryGuard::new(None, Arc::clone(&cancel), 10, None));
        assert!(checkpoint().is_ok(), "no guard outside a query");
        scoped(&g, || {
            assert!(hold(10).is_ok());
            let e = hold(11).unwrap_err().to_string();
            assert!(e.contains(TOO_MANY_SAMPLES), "{e}");
            cancel.store(true, Ordering::Relaxed);
            assert!(checkpoint().unwrap_err().to_string().contains("cancelled"));
        });
        assert!(checkpoint().is_ok(), "restored after the scope");
        let past = Instant::now() - Duration::from_millis(1);
        let g = QueryGuard::new(Some(past), Arc::default(), 0, None);
        assert!(g.check().unwrap_err().to_string().contains("timed out"));
        assert!(g.check_points(usize::MAX).is_ok(), "0 is unlimited");
    }

    #[test]
    fn the_stricter_bound_wins_and_the_tenant_limit_is_named() {
        let budget = Arc::new(QueryBudget::new(0, 5));
        let g = QueryGuard::new(None, Arc::default(), 100, Some(Arc::clone(&budget)));
        assert!(g.check_points(6).is_err());
        assert_eq!(budget.exceeded(), Some("max_samples_per_query"));
        let budget = Arc::new(QueryBudget::new(0, 500));
        let g = QueryGuard::new(None, Arc::default(), 100, Some(Arc::clone(&budget)));
        assert!(g.check_points(101).is_err());
        assert_eq!(budget.exceeded(), None, "the engine's bound stopped it");
    }

    #[tokio::test]
    async fn inputs_count_query_wide_until_released() {
        use arrow::array::Int64Array;
        use futures::TryStreamExt;
        let g = Arc::new(QueryGuard::new(None, Arc::default(), 5, None));
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("x", arrow::datatypes::DataType::Int64, false),
        ]));
        let batch = |n: i64| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from_iter_values(0..n))],
            )
            .unwrap()
        };
        let stream = |n: i64| -> SendableRecordBatchStream {
            Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    Arc::clone(&schema),
                    futures::stream::iter([Ok(batch(n))]),
                ),
            )
        };
        let a = Inputs::new(Arc::clone(&g));
        let got: Vec<RecordBatch> = a.counted(stream(3)).try_collect().await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(g.held(), 3, "held after the input stream is gone");
        let b = Inputs::new(Arc::clone(&g));
        let e = b.counted(stream(3)).try_collect::<Vec<_>>().await;
        assert!(e.unwrap_err().to_string().contains(TOO_MANY_SAMPLES));
        drop(b);
        a.release();
        assert_eq!(g.held(), 0);
        let c = Inputs::new(Arc::clone(&g));
        let ok = c.counted(stream(5)).try_collect::<Vec<_>>().await;
        assert!(ok.is_ok(), "within the bound once released");
    }
}
