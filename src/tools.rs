//! `hypnos tools bucket ls|inspect`: the blocks of a bucket per tenant, from their metas.
//!
//! `RES` is the resolution (`raw`, `5m`, `1h`). `SAMPLES` counts the stored points: for a
//! downsampled block, one per aggregate and window. `B/SAMPLE` is bytes per raw sample: for
//! a downsampled block, the bytes divided by the raw samples its windows stand for (the sum
//! of its `count` series, read from the block), so resolutions compare directly.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use hypnos_schemas::TimeRange;
use hypnos_schemas::block::{BlockReader, read_meta};
use hypnos_schemas::layout::{
    BlockMeta, DELETION_MARK_FILE, META_FILE, TENANTS_DIR, parse_block_path,
};
use hypnos_schemas::source::{AGGR_LABEL, ReadAggregate};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::cli::{BucketArgs, BucketCommand, ToolsArgs, ToolsCommand};

/// The log filter of a tools command.
pub(crate) fn log_level(args: &ToolsArgs) -> &str {
    match &args.command {
        ToolsCommand::Bucket(BucketCommand::Ls(b) | BucketCommand::Inspect(b)) => &b.log_level,
    }
}

/// Last millisecond that RFC 3339 can write (9999-12-31T23:59:59.999Z).
const MAX_RFC3339_MS: i64 = 253_402_300_799_999;

/// A block time: RFC 3339 from 1970 to 9999, the raw milliseconds outside (a block of a
/// broken or hostile writer must still be listed).
fn time(ms: i64) -> String {
    if !(0..=MAX_RFC3339_MS).contains(&ms) {
        return format!("{ms}ms");
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

fn resolution(ms: i64) -> String {
    match ms {
        0 => "raw".into(),
        ms if ms < 0 => format!("{ms}ms"),
        ms => humantime::format_duration(std::time::Duration::from_millis(ms.unsigned_abs()))
            .to_string(),
    }
}

/// The raw samples a block stands for: its samples when raw, the sum of its `count` series
/// when downsampled.
async fn raw_samples(store: &Arc<dyn ObjectStore>, m: &BlockMeta) -> anyhow::Result<u64> {
    if m.resolution_ms == 0 {
        return Ok(m.num_samples);
    }
    let reader = BlockReader::new(Arc::clone(store), m.clone())?;
    let count = ReadAggregate::Count.label_value();
    let refs: Vec<u32> = reader
        .all_series()
        .await?
        .iter()
        .enumerate()
        .filter(|(_, l)| Some(l.get(AGGR_LABEL)) == count)
        .map(|(r, _)| r as u32)
        .collect();
    let all = TimeRange::new(i64::MIN, i64::MAX);
    Ok(reader
        .read_refs(&refs, all)
        .await?
        .iter()
        .flat_map(|s| s.values.values().iter())
        .map(|v| *v as u64)
        .sum())
}

/// Runs `hypnos tools ...`; prints to stdout.
#[allow(clippy::print_stdout)] // a command-line tool's output
pub(crate) async fn run_tools(args: ToolsArgs) -> anyhow::Result<()> {
    let ToolsCommand::Bucket(cmd) = args.command;
    let (b, inspect): (&BucketArgs, bool) = match &cmd {
        BucketCommand::Ls(b) => (b, false),
        BucketCommand::Inspect(b) => (b, true),
    };
    let bucket = crate::compact::bucket(b)?;
    let store = bucket.build()?;
    let objects: Vec<_> = store
        .list(Some(&Path::from(TENANTS_DIR)))
        .try_collect()
        .await?;
    let mut blocks: BTreeMap<(String, String), (Option<BlockMeta>, bool)> = BTreeMap::new();
    for o in &objects {
        if let Some((t, u, file)) = parse_block_path(&o.location) {
            let e = blocks
                .entry((t.to_string(), u.to_string()))
                .or_insert((None, false));
            if file == DELETION_MARK_FILE {
                e.1 = true;
            } else if file == META_FILE {
                e.0 = Some(read_meta(&store, &o.location).await?);
            }
        }
    }
    let h = [
        "TENANT", "ULID", "FROM", "UNTIL", "RES", "LEVEL", "SERIES", "SAMPLES", "BYTES",
        "B/SAMPLE", "STATE",
    ];
    println!(
        "{:<16} {:<26} {:<20} {:<20} {:>5} {:>5} {:>9} {:>12} {:>12} {:>8}  {}",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10]
    );
    // Per tenant and resolution: blocks, stored points, raw samples, bytes.
    let mut totals: BTreeMap<(String, i64), (u64, u64, u64, u64)> = BTreeMap::new();
    for ((tenant, ulid), (meta, marked)) in &blocks {
        let Some(m) = meta else {
            println!("{tenant:<16} {ulid:<26} (no meta.json: partial upload)");
            continue;
        };
        let bytes = m.data_bytes();
        let raw = raw_samples(&store, m).await?;
        let t = totals.entry((tenant.clone(), m.resolution_ms)).or_default();
        *t = (t.0 + 1, t.1 + m.num_samples, t.2 + raw, t.3 + bytes);
        println!(
            "{:<16} {:<26} {:<20} {:<20} {:>5} {:>5} {:>9} {:>12} {:>12} {:>8.3}  {}",
            tenant,
            ulid,
            time(m.min_time),
            time(m.max_time),
            resolution(m.resolution_ms),
            m.level,
            m.num_series,
            m.num_samples,
            bytes,
            bytes as f64 / raw.max(1) as f64,
            if *marked { "marked for deletion" } else { "" }
        );
        if inspect {
            println!(
                "    schema v{}, written by {}, {} source block(s){}",
                m.schema_version,
                m.source,
                m.sources.len(),
                if m.sources.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        m.sources
                            .iter()
                            .map(|u| u.to_string())
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                }
            );
            if m.resolution_ms != 0 {
                println!(
                    "    {} points of 5 aggregates for {raw} raw samples",
                    m.num_samples
                );
            } else {
                let reader = BlockReader::new(Arc::clone(&store), m.clone())?;
                let histograms = reader.histogram_samples().await?;
                if histograms > 0 {
                    println!("    {histograms} of the samples are native histograms");
                }
            }
            for f in &m.files {
                println!("    {:<18} {:>12} bytes", f.name, f.size_bytes);
            }
        }
    }
    if inspect {
        for ((tenant, res), (n, points, raw, bytes)) in totals {
            let points = if res == 0 {
                String::new()
            } else {
                format!(" in {points} points")
            };
            println!(
                "tenant {tenant} {}: {n} blocks, {raw} samples{points}, {bytes} bytes, {:.3} bytes/sample",
                resolution(res),
                bytes as f64 / raw.max(1) as f64
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_time_and_resolution_is_printable() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        assert_eq!(time(MAX_RFC3339_MS), "9999-12-31T23:59:59Z");
        assert_eq!(time(MAX_RFC3339_MS + 1), "253402300800000ms");
        assert_eq!(time(-1), "-1ms");
        assert_eq!(time(i64::MAX), format!("{}ms", i64::MAX));
        assert_eq!(time(i64::MIN), format!("{}ms", i64::MIN));
        assert_eq!(resolution(0), "raw");
        assert_eq!(resolution(300_000), "5m");
        assert_eq!(resolution(i64::MIN), format!("{}ms", i64::MIN));
        assert!(!resolution(i64::MAX).is_empty());
    }
}
