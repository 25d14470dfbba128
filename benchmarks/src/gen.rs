//! The data generator every workload shares: node-exporter-like and API-server-like metric
//! families scraped every 15s with millisecond jitter, deterministic from a seed.
//!
//! Each *instance* (a host) carries the same [`SERIES_PER_INSTANCE`] series:
//! - `node_cpu_seconds_total{cpu,mode}`: counters of CPU seconds with two decimals;
//! - `node_network_{receive,transmit}_bytes_total{device}`: byte counters;
//! - `node_network_receive_errs_total{device}`: error counters that rarely move;
//! - `node_load1`: a slow gauge with two decimals;
//! - `node_memory_MemAvailable_bytes` (moving) and `node_memory_MemTotal_bytes` (constant):
//!   memory gauges in multiples of 4096;
//! - `node_uname_info{nodename,...}`: a constant info-like series;
//! - `apiserver_request_total{code,resource,verb}`: request counters;
//! - `apiserver_request_duration_seconds{verb}`: a classic histogram (`_bucket{le}`, `_sum`,
//!   `_count`).
//!
//! With churn, each instance is replaced by a new one (new `instance` label) every churn
//! period, staggered across instances. With several tenants, each tenant has its own
//! instances. The series of one instance share their scrape timestamps.

/// Series of one instance (see the module doc).
pub const SERIES_PER_INSTANCE: usize = 58;

const CPUS: usize = 2;
/// (mode, share of one CPU).
const CPU_MODES: [(&str, f64); 8] = [
    ("idle", 0.70),
    ("iowait", 0.03),
    ("irq", 0.005),
    ("nice", 0.005),
    ("softirq", 0.01),
    ("steal", 0.0),
    ("system", 0.07),
    ("user", 0.15),
];
const DEVICES: [&str; 2] = ["eth0", "lo"];
const VERBS: [&str; 3] = ["GET", "LIST", "POST"];
const CODES: [&str; 2] = ["200", "404"];
/// (verb, requests per second, median latency in seconds).
const HIST_VERBS: [(&str, f64, f64); 2] = [("GET", 8.0, 0.02), ("LIST", 2.0, 0.15)];
/// Upper bounds of the histogram buckets, `+Inf` last.
pub const BUCKETS: [f64; 11] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    f64::INFINITY,
];

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    /// Series per tenant, rounded up to whole instances (without churn; churn adds the
    /// replaced instances' series).
    pub series: usize,
    /// First possible scrape, ms since the epoch.
    pub start_ms: i64,
    /// Scrapes happen in `[start_ms, start_ms + duration_ms)`.
    pub duration_ms: i64,
    pub interval_ms: i64,
    /// Each scrape timestamp moves by up to this many ms either way.
    pub jitter_ms: i64,
    pub tenants: usize,
    /// Replace every instance this often (ms); `None`: no churn.
    pub churn_ms: Option<i64>,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            series: 1000,
            start_ms: 1_700_000_000_000,
            duration_ms: 3_600_000,
            interval_ms: 15_000,
            jitter_ms: 25,
            tenants: 1,
            churn_ms: None,
        }
    }
}

impl GenConfig {
    /// Instances per tenant at any time.
    pub fn instances(&self) -> usize {
        self.series.div_ceil(SERIES_PER_INSTANCE).max(1)
    }
}

/// One generated series: labels sorted by name (`__name__` first), samples sorted by time.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Index of the tenant, `0..tenants`.
    pub tenant: usize,
    pub labels: Vec<(String, String)>,
    pub ts: Vec<i64>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn name(&self) -> &str {
        self.label("__name__").unwrap_or("")
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A whole generated data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub config: GenConfig,
    pub series: Vec<Series>,
}

impl Dataset {
    pub fn generate(cfg: &GenConfig) -> Self {
        assert!(cfg.interval_ms > 0 && cfg.jitter_ms * 4 < cfg.interval_ms);
        let mut series = Vec::new();
        let n = cfg.instances();
        for tenant in 0..cfg.tenants.max(1) {
            for slot in 0..n {
                for (gen_idx, (from, to)) in generations(cfg, slot, n).into_iter().enumerate() {
                    let host = match cfg.churn_ms {
                        Some(_) => format!("host-{slot:04}-{gen_idx}"),
                        None => format!("host-{slot:04}"),
                    };
                    let seed = mix(cfg.seed, tenant as u64, slot as u64, gen_idx as u64);
                    series.extend(instance(cfg, tenant, &host, seed, from, to));
                }
            }
        }
        Self {
            config: cfg.clone(),
            series,
        }
    }

