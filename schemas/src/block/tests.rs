use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};
use proptest::prelude::*;

use super::*;
use crate::layout::{META_FILE, SAMPLES_FILE, SERIES_FILE, block_file};
use crate::{Labels, MatchOp, Matcher, SeriesSource, TimeRange};

fn series(name: &str, job: &str, ts: &[i64], vs: &[f64]) -> SeriesData {
    SeriesData::new(
        Labels::from_pairs([("__name__", name), ("job", job)]),
        Int64Array::from(ts.to_vec()),
        Float64Array::from(vs.to_vec()),
    )
}

fn local() -> (tempfile::TempDir, Arc<dyn ObjectStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    (dir, store)
}

fn bits(s: &SeriesData) -> Vec<u64> {
    s.values().values().iter().map(|v| v.to_bits()).collect()
}

#[tokio::test]
async fn write_then_read_back_bit_exact() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let stale = f64::from_bits(crate::STALE_NAN_BITS);
    let odd_nan = f64::from_bits(0x7ff8_0000_0000_0abc);
    let input = vec![
        series("up", "b", &[1000, 2000, 3000], &[1.0, stale, odd_nan]),
        series("up", "a", &[1500, 2500], &[0.5, -0.0]),
        series("empty", "a", &[], &[]),
    ];
    let meta = write_block(&store, &tenant, input).await.unwrap();
    assert_eq!((meta.num_series, meta.num_samples), (2, 5));
    assert_eq!((meta.min_time, meta.max_time), (1000, 3000));
    assert_eq!(meta.schema_version, 3);

    let path = block_file(&tenant, meta.ulid, META_FILE);
    let back = read_meta(&store, &path).await.unwrap();
    assert_eq!(back, meta);

    let reader = BlockReader::new(Arc::clone(&store), meta).unwrap();
    let m = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
    let got = reader
        .select(&tenant, std::slice::from_ref(&m), TimeRange::new(0, 10_000))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].labels.get("job"), "a");
    let b = &got[1];
    assert_eq!(b.timestamps().values().to_vec(), vec![1000, 2000, 3000]);
    assert_eq!(
        bits(b),
        vec![1.0f64.to_bits(), crate::STALE_NAN_BITS, odd_nan.to_bits()]
    );
    assert_eq!(got[0].values().value(1).to_bits(), (-0.0f64).to_bits());

    // Time range trimming, inclusive on both ends.
    let got = reader
        .select(
            &tenant,
            std::slice::from_ref(&m),
            TimeRange::new(2000, 2500),
        )
        .await
        .unwrap();
    let counts: Vec<usize> = got.iter().map(|s| s.len()).collect();
    assert_eq!(counts, vec![1, 1]);

    // Another tenant never sees this block.
    let other = TenantId::new("t2").unwrap();
    assert!(
        reader
            .select(&other, &[m], TimeRange::new(0, 10_000))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn shared_timestamps_and_scaled_values_read_back_per_series() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let ts: Vec<i64> = (0..5000)
        .map(|i| i * 15_000 + (i * 7919) % 51 - 25)
        .collect();
    let counter: Vec<f64> = (0..5000).map(|i| (i * 137) as f64 / 100.0).collect();
    let bytes: Vec<f64> = (0..5000).map(|i| (i * 4096) as f64).collect();
    let mut floats: Vec<f64> = (0..5000).map(|i| (i as f64).sqrt()).collect();
    floats[10] = f64::from_bits(crate::STALE_NAN_BITS);
    let mut with_stale = counter.clone();
    with_stale[4999] = f64::from_bits(crate::STALE_NAN_BITS);
    let input = vec![
        series("a", "x", &ts, &counter),
        series("b", "x", &ts, &bytes),
        series("c", "x", &ts, &floats),
        series("d", "x", &ts[..4000], &with_stale[..4000]),
        series("e", "x", &ts, &with_stale),
    ];
    let meta = write_block(&store, &tenant, input.clone()).await.unwrap();
    let reader = BlockReader::new(Arc::clone(&store), meta).unwrap();
    // Each series alone (the ones sharing timestamps need their source's rows).
    for want in &input {
        let m = Matcher::new(MatchOp::Equal, "__name__", want.labels.metric_name()).unwrap();
        for range in [
            TimeRange::new(i64::MIN, i64::MAX),
            TimeRange::new(30_000_000, 40_000_000),
        ] {
            let got = reader
                .select(&tenant, std::slice::from_ref(&m), range)
                .await
                .unwrap();
            assert_eq!(got.len(), 1);
            let lo = want
                .timestamps()
                .values()
                .partition_point(|t| *t < range.min);
            let hi = want
                .timestamps()
                .values()
                .partition_point(|t| *t <= range.max);
            assert_eq!(
                got[0].timestamps().values(),
                &want.timestamps().values()[lo..hi]
            );
            assert_eq!(bits(&got[0]), bits(want)[lo..hi].to_vec());
        }
    }
}

