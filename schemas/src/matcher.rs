//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus' semantics: regexes are fully
//! anchored and an absent label matches as the empty string.

use regex::Regex;

use crate::{Labels, SchemaError};

/// The matching operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Re,
    NotRe,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regexes are compiled anchored at both ends.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, SchemaError> {
        let value = value.into();
        let re = match op {
            MatchOp::Re | MatchOp::NotRe => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|source| {
                    SchemaError::InvalidRegex {
                        pattern: value.clone(),
                        source,
                    }
                })?)
            }
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// Whether `value` (the label's value, "" when absent) satisfies the matcher.
    pub fn matches_value(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRe => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether the series `labels` satisfies the matcher.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name))
    }

    /// True when the matcher also matches the empty string (so it cannot select series alone).
    pub fn matches_empty(&self) -> bool {
        self.matches_value("")
    }
}

/// Whether `labels` satisfies every matcher.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_and_absent() {
        let l = Labels::from_pairs([("job", "api-server")]);
        assert!(
            Matcher::new(MatchOp::Re, "job", "api.*")
                .unwrap()
                .matches(&l)
        );
        assert!(!Matcher::new(MatchOp::Re, "job", "api").unwrap().matches(&l));
        assert!(
            !Matcher::new(MatchOp::Re, "job", "server")
                .unwrap()
                .matches(&l)
        );
        assert!(
            Matcher::new(MatchOp::NotRe, "job", "api")
                .unwrap()
                .matches(&l)
        );
        assert!(
            Matcher::new(MatchOp::Equal, "zone", "")
                .unwrap()
                .matches(&l)
        );
        assert!(
            Matcher::new(MatchOp::NotEqual, "zone", "a")
                .unwrap()
                .matches(&l)
        );
        assert!(Matcher::new(MatchOp::Re, "job", "(").is_err());
        assert!(
            Matcher::new(MatchOp::Re, "job", "a|api-server")
                .unwrap()
                .matches(&l)
        );
    }
}