    pub fn samples(&self) -> usize {
        self.series.iter().map(|s| s.ts.len()).sum()
    }

    /// The first and last sample timestamps.
    pub fn time_range(&self) -> (i64, i64) {
        let min = self.series.iter().filter_map(|s| s.ts.first()).min();
        let max = self.series.iter().filter_map(|s| s.ts.last()).max();
        (*min.unwrap_or(&0), *max.unwrap_or(&0))
    }
}

/// The name of tenant `i` as sent in `THANOS-TENANT`.
pub fn tenant_name(i: usize) -> String {
    format!("tenant-{i}")
}

/// The `[from, to)` spans of the generations of instance `slot` of `n`.
fn generations(cfg: &GenConfig, slot: usize, n: usize) -> Vec<(i64, i64)> {
    let end = cfg.start_ms + cfg.duration_ms;
    let Some(churn) = cfg.churn_ms.filter(|c| *c > 0) else {
        return vec![(cfg.start_ms, end)];
    };
    let offset = churn * slot as i64 / n as i64;
    let mut spans = Vec::new();
    let mut from = cfg.start_ms;
    let mut to = cfg.start_ms + offset;
    if to == from {
        to += churn;
    }
    while from < end {
        spans.push((from, to.min(end)));
        from = to;
        to += churn;
    }
    spans
}

