//! Bytes per sample of one Parquet block written from the benchmark generator's data
//! (node-exporter and API-server families, 15 s scrapes with ±25 ms jitter), all files of the
//! block counted, and a check that every timestamp and value bit reads back.
//!
//! `cargo run --release -p hypnos-benchmarks --example bytes_per_sample -- [series] [hours]`
//! (defaults: 1000 series, 24 h).

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array};
use hypnos_benchmarks::r#gen::{Dataset, GenConfig};
use hypnos_schemas::block::{BlockReader, write_block};
use hypnos_schemas::layout::{META_FILE, block_file};
use hypnos_schemas::{Labels, SeriesData, SeriesSource, TenantId, TimeRange};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let want: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let hours: i64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(24);
    let data = Dataset::generate(&GenConfig {
        series: want,
        duration_ms: hours * 3_600_000,
        ..GenConfig::default()
    });
    let mut series: Vec<SeriesData> = data
        .series
        .into_iter()
        .take(want)
        .map(|s| {
            SeriesData::new(
                Labels::from_pairs(s.labels),
                Int64Array::from(s.ts),
                Float64Array::from(s.values),
            )
        })
        .collect();
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
