//! `hypnos all`: builds every component, serves HTTP and gRPC, and stops on SIGINT/SIGTERM.
//!
//! Startup order: object store, then the API's state (`hypnos_api::AppState::open`: block
//! catalog listed once, fatal if the bucket cannot be read; ingester, replaying the WAL;
//! query engine over heads and blocks merged; authentication and limits); then the
//! background tasks (flushes every block duration, catalog sync every 30 s, the compactor
//! every --compact-interval) and the two servers. Shutdown stops accepting and lets requests
//! in flight finish (for at most [`SHUTDOWN_GRACE`]); nothing needs flushing because every
//! acknowledged write is in the WAL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hypnos_api::{self as http, ApiConfig, AppState};
use hypnos_engine::BlockCatalog;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::cli::AllArgs;

/// How often the block catalog re-lists the bucket (blocks written by other processes).
const CATALOG_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The API's configuration of the flags of `hypnos all`.
pub(crate) fn api_config(args: &AllArgs) -> ApiConfig {
    ApiConfig {
        data_dir: args.bucket.data_dir.clone(),
        block_duration: args.block_duration,
        exemplars_max_per_tenant: args.exemplars_max_per_tenant,
        sample_cache_bytes: args.sample_cache_bytes,
        max_request_bytes: args.max_request_bytes,
        receive_max_inflight_decode_bytes: args.receive_max_inflight_decode_bytes,
        wal_max_size: args.wal_max_size,
        auth: args.auth,
        auth_tokens_file: args.auth_tokens_file.clone(),
        limits_file: args.limits.limits_file.clone(),
        query_auto_downsampling: args.query_auto_downsampling,
        enable_admin_api: args.enable_admin_api,
        max_tenants: args.max_tenants,
        body_read_timeout: args.http_body_read_timeout,
    }
}

/// Runs `hypnos all` until SIGINT or SIGTERM.
pub(crate) async fn run_all(args: AllArgs) -> anyhow::Result<()> {
    let bucket = crate::compact::bucket(&args.bucket)?;
    // Listen first: a taken port is the most common startup failure, report it before the
    // WAL replay.
    let http_listener = listen(args.http_address, "HTTP").await?;
    let grpc_listener = listen(args.grpc_address, "gRPC").await?;
    let (state, catalog) =
        AppState::open(&api_config(&args), bucket.build()?, &bucket.describe()).await?;

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
    let mut grpc_server = tokio::spawn(hypnos_api::grpc::serve(
        grpc_listener,
        limits,
        stopped(stop_rx),
    ));
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn the_flags_default_to_the_api_defaults() {
        let Command::All(args) = Cli::try_parse_from(["hypnos", "all", "--data-dir", "d"])
            .unwrap()
            .command
        else {
            panic!("not all")
        };
        assert_eq!(api_config(&args), ApiConfig::new("d"));
    }
}
