//! [`DecodeBudget`]: the bytes that requests being decoded may hold at once, across every
//! tenant. A request reserves its decompressed size before decompressing and the estimated
//! size of its decoded structures before decoding them; a reservation that does not fit is
//! refused at once (never queued), so a burst of requests cannot take memory without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::IntGauge;

use crate::limits::{LimitError, LimitKind};

/// Default budget: 256 MiB.
pub const DEFAULT_MAX_INFLIGHT_DECODE_BYTES: usize = 256 << 20;

/// The flag that sets the budget, named in refusals.
const FLAG: &str = "--receive.max-inflight-decode-bytes";

/// The name of the limit in refusals and in the rejection metric.
const LIMIT: &str = "max_inflight_decode_bytes";

#[derive(Debug)]
struct Inner {
    max: AtomicUsize,
    used: AtomicUsize,
    /// Exports `used`, when set.
    gauge: Option<IntGauge>,
}

/// `n` bytes as a gauge change.
fn gauge_bytes(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The process-wide decoding budget (cheap to clone: clones share it).
#[derive(Clone, Debug)]
pub(crate) struct DecodeBudget(Arc<Inner>);

impl DecodeBudget {
    /// A budget of `max` bytes; 0 is unlimited.
    pub(crate) fn new(max: usize) -> Self {
        Self(Arc::new(Inner {
            max: AtomicUsize::new(max),
            used: AtomicUsize::new(0),
            gauge: None,
        }))
    }

    /// A budget of `max` bytes whose use `gauge` follows.
    pub(crate) fn with_gauge(max: usize, gauge: IntGauge) -> Self {
        Self(Arc::new(Inner {
            max: AtomicUsize::new(max),
            used: AtomicUsize::new(0),
            gauge: Some(gauge),
        }))
    }

    /// Changes the budget; reservations already held stay.
    pub(crate) fn set_max(&self, max: usize) {
        self.0.max.store(max, Ordering::Relaxed);
    }

    /// Bytes reserved now.
    pub(crate) fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// An empty reservation, grown with [`Reservation::grow`].
    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// Bytes held by one request; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: DecodeBudget,
    bytes: usize,
}

impl Reservation {
    /// Reserves `more` bytes for this request: refused with 413 when the request alone needs
    /// more than the whole budget, with 429 when other requests hold too much of it now.
    pub fn grow(&mut self, more: usize) -> Result<(), LimitError> {
        let inner = &self.budget.0;
        let max = inner.max.load(Ordering::Relaxed);
        let want = self.bytes.saturating_add(more);
        if max == 0 {
            inner.used.fetch_add(more, Ordering::AcqRel);
            if let Some(g) = &inner.gauge {
                g.add(gauge_bytes(more));
            }
            self.bytes = want;
            return Ok(());
        }
        if want > max {
            return Err(LimitError::new(
                LIMIT,
                LimitKind::TooLarge,
                format!(
                    "decoding the request needs about {want} bytes, more than the \
                     {max} bytes of {FLAG}; send smaller requests"
                ),
            ));
        }
        let mut used = inner.used.load(Ordering::Acquire);
        loop {
            if used.saturating_add(more) > max {
                return Err(LimitError::new(
                    LIMIT,
                    LimitKind::Rate {
                        retry_after_secs: 1,
                    },
                    format!(
                        "{used} bytes of requests are being decoded, {more} more would \
                         exceed the {max} bytes of {FLAG}; retry later"
                    ),
                ));
            }
            match inner.used.compare_exchange_weak(
                used,
                used + more,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        if let Some(g) = &inner.gauge {
            g.add(gauge_bytes(more));
        }
        self.bytes = want;
        Ok(())
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::AcqRel);
        if let Some(g) = &self.budget.0.gauge {
            g.sub(gauge_bytes(self.bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_or_are_refused_without_waiting() {
        let b = DecodeBudget::new(100);
        let mut r1 = b.reservation();
        r1.grow(60).unwrap();
        let mut r2 = b.reservation();
        let e = r2.grow(50).unwrap_err();
        assert_eq!(
            e.kind,
            LimitKind::Rate {
                retry_after_secs: 1
            }
        );
        assert!(e.message.contains(FLAG), "{e}");
        assert_eq!(r2.bytes(), 0);
        r2.grow(40).unwrap();
        assert_eq!(b.used(), 100);
        // More than the whole budget is too large, whatever the others hold.
        let e = b.reservation().grow(101).unwrap_err();
        assert_eq!((e.limit, e.kind), (LIMIT, LimitKind::TooLarge));
        drop(r1);
        assert_eq!(b.used(), 40);
        r2.grow(60).unwrap();
        drop(r2);
        assert_eq!(b.used(), 0);
        // 0: unlimited, still counted.
        b.set_max(0);
        let mut r = b.reservation();
        r.grow(usize::MAX / 2).unwrap();
        assert_eq!(b.used(), usize::MAX / 2);
        drop(r);
        assert_eq!(b.used(), 0);
    }
}
