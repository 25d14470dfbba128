//! The runtime queries run on: a multi-threaded tokio runtime of its own, so that heavy
//! queries take its threads only and never the ones that answer writes and health checks,
//! with worker stacks sized for the deepest query the nesting limit lets through
//! ([`hypnos_planner::MAX_NESTING_DEPTH`]).

/// The stack of each query thread. Lowering, planning and running a query recurse once or
/// a few times per level of nesting; a query at the nesting limit needs a fraction of this
/// (the test `queries_at_the_nesting_limit_run_on_query_threads` runs them on a quarter of
/// it, in the debug build). Only the pages a query touches are ever committed.
pub const QUERY_THREAD_STACK: usize = 64 << 20;

/// A runtime of `workers` query threads (at least one) with [`QUERY_THREAD_STACK`] each.
pub fn query_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    query_runtime_with_stack(workers, QUERY_THREAD_STACK)
}

/// [`query_runtime`] with another stack size (tests).
pub fn query_runtime_with_stack(
    workers: usize,
    stack: usize,
) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .max_blocking_threads(workers.max(1))
        .thread_stack_size(stack)
        .thread_name("hypnos-query")
        .enable_all()
        .build()
}
