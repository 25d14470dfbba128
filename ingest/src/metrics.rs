//! The ingester's own metrics, registered into the registry the binary serves on `/metrics`.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    pub(crate) samples: IntCounterVec,
    pub(crate) series: IntCounterVec,
    pub(crate) duplicates: IntCounterVec,
    pub(crate) exemplars: IntCounterVec,
    pub(crate) exemplars_dropped: IntCounterVec,
    pub(crate) head_exemplars: IntGaugeVec,
    pub(crate) head_series: IntGaugeVec,
    pub(crate) head_samples: IntGaugeVec,
    pub(crate) flushes: IntCounterVec,
    pub(crate) flushed_blocks: IntCounterVec,
    pub(crate) wal_fsyncs: IntCounter,
    pub(crate) wal_replayed_records: IntCounter,
    /// `hypnos_corrupt_files_total{kind}`: damaged files repaired or set aside at startup.
    pub(crate) corrupt_files: IntCounterVec,
    pub(crate) inflight_decode_bytes: IntGauge,
    /// Bytes of the segments on disk; also the size the writer checks against the budget.
    pub(crate) wal_bytes: IntGauge,
    /// `--wal.max-size` (0: unlimited); also the budget the writer reads.
    pub(crate) wal_max_bytes: IntGauge,
    pub(crate) wal_full_rejections: IntCounterVec,
    pub(crate) upload_failures: IntCounter,
    pub(crate) unflushed_bytes: IntGauge,
    pub(crate) oldest_unflushed: Gauge,
}

impl Metrics {
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge_vec = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["tenant"])?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let flushes = counter_vec(
            "hypnos_flushes_total",
            "Head flushes by result (success or failure).",
            "result",
        )?;
        // Both results are exported from the start, so rate() works before the first failure.
        flushes.with_label_values(&["success"]);
        flushes.with_label_values(&["failure"]);
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let wal_full_rejections = counter_vec(
            "hypnos_wal_full_rejections_total",
            "Remote-write requests refused with 503 because the write-ahead log could not take \
             them, by cause: max_size (at --wal.max-size), no_space (the disk is full).",
            "cause",
        )?;
        wal_full_rejections.with_label_values(&["max_size"]);
        wal_full_rejections.with_label_values(&["no_space"]);
        Ok(Self {
            samples: counter_vec(
                "hypnos_receive_samples_total",
                "Samples received in valid remote-write requests, duplicates included.",
                "tenant",
            )?,
            series: counter_vec(
                "hypnos_receive_series_total",
                "Series received in valid remote-write requests.",
                "tenant",
            )?,
            duplicates: counter_vec(
                "hypnos_receive_duplicate_samples_total",
                "Samples dropped because their series already had a sample at that timestamp.",
                "tenant",
            )?,
            exemplars: counter_vec(
                "hypnos_receive_exemplars_total",
                "Exemplars received in valid remote-write requests and kept in memory.",
                "tenant",
            )?,
            exemplars_dropped: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "hypnos_receive_exemplars_dropped_total",
                        "Exemplars dropped (the request is still accepted), by reason: \
                         label_length (label set over 128 runes), out_of_order (older than \
                         the newest of its series), duplicate.",
                    ),
                    &["tenant", "reason"],
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            head_exemplars: gauge_vec(
                "hypnos_head_exemplars",
                "Exemplars in memory (bounded by --exemplars.max-per-tenant).",
            )?,
            head_series: gauge_vec(
                "hypnos_head_series",
                "Series in memory (heads being flushed included).",
            )?,
            head_samples: gauge_vec(
                "hypnos_head_samples",
                "Samples in memory (heads being flushed included).",
            )?,
            flushes,
            flushed_blocks: counter_vec(
                "hypnos_flushed_blocks_total",
                "Blocks written from heads.",
                "tenant",
            )?,
            wal_fsyncs: counter(
                "hypnos_wal_fsyncs_total",
                "Write-ahead log fsyncs (one per group commit).",
            )?,
            wal_replayed_records: counter(
                "hypnos_wal_replayed_records_total",
                "Write-ahead log records replayed at startup.",
            )?,
            corrupt_files: {
                let c = counter_vec(
                    "hypnos_corrupt_files_total",
                    "Damaged files found at startup by kind (wal_segment: a torn or corrupt \
                     tail truncated; wal_checkpoint: unreadable, set aside), each repaired or \
                     skipped.",
                    "kind",
                )?;
                c.with_label_values(&["wal_segment"]);
                c.with_label_values(&["wal_checkpoint"]);
                c
            },
            inflight_decode_bytes: {
                let g = IntGauge::new(
                    "hypnos_receive_inflight_decode_bytes",
                    "Bytes reserved now in the decoding budget \
                     (--receive.max-inflight-decode-bytes) by remote-write requests being \
                     received, decoded, validated or logged.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            wal_bytes: gauge(
                "hypnos_wal_bytes",
                "Bytes of write-ahead log segments on disk (acknowledged data not yet in \
                 blocks, and the segment being written).",
            )?,
            wal_max_bytes: gauge(
                "hypnos_wal_max_bytes",
                "The write-ahead log budget (--wal.max-size); 0 when unlimited.",
            )?,
            wal_full_rejections,
            upload_failures: counter(
                "hypnos_upload_failures_total",
                "Head blocks whose upload to the object store failed (the head stays in \
                 memory and in the write-ahead log; the upload is retried with backoff).",
            )?,
            unflushed_bytes: gauge(
                "hypnos_unflushed_bytes",
                "Bytes of sealed write-ahead log segments whose heads are cut but not yet \
                 uploaded as blocks (0 once a flush has completed).",
            )?,
            oldest_unflushed: {
                let g = Gauge::new(
                    "hypnos_oldest_unflushed_timestamp_seconds",
                    "Timestamp of the oldest sample in a cut head waiting for its upload to \
                     the object store; 0 when no head is waiting.",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
        })
    }
}
