//! Validation of a whole request before anything of it is applied, and attachment of the
//! tenant label.

use std::fmt::Write as _;

use hypnos_schemas::histogram::FloatHistogram;
use hypnos_schemas::remote::{self, Sample, WriteRequest};
use hypnos_schemas::tenant::TENANT_LABEL;
use hypnos_schemas::{Label, Labels, STALE_NAN_BITS, TenantId};

use crate::IngestError;
use crate::exemplars::{Exemplar, ExemplarRun, MAX_EXEMPLAR_LABEL_RUNES};
use crate::limits::{LimitError, LimitKind, WriteLimits};

mod histogram;

pub(crate) use histogram::HistogramSample;

/// Longest series rendering put into an error message.
const MAX_SERIES_IN_MESSAGE: usize = 512;

/// One validated series: sorted unique labels with the tenant label attached, its float
/// samples and histogram samples as sent (any order; the head sorts and dedupes) and its
/// valid exemplars. Histogram staleness markers arrive among the float samples.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ValidSeries {
    pub(crate) labels: Labels,
    pub(crate) samples: Vec<Sample>,
    pub(crate) histograms: Vec<HistogramSample>,
    pub(crate) exemplars: Vec<Exemplar>,
}

impl ValidSeries {
    /// Float and histogram samples.
    pub(crate) fn num_samples(&self) -> usize {
        self.samples.len() + self.histograms.len()
    }
}

/// A validated request; series without samples nor exemplars are dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ValidRequest {
    pub(crate) series: Vec<ValidSeries>,
    /// Float and histogram samples.
    pub(crate) num_samples: usize,
    pub(crate) num_exemplars: usize,
    /// Exemplars dropped because their label set is longer than
    /// [`MAX_EXEMPLAR_LABEL_RUNES`] (as Prometheus, they do not fail the request).
    pub(crate) exemplars_too_long: usize,
}

impl ValidRequest {
    /// A request holding only `runs` of exemplars, each run one series (labels already
    /// valid and carrying the tenant label): how the exemplars held in memory are logged
    /// again at the start of a new WAL segment.
    pub(crate) fn from_exemplars(runs: Vec<ExemplarRun>) -> ValidRequest {
        let mut req = ValidRequest::default();
        for run in runs {
            req.num_exemplars += run.exemplars.len();
            req.series.push(ValidSeries {
                labels: run.series,
                samples: Vec::new(),
                histograms: Vec::new(),
                exemplars: run.exemplars,
            });
        }
        req
    }
}

/// Validates every series of `req` (nothing is returned when any is invalid) and attaches
/// `tenant_id=<tenant>` to each, replacing a `tenant_id` the sender set. Native histograms
/// are checked as Prometheus does (see [`histogram`]) and kept in their stored form; one
/// whose sum is the staleness NaN becomes a float staleness marker. Invalid exemplars
/// are dropped and counted, never failing the request (as in Prometheus): labels with empty
/// values are left out, and an exemplar whose label set is longer than
/// [`MAX_EXEMPLAR_LABEL_RUNES`] is dropped. Label values are valid UTF-8 by construction
/// (protobuf decoding refuses invalid strings).
#[cfg(test)]
pub(crate) fn validate(tenant: &TenantId, req: WriteRequest) -> Result<ValidRequest, IngestError> {
    validate_limited(tenant, req, &WriteLimits::unlimited(), 0)
}

