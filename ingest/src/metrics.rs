//! The ingester's own metrics, registered into the registry the binary serves on `/metrics`.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

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
        })
    }
}
