//! The bad-input corpus: malformed and hostile requests over remote write, the query API and
//! the admin API, each with the status it must get. They all go to one server that holds
//! data written before; after the whole corpus the process must still be alive, must not
//! have panicked, and must answer the data exactly as written.
//!
//! Each case names what it sends and why that status: 400 for input a sender must not retry,
//! 413 for bodies over a size limit, 415 for content Hypnos does not take, 404/405 for paths
//! and methods it does not serve, 422 for valid PromQL that cannot be evaluated.

mod common;

use std::fmt::Write as _;

use common::*;
use hypnos_schemas::remote::{BucketSpan, Histogram, histogram};
use prost::Message;

/// One request of the corpus.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// The status it must get.
    want: u16,
    /// A piece of text the answer must contain (the error names the problem).
    says: &'static str,
}

fn case(name: &'static str, method: &'static str, path: impl Into<String>) -> Case {
    Case {
        name,
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        want: 400,
        says: "",
    }
}

impl Case {
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }

    fn body(mut self, b: Vec<u8>) -> Self {
        self.body = b;
        self
    }

    fn want(mut self, status: u16, says: &'static str) -> Self {
        self.want = status;
        self.says = says;
        self
    }

    /// A remote-write 1.0 request with the standard headers.
    fn remote_write(name: &'static str, body: Vec<u8>) -> Self {
        let mut c = case(name, "POST", "/api/v1/receive").body(body);
        for (k, v) in RW_HEADERS {
            c = c.header(k, v);
        }
        c
    }

    /// An instant query with `params` (URL-encoded into the query string).
    fn query(name: &'static str, endpoint: &str, params: &[(&str, &str)]) -> Self {
        let mut path = format!("/api/v1/{endpoint}?");
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                path.push('&');
            }
            let _ = write!(path, "{}={}", urlenc(k), urlenc(v));
        }
        case(name, "GET", path)
    }
}

fn urlenc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A remote-write body of `series`.
fn rw(series: Vec<hypnos_schemas::remote::TimeSeries>) -> Vec<u8> {
    encode(&request(series))
}

/// A histogram sample at `t` with `spans` and `deltas` on the positive side.
fn histogram_at(t: i64, schema: i32, spans: Vec<BucketSpan>, deltas: Vec<i64>) -> Histogram {
    Histogram {
        count: Some(histogram::Count::CountInt(
            deltas.iter().sum::<i64>().max(0) as u64,
        )),
        sum: 1.0,
        schema,
        zero_threshold: 1e-128,
        zero_count: Some(histogram::ZeroCount::ZeroCountInt(0)),
        positive_spans: spans,
        positive_deltas: deltas,
        timestamp: t,
        ..Default::default()
    }
}

fn with_histogram(name: &str, h: Histogram) -> hypnos_schemas::remote::TimeSeries {
    let mut s = series(name, &[], &[]);
    s.histograms.push(h);
    s
}

