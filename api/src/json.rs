//! Prometheus' JSON, written by hand so that numbers come out byte for byte as Prometheus
//! writes them: timestamps as `jsonutil.MarshalTimestamp` does (seconds with exactly three
//! decimals when there are milliseconds), sample values as strings formatted like
//! `jsonutil.MarshalFloat` (Go's `strconv.AppendFloat(v, 'f', -1, 64)`, switching to `'e'` for
//! magnitudes below 1e-6 or from 1e21, `NaN`, `+Inf`, `-Inf`), strings escaped like Go's
//! encoder (HTML-safe).

use std::fmt::Write;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hypnos_planner::QueryResult;
use hypnos_schemas::Labels;
use hypnos_schemas::histogram::FloatHistogram;

/// Appends a millisecond timestamp as Prometheus' seconds (`1.5s` -> `1.500`, `-0.005`).
pub(crate) fn push_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let t = ms.unsigned_abs();
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

/// A sample value as Prometheus writes it (without the quotes).
pub(crate) fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's shortest `{:e}` has the same digits as Go's 'e' with precision -1; Go writes
        // the exponent with a sign and at least two digits.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').expect("{:e} always has an exponent");
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        format!("{mantissa}e{sign}{digits:0>2}")
    } else {
        // Go's 'f' with precision -1 is the shortest round-tripping decimal, as Rust's `{}`.
        format!("{v}")
    }
}

/// Appends `s` as a JSON string, escaped as Go's `encoding/json` does (`<`, `>`, `&`,
/// U+2028 and U+2029 escaped too).
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a label set as a JSON object (`{"__name__":"up","job":"a"}`).
pub(crate) fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, &l.name);
        out.push(':');
        push_str(out, &l.value);
    }
    out.push('}');
}

/// Appends `[<ts>,"<v>"]`.
fn push_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    push_timestamp(out, t);
    out.push_str(",\"");
    out.push_str(&format_value(v));
    out.push_str("\"]");
}

/// Appends `[<ts>,{"count":"..","sum":"..","buckets":[[rule,"lower","upper","count"],...]}]`,
/// Prometheus' form of a native histogram sample. `rule` says which bounds belong to the
/// bucket: 0 upper only, 1 lower only, 2 neither, 3 both.
fn push_histogram_point(out: &mut String, t: i64, h: &FloatHistogram) {
    out.push('[');
    push_timestamp(out, t);
    out.push_str(",{\"count\":\"");
    out.push_str(&format_value(h.count));
    out.push_str("\",\"sum\":\"");
    out.push_str(&format_value(h.sum));
    out.push('"');
    let buckets = h.buckets();
    if !buckets.is_empty() {
        out.push_str(",\"buckets\":[");
        for (i, b) in buckets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let rule = match (b.lower_inclusive, b.upper_inclusive) {
                (false, true) => 0,
                (true, false) => 1,
                (false, false) => 2,
                (true, true) => 3,
            };
            let _ = write!(
                out,
                "[{rule},\"{}\",\"{}\",\"{}\"]",
                format_value(b.lower),
                format_value(b.upper),
                format_value(b.count)
            );
        }
        out.push(']');
    }
    out.push_str("}]");
}

/// The `data` object of a query answer: `{"resultType":...,"result":...}`.
pub(crate) fn query_data(result: &QueryResult) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"resultType\":");
    push_str(&mut out, result.result_type());
    out.push_str(",\"result\":");
    match result {
        QueryResult::Scalar { t, v } => push_point(&mut out, *t, *v),
        QueryResult::String { t, v } => {
            out.push('[');
            push_timestamp(&mut out, *t);
            out.push(',');
            push_str(&mut out, v);
            out.push(']');
        }
        QueryResult::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(&mut out, &s.labels);
                match &s.h {
                    Some(h) => {
                        out.push_str(",\"histogram\":");
                        push_histogram_point(&mut out, s.t, h);
                    }
                    None => {
                        out.push_str(",\"value\":");
                        push_point(&mut out, s.t, s.v);
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        QueryResult::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_labels(&mut out, &s.labels);
                if !s.points.is_empty() || s.histograms.is_empty() {
                    out.push_str(",\"values\":[");
                    for (j, (t, v)) in s.points.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        push_point(&mut out, *t, *v);
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        push_histogram_point(&mut out, *t, h);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// A JSON array of strings.
pub(crate) fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, s);
    }
    out.push(']');
    out
}

/// A JSON array of label-set objects.
pub(crate) fn labels_array<'a>(items: impl IntoIterator<Item = &'a Labels>) -> String {
    let mut out = String::from("[");
    for (i, l) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_labels(&mut out, l);
    }
    out.push(']');
    out
}

/// `{"status":"success","data":<data>}`, with `warnings` when there are some.
pub(crate) fn success_body(data: &str, warnings: &[String]) -> String {
    success_body_annotated(data, warnings, &[])
}

/// The most warnings (and, apart, infos) one answer lists, as Prometheus' API; the rest
/// are counted in a last entry.
pub(crate) const MAX_ANNOTATIONS: usize = 10;

