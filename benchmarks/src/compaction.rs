//! The compaction workload: the generated data is written as 2h raw blocks (what an
//! ingester's head flushes produce), then `hypnos compact` runs over that bucket, once to
//! merge the blocks in levels, once more to downsample the merged blocks to 5m and 1h. Each
//! phase is measured from outside the process: wall time, CPU time (user + system, from
//! `/proc/<pid>/stat`) and peak RSS (`VmHWM`), so "samples per second per core" is the
//! samples a phase read divided by the CPU seconds it spent.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::{Float64Array, Int64Array};
use hypnos_schemas::block::{BlockInfo, BlockWriter};
use hypnos_schemas::{Labels, TenantId};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use crate::r#gen::{Dataset, tenant_name};

/// Raw blocks span this much, as the ingester's default block duration.
pub const BLOCK_MS: i64 = 2 * 3_600_000;

/// What one `hypnos compact` run cost.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseResult {
    /// Samples read by the phase (the inputs' samples).
    pub samples: u64,
    pub wall: Duration,
    pub cpu: Duration,
    pub peak_rss: Option<u64>,
}

impl PhaseResult {
    /// Samples per CPU second: the rate of one core.
    pub fn samples_per_core_sec(&self) -> f64 {
        self.samples as f64 / self.cpu.as_secs_f64().max(1e-9)
    }
}

/// Both phases of the workload.
#[derive(Clone, Debug)]
pub struct CompactionResult {
    pub input_blocks: usize,
    pub merge: PhaseResult,
    pub downsample: Result<PhaseResult, String>,
}