/// The corpus. `t` is a time after the data already written.
fn corpus(t: i64) -> Vec<Case> {
    let ok = |name: &str| series(name, &[("job", "x")], &[(t, 1.0)]);
    let mut cases = vec![
        // ---- remote write: the envelope ----
        Case::remote_write("empty body", Vec::new()).want(400, ""),
        Case::remote_write("not snappy", b"this is not a snappy block at all".to_vec())
            .want(400, "snappy"),
        Case::remote_write("snappy of bytes that are not protobuf", snappy(&[0xff; 64]))
            .want(400, ""),
        Case::remote_write("truncated snappy block", {
            let b = rw(vec![ok("truncated")]);
            b[..b.len() / 2].to_vec()
        })
        .want(400, ""),
        Case::remote_write("snappy header claiming 4 GiB", {
            // A varint length of 2^32 - 1 and a few literal bytes.
            vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x61]
        })
        .want(413, "exceeds"),
        Case::remote_write(
            "protobuf with wrong wire types",
            snappy(&[0x0a, 0x05, 0x08, 0x01]),
        )
        .want(400, ""),
        Case::remote_write("protobuf cut in the middle of a length", {
            let raw = request(vec![ok("cut")]).encode_to_vec();
            snappy(&raw[..raw.len() - 3])
        })
        .want(400, ""),
        case("gzip content encoding", "POST", "/api/v1/receive")
            .header("Content-Encoding", "gzip")
            .header("Content-Type", "application/x-protobuf")
            .body(rw(vec![ok("gzip")]))
            .want(415, "gzip"),
        case("text content type", "POST", "/api/v1/receive")
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "text/plain")
            .body(rw(vec![ok("text")]))
            .want(415, "text/plain"),
        case("GET on the receiver", "GET", "/api/v1/receive").want(405, "method"),
        Case::remote_write("body over --max-request-bytes", vec![0u8; 2 << 20]).want(413, ""),
        // ---- remote write: series and labels ----
        Case::remote_write(
            "series without labels",
            rw(vec![raw_series(&[], &[(t, 1.0)])]),
        )
        .want(400, "label"),
        Case::remote_write(
            "labels out of order",
            rw(vec![raw_series(
                &[("__name__", "m"), ("z", "1"), ("a", "2")],
                &[(t, 1.0)],
            )]),
        )
        .want(400, "order"),
        Case::remote_write(
            "duplicate label name",
            rw(vec![raw_series(
                &[("__name__", "m"), ("a", "1"), ("a", "2")],
                &[(t, 1.0)],
            )]),
        )
        .want(400, "duplicate"),
        Case::remote_write(
            "label name starting with a digit",
            rw(vec![raw_series(
                &[("1abc", "x"), ("__name__", "m")],
                &[(t, 1.0)],
            )]),
        )
        .want(400, "1abc"),
        Case::remote_write(
            "empty label name",
            rw(vec![raw_series(
                &[("", "x"), ("__name__", "m")],
                &[(t, 1.0)],
            )]),
        )
        .want(400, ""),
        Case::remote_write("label value that is not UTF-8", {
            let raw = request(vec![series("utf8", &[("v", "XXXX")], &[(t, 1.0)])]).encode_to_vec();
            let at = raw
                .windows(4)
                .position(|w| w == b"XXXX")
                .expect("placeholder");
            let mut bad = raw.clone();
            bad[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
            snappy(&bad)
        })
        .want(400, ""),
        Case::remote_write(
            "label name of 100 KiB",
            rw(vec![series(
                "m",
                &[(&"n".repeat(100 << 10), "x")],
                &[(t, 1.0)],
            )]),
        )
        .want(400, "length"),
        Case::remote_write(
            "label value of 1 MiB",
            rw(vec![series(
                "m",
                &[("v", &"v".repeat(1 << 20))],
                &[(t, 1.0)],
            )]),
        )
        .want(400, "length"),
        Case::remote_write("series with 200 labels", {
            let names: Vec<String> = (0..200).map(|i| format!("l{i:03}")).collect();
            let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
            rw(vec![series("m", &pairs, &[(t, 1.0)])])
        })
        .want(400, "labels"),
        Case::remote_write(
            "reserved __hypnos_ label",
            rw(vec![series(
                "m",
                &[("__hypnos_aggr__", "sum")],
                &[(t, 1.0)],
            )]),
        )
        .want(400, "__hypnos_"),
        // ---- remote write: native histograms ----
        Case::remote_write(
            "histogram with schema 100",
            rw(vec![with_histogram(
                "h_schema",
                histogram_at(
                    t,
                    100,
                    vec![BucketSpan {
                        offset: 0,
                        length: 1,
                    }],
                    vec![1],
                ),
            )]),
        )
        .want(400, "schema"),
        Case::remote_write(
            "histogram whose spans and buckets disagree",
            rw(vec![with_histogram(
                "h_spans",
                histogram_at(
                    t,
                    0,
                    vec![BucketSpan {
                        offset: 0,
                        length: 3,
                    }],
                    vec![1],
                ),
            )]),
        )
        .want(400, ""),
        Case::remote_write(
            "histogram with a negative bucket count",
            rw(vec![with_histogram(
                "h_negative",
                histogram_at(
                    t,
                    0,
                    vec![BucketSpan {
                        offset: 0,
                        length: 2,
                    }],
                    vec![1, -5],
                ),
            )]),
        )
        .want(400, ""),
        Case::remote_write(
            "histogram bucket index beyond 2^24",
            rw(vec![with_histogram(
                "h_index",
                histogram_at(
                    t,
                    0,
                    vec![BucketSpan {
                        offset: 1 << 30,
                        length: 1,
                    }],
                    vec![1],
                ),
            )]),
        )
        .want(400, ""),
        Case::remote_write("5 million empty histograms in 10 MiB", {
            // One series whose histograms (field 4 of TimeSeries) are all empty messages.
            let mut ts = series("bomb", &[], &[]).encode_to_vec();
            for _ in 0..5_000_000 {
                ts.extend_from_slice(&[0x22, 0x00]);
            }
            let mut raw = vec![0x0a];
            prost::encoding::encode_varint(ts.len() as u64, &mut raw);
            raw.extend_from_slice(&ts);
            snappy(&raw)
        })
        .want(413, "max_samples_per_request"),
        // ---- remote write: tenants ----
        Case::remote_write("tenant id with a path", rw(vec![ok("tenant_path")]))
            .header("THANOS-TENANT", "../../etc")
            .want(400, "tenant"),
        Case::remote_write("tenant id of 10 KiB", rw(vec![ok("tenant_long")]))
            .header("THANOS-TENANT", "a".repeat(10 << 10))
            .want(400, "tenant"),
        Case::remote_write("two tenants on a write", rw(vec![ok("tenant_two")]))
            .header("X-Scope-OrgID", "a|b")
            .want(400, "tenant"),
        // ---- query API ----
        Case::query("query parameter missing", "query", &[]).want(400, "query"),
        Case::query("syntax error", "query", &[("query", "sum(")]).want(400, "parse error"),
        Case::query("unknown function", "query", &[("query", "nosuchfunc(up)")])
            .want(400, "nosuchfunc"),
        Case::query(
            "time that is not a time",
            "query",
            &[("query", "up"), ("time", "abc")],
        )
        .want(400, "time"),
        Case::query(
            "time beyond any date",
            "query",
            &[("query", "up"), ("time", "1e400")],
        )
        .want(400, "time"),
        Case::query(
            "invalid regular expression",
            "query",
            &[("query", "{__name__=~\"(\"}")],
        )
        .want(400, ""),
        Case::query(
            "selector that matches everything",
            "query",
            &[("query", "{__name__=~\".*\"}")],
        )
        .want(400, "non-empty matcher"),
        Case::query(
            "range of ten billion years",
            "query",
            &[("query", "up[9999999999y]")],
        )
        .want(400, ""),
        Case::query(
            "timeout that is not a duration",
            "query",
            &[("query", "up"), ("timeout", "soon")],
        )
        .want(400, "timeout"),
        Case::query(
            "lookback delta that is not a duration",
            "query",
            &[("query", "up"), ("lookback_delta", "x")],
        )
        .want(400, "lookback"),
        Case::query(
            "max_source_resolution of 7m",
            "query",
            &[("query", "up"), ("max_source_resolution", "7m")],
        )
        .want(400, "max_source_resolution"),
        Case::query(
            "range query whose end is before its start",
            "query_range",
            &[
                ("query", "up"),
                ("start", "100"),
                ("end", "50"),
                ("step", "1"),
            ],
        )
        .want(400, "end timestamp"),
        Case::query(
            "range query with step 0",
            "query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "50"),
                ("step", "0"),
            ],
        )
        .want(400, "step"),
        Case::query(
            "range query with a negative step",
            "query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "50"),
                ("step", "-5"),
            ],
        )
        .want(400, "step"),
        Case::query(
            "range query of 12,000 points",
            "query_range",
            &[
                ("query", "up"),
                ("start", "0"),
                ("end", "12000"),
                ("step", "1"),
            ],
        )
        .want(400, "11,000 points"),
        Case::query(
            "range query without start",
            "query_range",
            &[("query", "up"), ("end", "50"), ("step", "1")],
        )
        .want(400, "start"),
        Case::query(
            "range query of a string",
            "query_range",
            &[
                ("query", "\"s\""),
                ("start", "0"),
                ("end", "50"),
                ("step", "1"),
            ],
        )
        .want(400, "string"),
        case(
            "query string that is not URL-encoded",
            "GET",
            "/api/v1/query?query=%ZZ",
        )
        .want(400, ""),
        case(
            "query as a POST body that is not a form",
            "POST",
            "/api/v1/query",
        )
        .header("Content-Type", "application/json")
        .body(br#"{"query":"up"}"#.to_vec())
        .want(400, "query"),
        Case::query(
            "tenant id with a path on a query",
            "query",
            &[("query", "up")],
        )
        .header("THANOS-TENANT", "../x")
        .want(400, "tenant"),
        Case::query("series without match[]", "series", &[]).want(400, "match[]"),
        Case::query(
            "series with a selector that does not parse",
            "series",
            &[("match[]", "up{")],
        )
        .want(400, ""),
        Case::query(
            "labels with a start that is not a time",
            "labels",
            &[("start", "yesterday")],
        )
        .want(400, "start"),
        case(
            "label values of a label name that is not UTF-8",
            "GET",
            "/api/v1/label/%FF%FE/values",
        )
        .want(400, ""),
        Case::query(
            "exemplars with a bad end",
            "query_exemplars",
            &[("query", "up"), ("end", "x")],
        )
        .want(400, "end"),
        case("an endpoint that does not exist", "GET", "/api/v1/nothing").want(404, ""),
        case("DELETE on the query endpoint", "DELETE", "/api/v1/query").want(405, ""),
        // ---- hostile queries ----
        Case::query(
            "abs( nested 400 deep",
            "query",
            &[(
                "query",
                &format!("{}up{}", "abs(".repeat(400), ")".repeat(400)),
            )],
        )
        .want(400, "nest"),
        Case::query(
            "1,300 unary minus signs",
            "query",
            &[("query", &format!("{}1", "-".repeat(1300)))],
        )
        .want(400, "nest"),
        Case::query(
            "parentheses 5,000 deep",
            "query",
            &[(
                "query",
                &format!("{}up{}", "(".repeat(5000), ")".repeat(5000)),
            )],
        )
        .want(400, "nest"),
        Case::query(
            "a sum of 3,000 terms",
            "query",
            &[("query", &vec!["up"; 3000].join(" + "))],
        )
        .want(400, "nest"),
        Case::query(
            "X-Scope-OrgID naming 12,000 tenants",
            "query",
            &[("query", "up")],
        )
        .header(
            "X-Scope-OrgID",
            (0..12_000)
                .map(|i| format!("t{i}"))
                .collect::<Vec<_>>()
                .join("|"),
        )
        .want(400, "tenant"),
        // ---- remote write: extreme timestamps ----
        Case::remote_write(
            "sample at i64::MAX",
            rw(vec![series("ts_max", &[], &[(i64::MAX, 1.0)])]),
        )
        .want(400, "future"),
        Case::remote_write(
            "sample at i64::MIN",
            rw(vec![series("ts_min", &[], &[(i64::MIN, 1.0)])]),
        )
        .want(400, ""),
        Case::remote_write(
            "sample a day in the future",
            rw(vec![series("ts_tomorrow", &[], &[(t + 86_400_000, 1.0)])]),
        )
        .want(400, "future"),
        // ---- admin API ----
        case(
            "flush while the admin API is disabled",
            "POST",
            "/api/v1/admin/flush",
        )
        .want(503, "admin"),
        case("GET on the flush endpoint", "GET", "/api/v1/admin/flush").want(405, ""),
        case(
            "an admin endpoint Hypnos does not have",
            "POST",
            "/api/v1/admin/tsdb/delete_series?match[]=up",
        )
        .want(404, ""),
    ];
    cases.push(
        Case::query(
            "X-Scope-OrgID naming empty tenants",
            "query",
            &[("query", "x")],
        )
        .header("X-Scope-OrgID", "|")
        .want(400, "tenant"),
    );
    cases
}

