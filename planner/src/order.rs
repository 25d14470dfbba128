//! The order of an instant query's result. Prometheus returns `sort`, `sort_desc`, `topk`
//! and `bottomk` results in value order; everything else comes sorted by labels here.

use std::cmp::Ordering;

use promql_parser::parser::Expr;

use crate::InstantSample;

/// How to order the samples of an instant vector result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultOrder {
    /// `sort`: ascending, NaN first.
    Ascending,
    /// `sort_desc`: descending, NaN first.
    Descending,
    /// `topk`: descending, NaN last.
    TopK,
    /// `bottomk`: ascending, NaN last.
    BottomK,
}

/// The order that the outermost expression of a query imposes, if any.
pub(crate) fn result_order(expr: &Expr) -> Option<ResultOrder> {
    match expr {
        Expr::Paren(p) => result_order(&p.expr),
        Expr::Call(c) if c.func.name == "sort" => Some(ResultOrder::Ascending),
        Expr::Call(c) if c.func.name == "sort_desc" => Some(ResultOrder::Descending),
        Expr::Aggregate(a) if a.op.to_string() == "topk" => Some(ResultOrder::TopK),
        Expr::Aggregate(a) if a.op.to_string() == "bottomk" => Some(ResultOrder::BottomK),
        _ => None,
    }
}

impl ResultOrder {
    /// Stable-sorts `samples` (already in label order, which breaks ties).
    pub(crate) fn apply(self, samples: &mut [InstantSample]) {
        let nan_first = matches!(self, ResultOrder::Ascending | ResultOrder::Descending);
        samples.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) if nan_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if nan_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => match self {
                ResultOrder::Ascending | ResultOrder::BottomK => a.v.total_cmp(&b.v),
                ResultOrder::Descending | ResultOrder::TopK => b.v.total_cmp(&a.v),
            },
        });
    }
}