/// SplitMix64 of the inputs: independent seeds per instance.
fn mix(a: u64, b: u64, c: u64, d: u64) -> u64 {
    let mut r = Rng(a);
    let mut x = r.next_u64();
    for v in [b, c, d] {
        x = Rng(x ^ v.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64();
    }
    x
}

/// SplitMix64: small, fast and good enough for test data; the sequence is fixed forever.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// Two decimals: `cents / 100` is the double nearest to the decimal.
fn cents(c: i64) -> f64 {
    c as f64 / 100.0
}

/// Formats a bucket bound as client_golang does (`0.005`, `1`, `+Inf`).
pub fn format_le(le: f64) -> String {
    if le.is_infinite() {
        "+Inf".into()
    } else {
        format!("{le}")
    }
}

/// The series of one instance generation scraping in `[from, to)`.
fn instance(
    cfg: &GenConfig,
    tenant: usize,
    host: &str,
    seed: u64,
    from: i64,
    to: i64,
) -> Vec<Series> {
    let mut rng = Rng(seed);
    let phase = rng.range(0, cfg.interval_ms - 1);
    let mut ts = Vec::new();
    let mut t = from - from.rem_euclid(cfg.interval_ms) + phase;
    if t < from {
        t += cfg.interval_ms;
    }
    while t < to {
        let j = rng.range(-cfg.jitter_ms, cfg.jitter_ms);
        let s = (t + j).clamp(from, to - 1);
        if ts.last().is_none_or(|l| *l < s) {
            ts.push(s);
        }
        t += cfg.interval_ms;
    }
    let n = ts.len();
    if n == 0 {
        return Vec::new();
    }
    let node = format!("{host}:9100");
    let api = format!("{host}:6443");
    let interval_s = cfg.interval_ms as f64 / 1000.0;
    let mut out = Vec::with_capacity(SERIES_PER_INSTANCE);
    let mut push = |pairs: &[(&str, &str)], values: Vec<f64>| {
        out.push(Series {
            tenant,
            labels: labels(pairs),
            ts: ts.clone(),
            values,
        })
    };

    // CPU seconds: per scrape, share * interval seconds per CPU, +-30%, in hundredths.
    for cpu in 0..CPUS {
        let cpu_s = cpu.to_string();
        for (mode, share) in CPU_MODES {
            let mut c = (rng.range(0, 10_000_000) as f64 * share) as i64;
            let per = share * interval_s * 100.0;
            let values = (0..n)
                .map(|_| {
                    c += (per * (0.7 + 0.6 * rng.f64())).round() as i64;
                    cents(c)
                })
                .collect();
            push(
                &[
                    ("__name__", "node_cpu_seconds_total"),
                    ("cpu", &cpu_s),
                    ("instance", &node),
                    ("job", "node"),
                    ("mode", mode),
                ],
                values,
            );
        }
    }

    // Network: byte counters and a rarely moving error counter per device.
    for device in DEVICES {
        for (name, bytes_per_s) in [
            ("node_network_receive_bytes_total", 60_000.0),
            ("node_network_transmit_bytes_total", 25_000.0),
        ] {
            let mut c = rng.range(0, 1 << 40);
            let values = (0..n)
                .map(|_| {
                    c += (bytes_per_s * interval_s * (0.5 + rng.f64())) as i64;
                    c as f64
                })
                .collect();
            push(
                &[
                    ("__name__", name),
                    ("device", device),
                    ("instance", &node),
                    ("job", "node"),
                ],
                values,
            );
        }
        let mut errs = rng.range(0, 5);
        let values = (0..n)
            .map(|_| {
                if rng.f64() < 0.002 {
                    errs += 1;
                }
                errs as f64
            })
            .collect();
        push(
            &[
                ("__name__", "node_network_receive_errs_total"),
                ("device", device),
                ("instance", &node),
                ("job", "node"),
            ],
            values,
        );
    }

    // node_load1: a slow, mean-reverting gauge with two decimals.
    let mean = 0.5 + 2.0 * rng.f64();
    let mut load = mean;
    let values = (0..n)
        .map(|_| {
            load = (load + 0.05 * (mean - load) + 0.05 * rng.normal()).max(0.0);
            cents((load * 100.0).round() as i64)
        })
        .collect();
    push(
        &[
            ("__name__", "node_load1"),
            ("instance", &node),
            ("job", "node"),
        ],
        values,
    );

    // Memory in pages of 4096 bytes.
    let total_pages = 1i64 << rng.range(20, 23);
    let mut avail = total_pages / 2;
    let values = (0..n)
        .map(|_| {
            avail = (avail + rng.range(-256, 256)).clamp(total_pages / 10, total_pages);
            (avail * 4096) as f64
        })
        .collect();
    push(
        &[
            ("__name__", "node_memory_MemAvailable_bytes"),
            ("instance", &node),
            ("job", "node"),
        ],
        values,
    );
    push(
        &[
            ("__name__", "node_memory_MemTotal_bytes"),
            ("instance", &node),
            ("job", "node"),
        ],
        vec![(total_pages * 4096) as f64; n],
    );
    push(
        &[
            ("__name__", "node_uname_info"),
            ("instance", &node),
            ("job", "node"),
            ("machine", "x86_64"),
            ("nodename", host),
            ("release", "6.1.0-13-amd64"),
            ("sysname", "Linux"),
        ],
        vec![1.0; n],
    );

    // API server request counters.
    for verb in VERBS {
        for code in CODES {
            let per_s = if code == "200" { 12.0 } else { 0.02 };
            let mut c = rng.range(0, 1_000_000);
            let values = (0..n)
                .map(|_| {
                    let expected = per_s * interval_s;
                    c += if expected >= 1.0 {
                        (expected * (0.5 + rng.f64())) as i64
                    } else {
                        i64::from(rng.f64() < expected)
                    };
                    c as f64
                })
                .collect();
            push(
                &[
                    ("__name__", "apiserver_request_total"),
                    ("code", code),
                    ("instance", &api),
                    ("job", "apiserver"),
                    ("resource", "pods"),
                    ("verb", verb),
                ],
                values,
            );
        }
    }

    // Request latency histograms.
    for (verb, per_s, median) in HIST_VERBS {
        let mut buckets = vec![vec![0f64; n]; BUCKETS.len()];
        let mut sums = vec![0f64; n];
        let mut counts = [0u64; BUCKETS.len()];
        let mut sum = 0f64;
        for k in 0..n {
            let obs = (per_s * interval_s * (0.5 + rng.f64())) as usize;
            for _ in 0..obs {
                let lat = median * (0.8 * rng.normal()).exp();
                sum += lat;
                for (b, le) in BUCKETS.iter().enumerate() {
                    if lat <= *le {
                        counts[b] += 1;
                    }
                }
            }
            for b in 0..BUCKETS.len() {
                buckets[b][k] = counts[b] as f64;
            }
            sums[k] = sum;
        }
        // `_count` equals the `+Inf` bucket at every scrape.
        let count_values = buckets[BUCKETS.len() - 1].clone();
        for (b, le) in BUCKETS.iter().enumerate() {
            let le = format_le(*le);
            push(
                &[
                    ("__name__", "apiserver_request_duration_seconds_bucket"),
                    ("instance", &api),
                    ("job", "apiserver"),
                    ("le", &le),
                    ("verb", verb),
                ],
                std::mem::take(&mut buckets[b]),
            );
        }
        push(
            &[
                ("__name__", "apiserver_request_duration_seconds_sum"),
                ("instance", &api),
                ("job", "apiserver"),
                ("verb", verb),
            ],
            sums,
        );
        push(
            &[
                ("__name__", "apiserver_request_duration_seconds_count"),
                ("instance", &api),
                ("job", "apiserver"),
                ("verb", verb),
            ],
            count_values,
        );
    }
    debug_assert_eq!(out.len(), SERIES_PER_INSTANCE);
    out
}

#[cfg(test)]
mod tests;