#[test]
fn every_bad_request_gets_its_status_and_nothing_accepted_is_lost() {
    // The admin API is off, as it is by default in header mode.
    let server = TestServer::with(Options {
        no_admin_api: true,
        ..Options::default().arg("--max-request-bytes").arg("1048576")
    });
    let t0 = base_time();
    // The data that must survive: 20 series of 30 samples each.
    let data: Vec<_> = (0..20)
        .map(|i| {
            let id = i.to_string();
            let samples: Vec<(i64, f64)> = (0..30)
                .map(|k| (t0 + k * 15_000, (i * 1000 + k) as f64))
                .collect();
            series("corpus_data", &[("i", &id)], &samples)
        })
        .collect();
    server.write(Tenant::Default, &request(data.clone()));
    let t = t0 + 30 * 15_000;

    // A connection per request: a server that answers before reading a body (413) closes
    // its connection, which a pooled client would otherwise try to reuse.
    let client = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client");
    let mut failures = Vec::new();
    let cases = corpus(t);
    for c in &cases {
        let mut rb = match c.method {
            "GET" => client.get(server.url(&c.path)),
            "POST" => client.post(server.url(&c.path)),
            "DELETE" => client.delete(server.url(&c.path)),
            m => panic!("method {m}"),
        };
        for (k, v) in &c.headers {
            rb = rb.header(*k, v);
        }
        let r = match rb.body(c.body.clone()).send() {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: no answer: {e}", c.name));
                continue;
            }
        };
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        if status != c.want || !text.to_lowercase().contains(&c.says.to_lowercase()) {
            failures.push(format!(
                "{}: want {} saying {:?}, got {status}: {}",
                c.name,
                c.want,
                c.says,
                text.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(
        cases.len() >= 50,
        "the corpus has {} kinds of request",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} bad requests were answered wrongly:\n{}\nserver log:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        server.log_tail(40)
    );

    // Alive, not panicked, and the data exactly as written.
    let (status, _) = server.get("/-/healthy");
    assert_eq!(status, 200, "the server is not healthy after the corpus");
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log_tail(40)
    );
    let got = matrix(&server.query(Tenant::Default, "corpus_data[10m]", t));
    assert_eq!(got.len(), 20, "series after the corpus");
    for (metric, points) in got {
        let i: i64 = metric["i"].parse().expect("label i");
        let want: Vec<(i64, f64)> = (0..30)
            .map(|k| (t0 + k * 15_000, (i * 1000 + k) as f64))
            .filter(|(ts, _)| *ts > t - 600_000)
            .collect();
        assert_points(&points, &want, &format!("corpus_data{{i=\"{i}\"}}"));
    }
    // Nothing that was refused was stored under any name.
    let (status, v) = server.api(Tenant::Default, "label/__name__/values", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        v["data"],
        serde_json::json!(["corpus_data"]),
        "metric names stored"
    );
}
