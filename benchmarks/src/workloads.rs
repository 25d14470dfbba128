//! The workloads, each run the same way against every system: ingest (remote write 1.0 at
//! the highest rate the receiver sustains), storage (on-disk bytes after flush/compaction)
//! and query (a suite of dashboard queries, timed and checked against Prometheus).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::encode::{Request, write_openmetrics};
use crate::r#gen::{Dataset, tenant_name};
use crate::systems::{Kind, Server, dir_bytes};

/// What an ingest run measured.
#[derive(Clone, Debug, Default)]
pub struct IngestResult {
    /// Samples in requests that were accepted.
    pub samples: usize,
    pub elapsed: Duration,
    /// One per request, accepted or not.
    pub latencies: Vec<Duration>,
    pub failed_requests: usize,
    pub first_error: Option<String>,
}

impl IngestResult {
    pub fn samples_per_sec(&self) -> f64 {
        self.samples as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) of request latency.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        quantile(&self.latencies, q)
    }
}

/// The nearest-rank quantile of `v` (unsorted).
pub fn quantile(v: &[Duration], q: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    Some(s[rank - 1])
}

/// Sends every request, window after window, with `concurrency` senders sharing each
/// window's requests. The bodies were encoded beforehand; the clock runs from the first
/// request to the last answer.
pub fn ingest(
    server: &Server,
    windows: &[Vec<Request>],
    concurrency: usize,
) -> Result<IngestResult> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = server.write_url();
    let header = server.tenant_header();
    let next: Vec<AtomicUsize> = windows.iter().map(|_| AtomicUsize::new(0)).collect();
    let barrier = Barrier::new(concurrency);
    let result = Mutex::new(IngestResult::default());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..concurrency {
            s.spawn(|| {
                let mut local = IngestResult::default();
                for (w, reqs) in windows.iter().enumerate() {
                    loop {
                        let i = next[w].fetch_add(1, Ordering::Relaxed);
                        let Some(r) = reqs.get(i) else { break };
                        let mut b = client
                            .post(&url)
                            .header("Content-Encoding", "snappy")
                            .header("Content-Type", "application/x-protobuf")
                            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                            .body(r.body.clone());
                        if let Some(h) = header {
                            b = b.header(h, tenant_name(r.tenant));
                        }
                        let t0 = Instant::now();
                        let outcome = b.send().map_err(|e| e.to_string()).and_then(|resp| {
                            let status = resp.status();
                            if status.is_success() {
                                Ok(())
                            } else {
                                Err(format!("{status}: {}", resp.text().unwrap_or_default()))
                            }
                        });
                        local.latencies.push(t0.elapsed());
                        match outcome {
                            Ok(()) => local.samples += r.samples,
                            Err(e) => {
                                local.failed_requests += 1;
                                local.first_error.get_or_insert(e);
                            }
                        }
                    }
                    // Every series' samples of this window are in before the next one starts.
                    barrier.wait();
                }
                let mut g = result.lock().expect("no sender panicked");
                g.samples += local.samples;
                g.latencies.extend(local.latencies);
                g.failed_requests += local.failed_requests;
                if g.first_error.is_none() {
                    g.first_error = local.first_error;
                }
            });
        }
    });
    let mut r = result.into_inner().expect("no sender panicked");
    r.elapsed = start.elapsed();
    Ok(r)
}

/// On-disk bytes after the system has persisted and compacted everything, and how that was
/// obtained.
#[derive(Clone, Debug)]
pub struct StorageResult {
    pub bytes: u64,
    pub method: String,
}

/// Hypnos: `POST /api/v1/admin/flush`, then every byte under the data directory.
pub fn storage_hypnos(server: &Server) -> Result<StorageResult> {
    let client = long_client()?;
    let r = client
        .post(format!("{}/api/v1/admin/flush", server.url))
        .send()
        .context("flush")?;
    if !r.status().is_success() {
        bail!(
            "flush answered {}: {}",
            r.status(),
            r.text().unwrap_or_default()
        );
    }
    Ok(StorageResult {
        bytes: dir_bytes(&server.data_dir),
        method: "POST /api/v1/admin/flush, then every file under --data-dir (WAL and bucket)"
            .into(),
    })
}

