//! `hypnos all`: builds every component, serves HTTP and gRPC, and stops on SIGINT/SIGTERM.
//!
//! Startup order: object store, block catalog (listed once, fatal if the bucket cannot be
//! read), ingester (replays the WAL), query engine over heads and blocks merged; then the
//! background tasks (flushes every block duration, catalog sync every 30 s, the compactor
//! every --compact-interval) and the two servers. Shutdown stops accepting and lets requests
//! in flight finish (for at most [`SHUTDOWN_GRACE`]); nothing needs flushing because every
//! acknowledged write is in the WAL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use hypnos_engine::{BlockCatalog, MergedSource};
use hypnos_ingest::{IngestConfig, Ingester};
use hypnos_planner::{MaxSourceResolution, QueryEngine, QueryOptions};
use hypnos_schemas::{BlockSink, SeriesSource};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::auth::{Authenticator, KnownTenants};
use crate::cli::AllArgs;
use crate::http::{self, AppState};
use crate::limits::Limits;
use crate::metrics::HttpMetrics;
use crate::objstore::BucketConfig;

/// How often the block catalog re-lists the bucket (blocks written by other processes).
const CATALOG_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The bucket chosen by the flags: `--objstore-url`, `--objstore-config-file`, or
/// `<data-dir>/bucket`.
pub(crate) fn bucket_config(args: &AllArgs) -> anyhow::Result<BucketConfig> {
    match (&args.objstore_url, &args.objstore_config_file) {
        (Some(_), Some(_)) => {
            bail!("--objstore-url and --objstore-config-file cannot be used together")
        }
        (Some(url), None) => BucketConfig::from_url(url),
        (None, Some(file)) => BucketConfig::from_file(file),
        (None, None) => Ok(BucketConfig::directory(args.data_dir.join("bucket"))),
    }
}

/// Builds the shared state of the HTTP API, with the ingester and the catalog behind it.
pub(crate) async fn build_state(
    args: &AllArgs,
    bucket: &BucketConfig,
) -> anyhow::Result<(Arc<AppState>, Arc<BlockCatalog>)> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data directory {}", args.data_dir.display()))?;
    let store = bucket.build()?;
    let catalog = Arc::new(BlockCatalog::with_sample_cache_bytes(
        Arc::clone(&store),
        args.sample_cache_bytes,
    ));
    let blocks = catalog
        .sync()
        .await
        .with_context(|| format!("cannot list blocks in {}", bucket.describe()))?;
    info!(bucket = %bucket.describe(), blocks, "block catalog loaded");

    let auth = Authenticator::new(args.auth, args.auth_tokens_file.as_deref())?
        .with_admin_api(args.enable_admin_api)
        .with_max_tenants(args.max_tenants);
    let limits = Limits::new(args.limits_file.as_deref())?;
    let registry = prometheus::Registry::new();
    for file in [auth.tokens().map(|t| t.register(&registry))]
        .into_iter()
        .chain([limits.file().map(|l| l.register(&registry))])
        .flatten()
    {
        file.context("cannot register the reload metrics")?;
    }
    let cfg = IngestConfig {
        block_duration: args.block_duration,
        ..IngestConfig::new(&args.data_dir)
    };
    let sink: Arc<dyn BlockSink> = Arc::clone(&catalog) as Arc<dyn BlockSink>;
    let ingester = Ingester::open_with_exemplar_limit(
        cfg,
        args.exemplars_max_per_tenant,
        store,
        sink,
        &registry,
    )
    .await
    .context("cannot open the ingester")?;
    ingester.set_max_inflight_decode_bytes(args.receive_max_inflight_decode_bytes);
    ingester.set_wal_max_bytes(args.wal_max_size);
    // Regex-granted reads that name no tenant read the tenants holding data.
    let auth = auth.with_known_tenants(KnownTenants::new({
        let (ingester, catalog) = (Arc::clone(&ingester), Arc::clone(&catalog));
        move || {
            let mut known = ingester.tenants();
            known.extend(catalog.tenants());
            known
        }
    }));
    let heads: Arc<dyn SeriesSource> = Arc::clone(&ingester) as Arc<dyn SeriesSource>;
    let blocks: Arc<dyn SeriesSource> = Arc::clone(&catalog) as Arc<dyn SeriesSource>;
    let source: Arc<dyn SeriesSource> = Arc::new(MergedSource::new(vec![heads, blocks]));
    let auth = Arc::new(auth);
    let metrics = HttpMetrics::new(&registry).context("cannot register HTTP metrics")?;
    // Only known tenants become metric label values: the default tenant, the tenants the
    // tokens or limits file names, and the tenants holding data.
    metrics.tenant_labels.set_known({
        let (auth, limits, ingester, catalog) = (
            Arc::clone(&auth),
            limits.file().cloned(),
            Arc::clone(&ingester),
            Arc::clone(&catalog),
        );
        move |t: &str| {
            let Ok(t) = hypnos_schemas::TenantId::new(t) else {
                return false;
            };
            t == hypnos_schemas::TenantId::default_tenant()
                || auth.names_tenant(&t)
                || limits.as_ref().is_some_and(|l| l.get().names_tenant(&t))
                || catalog.has_tenant(&t)
                || ingester.tenants().contains(&t)
        }
    });
    let state = AppState {
        ingester,
        engine: QueryEngine::new(Arc::clone(&source)),
        source,
        metrics,
        registry,
        max_request_bytes: args.max_request_bytes,
        query_timeout: QueryOptions::default().timeout,
        default_max_source_resolution: if args.query_auto_downsampling {
            MaxSourceResolution::Auto
        } else {
            MaxSourceResolution::Raw
        },
        auth,
        metric_metadata: Default::default(),
        limits,
        catalog: Arc::clone(&catalog),
        body_read_timeout: args.http_body_read_timeout,
    };
    Ok((Arc::new(state), catalog))
}