/// A block larger than one row group and many pages: reads of any subset of series, with
/// or without shared timestamps and time limits, return exactly that subset (the reader
/// selects rows by series, skipping the pages and row groups of the others).
#[tokio::test]
async fn row_selection_across_row_groups_and_pages() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let n_samples = 4_000i64;
    let shared_ts: Vec<i64> = (0..n_samples).map(|i| i * 15_000 + (i % 7)).collect();
    let mut input = Vec::new();
    // 300 series x 4,000 samples: more rows than SAMPLES_ROW_GROUP, so two row groups, and
    // pages of SAMPLES_PAGE_ROWS that hold ~30 series each.
    for k in 0..300i64 {
        let ts: Vec<i64> = if k % 3 == 0 {
            shared_ts.clone()
        } else {
            (0..n_samples).map(|i| i * 15_000 + (i * k) % 11).collect()
        };
        let vs: Vec<f64> = (0..n_samples).map(|i| (i * k) as f64 / 4.0).collect();
        input.push(series(&format!("m{k:03}"), "x", &ts, &vs));
    }
    assert!(300 * n_samples as usize > SAMPLES_ROW_GROUP);
    let meta = write_block(&store, &tenant, input.clone()).await.unwrap();
    let reader = BlockReader::new(Arc::clone(&store), meta).unwrap();
    let check = |got: Vec<SeriesData>, names: &[usize], range: TimeRange| {
        assert_eq!(got.len(), names.len(), "{names:?}");
        for (g, k) in got.iter().zip(names) {
            let want = &input[*k];
            assert_eq!(g.labels, want.labels);
            let t = want.timestamps().values();
            let (lo, hi) = (
                t.partition_point(|x| *x < range.min),
                t.partition_point(|x| *x <= range.max),
            );
            assert_eq!(g.timestamps().values(), &t[lo..hi], "{}", want.labels);
            assert_eq!(bits(g), bits(want)[lo..hi].to_vec(), "{}", want.labels);
        }
    };
    let all = TimeRange::new(i64::MIN, i64::MAX);
    let late = TimeRange::new(50_000_000, 50_100_000);
    // Single series: first, in the middle of a page, on the row-group boundary (rows of
    // series 262 straddle row 1,048,576), last.
    for k in [0usize, 1, 131, 262, 263, 299] {
        for range in [all, late] {
            let m = Matcher::new(MatchOp::Equal, "__name__", format!("m{k:03}")).unwrap();
            let got = reader.select(&tenant, &[m], range).await.unwrap();
            check(got, &[k], range);
        }
    }
    // Scattered sets, in both row groups, by regex.
    let m = Matcher::new(MatchOp::Re, "__name__", "m(00[1-4]|150|2[6-9]9)").unwrap();
    let names = [1, 2, 3, 4, 150, 269, 279, 289, 299];
    for range in [all, late] {
        let got = reader
            .select(&tenant, std::slice::from_ref(&m), range)
            .await
            .unwrap();
        check(got, &names, range);
    }
    // Everything.
    let m = Matcher::new(MatchOp::Re, "__name__", ".+").unwrap();
    let got = reader.select(&tenant, &[m], late).await.unwrap();
    check(got, &(0..300).collect::<Vec<_>>(), late);
}

