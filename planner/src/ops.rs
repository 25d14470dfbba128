//! The operator vocabulary of PromQL plans: what each step of a plan computes (aggregation,
//! binary, range, instant and histogram functions, label rules), with the parameters the
//! lowering fixes, and the label conventions the operators share (the dropped metric name).
//! The planner builds these; `hypnos-engine` evaluates them. Nothing here reads data.

use hypnos_schemas::Labels;
use hypnos_schemas::labels::METRIC_NAME;
use hypnos_schemas::tenant::TENANT_LABEL;
use regex::Regex;

use crate::annotations::QueryPos;

mod histogram_func;
mod instant_func;
mod range_func;

pub use histogram_func::HistogramFunc;
pub use instant_func::{HistogramStat, InstantFunc};
pub use range_func::RangeFunc;

/// The evaluation timestamps of a query: `start`, `start + step`, ... up to `end` inclusive.
/// An instant query has `start == end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub fn instant(t: i64) -> Self {
        Self {
            start: t,
            end: t,
            step: 1,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + use<> {
        let (end, step) = (self.end, self.step.max(1));
        std::iter::successors(Some(self.start), move |t| t.checked_add(step))
            .take_while(move |t| *t <= end)
    }
}

/// Values known per step without reading data: `time()` and constants for `vector(c)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum StepValue {
    /// The step's time in seconds.
    Time,
    /// A constant, as bits.
    Constant(u64),
}

/// A PromQL evaluation error with Prometheus' wording (many-to-many matching, duplicate
/// series, ...). It crosses DataFusion as [`DataFusionError::External`]; the query layer
/// downcasts it back and answers 422 `execution`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// Aggregation operators. Parameters are kept as bits / integers so the type stays
/// `Eq + Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    /// `quantile(q, v)`: q as bits.
    Quantile(u64),
    /// `topk(k, v)`.
    Topk(i64),
    /// `bottomk(k, v)`.
    Bottomk(i64),
    /// `limitk(k, v)`.
    Limitk(i64),
    /// `limit_ratio(r, v)`: r as bits.
    LimitRatio(u64),
}

impl AggOp {
    pub fn name(&self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Avg => "avg",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Count => "count",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Quantile(_) => "quantile",
            AggOp::Topk(_) => "topk",
            AggOp::Bottomk(_) => "bottomk",
            AggOp::Limitk(_) => "limitk",
            AggOp::LimitRatio(_) => "limit_ratio",
        }
    }
}

/// `by (...)` or `without (...)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

impl Grouping {
    /// The group a series belongs to. A name marked dropped still counts for `by
    /// (__name__)`, as in Prometheus, where the name is removed only at the end.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match self {
            Grouping::By(names) => labels.keep(names),
            Grouping::Without(names) => {
                let mut l = labels.drop_names(names);
                l.set(NAME_DROPPED_LABEL, "");
                l
            }
        }
    }

    /// A group's output labels: its key, marked when any member's name was marked dropped.
    pub fn output_labels(&self, key: &Labels, dropped: bool) -> Labels {
        if dropped {
            mark_name_dropped(key)
        } else {
            key.clone()
        }
    }
}

/// Marks a series whose operation dropped its metric name. Prometheus 3 removes such a
/// name (with `__type__` and `__unit__`) only at the end of the evaluation, or for good in
/// an arithmetic between two vectors, so `label_replace`, `label_join`, `by (__name__)`
/// and set operators still see it. The query result never shows this label (see
/// [`remove_dropped_name`]).
pub const NAME_DROPPED_LABEL: &str = "__hypnos_name_dropped__";

const METADATA_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// The labels of a result whose operation drops the metric name: marked, when they have
/// a name (or type or unit) to drop.
pub fn mark_name_dropped(l: &Labels) -> Labels {
    let mut out = l.clone();
    if METADATA_LABELS.iter().any(|n| !l.get(n).is_empty()) {
        out.set(NAME_DROPPED_LABEL, "true");
    }
    out
}

/// The labels as the query answers them: a marked series loses its name, type and unit.
pub fn remove_dropped_name(l: &Labels) -> Labels {
    if !name_dropped(l) {
        return l.clone();
    }
    let mut out = without_metadata_labels(l);
    out.set(NAME_DROPPED_LABEL, "");
    out
}

/// Whether the series' name is marked dropped.
pub fn name_dropped(l: &Labels) -> bool {
    !l.get(NAME_DROPPED_LABEL).is_empty()
}