/// Runs `hypnos all` until SIGINT or SIGTERM.
pub(crate) async fn run_all(args: AllArgs) -> anyhow::Result<()> {
    let bucket = bucket_config(&args)?;
    // Listen first: a taken port is the most common startup failure, report it before the
    // WAL replay.
    let http_listener = listen(args.http_address, "HTTP").await?;
    let grpc_listener = listen(args.grpc_address, "gRPC").await?;
    let (state, catalog) = build_state(&args, &bucket).await?;

    let flush_loop = state.ingester.spawn_flush_loop();
    let reloads = state.spawn_reloads();
    let compactor = crate::compact::spawn_in_all(
        bucket.build()?,
        Arc::clone(&catalog),
        &args.compact,
        args.compact_interval,
        state.limits.file().cloned(),
    )?;
    let catalog_sync = spawn_catalog_sync(catalog);

    let (stop_tx, stop_rx) = watch::channel(false);
    let router = http::router(Arc::clone(&state));
    let limits = http::ServeLimits {
        header_read_timeout: args.http_header_read_timeout,
        max_connections: args.http_max_connections,
        write_timeout: args.http_write_timeout,
    };
    let mut http_server: JoinHandle<anyhow::Result<()>> = tokio::spawn({
        let stop = stopped(stop_rx.clone());
        async move {
            http::serve(http_listener, router, limits, stop).await;
            Ok(())
        }
    });
    let mut grpc_server = tokio::spawn(crate::grpc::serve(grpc_listener, limits, stopped(stop_rx)));
    info!(
        http = %args.http_address,
        grpc = %args.grpc_address,
        block_duration = %humantime::format_duration(args.block_duration),
        "hypnos listening"
    );

    let outcome = tokio::select! {
        r = &mut http_server => Err(server_exit("HTTP", r)),
        r = &mut grpc_server => Err(server_exit("gRPC", r)),
        signal = shutdown_signal() => {
            info!(signal, "shutting down: no longer accepting connections");
            Ok(())
        }
    };
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        if !http_server.is_finished() {
            let _ = (&mut http_server).await;
        }
        if !grpc_server.is_finished() {
            let _ = (&mut grpc_server).await;
        }
    })
    .await;
    if drained.is_err() {
        warn!(grace = ?SHUTDOWN_GRACE, "requests still in flight after the grace period, stopping anyway");
        http_server.abort();
        grpc_server.abort();
    }
    flush_loop.abort();
    reloads.iter().for_each(JoinHandle::abort);
    catalog_sync.abort();
    if let Some(c) = compactor {
        c.abort();
    }
    drop(state);
    info!("stopped");
    outcome
}

async fn listen(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Resolves once `true` is sent (or the sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn server_exit(what: &str, r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Error {
    match r {
        Ok(Ok(())) => anyhow::anyhow!("{what} server stopped unexpectedly"),
        Ok(Err(e)) => e,
        Err(e) => anyhow::anyhow!("{what} server task failed: {e}"),
    }
}

fn spawn_catalog_sync(catalog: Arc<BlockCatalog>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + CATALOG_SYNC_INTERVAL,
            CATALOG_SYNC_INTERVAL,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match catalog.sync().await {
                Ok(blocks) => debug!(blocks, "block catalog synced"),
                Err(e) => warn!(error = %e, "block catalog sync failed; retrying at the next tick"),
            }
        }
    })
}

/// Waits for SIGINT or SIGTERM; the signal's name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(e) => {
                warn!(error = %e, "cannot install a SIGTERM handler, only SIGINT stops hypnos");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
