//! Configuration of `hypnos all`: defaults, flags and their environment variables, the
//! object store by URL or Thanos bucket YAML, and the block duration.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const T: Tenant<'static> = Tenant::Thanos("cfg");

/// Writes one series of 5 samples for tenant `cfg` and returns its samples.
fn write_some(s: &TestServer, name: &str) -> Vec<(i64, f64)> {
    let t0 = base_time();
    let samples: Vec<(i64, f64)> = (0..5).map(|k| (t0 + k * 15_000, k as f64 * 1.5)).collect();
    s.write(
        T,
        &request(vec![series(name, &[("instance", "c")], &samples)]),
    );
    samples
}

#[track_caller]
fn assert_serves(s: &TestServer, name: &str, samples: &[(i64, f64)]) {
    let last = samples.last().unwrap().0;
    let m = matrix(&s.query(T, &format!("{name}[1h]"), last));
    assert_eq!(m.len(), 1, "{name}: {m:?}");
    assert_eq!(m[0].0["tenant_id"], "cfg");
    assert_points(&m[0].1, samples, name);
}

/// The `meta.json` files under `root`, relative to it.
fn metas(root: &Path) -> Vec<String> {
    find_meta_files(root)
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn help_lists_every_flag_with_its_env_var() {
    let out = std::process::Command::new(BIN)
        .args(["all", "--help"])
        .output()
        .expect("run hypnos all --help");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hypnos all --help failed: {text}");
    for (flag, env) in [
        ("--data-dir", "HYPNOS_DATA_DIR"),
        ("--http-address", "HYPNOS_HTTP_ADDRESS"),
        ("--grpc-address", "HYPNOS_GRPC_ADDRESS"),
        ("--objstore-url", "HYPNOS_OBJSTORE_URL"),
        ("--objstore-config-file", "HYPNOS_OBJSTORE_CONFIG_FILE"),
        ("--block-duration", "HYPNOS_BLOCK_DURATION"),
        ("--log-level", "HYPNOS_LOG_LEVEL"),
        ("--max-request-bytes", "HYPNOS_MAX_REQUEST_BYTES"),
    ] {
        assert!(text.contains(flag), "help does not list {flag}:\n{text}");
        assert!(text.contains(env), "help does not name {env}:\n{text}");
    }
}

#[test]
fn runs_without_any_configuration() {
    // The default addresses are the point of this test: busy ports skip it on a user's
    // machine, and fail it under CI=true (nothing else there may hold them).
    if !common::require(
        addr_is_free("127.0.0.1:10902") && addr_is_free("127.0.0.1:10901"),
        "the default ports 10901/10902 (free, to test the default addresses)",
        "stop what listens on 127.0.0.1:10901 and 10902",
    ) {
        return;
    }
    let s = TestServer::with(Options {
        no_data_dir_flag: true,
        default_addresses: true,
        ..Options::default()
    });
    assert_eq!(s.http_addr().to_string(), "127.0.0.1:10902");
    let samples = write_some(&s, "defaults");
    s.flush();
    assert_serves(&s, "defaults", &samples);
    let data = s.work_dir().join("data");
    assert!(
        data.join("wal").is_dir(),
        "no ./data/wal in {}",
        data.display()
    );
    let blocks = metas(&data.join("bucket"));
    assert!(
        blocks.iter().any(|m| m.starts_with("tenants/cfg/")),
        "no block under ./data/bucket/tenants/cfg: {blocks:?}"
    );
    // gRPC listens on its default address too.
    assert!(
        std::net::TcpStream::connect("127.0.0.1:10901").is_ok(),
        "nothing listens on 127.0.0.1:10901"
    );
}

#[test]
fn environment_variables_configure_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("env-data");
    let bucket = dir.path().join("env-bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let s = TestServer::with(Options {
        no_data_dir_flag: true,
        addresses_by_env: true,
        data_dir: Some(data.clone()),
        envs: vec![
            ("HYPNOS_DATA_DIR".into(), data.display().to_string()),
            (
                "HYPNOS_OBJSTORE_URL".into(),
                format!("file://{}", bucket.display()),
            ),
            ("HYPNOS_BLOCK_DURATION".into(), "2h".into()),
        ],
        ..Options::default()
    });
    let samples = write_some(&s, "by_env");
    s.flush();
    assert_serves(&s, "by_env", &samples);
    assert!(
        data.join("wal").is_dir(),
        "HYPNOS_DATA_DIR not used: no {}/wal",
        data.display()
    );
    let blocks = metas(&bucket);
    assert!(
        blocks.iter().any(|m| m.starts_with("tenants/cfg/")),
        "HYPNOS_OBJSTORE_URL not used: {blocks:?}"
    );
}

