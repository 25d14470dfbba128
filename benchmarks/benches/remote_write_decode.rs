//! Remote-write 1.0 decode: snappy block decompression and protobuf decoding of a request of
//! about 2,000 samples from the shared generator (16 series x 30 minutes).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hypnos_benchmarks::encode::encode_windows;
use hypnos_benchmarks::r#gen::{Dataset, GenConfig};
use hypnos_ingest::{DEFAULT_MAX_DECOMPRESSED_BYTES, decode_write_request};

fn bench(c: &mut Criterion) {
    let ds = Dataset::generate(&GenConfig {
        series: 58,
        duration_ms: 30 * 60_000,
        ..GenConfig::default()
    });
    let windows = encode_windows(&ds, 30 * 60_000, 16);
    let req = &windows[0][0];
    let mut g = c.benchmark_group("remote_write_decode");
    g.throughput(Throughput::Elements(req.samples as u64));
    g.bench_function(format!("{}_samples", req.samples), |b| {
        b.iter(|| {
            decode_write_request(
                Some("snappy"),
                Some("application/x-protobuf"),
                std::hint::black_box(&req.body),
                DEFAULT_MAX_DECOMPRESSED_BYTES,
            )
            .expect("valid request")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
