//! Parsing PromQL text: promql-parser, behind a check for the one input it panics on.

use lrpar::{Lexeme as _, Lexer as _, NonStreamingLexer as _};
use promql_parser::parser::token::{
    T_ADD, T_AT, T_ATAN2, T_BOOL, T_COLON, T_COMMA, T_DIV, T_EOF, T_EQLC, T_FILL, T_FILL_LEFT,
    T_FILL_RIGHT, T_GROUP_LEFT, T_GROUP_RIGHT, T_GTE, T_GTR, T_IGNORING, T_LAND, T_LEFT_BRACE,
    T_LEFT_BRACKET, T_LEFT_PAREN, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ, T_NUMBER,
    T_OFFSET, T_ON, T_POW, T_RIGHT_BRACE, T_RIGHT_PAREN, T_SUB,
};
use promql_parser::parser::{Expr, lexer};

/// Parses `query` like [`promql_parser::parser::parse`], with its error messages, except
/// that a plain number used as a duration (`x[2m:1e308]`, `x offset NaN`) that no
/// [`std::time::Duration`] can hold is an error here; promql-parser 0.11 panics on it (it
/// converts the number with `Duration::from_secs_f64`). Found by the `promql_parse_plan`
/// fuzz target.
///
/// promql-parser does not know the histogram trim operators `</` and `>/`: they are parsed
/// as the comparisons `<` and `>` (same precedence), which the planner then tells apart
/// with [`lt_gt_operators`].
///
/// Queries nested past [`crate::MAX_NESTING_DEPTH`] are refused (see `nesting.rs`): the
/// deepest before parsing, the others right after.
pub fn parse_promql(query: &str) -> Result<Expr, String> {
    crate::nesting::check_text(query)?;
    let expr = parse_checked(query)?;
    crate::nesting::check_expr(&expr)?;
    Ok(expr)
}

fn parse_checked(query: &str) -> Result<Expr, String> {
    check_number_durations(query)?;
    let ops = lt_gt_operators(query);
    if !ops.iter().any(|(_, trim)| *trim) {
        return promql_parser::parser::parse(query);
    }
    let mut text = query.as_bytes().to_vec();
    for (at, trim) in ops {
        if trim {
            text[at + 1] = b' ';
        }
    }
    let text = String::from_utf8(text).map_err(|e| e.to_string())?;
    promql_parser::parser::parse(&text)
}

/// Every `<` and `>` operator of `query`, in text order: its byte offset, and whether it is
/// a trim operator (`</`, `>/`: the token is right before a `/` token, which no other
/// PromQL has).
pub(crate) fn lt_gt_operators(query: &str) -> Vec<(usize, bool)> {
    let Ok(lex) = lexer(query) else {
        return Vec::new();
    };
    let mut out: Vec<(usize, bool)> = Vec::new();
    let mut prev: Option<(u16, usize)> = None;
    for lexeme in lex.iter().flatten() {
        let (tok, span) = (lexeme.tok_id(), lexeme.span());
        if let Some((p, end)) = prev
            && matches!(p, T_LSS | T_GTR)
            && tok == T_DIV
            && span.start() == end
            && let Some(last) = out.last_mut()
        {
            last.1 = true;
        }
        if matches!(tok, T_LSS | T_GTR) {
            out.push((span.start(), false));
        }
        prev = Some((tok, span.end()));
    }
    out
}