#[test]
fn objstore_url_file_serves_blocks_after_losing_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let url = format!("file://{}", bucket.display());
    let s = TestServer::with(Options::default().arg("--objstore-url").arg(&url));
    let samples = write_some(&s, "file_url");
    s.flush();
    assert_serves(&s, "file_url", &samples);
    let blocks = metas(&bucket);
    assert!(
        blocks.iter().any(|m| m.starts_with("tenants/cfg/")),
        "{blocks:?}"
    );
    assert!(
        metas(&s.bucket_dir()).is_empty(),
        "blocks written to <data dir>/bucket despite --objstore-url"
    );
    drop(s);
    // A new server with an empty data dir reads the blocks from the bucket.
    let s2 = TestServer::with(Options::default().arg("--objstore-url").arg(&url));
    assert_serves(&s2, "file_url", &samples);
}

#[test]
fn objstore_config_file_filesystem_with_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fs-bucket");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = dir.path().join("bucket_config.yml");
    std::fs::write(
        &cfg,
        format!(
            "type: FILESYSTEM\nconfig:\n  directory: \"{}\"\nprefix: \"some/prefix\"\n",
            root.display()
        ),
    )
    .unwrap();
    let opts = Options::default()
        .arg("--objstore-config-file")
        .arg(cfg.display().to_string());
    let s = TestServer::with(opts.clone());
    let samples = write_some(&s, "fs_config");
    s.flush();
    assert_serves(&s, "fs_config", &samples);
    let blocks = metas(&root);
    assert!(
        blocks
            .iter()
            .any(|m| m.starts_with("some/prefix/tenants/cfg/")),
        "no block under the prefix: {blocks:?}"
    );
    drop(s);
    let s2 = TestServer::with(opts);
    assert_serves(&s2, "fs_config", &samples);
}

#[test]
fn invalid_configuration_fails_at_start() {
    for args in [
        vec!["--objstore-url", "ftp://nowhere/x"],
        vec!["--block-duration", "soon"],
        vec!["--objstore-config-file", "/nonexistent/bucket.yml"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut child = std::process::Command::new(BIN)
            .arg("all")
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .arg("--http-address")
            .arg(free_addr().to_string())
            .arg("--grpc-address")
            .arg(free_addr().to_string())
            .args(&args)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(f.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(f))
            .spawn()
            .expect("run hypnos");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break Some(st);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        let status = status
            .unwrap_or_else(|| panic!("hypnos all {args:?} still running after 30 s:\n{out}"));
        assert!(
            !status.success(),
            "hypnos all {args:?} exited successfully:\n{out}"
        );
        assert!(
            !out.trim().is_empty(),
            "hypnos all {args:?} failed silently"
        );
    }
}

#[test]
fn heads_are_cut_every_block_duration() {
    let s = TestServer::with(Options::default().arg("--block-duration").arg("2s"));
    // Recent samples, one per 500 ms, until a block shows up without any flush.
    let mut written = Vec::new();
    let mut k = 0i64;
    let bucket = s.bucket_dir();
    eventually(
        Duration::from_secs(45),
        "a block cut by --block-duration 2s",
        || {
            let t = now_ms() - 1_000;
            if written.last().is_none_or(|(lt, _)| t > *lt) {
                written.push((t, k as f64));
                s.write(
                    T,
                    &request(vec![series("cut", &[("instance", "c")], &[(t, k as f64)])]),
                );
                k += 1;
            }
            std::thread::sleep(Duration::from_millis(500));
            (!metas(&bucket).is_empty()).then_some(())
        },
    );
    // Every sample stays queryable, whether it sits in a block or a head.
    let last = written.last().unwrap().0;
    let m = matrix(&s.query(T, "cut[1h]", last));
    assert_eq!(m.len(), 1, "{m:?}");
    assert_points(&m[0].1, &written, "samples across cut heads");
}

#[test]
fn max_request_bytes_limits_the_compressed_body() {
    let s = TestServer::with(Options::default().arg("--max-request-bytes").arg("1000"));
    let t0 = base_time();
    let many: Vec<_> = (0..200u64)
        .map(|k| {
            let id = format!("{:016x}", k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            series("big", &[("instance", id.as_str())], &[(t0, k as f64)])
        })
        .collect();
    let req = request(many);
    assert!(encode(&req).len() > 1000, "test body compresses too well");
    let (st, body) = s.send(T, &req);
    assert_eq!(
        st,
        413,
        "a {} byte body over a 1000 byte limit: {body}",
        encode(&req).len()
    );
    assert!(
        vector(&s.query(T, "big", t0)).is_empty(),
        "refused body was stored"
    );
    // A small one still goes through.
    s.write(T, &request(vec![series("small", &[], &[(t0, 1.0)])]));
    assert_eq!(vector(&s.query(T, "small", t0)).len(), 1);
}

/// `hypnos explain` prints both plans of a query without a server or bucket, and refuses
/// a query that does not parse.
#[test]
fn explain_prints_the_plans() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hypnos"))
        .args([
            "explain",
            "--time",
            "600",
            "sum by (job) (rate(http_requests_total[5m]))",
        ])
        .output()
        .expect("run hypnos explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for part in [
        "logical plan",
        "PromAggregate",
        "physical plan",
        "PromSelectExec",
        "PromRangeFunctionExec",
    ] {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_hypnos"))
        .args(["explain", "sum("])
        .output()
        .expect("run hypnos explain");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("query"));
}
