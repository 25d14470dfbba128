//! Where function calls and aggregations sit in the query text, for the positions that
//! annotations end with (`(line:column)`, as Prometheus writes them). promql-parser keeps no
//! positions, so they are found again in the text: calls and aggregations appear in the text
//! in the order of a pre-order walk of the tree, so each is matched, in that order, to the
//! next occurrence of its name followed by its argument list.

use std::collections::HashMap;

use crate::annotations::QueryPos;
use crate::ops::AggPositions;
use promql_parser::parser::{AggregateExpr, BinaryExpr, Call, Expr};

/// The positions of a call or aggregation: where it starts and where each argument (for an
/// aggregation: the parameter, then the vector) starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SitePos {
    pub(crate) start: QueryPos,
    pub(crate) args: Vec<QueryPos>,
}

/// The positions of every call and aggregation of one parsed query, keyed by node address
/// (the tree must not move while they are used).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    sites: HashMap<usize, SitePos>,
    /// Where binary expressions start (their left operand's start), keyed by node address.
    binaries: HashMap<usize, QueryPos>,
    /// The binary expressions written `</` or `>/` (parsed as `<` and `>`: see
    /// [`crate::parse::parse_promql`]), by node address.
    trims: std::collections::HashSet<usize>,
    /// The query has trim operators that could not be told apart from comparisons.
    trims_unresolved: bool,
    /// String literals whose bytes are not UTF-8 as Go reads them (`"a\xc5z"`): the string
    /// promql-parser made of each (it reads `\xc5` as the character U+00C5), with the
    /// literal as Go quotes its bytes.
    non_utf8_strings: HashMap<String, String>,
}

impl Positions {
    /// Finds the positions of `expr`'s calls and aggregations in `query`, the text it was
    /// parsed from. Nodes it cannot place (text that does not match) get none.
    pub(crate) fn new(query: &str, expr: &Expr) -> Self {
        let mut nodes = Vec::new();
        collect(expr, &mut nodes);
        let tokens = tokenize(query);
        let mut sites = HashMap::new();
        let mut arg_tokens = HashMap::new();
        let mut cursor = 0;
        for node in nodes {
            let Some((start, open)) = find_site(&tokens, cursor, &node) else {
                break;
            };
            let starts = argument_starts(&tokens, open);
            let args = starts
                .iter()
                .map(|i| QueryPos::at(query, tokens[*i].offset))
                .collect();
            arg_tokens.insert(node.addr, starts);
            sites.insert(
                node.addr,
                SitePos {
                    start: QueryPos::at(query, tokens[start].offset),
                    args,
                },
            );
            cursor = start + 1;
        }
        let mut in_order = Vec::new();
        binaries_in_order(expr, &mut in_order);
        let addr = |b: &&BinaryExpr| *b as *const BinaryExpr as usize;
        // The k-th binary operator of the text is the k-th binary expression in order: the
        // token where its right operand starts.
        let operands = crate::parse::binary_operator_operands(query);
        let mut rhs_tokens = HashMap::new();
        if operands.len() == in_order.len() {
            for (b, at) in in_order.iter().zip(operands) {
                if let Some(i) =
                    at.and_then(|at| tokens.binary_search_by_key(&at, |t| t.offset).ok())
                {
                    rhs_tokens.insert(addr(b), i);
                }
            }
        }
        let mut binary_tokens = HashMap::new();
        binary_starts(
            expr,
            (!tokens.is_empty()).then_some(0),
            &Starts {
                args: &arg_tokens,
                rhs: &rhs_tokens,
            },
            &mut binary_tokens,
        );
        let binaries = binary_tokens
            .into_iter()
            .map(|(addr, i)| (addr, QueryPos::at(query, tokens[i].offset)))
            .collect();
        // The k-th `<` or `>` of the text is the k-th binary expression with that operator
        // in an in-order walk of the tree.
        let ops = crate::parse::lt_gt_operators(query);
        let mut trims = std::collections::HashSet::new();
        let mut trims_unresolved = false;
        if ops.iter().any(|(_, trim)| *trim) {
            let exprs: Vec<usize> = in_order
                .iter()
                .filter(|b| matches!(b.op.to_string().as_str(), "<" | ">"))
                .map(addr)
                .collect();
            if exprs.len() == ops.len() {
                trims.extend(
                    exprs
                        .into_iter()
                        .zip(ops)
                        .filter(|(_, (_, trim))| *trim)
                        .map(|(addr, _)| addr),
                );
            } else {
                trims_unresolved = true;
            }
        }
        Self {
            sites,
            binaries,
            trims,
            trims_unresolved,
            non_utf8_strings: non_utf8_strings(query),
        }
    }

