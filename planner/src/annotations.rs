//! The warnings and infos of one query (Prometheus' annotations): operators add them while
//! they run, the planner adds those it can tell from the query alone, and the query's result
//! carries them. The wording is Prometheus' own, so that clients (Grafana) and the
//! conformance scripts see the same text; each ends with the position of the expression it
//! is about, `(line:column)` in the query text, when the planner knows it.

use std::fmt;
use std::sync::Mutex;

/// A position in the query text: line and column, both from 1, the column counted in bytes
/// (Prometheus' `PositionRange.StartPosInput`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryPos {
    pub line: u32,
    pub col: u32,
}

impl QueryPos {
    /// The position of byte `offset` of `query`.
    pub fn at(query: &str, offset: usize) -> Self {
        let before = &query.as_bytes()[..offset.min(query.len())];
        let line = 1 + before.iter().filter(|b| **b == b'\n').count() as u32;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        QueryPos {
            line,
            col: (before.len() - line_start) as u32 + 1,
        }
    }
}

impl fmt::Display for QueryPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Whether an annotation is a warning (the result may be wrong or incomplete) or an info
/// (the query may not mean what it says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnnotationKind {
    Warning,
    Info,
}

impl AnnotationKind {
    fn prefix(self) -> &'static str {
        match self {
            AnnotationKind::Warning => "PromQL warning",
            AnnotationKind::Info => "PromQL info",
        }
    }
}

/// The collector of one query's annotations. Shared by every operator of the query (it
/// travels in DataFusion's session config as an extension); the same text is kept once.
#[derive(Debug, Default)]
pub struct Annotations {
    items: Mutex<Vec<(AnnotationKind, String)>>,
}

impl Annotations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `message` (without the `PromQL warning: ` / `PromQL info: ` prefix), followed
    /// by ` (line:column)` when `pos` is known.
    pub fn add(&self, kind: AnnotationKind, message: &str, pos: Option<QueryPos>) {
        let text = match pos {
            Some(p) => format!("{}: {message} ({p})", kind.prefix()),
            None => format!("{}: {message}", kind.prefix()),
        };
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if !items.iter().any(|(k, t)| *k == kind && *t == text) {
            items.push((kind, text));
        }
    }

    pub fn warn(&self, message: &str, pos: Option<QueryPos>) {
        self.add(AnnotationKind::Warning, message, pos);
    }

    pub fn info(&self, message: &str, pos: Option<QueryPos>) {
        self.add(AnnotationKind::Info, message, pos);
    }

    /// The texts of one kind, sorted (operators run concurrently, so the order in which
    /// they were added means nothing).
    pub fn texts(&self, kind: AnnotationKind) -> Vec<String> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<String> = items
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| t.clone())
            .collect();
        out.sort();
        out
    }

    pub fn is_empty(&self) -> bool {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Warns about a quantile outside [0, 1] (or NaN) when `q` is one.
pub fn check_quantile(notes: &Annotations, q: f64, pos: Option<QueryPos>) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        notes.warn(
            &format!(
                "quantile value should be between 0 and 1, got {}",
                go_format_g(q)
            ),
            pos,
        );
    }
}

/// Warns about a `limit_ratio` ratio outside [-1, 1], which is capped to the nearest end.
pub fn check_ratio(notes: &Annotations, r: f64, pos: Option<QueryPos>) {
    if r.abs() > 1.0 {
        notes.warn(
            &format!(
                "ratio value should be between -1 and 1, got {}, capping to {}",
                go_format_g(r),
                go_format_g(r.clamp(-1.0, 1.0))
            ),
            pos,
        );
    }
}

/// The message for a classic bucket whose `le` label is missing or not a number.
pub fn bad_bucket_label(metric_name: &str, le: &str) -> String {
    with_metric_name(
        format!(
            "bucket label \"le\" is missing or has a malformed value of {}",
            go_quote(le)
        ),
        metric_name,
    )
}

/// The info when histogram_quantile had to make bucket counts non-decreasing.
pub fn forced_monotonicity(metric_name: &str) -> String {
    with_metric_name(
        "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".into(),
        metric_name,
    )
}