#[tokio::test]
async fn newer_schema_version_is_refused_clearly() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let meta = write_block(&store, &tenant, vec![series("up", "a", &[1], &[1.0])])
        .await
        .unwrap();
    let mut newer = meta.clone();
    newer.schema_version = BLOCK_SCHEMA_VERSION + 1;
    let path = block_file(&tenant, meta.ulid, META_FILE);
    store
        .put(&path, serde_json::to_vec(&newer).unwrap().into())
        .await
        .unwrap();
    let err = read_meta(&store, &path).await.unwrap_err().to_string();
    assert!(err.contains("upgrade hypnos"), "{err}");
    assert!(err.contains("versions up to 3"), "{err}");
}

/// Writes `input` (sorted by labels) as a version 1 block, exactly as the version 1 writer
/// did: three non-null sample columns, no encoding columns in `series.parquet`.
async fn write_v1_block(
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
    input: &[SeriesData],
) -> crate::layout::BlockMeta {
    use arrow::array::{MapBuilder, RecordBatch, StringBuilder, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    let ulid = ulid::Ulid::new();
    let series_schema = Arc::new(Schema::new(vec![
        Field::new(SERIES_REF, DataType::UInt32, false),
        Field::new(METRIC_NAME_COL, DataType::Utf8, false),
        labels_map_field(),
    ]));
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for s in input {
        for l in s.labels.iter() {
            labels.keys().append_value(&l.name);
            labels.values().append_value(&l.value);
        }
        labels.append(true).unwrap();
    }
    let l = labels.finish();
    let DataType::Map(f, _) = labels_map_field().data_type().clone() else {
        unreachable!()
    };
    let l =
        arrow::array::MapArray::try_new(f, l.offsets().clone(), l.entries().clone(), None, false)
            .unwrap();
    let series_batch = RecordBatch::try_new(
        Arc::clone(&series_schema),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..input.len() as u32)),
            Arc::new(arrow::array::StringArray::from_iter_values(
                input.iter().map(|s| s.labels.metric_name().to_string()),
            )),
            Arc::new(l),
        ],
    )
    .unwrap();
    let samples_schema = Arc::new(Schema::new(vec![
        Field::new(SERIES_REF, DataType::UInt32, false),
        Field::new(TIMESTAMP, DataType::Int64, false),
        Field::new(VALUE, DataType::Float64, false),
    ]));
    let mut refs = Vec::new();
    let mut ts = Vec::new();
    let mut vs = Vec::new();
    for (i, s) in input.iter().enumerate() {
        refs.extend(std::iter::repeat_n(i as u32, s.len()));
        ts.extend_from_slice(s.timestamps().values());
        vs.extend_from_slice(s.values().values());
    }
    let samples_batch = RecordBatch::try_new(
        Arc::clone(&samples_schema),
        vec![
            Arc::new(UInt32Array::from(refs)),
            Arc::new(Int64Array::from(ts.clone())),
            Arc::new(Float64Array::from(vs)),
        ],
    )
    .unwrap();
    let mut files = Vec::new();
    for (name, batch) in [(SERIES_FILE, series_batch), (SAMPLES_FILE, samples_batch)] {
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        files.push(crate::layout::BlockFile {
            name: name.into(),
            size_bytes: buf.len() as u64,
        });
        store
            .put(&block_file(tenant, ulid, name), buf.into())
            .await
            .unwrap();
    }
    let meta = crate::layout::BlockMeta {
        ulid,
        tenant: tenant.to_string(),
        min_time: *ts.iter().min().unwrap(),
        max_time: *ts.iter().max().unwrap(),
        resolution_ms: 0,
        level: 1,
        num_series: input.len() as u64,
        num_samples: ts.len() as u64,
        num_histogram_samples: 0,
        schema_version: 1,
        source: "head".into(),
        sources: Vec::new(),
        files,
    };
    // A version 1 meta.json has no `sources` field.
    let json = serde_json::to_vec_pretty(&meta).unwrap();
    assert!(!String::from_utf8_lossy(&json).contains("sources"));
    store
        .put(&block_file(tenant, ulid, META_FILE), json.into())
        .await
        .unwrap();
    meta
}