    /// When `s` (a string as promql-parser decoded it) was written as a literal whose bytes
    /// are not UTF-8, that literal as Go quotes it (for "invalid label name" errors: Go
    /// reads `\xNN` as a byte, promql-parser as a character).
    pub(crate) fn non_utf8_string(&self, s: &str) -> Option<&str> {
        self.non_utf8_strings.get(s).map(String::as_str)
    }

    /// Whether `b` (parsed as `<` or `>`) was written as a trim operator, `</` or `>/`;
    /// an error when the query's trim operators could not be placed.
    pub(crate) fn is_trim(&self, b: &BinaryExpr) -> Result<bool, String> {
        if self.trims_unresolved {
            return Err("trim operators (</, >/) in this expression".into());
        }
        Ok(self.trims.contains(&(b as *const BinaryExpr as usize)))
    }

    /// Where a binary expression starts, when it can be told (not for the right operand
    /// of another binary expression unless it is a call or an aggregation's argument).
    pub(crate) fn binary(&self, b: &BinaryExpr) -> Option<QueryPos> {
        self.binaries
            .get(&(b as *const BinaryExpr as usize))
            .copied()
    }

    pub(crate) fn call(&self, call: &Call) -> Option<&SitePos> {
        self.sites.get(&(call as *const Call as usize))
    }

    /// The position of argument `i` of `call`.
    pub(crate) fn call_arg(&self, call: &Call, i: usize) -> Option<QueryPos> {
        self.call(call).and_then(|s| s.args.get(i).copied())
    }

    /// Where an aggregation, its parameter and its vector argument are.
    pub(crate) fn aggregate(&self, agg: &AggregateExpr) -> AggPositions {
        let Some(site) = self.sites.get(&(agg as *const AggregateExpr as usize)) else {
            return AggPositions::default();
        };
        AggPositions {
            param: agg.param.as_ref().and(site.args.first().copied()),
            expr: site.args.last().copied(),
            start: Some(site.start),
        }
    }
}

/// A call or aggregation of the tree, in pre-order.
struct Node {
    addr: usize,
    name: String,
    aggregation: bool,
}

