//! Harness of the end-to-end tests: starts the real `hypnos` binary on free ports with a
//! temporary data directory, talks to it over HTTP (remote write in, PromQL out), and kills
//! or restarts it. The binary's output goes to a log file whose tail is printed when a test
//! fails.
//!
//! Each test binary uses only part of this module.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hypnos_schemas::remote::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

pub mod moto;

/// The binary under test, built by cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_hypnos");

/// How long a server may take to answer `/-/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bit pattern of Prometheus' staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr")
}

/// True when `addr` can be bound now.
pub fn addr_is_free(addr: &str) -> bool {
    TcpListener::bind(addr).is_ok()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A base timestamp for test data: 30 minutes ago, on a whole minute.
pub fn base_time() -> i64 {
    (now_ms() / 60_000) * 60_000 - 30 * 60_000
}

/// Milliseconds as the float seconds string the HTTP API takes.
pub fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

pub fn http_client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// SKIP RULE for external programs: `true` when `available`; otherwise prints why the test
/// is skipped and what to install, and returns `false`; with `CI=true` it panics instead, so
/// a missing program fails CI rather than passing it silently.
pub fn require(available: bool, what: &str, install: &str) -> bool {
    if available {
        return true;
    }
    let msg = format!("{what} is not available; install it with: {install}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// The tenant a request names, and how.
#[derive(Clone, Copy, Debug)]
pub enum Tenant<'a> {
    /// No tenant header: `default-tenant`.
    Default,
    /// `THANOS-TENANT: <id>`.
    Thanos(&'a str),
    /// `X-Scope-OrgID: <id>`.
    OrgId(&'a str),
}

impl Tenant<'_> {
    pub fn apply(self, rb: RequestBuilder) -> RequestBuilder {
        match self {
            Tenant::Default => rb,
            Tenant::Thanos(t) => rb.header("THANOS-TENANT", t),
            Tenant::OrgId(t) => rb.header("X-Scope-OrgID", t),
        }
    }

    /// The tenant id the server should attach as `tenant_id`.
    pub fn id(self) -> String {
        match self {
            Tenant::Default => "default-tenant".to_string(),
            Tenant::Thanos(t) | Tenant::OrgId(t) => t.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Remote-write requests
// ---------------------------------------------------------------------------------------

/// A series with its labels exactly in the order given (the server must check the order).
pub fn raw_series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

/// A valid series: metric `name` plus `labels`, sorted by label name.
pub fn series(name: &str, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    let mut l: Vec<(&str, &str)> = vec![("__name__", name)];
    l.extend_from_slice(labels);
    l.sort_by(|a, b| a.0.cmp(b.0));
    raw_series(&l, samples)
}

pub fn request(timeseries: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

/// Protobuf, then snappy block format: a remote-write 1.0 body.
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    snappy(&req.encode_to_vec())
}

pub fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compress")
}

/// The standard remote-write 1.0 headers.
pub const RW_HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

// ---------------------------------------------------------------------------------------
// Query results
// ---------------------------------------------------------------------------------------

/// A sample value as the API writes it ("NaN", "+Inf", "1.5", ...).
pub fn parse_value(v: &Value) -> f64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("sample value is not a string: {v}"));
    match s {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s
            .parse()
            .unwrap_or_else(|e| panic!("sample value {s:?} is not a float: {e}")),
    }
}

/// A timestamp in float seconds, as milliseconds.
pub fn parse_ts(v: &Value) -> i64 {
    let f = v
        .as_f64()
        .unwrap_or_else(|| panic!("timestamp is not a number: {v}"));
    (f * 1000.0).round() as i64
}

fn point(p: &Value) -> (i64, f64) {
    let a = p
        .as_array()
        .unwrap_or_else(|| panic!("point is not an array: {p}"));
    assert_eq!(a.len(), 2, "point {p} is not [t, v]");
    (parse_ts(&a[0]), parse_value(&a[1]))
}

pub type Metric = BTreeMap<String, String>;

fn metric(v: &Value) -> Metric {
    v.get("metric")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("result without metric: {v}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn result_of<'a>(data: &'a Value, kind: &str) -> &'a Vec<Value> {
    assert_eq!(
        data["resultType"].as_str(),
        Some(kind),
        "expected a {kind}, got {data}"
    );
    data["result"]
        .as_array()
        .unwrap_or_else(|| panic!("result is not an array: {data}"))
}

/// The samples of a `vector` result, sorted by labels.
pub fn vector(data: &Value) -> Vec<(Metric, i64, f64)> {
    let mut out: Vec<_> = result_of(data, "vector")
        .iter()
        .map(|r| {
            let (t, v) = point(&r["value"]);
            (metric(r), t, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The series of a `matrix` result, sorted by labels.
pub fn matrix(data: &Value) -> Vec<(Metric, Vec<(i64, f64)>)> {
    let mut out: Vec<_> = result_of(data, "matrix")
        .iter()
        .map(|r| {
            let pts = r["values"]
                .as_array()
                .unwrap_or_else(|| panic!("series without values: {r}"))
                .iter()
                .map(point)
                .collect();
            (metric(r), pts)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `[t, v]` of a `scalar` result.
pub fn scalar(data: &Value) -> (i64, f64) {
    assert_eq!(data["resultType"].as_str(), Some("scalar"), "{data}");
    point(&data["result"])
}

/// `data` with its result list sorted by labels, so answers compare as values.
pub fn normalize(data: &Value) -> Value {
    let mut d = data.clone();
    if let Some(arr) = d.get_mut("result").and_then(Value::as_array_mut) {
        arr.sort_by_key(|r| r.get("metric").map(|m| m.to_string()).unwrap_or_default());
    }
    d
}

/// Label set literal.
pub fn labels(pairs: &[(&str, &str)]) -> Metric {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Floats equal bit for bit, NaN payloads aside (JSON cannot carry them).
pub fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits() || a == b
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[track_caller]
pub fn assert_close(got: f64, want: f64, what: &str) {
    assert!(close(got, want), "{what}: got {got}, want {want}");
}

#[track_caller]
pub fn assert_points(got: &[(i64, f64)], want: &[(i64, f64)], what: &str) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: got {} points {got:?}, want {} {want:?}",
        got.len(),
        want.len()
    );
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.0 == w.0 && same_float(g.1, w.1),
            "{what}: got {got:?}, want {want:?} (first difference {g:?} vs {w:?})"
        );
    }
}

/// The value of one sample line of Prometheus' text format, e.g.
/// `metric_value(text, "hypnos_receive_samples_total", &[("tenant", "a")])`; labels not
/// named are ignored, several matching lines are summed. `None` when no line matches.
pub fn metric_value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        // A trailing timestamp is not used by client libraries for own metrics.
        let (mname, lbls) = match head.find('{') {
            Some(i) => (&head[..i], &head[i + 1..head.len().saturating_sub(1)]),
            None => (head, ""),
        };
        if mname != name {
            continue;
        }
        let ok = want.iter().all(|(k, v)| {
            lbls.split(',')
                .any(|kv| kv.trim() == format!("{k}=\"{v}\""))
        });
        if ok {
            let v: f64 = value.parse().unwrap_or(f64::NAN);
            *total.get_or_insert(0.0) += v;
        }
    }
    total
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// How to start a server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra command-line arguments after `all`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub envs: Vec<(String, String)>,
    /// Data directory; a fresh temporary one when `None`.
    pub data_dir: Option<PathBuf>,
    /// Do not pass `--data-dir` (the server then uses `./data` under its working directory,
    /// the temporary directory).
    pub no_data_dir_flag: bool,
    /// Give the addresses by `HYPNOS_HTTP_ADDRESS`/`HYPNOS_GRPC_ADDRESS` instead of flags.
    pub addresses_by_env: bool,
    /// Give no addresses at all: the server uses its defaults (10902 and 10901).
    pub default_addresses: bool,
    /// Do not pass `--web.enable-admin-api` (which the tests pass by default so that
    /// [`TestServer::flush`] works in `header` mode).
    pub no_admin_api: bool,
}

impl Options {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn data_dir(mut self, d: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(d.into());
        self
    }
}

/// A running `hypnos all`, killed when dropped.
pub struct TestServer {
    tmp: tempfile::TempDir,
    opts: Options,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    http: SocketAddr,
    grpc: SocketAddr,
    client: Client,
    starts: u32,
}

impl TestServer {
    /// `hypnos all` with a fresh data directory.
    pub fn start() -> Self {
        Self::with(Options::default())
    }

    pub fn with(opts: Options) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("hypnos-e2e-")
            .tempdir()
            .expect("temp dir");
        let data_dir = match (&opts.data_dir, opts.no_data_dir_flag) {
            (Some(d), _) => d.clone(),
            (None, true) => tmp.path().join("data"),
            (None, false) => tmp.path().join("data-dir"),
        };
        let log_path = tmp.path().join("hypnos.log");
        let mut s = Self {
            tmp,
            opts,
            data_dir,
            log_path,
            child: None,
            http: "127.0.0.1:10902".parse().expect("addr"),
            grpc: "127.0.0.1:10901".parse().expect("addr"),
            client: http_client(),
            starts: 0,
        };
        s.spawn();
        s
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmHWM`: peak resident memory, `VmRSS`), in
    /// bytes.
    pub fn proc_status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"))
            * 1024
    }

    /// The temporary directory of this server (working directory, log, default data).
    pub fn work_dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The default object store: `<data dir>/bucket`.
    pub fn bucket_dir(&self) -> PathBuf {
        self.data_dir.join("bucket")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn spawn(&mut self) {
        for attempt in 0..3 {
            if !self.opts.default_addresses {
                self.http = free_addr();
                self.grpc = free_addr();
            }
            let mut cmd = Command::new(BIN);
            cmd.arg("all").current_dir(self.tmp.path());
            // The tests' own configuration only: nothing inherited from the caller's shell.
            for (k, _) in std::env::vars_os() {
                if let Some(k) = k.to_str()
                    && (k.starts_with("HYPNOS_") || k.starts_with("AWS_"))
                {
                    cmd.env_remove(k);
                }
            }
            if !self.opts.no_data_dir_flag {
                cmd.arg("--data-dir").arg(&self.data_dir);
            }
            if self.opts.addresses_by_env {
                cmd.env("HYPNOS_HTTP_ADDRESS", self.http.to_string());
                cmd.env("HYPNOS_GRPC_ADDRESS", self.grpc.to_string());
            } else if !self.opts.default_addresses {
                cmd.arg("--http-address").arg(self.http.to_string());
                cmd.arg("--grpc-address").arg(self.grpc.to_string());
            }
            if !self.opts.no_admin_api {
                cmd.arg("--web.enable-admin-api");
            }
            cmd.args(&self.opts.args);
            for (k, v) in &self.opts.envs {
                cmd.env(k, v);
            }
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log_path)
                .expect("open log");
            self.starts += 1;
            writeln!(
                log,
                "==== start #{} (try {}): {cmd:?}",
                self.starts,
                attempt + 1
            )
            .expect("write log");
            cmd.stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("dup log")))
                .stderr(Stdio::from(log));
            self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}")));
            match self.wait_ready() {
                Ok(()) => return,
                Err(msg) => {
                    // Another process may have taken a port between our probe and the bind.
                    let tail = self.log_tail(40);
                    let port_race = !self.opts.default_addresses
                        && tail.to_lowercase().contains("in use")
                        && attempt < 2;
                    self.kill_child();
                    if !port_race {
                        panic!("{msg}\n---- hypnos log (tail) ----\n{tail}");
                    }
                }
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.url("/-/ready");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("child")
                .try_wait()
                .expect("try_wait")
            {
                return Err(format!("hypnos exited before it was ready: {status}"));
            }
            if let Ok(r) = self.client.get(&url).timeout(Duration::from_secs(2)).send()
                && r.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{url} did not answer 200 within {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// SIGKILL, as a crash: nothing is flushed or closed.
    pub fn kill9(&mut self) {
        assert!(
            self.child.is_some(),
            "kill9 of a server that is not running"
        );
        self.kill_child();
    }

    /// SIGTERM, then waits up to 20 s for a clean exit (SIGKILL after that).
    pub fn terminate(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("hypnos did not exit within 20 s of SIGTERM: killing it");
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Stops the server cleanly (SIGTERM) and starts it again on the same data directory
    /// and configuration (new ports). After [`kill9`](Self::kill9) it just starts it.
    pub fn restart(&mut self) {
        self.terminate();
        self.spawn();
    }

    /// The last `n` lines of the server's output.
    pub fn log_tail(&self, n: usize) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The server's whole output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The file the server's output goes to (kept across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    // ---- plain HTTP ----

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    /// POSTs `body` to `path` with `headers` as `tenant`; status and body text.
    pub fn post(
        &self,
        path: &str,
        tenant: Tenant<'_>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut rb = tenant.apply(self.client.post(self.url(path)));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb
            .body(body)
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    // ---- remote write ----

    /// Sends a remote-write request to `/api/v1/receive`; status and body.
    pub fn send(&self, tenant: Tenant<'_>, req: &WriteRequest) -> (u16, String) {
        self.post("/api/v1/receive", tenant, &RW_HEADERS, encode(req))
    }

    /// Sends a remote-write request and asserts it is acknowledged (204).
    #[track_caller]
    pub fn write(&self, tenant: Tenant<'_>, req: &WriteRequest) {
        let (status, body) = self.send(tenant, req);
        assert_eq!(
            status, 204,
            "remote write as {tenant:?} answered {status}: {body}"
        );
    }

    /// `POST /api/v1/admin/flush`, asserting 200 or 204.
    #[track_caller]
    pub fn flush(&self) {
        let (status, body) = self.post("/api/v1/admin/flush", Tenant::Default, &[], vec![]);
        assert!(
            status == 200 || status == 204,
            "flush answered {status}: {body}"
        );
    }

    // ---- queries ----

    /// GET `/api/v1/<endpoint>` with `params` as `tenant`: status and JSON body.
    pub fn api(
        &self,
        tenant: Tenant<'_>,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> (u16, Value) {
        let rb = self.client.get(self.url(&format!("/api/v1/{endpoint}")));
        let r = tenant
            .apply(rb)
            .query(params)
            .send()
            .unwrap_or_else(|e| panic!("GET {endpoint} {params:?}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// Form-encoded POST to `/api/v1/<endpoint>`.
    pub fn api_post(
        &self,
        tenant: Tenant<'_>,
        endpoint: &str,
        params: &[(&str, String)],
    ) -> (u16, Value) {
        let body = params
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let rb = self
            .client
            .post(self.url(&format!("/api/v1/{endpoint}")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        let r = tenant
            .apply(rb)
            .send()
            .unwrap_or_else(|e| panic!("POST {endpoint} {params:?}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// An instant query at `t_ms` that must succeed; returns `data`.
    #[track_caller]
    pub fn query(&self, tenant: Tenant<'_>, q: &str, t_ms: i64) -> Value {
        let (status, v) = self.api(
            tenant,
            "query",
            &[("query", q.to_string()), ("time", secs(t_ms))],
        );
        success(status, v, q)
    }

    /// A range query that must succeed; returns `data`.
    #[track_caller]
    pub fn query_range(
        &self,
        tenant: Tenant<'_>,
        q: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Value {
        let (status, v) = self.api(
            tenant,
            "query_range",
            &[
                ("query", q.to_string()),
                ("start", secs(start_ms)),
                ("end", secs(end_ms)),
                ("step", secs(step_ms)),
            ],
        );
        success(status, v, q)
    }

    /// `/metrics`, which must answer 200.
    #[track_caller]
    pub fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        body
    }

    /// `/metrics` with `Authorization: Bearer <token>` (`--auth=token`), which must answer
    /// 200.
    #[track_caller]
    pub fn metrics_with_token(&self, token: &str) -> String {
        let r = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(token)
            .send()
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        let status = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        assert_eq!(status, 200, "/metrics answered {status}: {body}");
        body
    }
}

#[track_caller]
fn success(status: u16, v: Value, q: &str) -> Value {
    assert_eq!(status, 200, "query {q:?} answered {status}: {v}");
    assert_eq!(v["status"], "success", "query {q:?}: {v}");
    v["data"].clone()
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill_child();
        if std::thread::panicking() {
            eprintln!(
                "---- hypnos log (last 80 lines of {}) ----\n{}\n---- end of hypnos log ----",
                self.log_path.display(),
                self.log_tail(80)
            );
        }
    }
}

/// Every `meta.json` under `dir` (a local bucket), recursively.
pub fn find_meta_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "meta.json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `timeout` with `what`.
#[track_caller]
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A small deterministic generator (xorshift64*), so that a test run is replayed by its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One element of `v`, which must not be empty.
    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// The variable of the compactor's test hook (`src/compact/hook.rs`, feature `testsuite`):
/// the compactor logs each bucket write it is about to make, numbered, and waits this long
/// before making it.
pub const COMPACTOR_PAUSE_VAR: &str = "HYPNOS_TEST_COMPACTOR_PAUSE";

/// The number of the pending compactor write that `line` logs, if it is one (that hook).
pub fn compactor_step(line: &str) -> Option<u64> {
    if !line.contains("compactor write pending") {
        return None;
    }
    let rest = &line[line.find("step=")? + 5..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Watches the log at `log` from byte `from` on, and SIGKILLs process `pid` as soon as a line
/// comes for which `at(line)` is true; gives back that line, or `None` when `stop` was set
/// first. With the compactor's hook, `at` can pick a pending write ([`compactor_step`]): the
/// process is then waiting before that write, so every earlier write is made and this one is
/// not.
pub fn kill_at_log_line(
    log: PathBuf,
    from: u64,
    pid: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut at: impl FnMut(&str) -> bool + Send + 'static,
) -> std::thread::JoinHandle<Option<String>> {
    std::thread::spawn(move || {
        let mut offset = from;
        let mut partial = String::new();
        loop {
            let mut chunk = Vec::new();
            if let Ok(mut f) = File::open(&log)
                && f.seek(SeekFrom::Start(offset)).is_ok()
            {
                let _ = f.read_to_end(&mut chunk);
            }
            offset += chunk.len() as u64;
            partial.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                if at(&line) {
                    let _ = Command::new("kill")
                        .arg("-KILL")
                        .arg(pid.to_string())
                        .status();
                    return Some(line.trim_end().to_string());
                }
            }
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// The size of the file at `path` (0 when it does not exist yet).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