#[tokio::test]
async fn version_1_blocks_still_read() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let stale = f64::from_bits(crate::STALE_NAN_BITS);
    let input = vec![
        series("up", "a", &[1500, 2500], &[0.5, -0.0]),
        series("up", "b", &[1000, 2000, 3000], &[1.0, stale, 2.0]),
    ];
    let meta = write_v1_block(&store, &tenant, &input).await;
    let back = read_meta(&store, &block_file(&tenant, meta.ulid, META_FILE))
        .await
        .unwrap();
    assert_eq!(back.schema_version, 1);
    let reader = BlockReader::new(Arc::clone(&store), back).unwrap();
    let got = reader
        .select(&tenant, &[], TimeRange::new(0, 2000))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].timestamps().values().to_vec(), vec![1500]);
    assert_eq!(got[1].timestamps().values().to_vec(), vec![1000, 2000]);
    assert_eq!(bits(&got[1]), vec![1.0f64.to_bits(), crate::STALE_NAN_BITS]);
}

/// Values that stress the codecs: decimals, integers, NaN payloads, stale markers, -0.0,
/// infinities, subnormals and arbitrary bit patterns.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000_000i64..1_000_000_000).prop_map(|c| c as f64 / 100.0),
        (-1_000_000_000i64..1_000_000_000).prop_map(|c| c as f64),
        (0i64..1 << 40).prop_map(|p| (p * 4096) as f64),
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::from_bits(crate::STALE_NAN_BITS)),
        Just(-0.0),
        Just(f64::INFINITY),
        Just(f64::MIN_POSITIVE / 3.0),
        Just(9_007_199_254_740_993.0),
    ]
}

/// Series of one of a few kinds, with timestamps that are sometimes shared.
fn series_set() -> impl Strategy<Value = Vec<SeriesData>> {
    let ts = prop::collection::vec(1i64..40_000, 1..300).prop_map(|deltas| {
        let mut t = 1_700_000_000_000i64;
        deltas
            .into_iter()
            .map(|d| {
                t += d;
                t
            })
            .collect::<Vec<i64>>()
    });
    (
        prop::collection::vec(ts, 1..3),
        prop::collection::vec(
            (0usize..3, prop::collection::vec(value(), 300), 0u8..4),
            1..8,
        ),
    )
        .prop_map(|(grids, specs)| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (g, vals, kind))| {
                    let ts = &grids[g % grids.len()];
                    if kind == 3 {
                        // histograms (any bits in their sums) between floats
                        let samples: Vec<S> = (0..ts.len())
                            .map(|k| {
                                if k.is_multiple_of(3) {
                                    S::F(vals[k])
                                } else {
                                    S::H(hist(k, vals[k]))
                                }
                            })
                            .collect();
                        return mixed(&format!("m{i}"), "j", ts, &samples);
                    }
                    let vals: Vec<f64> = match kind {
                        // all the same kind of value from the strategy
                        0 => vals[..ts.len()].to_vec(),
                        // a counter with two decimals, ending stale
                        1 => (0..ts.len())
                            .map(|k| {
                                if k + 1 == ts.len() {
                                    f64::from_bits(crate::STALE_NAN_BITS)
                                } else {
                                    (k as i64 * 1234 + 7) as f64 / 100.0
                                }
                            })
                            .collect(),
                        // mostly integers with odd values mixed in
                        _ => (0..ts.len())
                            .map(|k| if k % 5 == 0 { vals[k] } else { k as f64 })
                            .collect(),
                    };
                    series(&format!("m{i}"), "j", ts, &vals)
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_bit_round_trips(input in series_set()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (_dir, store) = local();
            let tenant = TenantId::new("p").unwrap();
            let meta = write_block(&store, &tenant, input.clone()).await.unwrap();
            let reader = BlockReader::new(Arc::clone(&store), meta).unwrap();
            let got = reader
                .select(&tenant, &[], TimeRange::new(i64::MIN, i64::MAX))
                .await
                .unwrap();
            let mut want = input.clone();
            want.sort_by(|a, b| a.labels.cmp(&b.labels));
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(&g.labels, &w.labels);
                prop_assert_eq!(g.timestamps().values(), w.timestamps().values());
                prop_assert_eq!(rows(g), rows(w));
            }
            Ok(())
        })?;
    }

    #[test]
    fn scaled_integers_decode_bit_exact(v in value(), scale in 0i8..=codec::MAX_SCALE) {
        if let Some(m) = codec::encode(v, scale) {
            prop_assert_eq!(codec::decode(m, scale).to_bits(), v.to_bits());
        }
    }
}