/// [`validate`] under `limits`, with sample ages measured from `now_ms`: the request's size
/// first (413), then every series (400 naming the series and the limit).
pub(crate) fn validate_limited(
    tenant: &TenantId,
    req: WriteRequest,
    limits: &WriteLimits,
    now_ms: i64,
) -> Result<ValidRequest, IngestError> {
    check_request_size(&req, limits)?;
    for ts in &req.timeseries {
        validate_series(ts)?;
        check_series_limits(ts, limits, now_ms)?;
    }
    let mut out = ValidRequest::default();
    out.series.reserve(req.timeseries.len());
    for mut ts in req.timeseries {
        // An invalid histogram still refuses the whole request: `out` is dropped.
        let histograms = if ts.histograms.is_empty() {
            Vec::new()
        } else {
            split_stale_markers(convert_histograms(&ts)?, &mut ts.samples)
        };
        let exemplars = valid_exemplars(ts.exemplars, &mut out.exemplars_too_long);
        if ts.samples.is_empty() && histograms.is_empty() && exemplars.is_empty() {
            continue;
        }
        let mut labels = Labels::from_sorted(
            ts.labels
                .into_iter()
                .map(|l| Label::new(l.name, l.value))
                .collect(),
        );
        labels.set(TENANT_LABEL, tenant.as_str());
        let series = ValidSeries {
            labels,
            samples: ts.samples,
            histograms,
            exemplars,
        };
        out.num_samples += series.num_samples();
        out.num_exemplars += series.exemplars.len();
        out.series.push(series);
    }
    Ok(out)
}

/// Every histogram of `ts` checked and converted; an error names the series, the sample and
/// the problem.
fn convert_histograms(ts: &remote::TimeSeries) -> Result<Vec<(i64, FloatHistogram)>, IngestError> {
    ts.histograms
        .iter()
        .map(|h| {
            histogram::validate_histogram(h)
                .map(|f| (h.timestamp, f))
                .map_err(|e| {
                    IngestError::Invalid(format!(
                        "invalid native histogram at {} ms: {e} in series {}",
                        h.timestamp,
                        render(&ts.labels)
                    ))
                })
        })
        .collect()
}

/// The histograms in their stored form; staleness markers among them go to `samples` as
/// float staleness markers (the query path only knows float markers).
fn split_stale_markers(
    histograms: Vec<(i64, FloatHistogram)>,
    samples: &mut Vec<Sample>,
) -> Vec<HistogramSample> {
    let mut out = Vec::with_capacity(histograms.len());
    for (timestamp, h) in histograms {
        if h.is_stale_marker() {
            samples.push(Sample {
                value: f64::from_bits(STALE_NAN_BITS),
                timestamp,
            });
        } else {
            out.push(HistogramSample {
                timestamp,
                encoded: h.encode(),
            });
        }
    }
    out
}

/// The exemplars that Prometheus would keep, labels sorted and without empty values;
/// `too_long` counts the others.
fn valid_exemplars(exemplars: Vec<remote::Exemplar>, too_long: &mut usize) -> Vec<Exemplar> {
    if exemplars.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(exemplars.len());
    for e in exemplars {
        let labels = Labels::from_pairs(e.labels.into_iter().map(|l| (l.name, l.value)));
        let runes: usize = labels
            .iter()
            .map(|l| l.name.chars().count() + l.value.chars().count())
            .sum();
        if runes > MAX_EXEMPLAR_LABEL_RUNES {
            *too_long += 1;
            continue;
        }
        out.push(Exemplar {
            labels,
            value: e.value,
            timestamp: e.timestamp,
        });
    }
    out
}

fn check_request_size(req: &WriteRequest, limits: &WriteLimits) -> Result<(), IngestError> {
    let series = req.timeseries.len();
    if limits.max_series_per_request > 0 && series > limits.max_series_per_request {
        return Err(LimitError::new(
            "max_series_per_request",
            LimitKind::TooLarge,
            format!(
                "the request has {series} series, more than {}",
                limits.max_series_per_request
            ),
        )
        .into());
    }
    if limits.max_samples_per_request > 0 {
        let samples: usize = req
            .timeseries
            .iter()
            .map(|t| t.samples.len() + t.histograms.len())
            .sum();
        if samples > limits.max_samples_per_request {
            return Err(LimitError::new(
                "max_samples_per_request",
                LimitKind::TooLarge,
                format!(
                    "the request has {samples} samples, more than {}",
                    limits.max_samples_per_request
                ),
            )
            .into());
        }
    }
    Ok(())
}

