//! Head append through the public write path, `Ingester::write`: validation, the WAL record
//! (group commit with fsync) and the append to the tenant's in-memory head. Each iteration
//! writes the next 15 s scrape of 580 series, so every sample is new. (`Head` itself is
//! private to hypnos-ingest; a bench of the bare append would need it exported.)

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hypnos_benchmarks::r#gen::{Dataset, GenConfig};
use hypnos_ingest::{IngestConfig, Ingester};
use hypnos_schemas::remote::{Label, Sample, TimeSeries, WriteRequest};
use hypnos_schemas::{BlockSink, TenantId};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

struct NoSink;

impl BlockSink for NoSink {
    fn block_written(&self, _meta: &hypnos_schemas::layout::BlockMeta) {}
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket dir");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&bucket).expect("store"));
    let registry = prometheus::Registry::new();
    let ingester = rt
        .block_on(Ingester::open(
            IngestConfig::new(dir.path()),
            store,
            Arc::new(NoSink),
            &registry,
        ))
        .expect("open ingester");
    let ds = Dataset::generate(&GenConfig {
        series: 580,
        duration_ms: 60_000,
        ..GenConfig::default()
    });
    let labels: Vec<Vec<Label>> = ds
        .series
        .iter()
        .map(|s| {
            s.labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.clone(),
                    value: v.clone(),
                })
                .collect()
        })
        .collect();
    let tenant = TenantId::default_tenant();
    let mut scrape = 0i64;
    let mut g = c.benchmark_group("head_append");
    g.throughput(Throughput::Elements(ds.series.len() as u64));
    g.bench_function(format!("ingester_write_{}_series", ds.series.len()), |b| {
        b.iter_batched(
            || {
                scrape += 1;
                WriteRequest {
                    timeseries: labels
                        .iter()
                        .zip(&ds.series)
                        .map(|(l, s)| TimeSeries {
                            labels: l.clone(),
                            samples: vec![Sample {
                                value: s.values[0] + scrape as f64,
                                timestamp: 1_700_000_000_000 + scrape * 15_000,
                            }],
                            ..Default::default()
                        })
                        .collect(),
                    metadata: vec![],
                }
            },
            |req| rt.block_on(ingester.write(&tenant, req)).expect("write"),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
