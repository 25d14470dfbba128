//! The range-window functions (`rate`, `increase`, `delta`) of `hypnos_engine::ops` over 58
//! generated series x 6 h, as a range query with a 5m window and a 60 s step.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hypnos_benchmarks::r#gen::{Dataset, GenConfig};
use hypnos_engine::ops::range_function;
use hypnos_engine::vector::VectorBuilder;
use hypnos_planner::ops::{RangeFunc, Steps};
use hypnos_schemas::Labels;

fn bench(c: &mut Criterion) {
    let ds = Dataset::generate(&GenConfig {
        series: 58,
        duration_ms: 6 * 3_600_000,
        ..GenConfig::default()
    });
    let mut b = VectorBuilder::new();
    let mut sorted: Vec<_> = ds.series.iter().collect();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    for s in sorted {
        b.start_series(&Labels::from_pairs(
            s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        ));
        for (t, v) in s.ts.iter().zip(&s.values) {
            b.push(*t, *v);
        }
    }
    let batch = b.finish();
    let (lo, hi) = ds.time_range();
    let steps = Steps {
        start: lo + 300_000,
        end: hi,
        step: 60_000,
    };
    let mut g = c.benchmark_group("range_functions");
    g.throughput(Throughput::Elements(ds.samples() as u64));
    for func in [RangeFunc::Rate, RangeFunc::Increase, RangeFunc::Delta] {
        g.bench_function(func.name(), |bench| {
            bench.iter(|| range_function(&batch, func, steps, 300_000, 0).expect("range function"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
