//! Building the API's shared state: the block catalog over the bucket, the ingester (its
//! WAL replayed), the query engine over heads and blocks merged, authentication, limits and
//! the metrics registry, from an [`ApiConfig`] (which the binary fills from its flags).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hypnos_engine::{BlockCatalog, MergedSource};
use hypnos_engine::{QueryEngine, QueryOptions};
use hypnos_ingest::{IngestConfig, Ingester};
use hypnos_planner::MaxSourceResolution;
use hypnos_schemas::{BlockSink, SeriesSource, TenantId};
use hypnos_tenancy::{AuthMode, Authenticator, KnownTenants, Limits};
use object_store::ObjectStore;
use tracing::info;

use crate::AppState;
use crate::metrics::HttpMetrics;

/// Largest compressed remote-write body accepted by default, in bytes.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 << 20;
/// How often heads are cut into blocks by default.
pub const DEFAULT_BLOCK_DURATION: Duration = Duration::from_secs(2 * 3600);
/// Longest a request body may take to arrive by default.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the API is built from (the flags of `hypnos all` that concern it).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiConfig {
    /// Directory of the write-ahead log.
    pub data_dir: PathBuf,
    /// How often heads are cut and written as blocks.
    pub block_duration: Duration,
    /// Exemplars kept in memory per tenant (0: dropped at ingest).
    pub exemplars_max_per_tenant: usize,
    /// Memory for decoded block samples kept between queries, in bytes.
    pub sample_cache_bytes: usize,
    /// Largest compressed remote-write body.
    pub max_request_bytes: usize,
    /// Bytes remote-write requests being decoded may hold at once (0: unlimited).
    pub receive_max_inflight_decode_bytes: usize,
    /// Budget of the write-ahead log on disk in bytes (0: unlimited); past it writes get 503.
    pub wal_max_size: u64,
    /// `--auth`.
    pub auth: AuthMode,
    /// The tokens file of `--auth=token`.
    pub auth_tokens_file: Option<PathBuf>,
    /// The limits file (nothing limited without it).
    pub limits_file: Option<PathBuf>,
    /// Queries without `max_source_resolution` read downsampled data where they can.
    pub query_auto_downsampling: bool,
    /// Admin endpoints open in `header` and `none` auth modes.
    pub enable_admin_api: bool,
    /// The most tenants one read may name.
    pub max_tenants: usize,
    /// Longest a request body may take to arrive.
    pub body_read_timeout: Duration,
}

impl ApiConfig {
    /// The defaults of `hypnos all`, with the WAL in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            block_duration: DEFAULT_BLOCK_DURATION,
            exemplars_max_per_tenant: hypnos_ingest::DEFAULT_MAX_EXEMPLARS_PER_TENANT,
            sample_cache_bytes: hypnos_engine::DEFAULT_SAMPLE_CACHE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            receive_max_inflight_decode_bytes: hypnos_ingest::DEFAULT_MAX_INFLIGHT_DECODE_BYTES,
            wal_max_size: 0,
            auth: AuthMode::default(),
            auth_tokens_file: None,
            limits_file: None,
            query_auto_downsampling: false,
            enable_admin_api: false,
            max_tenants: hypnos_tenancy::DEFAULT_MAX_TENANTS,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }
}

impl AppState {
    /// Builds the shared state of the HTTP API over `store` (described as `bucket` in
    /// messages), with the ingester and the catalog behind it.
    pub async fn open(
        cfg: &ApiConfig,
        store: Arc<dyn ObjectStore>,
        bucket: &str,
    ) -> anyhow::Result<(Arc<AppState>, Arc<BlockCatalog>)> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
        let catalog = Arc::new(BlockCatalog::with_sample_cache_bytes(
            Arc::clone(&store),
            cfg.sample_cache_bytes,
        ));
        let blocks = catalog
            .sync()
            .await
            .with_context(|| format!("cannot list blocks in {bucket}"))?;
        info!(bucket = %bucket, blocks, "block catalog loaded");

        let auth = Authenticator::new(cfg.auth, cfg.auth_tokens_file.as_deref())?
            .with_admin_api(cfg.enable_admin_api)
            .with_max_tenants(cfg.max_tenants);
        let limits = Limits::new(cfg.limits_file.as_deref())?;
        let registry = prometheus::Registry::new();
        for file in [auth.tokens().map(|t| t.register(&registry))]
            .into_iter()
            .chain([limits.file().map(|l| l.register(&registry))])
            .flatten()
        {
            file.context("cannot register the reload metrics")?;
        }
        let ingest = IngestConfig {
            block_duration: cfg.block_duration,
            ..IngestConfig::new(&cfg.data_dir)
        };
        let sink: Arc<dyn BlockSink> = Arc::clone(&catalog) as Arc<dyn BlockSink>;
        let ingester = Ingester::open_with_exemplar_limit(
            ingest,
            cfg.exemplars_max_per_tenant,
            store,
            sink,
            &registry,
        )
        .await
        .context("cannot open the ingester")?;
        ingester.set_max_inflight_decode_bytes(cfg.receive_max_inflight_decode_bytes);
        ingester.set_wal_max_bytes(cfg.wal_max_size);
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
                let Ok(t) = TenantId::new(t) else {
                    return false;
                };
                t == TenantId::default_tenant()
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
            max_request_bytes: cfg.max_request_bytes,
            query_timeout: QueryOptions::default().timeout,
            default_max_source_resolution: if cfg.query_auto_downsampling {
                MaxSourceResolution::Auto
            } else {
                MaxSourceResolution::Raw
            },
            auth,
            metric_metadata: Default::default(),
            limits,
            catalog: Arc::clone(&catalog),
            body_read_timeout: cfg.body_read_timeout,
        };
        Ok((Arc::new(state), catalog))
    }
}
