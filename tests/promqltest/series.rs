//! The value part of a series description (`load` lines and expected results), read as
//! Prometheus' series-description lexer and grammar read it: floats, `_`, `stale`,
//! repetitions (`1x3`, `_x3`), expansions (`1+2x3`, `5-1x4`) and native histograms
//! (`{{schema:0 sum:5 count:4 buckets:[1 2 1]}}`, repeated with `x3`, expanded with
//! `{{...}}+{{...}}x3` or `-`).

use hypnos_schemas::histogram::{FloatHistogram, ResetHint, Span};

/// A native histogram of a series description.
#[derive(Debug, Clone)]
pub(crate) struct HistogramValue {
    pub(crate) h: FloatHistogram,
    /// Whether the description wrote `counter_reset_hint:` out: only then is the hint of a
    /// result compared with it.
    pub(crate) hint_set: bool,
}

/// One value of a series description.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Float(f64),
    Histogram(Box<HistogramValue>),
}

/// One point of a series description: a value, or missing (`_`).
pub(crate) type Point = Option<Value>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Space,
    Blank,
    Times,
    Add,
    Sub,
    /// The text of a number (decimal, `Inf`, `NaN`).
    Number(String),
    Ident(String),
    OpenHist,
    CloseHist,
    LeftBracket,
    RightBracket,
    Colon,
    /// A histogram descriptor key (`schema`, `buckets`, ...), lower case.
    Key(&'static str),
    Hint(ResetHint),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Space => write!(f, "<space>"),
            Tok::Blank => write!(f, "\"_\""),
            Tok::Times => write!(f, "\"x\""),
            Tok::Add => write!(f, "\"+\""),
            Tok::Sub => write!(f, "\"-\""),
            Tok::Number(n) => write!(f, "number {n:?}"),
            Tok::Ident(i) => write!(f, "identifier {i:?}"),
            Tok::OpenHist => write!(f, "\"{{{{\""),
            Tok::CloseHist => write!(f, "\"}}}}\""),
            Tok::LeftBracket => write!(f, "\"[\""),
            Tok::RightBracket => write!(f, "\"]\""),
            Tok::Colon => write!(f, "\":\""),
            Tok::Key(k) => write!(f, "histogram key {k:?}"),
            Tok::Hint(h) => write!(f, "counter reset hint {h:?}"),
        }
    }
}

const HISTOGRAM_KEYS: [&str; 11] = [
    "sum",
    "count",
    "schema",
    "offset",
    "n_offset",
    "buckets",
    "n_buckets",
    "z_bucket",
    "z_bucket_w",
    "custom_values",
    "counter_reset_hint",
];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: char) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

