//! Request parameters as Prometheus reads them: from the URL query and, for form-encoded
//! POSTs, the body (whose values come first, like Go's `Request.FormValue`); timestamps as
//! float seconds or RFC 3339; durations as Prometheus durations or float seconds.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{Method, Request, header};

use hypnos_planner::MaxSourceResolution;

use super::errors::ApiError;

/// Largest form-encoded body read (queries are small; this only guards memory).
const MAX_FORM_BYTES: usize = 16 << 20;

/// `MinTime` of Prometheus' API in milliseconds: the default start of metadata queries.
pub(crate) const MIN_TIME_MS: i64 = -9_223_309_901_258_974_000;
/// `MaxTime` of Prometheus' API in milliseconds: the default end of metadata queries.
pub(crate) const MAX_TIME_MS: i64 = 9_223_309_901_257_974_999;
/// How Prometheus formats those two (clients send them back).
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277026596-12-04T15:30:07.999999999Z";

/// Every parameter of a request, in `FormValue` order: body values first, then the URL's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a URL query string (without the `?`).
    #[cfg(test)]
    pub(crate) fn from_query(q: &str) -> Self {
        Self {
            pairs: url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        }
    }

    /// The first value of `name`, `None` when absent or empty (Prometheus treats both alike).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name` (`match[]`), in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The timestamp parameter `name` in milliseconds, `default` when absent.
    pub(crate) fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(s) => parse_time(s).map_err(|e| ApiError::invalid_param(name, e)),
        }
    }

    /// `max_source_resolution` (Thanos' parameter): `auto`, `raw`, `0`, `0s`, `5m` or `1h`;
    /// `default` when absent.
    pub(crate) fn max_source_resolution(
        &self,
        default: MaxSourceResolution,
    ) -> Result<MaxSourceResolution, ApiError> {
        const NAME: &str = "max_source_resolution";
        match self.get(NAME) {
            None => Ok(default),
            Some(s) => MaxSourceResolution::parse(s).ok_or_else(|| {
                ApiError::invalid_param(
                    NAME,
                    format!("{s:?} is not one of auto, raw, 0s, 5m or 1h"),
                )
            }),
        }
    }

    /// The duration parameter `name` in nanoseconds (Go's `time.Duration`), if present.
    pub(crate) fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|s| parse_duration(s).map_err(|e| ApiError::invalid_param(name, e)))
            .transpose()
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs = Vec::new();
        let form = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                });
        let query = req.uri().query().unwrap_or_default().to_string();
        if form {
            let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|e| ApiError::BadData(format!("error parsing form body: {e}")))?;
            pairs.extend(url::form_urlencoded::parse(&body).into_owned());
        }
        pairs.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
        Ok(Self { pairs })
    }
}

/// Now, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Prometheus' `parseTime`: float unix seconds (rounded to milliseconds) or RFC 3339.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(t) = s.parse::<f64>() {
        // Beyond this the milliseconds do not fit an i64.
        if t.is_finite() && t.abs() < 9.2e15 {
            let secs = t.trunc();
            let ms = ((t - secs) * 1000.0).round();
            return Ok(secs as i64 * 1000 + ms as i64);
        }
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    } else if s == MIN_TIME_FORMATTED {
        return Ok(MIN_TIME_MS);
    } else if s == MAX_TIME_FORMATTED {
        return Ok(MAX_TIME_MS);
    }
    Err(format!("cannot parse {s:?} to a valid timestamp"))
}

/// Prometheus' API `parseDuration`: float seconds or a Prometheus duration; nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(d) = s.parse::<f64>() {
        if d.is_nan() {
            return Err(format!("cannot parse {s:?} to a valid duration"));
        }
        let ns = d * 1e9;
        if ns >= i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ns as i64);
    }
    parse_prometheus_duration(s).ok_or_else(|| format!("cannot parse {s:?} to a valid duration"))
}

/// `model.ParseDuration`: `0`, or units in decreasing order from `y` to `ms`
/// (`1h30m`, `5m`, `1d`, `1w`, `1y`, `250ms`); nanoseconds, `None` when invalid or overflowing.
pub(crate) fn parse_prometheus_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    const MS: u64 = 1_000_000;
    // Longer units first so that "ms" is not read as "m".
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000 * MS),
        ("w", 7 * 24 * 3_600_000 * MS),
        ("d", 24 * 3_600_000 * MS),
        ("h", 3_600_000 * MS),
        ("m", 60_000 * MS),
        ("s", 1_000 * MS),
        ("ms", MS),
    ];
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = if rest.starts_with("ms") {
            "ms"
        } else {
            rest.get(..1)?
        };
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        if idx < next_unit {
            return None;
        }
        next_unit = idx + 1;
        rest = &rest[unit.len()..];
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;

    #[test]
    fn times() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1.5"), Ok(1500));
        assert_eq!(parse_time("1700000000.123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("1700000000.1234"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("1.0006"), Ok(1001));
        assert_eq!(parse_time("-1.5"), Ok(-1500));
        assert_eq!(parse_time("1e3"), Ok(1_000_000));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert_eq!(parse_time(MIN_TIME_FORMATTED), Ok(MIN_TIME_MS));
        assert_eq!(parse_time(MAX_TIME_FORMATTED), Ok(MAX_TIME_MS));
        for bad in ["x", "", "NaN", "Inf", "1e300", "2015-07-01", "12:00"] {
            assert_eq!(
                parse_time(bad),
                Err(format!("cannot parse {bad:?} to a valid timestamp"))
            );
        }
    }

    #[test]
    fn prometheus_durations() {
        for (s, want) in [
            ("0", 0),
            ("5m", 5 * MIN),
            ("1h30m", 90 * MIN),
            ("1d", 24 * 60 * MIN),
            ("1w", 7 * 24 * 60 * MIN),
            ("1y", 365 * 24 * 60 * MIN),
            ("250ms", 250_000_000),
            ("1m30s500ms", 90 * 1_000_000_000 + 500_000_000),
            ("0s", 0),
        ] {
            assert_eq!(parse_prometheus_duration(s), Some(want), "{s}");
        }
        for bad in [
            "",
            "5",
            "m",
            "1m1h",
            "1s1s",
            "1.5m",
            "-5m",
            "5M",
            "1ms1s",
            "99999999999y",
        ] {
            assert_eq!(parse_prometheus_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn api_durations() {
        assert_eq!(parse_duration("15"), Ok(15_000_000_000));
        assert_eq!(parse_duration("0.5"), Ok(500_000_000));
        assert_eq!(parse_duration("-1"), Ok(-1_000_000_000));
        assert_eq!(parse_duration("1m"), Ok(MIN));
        assert_eq!(
            parse_duration("x"),
            Err(r#"cannot parse "x" to a valid duration"#.into())
        );
        assert_eq!(
            parse_duration("1e20"),
            Err(r#"cannot parse "1e20" to a valid duration. It overflows int64"#.into())
        );
        assert!(parse_duration("NaN").is_err());
    }

    #[test]
    fn form_value_order() {
        let p = Params::from_query("query=up&time=&match%5B%5D=a&match%5B%5D=b&query=down");
        assert_eq!(p.get("query"), Some("up"));
        assert_eq!(p.get("time"), None);
        assert_eq!(p.all("match[]"), vec!["a", "b"]);
        assert_eq!(p.time("time", 7).unwrap(), 7);
        let e = Params::from_query("start=x").time("start", 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid parameter "start": cannot parse "x" to a valid timestamp"#
        );
        assert_eq!(
            Params::from_query("step=1m").duration("step").unwrap(),
            Some(MIN)
        );
    }
}
