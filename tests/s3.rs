//! Flush, query and compact against a real S3 API: moto's server (PyPI `moto[server]`),
//! started by the test on a free port. Without moto the tests are skipped, except under
//! `CI=true`.

mod common;

use std::process::{Command, Stdio};

use common::moto::Moto;
use common::*;

const T: Tenant<'static> = Tenant::Thanos("s3-tenant");

/// What the S3 tests write: two series of tenant `s3-tenant` and one of the default tenant.
fn write_data(s: &TestServer) -> i64 {
    let t0 = base_time();
    let pts =
        |m: f64| -> Vec<(i64, f64)> { (0..20).map(|k| (t0 + k * 15_000, k as f64 * m)).collect() };
    s.write(
        T,
        &request(vec![
            series("s3_counter", &[("instance", "a")], &pts(1.0)),
            series("s3_counter", &[("instance", "b")], &pts(2.5)),
        ]),
    );
    s.write(
        Tenant::Default,
        &request(vec![series("s3_default", &[], &pts(3.0))]),
    );
    t0
}

fn answers(s: &TestServer, t0: i64) -> Vec<serde_json::Value> {
    let end = t0 + 19 * 15_000;
    vec![
        normalize(&s.query(T, "s3_counter[1h]", end)),
        normalize(&s.query(T, "sum(rate(s3_counter[1m]))", end)),
        normalize(&s.query_range(T, "s3_counter", t0, end, 30_000)),
        normalize(&s.query(Tenant::Default, "s3_default[1h]", end)),
    ]
}

/// Flushes to the bucket, checks the objects, then answers the same from a server with an
/// empty data dir.
fn flush_and_reread(moto: &Moto, bucket: &str, prefix: &str, opts: Options) {
    let s = TestServer::with(opts.clone());
    let t0 = write_data(&s);
    let before = answers(&s, t0);
    let m = matrix(&before[0]);
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].1.len(), 20);
    s.flush();
    assert_eq!(
        answers(&s, t0),
        before,
        "answers changed by the flush to S3"
    );

    let keys = moto.keys(bucket);
    let metas: Vec<&String> = keys.iter().filter(|k| k.ends_with("/meta.json")).collect();
    for tenant in ["s3-tenant", "default-tenant"] {
        let want = format!("{prefix}tenants/{tenant}/");
        assert!(
            metas.iter().any(|k| k.starts_with(&want)),
            "no {want}<ulid>/meta.json in the bucket: {keys:?}"
        );
    }
    for meta in &metas {
        let dir = meta.trim_end_matches("meta.json");
        for f in ["series.parquet", "samples.parquet"] {
            assert!(
                keys.contains(&format!("{dir}{f}")),
                "{dir} lacks {f}: {keys:?}"
            );
        }
        let json: serde_json::Value = serde_json::from_slice(&moto.get(bucket, meta))
            .unwrap_or_else(|e| panic!("{meta} is not JSON: {e}"));
        assert!(
            json["num_samples"].as_u64().is_some_and(|n| n > 0),
            "{meta}: {json}"
        );
    }
    assert!(
        find_meta_files(&s.bucket_dir()).is_empty(),
        "blocks written to the local bucket despite S3"
    );
    drop(s);

    // Nothing local: every answer comes from the blocks in S3.
    let s2 = TestServer::with(opts);
    assert_eq!(answers(&s2, t0), before, "answers from S3 blocks differ");
}

#[test]
fn s3_by_url_and_aws_environment() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("hypnos-bucket");
    let opts = Options::default()
        .arg("--objstore-url")
        .arg("s3://hypnos-bucket/some/prefix")
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
    flush_and_reread(&moto, "hypnos-bucket", "some/prefix/", opts);
}

#[test]
fn s3_by_thanos_bucket_config() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("thanos-style");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bucket_config.yml");
    std::fs::write(
        &cfg,
        format!(
            "type: S3\nconfig:\n  bucket: \"thanos-style\"\n  endpoint: \"127.0.0.1:{}\"\n  \
             access_key: \"test\"\n  secret_key: \"test\"\n  insecure: true\n  \
             region: \"us-east-1\"\n",
            moto.port
        ),
    )
    .unwrap();
    let opts = Options::default()
        .arg("--objstore-config-file")
        .arg(cfg.display().to_string());
    flush_and_reread(&moto, "thanos-style", "", opts);
}

