//! The nesting limit of queries: how deeply expressions may nest (function calls,
//! aggregations, parentheses, unary and binary operators, subqueries), so that no query can
//! exhaust the stack of the recursive passes over its AST (the parser's own, lowering,
//! planning, execution).
//!
//! Two checks, both iterative: [`check_text`], before parsing, bounds an over-estimate of
//! the depth from the tokens (promql-parser itself overflows the stack on deep enough
//! input, e.g. 100,000 unary minus signs); [`check_expr`], right after parsing, measures
//! the depth of the AST exactly against [`MAX_NESTING_DEPTH`].

use lrpar::{Lexeme as _, Lexer as _};
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LEFT_BRACE, T_LEFT_BRACKET,
    T_LEFT_PAREN, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ, T_POW, T_RIGHT_BRACE,
    T_RIGHT_BRACKET, T_RIGHT_PAREN, T_SUB,
};
use promql_parser::parser::{Expr, lexer};

/// The deepest a query's AST may be, counting every expression node on the longest path
/// from the root to a leaf (`abs(up)` is 2 deep, `1 + 2 * 3` is 3 deep, `-(x)` 3).
///
/// Prometheus has no such limit. The deepest query of Prometheus' own test suite
/// (`promqltest/testdata`) is far below it (see the test `promqltest_depths` and
/// `tests/promqltest.rs`); the query threads of the server have a stack sized for it
/// with a wide margin (`QUERY_THREAD_STACK` in the binary).
pub const MAX_NESTING_DEPTH: usize = 256;

/// The bound of [`check_text`]: its estimate can exceed the true depth (every operator token
/// of a parenthesized group counts as one level), so it only refuses queries well past the
/// limit; the exact check after parsing decides the rest. promql-parser parses queries of
/// this depth within a 2 MiB stack.
const MAX_TEXT_DEPTH: usize = 4 * MAX_NESTING_DEPTH;

/// The error of a query nested past the limit.
pub(crate) fn too_deep() -> String {
    format!(
        "the query is nested too deeply: expressions may nest at most {MAX_NESTING_DEPTH} \
         levels (the nesting limit)"
    )
}

/// Refuses, without parsing, a query whose estimated nesting exceeds a multiple of the
/// limit. The estimate of a group (the text between two matching brackets, or the whole
/// query) is 1 + the number of operator tokens directly in it + the largest estimate of the
/// groups it holds, an upper bound of the depth of the expression it holds. A lexer error
/// is left to the parser to report.
pub(crate) fn check_text(query: &str) -> Result<(), String> {
    let Ok(lex) = lexer(query) else {
        return Ok(());
    };
    // Per open group: (operators in it, the deepest of its closed groups).
    let mut groups: Vec<(usize, usize)> = vec![(0, 0)];
    // The sum of `1 + operators` over the open groups: a run of `(` alone is as deep as it
    // is long.
    let mut open = 1;
    for lexeme in lex.iter().flatten() {
        match lexeme.tok_id() {
            T_LEFT_PAREN | T_LEFT_BRACE | T_LEFT_BRACKET => {
                groups.push((0, 0));
                open += 1;
            }
            T_RIGHT_PAREN | T_RIGHT_BRACE | T_RIGHT_BRACKET if groups.len() > 1 => {
                let (ops, deepest) = groups.pop().expect("more than one group");
                open -= 1 + ops;
                let depth = 1 + ops + deepest;
                let parent = groups.last_mut().expect("the whole query");
                parent.1 = parent.1.max(depth);
            }
            T_ADD | T_SUB | T_MUL | T_DIV | T_MOD | T_POW | T_ATAN2 | T_EQLC | T_NEQ | T_GTR
            | T_LSS | T_GTE | T_LTE | T_LAND | T_LOR | T_LUNLESS => {
                groups.last_mut().expect("the whole query").0 += 1;
                open += 1;
            }
            _ => {}
        }
        if open > MAX_TEXT_DEPTH {
            return Err(too_deep());
        }
    }
    // Unclosed groups are a parse error; their depth still counts.
    let mut depth = 0;
    for (ops, deepest) in groups.into_iter().rev() {
        depth = 1 + ops + deepest.max(depth);
    }
    if depth > MAX_TEXT_DEPTH {
        return Err(too_deep());
    }
    Ok(())
}