/// Scans a number starting at `i` (the series-description form: decimal digits with at
/// most one dot and one exponent, `_` between digits, no hexadecimal); returns its end.
fn scan_number(cs: &[char], start: usize) -> Result<usize, String> {
    let at = |i: usize| cs.get(i).copied();
    let in_set = |i: usize, set: &str| at(i).is_some_and(|c| set.contains(c));
    let bad = |end: usize| {
        let end = end.min(cs.len());
        Err(format!(
            "bad number syntax: {:?}",
            cs[start..end].iter().collect::<String>()
        ))
    };
    let mut i = start;
    if in_set(i, ".") {
        i += 1;
    }
    if at(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    let (mut dot, mut exponent) = (false, false);
    while in_set(i, "0123456789._eE") {
        match at(i) {
            Some('.') => {
                i += 1;
                if dot || in_set(i, "_.") {
                    return bad(i + 1);
                }
                dot = true;
            }
            Some('e' | 'E') => {
                i += 1;
                if exponent {
                    return bad(i);
                }
                exponent = true;
                if in_set(i, "+-") {
                    i += 1;
                }
                if in_set(i, "._eE") || at(i).is_none() {
                    return bad(i + 1);
                }
            }
            Some('_') => {
                i += 1;
                if in_set(i, "._eE") || at(i).is_none() {
                    return bad(i + 1);
                }
            }
            _ => {
                while at(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
            }
        }
    }
    if i == start {
        return bad(i + 1);
    }
    // A number may be followed directly by the repetition sign, by nothing else alphanumeric.
    match at(i) {
        Some(c) if c != 'x' && is_alnum(c) => bad(i + 1),
        _ => Ok(i),
    }
}

/// Splits the values of a series description into tokens.
fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut in_histogram, mut in_brackets) = (false, false);
    let mut i = 0;
    let word_end = |from: usize, part: fn(char) -> bool| {
        let mut j = from;
        while j < cs.len() && part(cs[j]) {
            j += 1;
        }
        j
    };
    while i < cs.len() {
        let c = cs[i];
        if is_space(c) {
            i = word_end(i, is_space);
            out.push(Tok::Space);
            continue;
        }
        if in_brackets {
            match c {
                '-' => {
                    out.push(Tok::Sub);
                    i += 1;
                }
                ']' => {
                    in_brackets = false;
                    out.push(Tok::RightBracket);
                    i += 1;
                }
                d if d.is_ascii_digit() => {
                    let end = scan_number(&cs, i)?;
                    out.push(Tok::Number(cs[i..end].iter().collect()));
                    i = end;
                }
                a if is_alpha(a) => {
                    let end = word_end(i, is_alpha);
                    let word: String = cs[i..end].iter().collect();
                    if !matches!(word.to_ascii_lowercase().as_str(), "inf" | "nan") {
                        return Err(format!("invalid word {word:?} in buckets description"));
                    }
                    out.push(Tok::Number(word));
                    i = end;
                }
                other => {
                    return Err(format!(
                        "invalid character in buckets description: {other:?}"
                    ));
                }
            }
        } else if in_histogram {
            match c {
                a if is_alpha(a) => {
                    let end = word_end(i, is_alpha);
                    let word: String = cs[i..end].iter().collect();
                    let lower = word.to_ascii_lowercase();
                    if let Some(key) = HISTOGRAM_KEYS.iter().find(|k| **k == lower) {
                        if cs.get(end) != Some(&':') {
                            return Err("missing `:` for histogram descriptor".into());
                        }
                        out.push(Tok::Key(key));
                    } else if matches!(lower.as_str(), "inf" | "nan") {
                        out.push(Tok::Number(word));
                    } else {
                        let hint = match lower.as_str() {
                            "unknown" => ResetHint::Unknown,
                            "reset" => ResetHint::Reset,
                            "not_reset" => ResetHint::NotReset,
                            "gauge" => ResetHint::Gauge,
                            _ => return Err(format!("bad histogram descriptor found: {word:?}")),
                        };
                        out.push(Tok::Hint(hint));
                    }
                    i = end;
                }
                ':' => {
                    out.push(Tok::Colon);
                    i += 1;
                }
                '-' => {
                    out.push(Tok::Sub);
                    i += 1;
                }
                d if d.is_ascii_digit() => {
                    let end = scan_number(&cs, i)?;
                    out.push(Tok::Number(cs[i..end].iter().collect()));
                    i = end;
                }
                '[' => {
                    in_brackets = true;
                    out.push(Tok::LeftBracket);
                    i += 1;
                }
                '}' if cs.get(i + 1) == Some(&'}') => {
                    in_histogram = false;
                    out.push(Tok::CloseHist);
                    i += 2;
                }
                other => {
                    return Err(format!(
                        "histogram description incomplete unexpected: {other:?}"
                    ));
                }
            }
        } else {
            match c {
                '{' if cs.get(i + 1) == Some(&'{') => {
                    in_histogram = true;
                    out.push(Tok::OpenHist);
                    i += 2;
                }
                '+' => {
                    out.push(Tok::Add);
                    i += 1;
                }
                '-' => {
                    out.push(Tok::Sub);
                    i += 1;
                }
                'x' => {
                    out.push(Tok::Times);
                    i += 1;
                }
                '_' => {
                    out.push(Tok::Blank);
                    i += 1;
                }
                d if d.is_ascii_digit()
                    || (d == '.' && cs.get(i + 1).is_some_and(|n| n.is_ascii_digit())) =>
                {
                    let end = scan_number(&cs, i)?;
                    out.push(Tok::Number(cs[i..end].iter().collect()));
                    i = end;
                }
                a if is_alpha(a) => {
                    let end = word_end(i, |c| is_alnum(c) || c == ':');
                    let word: String = cs[i..end].iter().collect();
                    out.push(
                        if matches!(word.to_ascii_lowercase().as_str(), "inf" | "nan") {
                            Tok::Number(word)
                        } else {
                            Tok::Ident(word)
                        },
                    );
                    i = end;
                }
                other => {
                    return Err(format!(
                        "unexpected character in series sequence: {other:?}"
                    ));
                }
            }
        }
    }
    if in_histogram {
        return Err("unexpected end of input inside a histogram description".into());
    }
    Ok(out)
}

