//! Queries over downsampled data against the same queries over raw data.
//!
//! Three days of raw samples (15s scrapes with a little jitter: counters that reset now
//! and then, gauges, a series that goes stale for a while) are written as 2h raw blocks,
//! each downsampled to 5m and 1h with the compactor's `downsample_block` except the last
//! three (too recent: reads fall back to raw data there). Range queries
//! with resolution-aligned steps and ranges then read raw data, 5m data or 1h data
//! (`max_source_resolution`), and the answers are compared:
//!
//! - `max_over_time`, `min_over_time` and `count_over_time` equal raw exactly;
//!   `sum_over_time` and `avg_over_time` to a relative 1e-9 (the sums are added in another
//!   order);
//! - `rate` and `increase` over 5m data, with ranges of 1h to 6h, are within
//!   [`RATE_TOLERANCE_5M`] of raw; over 1h data, with ranges of 12h and 24h, within
//!   [`RATE_TOLERANCE_1H`]. The points of downsampled data sit at the last sample of each
//!   window, so the first window of a range is only seen from its end and extrapolated
//!   over, which raw data does not need.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array};
use hypnos_compactor::downsample::downsample_block;
use hypnos_engine::{BlockCatalog, MergedSource, QueryEngine, QueryOptions};
use hypnos_planner::{MaxSourceResolution, QueryResult, RangeSeries};
use hypnos_schemas::block::{BlockReader, write_block};
use hypnos_schemas::{
    Labels, MatchOp, Matcher, RESOLUTION_1H, RESOLUTION_5M, ReadAggregate, ReadHints,
    STALE_NAN_BITS, SeriesData, SeriesSource, TenantId, TimeRange,
};
use object_store::ObjectStore;
use object_store::memory::InMemory;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAYS: i64 = 3;
const BLOCK: i64 = 2 * HOUR;
const SCRAPE: i64 = 15_000;
/// Blocks from here on are only raw.
const NOT_DOWNSAMPLED_FROM: i64 = DAYS * 24 * HOUR - 6 * HOUR;

/// Largest relative difference between `rate`/`increase` over 5m data and over raw data
/// (ranges of 1h to 6h, step 1h; 3.3% measured on this data).
const RATE_TOLERANCE_5M: f64 = 0.05;
/// The same over 1h data (ranges of 12h and 24h, step 1h; measured on this data: 8% where
/// a range holds only 1h data, 15% where it also reaches the raw data after the last 1h
/// block). With one point per hour the first hour of a range is extrapolated from the
/// others, and less so when raw samples make the points uneven, so 1h data suits rates
/// over half a day or more.
const RATE_TOLERANCE_1H: f64 = 0.20;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn labels(name: &str, instance: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("instance", instance), ("job", "node")])
}

/// The raw samples of every series over the whole period.
fn generate() -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let n = DAYS * 24 * HOUR / SCRAPE;
    let mut out = Vec::new();
    for (i, instance) in ["a", "b", "c"].iter().enumerate() {
        // A counter growing at a varying rate, reset to 0 about every 14 hours.
        let mut c = 1000.0 * i as f64;
        let mut counter = Vec::new();
        // A gauge: a daily wave with noise.
        let mut gauge = Vec::new();
        for k in 0..n {
            let t = k * SCRAPE + (rng.next() % 40) as i64;
            // A daily traffic wave: between 1 and 3 times the base rate.
            let day = (t as f64 / (24 * HOUR) as f64) * std::f64::consts::TAU;
            if rng.f() < 1.0 / (14.0 * 240.0) {
                c = 0.0;
            } else {
                c += (rng.next() % 20) as f64 * (2.0 + day.sin());
            }
            counter.push((t, c));
            gauge.push((t, 50.0 + 40.0 * day.sin() + rng.f() * 5.0 - i as f64));
        }
        out.push((labels("requests_total", instance), counter));
        out.push((labels("temperature", instance), gauge));
    }
    // A gauge that stops for six hours (a staleness marker, then nothing) and comes back.
    let mut flaky = Vec::new();
    for k in 0..n {
        let t = k * SCRAPE;
        let gap = (20 * HOUR..26 * HOUR).contains(&t);
        if gap && t == 20 * HOUR {
            flaky.push((t, f64::from_bits(STALE_NAN_BITS)));
        } else if !gap {
            flaky.push((t, (k % 97) as f64 * 0.25));
        }
    }
    out.push((labels("queue_length", "a"), flaky));
    out
}

