//! The order of an instant query's result. Prometheus returns `sort`, `sort_desc`, `topk`
//! and `bottomk` results in value order, `sort_by_label` and `sort_by_label_desc` results in
//! natural order of the given labels; everything else comes sorted by labels here.

use std::cmp::Ordering;

use promql_parser::parser::Expr;

use crate::InstantSample;

/// How to order the samples of an instant vector result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultOrder {
    /// `sort`: ascending, NaN last.
    Ascending,
    /// `sort_desc`: descending, NaN last.
    Descending,
    /// `topk`: descending, NaN last.
    TopK,
    /// `bottomk`: ascending, NaN last.
    BottomK,
    /// `sort_by_label(v, labels...)` (`desc`: `sort_by_label_desc`): natural order of the
    /// labels' values in turn, then the whole label set.
    ByLabel { labels: Vec<String>, desc: bool },
}

/// The order that the outermost expression of a query imposes, if any.
pub(crate) fn result_order(expr: &Expr) -> Option<ResultOrder> {
    match expr {
        Expr::Paren(p) => result_order(&p.expr),
        Expr::Call(c) if c.func.name == "sort" => Some(ResultOrder::Ascending),
        Expr::Call(c) if c.func.name == "sort_desc" => Some(ResultOrder::Descending),
        Expr::Aggregate(a) if a.op.to_string() == "topk" => Some(ResultOrder::TopK),
        Expr::Aggregate(a) if a.op.to_string() == "bottomk" => Some(ResultOrder::BottomK),
        Expr::Call(c) if matches!(c.func.name, "sort_by_label" | "sort_by_label_desc") => {
            let labels = c.args.args[1..]
                .iter()
                .map(|a| string_literal(a))
                .collect::<Option<Vec<String>>>()?;
            Some(ResultOrder::ByLabel {
                labels,
                desc: c.func.name == "sort_by_label_desc",
            })
        }
        _ => None,
    }
}

fn string_literal(e: &Expr) -> Option<String> {
    match e {
        Expr::StringLiteral(s) => Some(s.val.clone()),
        Expr::Paren(p) => string_literal(&p.expr),
        _ => None,
    }
}

/// Whether `a` comes before `b` in natural order (runs of digits compare as numbers,
/// leading zeros ignored), as the natsort package Prometheus uses.
fn natural_less(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    loop {
        if i >= a.len() {
            return j < b.len();
        }
        if j >= b.len() {
            return false;
        }
        let (mut ca, mut cb) = (a[i], b[j]);
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            // The numbers' lengths after leading zeros, then their digits.
            let (mut la, mut lb) = (1, 1);
            while i + la < a.len() {
                let x = a[i + la];
                if ca == b'0' {
                    i += 1;
                    ca = x;
                    continue;
                }
                if x.is_ascii_digit() {
                    la += 1;
                } else {
                    break;
                }
            }
            while j + lb < b.len() {
                let x = b[j + lb];
                if cb == b'0' {
                    j += 1;
                    cb = x;
                    continue;
                }
                if x.is_ascii_digit() {
                    lb += 1;
                } else {
                    break;
                }
            }
            if la != lb {
                return la < lb;
            }
            match a[i..i + la].cmp(&b[j..j + lb]) {
                Ordering::Less => return true,
                Ordering::Greater => return false,
                Ordering::Equal => {}
            }
            i += la;
            j += lb;
            continue;
        }
        if ca == cb {
            i += 1;
            j += 1;
            continue;
        }
        return ca < cb;
    }
}

impl ResultOrder {
    /// Stable-sorts `samples` (already in label order, which breaks ties).
    pub fn apply(&self, samples: &mut [InstantSample]) {
        if let ResultOrder::ByLabel { labels, desc } = self {
            samples.sort_by(|a, b| {
                let mut ord = Ordering::Equal;
                for l in labels {
                    let (x, y) = (a.labels.get(l), b.labels.get(l));
                    if x != y {
                        ord = if natural_less(x, y) {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        };
                        break;
                    }
                }
                let ord = ord.then_with(|| a.labels.cmp(&b.labels));
                if *desc { ord.reverse() } else { ord }
            });
            return;
        }
        // NaN sorts to the bottom in every order, as Prometheus does.
        samples.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => match self {
                ResultOrder::Ascending | ResultOrder::BottomK => a.v.total_cmp(&b.v),
                ResultOrder::Descending | ResultOrder::TopK => b.v.total_cmp(&a.v),
                ResultOrder::ByLabel { .. } => Ordering::Equal,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::natural_less;

    #[test]
    fn natural_order() {
        let mut v = vec![
            "z10.doc", "z2.doc", "z1.doc", "z100.doc", "1.111.3", "1.11.3", "4m1000", "4m5", "a",
            "", "007x", "7y",
        ];
        v.sort_by(|a, b| {
            if natural_less(a, b) {
                std::cmp::Ordering::Less
            } else if natural_less(b, a) {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        });
        assert_eq!(
            v,
            vec![
                "", "1.11.3", "1.111.3", "4m5", "4m1000", "007x", "7y", "a", "z1.doc", "z2.doc",
                "z10.doc", "z100.doc"
            ]
        );
    }
}