/// `{"status":"success","data":<data>}`, with `warnings` and `infos` (Prometheus 3) when
/// there are some, each list cut at [`MAX_ANNOTATIONS`].
pub(crate) fn success_body_annotated(data: &str, warnings: &[String], infos: &[String]) -> String {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str("{\"status\":\"success\",\"data\":");
    out.push_str(data);
    for (key, items, kind) in [("warnings", warnings, "warning"), ("infos", infos, "info")] {
        if items.is_empty() {
            continue;
        }
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        let mut listed: Vec<&str> = items
            .iter()
            .take(MAX_ANNOTATIONS)
            .map(String::as_str)
            .collect();
        let omitted = items.len().saturating_sub(MAX_ANNOTATIONS);
        let more = format!("{omitted} more {kind} annotations omitted");
        if omitted > 0 {
            listed.push(&more);
        }
        out.push_str(&string_array(listed));
    }
    out.push('}');
    out
}

/// `{"status":"error","errorType":...,"error":...}`.
pub(crate) fn error_body(error_type: &str, message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 64);
    out.push_str("{\"status\":\"error\",\"errorType\":");
    push_str(&mut out, error_type);
    out.push_str(",\"error\":");
    push_str(&mut out, message);
    out.push('}');
    out
}

/// A response with a JSON body.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A 200 success envelope around `data`.
pub(crate) fn success(data: &str, warnings: &[String]) -> Response {
    json_response(StatusCode::OK, success_body(data, warnings))
}

/// A 200 success envelope around `data` with a query's warnings and infos.
pub(crate) fn success_annotated(data: &str, warnings: &[String], infos: &[String]) -> Response {
    json_response(
        StatusCode::OK,
        success_body_annotated(data, warnings, infos),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypnos_planner::{InstantSample, RangeSeries};

    fn ts(ms: i64) -> String {
        let mut s = String::new();
        push_timestamp(&mut s, ms);
        s
    }

    #[test]
    fn timestamps_like_marshal_timestamp() {
        assert_eq!(ts(0), "0");
        assert_eq!(ts(1000), "1");
        assert_eq!(ts(1500), "1.500");
        assert_eq!(ts(1005), "1.005");
        assert_eq!(ts(1050), "1.050");
        assert_eq!(ts(1_700_000_000_123), "1700000000.123");
        assert_eq!(ts(-1500), "-1.500");
        assert_eq!(ts(-5), "-0.005");
        assert_eq!(ts(-2000), "-2");
        assert_eq!(ts(i64::MIN), "-9223372036854775.808");
    }

    #[test]
    fn values_like_marshal_float() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (100000.0, "100000"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (-2.5e21, "-2.5e+21"),
            (1e-6, "0.000001"),
            (1e-7, "1e-07"),
            (1.25e-10, "1.25e-10"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::from_bits(hypnos_schemas::STALE_NAN_BITS), "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_value(v), want, "{v:?}");
        }
    }

    #[test]
    fn strings_escaped_like_go() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\nd<e>&\u{1}\u{2028}é");
        assert_eq!(s, r#""a\"b\\c\nd\u003ce\u003e\u0026\u0001\u2028é""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd<e>&\u{1}\u{2028}é");
    }

    #[test]
    fn query_results() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let v = QueryResult::Vector(vec![InstantSample {
            labels: labels.clone(),
            t: 1_500,
            v: 1.0,
            h: None,
        }]);
        assert_eq!(
            success_body(&query_data(&v), &[]),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1.500,"1"]}]}}"#
        );
        let m = QueryResult::Matrix(vec![RangeSeries {
            labels,
            points: vec![(1000, 1.0), (2001, f64::NAN)],
            histograms: vec![],
        }]);
        assert_eq!(
            query_data(&m),
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a"},"values":[[1,"1"],[2.001,"NaN"]]}]}"#
        );
        assert_eq!(
            query_data(&QueryResult::Scalar { t: 1000, v: 2.0 }),
            r#"{"resultType":"scalar","result":[1,"2"]}"#
        );
        assert_eq!(
            query_data(&QueryResult::String {
                t: 1000,
                v: "x".into()
            }),
            r#"{"resultType":"string","result":[1,"x"]}"#
        );
        assert_eq!(
            query_data(&QueryResult::Vector(vec![])),
            r#"{"resultType":"vector","result":[]}"#
        );
    }

    #[test]
    fn envelopes() {
        assert_eq!(
            error_body("bad_data", "invalid \"x\""),
            r#"{"status":"error","errorType":"bad_data","error":"invalid \"x\""}"#
        );
        assert_eq!(
            success_body(&string_array(["a", "b"]), &["w".into()]),
            r#"{"status":"success","data":["a","b"],"warnings":["w"]}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&success_body(&labels_array([&Labels::default()]), &[])).unwrap();
        assert_eq!(v["data"][0], serde_json::json!({}));
    }

    #[test]
    fn annotations_are_listed_apart_and_cut_at_ten() {
        assert_eq!(
            success_body_annotated("[]", &[], &["PromQL info: i (1:1)".into()]),
            r#"{"status":"success","data":[],"infos":["PromQL info: i (1:1)"]}"#
        );
        assert_eq!(
            success_body_annotated("[]", &[], &[]),
            r#"{"status":"success","data":[]}"#
        );
        let many: Vec<String> = (0..12).map(|i| format!("w{i:02}")).collect();
        let v: serde_json::Value =
            serde_json::from_str(&success_body_annotated("[]", &many, &[])).unwrap();
        let w = v["warnings"].as_array().unwrap();
        assert_eq!(w.len(), 11);
        assert_eq!(w[9], "w09");
        assert_eq!(w[10], "2 more warning annotations omitted");
        assert!(v.get("infos").is_none());
    }
}