/// Writes the raw series as 2h blocks, downsamples each to 5m and to 1h, and returns an
/// engine over every block (and the catalog).
async fn engine_and_catalog() -> (QueryEngine, Arc<BlockCatalog>) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let tenant = TenantId::new("t").unwrap();
    let all = generate();
    for start in (0..DAYS * 24 * HOUR).step_by(BLOCK as usize) {
        let series: Vec<SeriesData> = all
            .iter()
            .map(|(l, pts)| {
                let pts: Vec<&(i64, f64)> = pts
                    .iter()
                    .filter(|p| (start..start + BLOCK).contains(&p.0))
                    .collect();
                SeriesData::new(
                    l.clone(),
                    pts.iter().map(|p| p.0).collect::<Int64Array>(),
                    pts.iter().map(|p| p.1).collect::<Float64Array>(),
                )
            })
            .collect();
        let raw = write_block(&store, &tenant, series).await.unwrap();
        let reader = BlockReader::new(Arc::clone(&store), raw).unwrap();
        // The last blocks are too recent to be downsampled: reads fall back to raw data.
        if start >= NOT_DOWNSAMPLED_FROM {
            continue;
        }
        for res in [RESOLUTION_5M, RESOLUTION_1H] {
            downsample_block(&store, &reader, res).await.unwrap();
        }
    }
    let catalog = Arc::new(BlockCatalog::new(store));
    let raw_blocks = DAYS * 24 * HOUR / BLOCK;
    let downsampled = NOT_DOWNSAMPLED_FROM / BLOCK;
    assert_eq!(
        catalog.sync().await.unwrap() as i64,
        raw_blocks + 2 * downsampled
    );
    let blocks: Arc<dyn SeriesSource> = Arc::clone(&catalog) as Arc<dyn SeriesSource>;
    (
        QueryEngine::new(Arc::new(MergedSource::new(vec![blocks]))),
        catalog,
    )
}

async fn query(
    engine: &QueryEngine,
    q: &str,
    res: MaxSourceResolution,
    range: (i64, i64),
) -> Vec<RangeSeries> {
    let opts = QueryOptions {
        max_source_resolution: res,
        ..QueryOptions::default()
    };
    let tenant = TenantId::new("t").unwrap();
    match engine
        .range_query(&tenant, q, range.0, range.1, HOUR, &opts)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
    {
        QueryResult::Matrix(m) => m,
        other => panic!("{q}: not a matrix: {other:?}"),
    }
}

