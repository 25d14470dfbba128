//! Turning a [`Dataset`] into what the systems take: remote-write 1.0 request bodies (snappy
//! block format of protobuf `WriteRequest`), and an OpenMetrics text file for
//! `promtool tsdb create-blocks-from openmetrics`.

use std::io::Write;

use hypnos_schemas::remote::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;

use crate::r#gen::Dataset;

/// One encoded remote-write request.
#[derive(Clone, Debug)]
pub struct Request {
    pub tenant: usize,
    pub samples: usize,
    /// Snappy-compressed protobuf.
    pub body: Vec<u8>,
}

/// Requests grouped in time windows: every request of a window holds, for its series, all of
/// their samples in that window. Windows must be sent in order (each series' samples then
/// arrive in time order, as Prometheus requires); the requests of one window in any order
/// and concurrently.
pub fn encode_windows(
    ds: &Dataset,
    window_ms: i64,
    series_per_request: usize,
) -> Vec<Vec<Request>> {
    let (lo, hi) = ds.time_range();
    let window_ms = window_ms.max(1);
    let windows = ((hi - lo) / window_ms + 1) as usize;
    let mut out = Vec::with_capacity(windows);
    // Per series, where its next window starts in its sample vector.
    let mut pos = vec![0usize; ds.series.len()];
    let mut enc = snap::raw::Encoder::new();
    for w in 0..windows {
        let end = lo + (w as i64 + 1) * window_ms;
        let mut reqs = Vec::new();
        for tenant in 0..ds.config.tenants.max(1) {
            let mut batch: Vec<TimeSeries> = Vec::new();
            let mut samples = 0;
            for (i, s) in ds.series.iter().enumerate() {
                if s.tenant != tenant {
                    continue;
                }
                let from = pos[i];
                let mut to = from;
                while to < s.ts.len() && s.ts[to] < end {
                    to += 1;
                }
                pos[i] = to;
                if to == from {
                    continue;
                }
                samples += to - from;
                batch.push(TimeSeries {
                    labels: s
                        .labels
                        .iter()
                        .map(|(n, v)| Label {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    samples: (from..to)
                        .map(|k| Sample {
                            value: s.values[k],
                            timestamp: s.ts[k],
                        })
                        .collect(),
                    ..Default::default()
                });
                if batch.len() == series_per_request {
                    reqs.push(finish(
                        &mut enc,
                        tenant,
                        std::mem::take(&mut batch),
                        samples,
                    ));
                    samples = 0;
                }
            }
            if !batch.is_empty() {
                reqs.push(finish(&mut enc, tenant, batch, samples));
            }
        }
        out.push(reqs);
    }
    out
}

fn finish(
    enc: &mut snap::raw::Encoder,
    tenant: usize,
    timeseries: Vec<TimeSeries>,
    samples: usize,
) -> Request {
    let raw = WriteRequest {
        timeseries,
        metadata: vec![],
    }
    .encode_to_vec();
    Request {
        tenant,
        samples,
        body: enc.compress_vec(&raw).expect("snappy compress"),
    }
}

/// Writes the samples of `tenant` as OpenMetrics text (timestamps in seconds with
/// milliseconds), grouped by metric family, ending with `# EOF`.
pub fn write_openmetrics(ds: &Dataset, tenant: usize, out: &mut impl Write) -> std::io::Result<()> {
    let mut order: Vec<usize> = (0..ds.series.len())
        .filter(|i| ds.series[*i].tenant == tenant)
        .collect();
    order.sort_by(|a, b| ds.series[*a].name().cmp(ds.series[*b].name()));
    let mut line = String::new();
    for i in order {
        let s = &ds.series[i];
        let mut prefix = String::from(s.name());
        prefix.push('{');
        let mut first = true;
        for (n, v) in s.labels.iter().filter(|(n, _)| n != "__name__") {
            if !first {
                prefix.push(',');
            }
            first = false;
            prefix.push_str(n);
            prefix.push_str("=\"");
            prefix.push_str(
                &v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n"),
            );
            prefix.push('"');
        }
        prefix.push_str("} ");
        for (t, v) in s.ts.iter().zip(&s.values) {
            use std::fmt::Write as _;
            line.clear();
            line.push_str(&prefix);
            let _ = writeln!(
                line,
                "{} {}.{:03}",
                format_value(*v),
                t.div_euclid(1000),
                t.rem_euclid(1000)
            );
            out.write_all(line.as_bytes())?;
        }
    }
    out.write_all(b"# EOF\n")
}

/// A float as Prometheus' text formats write it, exactly (shortest round-trip digits).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::r#gen::GenConfig;

    #[test]
    fn windows_cover_every_sample_once_in_order() {
        let ds = Dataset::generate(&GenConfig {
            series: 60,
            duration_ms: 20 * 60_000,
            ..GenConfig::default()
        });
        let windows = encode_windows(&ds, 5 * 60_000, 16);
        let total: usize = windows.iter().flatten().map(|r| r.samples).sum();
        assert_eq!(total, ds.samples());
        let mut last: std::collections::HashMap<Vec<(String, String)>, i64> = Default::default();
        let mut decoded = 0;
        for r in windows.iter().flatten() {
            let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
            let req = WriteRequest::decode(raw.as_slice()).unwrap();
            assert!(req.timeseries.len() <= 16);
            for ts in req.timeseries {
                for s in &ts.samples {
                    let key = ts
                        .labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect();
                    let prev = last.insert(key, s.timestamp);
                    assert!(prev.is_none_or(|p| p < s.timestamp));
                    decoded += 1;
                }
            }
        }
        assert_eq!(decoded, total);
    }

    #[test]
    fn openmetrics_lines_round_trip_values() {
        let ds = Dataset::generate(&GenConfig {
            series: 1,
            duration_ms: 60_000,
            ..GenConfig::default()
        });
        let mut buf = Vec::new();
        write_openmetrics(&ds, 0, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.lines().count(), ds.samples() + 1);
        let line = text
            .lines()
            .find(|l| l.starts_with("node_uname_info{"))
            .unwrap();
        assert!(line.contains("nodename=\"host-0000\""), "{line}");
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = l.rsplitn(3, ' ');
            let _ts: f64 = parts.next().unwrap().parse().unwrap();
            let v: f64 = parts.next().unwrap().parse().unwrap();
            assert!(v.is_finite());
        }
        assert_eq!(format_value(0.1), "1e-1");
        assert_eq!(format_value(123456.78).parse::<f64>().unwrap(), 123456.78);
    }
}