/// The metadata entries' metric names and units are at most `max_metadata_length` bytes
/// (help texts are cut when stored, not refused).
pub(crate) fn check_metadata(
    metadata: &[remote::MetricMetadata],
    limits: &WriteLimits,
) -> Result<(), IngestError> {
    let max = limits.max_metadata_length;
    if max == 0 {
        return Ok(());
    }
    for m in metadata {
        let name = &m.metric_family_name;
        let (what, len) = if name.len() > max {
            ("metric name", name.len())
        } else if m.unit.len() > max {
            ("unit", m.unit.len())
        } else {
            continue;
        };
        let shown = &name[..name.floor_char_boundary(64)];
        return Err(LimitError::new(
            "max_metadata_length",
            LimitKind::Invalid,
            format!(
                "metadata entry {shown:?}{} has a {what} of {len} bytes, longer than {max}",
                if shown.len() < name.len() { "..." } else { "" }
            ),
        )
        .into());
    }
    Ok(())
}

/// The per-series limits: label count and lengths, sample age and future skew (of float and
/// histogram samples).
fn check_series_limits(
    ts: &remote::TimeSeries,
    limits: &WriteLimits,
    now_ms: i64,
) -> Result<(), IngestError> {
    let invalid = |limit: &'static str, what: String| {
        IngestError::from(LimitError::new(
            limit,
            LimitKind::Invalid,
            format!("{what} in series {}", render(&ts.labels)),
        ))
    };
    if limits.max_label_names_per_series > 0 {
        let n = ts.labels.iter().filter(|l| l.name != TENANT_LABEL).count();
        if n > limits.max_label_names_per_series {
            return Err(invalid(
                "max_label_names_per_series",
                format!(
                    "{n} label names, more than {}",
                    limits.max_label_names_per_series
                ),
            ));
        }
    }
    for l in &ts.labels {
        if limits.max_label_name_length > 0 && l.name.len() > limits.max_label_name_length {
            return Err(invalid(
                "max_label_name_length",
                format!(
                    "label name of {} bytes, longer than {}",
                    l.name.len(),
                    limits.max_label_name_length
                ),
            ));
        }
        if limits.max_label_value_length > 0 && l.value.len() > limits.max_label_value_length {
            return Err(invalid(
                "max_label_value_length",
                format!(
                    "value of label {:?} of {} bytes, longer than {}",
                    l.name,
                    l.value.len(),
                    limits.max_label_value_length
                ),
            ));
        }
    }
    let mut timestamps = ts
        .samples
        .iter()
        .map(|s| s.timestamp)
        .chain(ts.histograms.iter().map(|h| h.timestamp));
    if let Some(t) = timestamps.clone().find(|t| *t < 0) {
        return Err(IngestError::Invalid(format!(
            "sample at {t} ms is before 1970-01-01T00:00:00Z (timestamps are milliseconds \
             since the Unix epoch, negative ones are refused) in series {}",
            render(&ts.labels)
        )));
    }
    if let Some(age) = limits.max_sample_age_ms
        && let Some(t) = timestamps.clone().find(|t| *t < now_ms.saturating_sub(age))
    {
        return Err(invalid(
            "max_sample_age",
            format!("sample at {t} ms older than {}s before now", age / 1000),
        ));
    }
    if let Some(skew) = limits.max_future_skew_ms
        && let Some(t) = timestamps.find(|t| *t > now_ms.saturating_add(skew))
    {
        return Err(invalid(
            "max_future_skew",
            format!("sample at {t} ms more than {}s in the future", skew / 1000),
        ));
    }
    Ok(())
}

