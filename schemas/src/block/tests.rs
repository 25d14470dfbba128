use super::*;
use crate::MatchOp;
use object_store::local::LocalFileSystem;

fn series(name: &str, job: &str, ts: &[i64], vs: &[f64]) -> SeriesData {
    SeriesData::new(
        Labels::from_pairs([("__name__", name), ("job", job)]),
        Int64Array::from(ts.to_vec()),
        Float64Array::from(vs.to_vec()),
    )
}

#[tokio::test]
async fn write_then_read_back_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
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
    let bits: Vec<u64> = b.values().values().iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        bits,
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
async fn newer_schema_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
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
}