fn collect(expr: &Expr, out: &mut Vec<Node>) {
    match expr {
        Expr::Aggregate(a) => {
            out.push(Node {
                addr: a as *const AggregateExpr as usize,
                name: a.op.to_string(),
                aggregation: true,
            });
            if let Some(p) = &a.param {
                collect(p, out);
            }
            collect(&a.expr, out);
        }
        Expr::Call(c) => {
            out.push(Node {
                addr: c as *const Call as usize,
                name: c.func.name.to_string(),
                aggregation: false,
            });
            for a in &c.args.args {
                collect(a, out);
            }
        }
        Expr::Unary(u) => collect(&u.expr, out),
        Expr::Binary(b) => {
            collect(&b.lhs, out);
            collect(&b.rhs, out);
        }
        Expr::Paren(p) => collect(&p.expr, out),
        Expr::Subquery(s) => collect(&s.expr, out),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

/// Where sub-expressions start, by token index: the arguments of each call and aggregation,
/// and the right operand of each binary expression, keyed by node address.
struct Starts<'a> {
    args: &'a HashMap<usize, Vec<usize>>,
    rhs: &'a HashMap<usize, usize>,
}

/// Records in `out` the start (a token index) of every binary expression in `expr` whose
/// start is known: `start` is where `expr` starts, if known.
fn binary_starts(
    expr: &Expr,
    start: Option<usize>,
    args: &Starts<'_>,
    out: &mut HashMap<usize, usize>,
) {
    let arg = |addr: usize, i: usize| args.args.get(&addr).and_then(|a| a.get(i).copied());
    match expr {
        Expr::Binary(b) => {
            let addr = b as *const BinaryExpr as usize;
            if let Some(i) = start {
                out.insert(addr, i);
            }
            binary_starts(&b.lhs, start, args, out);
            binary_starts(&b.rhs, args.rhs.get(&addr).copied(), args, out);
        }
        // The operand starts after the `(` or the `-`.
        Expr::Paren(p) => binary_starts(&p.expr, start.map(|i| i + 1), args, out),
        Expr::Unary(u) => binary_starts(&u.expr, start.map(|i| i + 1), args, out),
        Expr::Subquery(s) => binary_starts(&s.expr, start, args, out),
        Expr::Call(c) => {
            let addr = c as *const Call as usize;
            for (i, a) in c.args.args.iter().enumerate() {
                binary_starts(a, arg(addr, i), args, out);
            }
        }
        Expr::Aggregate(a) => {
            let addr = a as *const AggregateExpr as usize;
            let mut i = 0;
            if let Some(p) = &a.param {
                binary_starts(p, arg(addr, 0), args, out);
                i = 1;
            }
            binary_starts(&a.expr, arg(addr, i), args, out);
        }
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

/// The binary expressions of `expr` in text order (the order of their operators).
fn binaries_in_order<'e>(expr: &'e Expr, out: &mut Vec<&'e BinaryExpr>) {
    match expr {
        Expr::Binary(b) => {
            binaries_in_order(&b.lhs, out);
            out.push(b);
            binaries_in_order(&b.rhs, out);
        }
        Expr::Paren(p) => binaries_in_order(&p.expr, out),
        Expr::Unary(u) => binaries_in_order(&u.expr, out),
        Expr::Subquery(s) => binaries_in_order(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| binaries_in_order(a, out)),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                binaries_in_order(p, out);
            }
            binaries_in_order(&a.expr, out);
        }
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Other,
    Open,
    Close,
    Comma,
    At,
}

#[derive(Clone, Debug)]
struct Token<'a> {
    offset: usize,
    text: &'a str,
    kind: Kind,
}

/// Splits the query into the tokens that matter here: identifiers, brackets, commas and `@`;
/// strings, numbers and operators are single opaque tokens, comments are skipped.
fn tokenize(q: &str) -> Vec<Token<'_>> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' && c != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                Kind::Other
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                Kind::Ident
            }
            c if c.is_ascii_digit() || c == b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                Kind::Other
            }
            b'(' | b'[' | b'{' => {
                i += 1;
                Kind::Open
            }
            b')' | b']' | b'}' => {
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b'@' => {
                i += 1;
                Kind::At
            }
            _ => {
                // Any other byte (operators, and the bytes of a non-ASCII character).
                i += 1;
                Kind::Other
            }
        };
        out.push(Token {
            offset: start,
            text: &q[start..i],
            kind,
        });
    }
    out
}