// Native histograms.

use crate::histogram::{FloatHistogram, ResetHint, Span};

/// A histogram whose fields all depend on `k` and `x` (any bits, NaN payloads included).
fn hist(k: usize, x: f64) -> FloatHistogram {
    let n = k % 4 + 1;
    FloatHistogram {
        counter_reset_hint: [
            ResetHint::Unknown,
            ResetHint::NotReset,
            ResetHint::Reset,
            ResetHint::Gauge,
        ][k % 4],
        schema: (k % 12) as i32 - 3,
        zero_threshold: 1e-128,
        zero_count: k as f64,
        count: (k * 3) as f64 + 1.0,
        sum: x,
        positive_spans: vec![Span {
            offset: k as i32 % 5 - 2,
            length: n as u32,
        }],
        positive_buckets: (0..n).map(|i| (k + i) as f64).collect(),
        negative_spans: if k.is_multiple_of(3) {
            vec![Span {
                offset: 1,
                length: 1,
            }]
        } else {
            Vec::new()
        },
        negative_buckets: if k.is_multiple_of(3) {
            vec![0.5]
        } else {
            Vec::new()
        },
        custom_values: Vec::new(),
    }
}

/// One sample of a test series: a float or a histogram.
#[derive(Clone, Debug)]
enum S {
    F(f64),
    H(FloatHistogram),
}

fn mixed(name: &str, job: &str, ts: &[i64], samples: &[S]) -> SeriesData {
    assert_eq!(ts.len(), samples.len());
    let values: Float64Array = samples
        .iter()
        .map(|s| match s {
            S::F(v) => Some(*v),
            S::H(_) => Some(0.0),
        })
        .collect();
    let encoded: Vec<Option<Vec<u8>>> = samples
        .iter()
        .map(|s| match s {
            S::F(_) => None,
            S::H(h) => Some(h.encode()),
        })
        .collect();
    let histograms: arrow::array::BinaryArray = encoded.iter().map(|h| h.as_deref()).collect();
    SeriesData::with_histograms(
        Labels::from_pairs([("__name__", name), ("job", job)]),
        Int64Array::from(ts.to_vec()),
        values,
        histograms,
    )
}

/// Every sample of a series: its timestamp, and the bits of a float or the stored bytes of
/// a histogram.
fn rows(s: &SeriesData) -> Vec<(i64, Option<u64>, Option<Vec<u8>>)> {
    let h = s.histograms();
    (0..s.len())
        .map(|i| {
            let t = s.timestamps().value(i);
            match h.filter(|h| h.is_valid(i)) {
                Some(h) => (t, None, Some(h.value(i).to_vec())),
                None => (t, Some(s.values().value(i).to_bits()), None),
            }
        })
        .collect()
}

/// `want`'s samples within `range`.
fn rows_in(want: &SeriesData, range: TimeRange) -> Vec<(i64, Option<u64>, Option<Vec<u8>>)> {
    rows(want)
        .into_iter()
        .filter(|r| range.min <= r.0 && r.0 <= range.max)
        .collect()
}

