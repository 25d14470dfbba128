//! Parquet encode of a block: `hypnos_schemas::block::write_block` of 580 series x 2 h of
//! generated samples to a `LocalFileSystem` store in a temporary directory.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hypnos_benchmarks::r#gen::{Dataset, GenConfig};
use hypnos_schemas::block::write_block;
use hypnos_schemas::{Labels, SeriesData, TenantId};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("store"));
    let ds = Dataset::generate(&GenConfig {
        series: 580,
        duration_ms: 2 * 3_600_000,
        ..GenConfig::default()
    });
    let series: Vec<SeriesData> = ds
        .series
        .iter()
        .map(|s| {
            SeriesData::new(
                Labels::from_pairs(s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
                Int64Array::from(s.ts.clone()),
                Float64Array::from(s.values.clone()),
            )
        })
        .collect();
    let tenant = TenantId::default_tenant();
    let mut g = c.benchmark_group("block_encode");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ds.samples() as u64));
    g.bench_function(format!("write_block_{}_samples", ds.samples()), |b| {
        b.iter(|| {
            rt.block_on(write_block(&store, &tenant, series.clone()))
                .expect("write block")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
