//! Usage accounting of reads: the thread CPU time a read's future takes
//! ([`cpu_time_of`]) and its split among the read's tenants ([`split_by_weight`]).
//!
//! The CPU time is the thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) spent inside each poll
//! of the future, wherever the runtime runs it; time spent waiting (for IO, a lock or a CPU)
//! is not counted. A read of several tenants splits its CPU time among them in proportion to
//! the samples it scanned of each (evenly when it scanned none).

use std::time::Duration;

/// CPU time the calling thread has used so far.
#[cfg(unix)]
pub fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Thread CPU time is not measured on this platform: always zero.
#[cfg(not(unix))]
pub fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

/// Runs `fut` and returns its output with the thread CPU time its polls took (wherever
/// the runtime ran them: each poll is measured on its own thread).
pub async fn cpu_time_of<F: Future>(fut: F) -> (F::Output, Duration) {
    let mut fut = std::pin::pin!(fut);
    let mut spent = Duration::ZERO;
    let out = std::future::poll_fn(|cx| {
        let start = thread_cpu_time();
        let r = fut.as_mut().poll(cx);
        spent += thread_cpu_time().saturating_sub(start);
        r
    })
    .await;
    (out, spent)
}

/// Splits `total` among tenants in proportion to `weights` (evenly when they are all 0).
pub fn split_by_weight<'a, T>(
    total: Duration,
    weights: &'a [(T, u64)],
) -> impl Iterator<Item = (&'a T, f64)> + 'a {
    let secs = total.as_secs_f64();
    let sum: u64 = weights.iter().map(|(_, w)| *w).sum();
    let n = weights.len().max(1) as f64;
    weights.iter().map(move |(t, w)| {
        let share = if sum == 0 {
            secs / n
        } else {
            secs * (*w as f64) / (sum as f64)
        };
        (t, share)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cpu_time_counts_work_not_waiting() {
        // Work: hashing until the thread clock has moved by at least 5 ms.
        let (x, busy) = cpu_time_of(async {
            let start = thread_cpu_time();
            let mut x = 0u64;
            while thread_cpu_time() - start < Duration::from_millis(5) {
                for i in 0..10_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
                }
            }
            x
        })
        .await;
        std::hint::black_box(x);
        assert!(busy >= Duration::from_millis(5), "{busy:?}");
        // Waiting: a 100 ms sleep costs next to no CPU.
        let ((), idle) = cpu_time_of(tokio::time::sleep(Duration::from_millis(100))).await;
        assert!(idle < Duration::from_millis(50), "{idle:?}");
    }

    #[test]
    fn cpu_split_by_samples() {
        let s = Duration::from_secs(3);
        let w = [("a", 1u64), ("b", 2)];
        let got: Vec<(&&str, f64)> = split_by_weight(s, &w).collect();
        assert_eq!(got, [(&"a", 1.0), (&"b", 2.0)]);
        let w = [("a", 0u64), ("b", 0)];
        let got: Vec<f64> = split_by_weight(s, &w).map(|(_, v)| v).collect();
        assert_eq!(got, [1.5, 1.5]);
        let empty: [(&str, u64); 0] = [];
        assert_eq!(split_by_weight(s, &empty).count(), 0);
    }
}
