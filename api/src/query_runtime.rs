//! The runtime queries are evaluated on: a tokio runtime of its own, with one worker per
//! core and worker stacks sized for the nesting limit
//! ([`hypnos_engine::QUERY_THREAD_STACK`]), so that the heaviest queries take only its
//! threads and remote writes, `/-/healthy` and `/metrics` keep answering on the server's
//! runtime. A query handed over with [`spawn`] is cancelled when its [`QueryTask`] is
//! dropped (the client went away, or the handler gave up waiting): its task is aborted and
//! its cancellation flag raised, which the operators check as they run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;

use super::errors::ApiError;

/// The query runtime, built on first use; `Err` with the reason when it could not be.
fn handle() -> Result<Handle, ApiError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
            tracing::info!(
                workers,
                stack_mib = hypnos_engine::QUERY_THREAD_STACK >> 20,
                "starting the query runtime"
            );
            hypnos_engine::query_runtime(workers).map_err(|e| e.to_string())
        })
        .as_ref()
        .map(|r| r.handle().clone())
        .map_err(|e| {
            ApiError::Query(hypnos_planner::QueryError::Internal(format!(
                "the query runtime could not start: {e}"
            )))
        })
}

/// A query running on the query runtime; dropping it cancels the query.
pub(super) struct QueryTask<T> {
    handle: JoinHandle<(T, Duration)>,
    cancel: Arc<AtomicBool>,
}

/// Runs `fut` on the query runtime, measuring the CPU time its polls take
/// ([`hypnos_tenancy::usage::cpu_time_of`]). `cancel` is raised when the task is dropped.
pub(super) fn spawn<F>(cancel: Arc<AtomicBool>, fut: F) -> Result<QueryTask<F::Output>, ApiError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = handle()?.spawn(hypnos_tenancy::usage::cpu_time_of(fut));
    Ok(QueryTask { handle, cancel })
}

impl<T> QueryTask<T> {
    /// The query's output and the CPU time it took; an internal error when it panicked.
    pub(super) async fn join(mut self) -> Result<(T, Duration), ApiError> {
        (&mut self.handle).await.map_err(|e| {
            tracing::error!(error = %e, "a query task failed");
            ApiError::Query(hypnos_planner::QueryError::Internal(format!(
                "the query failed: {e}"
            )))
        })
    }
}

impl<T> Drop for QueryTask<T> {
    fn drop(&mut self) {
        if !self.handle.is_finished() {
            self.cancel.store(true, Ordering::Relaxed);
            self.handle.abort();
        }
    }
}