fn validate_series(ts: &remote::TimeSeries) -> Result<(), IngestError> {
    let invalid =
        |what: String| IngestError::Invalid(format!("{what} in series {}", render(&ts.labels)));
    if ts.labels.is_empty() {
        return Err(IngestError::Invalid(format!(
            "series without labels (with {} samples)",
            ts.samples.len() + ts.histograms.len()
        )));
    }
    let mut prev: Option<&str> = None;
    for l in &ts.labels {
        if l.name.is_empty() {
            return Err(invalid("empty label name".into()));
        }
        if !is_valid_label_name(&l.name) {
            return Err(invalid(format!("invalid label name {:?}", l.name)));
        }
        if l.name.starts_with(RESERVED_LABEL_PREFIX) {
            return Err(invalid(format!(
                "label name {:?} is reserved (the prefix {RESERVED_LABEL_PREFIX} is Hypnos' own, \
                 as in {})",
                l.name,
                hypnos_schemas::source::AGGR_LABEL
            )));
        }
        if l.value.is_empty() {
            return Err(invalid(format!("empty value for label {:?}", l.name)));
        }
        if let Some(p) = prev {
            if p == l.name {
                return Err(invalid(format!("duplicate label name {:?}", l.name)));
            }
            if p > l.name.as_str() {
                return Err(invalid(format!(
                    "label names out of order: {p:?} before {:?}",
                    l.name
                )));
            }
        }
        prev = Some(&l.name);
    }
    Ok(())
}

/// Label names Hypnos keeps for itself (the aggregate label of downsampled blocks).
const RESERVED_LABEL_PREFIX: &str = "__hypnos_";

