//! A reader for Prometheus' promqltest script language (see shared/promqltest/README.md):
//! `load`, `clear` and `eval` commands with their indented bodies.

use hypnos_schemas::Labels;

use crate::series::{Point, parse_values};

/// A series of a `load` command or of an expected result.
#[derive(Debug, Clone)]
pub(crate) struct SeriesDesc {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<Point>,
}

#[derive(Debug, Clone)]
pub(crate) enum Expect {
    /// A bare number: a scalar result.
    Scalar(f64),
    /// A string result.
    String(String),
    /// Series with one value (instant) or several points (range).
    Series(Vec<SeriesDesc>),
}

/// What an expected error must say.
#[derive(Debug, Clone)]
pub(crate) enum FailMsg {
    Exact(String),
    Regex(String),
}

/// One `expect warn` / `expect info` line: any annotation of that kind, or one with this
/// exact text (`msg:`) or matching this pattern (`regex:`).
#[derive(Debug, Clone)]
pub(crate) enum AnnotationMatch {
    Any,
    Exact(String),
    Regex(regex::Regex),
}

impl AnnotationMatch {
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            AnnotationMatch::Any => true,
            AnnotationMatch::Exact(m) => m == text,
            AnnotationMatch::Regex(r) => r.is_match(text),
        }
    }
}

impl std::fmt::Display for AnnotationMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnnotationMatch::Any => write!(f, "any"),
            AnnotationMatch::Exact(m) => write!(f, "message {m:?}"),
            AnnotationMatch::Regex(r) => write!(f, "pattern {:?}", r.as_str()),
        }
    }
}

/// What an eval says about the query's annotations, as upstream's test framework reads it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AnnotationExpect {
    /// `eval_warn` / `eval_info`: at least one of that kind.
    pub(crate) some_warning: bool,
    pub(crate) some_info: bool,
    /// `expect warn ...` / `expect info ...` lines.
    pub(crate) warnings: Vec<AnnotationMatch>,
    pub(crate) infos: Vec<AnnotationMatch>,
    /// `expect no_warn` / `expect no_info`.
    pub(crate) no_warnings: bool,
    pub(crate) no_infos: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Timing {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub(crate) line: usize,
    pub(crate) query: String,
    pub(crate) timing: Timing,
    pub(crate) fail: bool,
    /// With `expect fail msg: ...` / `regex: ...`: what the error must say.
    pub(crate) fail_msg: Option<FailMsg>,
    pub(crate) ordered: bool,
    pub(crate) expect: Expect,
    /// `expect range vector from <start> to <end> step <step>`: the instant query returns a
    /// range vector whose expected points are at these times.
    pub(crate) range_vector: Option<(i64, i64, i64)>,
    /// Why the expected result could not be read.
    pub(crate) unreadable: Option<String>,
    pub(crate) annotations: AnnotationExpect,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Load {
        interval: i64,
        series: Vec<SeriesDesc>,
        /// `load_with_nhcb`: also load native histograms with custom buckets built from the
        /// classic histograms.
        nhcb: bool,
        line: usize,
        /// What of the load could not be read (and is therefore not loaded).
        error: Option<String>,
    },
    Clear,
    Eval(Eval),
}

/// Parses a Prometheus duration (`1h30m`, `5m`, `10s`, `100ms`, `0`) or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1000.0).round() as i64);
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit())?;
        if n_end == 0 {
            return None;
        }
        let n: i64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Some(total)
}

fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()? as f64
    } else {
        match body.to_ascii_lowercase().as_str() {
            "inf" => f64::INFINITY,
            "nan" => f64::NAN,
            _ => body.parse::<f64>().ok()?,
        }
    };
    Some(if neg { -v } else { v })
}

