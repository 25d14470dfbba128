//! Measures the storage cost of the block format: builds node-exporter-like data (the same
//! metric families as the benchmark generator: 15 s scrapes with millisecond jitter, CPU
//! counters with two decimals, byte counters, gauges in multiples of 4096, constant series,
//! classic histograms), writes it with `write_block` and prints bytes per sample, every file
//! of the block counted (`meta.json` included).
//!
//! ```sh
//! cargo run --release -p hypnos-schemas --example bytes_per_sample -- [series] [hours]
//! ```
//! Defaults: 1000 series, 24 hours. Reads the block back and checks every bit.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array};
use hypnos_schemas::block::{BlockReader, write_block};
use hypnos_schemas::layout::{META_FILE, block_file};
use hypnos_schemas::{Labels, SeriesData, SeriesSource, TenantId, TimeRange};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};

/// SplitMix64: deterministic test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

const INTERVAL_MS: i64 = 15_000;
const JITTER_MS: i64 = 25;
const START_MS: i64 = 1_700_000_000_000;
const CPU_MODES: [(&str, f64); 8] = [
    ("idle", 0.70),
    ("iowait", 0.03),
    ("irq", 0.005),
    ("nice", 0.005),
    ("softirq", 0.01),
    ("steal", 0.0),
    ("system", 0.07),
    ("user", 0.15),
];
const BUCKETS: [f64; 11] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    f64::INFINITY,
];

fn cents(c: i64) -> f64 {
    c as f64 / 100.0
}