/// VictoriaMetrics: `/internal/force_flush`, `/internal/force_merge`, then waits until the
/// data directory stops changing, and counts every byte under it.
pub fn storage_victoria(server: &Server) -> Result<StorageResult> {
    let client = long_client()?;
    for path in ["/internal/force_flush", "/internal/force_merge"] {
        let r = client.get(format!("{}{path}", server.url)).send()?;
        if !r.status().is_success() {
            bail!("{path} answered {}", r.status());
        }
    }
    let (mut last, mut stable) = (dir_bytes(&server.data_dir), 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while stable < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = dir_bytes(&server.data_dir);
        stable = if now == last { stable + 1 } else { 0 };
        last = now;
    }
    Ok(StorageResult {
        bytes: last,
        method: "GET /internal/force_flush and /internal/force_merge, then every file under \
                 -storageDataPath once its size was stable for 2.5 s"
            .into(),
    })
}

/// Prometheus: the same data as an OpenMetrics file turned into blocks by
/// `promtool tsdb create-blocks-from openmetrics`; every byte of the output directory.
pub fn storage_prometheus(promtool: &Path, ds: &Dataset, work: &Path) -> Result<StorageResult> {
    let om = work.join("data.om");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&om)?);
        for t in 0..ds.config.tenants.max(1) {
            write_openmetrics(ds, t, &mut f)?;
            if ds.config.tenants > 1 {
                bail!("promtool takes one OpenMetrics file per tenant; use --tenants 1");
            }
        }
    }
    let out = work.join("promtool-blocks");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;
    let o = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(&om)
        .arg(&out)
        .output()
        .context("run promtool")?;
    if !o.status.success() {
        bail!(
            "promtool failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let _ = std::fs::remove_file(&om);
    Ok(StorageResult {
        bytes: dir_bytes(&out),
        method: "`promtool tsdb create-blocks-from openmetrics` on an OpenMetrics file of the \
                 same samples (2h blocks, not compacted further); every file of its output"
            .into(),
    })
}

fn long_client() -> Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?)
}

/// One query of the suite.
#[derive(Clone, Copy, Debug)]
pub struct QueryDef {
    pub name: &'static str,
    pub expr: &'static str,
}

/// The dashboard queries of the issue.
pub const SUITE: [QueryDef; 7] = [
    QueryDef {
        name: "rate",
        expr: "rate(node_cpu_seconds_total[5m])",
    },
    QueryDef {
        name: "sum by rate",
        expr: "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
    },
    QueryDef {
        name: "histogram_quantile",
        expr: "histogram_quantile(0.99, sum by (le) (rate(apiserver_request_duration_seconds_bucket[5m])))",
    },
    QueryDef {
        name: "topk",
        expr: "topk(5, rate(node_network_receive_bytes_total[5m]))",
    },
    QueryDef {
        name: "avg_over_time 1h",
        expr: "avg_over_time(node_load1[1h])",
    },
    QueryDef {
        name: "group_left",
        expr: "node_memory_MemAvailable_bytes * on(instance) group_left(nodename) node_uname_info",
    },
    QueryDef {
        name: "regex selector",
        expr: "count by (job) ({__name__=~\"node_.+|apiserver_.+\"})",
    },
];

/// A query's timings over repeated runs and its answer, or why there is none.
#[derive(Clone, Debug)]
pub enum QueryOutcome {
    Ok {
        median: Duration,
        p90: Duration,
        result: Value,
    },
    Failed(String),
}

/// Runs `path` (`/api/v1/query` or `/api/v1/query_range`) with `params` once to warm up and
/// keep the answer, then `runs` times for the timings.
pub fn run_query(
    server: &Server,
    path: &str,
    params: &[(&str, String)],
    runs: usize,
) -> QueryOutcome {
    let client = match long_client() {
        Ok(c) => c,
        Err(e) => return QueryOutcome::Failed(e.to_string()),
    };
    let once = || -> std::result::Result<Value, String> {
        let mut b = client.post(format!("{}{path}", server.url)).form(params);
        if server.kind == Kind::Hypnos {
            b = b.header("X-Scope-OrgID", tenant_name(0));
        }
        let resp = b.send().map_err(|e| e.to_string())?;
        let status = resp.status();
        let body: Value = resp.json().map_err(|e| format!("{status}: {e}"))?;
        if !status.is_success() || body["status"] != "success" {
            let msg = body["error"].as_str().unwrap_or("no message");
            return Err(format!("{}: {msg}", status.as_u16()));
        }
        Ok(body["data"].clone())
    };
    let result = match once() {
        Ok(r) => r,
        Err(e) => return QueryOutcome::Failed(e),
    };
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        if let Err(e) = once() {
            return QueryOutcome::Failed(e);
        }
        times.push(t0.elapsed());
    }
    QueryOutcome::Ok {
        median: quantile(&times, 0.5).unwrap_or_default(),
        p90: quantile(&times, 0.9).unwrap_or_default(),
        result,
    }
}