/// The value of a number's text, as Go's `strconv.ParseInt(s, 0, 64)` and then
/// `strconv.ParseFloat(s, 64)` read it: integers may have `_` between digits and a leading
/// `0` makes them octal.
fn number_value(text: &str) -> Result<f64, String> {
    match text.to_ascii_lowercase().as_str() {
        "inf" => return Ok(f64::INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    if text.chars().all(|c| c.is_ascii_digit() || c == '_') && !text.ends_with('_') {
        let (digits, radix) = match text.strip_prefix('0') {
            Some(rest) if !rest.is_empty() => (rest.trim_start_matches('_'), 8),
            _ => (text, 10),
        };
        let clean: String = digits.chars().filter(|c| *c != '_').collect();
        if !text.contains("__")
            && let Ok(v) = i64::from_str_radix(&clean, radix)
        {
            return Ok(v as f64);
        }
    }
    if text.contains('_') {
        return Err(format!("error parsing number: {text:?}"));
    }
    text.parse::<f64>()
        .map_err(|e| format!("error parsing number {text:?}: {e}"))
}

/// Parses the values part of a series description into points.
pub(crate) fn parse_values(text: &str) -> Result<Vec<Point>, String> {
    let toks = lex(text)?;
    let mut p = Parser { toks, pos: 0 };
    let mut out = Vec::new();
    while let Some(t) = p.peek() {
        if *t == Tok::Space {
            p.pos += 1;
            continue;
        }
        p.item(&mut out)?;
        match p.peek() {
            None | Some(Tok::Space) => {}
            Some(t) => return Err(format!("unexpected {t} in series values")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

/// The fields of one histogram description, each at most once.
#[derive(Default)]
struct HistogramDesc {
    schema: Option<i64>,
    sum: Option<f64>,
    count: Option<f64>,
    zero_count: Option<f64>,
    zero_width: Option<f64>,
    custom_values: Option<Vec<f64>>,
    buckets: Option<Vec<f64>>,
    offset: Option<i64>,
    negative_buckets: Option<Vec<f64>>,
    negative_offset: Option<i64>,
    hint: Option<ResetHint>,
}

fn set_once<T>(slot: &mut Option<T>, key: &str, v: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("duplicate key \"{key}\" in histogram"));
    }
    *slot = Some(v);
    Ok(())
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self, what: &str) -> String {
        match self.peek() {
            Some(t) => format!("unexpected {t} in {what}"),
            None => format!("unexpected end of input in {what}"),
        }
    }

    /// `uint`: a repetition count.
    fn count(&mut self) -> Result<u64, String> {
        match self.next() {
            Some(Tok::Number(n)) => n
                .parse::<u64>()
                .map_err(|e| format!("invalid repetition in series values: {n:?}: {e}")),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("series values, expected a repetition count"))
            }
        }
    }

    /// `number` (unsigned).
    fn number(&mut self) -> Result<f64, String> {
        match self.next() {
            Some(Tok::Number(n)) => number_value(&n),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("series values, expected a number"))
            }
        }
    }

    /// `signed_or_unsigned_number`.
    fn signed_number(&mut self) -> Result<f64, String> {
        if self.eat(&Tok::Sub) {
            Ok(-self.number()?)
        } else {
            self.eat(&Tok::Add);
            self.number()
        }
    }

    /// `int`: an optionally negative integer.
    fn int(&mut self) -> Result<i64, String> {
        let negative = self.eat(&Tok::Sub);
        let n = self.count()?;
        let n = i64::try_from(n).map_err(|_| format!("integer {n} out of range"))?;
        Ok(if negative { -n } else { n })
    }

    /// One item of the value sequence, appended to `out` as its points.
    fn item(&mut self, out: &mut Vec<Point>) -> Result<(), String> {
        let v = match self.next() {
            Some(Tok::Blank) => {
                let n = if self.eat(&Tok::Times) {
                    self.count()?
                } else {
                    1
                };
                out.extend((0..n).map(|_| None));
                return Ok(());
            }
            Some(Tok::OpenHist) => return self.histogram_item(out),
            Some(Tok::Ident(word)) => {
                if word != "stale" {
                    return Err(format!(
                        "unexpected identifier {word:?} in series values, expected number or \"stale\""
                    ));
                }
                f64::from_bits(hypnos_schemas::STALE_NAN_BITS)
            }
            Some(Tok::Number(n)) => number_value(&n)?,
            Some(Tok::Add) => self.number()?,
            Some(Tok::Sub) => -self.number()?,
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("series values"));
            }
        };
        if self.eat(&Tok::Times) {
            // `vxN`: N+1 times the same value.
            let n = self.count()?;
            out.extend((0..=n).map(|_| Some(Value::Float(v))));
        } else if matches!(self.peek(), Some(Tok::Add | Tok::Sub)) {
            // `v+dxN` / `v-dxN`: N+1 values, each `d` on from the previous.
            let negative = self.next() == Some(Tok::Sub);
            let d = self.number()?;
            let d = if negative { -d } else { d };
            if !self.eat(&Tok::Times) {
                return Err(self.unexpected("series values, expected \"x\" after an increment"));
            }
            let n = self.count()?;
            let mut cur = v;
            for _ in 0..=n {
                out.push(Some(Value::Float(cur)));
                cur += d;
            }
        } else {
            out.push(Some(Value::Float(v)));
        }
        Ok(())
    }

    /// A histogram item (its `{{` already read) with its repetition or expansion.
    fn histogram_item(&mut self, out: &mut Vec<Point>) -> Result<(), String> {
        let base = self.histogram()?;
        if self.eat(&Tok::Times) {
            let n = self.count()?;
            out.extend((0..=n).map(|_| Some(Value::Histogram(Box::new(base.clone())))));
            return Ok(());
        }
        let subtract = match self.peek() {
            Some(Tok::Add) => false,
            Some(Tok::Sub) => true,
            _ => {
                out.push(Some(Value::Histogram(Box::new(base))));
                return Ok(());
            }
        };
        self.pos += 1;
        if !self.eat(&Tok::OpenHist) {
            return Err(self.unexpected("series values, expected a histogram after \"+\" or \"-\""));
        }
        let inc = self.histogram()?;
        if !self.eat(&Tok::Times) {
            return Err(
                self.unexpected("series values, expected \"x\" after a histogram increment")
            );
        }
        let n = self.count()?;
        expand_histograms(base.h, &inc, n, subtract, out)
    }

    /// A histogram description after its `{{`, up to and including `}}`.
    fn histogram(&mut self) -> Result<HistogramValue, String> {
        let mut d = HistogramDesc::default();
        let empty = self.eat(&Tok::CloseHist)
            || (self.peek() == Some(&Tok::Space)
                && self.toks.get(self.pos + 1) == Some(&Tok::CloseHist)
                && {
                    self.pos += 2;
                    true
                });
        if !empty {
            loop {
                self.histogram_field(&mut d)?;
                if self.eat(&Tok::CloseHist) {
                    break;
                }
                if !self.eat(&Tok::Space) {
                    return Err(self.unexpected(
                        "histogram description, expected histogram description key, e.g. buckets:[5 10 7]",
                    ));
                }
                if self.eat(&Tok::CloseHist) {
                    break;
                }
            }
        }
        Ok(build_histogram(d))
    }

    /// One `key:value` of a histogram description.
    fn histogram_field(&mut self, d: &mut HistogramDesc) -> Result<(), String> {
        let Some(Tok::Key(key)) = self.next() else {
            self.pos -= 1;
            return Err(self.unexpected(
                "histogram description, expected histogram description key, e.g. buckets:[5 10 7]",
            ));
        };
        if !self.eat(&Tok::Colon) {
            return Err(self.unexpected("histogram description, expected \":\""));
        }
        match key {
            "schema" => {
                let v = self.int()?;
                set_once(&mut d.schema, key, v)
            }
            "offset" => {
                let v = self.int()?;
                set_once(&mut d.offset, key, v)
            }
            "n_offset" => {
                let v = self.int()?;
                set_once(&mut d.negative_offset, key, v)
            }
            "sum" => {
                let v = self.signed_number()?;
                set_once(&mut d.sum, key, v)
            }
            "count" => {
                let v = self.signed_number()?;
                set_once(&mut d.count, key, v)
            }
            "z_bucket" => {
                let v = self.signed_number()?;
                set_once(&mut d.zero_count, key, v)
            }
            "z_bucket_w" => {
                let v = self.number()?;
                set_once(&mut d.zero_width, key, v)
            }
            "buckets" => {
                let v = self.bucket_list()?;
                set_once(&mut d.buckets, key, v)
            }
            "n_buckets" => {
                let v = self.bucket_list()?;
                set_once(&mut d.negative_buckets, key, v)
            }
            "custom_values" => {
                let v = self.bucket_list()?;
                set_once(&mut d.custom_values, key, v)
            }
            "counter_reset_hint" => match self.next() {
                Some(Tok::Hint(h)) => set_once(&mut d.hint, key, h),
                _ => {
                    self.pos -= 1;
                    Err(self.unexpected(
                        "histogram description, expected unknown, reset, not_reset or gauge",
                    ))
                }
            },
            other => unreachable!("every key of HISTOGRAM_KEYS is handled, not {other}"),
        }
    }

    /// `[n n n]`: at least one number, a space allowed before the `]`.
    fn bucket_list(&mut self) -> Result<Vec<f64>, String> {
        if !self.eat(&Tok::LeftBracket) {
            return Err(self.unexpected("histogram description, expected \"[\""));
        }
        let mut v = vec![self.signed_number()?];
        loop {
            if self.eat(&Tok::RightBracket) {
                return Ok(v);
            }
            if !self.eat(&Tok::Space) {
                return Err(self.unexpected("bucket list"));
            }
            if self.eat(&Tok::RightBracket) {
                return Ok(v);
            }
            v.push(self.signed_number()?);
        }
    }
}

