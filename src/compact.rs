//! `hypnos compact` (once, or every --wait-interval with --wait) and the compactor loop that
//! `hypnos all` runs every --compact-interval. Both take per-tenant retentions from
//! `--limits-file`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hypnos_compactor::{CompactError, Compactor, CompactorConfig, TenantRetention};
use hypnos_engine::BlockCatalog;
use object_store::ObjectStore;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use hypnos_tenancy::{LimitsConfig, Reloading};

use crate::cli::{BucketArgs, CompactArgs, CompactFlags};
use crate::objstore::BucketConfig;

#[cfg(feature = "testsuite")]
mod hook;

/// The store the compactor writes through: with the `testsuite` feature, the one of
/// `hook` (a pause before each write when the test asks for it).
fn compactor_store(store: Arc<dyn ObjectStore>) -> anyhow::Result<Arc<dyn ObjectStore>> {
    #[cfg(feature = "testsuite")]
    return hook::wrap(store);
    #[cfg(not(feature = "testsuite"))]
    Ok(store)
}

/// The bucket named by --objstore-url, --objstore-config-file or <data-dir>/bucket.
pub(crate) fn bucket(args: &BucketArgs) -> anyhow::Result<BucketConfig> {
    match (&args.objstore_url, &args.objstore_config_file) {
        (Some(_), Some(_)) => {
            anyhow::bail!("--objstore-url and --objstore-config-file cannot be used together")
        }
        (Some(url), None) => BucketConfig::from_url(url),
        (None, Some(file)) => BucketConfig::from_file(file),
        (None, None) => Ok(BucketConfig::directory(args.data_dir.join("bucket"))),
    }
}

/// The compactor's per-tenant retention lookup over a limits file (re-read by its owner).
fn tenant_retention(file: Arc<Reloading<LimitsConfig>>) -> TenantRetention {
    TenantRetention::new(move |t| file.get().for_tenant(t).retention)
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// The compactor configuration of the flags, with the per-tenant retentions of the limits
/// file when there is one.
pub(crate) fn config(flags: &CompactFlags, retention: Option<TenantRetention>) -> CompactorConfig {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "hypnos".into());
    CompactorConfig {
        replica_labels: flags.dedup_replica_labels.clone(),
        delete_delay: flags.delete_delay,
        retention_raw: nonzero(flags.retention_raw),
        retention_5m: nonzero(flags.retention_5m),
        retention_1h: nonzero(flags.retention_1h),
        tenant_retention: retention,
        downsample: !flags.downsampling_disable,
        downsample_5m_min_span: flags.downsample_5m_min_span,
        downsample_1h_min_span: flags.downsample_1h_min_span,
        owner: format!(
            "{host}/{}/{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ),
        ..CompactorConfig::default()
    }
}

/// Runs `hypnos compact`.
pub(crate) async fn run_compact(args: CompactArgs) -> anyhow::Result<()> {
    let bucket = bucket(&args.bucket)?;
    let store = bucket.build()?;
    let limits = args
        .limits
        .limits_file
        .as_deref()
        .map(|p| Reloading::load(p, "limits file", LimitsConfig::parse))
        .transpose()?;
    let retention = limits.as_ref().map(|l| tenant_retention(Arc::clone(l)));
    let compactor = Compactor::new(compactor_store(store)?, config(&args.compact, retention))?;
    info!(bucket = %bucket.describe(), wait = args.wait, "compactor starting");
    loop {
        if let Some(l) = &limits {
            l.check();
        }
        match compactor.run_once().await {
            Ok(r) => info!(
                written = r.written.len(),
                downsampled = r.downsampled.len(),
                marked = r.marked,
                deleted = r.deleted,
                "compaction run done"
            ),
            Err(e @ CompactError::Locked { .. }) if args.wait => {
                warn!(error = %e, "bucket busy; retrying after the wait interval")
            }
            Err(e) if args.wait => warn!(error = %e, "compaction run failed; retrying"),
            Err(e) => return Err(e).context("compaction failed"),
        }
        if !args.wait {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(args.wait_interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The compactor loop of `hypnos all`: every `interval`, one run, then a catalog sync so
/// readers see new blocks and forget deleted ones at once. `None` when disabled.
pub(crate) fn spawn_in_all(
    store: Arc<dyn ObjectStore>,
    catalog: Arc<BlockCatalog>,
    flags: &CompactFlags,
    interval: Duration,
    limits: Option<Arc<Reloading<LimitsConfig>>>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if interval.is_zero() {
        return Ok(None);
    }
    let compactor = Compactor::new(
        compactor_store(store)?,
        config(flags, limits.map(tenant_retention)),
    )?;
    Ok(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match compactor.run_once().await {
                Ok(r) if r.written.is_empty() && r.downsampled.is_empty() && r.deleted == 0 => {
                    debug!("compaction: nothing to do")
                }
                Ok(r) => {
                    info!(
                        written = r.written.len(),
                        downsampled = r.downsampled.len(),
                        marked = r.marked,
                        deleted = r.deleted,
                        "compaction run done"
                    );
                    if let Err(e) = catalog.sync().await {
                        warn!(error = %e, "block catalog sync after compaction failed");
                    }
                }
                Err(e) => warn!(error = %e, "compaction run failed; retrying at the next tick"),
            }
        }
    })))
}