/// Prometheus' legacy label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Renders labels as sent, in Prometheus' notation, cut at a bounded length.
fn render(labels: &[remote::Label]) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if s.len() > MAX_SERIES_IN_MESSAGE {
            s.push_str(", ...");
            break;
        }
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{}={:?}", l.name, l.value);
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(labels: &[(&str, &str)]) -> remote::TimeSeries {
        remote::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| remote::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1,
            }],
            ..Default::default()
        }
    }

    fn check(series: Vec<remote::TimeSeries>) -> Result<ValidRequest, IngestError> {
        validate(
            &TenantId::new("t").unwrap(),
            WriteRequest {
                timeseries: series,
                metadata: vec![],
            },
        )
    }

    fn err(series: remote::TimeSeries) -> String {
        let e = check(vec![ts(&[("__name__", "ok")]), series]).unwrap_err();
        assert!(matches!(e, IngestError::Invalid(_)), "{e}");
        assert_eq!(e.reason(), "invalid_labels");
        e.to_string()
    }

    #[test]
    fn accepts_and_attaches_tenant_overriding_the_senders() {
        let v = check(vec![
            ts(&[("__name__", "up"), ("job", "a")]),
            ts(&[("__name__", "up"), ("tenant_id", "evil")]),
            ts(&[("a_1", "x"), ("zz", "y")]),
        ])
        .unwrap();
        assert_eq!(v.series.len(), 3);
        assert_eq!(v.num_samples, 3);
        assert_eq!(
            v.series[0].labels.to_string(),
            r#"{__name__="up", job="a", tenant_id="t"}"#
        );
        assert_eq!(v.series[1].labels.get("tenant_id"), "t");
        assert_eq!(v.series[1].labels.len(), 2);
        assert_eq!(v.series[2].labels.get("tenant_id"), "t");
    }

    #[test]
    fn drops_series_without_samples() {
        let mut s = ts(&[("__name__", "up")]);
        s.samples.clear();
        assert_eq!(check(vec![s]).unwrap(), ValidRequest::default());
    }

    #[test]
    fn refuses_series_without_labels() {
        assert!(err(ts(&[])).contains("series without labels"));
    }

    #[test]
    fn refuses_empty_and_invalid_names() {
        let e = err(ts(&[("", "v")]));
        assert!(e.contains("empty label name"), "{e}");
        for bad in ["1a", "a-b", "a.b", "é", "a b", "a:b"] {
            let e = err(ts(&[("__name__", "m"), (bad, "v")]));
            assert!(e.contains(&format!("invalid label name {bad:?}")), "{e}");
            assert!(e.contains(r#"__name__="m""#), "names the series: {e}");
        }
    }

    #[test]
    fn refuses_reserved_label_names() {
        for name in ["__hypnos_aggr__", "__hypnos_x"] {
            let e = err(ts(&[("__name__", "m"), (name, "sum")]));
            assert!(
                e.contains(&format!("label name {name:?} is reserved")),
                "{e}"
            );
            assert!(e.starts_with("invalid request:"), "{e}");
        }
        assert!(check(vec![ts(&[("__hypnos", "v"), ("__name__", "m")])]).is_ok());
    }

    #[test]
    fn refuses_empty_values() {
        let e = err(ts(&[("__name__", "m"), ("job", "")]));
        assert!(e.contains(r#"empty value for label "job""#), "{e}");
    }

    #[test]
    fn refuses_unsorted_and_duplicate_names() {
        let e = err(ts(&[("b", "1"), ("a", "2")]));
        assert_eq!(
            e,
            r#"invalid request: label names out of order: "b" before "a" in series {b="1", a="2"}"#
        );
        let e = err(ts(&[("a", "1"), ("a", "2")]));
        assert!(e.contains(r#"duplicate label name "a""#), "{e}");
    }

    fn int_histogram(t: i64, count: u64, deltas: Vec<i64>) -> remote::Histogram {
        remote::Histogram {
            count: Some(remote::histogram::Count::CountInt(count)),
            sum: 1.5,
            positive_spans: vec![remote::BucketSpan {
                offset: 0,
                length: deltas.len() as u32,
            }],
            positive_deltas: deltas,
            timestamp: t,
            ..Default::default()
        }
    }

    #[test]
    fn accepts_histograms_in_their_stored_form() {
        let mut s = ts(&[("__name__", "h")]);
        s.samples[0].timestamp = 5;
        s.histograms.push(int_histogram(1, 3, vec![1, 1]));
        s.histograms.push(remote::Histogram {
            count: Some(remote::histogram::Count::CountFloat(2.5)),
            positive_spans: vec![remote::BucketSpan {
                offset: 0,
                length: 1,
            }],
            positive_counts: vec![2.5],
            timestamp: 2,
            ..Default::default()
        });
        let mut only = ts(&[("__name__", "only_h")]);
        only.samples.clear();
        only.histograms.push(int_histogram(7, 0, vec![]));
        let v = check(vec![s, only]).unwrap();
        assert_eq!(v.num_samples, 4);
        assert_eq!(v.series.len(), 2);
        let h = &v.series[0].histograms;
        assert_eq!(
            h.iter().map(|h| h.timestamp).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let first = FloatHistogram::decode(&h[0].encoded).unwrap();
        assert_eq!(first.positive_buckets, vec![1.0, 2.0]);
        assert_eq!(first.count, 3.0);
        let second = FloatHistogram::decode(&h[1].encoded).unwrap();
        assert_eq!(second.positive_buckets, vec![2.5]);
        assert_eq!(v.series[0].samples.len(), 1);
        assert_eq!(v.series[1].num_samples(), 1);
        assert!(v.series[1].samples.is_empty());
    }

    #[test]
    fn a_stale_histogram_becomes_a_float_staleness_marker() {
        let mut s = ts(&[("__name__", "h")]);
        s.samples.clear();
        let mut stale = int_histogram(9, 0, vec![]);
        stale.sum = f64::from_bits(STALE_NAN_BITS);
        s.histograms.push(int_histogram(8, 2, vec![2]));
        s.histograms.push(stale);
        let v = check(vec![s]).unwrap();
        let series = &v.series[0];
        assert_eq!(series.histograms.len(), 1);
        assert_eq!(series.histograms[0].timestamp, 8);
        assert_eq!(series.samples.len(), 1);
        assert_eq!(series.samples[0].timestamp, 9);
        assert_eq!(series.samples[0].value.to_bits(), STALE_NAN_BITS);
        assert_eq!(v.num_samples, 2);
    }

    #[test]
    fn a_bad_histogram_refuses_the_request_naming_series_and_problem() {
        let mut s = ts(&[("__name__", "h"), ("job", "j")]);
        s.histograms.push(int_histogram(1, 3, vec![1, 1]));
        // Spans cover two buckets, one is given.
        let mut bad = int_histogram(42, 1, vec![1]);
        bad.positive_spans[0].length = 2;
        s.histograms.push(bad);
        let e = err(s);
        assert!(e.contains("invalid native histogram at 42 ms"), "{e}");
        assert!(
            e.contains("positive side: spans need 2 buckets, have 1 buckets"),
            "{e}"
        );
        assert!(e.contains(r#"{__name__="h", job="j"}"#), "{e}");
        // The count must match the buckets of an integer histogram.
        let mut s = ts(&[("__name__", "h")]);
        s.histograms.push(int_histogram(3, 5, vec![1, 1]));
        let e = err(s);
        assert!(
            e.contains("3 observations found in buckets, but the Count field is 5"),
            "{e}"
        );
        // A bad schema.
        let mut s = ts(&[("__name__", "h")]);
        let mut h = int_histogram(3, 0, vec![]);
        h.schema = -7;
        s.histograms.push(h);
        assert!(err(s).contains("invalid schema"));
    }

    #[test]
    fn histograms_count_against_the_limits() {
        let t = TenantId::new("t").unwrap();
        let mut s = ts(&[("__name__", "h")]);
        s.histograms.push(int_histogram(2, 0, vec![]));
        let one = |s: remote::TimeSeries, l: &WriteLimits| {
            validate_limited(
                &t,
                WriteRequest {
                    timeseries: vec![s],
                    metadata: vec![],
                },
                l,
                1_000_000,
            )
        };
        let l = WriteLimits {
            max_samples_per_request: 1,
            ..WriteLimits::unlimited()
        };
        match one(s.clone(), &l).unwrap_err() {
            IngestError::Limit(l) => {
                assert_eq!(l.limit, "max_samples_per_request");
                assert!(l.message.contains("2 samples"), "{}", l.message);
            }
            other => panic!("{other}"),
        }
        // A histogram too far in the future (the float sample is fine).
        let mut s = ts(&[("__name__", "h")]);
        s.samples[0].timestamp = 1_000_000;
        s.histograms.push(int_histogram(2_000_000, 0, vec![]));
        let l = WriteLimits {
            max_future_skew_ms: Some(10_000),
            max_sample_age_ms: Some(10_000),
            ..WriteLimits::unlimited()
        };
        match one(s, &l).unwrap_err() {
            IngestError::Limit(l) => {
                assert_eq!(l.limit, "max_future_skew");
                assert!(l.message.contains("2000000 ms"), "{}", l.message);
            }
            other => panic!("{other}"),
        }
        let mut s = ts(&[("__name__", "h")]);
        s.samples[0].timestamp = 1_000_000;
        s.histograms.push(int_histogram(1, 0, vec![]));
        match one(s, &l).unwrap_err() {
            IngestError::Limit(l) => assert_eq!(l.limit, "max_sample_age"),
            other => panic!("{other}"),
        }
    }

    fn exemplar(labels: &[(&str, &str)], ts: i64) -> remote::Exemplar {
        remote::Exemplar {
            labels: labels
                .iter()
                .map(|(n, v)| remote::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            value: 2.5,
            timestamp: ts,
        }
    }

    #[test]
    fn keeps_exemplars_and_drops_long_ones_without_failing() {
        let mut s = ts(&[("__name__", "up")]);
        // 8 + 120 runes: exactly the limit.
        let at_limit = "é".repeat(120);
        s.exemplars.push(exemplar(&[("trace_id", &at_limit)], 1));
        s.exemplars
            .push(exemplar(&[("trace_id", &format!("{at_limit}x"))], 2));
        s.exemplars
            .push(exemplar(&[("z", "1"), ("span_id", ""), ("a", "2")], 3));
        // Exemplars alone keep a series without samples.
        let mut only = ts(&[("__name__", "other")]);
        only.samples.clear();
        only.exemplars.push(exemplar(&[], 4));
        let v = check(vec![s, only]).unwrap();
        assert_eq!(
            (v.num_samples, v.num_exemplars, v.exemplars_too_long),
            (1, 3, 1)
        );
        let kept = &v.series[0].exemplars;
        assert_eq!(
            kept.iter().map(|e| e.timestamp).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(kept[1].labels.to_string(), r#"{a="2", z="1"}"#);
        assert_eq!(kept[1].value, 2.5);
        assert!(v.series[1].samples.is_empty());
        assert_eq!(v.series[1].labels.get("tenant_id"), "t");
        assert!(v.series[1].exemplars[0].labels.is_empty());
    }

    #[test]
    fn limits_name_themselves() {
        let t = TenantId::new("t").unwrap();
        let check_with = |series: Vec<remote::TimeSeries>, l: &WriteLimits| {
            validate_limited(
                &t,
                WriteRequest {
                    timeseries: series,
                    metadata: vec![],
                },
                l,
                1_000_000,
            )
        };
        let limit = |e: IngestError| match e {
            IngestError::Limit(l) => (l.limit, l.kind, l.to_string()),
            other => panic!("not a limit: {other}"),
        };
        let two = || vec![ts(&[("__name__", "a")]), ts(&[("__name__", "b")])];
        let l = WriteLimits {
            max_series_per_request: 1,
            ..WriteLimits::unlimited()
        };
        let (name, kind, msg) = limit(check_with(two(), &l).unwrap_err());
        assert_eq!(
            (name, kind),
            ("max_series_per_request", LimitKind::TooLarge)
        );
        assert!(
            msg.contains("limit max_series_per_request exceeded: the request has 2 series"),
            "{msg}"
        );
        let l = WriteLimits {
            max_samples_per_request: 1,
            ..WriteLimits::unlimited()
        };
        assert_eq!(
            limit(check_with(two(), &l).unwrap_err()).0,
            "max_samples_per_request"
        );
        let l = WriteLimits {
            max_label_names_per_series: 1,
            ..WriteLimits::unlimited()
        };
        // tenant_id does not count.
        check_with(vec![ts(&[("__name__", "a"), ("tenant_id", "x")])], &l).unwrap();
        let (name, kind, msg) =
            limit(check_with(vec![ts(&[("__name__", "a"), ("job", "x")])], &l).unwrap_err());
        assert_eq!(
            (name, kind),
            ("max_label_names_per_series", LimitKind::Invalid)
        );
        assert!(msg.contains(r#"__name__="a""#), "{msg}");
        let l = WriteLimits {
            max_label_name_length: 3,
            max_label_value_length: 4,
            ..WriteLimits::unlimited()
        };
        check_with(vec![ts(&[("abc", "abcd")])], &l).unwrap();
        assert_eq!(
            limit(check_with(vec![ts(&[("abcd", "a")])], &l).unwrap_err()).0,
            "max_label_name_length"
        );
        assert_eq!(
            limit(check_with(vec![ts(&[("abc", "abcde")])], &l).unwrap_err()).0,
            "max_label_value_length"
        );
        let mut old = ts(&[("__name__", "a")]);
        old.samples[0].timestamp = 1_000_000 - 60_001;
        let mut new = ts(&[("__name__", "a")]);
        new.samples[0].timestamp = 1_000_000 + 10_001;
        let l = WriteLimits {
            max_sample_age_ms: Some(60_000),
            max_future_skew_ms: Some(10_000),
            ..WriteLimits::unlimited()
        };
        assert_eq!(
            limit(check_with(vec![old], &l).unwrap_err()).0,
            "max_sample_age"
        );
        assert_eq!(
            limit(check_with(vec![new], &l).unwrap_err()).0,
            "max_future_skew"
        );
    }

    #[test]
    fn long_series_are_cut_in_messages() {
        let long = "x".repeat(2000);
        let e = err(ts(&[("a", &long), ("b", &long), ("c", "")]));
        assert!(e.len() < 3000, "{}", e.len());
    }
}
