use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array};
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
    assert_eq!(meta.schema_version, 2);

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
    assert!(err.contains("versions up to 2"), "{err}");
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
            (0usize..3, prop::collection::vec(value(), 300), 0u8..3),
            1..8,
        ),
    )
        .prop_map(|(grids, specs)| {
            specs
                .into_iter()
                .enumerate()
                .map(|(i, (g, vals, kind))| {
                    let ts = &grids[g % grids.len()];
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
                prop_assert_eq!(bits(g), bits(w));
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