/// The info when `rate` or `increase` reads a series whose name does not look like a
/// counter's.
pub fn possible_non_counter(metric_name: &str) -> String {
    format!(
        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {}",
        go_quote(metric_name)
    )
}

/// Whether a metric name ends like a counter's (`_total`, `_sum`, `_count`, `_bucket`).
pub fn counter_like_name(name: &str) -> bool {
    ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// The warning for `sort` and its relatives in a range query.
pub const SORT_IN_RANGE_QUERY: &str =
    "sort is ineffective for range queries since results are always ordered by labels";

fn with_metric_name(message: String, metric_name: &str) -> String {
    if metric_name.is_empty() {
        message
    } else {
        format!("{message} for metric name {}", go_quote(metric_name))
    }
}

/// Go's `%q` of a string: double quotes, with `"`, `\` and control characters escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%g` of a float64, as annotations quote numbers.
pub use hypnos_schemas::histogram::go_format_g;

// Native histograms in functions and binary operators.

/// The info when a binary operator meets operands of types it does not combine
/// (`histogram + float`, `float / histogram`, ...): the element is dropped.
pub fn incompatible_types_in_binop(lhs_type: &str, op: &str, rhs_type: &str) -> String {
    format!(
        "incompatible sample types encountered for binary operator {}: {lhs_type} {op} {rhs_type}",
        go_quote(op)
    )
}

/// The warning when a binary operator meets histograms with exponential and custom
/// buckets: the element is dropped.
pub fn incompatible_bucket_layout_in_binop(op: &str) -> String {
    format!("incompatible bucket layout encountered for binary operator {op}")
}

/// The warning when histograms that said "counter reset" and "no counter reset" were
/// combined; `operation` is "addition", "subtraction" or "aggregation".
pub fn histogram_counter_reset_collision(operation: &str) -> String {
    format!("conflicting counter resets during histogram {operation}")
}

/// The info when custom-bucket histograms with different bounds were combined at their
/// common bounds; `operation` is "addition", "subtraction" or "aggregation".
pub fn mismatched_custom_buckets(operation: &str) -> String {
    format!("mismatched custom buckets were reconciled during {operation}")
}

/// The warning when a series is both a native histogram and classic buckets at one time.
pub fn mixed_classic_native_histograms(metric_name: &str) -> String {
    with_metric_name(
        "vector contains a mix of classic and native histograms".into(),
        metric_name,
    )
}

/// The info when histogram_quantile's rank falls among NaN observations.
pub fn quantile_nan_result(metric_name: &str) -> String {
    with_metric_name(
        "input to histogram_quantile has NaN observations, result is NaN".into(),
        metric_name,
    )
}

/// The info when histogram_quantile's result is skewed by NaN observations.
pub fn quantile_nan_skew(metric_name: &str) -> String {
    with_metric_name(
        "input to histogram_quantile has NaN observations, result is skewed higher".into(),
        metric_name,
    )
}

/// The info when histogram_fraction left NaN observations out.
pub fn fraction_nans(metric_name: &str) -> String {
    with_metric_name(
        "input to histogram_fraction has NaN observations, which are excluded from all fractions"
            .into(),
        metric_name,
    )
}

// Native histograms in aggregations.

/// The info when an aggregation that only takes floats (`min`, `max`, `stddev`, `stdvar`,
/// `quantile`, `topk`, `bottomk`) skipped a histogram sample.
pub fn histogram_ignored_in_aggregation(aggregation: &str) -> String {
    format!("ignored histogram in {aggregation} aggregation")
}

/// The warning when `sum` or `avg` met floats and histograms in one group: the group has no
/// result.
pub const MIXED_FLOATS_HISTOGRAMS_AGGREGATION: &str =
    "encountered a mix of histograms and floats for aggregation";

/// The warning when histograms with exponential and custom buckets were to be combined:
/// the result is dropped. The name is quoted even when empty, as Prometheus does.
pub fn mixed_exponential_custom_histograms(metric_name: &str) -> String {
    format!(
        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {}",
        go_quote(metric_name)
    )
}

// Native histograms in range functions.

/// The warning when a range function that combines samples met floats and histograms in
/// one window: the window has no result.
pub fn mixed_floats_histograms(metric_name: &str) -> String {
    format!(
        "encountered a mix of histograms and floats for metric name {}",
        go_quote(metric_name)
    )
}

/// The warning when `rate`, `increase` or `irate` read a gauge histogram.
pub fn native_histogram_not_counter(metric_name: &str) -> String {
    format!(
        "this native histogram metric is not a counter: {}",
        go_quote(metric_name)
    )
}

/// The warning when `delta` or `idelta` read a counter histogram.
pub fn native_histogram_not_gauge(metric_name: &str) -> String {
    format!(
        "this native histogram metric is not a gauge: {}",
        go_quote(metric_name)
    )
}

/// The info when a range function that only takes floats left out the histograms of a
/// window that also holds floats.
pub fn histogram_ignored_in_mixed_range(metric_name: &str) -> String {
    format!(
        "ignored histograms in a range containing both floats and histograms for metric name {}",
        go_quote(metric_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_bytes_from_one() {
        assert_eq!(QueryPos::at("rate(x[5m])", 0).to_string(), "1:1");
        assert_eq!(QueryPos::at("rate(x[5m])", 5).to_string(), "1:6");
        assert_eq!(QueryPos::at("sum(\n  rate(x[5m]))", 7).to_string(), "2:3");
    }

    #[test]
    fn same_text_is_kept_once_and_kinds_are_apart() {
        let a = Annotations::new();
        a.warn("w", Some(QueryPos { line: 1, col: 3 }));
        a.warn("w", Some(QueryPos { line: 1, col: 3 }));
        a.info("i", None);
        assert_eq!(
            a.texts(AnnotationKind::Warning),
            vec!["PromQL warning: w (1:3)"]
        );
        assert_eq!(a.texts(AnnotationKind::Info), vec!["PromQL info: i"]);
    }

    #[test]
    fn quantile_warnings_use_go_formatting() {
        let a = Annotations::new();
        for q in [0.0, 0.5, 1.0] {
            check_quantile(&a, q, None);
        }
        assert!(a.is_empty());
        for q in [f64::NAN, -0.1, 1.01, 2.0, 1e21] {
            check_quantile(&a, q, None);
        }
        let got = a.texts(AnnotationKind::Warning);
        let want: Vec<String> = ["-0.1", "1.01", "1e+21", "2", "NaN"]
            .iter()
            .map(|v| format!("PromQL warning: quantile value should be between 0 and 1, got {v}"))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ratios_beyond_one_warn_with_the_cap() {
        let a = Annotations::new();
        for r in [-1.0, 0.0, 0.5, 1.0] {
            check_ratio(&a, r, None);
        }
        assert!(a.is_empty());
        check_ratio(&a, 1.1, Some(QueryPos { line: 1, col: 19 }));
        check_ratio(&a, -1.1, None);
        assert_eq!(
            a.texts(AnnotationKind::Warning),
            vec![
                "PromQL warning: ratio value should be between -1 and 1, got -1.1, capping to -1",
                "PromQL warning: ratio value should be between -1 and 1, got 1.1, capping to 1 (1:19)",
            ]
        );
    }

    #[test]
    fn messages_quote_like_go() {
        assert_eq!(
            bad_bucket_label("series", "Hello \"W\""),
            r#"bucket label "le" is missing or has a malformed value of "Hello \"W\"" for metric name "series""#
        );
        assert_eq!(
            bad_bucket_label("", ""),
            r#"bucket label "le" is missing or has a malformed value of """#
        );
        assert!(counter_like_name("http_requests_total"));
        assert!(!counter_like_name("http_requests"));
        assert_eq!(go_format_g(1e-5), "1e-05");
        assert_eq!(go_format_g(123456.0), "123456");
        assert_eq!(go_format_g(1234567.0), "1.234567e+06");
    }
}