#[tokio::test]
async fn histograms_round_trip_bit_exact_with_floats() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let stale = f64::from_bits(crate::STALE_NAN_BITS);
    let odd_nan = f64::from_bits(0x7ff8_0000_0000_0abc);
    let ts: Vec<i64> = (0..12).map(|i| 1000 + i * 1000).collect();
    // Histograms only; floats then histograms (a metric changing type); alternating; a
    // float series sharing the histogram series' timestamps.
    let only: Vec<S> = (0..12).map(|k| S::H(hist(k, k as f64 * 0.25))).collect();
    let switch: Vec<S> = (0..12)
        .map(|k| {
            if k < 6 {
                S::F(k as f64 / 100.0)
            } else {
                S::H(hist(k, odd_nan))
            }
        })
        .collect();
    let alternating: Vec<S> = (0..12)
        .map(|k| match k % 3 {
            0 => S::H(hist(k, -0.0)),
            1 => S::F(stale),
            _ => S::F(k as f64),
        })
        .collect();
    let input = vec![
        mixed("h", "only", &ts, &only),
        mixed("h", "switch", &ts, &switch),
        mixed("h", "alternating", &ts, &alternating),
        series(
            "h",
            "floats",
            &ts,
            &(0..12).map(|k| k as f64).collect::<Vec<_>>(),
        ),
    ];
    let meta = write_block(&store, &tenant, input.clone()).await.unwrap();
    assert_eq!((meta.num_series, meta.num_samples), (4, 48));
    let reader = BlockReader::new(Arc::clone(&store), meta.clone()).unwrap();
    assert_eq!(reader.histogram_samples().await.unwrap(), 12 + 6 + 4);
    let mut want = input.clone();
    want.sort_by(|a, b| a.labels.cmp(&b.labels));
    for range in [
        TimeRange::new(i64::MIN, i64::MAX),
        // Only float rows of `switch`: read back as a float series.
        TimeRange::new(2000, 5500),
        TimeRange::new(6000, 8000),
        TimeRange::new(12_000, 12_000),
    ] {
        for w in &want {
            let m = Matcher::new(MatchOp::Equal, "job", w.labels.get("job")).unwrap();
            let got = reader.select(&tenant, &[m], range).await.unwrap();
            assert_eq!(got.len(), 1);
            let g = &got[0];
            assert_eq!(g.labels, w.labels);
            let expected = rows_in(w, range);
            assert_eq!(rows(g), expected, "{} {range:?}", w.labels);
            // Histograms only when the rows read hold some.
            assert_eq!(
                g.histograms().is_some(),
                expected.iter().any(|r| r.2.is_some()),
                "{} {range:?}",
                w.labels
            );
            if let Some(h) = g.histograms() {
                for i in (0..g.len()).filter(|i| h.is_valid(*i)) {
                    assert_eq!(g.values().value(i), 0.0);
                    let back = FloatHistogram::decode(h.value(i)).unwrap();
                    assert!(back.count >= 1.0);
                }
            }
        }
        // All together (one pass for every series).
        let got = reader.select(&tenant, &[], range).await.unwrap();
        let expected: Vec<_> = want
            .iter()
            .map(|w| rows_in(w, range))
            .filter(|r| !r.is_empty())
            .collect();
        assert_eq!(got.iter().map(rows).collect::<Vec<_>>(), expected);
    }
    // The values decode to the histograms written.
    let m = Matcher::new(MatchOp::Equal, "job", "switch").unwrap();
    let got = reader
        .select(&tenant, &[m], TimeRange::new(7000, 7000))
        .await
        .unwrap();
    let back = FloatHistogram::decode(got[0].histograms().unwrap().value(0)).unwrap();
    assert_eq!(back.sum.to_bits(), odd_nan.to_bits());
    let mut h = hist(6, odd_nan);
    h.sum = 0.0;
    let mut b = back.clone();
    b.sum = 0.0;
    assert_eq!(b, h);

    // Counted by reading the column when the footer has no statistics.
    let bare = without_statistics(&store, &tenant, meta).await;
    let bare = BlockReader::new(Arc::clone(&store), bare).unwrap();
    assert_eq!(bare.histogram_samples().await.unwrap(), 12 + 6 + 4);
}

#[tokio::test]
async fn bad_histogram_columns_are_refused() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let mut w = BlockWriter::new(Arc::clone(&store), tenant);
    let err = w
        .append_with_histograms(
            Labels::from_pairs([("__name__", "h")]),
            &Int64Array::from(vec![1, 2]),
            &Float64Array::from(vec![0.0, 0.0]),
            Some(&arrow::array::BinaryArray::from(vec![Some(&b"x"[..])])),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("1 histograms for 2 timestamps"),
        "{err}"
    );
}