/// Series of an answer keyed by their labels (without Hypnos' `tenant_id`), each a list of
/// (timestamp s, value).
pub type Normalized = BTreeMap<Vec<(String, String)>, Vec<(f64, f64)>>;

/// Normalizes the `data` of a Prometheus API answer (vector, matrix or scalar).
pub fn normalize(data: &Value) -> std::result::Result<Normalized, String> {
    let point = |p: &Value| -> std::result::Result<(f64, f64), String> {
        let t = p[0].as_f64().ok_or("timestamp is not a number")?;
        let v = p[1]
            .as_str()
            .ok_or("value is not a string")?
            .parse::<f64>()
            .map_err(|e| e.to_string())?;
        Ok((t, v))
    };
    let mut out = Normalized::new();
    match data["resultType"].as_str() {
        Some("scalar") => {
            out.insert(vec![], vec![point(&data["result"])?]);
        }
        Some("vector") | Some("matrix") => {
            for s in data["result"].as_array().ok_or("result is not a list")? {
                let mut labels: Vec<(String, String)> = s["metric"]
                    .as_object()
                    .ok_or("metric is not an object")?
                    .iter()
                    .filter(|(k, _)| *k != "tenant_id")
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                labels.sort();
                let points = if let Some(values) = s["values"].as_array() {
                    values
                        .iter()
                        .map(point)
                        .collect::<std::result::Result<_, _>>()?
                } else {
                    vec![point(&s["value"])?]
                };
                out.insert(labels, points);
            }
        }
        other => return Err(format!("unknown resultType {other:?}")),
    }
    Ok(out)
}

/// `Ok` when both answers hold the same series with the same timestamps and values equal
/// within `rel` relative difference (NaN equals NaN); otherwise the first difference.
pub fn compare_answers(a: &Value, b: &Value, rel: f64) -> std::result::Result<(), String> {
    let (a, b) = (normalize(a)?, normalize(b)?);
    if a.len() != b.len() {
        return Err(format!("{} series vs {}", a.len(), b.len()));
    }
    for ((la, pa), (lb, pb)) in a.iter().zip(&b) {
        if la != lb {
            return Err(format!("series {la:?} vs {lb:?}"));
        }
        if pa.len() != pb.len() {
            return Err(format!("{la:?}: {} points vs {}", pa.len(), pb.len()));
        }
        for ((ta, va), (tb, vb)) in pa.iter().zip(pb) {
            if ta != tb {
                return Err(format!("{la:?}: timestamp {ta} vs {tb}"));
            }
            let same = (va.is_nan() && vb.is_nan())
                || va == vb
                || (va - vb).abs() <= rel * va.abs().max(vb.abs());
            if !same {
                return Err(format!("{la:?} at {ta}: {va} vs {vb}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantiles() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(quantile(&v, 0.5), Some(Duration::from_millis(5)));
        assert_eq!(quantile(&v, 0.9), Some(Duration::from_millis(9)));
        assert_eq!(quantile(&v, 0.99), Some(Duration::from_millis(10)));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn answers_compare_within_tolerance_ignoring_tenant() {
        let a = json!({"resultType": "matrix", "result": [
            {"metric": {"mode": "idle", "tenant_id": "tenant-0"}, "values": [[60, "1.0000000000001"], [120, "NaN"]]}
        ]});
        let b = json!({"resultType": "matrix", "result": [
            {"metric": {"mode": "idle"}, "values": [[60, "1"], [120, "NaN"]]}
        ]});
        assert_eq!(compare_answers(&a, &b, 1e-9), Ok(()));
        let c = json!({"resultType": "matrix", "result": [
            {"metric": {"mode": "idle"}, "values": [[60, "1.001"], [120, "NaN"]]}
        ]});
        assert!(compare_answers(&a, &c, 1e-9).unwrap_err().contains("1.001"));
        let d = json!({"resultType": "vector", "result": []});
        assert!(compare_answers(&a, &d, 1e-9).is_err());
        let s = json!({"resultType": "scalar", "result": [1, "2"]});
        assert_eq!(compare_answers(&s, &s, 0.0), Ok(()));
    }
}
