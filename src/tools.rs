//! `hypnos tools bucket ls|inspect`: the blocks of a bucket per tenant, from their metas.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use hypnos_schemas::block::read_meta;
use hypnos_schemas::layout::{
    BlockMeta, DELETION_MARK_FILE, META_FILE, TENANTS_DIR, parse_block_path,
};
use object_store::path::Path;

use crate::cli::{BucketArgs, BucketCommand, ToolsArgs, ToolsCommand};

/// The log filter of a tools command.
pub(crate) fn log_level(args: &ToolsArgs) -> &str {
    match &args.command {
        ToolsCommand::Bucket(BucketCommand::Ls(b) | BucketCommand::Inspect(b)) => &b.log_level,
    }
}

fn time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn resolution(ms: i64) -> String {
    match ms {
        0 => "raw".into(),
        ms => humantime::format_duration(std::time::Duration::from_millis(ms as u64)).to_string(),
    }
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
    let mut totals: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for ((tenant, ulid), (meta, marked)) in &blocks {
        let Some(m) = meta else {
            println!("{tenant:<16} {ulid:<26} (no meta.json: partial upload)");
            continue;
        };
        let bytes = m.data_bytes();
        let t = totals.entry(tenant.clone()).or_default();
        *t = (t.0 + 1, t.1 + m.num_samples, t.2 + bytes);
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
            bytes as f64 / m.num_samples.max(1) as f64,
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
            for f in &m.files {
                println!("    {:<18} {:>12} bytes", f.name, f.size_bytes);
            }
        }
    }
    if inspect {
        for (tenant, (n, samples, bytes)) in totals {
            println!(
                "tenant {tenant}: {n} blocks, {samples} samples, {bytes} bytes, {:.3} bytes/sample",
                bytes as f64 / samples.max(1) as f64
            );
        }
    }
    Ok(())
}