/// For every binary operator of `query`, in text order, the byte offset where its right
/// operand starts (after `bool`, `on(...)`, `group_left(...)`, `fill(...)` and the like),
/// `None` when nothing follows. A `+` or `-` where an operand is expected is a sign, not an
/// operator; label matchers are skipped.
pub(crate) fn binary_operator_operands(query: &str) -> Vec<Option<usize>> {
    let Ok(lex) = lexer(query) else {
        return Vec::new();
    };
    let toks: Vec<(u16, usize)> = lex
        .iter()
        .flatten()
        .map(|l| (l.tok_id(), l.span().start()))
        .filter(|(t, _)| *t != T_EOF)
        .collect();
    let is_binary = |t: u16| {
        matches!(
            t,
            T_ADD
                | T_SUB
                | T_MUL
                | T_DIV
                | T_MOD
                | T_POW
                | T_ATAN2
                | T_EQLC
                | T_NEQ
                | T_GTR
                | T_LSS
                | T_GTE
                | T_LTE
                | T_LAND
                | T_LOR
                | T_LUNLESS
        )
    };
    // The index after the parenthesized group opened at `i`, or `i` without one.
    let skip_group = |i: usize| {
        if toks.get(i).map(|t| t.0) != Some(T_LEFT_PAREN) {
            return i;
        }
        let mut depth = 0;
        for (j, (t, _)) in toks.iter().enumerate().skip(i) {
            match *t {
                T_LEFT_PAREN => depth += 1,
                T_RIGHT_PAREN => {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                _ => {}
            }
        }
        toks.len()
    };
    let mut out = Vec::new();
    let (mut braces, mut expect_operand, mut i) = (0usize, true, 0);
    while i < toks.len() {
        let t = toks[i].0;
        i += 1;
        match t {
            T_LEFT_BRACE => braces += 1,
            T_RIGHT_BRACE => {
                braces = braces.saturating_sub(1);
                expect_operand = false;
            }
            _ if braces > 0 => {}
            T_ADD | T_SUB if expect_operand => {}
            t if is_binary(t) => {
                loop {
                    match toks.get(i).map(|t| t.0) {
                        Some(T_BOOL) => i += 1,
                        Some(
                            T_ON | T_IGNORING | T_GROUP_LEFT | T_GROUP_RIGHT | T_FILL | T_FILL_LEFT
                            | T_FILL_RIGHT,
                        ) => i = skip_group(i + 1),
                        _ => break,
                    }
                }
                out.push(toks.get(i).map(|t| t.1));
                expect_operand = true;
            }
            T_LEFT_PAREN | T_COMMA | T_OFFSET | T_AT | T_LEFT_BRACKET | T_COLON => {
                expect_operand = true;
            }
            _ => expect_operand = false,
        }
    }
    out
}

fn check_number_durations(query: &str) -> Result<(), String> {
    // A lexer error is reported by the parser itself.
    let Ok(lex) = lexer(query) else {
        return Ok(());
    };
    let mut prev: [Option<u16>; 2] = [None, None];
    for lexeme in lex.iter().flatten() {
        let tok = lexeme.tok_id();
        let after_duration_start = matches!(prev[1], Some(T_LEFT_BRACKET | T_COLON | T_OFFSET))
            || (matches!(prev[1], Some(T_ADD | T_SUB)) && prev[0] == Some(T_OFFSET));
        if tok == T_NUMBER && after_duration_start {
            let text = lex.span_str(lexeme.span());
            if let Ok(secs) = promql_parser::util::parse_str_radix(text)
                && !(secs >= 0.0 && secs < u64::MAX as f64)
            {
                return Err(format!(
                    "duration {text} is out of range: a number of seconds used as a duration \
                     must be finite and non-negative and below 2^64"
                ));
            }
        }
        prev = [prev[1], Some(tok)];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_operators_parse_as_comparisons() {
        let q = "h </ 2 > bool 1 or h >/on(a) x / 2 < y";
        assert_eq!(
            lt_gt_operators(q),
            vec![(2, true), (7, false), (21, true), (35, false)]
        );
        assert!(parse_promql(q).is_ok());
        // Not trims: a comparison, then a division, is no PromQL anyway.
        assert_eq!(lt_gt_operators("a < /b"), vec![(2, false)]);
        assert!(lt_gt_operators(r#"x{a="</"}"#).is_empty());
    }

    #[test]
    fn finds_right_operands_and_tells_signs_from_operators() {
        let q = r#"-a - -1 * on(x) group_left(y) b{c!="-"} > bool sum(d) by (e) - (f offset -5m)"#;
        let starts: Vec<Option<&str>> = binary_operator_operands(q)
            .into_iter()
            .map(|o| o.map(|o| &q[o..o + 1]))
            .collect();
        assert_eq!(starts, vec![Some("-"), Some("b"), Some("s"), Some("(")]);
        assert_eq!(binary_operator_operands("a +"), vec![None]);
    }

    /// Found by the `promql_parse_plan` fuzz target: these made promql-parser panic.
    #[test]
    fn numbers_no_duration_can_hold_are_errors() {
        for q in [
            "max_over_time(tmin_over_time[2m:1e308])",
            "x[1e20]",
            "x offset Inf",
            "x offset NaN",
            "x offset -Inf",
            "x offset +1e300",
            "sum(rate(x[5m:18446744073709551616]))",
        ] {
            let e = parse_promql(q).unwrap_err();
            assert!(e.contains("out of range"), "{q}: {e}");
        }
    }

    #[test]
    fn numbers_as_durations_and_elsewhere_still_parse() {
        for q in [
            "x[300]",
            "x[5m:30]",
            "x offset 60",
            "x offset -1.5",
            "x{a=\"[1e308]\"} offset 1m",
            "1e308 + x",
            "x @ 1e3",
            "topk(1e308, x)",
        ] {
            assert!(parse_promql(q).is_ok(), "{q}");
        }
        // Other errors keep promql-parser's wording.
        assert_eq!(
            parse_promql("x[").unwrap_err(),
            promql_parser::parser::parse("x[").unwrap_err()
        );
    }
}