/// The depth of `expr` (see [`MAX_NESTING_DEPTH`]), measured without recursion.
pub fn depth(expr: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Expr, usize)> = vec![(expr, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        let d = d + 1;
        match e {
            Expr::Aggregate(a) => {
                stack.push((&a.expr, d));
                if let Some(p) = &a.param {
                    stack.push((p, d));
                }
            }
            Expr::Unary(u) => stack.push((&u.expr, d)),
            Expr::Binary(b) => {
                stack.push((&b.lhs, d));
                stack.push((&b.rhs, d));
            }
            Expr::Paren(p) => stack.push((&p.expr, d)),
            Expr::Subquery(s) => stack.push((&s.expr, d)),
            Expr::Call(c) => stack.extend(c.args.args.iter().map(|a| (a.as_ref(), d))),
            Expr::Extension(x) => stack.extend(x.expr.children().iter().map(|c| (c, d))),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_) => {}
        }
    }
    deepest
}

/// Refuses an expression deeper than [`MAX_NESTING_DEPTH`].
pub(crate) fn check_expr(expr: &Expr) -> Result<(), String> {
    if depth(expr) > MAX_NESTING_DEPTH {
        return Err(too_deep());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_promql;

    fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn depth_counts_every_node_on_the_longest_path() {
        let d = |q: &str| depth(&promql_parser::parser::parse(q).expect("parses"));
        assert_eq!(d("up"), 1);
        assert_eq!(d("abs(up)"), 2);
        assert_eq!(d("1 + 2 * 3"), 3);
        assert_eq!(d("-(up)"), 3);
        assert_eq!(d("sum by (a) (rate(x[5m]))"), 3);
        assert_eq!(d("max_over_time(rate(x[5m])[1h:1m])"), 4);
    }

    #[test]
    fn queries_at_the_limit_parse_and_one_level_more_do_not() {
        let at = nested("abs(", "up", ")", MAX_NESTING_DEPTH - 1);
        assert_eq!(
            depth(&parse_promql(&at).expect("at the limit")),
            MAX_NESTING_DEPTH
        );
        let above = nested("abs(", "up", ")", MAX_NESTING_DEPTH);
        let e = parse_promql(&above).unwrap_err();
        assert!(e.contains("nesting limit"), "{e}");
        // A binary chain: n terms are n - 1 operators, n levels.
        let chain = |n: usize| format!("up{}", " + up".repeat(n - 1));
        assert!(parse_promql(&chain(MAX_NESTING_DEPTH)).is_ok());
        let e = parse_promql(&chain(MAX_NESTING_DEPTH + 1)).unwrap_err();
        assert!(e.contains("nesting limit"), "{e}");
    }

    /// Each of these crashed the parser or the planner with a stack overflow; the text check
    /// refuses them before parsing, on a small stack.
    #[test]
    fn hostile_nesting_is_refused_before_parsing() {
        let cases = [
            format!("{}up", "-".repeat(200_000)),
            format!("{}1", "-".repeat(200_000)),
            nested("(", "up", ")", 200_000),
            nested("abs(", "up", ")", 50_000),
            nested("sum(", "up", ")", 50_000),
            format!("1{}", "+1".repeat(200_000)),
            format!("{}up{}", "(".repeat(50_000), "[5m:])".repeat(50_000)),
        ];
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for q in cases {
                    let e = check_text(&q).expect_err(&q[..20]);
                    assert!(e.contains("nesting limit"), "{e}");
                    let e = parse_promql(&q).unwrap_err();
                    assert!(e.contains("nesting limit"), "{e}");
                }
                // Unbalanced: the lexer refuses it before any parsing.
                assert!(parse_promql(&"(".repeat(200_000)).is_err());
            })
            .expect("spawns")
            .join()
            .expect("no stack overflow");
    }

    /// The estimate of the text check never refuses what the exact check accepts at the
    /// limit, for the shapes of real queries.
    #[test]
    fn text_check_leaves_the_exact_check_to_decide_near_the_limit() {
        let mixed = format!("x{}", " * 2 + y".repeat(MAX_NESTING_DEPTH));
        assert!(check_text(&mixed).is_ok());
        let e = parse_promql(&mixed).unwrap_err();
        assert!(e.contains("nesting limit"), "{e}");
    }
}
