use super::*;

fn small() -> GenConfig {
    GenConfig {
        series: 100,
        duration_ms: 30 * 60_000,
        ..GenConfig::default()
    }
}

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let a = Dataset::generate(&small());
    let b = Dataset::generate(&small());
    assert_eq!(a, b);
    let c = Dataset::generate(&GenConfig { seed: 7, ..small() });
    assert_ne!(a.series[0].values, c.series[0].values);
    assert_eq!(a.series.len(), 2 * SERIES_PER_INSTANCE);
}

#[test]
fn scrapes_every_interval_with_small_jitter() {
    let d = Dataset::generate(&small());
    for s in &d.series {
        assert!(s.ts.len() >= 119 && s.ts.len() <= 121, "{}", s.ts.len());
        assert_eq!(s.ts.len(), s.values.len());
        for w in s.ts.windows(2) {
            let gap = w[1] - w[0];
            assert!((15_000 - 50..=15_000 + 50).contains(&gap), "gap {gap}");
        }
        assert!(s.ts.iter().any(|t| t % 1000 != 0), "millisecond jitter");
    }
}

#[test]
fn labels_sorted_and_unique_series() {
    let d = Dataset::generate(&small());
    let mut seen = std::collections::HashSet::new();
    for s in &d.series {
        assert_eq!(s.labels[0].0, "__name__");
        assert!(s.labels.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(seen.insert(s.labels.clone()), "duplicate {:?}", s.labels);
    }
}

#[test]
fn counters_monotone_and_shaped() {
    let d = Dataset::generate(&small());
    for s in &d.series {
        let name = s.name();
        if name.ends_with("_total") || name.ends_with("_bucket") || name.ends_with("_count") {
            assert!(
                s.values.windows(2).all(|w| w[0] <= w[1]),
                "{name} not monotone"
            );
        }
        if name == "node_cpu_seconds_total" {
            for v in &s.values {
                assert_eq!(
                    format!("{v}"),
                    format!("{:.2}", v)
                        .trim_end_matches('0')
                        .trim_end_matches('.')
                );
            }
        }
        if name.starts_with("node_memory_") {
            assert!(s.values.iter().all(|v| v % 4096.0 == 0.0), "{name}");
        }
        if name == "node_uname_info" || name == "node_memory_MemTotal_bytes" {
            assert!(s.values.windows(2).all(|w| w[0] == w[1]), "{name} constant");
        }
        if name == "node_network_receive_errs_total" {
            let moves = s.values.windows(2).filter(|w| w[0] != w[1]).count();
            assert!(moves <= 5, "errors move rarely, moved {moves}");
        }
    }
    let idle = d
        .series
        .iter()
        .find(|s| s.label("mode") == Some("idle"))
        .unwrap();
    assert!(idle.values.windows(2).any(|w| w[0] < w[1]));
}

#[test]
fn histogram_buckets_cumulative_and_count_is_inf() {
    let d = Dataset::generate(&small());
    let inst = d.series[0]
        .label("instance")
        .unwrap()
        .replace(":9100", ":6443");
    for verb in ["GET", "LIST"] {
        let buckets: Vec<&Series> = BUCKETS
            .iter()
            .map(|le| {
                d.series
                    .iter()
                    .find(|s| {
                        s.name() == "apiserver_request_duration_seconds_bucket"
                            && s.label("instance") == Some(&inst)
                            && s.label("verb") == Some(verb)
                            && s.label("le") == Some(&format_le(*le))
                    })
                    .unwrap()
            })
            .collect();
        let count = d
            .series
            .iter()
            .find(|s| {
                s.name() == "apiserver_request_duration_seconds_count"
                    && s.label("instance") == Some(&inst)
                    && s.label("verb") == Some(verb)
            })
            .unwrap();
        for k in 0..count.values.len() {
            for w in buckets.windows(2) {
                assert!(w[0].values[k] <= w[1].values[k], "bucket monotonicity");
            }
            assert_eq!(buckets.last().unwrap().values[k], count.values[k]);
        }
        assert!(count.values.last().unwrap() > &100.0);
    }
}

#[test]
fn tenants_and_churn() {
    let d = Dataset::generate(&GenConfig {
        tenants: 2,
        churn_ms: Some(10 * 60_000),
        ..small()
    });
    assert!(d.series.iter().any(|s| s.tenant == 1));
    let instances: std::collections::HashSet<&str> = d
        .series
        .iter()
        .filter(|s| s.tenant == 0)
        .filter_map(|s| s.label("instance"))
        .collect();
    // 2 slots x (node + apiserver) x at least 3 generations in 30 minutes.
    assert!(instances.len() >= 12, "{}", instances.len());
    let (lo, hi) = d.time_range();
    for s in &d.series {
        assert!(s.ts.iter().all(|t| (lo..=hi).contains(t)));
        assert!(!s.ts.is_empty());
    }
}