/// A block of many series, some of them histograms, larger than one row group: any
/// subset, with any time limits, reads back exactly (the row selection and both passes
/// include the histogram column).
#[tokio::test]
async fn histogram_rows_selected_across_row_groups() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let n = 6_000i64;
    let shared: Vec<i64> = (0..n).map(|i| i * 15_000 + i % 5).collect();
    let mut input = Vec::new();
    // 180 series x 6,000 samples > SAMPLES_ROW_GROUP rows: two row groups; every fifth a
    // histogram series, every seventh mixed, a third sharing timestamps.
    for k in 0..180usize {
        let ts: Vec<i64> = if k.is_multiple_of(3) {
            shared.clone()
        } else {
            (0..n).map(|i| i * 15_000 + (i * k as i64) % 13).collect()
        };
        let name = format!("m{k:03}");
        let s = if k.is_multiple_of(5) {
            let hs: Vec<S> = (0..n as usize)
                .map(|i| S::H(hist(i + k, i as f64)))
                .collect();
            mixed(&name, "x", &ts, &hs)
        } else if k.is_multiple_of(7) {
            let hs: Vec<S> = (0..n as usize)
                .map(|i| {
                    if (i / 100) % 2 == 0 {
                        S::F(i as f64 / 4.0)
                    } else {
                        S::H(hist(i, -(i as f64)))
                    }
                })
                .collect();
            mixed(&name, "x", &ts, &hs)
        } else {
            let vs: Vec<f64> = (0..n).map(|i| (i * k as i64) as f64 / 4.0).collect();
            series(&name, "x", &ts, &vs)
        };
        input.push(s);
    }
    assert!(180 * n as usize > SAMPLES_ROW_GROUP);
    let meta = write_block(&store, &tenant, input.clone()).await.unwrap();
    let reader = BlockReader::new(Arc::clone(&store), meta).unwrap();
    let histograms: usize = input
        .iter()
        .filter_map(|s| s.histograms())
        .map(|h| h.len() - h.null_count())
        .sum();
    assert_eq!(reader.histogram_samples().await.unwrap(), histograms as u64);
    let all = TimeRange::new(i64::MIN, i64::MAX);
    let late = TimeRange::new(80_000_000, 80_100_000);
    // Floats only inside a mixed series: rows 5,400..5,500 of m007 are floats.
    let float_part = TimeRange::new(5_400 * 15_000 + 20, 5_499 * 15_000);
    for ks in [
        vec![0usize],
        vec![5],
        vec![7],
        vec![174, 175, 176],
        vec![1, 35, 70, 105, 140, 175],
        (0..180).collect(),
    ] {
        let re = ks
            .iter()
            .map(|k| format!("m{k:03}"))
            .collect::<Vec<_>>()
            .join("|");
        let m = Matcher::new(MatchOp::Re, "__name__", re).unwrap();
        for range in [all, late, float_part] {
            let got = reader
                .select(&tenant, std::slice::from_ref(&m), range)
                .await
                .unwrap();
            assert_eq!(got.len(), ks.len());
            for (g, k) in got.iter().zip(&ks) {
                assert_eq!(g.labels, input[*k].labels);
                let want = rows_in(&input[*k], range);
                assert_eq!(g.histograms().is_some(), want.iter().any(|r| r.2.is_some()));
                assert_eq!(rows(g), want, "m{k:03} {range:?}");
            }
        }
    }
}

/// Rewrites a block as the version 2 writer left it: `samples.parquet` without the
/// histogram column, `schema_version` 2.
async fn as_version_2(
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
    meta: crate::layout::BlockMeta,
) -> crate::layout::BlockMeta {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = block_file(tenant, meta.ulid, SAMPLES_FILE);
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    let batches: Vec<arrow::array::RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    let v2_schema = Arc::new(arrow::datatypes::Schema::new(
        samples_file_schema().fields()[..4].to_vec(),
    ));
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, Arc::clone(&v2_schema), None).unwrap();
    for b in batches {
        assert_eq!(b.column(4).null_count(), b.num_rows(), "floats only");
        let b =
            arrow::array::RecordBatch::try_new(Arc::clone(&v2_schema), b.columns()[..4].to_vec())
                .unwrap();
        w.write(&b).unwrap();
    }
    w.close().unwrap();
    let mut meta = meta;
    meta.schema_version = 2;
    for f in &mut meta.files {
        if f.name == SAMPLES_FILE {
            f.size_bytes = buf.len() as u64;
        }
    }
    store.put(&path, buf.into()).await.unwrap();
    store
        .put(
            &block_file(tenant, meta.ulid, META_FILE),
            serde_json::to_vec(&meta).unwrap().into(),
        )
        .await
        .unwrap();
    meta
}