/// Asserts that `got` has the series and steps of `want`, with values within `rel`
/// (relative, or absolute below 1).
#[track_caller]
fn assert_close(q: &str, res: &str, want: &[RangeSeries], got: &[RangeSeries], rel: f64) -> f64 {
    assert_eq!(want.len(), got.len(), "{q} at {res}: series");
    let mut worst: f64 = 0.0;
    for (w, g) in want.iter().zip(got) {
        assert_eq!(w.labels, g.labels, "{q} at {res}");
        let wt: Vec<i64> = w.points.iter().map(|p| p.0).collect();
        let gt: Vec<i64> = g.points.iter().map(|p| p.0).collect();
        assert_eq!(wt, gt, "{q} at {res}: steps of {}", w.labels);
        for (a, b) in w.points.iter().zip(&g.points) {
            let err = (a.1 - b.1).abs() / a.1.abs().max(1.0);
            worst = worst.max(err);
            assert!(
                err <= rel,
                "{q} at {res}, {} at {}: raw {} vs {} (relative error {err})",
                w.labels,
                a.0,
                a.1,
                b.1
            );
        }
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downsampled_answers_match_raw() {
    let (engine, catalog) = engine_and_catalog().await;
    // The reads do use downsampled data: about one point per window where it exists, raw
    // samples after it.
    let tenant = TenantId::new("t").unwrap();
    let name = [Matcher::new(MatchOp::Equal, "__name__", "temperature").unwrap()];
    let whole = TimeRange::new(0, DAYS * 24 * HOUR);
    for (res, per_window) in [(0, 1), (RESOLUTION_5M, 20), (RESOLUTION_1H, 240)] {
        let hints = ReadHints {
            max_resolution_ms: res,
            aggregate: ReadAggregate::Max,
        };
        let got = catalog
            .select_hinted(&tenant, &name, whole, hints)
            .await
            .unwrap();
        assert_eq!(got.len(), 3);
        let raw_tail = (DAYS * 24 * HOUR - NOT_DOWNSAMPLED_FROM) / SCRAPE;
        let want = NOT_DOWNSAMPLED_FROM / SCRAPE / per_window + raw_tail;
        for s in &got {
            // Block starts cut a window in two: at most one more point per block.
            let n = s.len() as i64;
            assert!(
                (want..=want + NOT_DOWNSAMPLED_FROM / BLOCK).contains(&n),
                "{res}: {n} points, want about {want}"
            );
        }
    }
    // Whole hours, from a point where a 6h range is full to the end.
    let range = (6 * HOUR, DAYS * 24 * HOUR);
    let five = [
        (MaxSourceResolution::FiveMinutes, "5m"),
        (MaxSourceResolution::OneHour, "1h"),
    ];
    let mut queries = Vec::new();
    for metric in ["requests_total", "temperature", "queue_length"] {
        for (f, rel) in [
            ("max_over_time", 0.0),
            ("min_over_time", 0.0),
            ("count_over_time", 0.0),
            ("sum_over_time", 1e-9),
            ("avg_over_time", 1e-9),
        ] {
            queries.push((format!("{f}({metric}[1h])"), rel));
            queries.push((format!("{f}({metric}{{job=\"node\"}}[3h])"), rel));
        }
    }
    queries.push((
        "sum by (job) (count_over_time({__name__=~\".+\"}[1h]))".into(),
        0.0,
    ));
    queries.push((
        "max by (instance) (max_over_time({job=~\"no.*\"}[2h]))".into(),
        0.0,
    ));
    for (q, rel) in queries {
        let q = q.as_str();
        let raw = query(&engine, q, MaxSourceResolution::Raw, range).await;
        assert!(!raw.is_empty(), "{q}: no raw answer");
        for (res, name) in five {
            let got = query(&engine, q, res, range).await;
            assert_close(q, name, &raw, &got, rel);
        }
    }
    let m5 = (MaxSourceResolution::FiveMinutes, "5m", RATE_TOLERANCE_5M);
    let h1 = (MaxSourceResolution::OneHour, "1h", RATE_TOLERANCE_1H);
    for (q, (res, name, rel)) in [
        ("rate(requests_total[1h])", m5),
        ("increase(requests_total[1h])", m5),
        // Ranges over block boundaries (blocks are 2h long).
        ("rate(requests_total[3h])", m5),
        ("increase(requests_total[6h])", m5),
        ("rate(requests_total[24h])", h1),
        ("increase(requests_total[12h])", h1),
    ] {
        // Only steps whose range is full of data (a range reaching before the first sample
        // is extrapolated differently from 15s samples and from hourly points).
        let hours: i64 = q[q.find('[').unwrap() + 1..q.find("h]").unwrap()]
            .parse()
            .unwrap();
        let range = (range.0.max((hours + 1) * HOUR), range.1);
        let raw = query(&engine, q, MaxSourceResolution::Raw, range).await;
        let got = query(&engine, q, res, range).await;
        let worst = assert_close(q, name, &raw, &got, rel);
        eprintln!("{q} at {name}: worst relative error {worst:.5}");
    }
}
