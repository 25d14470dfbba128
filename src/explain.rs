//! `hypnos explain '<query>'`: the DataFusion logical and physical plans of a PromQL query,
//! as `explain=true` on the query API returns them. Planning reads no data, so this needs no
//! running server and no bucket.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use hypnos_engine::{MergedSource, QueryEngine, QueryOptions};
use hypnos_schemas::TenantId;

use crate::cli::ExplainArgs;

fn millis(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

pub(crate) async fn run_explain(args: ExplainArgs) -> Result<()> {
    let tenant = TenantId::new(&args.tenant).context("--tenant")?;
    let engine = QueryEngine::new(Arc::new(MergedSource::new(Vec::new())));
    let (start, end, step) = match (args.start, args.end, args.step) {
        (Some(s), Some(e), Some(st)) => (millis(s), millis(e), millis(st)),
        _ => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default();
            let t = millis(args.time.unwrap_or(now));
            (t, t, 1)
        }
    };
    let text = engine
        .explain(
            &tenant,
            &args.query,
            start,
            end,
            step,
            &QueryOptions::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{text}");
    Ok(())
}