/// The token index of `node`'s name at or after `from`, and of the `(` opening its arguments.
fn find_site(tokens: &[Token<'_>], from: usize, node: &Node) -> Option<(usize, usize)> {
    (from..tokens.len()).find_map(|i| {
        let t = &tokens[i];
        let same_name = if node.aggregation {
            t.text.eq_ignore_ascii_case(&node.name)
        } else {
            t.text == node.name
        };
        if t.kind != Kind::Ident || !same_name || (i > 0 && tokens[i - 1].kind == Kind::At) {
            return None;
        }
        let next = tokens.get(i + 1)?;
        if next.text == "(" {
            return Some((i, i + 1));
        }
        // `sum by (l) (v)`: the grouping comes first, the arguments after it.
        let grouping = node.aggregation
            && next.kind == Kind::Ident
            && (next.text.eq_ignore_ascii_case("by") || next.text.eq_ignore_ascii_case("without"));
        if !grouping {
            return None;
        }
        let close = matching_close(tokens, i + 2)?;
        (tokens.get(close + 1)?.text == "(").then_some((i, close + 1))
    })
}

/// The index of the bracket closing the one opened at `open`.
fn matching_close(tokens: &[Token<'_>], open: usize) -> Option<usize> {
    if tokens.get(open)?.kind != Kind::Open {
        return None;
    }
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The token indexes where the arguments of the list opened at `open` start.
fn argument_starts(tokens: &[Token<'_>], open: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect_arg = true;
    for (i, t) in tokens.iter().enumerate().skip(open + 1) {
        match t.kind {
            Kind::Close if depth == 0 => break,
            Kind::Comma if depth == 0 => {
                expect_arg = true;
                continue;
            }
            Kind::Open => depth += 1,
            Kind::Close => depth -= 1,
            _ => {}
        }
        if expect_arg {
            out.push(i);
            expect_arg = false;
        }
    }
    out
}

/// The string literals of `q` whose bytes, decoded as Go decodes them (`\xNN` and octal
/// `\NNN` are bytes), are not UTF-8: promql-parser's reading of each (those escapes as
/// characters) mapped to Go's quoting of the bytes.
fn non_utf8_strings(q: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = q.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '#' {
            // A comment runs to the end of the line.
            for (_, c) in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        if c == '`' {
            for (_, c) in chars.by_ref() {
                if c == '`' {
                    break;
                }
            }
            continue;
        }
        if c != '"' && c != '\'' {
            continue;
        }
        let quote = c;
        let (mut bytes, mut parsed) = (Vec::new(), String::new());
        let mut has_byte_escape = false;
        while let Some((_, c)) = chars.next() {
            if c == quote {
                break;
            }
            if c != '\\' {
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                parsed.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            let simple = match e {
                'a' => Some('\x07'),
                'b' => Some('\x08'),
                'f' => Some('\x0c'),
                'n' => Some('\n'),
                'r' => Some('\r'),
                't' => Some('\t'),
                'v' => Some('\x0b'),
                '\\' | '\'' | '"' => Some(e),
                _ => None,
            };
            if let Some(c) = simple {
                bytes.push(c as u8);
                parsed.push(c);
                continue;
            }
            let (digits, radix) = match e {
                'x' => (2, 16),
                'u' => (4, 16),
                'U' => (8, 16),
                '0'..='7' => (2, 8),
                _ => return out,
            };
            let mut text = String::new();
            if radix == 8 {
                text.push(e);
            }
            for _ in 0..digits {
                match chars.next() {
                    Some((_, d)) => text.push(d),
                    None => return out,
                }
            }
            let Ok(n) = u32::from_str_radix(&text, radix) else {
                return out;
            };
            if matches!(e, 'u' | 'U') {
                let Some(c) = char::from_u32(n) else {
                    return out;
                };
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                parsed.push(c);
            } else {
                let Ok(byte) = u8::try_from(n) else {
                    return out;
                };
                has_byte_escape |= byte >= 0x80;
                bytes.push(byte);
                parsed.push(char::from(byte));
            }
        }
        if has_byte_escape && std::str::from_utf8(&bytes).is_err() {
            out.insert(parsed, go_quote_bytes(&bytes));
        }
    }
    out
}

/// Go's `%q` of a byte string: UTF-8 characters as they are (escaped where Go escapes
/// them), every byte that is not part of one as `\xNN`.
fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::from('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(query: &str) -> Vec<(String, String, Vec<String>)> {
        let expr = promql_parser::parser::parse(query).expect("parses");
        let positions = Positions::new(query, &expr);
        let mut nodes = Vec::new();
        collect(&expr, &mut nodes);
        nodes
            .iter()
            .map(|n| {
                let site = &positions.sites[&n.addr];
                (
                    n.name.clone(),
                    site.start.to_string(),
                    site.args.iter().map(ToString::to_string).collect(),
                )
            })
            .collect()
    }

    fn binary_starts_of(query: &str) -> Vec<String> {
        fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e BinaryExpr>) {
            match e {
                Expr::Binary(b) => {
                    out.push(b);
                    walk(&b.lhs, out);
                    walk(&b.rhs, out);
                }
                Expr::Paren(p) => walk(&p.expr, out),
                Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
                Expr::Aggregate(a) => walk(&a.expr, out),
                _ => {}
            }
        }
        let expr = promql_parser::parser::parse(query).expect("parses");
        let positions = Positions::new(query, &expr);
        let mut binaries = Vec::new();
        walk(&expr, &mut binaries);
        binaries
            .iter()
            .map(|b| positions.binary(b).map_or("?".into(), |p| p.to_string()))
            .collect()
    }

    #[test]
    fn tells_trims_from_comparisons() {
        let query = "sum(h </ 1) > 2 and on() (h >/ (3 < bool 4))";
        let expr = crate::parse::parse_promql(query).expect("parses");
        let positions = Positions::new(query, &expr);
        let mut exprs = Vec::new();
        fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e BinaryExpr>) {
            match e {
                Expr::Binary(b) => {
                    walk(&b.lhs, out);
                    out.push(b);
                    walk(&b.rhs, out);
                }
                Expr::Paren(p) => walk(&p.expr, out),
                Expr::Aggregate(a) => walk(&a.expr, out),
                _ => {}
            }
        }
        walk(&expr, &mut exprs);
        let got: Vec<(String, bool)> = exprs
            .iter()
            .map(|b| (b.op.to_string(), positions.is_trim(b).unwrap()))
            .collect();
        let want = [
            ("<", true),
            (">", false),
            ("and", false),
            (">", true),
            ("<", false),
        ];
        assert_eq!(got, want.map(|(o, t)| (o.to_string(), t)).to_vec());
    }

    #[test]
    fn finds_binary_expressions_by_their_left_operand() {
        assert_eq!(binary_starts_of("  a + b"), vec!["1:3"]);
        assert_eq!(binary_starts_of("(a + b) * 2"), vec!["1:1", "1:2"]);
        assert_eq!(
            binary_starts_of("sum(x - y) / abs(z * 3)"),
            vec!["1:1", "1:5", "1:18"]
        );
        // Right operands, after signs and modifiers.
        assert_eq!(binary_starts_of("a - (b * c)"), vec!["1:1", "1:6"]);
        assert_eq!(
            binary_starts_of("a > bool on(x) group_left -b + c"),
            vec!["1:1", "1:27"]
        );
        assert_eq!(binary_starts_of("a + b * c"), vec!["1:1", "1:5"]);
        assert_eq!(binary_starts_of("sum by (l) (a + b)"), vec!["1:13"]);
    }

    #[test]
    fn finds_calls_and_their_arguments() {
        assert_eq!(
            calls("histogram_quantile(0.8, series)"),
            vec![(
                "histogram_quantile".into(),
                "1:1".into(),
                vec!["1:20".into(), "1:25".into()]
            )]
        );
        assert_eq!(
            calls("sum(sort(series))"),
            vec![
                ("sum".into(), "1:1".into(), vec!["1:5".into()]),
                ("sort".into(), "1:5".into(), vec!["1:10".into()]),
            ]
        );
    }

    #[test]
    fn skips_groupings_strings_and_at_modifiers() {
        let got = calls("quantile without(point)(NaN, data) + rate(x{a=\"rate(\"}[5m] @ end())");
        assert_eq!(got[0].0, "quantile");
        assert_eq!(got[0].2, vec!["1:25".to_string(), "1:30".to_string()]);
        assert_eq!(got[1], ("rate".into(), "1:38".into(), vec!["1:43".into()]));
        let got = calls("sum(\n  rate(x[5m])\n) by (job)");
        assert_eq!(got[1], ("rate".into(), "2:3".into(), vec!["2:8".into()]));
    }

    #[test]
    fn nested_calls_of_the_same_name_keep_their_order() {
        let got = calls("abs(abs(x)) - abs(y)");
        let starts: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
        assert_eq!(starts, vec!["1:1", "1:5", "1:15"]);
    }

    #[test]
    fn non_utf8_literals_are_known_with_go_quoting() {
        let q = r#"count_values("a\xc5z", x) + on() count_values('ok\u00c5', y) # "\xff""#;
        let m = non_utf8_strings(q);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m.get("a\u{c5}z").map(String::as_str), Some(r#""a\xc5z""#));
        // A valid UTF-8 sequence written as byte escapes is a valid string.
        assert!(non_utf8_strings(r#"x{a="\xc3\x85"}"#).is_empty());
        assert!(non_utf8_strings(r#"x{a="\305"}"#).contains_key("\u{c5}"));
    }
}