/// The series' metric name, or "" when it has none or an earlier operation dropped it.
pub fn metric_name(l: &Labels) -> &str {
    if name_dropped(l) {
        ""
    } else {
        l.get(METRIC_NAME)
    }
}

/// Without the labels that describe the metric (`__name__`, `__type__`, `__unit__`), as
/// Prometheus' `DropReserved(schema.IsMetadataLabel)` when an operation changes the metric.
pub fn without_metadata_labels(l: &Labels) -> Labels {
    Labels::from_sorted(
        l.iter()
            .filter(|l| {
                !matches!(
                    l.name.as_str(),
                    METRIC_NAME | "__type__" | "__unit__" | NAME_DROPPED_LABEL
                )
            })
            .cloned()
            .collect(),
    )
}

/// Where an aggregation sits in the query, for its annotations: its parameter (`k`, `q`, the
/// ratio), the aggregated expression, and the aggregation itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggPositions {
    pub param: Option<QueryPos>,
    pub expr: Option<QueryPos>,
    pub start: Option<QueryPos>,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    /// `min_of(a, b)` (a function, not an operator token).
    MinOf,
    /// `max_of(a, b)`.
    MaxOf,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    /// `h </ x`: the observations of histogram `h` below `x`.
    TrimUpper,
    /// `h >/ x`: the observations of histogram `h` above `x`.
    TrimLower,
}

impl BinOp {
    pub fn parse(token: &str) -> Option<Self> {
        Some(match token {
            "+" => BinOp::Add,
            "-" => BinOp::Sub,
            "*" => BinOp::Mul,
            "/" => BinOp::Div,
            "%" => BinOp::Mod,
            "^" => BinOp::Pow,
            "atan2" => BinOp::Atan2,
            "==" => BinOp::Eq,
            "!=" => BinOp::Ne,
            ">" => BinOp::Gt,
            "<" => BinOp::Lt,
            ">=" => BinOp::Ge,
            "<=" => BinOp::Le,
            "</" => BinOp::TrimUpper,
            ">/" => BinOp::TrimLower,
            _ => return None,
        })
    }

    pub fn is_comparison(&self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Gt | BinOp::Lt | BinOp::Ge | BinOp::Le
        )
    }

    /// The histogram trim operators `</` and `>/`.
    pub fn is_trim(&self) -> bool {
        matches!(self, BinOp::TrimUpper | BinOp::TrimLower)
    }

    /// Whether the result is another metric, so the metric name is dropped: arithmetic,
    /// not comparisons nor trims.
    pub fn changes_metric(&self) -> bool {
        !self.is_comparison() && !self.is_trim()
    }

    /// Applies the operator with Go's float semantics: the value and, for comparisons,
    /// whether the comparison holds (IEEE: NaN compares false, -0 equals 0). Trims have no
    /// float result (NaN, not kept).
    pub fn apply(&self, l: f64, r: f64) -> (f64, bool) {
        match self {
            BinOp::Add => (l + r, true),
            BinOp::Sub => (l - r, true),
            BinOp::Mul => (l * r, true),
            BinOp::Div => (l / r, true),
            BinOp::Mod => (l % r, true),
            BinOp::Pow => (l.powf(r), true),
            BinOp::Atan2 => (l.atan2(r), true),
            BinOp::MinOf => (go_min_max(l, r, true), true),
            BinOp::MaxOf => (go_min_max(l, r, false), true),
            BinOp::Eq => (l, l == r),
            BinOp::Ne => (l, l != r),
            BinOp::Gt => (l, l > r),
            BinOp::Lt => (l, l < r),
            BinOp::Ge => (l, l >= r),
            BinOp::Le => (l, l <= r),
            BinOp::TrimUpper | BinOp::TrimLower => (f64::NAN, false),
        }
    }
}

/// Go's `math.Min` / `math.Max`: NaN when either is NaN, and -0 below +0.
pub fn go_min_max(a: f64, b: f64, min: bool) -> f64 {
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == b && a == 0.0 {
        // Zeros of both signs: min is -0, max is +0.
        let neg = a.is_sign_negative() || b.is_sign_negative();
        let pos = a.is_sign_positive() || b.is_sign_positive();
        return match (min, neg, pos) {
            (true, true, _) => -0.0,
            (false, _, true) => 0.0,
            _ => a,
        };
    }
    if (a < b) == min { a } else { b }
}