fn build_histogram(d: HistogramDesc) -> HistogramValue {
    let side = |buckets: Option<Vec<f64>>, offset: Option<i64>| {
        let buckets = buckets.unwrap_or_default();
        let spans = if buckets.is_empty() {
            Vec::new()
        } else {
            vec![Span {
                offset: offset.unwrap_or(0) as i32,
                length: buckets.len() as u32,
            }]
        };
        (spans, buckets)
    };
    let (positive_spans, positive_buckets) = side(d.buckets, d.offset);
    let (negative_spans, negative_buckets) = side(d.negative_buckets, d.negative_offset);
    HistogramValue {
        h: FloatHistogram {
            counter_reset_hint: d.hint.unwrap_or_default(),
            schema: d.schema.unwrap_or(0) as i32,
            zero_threshold: d.zero_width.unwrap_or(0.0),
            zero_count: d.zero_count.unwrap_or(0.0),
            count: d.count.unwrap_or(0.0),
            sum: d.sum.unwrap_or(0.0),
            positive_spans,
            positive_buckets,
            negative_spans,
            negative_buckets,
            custom_values: d.custom_values.unwrap_or_default(),
        },
        hint_set: d.hint.is_some(),
    }
}

/// `{{base}}+{{inc}}xN` (or `-`): the base, then N histograms each `inc` on from the previous.
/// Every point takes the hint-set flag of `inc`, as upstream's parser does.
fn expand_histograms(
    base: FloatHistogram,
    inc: &HistogramValue,
    n: u64,
    subtract: bool,
    out: &mut Vec<Point>,
) -> Result<(), String> {
    let point = |h: FloatHistogram| {
        Some(Value::Histogram(Box::new(HistogramValue {
            h,
            hint_set: inc.hint_set,
        })))
    };
    let mut cur = base;
    out.push(point(cur.clone()));
    for _ in 0..n {
        if cur.schema > inc.h.schema {
            return Err(format!(
                "error combining histograms: cannot merge from schema {} to {}",
                inc.h.schema, cur.schema
            ));
        }
        let mut next = cur.clone();
        let combined = crate::panics::catch(|| {
            if subtract {
                next.sub(&inc.h)
            } else {
                next.add(&inc.h)
            }
        })?;
        combined.map_err(|e| format!("error combining histograms: {e}"))?;
        cur = next;
        out.push(point(cur.clone()));
    }
    Ok(())
}