/// Writes every tenant's series as raw blocks of [`BLOCK_MS`] aligned windows under
/// `bucket` (a local directory). Returns how many blocks and samples were written.
pub fn write_raw_blocks(ds: &Dataset, bucket: &Path) -> Result<(usize, u64)> {
    std::fs::create_dir_all(bucket)?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(bucket)?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (lo, hi) = ds.time_range();
    let mut blocks = 0;
    let mut samples = 0u64;
    for tenant in 0..ds.config.tenants.max(1) {
        let tenant_id = TenantId::new(&tenant_name(tenant))?;
        let mut series: Vec<(Labels, &crate::r#gen::Series)> = ds
            .series
            .iter()
            .filter(|s| s.tenant == tenant)
            .map(|s| {
                let mut pairs = s.labels.clone();
                pairs.push(("tenant_id".into(), tenant_name(tenant)));
                (Labels::from_pairs(pairs), s)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut start = lo.div_euclid(BLOCK_MS) * BLOCK_MS;
        while start <= hi {
            let end = start + BLOCK_MS;
            let mut w = BlockWriter::new(Arc::clone(&store), tenant_id.clone());
            for (labels, s) in &series {
                let from = s.ts.partition_point(|t| *t < start);
                let to = s.ts.partition_point(|t| *t < end);
                if from == to {
                    continue;
                }
                let ts = Int64Array::from(s.ts[from..to].to_vec());
                let vs = Float64Array::from(s.values[from..to].to_vec());
                samples += (to - from) as u64;
                rt.block_on(w.append(labels.clone(), &ts, &vs))?;
            }
            if w.num_series() > 0 {
                rt.block_on(w.finish(BlockInfo::head()))?;
                blocks += 1;
            }
            start = end;
        }
    }
    Ok((blocks, samples))
}

/// Runs `hypnos compact` once over the bucket with `extra` flags, measuring it.
fn run_compact(hypnos: &Path, bucket: &Path, extra: &[&str], log: &Path) -> Result<PhaseResult> {
    let mut cmd = Command::new(hypnos);
    cmd.arg("compact")
        .arg("--objstore-url")
        .arg(format!("file://{}", bucket.display()))
        .arg("--delete-delay")
        .arg("0s")
        .arg("--log-level")
        .arg("info")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("start {cmd:?}"))?;
    let pid = child.id();
    let (mut cpu, mut peak) = (Duration::ZERO, None);
    let status = loop {
        if let Some(c) = proc_cpu(pid) {
            cpu = c;
        }
        if let Some(p) = crate::systems::proc_status_kib(pid, "VmHWM:") {
            peak = Some(p * 1024);
        }
        if let Some(st) = child.try_wait()? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall = started.elapsed();
    if !status.success() {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        bail!("hypnos compact failed ({status}): {}", tail.join(" / "));
    }
    Ok(PhaseResult {
        samples: 0,
        wall,
        cpu,
        peak_rss: peak,
    })
}

/// User plus system CPU time of a live process, from `/proc/<pid>/stat` (clock ticks of
/// 1/100 s, Linux' USER_HZ).
fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the man page (utime, stime) are 11 and 12 after the name.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Sums `num_samples` over the metas of the blocks of one resolution that are not marked
/// for deletion.
fn bucket_samples(bucket: &Path, resolution_ms: i64) -> Result<(usize, u64)> {
    bucket_samples_where(bucket, &|m| m.resolution_ms == resolution_ms)
}

fn bucket_samples_where(
    bucket: &Path,
    keep: &dyn Fn(&hypnos_schemas::layout::BlockMeta) -> bool,
) -> Result<(usize, u64)> {
    let mut blocks = 0;
    let mut samples = 0;
    for meta in walk_metas(&bucket.join(hypnos_schemas::layout::TENANTS_DIR))? {
        let dir = meta.parent().expect("meta has a folder");
        if dir
            .join(hypnos_schemas::layout::DELETION_MARK_FILE)
            .exists()
        {
            continue;
        }
        let m: hypnos_schemas::layout::BlockMeta =
            serde_json::from_slice(&std::fs::read(&meta)?)
                .with_context(|| format!("parse {}", meta.display()))?;
        if keep(&m) {
            blocks += 1;
            samples += m.num_samples;
        }
    }
    Ok((blocks, samples))
}

fn walk_metas(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk_metas(&p)?);
        } else if p.file_name().and_then(|n| n.to_str()) == Some(hypnos_schemas::layout::META_FILE)
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// The whole workload: raw blocks written under `work`, a merge run with downsampling
/// disabled, then a downsampling run whose span thresholds are lowered so that every block
/// qualifies. The data must span at least 16 h, so that a whole 8 h window is merged.
pub fn compaction(hypnos: &Path, ds: &Dataset, work: &Path) -> Result<CompactionResult> {
    let bucket = work.join("compaction-bucket");
    if bucket.exists() {
        std::fs::remove_dir_all(&bucket)?;
    }
    let (input_blocks, samples) = write_raw_blocks(ds, &bucket)?;
    let mut merge = run_compact(
        hypnos,
        &bucket,
        &["--downsampling.disable"],
        &work.join("compact-merge.log"),
    )?;
    let (_, raw_samples) = bucket_samples(&bucket, 0)?;
    if raw_samples != samples {
        bail!("after compaction the raw blocks hold {raw_samples} samples, {samples} were written");
    }
    // Samples merged: those now in compacted blocks (the last, open windows stay as they
    // were).
    let (merged_blocks, merged) = bucket_samples_where(&bucket, &|m| m.level > 1)?;
    if merged_blocks == 0 {
        bail!("nothing was merged: the data must span at least two level-2 windows (16 h)");
    }
    merge.samples = merged;
    let downsample = run_compact(
        hypnos,
        &bucket,
        &[
            "--downsample.5m-min-span",
            "1ms",
            "--downsample.1h-min-span",
            "1ms",
        ],
        &work.join("compact-downsample.log"),
    )
    .map_err(|e| format!("{e:#}"))
    .and_then(|mut p| {
        let (n5, _) = bucket_samples(&bucket, 300_000).map_err(|e| format!("{e:#}"))?;
        let (n1, _) = bucket_samples(&bucket, 3_600_000).map_err(|e| format!("{e:#}"))?;
        if n5 == 0 || n1 == 0 {
            return Err(format!(
                "downsampling wrote {n5} 5m and {n1} 1h blocks; expected both"
            ));
        }
        // Raw samples are read once for 5m; 1h reads the 5m aggregates, far fewer.
        p.samples = raw_samples;
        Ok(p)
    });
    Ok(CompactionResult {
        input_blocks,
        merge,
        downsample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r#gen::GenConfig;

    #[test]
    fn raw_blocks_hold_every_sample_in_aligned_windows() {
        let ds = Dataset::generate(&GenConfig {
            series: 58,
            duration_ms: 5 * 3_600_000,
            ..GenConfig::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let (blocks, samples) = write_raw_blocks(&ds, dir.path()).unwrap();
        assert_eq!(samples as usize, ds.samples());
        // 5 hours cross 3 or 4 two-hour windows depending on where they start.
        assert!((3..=4).contains(&blocks), "{blocks} blocks");
        let (n, s) = bucket_samples(dir.path(), 0).unwrap();
        assert_eq!((n, s), (blocks, samples));
        for meta in walk_metas(&dir.path().join("tenants")).unwrap() {
            let m: hypnos_schemas::layout::BlockMeta =
                serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
            assert_eq!(
                m.min_time.div_euclid(BLOCK_MS),
                m.max_time.div_euclid(BLOCK_MS),
                "a block stays inside one window"
            );
        }
    }

    #[test]
    fn cpu_time_of_this_process_is_readable() {
        let c = proc_cpu(std::process::id()).expect("/proc/self/stat parses");
        assert!(c < Duration::from_secs(24 * 3600));
    }

    #[test]
    fn per_core_rate_divides_by_cpu_time() {
        let p = PhaseResult {
            samples: 1000,
            wall: Duration::from_secs(1),
            cpu: Duration::from_millis(500),
            peak_rss: None,
        };
        assert_eq!(p.samples_per_core_sec(), 2000.0);
    }
}