/// The 58 series of one host.
fn instance(host: &str, seed: u64, duration_ms: i64) -> Vec<SeriesData> {
    let mut rng = Rng(seed);
    let phase = rng.range(0, INTERVAL_MS - 1);
    let mut ts = Vec::new();
    let mut t = START_MS + phase;
    while t < START_MS + duration_ms {
        let s = t + rng.range(-JITTER_MS, JITTER_MS);
        if ts.last().is_none_or(|l| *l < s) {
            ts.push(s);
        }
        t += INTERVAL_MS;
    }
    let n = ts.len();
    let interval_s = INTERVAL_MS as f64 / 1000.0;
    let node = format!("{host}:9100");
    let api = format!("{host}:6443");
    let mut out = Vec::new();
    let mut push = |pairs: &[(&str, &str)], values: Vec<f64>| {
        out.push(SeriesData::new(
            Labels::from_pairs(pairs.iter().copied()),
            Int64Array::from(ts.clone()),
            Float64Array::from(values),
        ))
    };
    for cpu in ["0", "1"] {
        for (mode, share) in CPU_MODES {
            let mut c = (rng.range(0, 10_000_000) as f64 * share) as i64;
            let per = share * interval_s * 100.0;
            let values = (0..n)
                .map(|_| {
                    c += (per * (0.7 + 0.6 * rng.f64())).round() as i64;
                    cents(c)
                })
                .collect();
            let l = [
                ("__name__", "node_cpu_seconds_total"),
                ("cpu", cpu),
                ("instance", &node),
                ("job", "node"),
                ("mode", mode),
            ];
            push(&l, values);
        }
    }
    for device in ["eth0", "lo"] {
        for (name, bytes_per_s) in [
            ("node_network_receive_bytes_total", 60_000.0),
            ("node_network_transmit_bytes_total", 25_000.0),
        ] {
            let mut c = rng.range(0, 1 << 40);
            let values = (0..n)
                .map(|_| {
                    c += (bytes_per_s * interval_s * (0.5 + rng.f64())) as i64;
                    c as f64
                })
                .collect();
            let l = [
                ("__name__", name),
                ("device", device),
                ("instance", &node),
                ("job", "node"),
            ];
            push(&l, values);
        }
        let mut errs = rng.range(0, 5);
        let values = (0..n)
            .map(|_| {
                if rng.f64() < 0.002 {
                    errs += 1;
                }
                errs as f64
            })
            .collect();
        let l = [
            ("__name__", "node_network_receive_errs_total"),
            ("device", device),
            ("instance", &node),
            ("job", "node"),
        ];
        push(&l, values);
    }
    let mean = 0.5 + 2.0 * rng.f64();
    let mut load = mean;
    let values = (0..n)
        .map(|_| {
            load = (load + 0.05 * (mean - load) + 0.05 * rng.normal()).max(0.0);
            cents((load * 100.0).round() as i64)
        })
        .collect();
    push(
        &[
            ("__name__", "node_load1"),
            ("instance", &node),
            ("job", "node"),
        ],
        values,
    );
    let total_pages = 1i64 << rng.range(20, 23);
    let mut avail = total_pages / 2;
    let values = (0..n)
        .map(|_| {
            avail = (avail + rng.range(-256, 256)).clamp(total_pages / 10, total_pages);
            (avail * 4096) as f64
        })
        .collect();
    push(
        &[
            ("__name__", "node_memory_MemAvailable_bytes"),
            ("instance", &node),
            ("job", "node"),
        ],
        values,
    );
    push(
        &[
            ("__name__", "node_memory_MemTotal_bytes"),
            ("instance", &node),
            ("job", "node"),
        ],
        vec![(total_pages * 4096) as f64; n],
    );
    push(
        &[
            ("__name__", "node_uname_info"),
            ("instance", &node),
            ("job", "node"),
            ("machine", "x86_64"),
            ("nodename", host),
            ("release", "6.1.0-13-amd64"),
            ("sysname", "Linux"),
        ],
        vec![1.0; n],
    );
    for verb in ["GET", "LIST", "POST"] {
        for code in ["200", "404"] {
            let per_s = if code == "200" { 12.0 } else { 0.02 };
            let mut c = rng.range(0, 1_000_000);
            let values = (0..n)
                .map(|_| {
                    let expected = per_s * interval_s;
                    c += if expected >= 1.0 {
                        (expected * (0.5 + rng.f64())) as i64
                    } else {
                        i64::from(rng.f64() < expected)
                    };
                    c as f64
                })
                .collect();
            let l = [
                ("__name__", "apiserver_request_total"),
                ("code", code),
                ("instance", &api),
                ("job", "apiserver"),
                ("resource", "pods"),
                ("verb", verb),
            ];
            push(&l, values);
        }
    }
    for (verb, per_s, median) in [("GET", 8.0, 0.02), ("LIST", 2.0, 0.15)] {
        let mut buckets = vec![vec![0f64; n]; BUCKETS.len()];
        let mut sums = vec![0f64; n];
        let mut counts = [0u64; BUCKETS.len()];
        let mut sum = 0f64;
        for k in 0..n {
            let obs = (per_s * interval_s * (0.5 + rng.f64())) as usize;
            for _ in 0..obs {
                let lat = median * (0.8 * rng.normal()).exp();
                sum += lat;
                for (b, le) in BUCKETS.iter().enumerate() {
                    if lat <= *le {
                        counts[b] += 1;
                    }
                }
            }
            for b in 0..BUCKETS.len() {
                buckets[b][k] = counts[b] as f64;
            }
            sums[k] = sum;
        }
        let count_values = buckets[BUCKETS.len() - 1].clone();
        for (b, le) in BUCKETS.iter().enumerate() {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                format!("{le}")
            };
            let l = [
                ("__name__", "apiserver_request_duration_seconds_bucket"),
                ("instance", &api),
                ("job", "apiserver"),
                ("le", &le),
                ("verb", verb),
            ];
            push(&l, std::mem::take(&mut buckets[b]));
        }
        let l = [
            ("__name__", "apiserver_request_duration_seconds_sum"),
            ("instance", &api),
            ("job", "apiserver"),
            ("verb", verb),
        ];
        push(&l, sums);
        let l = [
            ("__name__", "apiserver_request_duration_seconds_count"),
            ("instance", &api),
            ("job", "apiserver"),
            ("verb", verb),
        ];
        push(&l, count_values);
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let want: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let hours: i64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(24);
    let mut series = Vec::new();
    let mut host = 0u64;
    while series.len() < want {
        series.extend(instance(
            &format!("host-{host:04}"),
            42 ^ host.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            hours * 3_600_000,
        ));
        host += 1;
    }
    series.truncate(want);
    let samples: usize = series.iter().map(|s| s.len()).sum();

    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path())?);
    let tenant = TenantId::new("bench")?;
    let started = std::time::Instant::now();
    let meta = write_block(&store, &tenant, series.clone()).await?;
    let elapsed = started.elapsed();
    let meta_bytes = store
        .head(&block_file(&tenant, meta.ulid, META_FILE))
        .await?
        .size;
    let total = meta.data_bytes() + meta_bytes;
    println!(
        "{} series, {} samples, {} h, written in {:.2?}",
        meta.num_series, samples, hours, elapsed
    );
    for f in &meta.files {
        println!(
            "  {:<16} {:>12} bytes  {:.4} bytes/sample",
            f.name,
            f.size_bytes,
            f.size_bytes as f64 / samples as f64
        );
    }
    println!("  {:<16} {:>12} bytes", META_FILE, meta_bytes);
    // Compressed bytes per column of samples.parquet, from its footer.
    let path = dir
        .path()
        .join(block_file(&tenant, meta.ulid, hypnos_schemas::layout::SAMPLES_FILE).to_string());
    let file =
        parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(path)?)?;
    use parquet::file::reader::FileReader;
    let md = file.metadata();
    for c in 0..md.file_metadata().schema_descr().num_columns() {
        let bytes: i64 = md
            .row_groups()
            .iter()
            .map(|rg| rg.column(c).compressed_size())
            .sum();
        println!(
            "    {:<14} {:>12} bytes  {:.4} bytes/sample",
            md.file_metadata().schema_descr().column(c).name(),
            bytes,
            bytes as f64 / samples as f64
        );
    }
    println!(
        "total {} bytes: {:.4} bytes/sample",
        total,
        total as f64 / samples as f64
    );

    // Every bit comes back.
    let reader = BlockReader::new(Arc::clone(&store), meta)?;
    let mut got = reader
        .select(&tenant, &[], TimeRange::new(i64::MIN, i64::MAX))
        .await?;
    got.sort_by(|a, b| a.labels.cmp(&b.labels));
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(got.len(), series.len());
    for (g, s) in got.iter().zip(&series) {
        assert_eq!(g.labels, s.labels);
        assert_eq!(g.timestamps().values(), s.timestamps().values());
        let gb: Vec<u64> = g.values().values().iter().map(|v| v.to_bits()).collect();
        let sb: Vec<u64> = s.values().values().iter().map(|v| v.to_bits()).collect();
        assert_eq!(gb, sb, "values of {:?}", s.labels);
    }
    println!("read back: every timestamp and value bit identical");
    Ok(())
}