/// Checks of the notation reader against hand-worked expectations; run at start-up (the
/// test binary has no harness to run `#[test]` functions).
pub(crate) fn self_check() {
    let floats = |text: &str| -> Vec<Option<f64>> {
        parse_values(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|p| {
                p.map(|v| match v {
                    Value::Float(f) => f,
                    Value::Histogram(_) => panic!("{text:?}: unexpected histogram"),
                })
            })
            .collect()
    };
    let same = |a: &[Option<f64>], b: &[Option<f64>]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => x.to_bits() == y.to_bits(),
                (None, None) => true,
                _ => false,
            })
    };
    let stale = f64::from_bits(hypnos_schemas::STALE_NAN_BITS);
    for (text, want) in [
        ("1 2 3", vec![Some(1.0), Some(2.0), Some(3.0)]),
        ("1+2x3", vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]),
        ("5-1x2", vec![Some(5.0), Some(4.0), Some(3.0)]),
        ("-1-1x1", vec![Some(-1.0), Some(-2.0)]),
        ("1e1+1e-1x1", vec![Some(10.0), Some(10.1)]),
        ("0x2", vec![Some(0.0), Some(0.0), Some(0.0)]),
        ("_ _x2 stale", vec![None, None, None, Some(stale)]),
        (
            "Inf -Inf",
            vec![Some(f64::INFINITY), Some(f64::NEG_INFINITY)],
        ),
        ("010 1_000 .5", vec![Some(8.0), Some(1000.0), Some(0.5)]),
        ("  7   8 ", vec![Some(7.0), Some(8.0)]),
        ("", vec![]),
    ] {
        let got = floats(text);
        assert!(same(&got, &want), "{text:?}: {got:?}, want {want:?}");
    }
    let nan = floats("NaN");
    assert!(nan.len() == 1 && nan[0].is_some_and(f64::is_nan));
    for bad in [
        "1+2",
        "x3",
        "1x",
        "foo",
        "1a",
        "1..2",
        "1__0",
        "{{schema:0",
        "{{ schema:0}}",
        "{{sum:1 sum:2}}",
        "{{bogus:1}}",
        "{{sum 1}}",
        "{{sum:+1}}",
        "{{buckets:[]}}",
        "{{buckets:[ 1]}}",
        "{{counter_reset_hint:maybe}}",
        "{{schema:1.5}}",
        "{{z_bucket_w:-1}}",
        "{{}}+{{}}",
        "{{}}+1x2",
        "{{}} x2",
        "1 +",
    ] {
        assert!(parse_values(bad).is_err(), "{bad:?} must not parse");
    }

    let hist = |text: &str| -> Vec<HistogramValue> {
        parse_values(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|p| match p {
                Some(Value::Histogram(h)) => *h,
                other => panic!("{text:?}: not a histogram: {other:?}"),
            })
            .collect()
    };
    let h = hist(
        "{{schema:1 sum:-2.5 count:9 z_bucket:1 z_bucket_w:0.001 buckets:[1 2] offset:-1 n_buckets:[3 0 2] n_offset:2 counter_reset_hint:gauge }}",
    );
    assert_eq!(h.len(), 1);
    let want = FloatHistogram {
        counter_reset_hint: ResetHint::Gauge,
        schema: 1,
        zero_threshold: 0.001,
        zero_count: 1.0,
        count: 9.0,
        sum: -2.5,
        positive_spans: vec![Span {
            offset: -1,
            length: 2,
        }],
        positive_buckets: vec![1.0, 2.0],
        negative_spans: vec![Span {
            offset: 2,
            length: 3,
        }],
        negative_buckets: vec![3.0, 0.0, 2.0],
        custom_values: vec![],
    };
    assert_eq!(h[0].h, want);
    assert!(h[0].hint_set);

    // Keys in any order and any case, Inf and NaN in buckets, an offset without buckets.
    let h = hist("{{Count:Inf SCHEMA:-53 custom_values:[1 5.5] buckets:[NaN 1] offset:2}}");
    assert_eq!(h[0].h.schema, -53);
    assert_eq!(h[0].h.count, f64::INFINITY);
    assert_eq!(h[0].h.custom_values, vec![1.0, 5.5]);
    assert_eq!(
        h[0].h.positive_spans,
        vec![Span {
            offset: 2,
            length: 2
        }]
    );
    assert!(h[0].h.positive_buckets[0].is_nan());
    assert!(!h[0].hint_set);
    let h = hist("{{n_offset:3}}");
    assert!(h[0].h.negative_spans.is_empty() && h[0].h.negative_buckets.is_empty());

    // `{{}}` is the empty histogram; `x2` repeats it three times.
    let h = hist("{{}}x2 {{ }}");
    assert_eq!(h.len(), 4);
    assert!(
        h.iter()
            .all(|v| v.h == FloatHistogram::default() && !v.hint_set)
    );

    // Histograms, floats, `_` and `stale` in one series.
    let points = parse_values("1 {{count:2 sum:3}} _ stale {{count:1}}x1 2+1x1").unwrap();
    let kinds: String = points
        .iter()
        .map(|p| match p {
            None => '_',
            Some(Value::Float(f)) if f.to_bits() == hypnos_schemas::STALE_NAN_BITS => 's',
            Some(Value::Float(_)) => 'f',
            Some(Value::Histogram(_)) => 'h',
        })
        .collect();
    assert_eq!(kinds, "fh_shhff");

    // An expansion refuses a base finer than its increment without combining anything.
    assert!(parse_values("{{schema:1}}+{{schema:0}}x0").is_ok());
    let e = parse_values("{{schema:1}}+{{schema:0}}x1").unwrap_err();
    assert!(e.contains("cannot merge from schema 0 to 1"), "{e}");
}
