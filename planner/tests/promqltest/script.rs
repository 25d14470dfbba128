//! A reader for Prometheus' promqltest script language (see shared/promqltest/README.md):
//! `load`, `clear` and `eval` commands with their indented bodies.

use hypnos_schemas::Labels;

/// One point of a series description: a value, or missing (`_`).
pub(crate) type Point = Option<f64>;

/// A series of a `load` command or of an expected range result.
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
    /// Why the expected result could not be read (e.g. native histogram samples).
    pub(crate) unreadable: Option<String>,
    pub(crate) annotations: AnnotationExpect,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Load {
        interval: i64,
        series: Vec<SeriesDesc>,
        line: usize,
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

/// Expands one item of the series notation into points.
fn expand_item(item: &str, out: &mut Vec<Point>) -> Result<(), String> {
    if item == "_" {
        out.push(None);
        return Ok(());
    }
    if item == "stale" {
        out.push(Some(f64::from_bits(hypnos_schemas::STALE_NAN_BITS)));
        return Ok(());
    }
    if item.starts_with("{{") {
        return Err("native histogram samples are not supported by this runner yet".into());
    }
    // `0x59` is 0 repeated (upstream's series lexer reads `x` as the repeat sign there too).
    let repeat = item.rfind('x').filter(|&pos| {
        pos > 0 && pos + 1 < item.len() && item[pos + 1..].chars().all(|c| c.is_ascii_digit())
    });
    if let Some(pos) = repeat {
        let n: u64 = item[pos + 1..]
            .parse()
            .map_err(|_| format!("bad count in {item:?}"))?;
        let left = &item[..pos];
        if left == "_" {
            out.extend(std::iter::repeat_n(None, n as usize));
            return Ok(());
        }
        // `a+b` / `a-b`: the sign that is not the first character nor part of an exponent.
        let bytes = left.as_bytes();
        let split = (1..bytes.len()).rev().find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (base, inc) = match split {
            Some(i) => (
                parse_number(&left[..i]).ok_or_else(|| format!("bad number in {item:?}"))?,
                parse_number(&left[i..]).ok_or_else(|| format!("bad number in {item:?}"))?,
            ),
            None => (
                parse_number(left).ok_or_else(|| format!("bad number in {item:?}"))?,
                0.0,
            ),
        };
        let mut v = base;
        out.push(Some(v));
        for _ in 0..n {
            v += inc;
            out.push(Some(v));
        }
        return Ok(());
    }
    out.push(Some(
        parse_number(item).ok_or_else(|| format!("bad value {item:?}"))?,
    ));
    Ok(())
}

/// Splits `metric{a="b"} 1 2 3` into the label part and the values part.
fn split_series_line(line: &str) -> (&str, &str) {
    let line = line.trim();
    if let Some(close) = line.find('}').filter(|_| line.contains('{')) {
        // The closing brace of the label set (values never contain braces except histograms).
        let mut depth = 0;
        let mut in_str = false;
        let mut prev = ' ';
        for (i, c) in line.char_indices() {
            match c {
                '"' if prev != '\\' => in_str = !in_str,
                '{' if !in_str => depth += 1,
                '}' if !in_str => {
                    depth -= 1;
                    if depth == 0 {
                        return (&line[..=i], line[i + 1..].trim());
                    }
                }
                _ => {}
            }
            prev = c;
        }
        let _ = close;
    }
    match line.find(char::is_whitespace) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    }
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

fn parse_series(line: &str) -> Result<SeriesDesc, String> {
    let (desc, values) = split_series_line(line);
    let labels = if desc == "{}" {
        Labels::default()
    } else {
        parse_labels(desc)?
    };
    let mut points = Vec::new();
    for item in values.split_whitespace() {
        expand_item(item, &mut points)?;
    }
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
                let mut error = (cmd == "load_with_nhcb")
                    .then(|| "load_with_nhcb is not supported by this runner yet".to_string());
                for b in body {
                    match parse_series(b) {
                        Ok(s) => series.push(s),
                        Err(e) => error = Some(e),
                    }
                }
                cmds.push(Command::Load {
                    interval,
                    series,
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
                        // `range vector`: a result shape this runner does not check yet.
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