/// Runs the `hypnos` binary with `args` to completion; its output when it fails.
fn run_bin(args: &[&str], envs: &[(&str, String)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .expect("run hypnos");
    assert!(
        out.status.success(),
        "hypnos {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const H: i64 = 3_600_000;

/// The test counter: one sample a minute, reset to 0 half-way.
fn counter(w: i64, k: i64, m: f64) -> (i64, f64) {
    (w + k * 60_000, (k % 240) as f64 * m)
}

#[test]
fn s3_compaction_merges_and_downsamples() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("compact-bucket");
    let envs = [
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ];
    let url = "s3://compact-bucket/c";
    let mut opts = Options::default()
        .arg("--objstore-url")
        .arg(url)
        .arg("--compact-interval")
        .arg("0s");
    for (k, v) in &envs {
        opts = opts.env(*k, v.clone());
    }

    // Three head blocks in the 8h window [w, w+8h) of yesterday, and a recent one that
    // closes the window.
    let w = (now_ms() - 24 * H).div_euclid(8 * H) * 8 * H;
    let s = TestServer::with(opts.clone());
    for (from, to) in [(0, 120), (120, 300), (300, 480)] {
        let pts = |m: f64| (from..to).map(|k| counter(w, k, m)).collect::<Vec<_>>();
        s.write(
            T,
            &request(vec![
                series("s3c", &[("instance", "a")], &pts(1.0)),
                series("s3c", &[("instance", "b")], &pts(2.0)),
            ]),
        );
        s.flush();
    }
    let t0 = write_data(&s);
    s.flush();
    let end = w + 8 * H - 1;
    let ask = |s: &TestServer| {
        vec![
            normalize(&s.query(T, "s3c[8h]", end)),
            normalize(&s.query(T, "sum(increase(s3c[8h]))", end)),
            normalize(&s.query_range(T, "rate(s3c[10m])", w, end, 15 * 60_000)),
            normalize(&s.query(T, "s3_counter[1h]", t0 + 19 * 15_000)),
        ]
    };
    let before = ask(&s);
    assert_eq!(matrix(&before[0]).len(), 2);
    assert_eq!(matrix(&before[0])[0].1.len(), 480);
    drop(s);

    // Two runs: the first merges the window and downsamples it (spans of an hour are
    // enough with the advanced flags), the second deletes the merged blocks.
    let args = [
        "compact",
        "--objstore-url",
        url,
        "--delete-delay",
        "0s",
        "--downsample.5m-min-span",
        "1h",
        "--downsample.1h-min-span",
        "1h",
    ];
    run_bin(&args, &envs);
    run_bin(&args, &envs);

    let keys = moto.keys("compact-bucket");
    assert!(
        !keys.iter().any(|k| k.ends_with("deletion-mark.json")),
        "replaced blocks deleted: {keys:?}"
    );
    let metas: Vec<serde_json::Value> = keys
        .iter()
        .filter(|k| k.starts_with("c/tenants/s3-tenant/") && k.ends_with("/meta.json"))
        .map(|k| serde_json::from_slice(&moto.get("compact-bucket", k)).unwrap())
        .collect();
    let of = |res: i64| -> Vec<&serde_json::Value> {
        metas
            .iter()
            .filter(|m| m["resolution_ms"].as_i64() == Some(res))
            .collect()
    };
    let raw = of(0);
    assert_eq!(
        raw.len(),
        2,
        "the merged window and the recent block: {metas:?}"
    );
    let merged = raw
        .iter()
        .find(|m| m["min_time"].as_i64() == Some(w))
        .expect("merged block");
    assert_eq!(merged["level"], 2);
    assert_eq!(merged["source"], "compactor");
    let (m5, h1) = (of(300_000), of(3_600_000));
    assert_eq!((m5.len(), h1.len()), (1, 1), "{metas:?}");
    for (m, from) in [(m5[0], *merged), (h1[0], m5[0])] {
        assert_eq!(m["sources"], serde_json::json!([from["ulid"]]));
        assert_eq!(m["source"], "downsample");
        for f in ["min_time", "max_time", "level"] {
            assert_eq!(m[f], merged[f], "{f}");
        }
        assert_eq!(m["num_series"], 10, "5 aggregates of 2 series");
    }

    // The blocks read back from S3: every raw sample counted once, counters adjusted for
    // the reset (239 + 239 for instance a).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use hypnos_schemas::block::{BlockReader, read_meta};
        use hypnos_schemas::source::AGGR_LABEL;
        use object_store::ObjectStore;
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("compact-bucket")
            .with_endpoint(moto.endpoint())
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .unwrap();
        let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(s3);
        for m in [m5[0], h1[0]] {
            let path = object_store::path::Path::from(format!(
                "c/tenants/s3-tenant/{}/meta.json",
                m["ulid"].as_str().unwrap()
            ));
            let meta = read_meta(&store, &path).await.unwrap();
            // The reader addresses files from the bucket root: read through the prefix.
            let prefixed: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(
                object_store::prefix::PrefixStore::new(std::sync::Arc::clone(&store), "c"),
            );
            let reader = BlockReader::new(prefixed, meta).unwrap();
            let labels = reader.all_series().await.unwrap();
            let refs: Vec<u32> = (0..labels.len() as u32).collect();
            let all = hypnos_schemas::TimeRange::new(i64::MIN, i64::MAX);
            let mut counted = 0.0;
            for s in reader.read_refs(&refs, all).await.unwrap() {
                let l = &labels[s.series_ref as usize];
                let v = s.values.values();
                match (l.get(AGGR_LABEL), l.get("instance")) {
                    ("count", _) => counted += v.iter().sum::<f64>(),
                    ("counter", "a") => assert_eq!(v[v.len() - 1], 478.0, "{l}"),
                    ("counter", "b") => assert_eq!(v[v.len() - 1], 956.0, "{l}"),
                    ("max", "a") => assert_eq!(v.iter().cloned().fold(0.0, f64::max), 239.0),
                    _ => {}
                }
            }
            assert_eq!(counted, 960.0, "block {}", m["ulid"]);
        }
    });

    // `hypnos all` on the same bucket answers raw queries as before compaction.
    let s2 = TestServer::with(opts);
    assert_eq!(ask(&s2), before, "answers after compaction differ");
    drop(s2);

    // The bucket tool shows the resolutions.
    let ls = run_bin(&["tools", "bucket", "ls", "--objstore-url", url], &envs);
    for res in ["raw", "5m", "1h"] {
        assert!(
            ls.lines()
                .any(|l| l.starts_with("s3-tenant") && l.split_whitespace().nth(4) == Some(res)),
            "no {res} block listed:\n{ls}"
        );
    }
}
