//! Test helper: histograms written as in Prometheus' PromQL test files, e.g.
//! `{{schema:0 count:4 sum:5 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] offset:1
//! n_buckets:[1] n_offset:0 custom_values:[1 2] counter_reset_hint:gauge}}`. Each bucket
//! list becomes one span.

use super::{FloatHistogram, ResetHint, Span};

fn number(text: &str) -> f64 {
    match text {
        "Inf" | "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {text:?}")),
    }
}

/// The histogram `text` describes; panics on anything it does not understand.
pub(crate) fn h(text: &str) -> FloatHistogram {
    let body = text
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .expect("{{...}}");
    // Put list items together: `buckets:[1 2 3]` is one field.
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut in_list = false;
    for c in body.chars() {
        match c {
            '[' => in_list = true,
            ']' => in_list = false,
            _ => {}
        }
        if c.is_whitespace() && !in_list {
            if !current.is_empty() {
                fields.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        fields.push(current);
    }
    let mut out = FloatHistogram::default();
    let (mut offset, mut n_offset) = (0, 0);
    let (mut buckets, mut n_buckets) = (Vec::new(), Vec::new());
    for field in fields {
        let (key, value) = field.split_once(':').expect("key:value");
        let list = || -> Vec<f64> {
            value
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split_whitespace()
                .map(number)
                .collect()
        };
        match key {
            "schema" => out.schema = value.parse().expect("schema"),
            "count" => out.count = number(value),
            "sum" => out.sum = number(value),
            "z_bucket" => out.zero_count = number(value),
            "z_bucket_w" => out.zero_threshold = number(value),
            "buckets" => buckets = list(),
            "n_buckets" => n_buckets = list(),
            "offset" => offset = value.parse().expect("offset"),
            "n_offset" => n_offset = value.parse().expect("n_offset"),
            "custom_values" => out.custom_values = list(),
            "counter_reset_hint" => {
                out.counter_reset_hint = match value {
                    "unknown" => ResetHint::Unknown,
                    "reset" => ResetHint::Reset,
                    "not_reset" => ResetHint::NotReset,
                    "gauge" => ResetHint::Gauge,
                    _ => panic!("hint {value}"),
                }
            }
            _ => panic!("unknown field {key}"),
        }
    }
    let span = |offset: i32, n: usize| {
        if n == 0 {
            Vec::new()
        } else {
            vec![Span {
                offset,
                length: n as u32,
            }]
        }
    };
    out.positive_spans = span(offset, buckets.len());
    out.positive_buckets = buckets;
    out.negative_spans = span(n_offset, n_buckets.len());
    out.negative_buckets = n_buckets;
    out
}