/// Splits `metric{a="b"} 1 2 3` into the series selector and its values. As upstream's
/// lexer reads it, the selector is the metric name and the braces directly after it; the
/// values (which may hold `{{...}}` histograms) follow after white space.
fn split_series_line(line: &str) -> Result<(&str, &str), String> {
    let line = line.trim();
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let mut end = name_end;
    if line[end..].starts_with('{') && !line[end..].starts_with("{{") {
        let mut quote: Option<char> = None;
        let mut escaped = false;
        let mut close = None;
        for (i, c) in line[end..].char_indices() {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' && q != '`' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
                None if c == '}' => {
                    close = Some(end + i + 1);
                    break;
                }
                None => {}
            }
        }
        end = close.ok_or_else(|| format!("{line}: unclosed label set"))?;
    }
    let (desc, rest) = line.split_at(end);
    if desc.is_empty() {
        return Err(format!("{line}: no series selector"));
    }
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        if rest.starts_with("@st") {
            return Err(format!(
                "{line}: start timestamps (`@st` lines) cannot be loaded by this runner"
            ));
        }
        return Err(format!(
            "{line}: unexpected {rest:?} after the series selector"
        ));
    }
    Ok((desc, rest.trim()))
}

/// Parses a series descriptor like `metric{a="b"}` into labels.
pub(crate) fn parse_labels(desc: &str) -> Result<Labels, String> {
    let expr = promql_parser::parser::parse(desc).map_err(|e| format!("{desc}: {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("{desc}: not a series descriptor"));
    };
    let mut pairs: Vec<(String, String)> = vs
        .matchers
        .matchers
        .iter()
        .map(|m| (m.name.clone(), m.value.clone()))
        .collect();
    if let Some(n) = vs.name {
        pairs.push(("__name__".into(), n));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Parses one series line: selector and values.
pub(crate) fn parse_series(line: &str) -> Result<SeriesDesc, String> {
    let (desc, values) = split_series_line(line)?;
    let labels = if desc
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        // A bare metric name (which may be a PromQL keyword, e.g. `sum`).
        Labels::from_pairs([("__name__", desc)])
    } else if desc == "{}" {
        Labels::default()
    } else {
        parse_labels(desc)?
    };
    let points = parse_values(values).map_err(|e| format!("{line}: {e}"))?;
    Ok(SeriesDesc { labels, points })
}

/// Parses a whole script.
pub(crate) fn parse(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let lineno = i + 1;
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        // The indented body of this command.
        let mut body = Vec::new();
        while i < lines.len()
            && (lines[i].starts_with(' ')
                || lines[i].starts_with('\t')
                || lines[i].trim().is_empty())
        {
            if !lines[i].trim().is_empty() && !lines[i].trim_start().starts_with('#') {
                body.push(lines[i].trim());
            }
            i += 1;
        }
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        match cmd {
            "clear" => cmds.push(Command::Clear),
            "load" | "load_with_nhcb" => {
                let interval = words
                    .next()
                    .and_then(parse_duration)
                    .ok_or_else(|| format!("line {lineno}: bad load interval"))?;
                let mut series = Vec::new();
                let mut error = None;
                for b in body {
                    match parse_series(b) {
                        Ok(s) => series.push(s),
                        Err(e) => error = Some(e),
                    }
                }
                cmds.push(Command::Load {
                    interval,
                    series,
                    nhcb: cmd == "load_with_nhcb",
                    line: lineno,
                    error,
                });
            }
            "eval" | "eval_fail" | "eval_warn" | "eval_info" | "eval_ordered" => {
                let rest = line[cmd.len()..].trim();
                let (timing, query) = if let Some(r) = rest.strip_prefix("instant at ") {
                    let (t, q) = r
                        .split_once(' ')
                        .ok_or_else(|| format!("line {lineno}: no query"))?;
                    (
                        Timing::Instant(
                            parse_duration(t).ok_or_else(|| format!("line {lineno}: bad time"))?,
                        ),
                        q.trim(),
                    )
                } else if let Some(r) = rest.strip_prefix("range from ") {
                    let w: Vec<&str> = r.splitn(6, ' ').collect();
                    if w.len() < 6 || w[1] != "to" || w[3] != "step" {
                        return Err(format!("line {lineno}: bad range eval"));
                    }
                    let d = |s: &str| {
                        parse_duration(s).ok_or_else(|| format!("line {lineno}: bad duration {s}"))
                    };
                    (
                        Timing::Range {
                            start: d(w[0])?,
                            end: d(w[2])?,
                            step: d(w[4])?,
                        },
                        w[5].trim(),
                    )
                } else {
                    return Err(format!("line {lineno}: unknown eval form"));
                };
                let mut ev = Eval {
                    line: lineno,
                    query: query.to_string(),
                    timing,
                    fail: cmd == "eval_fail",
                    fail_msg: None,
                    ordered: cmd == "eval_ordered",
                    expect: Expect::Series(Vec::new()),
                    range_vector: None,
                    unreadable: None,
                    annotations: AnnotationExpect {
                        some_warning: cmd == "eval_warn",
                        some_info: cmd == "eval_info",
                        ..AnnotationExpect::default()
                    },
                };
                let mut series = Vec::new();
                for b in body {
                    if let Some(e) = b.strip_prefix("expect ") {
                        let e = e.trim();
                        if let Some(rest) = e.strip_prefix("fail") {
                            ev.fail = true;
                            let rest = rest.trim();
                            if let Some(m) = rest.strip_prefix("msg:") {
                                ev.fail_msg = Some(FailMsg::Exact(m.trim().to_string()));
                            } else if let Some(r) = rest.strip_prefix("regex:") {
                                ev.fail_msg = Some(FailMsg::Regex(r.trim().to_string()));
                            }
                        } else if let Some(r) = e.strip_prefix("range vector") {
                            ev.range_vector = Some(parse_range_vector(r).ok_or_else(|| {
                                format!("line {lineno}: invalid range vector definition {b:?}")
                            })?);
                        } else if e == "ordered" {
                            ev.ordered = true;
                        } else if let Some(s) = e.strip_prefix("string ") {
                            ev.expect = Expect::String(unquote(s.trim()));
                        } else if e == "no_warn" {
                            ev.annotations.no_warnings = true;
                        } else if e == "no_info" {
                            ev.annotations.no_infos = true;
                        } else if let Some(rest) = e.strip_prefix("warn") {
                            let m = annotation_match(rest)
                                .map_err(|err| format!("line {lineno}: {err}"))?;
                            ev.annotations.warnings.push(m);
                        } else if let Some(rest) = e.strip_prefix("info") {
                            let m = annotation_match(rest)
                                .map_err(|err| format!("line {lineno}: {err}"))?;
                            ev.annotations.infos.push(m);
                        }
                        continue;
                    }
                    if let Some(v) = parse_number(b) {
                        ev.expect = Expect::Scalar(v);
                        continue;
                    }
                    match parse_series(b) {
                        Ok(s) => series.push(s),
                        Err(e) => ev.unreadable = Some(e),
                    }
                }
                if !series.is_empty() {
                    ev.expect = Expect::Series(series);
                }
                let a = &ev.annotations;
                if (!a.warnings.is_empty() && a.no_warnings) || (!a.infos.is_empty() && a.no_infos)
                {
                    return Err(format!(
                        "line {lineno}: warn and no_warn (info and no_info) cannot be used together"
                    ));
                }
                cmds.push(Command::Eval(ev));
            }
            other => return Err(format!("line {lineno}: unknown command {other:?}")),
        }
    }
    Ok(cmds)
}

/// `from <start> to <end> step <step>` of an `expect range vector` line.
fn parse_range_vector(rest: &str) -> Option<(i64, i64, i64)> {
    let w: Vec<&str> = rest.split_whitespace().collect();
    match w[..] {
        ["from", start, "to", end, "step", step] => Some((
            parse_duration(start)?,
            parse_duration(end)?,
            parse_duration(step)?,
        )),
        _ => None,
    }
}

/// The rest of an `expect warn` / `expect info` line: nothing, `msg: <text>` or
/// `regex: <pattern>`.
fn annotation_match(rest: &str) -> Result<AnnotationMatch, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        Ok(AnnotationMatch::Any)
    } else if let Some(m) = rest.strip_prefix("msg:") {
        Ok(AnnotationMatch::Exact(m.trim().to_string()))
    } else if let Some(r) = rest.strip_prefix("regex:") {
        regex::Regex::new(r.trim())
            .map(AnnotationMatch::Regex)
            .map_err(|e| format!("invalid regex {:?}: {e}", r.trim()))
    } else {
        Err(format!(
            "invalid token {rest:?} after an expected annotation"
        ))
    }
}

/// The text of a Go string literal as the scripts write it: `"..."` or a raw `` `...` ``.
fn unquote(s: &str) -> String {
    let s = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    let s = s
        .strip_prefix('`')
        .and_then(|s| s.strip_suffix('`'))
        .unwrap_or(s);
    s.replace("\\\"", "\"")
}