impl BinOp {
    /// The operator as written in PromQL (`atan2`, `+`, ...).
    pub fn token(&self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::MinOf => "min_of",
            BinOp::MaxOf => "max_of",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Gt => ">",
            BinOp::Lt => "<",
            BinOp::Ge => ">=",
            BinOp::Le => "<=",
            BinOp::TrimUpper => "</",
            BinOp::TrimLower => ">/",
        }
    }
}

/// The operator of a vector-to-vector binary operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum VectorOp {
    /// Arithmetic or comparison.
    Binary(BinOp),
    And,
    Or,
    Unless,
}

impl VectorOp {
    pub fn is_set_operator(&self) -> bool {
        matches!(self, VectorOp::And | VectorOp::Or | VectorOp::Unless)
    }
}

/// The cardinality of a vector matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum Cardinality {
    OneToOne,
    /// `group_left`: the right-hand side is the "one" side.
    ManyToOne,
    /// `group_right`: the left-hand side is the "one" side.
    OneToMany,
    /// Set operators.
    ManyToMany,
}

/// How the samples of the two sides are paired: `on(...)`/`ignoring(...)`, `group_left(...)`/
/// `group_right(...)` and the experimental `fill(...)` values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// `on(labels)` when true, `ignoring(labels)` when false (no modifier is `ignoring()`).
    pub on: bool,
    pub labels: Vec<String>,
    /// The `group_left`/`group_right` labels, copied from the "one" side.
    pub include: Vec<String>,
    /// `fill_left(v)`: the bits of the value used for a right-hand sample without a match.
    pub fill_lhs_bits: Option<u64>,
    /// `fill_right(v)`: the bits of the value used for a left-hand sample without a match.
    pub fill_rhs_bits: Option<u64>,
}

impl VectorMatching {
    /// Plain matching on all labels (`a + b`, `a and b`).
    pub fn new(card: Cardinality) -> Self {
        Self {
            card,
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
            fill_lhs_bits: None,
            fill_rhs_bits: None,
        }
    }

    pub fn fill_lhs(&self) -> Option<f64> {
        self.fill_lhs_bits.map(f64::from_bits)
    }

    pub fn fill_rhs(&self) -> Option<f64> {
        self.fill_rhs_bits.map(f64::from_bits)
    }

    /// Prometheus' `MatchLabels`: the `on` labels, or all but the ignored ones and the name.
    pub fn match_labels(&self, l: &Labels) -> Labels {
        if self.on {
            l.keep(&self.labels)
        } else {
            let mut m = l.drop_names(&self.labels);
            m.set(NAME_DROPPED_LABEL, "");
            m
        }
    }

    /// The matching signature: [`Self::match_labels`], with the tenant label only when
    /// `keep_tenant` (both sides carry it on every series, so a query over several tenants
    /// never pairs one tenant's series with another's).
    pub fn signature(&self, l: &Labels, keep_tenant: bool) -> Vec<u8> {
        let mut m = self.match_labels(l);
        m.set(
            TENANT_LABEL,
            if keep_tenant { l.get(TENANT_LABEL) } else { "" },
        );
        m.encode()
    }
}

/// `label_replace` and `label_join`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd)]
pub enum Relabel {
    Replace {
        dst: String,
        replacement: String,
        src: String,
        regex: String,
    },
    Join {
        dst: String,
        separator: String,
        srcs: Vec<String>,
    },
}

/// Whether `name` is a valid label name (Prometheus' legacy rule).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Relabel {
    /// Checks the arguments, with Prometheus' messages.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Relabel::Replace { dst, regex, .. } => {
                Regex::new(&format!("^(?s:{regex})$")).map_err(|e| {
                    format!("invalid regular expression in label_replace(): {regex}: {e}")
                })?;
                if !valid_label_name(dst) {
                    return Err(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    ));
                }
            }
            Relabel::Join { dst, srcs, .. } => {
                if !valid_label_name(dst) {
                    return Err(format!(
                        "invalid destination label name in label_join(): {dst}"
                    ));
                }
                if let Some(bad) = srcs.iter().find(|s| !valid_label_name(s)) {
                    return Err(format!("invalid source label name in label_join(): {bad}"));
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` may be the value label of `count_values`: Prometheus 3 accepts any
/// non-empty UTF-8 name.
pub fn valid_count_values_label(name: &str) -> bool {
    !name.is_empty()
}
