//! The warnings and infos of queries, as the engine answers them.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array};
use async_trait::async_trait;
use hypnos_schemas::matcher::matches_all;
use hypnos_schemas::{Matcher, SchemaError, SeriesData, SeriesSource, TenantId, TimeRange};

use hypnos_planner::AnnotatedResult;
use hypnos_schemas::Labels;

use crate::{QueryEngine, QueryOptions};

/// Every series of one tenant, whatever the range.
#[derive(Debug)]
struct Fixed(Vec<SeriesData>);

#[async_trait]
impl SeriesSource for Fixed {
    async fn select(
        &self,
        _tenant: &TenantId,
        matchers: &[Matcher],
        _range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        Ok(self
            .0
            .iter()
            .filter(|s| matches_all(matchers, &s.labels))
            .cloned()
            .collect())
    }
}

fn series(labels: &[(&str, &str)], per_minute: f64) -> SeriesData {
    let ts: Vec<i64> = (0..=10).map(|i| i * 60_000).collect();
    let vs: Vec<f64> = (0..=10).map(|i| i as f64 * per_minute).collect();
    SeriesData::new(
        Labels::from_pairs(labels.iter().copied()),
        Int64Array::from(ts),
        Float64Array::from(vs),
    )
}

fn engine() -> QueryEngine {
    QueryEngine::new(Arc::new(Fixed(vec![
        series(&[("__name__", "requests")], 60.0),
        series(&[("__name__", "requests_total")], 60.0),
        series(&[("__name__", "lat_bucket"), ("le", "0.5")], 30.0),
        series(&[("__name__", "lat_bucket"), ("le", "1")], 20.0),
        series(&[("__name__", "lat_bucket"), ("le", "+Inf")], 60.0),
        series(&[("__name__", "lat_bucket"), ("le", "many")], 1.0),
    ])))
}

async fn instant(q: &str) -> AnnotatedResult {
    let tenant = TenantId::new("t").unwrap();
    engine()
        .instant_query_annotated(&tenant, q, 600_000, &QueryOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn operators_annotate_with_positions() {
    let r = instant("rate(requests[5m]) + rate(requests_total[5m])").await;
    assert_eq!(
        r.annotations.infos,
        vec![
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"requests\" (1:6)"
        ]
    );
    assert!(r.annotations.warnings.is_empty());

    let r = instant("histogram_quantile(\n  1.5,\n  lat_bucket\n)").await;
    assert_eq!(
        r.annotations.warnings,
        vec![
            "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"many\" for metric name \"lat_bucket\" (3:3)",
            "PromQL warning: quantile value should be between 0 and 1, got 1.5 (2:3)",
        ]
    );
    let r = instant("histogram_quantile(0.9, lat_bucket{le!=\"many\"})").await;
    assert_eq!(
        r.annotations.infos,
        vec![
            "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) (1:25)"
        ]
    );
    assert!(r.annotations.warnings.is_empty());
    assert!(instant("requests_total").await.annotations.is_empty());
}

#[tokio::test]
async fn sort_warns_only_in_range_queries() {
    let tenant = TenantId::new("t").unwrap();
    let opts = QueryOptions::default();
    let e = engine();
    let r = e
        .range_query_annotated(&tenant, "sort(requests)", 0, 120_000, 60_000, &opts)
        .await
        .unwrap();
    assert_eq!(
        r.annotations.warnings,
        vec![
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:1)"
        ]
    );
    assert!(instant("sort(requests)").await.annotations.is_empty());
    // The plain entry points answer the same value without the annotations.
    let plain = e
        .range_query(&tenant, "sort(requests)", 0, 120_000, 60_000, &opts)
        .await
        .unwrap();
    assert_eq!(plain, r.result);
}
