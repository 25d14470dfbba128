//! Query errors, each mapping to one Prometheus `errorType`.

use hypnos_schemas::{ErrorCode, ServiceError};
use thiserror::Error;

/// Why a query failed. Each variant is one [`ErrorCode`] ([`ServiceError`]).
#[derive(Debug, Error)]
pub enum QueryError {
    /// The query does not parse, or a parameter is invalid: 400 `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// Valid PromQL that Hypnos cannot evaluate yet: 422 `execution`, naming the construct.
    #[error("unsupported PromQL construct: {0}")]
    Unsupported(String),
    /// Evaluation failed (e.g. many-to-many matching): 422 `execution`.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout: 503 `timeout`.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// A storage or engine failure: 500 `internal`.
    #[error("{0}")]
    Internal(String),
}

/// The one mapping of a query error to a status: [`ErrorCode`] turns it into the HTTP
/// status, gRPC code and Prometheus `errorType` (400 `bad_data`, 422 `execution`, 503
/// `timeout`, 500 `internal`).
impl ServiceError for QueryError {
    fn error_code(&self) -> ErrorCode {
        match self {
            QueryError::BadData(_) => ErrorCode::BadRequest,
            QueryError::Unsupported(_) | QueryError::Execution(_) => ErrorCode::Execution,
            QueryError::Timeout(_) => ErrorCode::Timeout,
            QueryError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Longest query for which a lexer error's position is searched (the search lexes
/// successively shorter prefixes).
const POSITION_SEARCH_LIMIT: usize = 16 * 1024;

impl QueryError {
    /// A query that does not parse: 400 `bad_data`, worded as Prometheus does
    /// (`invalid parameter "query": 1:5: parse error: ...`). promql-parser reports no
    /// positions; for an error of its lexer the position is found by lexing shorter
    /// prefixes: the offending character is the first one without which the lexer no longer
    /// reports the same error. A grammar error carries no position.
    pub fn parse(query: &str, message: &str) -> QueryError {
        let position = lexer_error_offset(query, message)
            .map(|offset| {
                let (line, col) = line_and_column(query, offset);
                format!("{line}:{col}: ")
            })
            .unwrap_or_default();
        QueryError::BadData(format!(
            "invalid parameter \"query\": {position}parse error: {message}"
        ))
    }
}

/// The byte offset of the character at which promql-parser's lexer fails with `message`.
fn lexer_error_offset(query: &str, message: &str) -> Option<usize> {
    let same =
        |end: usize| matches!(promql_parser::parser::lexer(&query[..end]), Err(e) if e == message);
    if query.len() > POSITION_SEARCH_LIMIT || !same(query.len()) {
        return None;
    }
    let mut end = query.len();
    while let Some((i, _)) = query[..end].char_indices().next_back() {
        if !same(i) {
            return Some(i);
        }
        end = i;
    }
    Some(0)
}

/// Prometheus' `line:column` of a byte offset: lines from 1, columns in bytes from 1.
fn line_and_column(query: &str, offset: usize) -> (usize, usize) {
    let before = &query[..offset];
    let line = before.matches('\n').count() + 1;
    let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(query: &str) -> String {
        let e = promql_parser::parser::parse(query).unwrap_err();
        QueryError::parse(query, &e).to_string()
    }

    #[test]
    fn lexer_errors_carry_their_position() {
        assert_eq!(
            message("foo{a~\"b\"}"),
            "invalid parameter \"query\": 1:6: parse error: unexpected character inside braces: '~'"
        );
        assert_eq!(
            message("sum(rate(x[5m])) +\n  foo[5x]"),
            "invalid parameter \"query\": 2:8: parse error: bad number or duration syntax: 5x"
        );
    }

    #[test]
    fn grammar_errors_have_no_position() {
        let m = message("foo bar");
        assert!(
            m.starts_with("invalid parameter \"query\": parse error: "),
            "{m}"
        );
        // An error the lexer finds at the end points at what is left open.
        assert_eq!(
            message("sum(x"),
            "invalid parameter \"query\": 1:4: parse error: unclosed left parenthesis"
        );
    }

    #[test]
    fn each_error_keeps_its_status_and_error_type() {
        let cases = [
            (QueryError::BadData("x".into()), 400, "bad_data"),
            (QueryError::Unsupported("x".into()), 422, "execution"),
            (QueryError::Execution("x".into()), 422, "execution"),
            (QueryError::Timeout("query execution"), 503, "timeout"),
            (QueryError::Internal("x".into()), 500, "internal"),
        ];
        for (e, status, ty) in cases {
            let code = e.error_code();
            assert_eq!(
                (code.http_status(), code.prometheus_error_type()),
                (status, ty),
                "{e}"
            );
        }
    }

    #[test]
    fn columns_count_from_one() {
        assert_eq!(line_and_column("abc", 0), (1, 1));
        assert_eq!(line_and_column("a\nbc", 3), (2, 2));
    }
}