/// Rewrites a block's `samples.parquet` with every column but no statistics.
async fn without_statistics(
    store: &Arc<dyn ObjectStore>,
    tenant: &TenantId,
    meta: crate::layout::BlockMeta,
) -> crate::layout::BlockMeta {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    let path = block_file(tenant, meta.ulid, SAMPLES_FILE);
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    let props = WriterProperties::builder()
        .set_statistics_enabled(EnabledStatistics::None)
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, samples_file_schema(), Some(props)).unwrap();
    for b in ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
    {
        w.write(&b.unwrap()).unwrap();
    }
    w.close().unwrap();
    let mut meta = meta;
    for f in &mut meta.files {
        if f.name == SAMPLES_FILE {
            f.size_bytes = buf.len() as u64;
        }
    }
    store.put(&path, buf.into()).await.unwrap();
    meta
}

#[tokio::test]
async fn version_2_blocks_still_read() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let stale = f64::from_bits(crate::STALE_NAN_BITS);
    let ts: Vec<i64> = (0..100).map(|i| i * 1000).collect();
    let input = vec![
        series(
            "up",
            "a",
            &ts,
            &ts.iter().map(|t| *t as f64 / 100.0).collect::<Vec<_>>(),
        ),
        series(
            "up",
            "b",
            &ts,
            &ts.iter().map(|t| (*t as f64).sqrt()).collect::<Vec<_>>(),
        ),
        series("up", "c", &ts[..3], &[1.0, stale, -0.0]),
    ];
    let meta = write_block(&store, &tenant, input.clone()).await.unwrap();
    let meta = as_version_2(&store, &tenant, meta).await;
    let back = read_meta(&store, &block_file(&tenant, meta.ulid, META_FILE))
        .await
        .unwrap();
    assert_eq!(back.schema_version, 2);
    let reader = BlockReader::new(Arc::clone(&store), back).unwrap();
    assert_eq!(reader.histogram_samples().await.unwrap(), 0);
    for range in [
        TimeRange::new(i64::MIN, i64::MAX),
        TimeRange::new(1500, 50_000),
    ] {
        let got = reader.select(&tenant, &[], range).await.unwrap();
        assert_eq!(got.len(), 3);
        for (g, w) in got.iter().zip(&input) {
            assert!(g.histograms().is_none());
            assert_eq!(rows(g), rows_in(w, range));
        }
    }
}

/// A float-only block pays next to nothing for the histogram column, compared with the same
/// samples written without it.
#[tokio::test]
async fn an_all_null_histogram_column_costs_next_to_nothing() {
    let (_dir, store) = local();
    let tenant = TenantId::new("t1").unwrap();
    let ts: Vec<i64> = (0..20_000).map(|i| i * 15_000 + i % 7).collect();
    let input: Vec<SeriesData> = (0..50)
        .map(|k| {
            let vs: Vec<f64> = (0..20_000)
                .map(|i| ((i * k) % 977) as f64 / 100.0)
                .collect();
            series(&format!("m{k}"), "x", &ts, &vs)
        })
        .collect();
    let meta = write_block(&store, &tenant, input).await.unwrap();
    let with = meta
        .files
        .iter()
        .find(|f| f.name == SAMPLES_FILE)
        .unwrap()
        .size_bytes;
    // The same file without the column, with the same writer properties.
    let path = block_file(&tenant, meta.ulid, SAMPLES_FILE);
    let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let v2_schema = Arc::new(arrow::datatypes::Schema::new(
        samples_file_schema().fields()[..4].to_vec(),
    ));
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        &mut buf,
        Arc::clone(&v2_schema),
        Some(writer_props(SAMPLES_FILE)),
    )
    .unwrap();
    for b in reader {
        let b = b.unwrap();
        let b =
            arrow::array::RecordBatch::try_new(Arc::clone(&v2_schema), b.columns()[..4].to_vec())
                .unwrap();
        w.write(&b).unwrap();
    }
    w.close().unwrap();
    let without = buf.len() as u64;
    // About 550 bytes per row group (page headers, definition levels, the footer's column
    // chunk): under a thousandth of a byte per sample.
    assert!(with > without);
    assert!(
        ((with - without) as f64) < meta.num_samples as f64 / 1000.0,
        "{with} bytes with the column, {without} without ({} samples)",
        meta.num_samples
    );
}
