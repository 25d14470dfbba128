//! Lowering a PromQL AST into a DataFusion logical plan. The planner does no IO: it only
//! describes what to read (tenant, matchers, time range) and how to evaluate it.

use crate::annotations::{self, Annotations, QueryPos};
use crate::ops::{
    AggOp, BinOp, Cardinality, Grouping, HistogramFunc, InstantFunc, RangeFunc, Relabel, StepValue,
    Steps, VectorMatching, VectorOp, valid_count_values_label,
};
use datafusion::logical_expr::LogicalPlan;
use hypnos_schemas::labels::METRIC_NAME;
use hypnos_schemas::{Labels, ReadAggregate, TenantId};
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector,
    Offset, SubqueryExpr, VectorMatchCardinality, VectorSelector,
};

use crate::QueryError;
use crate::nodes::{MatcherSpec, PromNode, PromOp, SelectHints};
use crate::positions::Positions;

/// What a query (or one of its expressions) lowers to: a constant, or a logical plan of
/// [`crate::PromNode`]s and how its result reads.
#[derive(Debug)]
pub enum Lowered {
    Scalar(f64),
    String(String),
    /// An instant vector evaluated at every step.
    Vector(LogicalPlan),
    /// A range vector (only as a top-level instant query): raw samples.
    Matrix(LogicalPlan),
    /// A scalar that varies per step (`time()`, `scalar(v)`): one series without labels
    /// holding the value at every step.
    ScalarPlan(LogicalPlan),
}

/// The context of one query.
#[derive(Clone, Copy)]
pub(crate) struct Lowering<'a> {
    /// The tenants every selection reads (several for a federated query).
    pub(crate) tenants: &'a [TenantId],
    pub(crate) steps: Steps,
    pub(crate) lookback: i64,
    /// The whole query's start and end, for `@ start()` and `@ end()`.
    pub(crate) query_range: (i64, i64),
    /// The whole query's step (ignored for an instant query, whose step is 0), for `step()`.
    pub(crate) query_step: i64,
    /// The coarsest resolution selections may read (0: raw only).
    pub(crate) max_resolution: i64,
    /// Where the query's calls and aggregations are, for the annotations' positions.
    pub(crate) positions: &'a Positions,
    /// The query's annotations, for those the planner can tell from the query alone.
    pub(crate) notes: &'a Annotations,
    /// Selections only feed `histogram_count`/`histogram_sum`/`histogram_avg`: they read
    /// histograms as Prometheus' histogram-stats iterator does (see [`PromOp::Select`]).
    pub(crate) histogram_stats: bool,
}

/// Subquery step when the query gives none (Prometheus' default evaluation interval).
const DEFAULT_SUBQUERY_STEP: i64 = 60_000;

fn unsupported(what: impl Into<String>) -> QueryError {
    QueryError::Unsupported(what.into())
}

/// Largest magnitude (milliseconds, about 36 million years) of any time, offset, range or
/// step the planner takes: the sums of a few of them that lowering and evaluation compute
/// then never overflow an `i64`.
pub(crate) const MAX_TIME_MS: i64 = 1 << 60;

/// The "function" name [`Lowering::range_input`] gets for a subquery returned on its own.
const STANDALONE_SUBQUERY: &str = "subquery";

/// Most steps one subquery may be evaluated at; each step costs time for every series even
/// where there is no data, so `x[1y:1ms]` is refused instead of running for hours.
pub(crate) const MAX_SUBQUERY_STEPS: i64 = 11_000_000;

fn time_in_bounds(what: &str, ms: i128) -> Result<i64, QueryError> {
    if ms.abs() > i128::from(MAX_TIME_MS) {
        return Err(QueryError::BadData(format!(
            "{what} of {ms}ms is out of bounds (at most {MAX_TIME_MS}ms either way)"
        )));
    }
    Ok(ms as i64)
}

/// Refuses a query whose times, lookback, offsets, `@` times, ranges or subquery steps are
/// out of [`MAX_TIME_MS`], before any of them is used in arithmetic.
pub(crate) fn check_times(expr: &Expr, steps: Steps, lookback: i64) -> Result<(), QueryError> {
    time_in_bounds("query start", steps.start.into())?;
    time_in_bounds("query end", steps.end.into())?;
    time_in_bounds("query step", steps.step.into())?;
    time_in_bounds("lookback delta", lookback.into())?;
    let duration =
        |what: &str, d: &std::time::Duration| time_in_bounds(what, d.as_millis() as i128);
    let offset = |o: &Option<Offset>| match o {
        Some(Offset::Pos(d) | Offset::Neg(d)) => duration("offset", d).map(drop),
        None => Ok(()),
    };
    let at = |a: &Option<AtModifier>| match a {
        Some(AtModifier::At(t)) => {
            let ms = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i128,
                Err(e) => -(e.duration().as_millis() as i128),
            };
            time_in_bounds("@ time", ms).map(drop)
        }
        _ => Ok(()),
    };
    match expr {
        Expr::VectorSelector(vs) => {
            offset(&vs.offset)?;
            at(&vs.at)
        }
        Expr::MatrixSelector(ms) => {
            offset(&ms.vs.offset)?;
            at(&ms.vs.at)?;
            duration("range", &ms.range).map(drop)
        }
        Expr::Subquery(sq) => {
            offset(&sq.offset)?;
            at(&sq.at)?;
            duration("subquery range", &sq.range)?;
            if let Some(step) = &sq.step {
                duration("subquery step", step)?;
            }
            check_times(&sq.expr, steps, lookback)
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                check_times(p, steps, lookback)?;
            }
            check_times(&a.expr, steps, lookback)
        }
        Expr::Unary(u) => check_times(&u.expr, steps, lookback),
        Expr::Binary(b) => {
            check_times(&b.lhs, steps, lookback)?;
            check_times(&b.rhs, steps, lookback)
        }
        Expr::Paren(p) => check_times(&p.expr, steps, lookback),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .try_for_each(|a| check_times(a, steps, lookback)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Ok(()),
    }
}

impl Lowering<'_> {
    pub(crate) fn lower(&self, expr: &Expr) -> Result<Lowered, QueryError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Lowered::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Lowered::String(s.val.clone())),
            Expr::Paren(p) => self.lower(&p.expr),
            Expr::Unary(u) => match self.lower(&u.expr)? {
                Lowered::Scalar(v) => Ok(Lowered::Scalar(-v)),
                Lowered::Vector(plan) => Ok(Lowered::Vector(scalar_binary(
                    plan,
                    BinOp::Mul,
                    -1.0,
                    false,
                    false,
                    None,
                ))),
                Lowered::ScalarPlan(plan) => Ok(Lowered::ScalarPlan(scalar_binary(
                    plan,
                    BinOp::Mul,
                    -1.0,
                    false,
                    false,
                    None,
                ))),
                _ => Err(QueryError::BadData(
                    "unary minus applies to scalars and instant vectors only".into(),
                )),
            },
            Expr::VectorSelector(vs) => self.vector_selector(vs).map(Lowered::Vector),
            Expr::MatrixSelector(ms) => self.matrix_selector(ms).map(Lowered::Matrix),
            Expr::Call(call) => self.call_any(call),
            Expr::Aggregate(agg) => self.aggregate(agg).map(Lowered::Vector),
            Expr::Binary(b) => self.binary(b),
            Expr::Subquery(sq) => self.subquery(sq).map(Lowered::Matrix),
            Expr::Extension(_) => Err(unsupported("extension expression")),
        }
    }

    fn offset_of(offset: &Option<Offset>) -> i64 {
        match offset {
            None => 0,
            Some(Offset::Pos(d)) => d.as_millis() as i64,
            Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        }
    }

    fn offset_ms(vs: &VectorSelector) -> Result<i64, QueryError> {
        Ok(Self::offset_of(&vs.offset))
    }

    /// The fixed evaluation time of an `@` modifier, in milliseconds.
    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.query_range.0,
            AtModifier::End => self.query_range.1,
            AtModifier::At(t) => match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            },
        })
    }

    /// The steps an expression with `@` is evaluated at (one), and wraps its plan so the
    /// value is repeated at every step of the query.
    fn with_at(
        &self,
        at: Option<i64>,
        build: impl FnOnce(Steps) -> Result<LogicalPlan, QueryError>,
    ) -> Result<LogicalPlan, QueryError> {
        match at {
            None => build(self.steps),
            Some(t) => {
                let plan = build(Steps::instant(t))?;
                Ok(PromNode::plan(
                    PromOp::Broadcast { steps: self.steps },
                    Some(plan),
                ))
            }
        }
    }

    /// `vs` read over each step's lookback window (staleness markers kept) and reduced to
    /// the time of the sample each step selects (`InstantTimes`), under `@` when given.
    fn sample_times(
        &self,
        vs: &VectorSelector,
        offset: i64,
        at: Option<i64>,
    ) -> Result<LogicalPlan, QueryError> {
        self.with_at(at, |steps| {
            let scan = self.select(
                vs,
                steps.start - offset - self.lookback + 1,
                steps.end - offset,
                false,
            )?;
            Ok(PromNode::plan(
                PromOp::InstantTimes {
                    steps,
                    lookback: self.lookback,
                    offset,
                },
                Some(scan),
            ))
        })
    }

    fn select(
        &self,
        vs: &VectorSelector,
        min: i64,
        max: i64,
        drop_stale: bool,
    ) -> Result<LogicalPlan, QueryError> {
        self.select_as(vs, min, max, drop_stale, ReadAggregate::Value)
    }

    /// The aggregate of downsampled data that the range function `fname` reads from its
    /// selector (raw data reads the sample values whatever this says). `count_over_time` and
    /// `avg_over_time` are rewritten in [`Self::downsampled_window`] to sum counts and sums;
    /// anywhere else they read values, so a count never counts windows.
    fn aggregate_for(&self, fname: &str) -> ReadAggregate {
        if self.max_resolution <= 0 {
            return ReadAggregate::Value;
        }
        match fname {
            "min_over_time" => ReadAggregate::Min,
            "max_over_time" => ReadAggregate::Max,
            "sum_over_time" => ReadAggregate::Sum,
            "rate" | "increase" | "irate" | "resets" => ReadAggregate::Counter,
            _ => ReadAggregate::Value,
        }
    }

    /// `count_over_time` and `avg_over_time` of a range selector that may read downsampled
    /// data, where a point stands for a whole window: the count is the sum of the windows'
    /// `count`s, the average the sum of their `sum`s divided by the sum of their `count`s
    /// (both exact, raw samples counting one). `None` for everything else.
    fn downsampled_window(
        &self,
        func: RangeFunc,
        arg: &Expr,
        at: Option<i64>,
    ) -> Result<Option<LogicalPlan>, QueryError> {
        let Expr::MatrixSelector(ms) = arg else {
            return Ok(None);
        };
        let reads: &[ReadAggregate] = match func {
            _ if self.max_resolution <= 0 => return Ok(None),
            RangeFunc::CountOverTime => &[ReadAggregate::Count],
            RangeFunc::AvgOverTime => &[ReadAggregate::Sum, ReadAggregate::Count],
            _ => return Ok(None),
        };
        let offset = Self::offset_ms(&ms.vs)?;
        let range = ms.range.as_millis() as i64;
        self.with_at(at, |steps| {
            let mut sums = reads
                .iter()
                .map(|a| {
                    let scan = self.select_as(
                        &ms.vs,
                        steps.start - offset - range + 1,
                        steps.end - offset,
                        false,
                        *a,
                    )?;
                    Ok(PromNode::plan(
                        PromOp::RangeFunction {
                            func: RangeFunc::SumOverTime,
                            steps,
                            range,
                            offset,
                            pos: None,
                        },
                        Some(scan),
                    ))
                })
                .collect::<Result<Vec<LogicalPlan>, QueryError>>()?;
            let first = sums.remove(0);
            Ok(match sums.pop() {
                None => first,
                Some(counts) => PromNode::plan_binary(
                    PromOp::VectorBinary {
                        op: VectorOp::Binary(BinOp::Div),
                        matching: VectorMatching::new(Cardinality::OneToOne),
                        return_bool: false,
                        pos: None,
                    },
                    first,
                    counts,
                ),
            })
        })
        .map(Some)
    }

    /// [`Self::select`] reading `aggregate` where the data is downsampled.
    fn select_as(
        &self,
        vs: &VectorSelector,
        min: i64,
        max: i64,
        drop_stale: bool,
        aggregate: ReadAggregate,
    ) -> Result<LogicalPlan, QueryError> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(unsupported("'or' between label matchers"));
        }
        let mut matchers: Vec<MatcherSpec> = vs
            .matchers
            .matchers
            .iter()
            .map(|m| MatcherSpec {
                name: m.name.clone(),
                op: match m.op {
                    PMatchOp::Equal => "=",
                    PMatchOp::NotEqual => "!=",
                    PMatchOp::Re(_) => "=~",
                    PMatchOp::NotRe(_) => "!~",
                },
                value: m.value.clone(),
            })
            .collect();
        if let Some(name) = &vs.name
            && !matchers
                .iter()
                .any(|m| m.name == METRIC_NAME && m.op == "=" && m.value == *name)
        {
            matchers.push(MatcherSpec {
                name: METRIC_NAME.into(),
                op: "=",
                value: name.clone(),
            });
        }
        // Compile once here so an invalid regex is a 400, not an execution failure.
        for m in &matchers {
            m.compile()
                .map_err(|e| QueryError::BadData(e.to_string()))?;
        }
        Ok(PromNode::plan(
            PromOp::Select {
                tenants: self.tenants.to_vec(),
                matchers,
                min,
                max,
                drop_stale,
                hints: SelectHints::new(self.max_resolution, aggregate),
                histogram_stats: self.histogram_stats,
            },
            None,
        ))
    }

    fn vector_selector(&self, vs: &VectorSelector) -> Result<LogicalPlan, QueryError> {
        let offset = Self::offset_ms(vs)?;
        self.with_at(self.at_ms(&vs.at), |steps| {
            let min = steps.start - offset - self.lookback + 1;
            let max = steps.end - offset;
            let scan = self.select(vs, min, max, false)?;
            Ok(PromNode::plan(
                PromOp::Instant {
                    steps,
                    lookback: self.lookback,
                    offset,
                },
                Some(scan),
            ))
        })
    }

    fn matrix_selector(&self, ms: &MatrixSelector) -> Result<LogicalPlan, QueryError> {
        let offset = Self::offset_ms(&ms.vs)?;
        let range = ms.range.as_millis() as i64;
        let (start, end) = match self.at_ms(&ms.vs.at) {
            Some(t) => (t, t),
            None => (self.steps.start, self.steps.end),
        };
        self.select(&ms.vs, start - offset - range + 1, end - offset, true)
    }

    /// The samples a range function reads, for evaluation at `steps`: raw samples of a range
    /// selector, or the inner expression of a subquery evaluated at its own steps. Returns
    /// the plan, the range and the offset.
    fn range_input(
        &self,
        arg: &Expr,
        steps: Steps,
        fname: &str,
    ) -> Result<(LogicalPlan, i64, i64), QueryError> {
        match arg {
            Expr::Paren(p) => self.range_input(&p.expr, steps, fname),
            Expr::MatrixSelector(ms) => {
                let offset = Self::offset_ms(&ms.vs)?;
                let range = ms.range.as_millis() as i64;
                let scan = self.select_as(
                    &ms.vs,
                    steps.start - offset - range + 1,
                    steps.end - offset,
                    false,
                    self.aggregate_for(fname),
                )?;
                Ok((scan, range, offset))
            }
            Expr::Subquery(sq) => {
                let offset = Self::offset_of(&sq.offset);
                let range = sq.range.as_millis() as i64;
                let step = sq
                    .step
                    .map_or(DEFAULT_SUBQUERY_STEP, |d| d.as_millis() as i64);
                if step <= 0 {
                    return Err(QueryError::BadData("zero or negative subquery step".into()));
                }
                // `@` was applied by the caller: `steps` is then the single `@` time.
                let (start, end) = (steps.start, steps.end);
                // The first step-aligned time after start - offset - range (Go's truncating
                // division, as Prometheus): the range is left-open.
                let lo = start - offset - range;
                let mut sub_start = step * (lo / step);
                if sub_start <= lo {
                    sub_start += step;
                }
                // Nested subqueries move their steps further at every level.
                time_in_bounds("subquery start", sub_start.into())?;
                time_in_bounds("subquery end", (end - offset).into())?;
                let count = (end - offset - sub_start) / step + 1;
                if count > MAX_SUBQUERY_STEPS {
                    return Err(QueryError::Execution(format!(
                        "subquery would be evaluated at {count} steps, more than the limit of \
                         {MAX_SUBQUERY_STEPS}: use a larger subquery step or a shorter range"
                    )));
                }
                let inner = Lowering {
                    tenants: self.tenants,
                    steps: Steps {
                        start: sub_start,
                        end: end - offset,
                        step,
                    },
                    lookback: self.lookback,
                    query_range: self.query_range,
                    query_step: self.query_step,
                    max_resolution: self.max_resolution,
                    positions: self.positions,
                    notes: self.notes,
                    // A subquery needs whole histograms for its counter-reset detection.
                    histogram_stats: false,
                };
                match inner.lower(&sq.expr)? {
                    // A function reads the subquery's samples with their histograms'
                    // reset hints forgotten, as Prometheus does; a subquery returned as the
                    // query's result keeps them.
                    Lowered::Vector(plan) if fname != STANDALONE_SUBQUERY => Ok((
                        PromNode::plan(PromOp::ForgetResetHints, Some(plan)),
                        range,
                        offset,
                    )),
                    Lowered::Vector(plan) => Ok((plan, range, offset)),
                    _ => Err(unsupported(format!(
                        "{fname}() over a subquery of a scalar"
                    ))),
                }
            }
            _ => Err(QueryError::BadData(format!(
                "expected a range vector argument to {fname}()"
            ))),
        }
    }

    /// A subquery on its own (an instant query's range-vector result).
    fn subquery(&self, sq: &SubqueryExpr) -> Result<LogicalPlan, QueryError> {
        let expr = Expr::Subquery(sq.clone());
        let steps = self.at_ms(&sq.at).map_or(self.steps, Steps::instant);
        Ok(self.range_input(&expr, steps, STANDALONE_SUBQUERY)?.0)
    }

    /// The label set `absent` reports: the selector's equality matchers (not the name).
    fn absent_labels(arg: &Expr) -> Labels {
        let vs = match arg {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Labels::default(),
        };
        // In matcher order, as Prometheus: the first equality on a label sets it, any later
        // matcher on the same label (or a non-equality one) removes it again.
        let mut out = Labels::default();
        let mut seen: Vec<&str> = Vec::new();
        for m in vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != METRIC_NAME)
        {
            if matches!(m.op, PMatchOp::Equal) && !seen.contains(&m.name.as_str()) {
                out.set(&m.name, &m.value);
                seen.push(&m.name);
            } else {
                out.set(&m.name, "");
            }
        }
        out
    }

    fn string_arg(name: &str, arg: &Expr) -> Result<String, QueryError> {
        match arg {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            Expr::Paren(p) => Self::string_arg(name, &p.expr),
            _ => Err(QueryError::BadData(format!(
                "expected a string argument to {name}()"
            ))),
        }
    }

    /// A scalar argument that must be known when planning (a literal or constant
    /// expression); per-step scalars such as `scalar(x)` are not supported yet.
    fn constant_arg(&self, name: &str, arg: &Expr) -> Result<f64, QueryError> {
        match self.lower(arg)? {
            Lowered::Scalar(v) => Ok(v),
            _ => Err(unsupported(format!(
                "{name}() with a scalar argument that is not a constant"
            ))),
        }
    }

    fn step_values(&self, value: StepValue) -> LogicalPlan {
        PromNode::plan(
            PromOp::StepValues {
                steps: self.steps,
                value,
            },
            None,
        )
    }

    /// Calls whose result is not (only) an instant vector: `time()`, `scalar()`, `pi()`,
    /// `vector()`, `timestamp()`, and the date functions without argument.
    fn call_any(&self, call: &Call) -> Result<Lowered, QueryError> {
        let name = call.func.name;
        let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        match (name, args.as_slice()) {
            ("pi", []) => Ok(Lowered::Scalar(std::f64::consts::PI)),
            // The query's own time parameters, in seconds; an instant query has a zero step
            // and a zero range.
            ("step", []) => Ok(Lowered::Scalar(
                if self.query_range.0 == self.query_range.1 {
                    0.0
                } else {
                    self.query_step as f64 / 1000.0
                },
            )),
            ("range", []) => Ok(Lowered::Scalar(
                (self.query_range.1 - self.query_range.0) as f64 / 1000.0,
            )),
            ("start", []) => Ok(Lowered::Scalar(self.query_range.0 as f64 / 1000.0)),
            ("end", []) => Ok(Lowered::Scalar(self.query_range.1 as f64 / 1000.0)),
            ("min_of" | "max_of", [a, b]) => {
                let op = if name == "min_of" {
                    BinOp::MinOf
                } else {
                    BinOp::MaxOf
                };
                match (self.lower(a)?, self.lower(b)?) {
                    (Lowered::Scalar(a), Lowered::Scalar(b)) => {
                        Ok(Lowered::Scalar(op.apply(a, b).0))
                    }
                    // Per-step scalars: evaluated at each step like a scalar operator.
                    (Lowered::ScalarPlan(p), Lowered::Scalar(s)) => Ok(Lowered::ScalarPlan(
                        scalar_binary(p, op, s, false, true, None),
                    )),
                    (Lowered::Scalar(s), Lowered::ScalarPlan(p)) => Ok(Lowered::ScalarPlan(
                        scalar_binary(p, op, s, true, true, None),
                    )),
                    (Lowered::ScalarPlan(l), Lowered::ScalarPlan(r)) => Ok(Lowered::ScalarPlan(
                        scalar_plan_binary(op, false, Cardinality::OneToOne, l, r, None),
                    )),
                    _ => Err(QueryError::BadData(format!(
                        "expected two scalar arguments to {name}()"
                    ))),
                }
            }
            ("time", []) => Ok(Lowered::ScalarPlan(self.step_values(StepValue::Time))),
            ("vector", [arg]) => match self.lower(arg)? {
                Lowered::Scalar(c) => Ok(Lowered::Vector(
                    self.step_values(StepValue::Constant(c.to_bits())),
                )),
                Lowered::ScalarPlan(p) => Ok(Lowered::Vector(p)),
                _ => Err(QueryError::BadData(
                    "expected a scalar argument to vector()".into(),
                )),
            },
            ("scalar", [arg]) => match self.lower(arg)? {
                Lowered::Vector(p) => Ok(Lowered::ScalarPlan(PromNode::plan(
                    PromOp::ToScalar { steps: self.steps },
                    Some(p),
                ))),
                _ => Err(QueryError::BadData(
                    "expected an instant vector argument to scalar()".into(),
                )),
            },
            ("timestamp", [arg]) => {
                let mut inner = *arg;
                while let Expr::Paren(p) = inner {
                    inner = &p.expr;
                }
                if let Expr::VectorSelector(vs) = inner {
                    let offset = Self::offset_ms(vs)?;
                    return self
                        .sample_times(vs, offset, self.at_ms(&vs.at))
                        .map(Lowered::Vector);
                }
                self.call(call).map(Lowered::Vector)
            }
            (
                "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year"
                | "days_in_month" | "month" | "year",
                [],
            ) => {
                let func = InstantFunc::from_name(name, &[]).ok_or_else(|| unsupported(name))?;
                Ok(Lowered::Vector(PromNode::plan(
                    PromOp::InstantFunction { func },
                    Some(self.step_values(StepValue::Time)),
                )))
            }
            _ => self.call(call).map(Lowered::Vector),
        }
    }

    fn call(&self, call: &Call) -> Result<LogicalPlan, QueryError> {
        let name = call.func.name;
        // As Prometheus decides which selections may skip histogram buckets: below
        // histogram_count/sum/avg, unless a function needing buckets (or a subquery, or a
        // trim) comes between.
        let stats = match name {
            "histogram_count" | "histogram_sum" | "histogram_avg" => true,
            "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => false,
            _ => self.histogram_stats,
        };
        if stats != self.histogram_stats {
            return Lowering {
                histogram_stats: stats,
                ..*self
            }
            .call(call);
        }
        let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        if let Some(func) = RangeFunc::from_name(name) {
            return self.range_function_call(call, func, &args);
        }
        match name {
            "info" => self.info(&args),
            "absent_over_time" => self.absent_over_time(call, &args),
            "absent" => self.absent(&args),
            "label_replace" | "label_join" => self.relabel(name, &args),
            "histogram_quantiles" | "histogram_quantile" | "histogram_fraction" => {
                self.histogram_call(call, &args)
            }
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => self.sort(call, &args),
            _ => self.instant_function_call(name, &args),
        }
    }

    /// A function of a range vector (`rate(x[5m])`, `quantile_over_time(q, x[5m])`, ...).
    fn range_function_call(
        &self,
        call: &Call,
        func: RangeFunc,
        args: &[&Expr],
    ) -> Result<LogicalPlan, QueryError> {
        let name = call.func.name;
        // The range vector is the first argument, except for quantile_over_time.
        if let (RangeFunc::QuantileOverTime(_), [q, arg]) = (func, args)
            && let Lowered::ScalarPlan(param) = self.lower(q)?
        {
            return self.range_function_per_step(
                func,
                arg,
                param,
                self.positions.call_arg(call, 0),
            );
        }
        // predict_linear's intercept is at each step's time, also when `@` fixes the
        // window: evaluated per step, with its duration per step when not a constant.
        if let (RangeFunc::PredictLinear(_), [arg, duration]) = (func, args) {
            let param = match self.lower(duration)? {
                Lowered::ScalarPlan(param) => Some(param),
                Lowered::Scalar(v) if self.has_at(arg) => {
                    Some(self.step_values(StepValue::Constant(v.to_bits())))
                }
                _ => None,
            };
            if let Some(param) = param {
                return self.range_function_per_step(
                    func,
                    arg,
                    param,
                    self.positions.call_arg(call, 0),
                );
            }
        }
        let (func, matrix) = match func {
            RangeFunc::QuantileOverTime(_) => (
                RangeFunc::QuantileOverTime(self.constant_arg(name, args[0])?.to_bits()),
                args.get(1),
            ),
            RangeFunc::PredictLinear(_) => (
                RangeFunc::PredictLinear(self.constant_arg(name, args[1])?.to_bits()),
                args.first(),
            ),
            RangeFunc::DoubleExponentialSmoothing(..) => {
                let [_, sf, tf] = args else {
                    return Err(QueryError::BadData(format!("{name}() takes 3 arguments")));
                };
                (
                    RangeFunc::DoubleExponentialSmoothing(
                        self.constant_arg(name, sf)?.to_bits(),
                        self.constant_arg(name, tf)?.to_bits(),
                    ),
                    args.first(),
                )
            }
            f => (f, args.first()),
        };
        let Some(arg) = matrix.copied() else {
            return Err(QueryError::BadData(format!(
                "{name}() needs a range vector"
            )));
        };
        let mut inner = arg;
        while let Expr::Paren(p) = inner {
            inner = &p.expr;
        }
        let at = match inner {
            Expr::MatrixSelector(ms) => self.at_ms(&ms.vs.at),
            Expr::Subquery(sq) => self.at_ms(&sq.at),
            _ => None,
        };
        if let Some(plan) = self.downsampled_window(func, inner, at)? {
            return Ok(plan);
        }
        // Prometheus hints that rate/increase want counters only over a range selector.
        let pos = match (func, inner) {
            (RangeFunc::Rate | RangeFunc::Increase, e) if !matches!(e, Expr::MatrixSelector(_)) => {
                None
            }
            _ => self.positions.call_arg(call, 0),
        };
        self.with_at(at, |steps| {
            let (input, range, offset) = self.range_input(arg, steps, name)?;
            Ok(PromNode::plan(
                PromOp::RangeFunction {
                    func,
                    steps,
                    range,
                    offset,
                    pos,
                },
                Some(input),
            ))
        })
    }

    /// `absent_over_time(v[r])`: 1 where `present_over_time` has no sample.
    fn absent_over_time(&self, call: &Call, args: &[&Expr]) -> Result<LogicalPlan, QueryError> {
        let Some(arg) = args.first().copied() else {
            return Err(QueryError::BadData(
                "absent_over_time() needs a range vector".into(),
            ));
        };
        let present = self.call(&Call {
            func: promql_parser::parser::Function::new(
                "present_over_time",
                call.func.arg_types.clone(),
                0,
                call.func.return_type,
                false,
            ),
            args: call.args.clone(),
        })?;
        Ok(PromNode::plan(
            PromOp::Absent {
                steps: self.steps,
                labels: Self::absent_labels(arg),
            },
            Some(present),
        ))
    }

    /// `absent(v)`: 1 where `v` has no sample.
    fn absent(&self, args: &[&Expr]) -> Result<LogicalPlan, QueryError> {
        let Some(arg) = args.first().copied() else {
            return Err(QueryError::BadData(
                "absent() needs an instant vector".into(),
            ));
        };
        let Lowered::Vector(input) = self.lower(arg)? else {
            return Err(QueryError::BadData(
                "expected an instant vector argument to absent()".into(),
            ));
        };
        Ok(PromNode::plan(
            PromOp::Absent {
                steps: self.steps,
                labels: Self::absent_labels(arg),
            },
            Some(input),
        ))
    }

    /// `label_replace` and `label_join`.
    fn relabel(&self, name: &str, args: &[&Expr]) -> Result<LogicalPlan, QueryError> {
        let Some((first, rest)) = args.split_first() else {
            return Err(QueryError::BadData(format!("{name}() needs arguments")));
        };
        let strings = rest
            .iter()
            .map(|a| Self::string_arg(name, a))
            .collect::<Result<Vec<String>, _>>()?;
        let rule = if name == "label_replace" {
            let [dst, replacement, src, regex] = <[String; 4]>::try_from(strings)
                .map_err(|_| QueryError::BadData("label_replace() takes 5 arguments".into()))?;
            Relabel::Replace {
                dst,
                replacement,
                src,
                regex,
            }
        } else {
            let mut it = strings.into_iter();
            let (Some(dst), Some(separator)) = (it.next(), it.next()) else {
                return Err(QueryError::BadData(
                    "label_join() needs at least 3 arguments".into(),
                ));
            };
            Relabel::Join {
                dst,
                separator,
                srcs: it.collect(),
            }
        };
        rule.validate().map_err(QueryError::Execution)?;
        let Lowered::Vector(input) = self.lower(first)? else {
            return Err(QueryError::BadData(format!(
                "expected an instant vector argument to {name}()"
            )));
        };
        Ok(PromNode::plan(PromOp::Relabel { rule }, Some(input)))
    }

    /// `histogram_quantiles`, `histogram_quantile` (its quantile constant or per step) and
    /// `histogram_fraction` over classic buckets and native histograms.
    fn histogram_call(&self, call: &Call, args: &[&Expr]) -> Result<LogicalPlan, QueryError> {
        let name = call.func.name;
        if name == "histogram_quantiles" {
            let [vector, label, qs @ ..] = args else {
                return Err(QueryError::BadData(format!("{name}() needs arguments")));
            };
            let label = Self::string_arg(name, label)?;
            let qs = qs
                .iter()
                .map(|a| self.constant_arg(name, a).map(f64::to_bits))
                .collect::<Result<Vec<u64>, _>>()?;
            let Lowered::Vector(input) = self.lower(vector)? else {
                return Err(QueryError::BadData(format!(
                    "expected an instant vector argument to {name}()"
                )));
            };
            return Ok(PromNode::plan(
                PromOp::Histogram {
                    func: HistogramFunc::Quantiles { label, qs },
                    param_pos: self.positions.call_arg(call, 2),
                    vector_pos: self.positions.call_arg(call, 0),
                },
                Some(input),
            ));
        }
        if let ("histogram_quantile", [q, vector]) = (name, args)
            && let Lowered::ScalarPlan(param) = self.lower(q)?
        {
            let Lowered::Vector(input) = self.lower(vector)? else {
                return Err(QueryError::BadData(format!(
                    "expected an instant vector argument to {name}()"
                )));
            };
            return Ok(PromNode::plan_binary(
                PromOp::Histogram {
                    func: HistogramFunc::Quantile(0),
                    param_pos: self.positions.call_arg(call, 0),
                    vector_pos: self.positions.call_arg(call, 1),
                },
                input,
                param,
            ));
        }
        // histogram_quantile with a constant quantile, and histogram_fraction.
        let Some((vector, params)) = args.split_last() else {
            return Err(QueryError::BadData(format!("{name}() needs arguments")));
        };
        let params = params
            .iter()
            .map(|a| self.constant_arg(name, a))
            .collect::<Result<Vec<f64>, _>>()?;
        let func = match (name, params.as_slice()) {
            ("histogram_quantile", [q]) => HistogramFunc::Quantile(q.to_bits()),
            ("histogram_fraction", [lo, hi]) => HistogramFunc::Fraction(lo.to_bits(), hi.to_bits()),
            _ => {
                return Err(QueryError::BadData(format!(
                    "wrong number of arguments to {name}()"
                )));
            }
        };
        let Lowered::Vector(input) = self.lower(vector)? else {
            return Err(QueryError::BadData(format!(
                "expected an instant vector argument to {name}()"
            )));
        };
        Ok(PromNode::plan(
            PromOp::Histogram {
                func,
                param_pos: self.positions.call_arg(call, 0),
                vector_pos: self.positions.call_arg(call, params.len()),
            },
            Some(input),
        ))
    }

    /// `sort`, `sort_desc`, `sort_by_label` and `sort_by_label_desc`: the order is applied
    /// to the final instant vector.
    fn sort(&self, call: &Call, args: &[&Expr]) -> Result<LogicalPlan, QueryError> {
        let name = call.func.name;
        // Ordering only: the engine orders the final instant vector (see order.rs).
        if self.query_range.0 != self.query_range.1 {
            let pos = self.positions.call(call).map(|s| s.start);
            self.notes.warn(annotations::SORT_IN_RANGE_QUERY, pos);
        }
        match args.first().map(|a| self.lower(a)).transpose()? {
            // `sort` and `sort_desc` order by value: histograms are left out.
            Some(Lowered::Vector(plan)) if matches!(name, "sort" | "sort_desc") => {
                Ok(PromNode::plan(
                    PromOp::InstantFunction {
                        func: InstantFunc::FloatsOnly,
                    },
                    Some(plan),
                ))
            }
            Some(Lowered::Vector(plan)) => Ok(plan),
            _ => Err(QueryError::BadData(format!(
                "expected an instant vector argument to {name}()"
            ))),
        }
    }

    /// A function applied to every sample of an instant vector, with constant parameters
    /// (or parameters evaluated per step).
    fn instant_function_call(&self, name: &str, args: &[&Expr]) -> Result<LogicalPlan, QueryError> {
        let Some((first, rest)) = args.split_first() else {
            return Err(unsupported(format!("function {name}()")));
        };
        let scalars = rest
            .iter()
            .map(|a| self.constant_arg(name, a))
            .collect::<Result<Vec<f64>, _>>();
        let func = match scalars {
            Ok(s) => InstantFunc::from_name(name, &s),
            Err(_) => match InstantFunc::from_name(name, &vec![0.0; rest.len()]) {
                // A parameter that is not a constant (`round(v, scalar(x))`): evaluated
                // per step.
                Some(func) => return self.instant_function_per_step(name, func, first, rest),
                None => None,
            },
        };
        let Some(func) = func else {
            return Err(unsupported(format!("function {name}()")));
        };
        let Lowered::Vector(input) = self.lower(first)? else {
            return Err(QueryError::BadData(format!(
                "expected an instant vector argument to {name}()"
            )));
        };
        Ok(PromNode::plan(
            PromOp::InstantFunction { func },
            Some(input),
        ))
    }

    /// An instant function whose scalar parameters are evaluated per step.
    fn instant_function_per_step(
        &self,
        name: &str,
        func: InstantFunc,
        vector: &Expr,
        params: &[&Expr],
    ) -> Result<LogicalPlan, QueryError> {
        let Lowered::Vector(input) = self.lower(vector)? else {
            return Err(QueryError::BadData(format!(
                "expected an instant vector argument to {name}()"
            )));
        };
        let mut inputs = vec![input];
        for p in params {
            inputs.push(match self.lower(p)? {
                Lowered::Scalar(v) => self.step_values(StepValue::Constant(v.to_bits())),
                Lowered::ScalarPlan(plan) => plan,
                _ => {
                    return Err(QueryError::BadData(format!(
                        "expected a scalar parameter of {name}()"
                    )));
                }
            });
        }
        Ok(PromNode::plan_all(
            PromOp::InstantFunctionPerStep { func },
            inputs,
        ))
    }

    /// `info(v, {selector})`: `v` joined with the info series (by default `target_info`)
    /// that share its identifying labels, read at the time and offset of `v`'s first
    /// selector, as Prometheus does.
    fn info(&self, args: &[&Expr]) -> Result<LogicalPlan, QueryError> {
        let (base_expr, selector) = match args {
            [b] => (*b, None),
            [b, s] => (*b, Some(*s)),
            _ => return Err(QueryError::BadData("info() takes 1 or 2 arguments".into())),
        };
        let mut names: Vec<promql_parser::label::Matcher> = Vec::new();
        let mut data: Vec<promql_parser::label::Matcher> = Vec::new();
        match selector {
            None => {}
            Some(Expr::VectorSelector(vs)) => {
                if let Some(n) = &vs.name {
                    names.push(promql_parser::label::Matcher::new(
                        PMatchOp::Equal,
                        METRIC_NAME,
                        n,
                    ));
                }
                for m in &vs.matchers.matchers {
                    if m.name == METRIC_NAME {
                        names.push(m.clone());
                    } else {
                        data.push(m.clone());
                    }
                }
            }
            Some(_) => {
                return Err(QueryError::BadData(
                    "expected a label selector as the second argument to info()".into(),
                ));
            }
        }
        // Prometheus' effective name matchers: the given ones if one of them is positive,
        // otherwise any `*_info` metric but those excluded, or `target_info` by default.
        let positive = names
            .iter()
            .any(|m| matches!(m.op, PMatchOp::Equal | PMatchOp::Re(_)));
        let default = |q: &str| -> Result<promql_parser::label::Matcher, QueryError> {
            match promql_parser::parser::parse(q) {
                Ok(Expr::VectorSelector(vs)) => vs
                    .matchers
                    .matchers
                    .into_iter()
                    .find(|m| m.name == METRIC_NAME)
                    .ok_or_else(|| QueryError::Internal(format!("no name matcher in {q}"))),
                _ => Err(QueryError::Internal(format!("cannot parse {q}"))),
            }
        };
        let effective = if positive {
            names
        } else if !names.is_empty() {
            let mut all = vec![default(r#"{__name__=~".+_info"}"#)?];
            all.extend(names);
            all
        } else {
            vec![default(r#"{__name__="target_info"}"#)?]
        };
        let Lowered::Vector(base) = self.lower(base_expr)? else {
            return Err(QueryError::BadData(
                "expected an instant vector argument to info()".into(),
            ));
        };
        let (at, offset) = first_selector_time(base_expr, &mut Vec::new());
        time_in_bounds("offset", offset.into())?;
        let at = at.and_then(|a| self.at_ms(&Some(a)));
        let mut matchers = data.clone();
        matchers.extend(effective.iter().cloned());
        let info_vs = VectorSelector {
            name: None,
            matchers: promql_parser::label::Matchers::new(matchers),
            offset: None,
            at: None,
        };
        let infos = self.sample_times(&info_vs, offset, at)?;
        Ok(PromNode::plan_binary(
            PromOp::Info {
                name_matchers: effective.iter().map(matcher_spec).collect(),
                data_matchers: data.iter().map(matcher_spec).collect(),
            },
            base,
            infos,
        ))
    }

    /// True when the range argument (a range selector or subquery) has `@`.
    fn has_at(&self, arg: &Expr) -> bool {
        match arg {
            Expr::Paren(p) => self.has_at(&p.expr),
            Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
            Expr::Subquery(sq) => sq.at.is_some(),
            _ => false,
        }
    }

    /// A range function whose parameter is a scalar evaluated per step: every step reads
    /// its own window (or, under `@`, the window at the `@` time) with that step's parameter.
    fn range_function_per_step(
        &self,
        func: RangeFunc,
        arg: &Expr,
        param: LogicalPlan,
        pos: Option<QueryPos>,
    ) -> Result<LogicalPlan, QueryError> {
        let mut inner = arg;
        while let Expr::Paren(p) = inner {
            inner = &p.expr;
        }
        let at = match inner {
            Expr::MatrixSelector(ms) => self.at_ms(&ms.vs.at),
            Expr::Subquery(sq) => self.at_ms(&sq.at),
            _ => None,
        };
        let read_steps = at.map_or(self.steps, Steps::instant);
        let (input, range, offset) = self.range_input(arg, read_steps, func.name())?;
        Ok(PromNode::plan_binary(
            PromOp::RangeFunctionPerStep {
                func,
                steps: self.steps,
                range,
                offset,
                at,
                pos,
            },
            input,
            param,
        ))
    }

    fn aggregate(&self, agg: &AggregateExpr) -> Result<LogicalPlan, QueryError> {
        let name = agg.op.to_string();
        let param = || -> Result<f64, QueryError> {
            match agg.param.as_deref() {
                Some(p) => self.constant_arg(&name, p),
                None => Err(QueryError::BadData(format!("{name} needs a parameter"))),
            }
        };
        if name == "count_values" {
            return self.count_values(agg);
        }
        // A parameter that is not a constant (`topk(scalar(x), v)`) is evaluated per step.
        let per_step = match (name.as_str(), agg.param.as_deref()) {
            ("topk" | "bottomk" | "limitk" | "limit_ratio" | "quantile", Some(p)) => {
                match self.lower(p)? {
                    Lowered::ScalarPlan(plan) => Some(plan),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(param_plan) = per_step {
            return self.aggregate_per_step(agg, &name, param_plan);
        }
        let op = self.aggregate_op(&name, param)?;
        let grouping = Self::grouping(agg);
        let input = match self.lower(&agg.expr)? {
            Lowered::Vector(p) => p,
            _ => {
                return Err(QueryError::BadData(format!(
                    "expected an instant vector in aggregation {name}"
                )));
            }
        };
        Ok(PromNode::plan(
            PromOp::Aggregate {
                op,
                grouping,
                pos: self.positions.aggregate(agg),
            },
            Some(input),
        ))
    }

    /// `by (...)` or `without (...)` (none: `by ()`).
    fn grouping(agg: &AggregateExpr) -> Grouping {
        match &agg.modifier {
            None => Grouping::By(Vec::new()),
            Some(LabelModifier::Include(l)) => Grouping::By(l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => Grouping::Without(l.labels.clone()),
        }
    }

    /// `count_values(label, v)`.
    fn count_values(&self, agg: &AggregateExpr) -> Result<LogicalPlan, QueryError> {
        let Some(p) = agg.param.as_deref() else {
            return Err(QueryError::BadData(
                "count_values needs a label name".into(),
            ));
        };
        let label = Self::string_arg("count_values", p)?;
        if let Some(quoted) = self.positions.non_utf8_string(&label) {
            return Err(QueryError::Execution(format!(
                "invalid label name {quoted}"
            )));
        }
        if !valid_count_values_label(&label) {
            return Err(QueryError::Execution(format!(
                "invalid label name {label:?}"
            )));
        }
        let grouping = Self::grouping(agg);
        let Lowered::Vector(input) = self.lower(&agg.expr)? else {
            return Err(QueryError::BadData(
                "expected an instant vector in aggregation count_values".into(),
            ));
        };
        Ok(PromNode::plan(
            PromOp::CountValues { label, grouping },
            Some(input),
        ))
    }

    /// An aggregation whose parameter is evaluated per step (`topk(scalar(x), v)`).
    fn aggregate_per_step(
        &self,
        agg: &AggregateExpr,
        name: &str,
        param_plan: LogicalPlan,
    ) -> Result<LogicalPlan, QueryError> {
        let op = match name {
            "topk" => AggOp::Topk(0),
            "bottomk" => AggOp::Bottomk(0),
            "limitk" => AggOp::Limitk(0),
            "limit_ratio" => AggOp::LimitRatio(0),
            _ => AggOp::Quantile(0),
        };
        let grouping = Self::grouping(agg);
        let Lowered::Vector(input) = self.lower(&agg.expr)? else {
            return Err(QueryError::BadData(format!(
                "expected an instant vector in aggregation {name}"
            )));
        };
        Ok(PromNode::plan_binary(
            PromOp::AggregatePerStep {
                op,
                grouping,
                pos: self.positions.aggregate(agg),
            },
            input,
            param_plan,
        ))
    }

    /// The aggregation operator of `name`, its parameter (`param`) a constant.
    fn aggregate_op(
        &self,
        name: &str,
        param: impl Fn() -> Result<f64, QueryError>,
    ) -> Result<AggOp, QueryError> {
        Ok(match name {
            "sum" => AggOp::Sum,
            "avg" => AggOp::Avg,
            "min" => AggOp::Min,
            "max" => AggOp::Max,
            "count" => AggOp::Count,
            "group" => AggOp::Group,
            "stddev" => AggOp::Stddev,
            "stdvar" => AggOp::Stdvar,
            "quantile" => AggOp::Quantile(param()?.to_bits()),
            "topk" | "bottomk" | "limitk" => {
                let k = param()?;
                if k.is_nan() {
                    return Err(QueryError::Execution("Parameter value is NaN".into()));
                }
                // Prometheus converts with int64(k), saturating at the int64 range.
                let k = k.clamp(i64::MIN as f64, i64::MAX as f64) as i64;
                match name {
                    "topk" => AggOp::Topk(k),
                    "bottomk" => AggOp::Bottomk(k),
                    _ => AggOp::Limitk(k),
                }
            }
            "limit_ratio" => {
                let r = param()?;
                if r.is_nan() {
                    return Err(QueryError::Execution("Ratio value is NaN".into()));
                }
                AggOp::LimitRatio(r.to_bits())
            }
            _ => return Err(unsupported(format!("aggregation {name}"))),
        })
    }

    fn binary(&self, b: &BinaryExpr) -> Result<Lowered, QueryError> {
        let mut token = b.op.to_string();
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        // `</` and `>/` were parsed as `<` and `>`.
        if self.positions.is_trim(b).map_err(unsupported)? {
            token = format!("{token}/");
            if return_bool {
                return Err(QueryError::BadData(
                    "bool modifier can only be used on comparison operators".into(),
                ));
            }
        }
        let operands = if token.ends_with('/') {
            // Trimming needs the buckets.
            Lowering {
                histogram_stats: false,
                ..*self
            }
        } else {
            *self
        };
        let lhs = operands.lower(&b.lhs)?;
        let rhs = operands.lower(&b.rhs)?;
        let pos = self.positions.binary(b);
        let (lhs, rhs) = match (lhs, rhs) {
            (Lowered::Vector(l), Lowered::Vector(r)) => (l, r),
            other => return self.scalar_operands(&token, return_bool, other, pos),
        };
        let op = match token.as_str() {
            "and" => VectorOp::And,
            "or" => VectorOp::Or,
            "unless" => VectorOp::Unless,
            _ => VectorOp::Binary(BinOp::parse(&token).ok_or_else(|| {
                unsupported(format!(
                    "binary operator {token} between two instant vectors"
                ))
            })?),
        };
        let matching = vector_matching(b.modifier.as_ref(), op.is_set_operator());
        Ok(Lowered::Vector(PromNode::plan_binary(
            PromOp::VectorBinary {
                op,
                matching,
                return_bool,
                pos,
            },
            lhs,
            rhs,
        )))
    }

    /// A binary operation with at least one scalar operand; `pos` is where it is.
    fn scalar_operands(
        &self,
        token: &str,
        return_bool: bool,
        operands: (Lowered, Lowered),
        pos: Option<QueryPos>,
    ) -> Result<Lowered, QueryError> {
        let Some(op) = BinOp::parse(token) else {
            return Err(QueryError::BadData(format!(
                "set operator {token} not allowed in binary scalar expression"
            )));
        };
        match operands {
            // Trims apply to histograms: between two scalars they are an error.
            (
                Lowered::Scalar(_) | Lowered::ScalarPlan(_),
                Lowered::Scalar(_) | Lowered::ScalarPlan(_),
            ) if op.is_trim() => Err(QueryError::BadData(format!(
                "operator {token} not allowed for scalar operations"
            ))),
            (Lowered::Scalar(l), Lowered::Scalar(r)) => {
                let (v, keep) = op.apply(l, r);
                Ok(Lowered::Scalar(if op.is_comparison() {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    v
                }))
            }
            (Lowered::Vector(p), Lowered::Scalar(s)) => Ok(Lowered::Vector(scalar_binary(
                p,
                op,
                s,
                false,
                return_bool,
                pos,
            ))),
            (Lowered::Scalar(s), Lowered::Vector(p)) => Ok(Lowered::Vector(scalar_binary(
                p,
                op,
                s,
                true,
                return_bool,
                pos,
            ))),
            // Per-step scalars: comparisons between scalars always return 0 or 1.
            (Lowered::ScalarPlan(p), Lowered::Scalar(s)) => Ok(Lowered::ScalarPlan(scalar_binary(
                p, op, s, false, true, pos,
            ))),
            (Lowered::Scalar(s), Lowered::ScalarPlan(p)) => Ok(Lowered::ScalarPlan(scalar_binary(
                p, op, s, true, true, pos,
            ))),
            // Between two per-step scalars `bool` only applies to comparisons (arithmetic
            // keeps its value).
            (Lowered::ScalarPlan(l), Lowered::ScalarPlan(r)) => Ok(Lowered::ScalarPlan(
                scalar_plan_binary(op, op.is_comparison(), Cardinality::OneToOne, l, r, pos),
            )),
            // A vector and a per-step scalar: the scalar (one label-less series) matches
            // every sample of its step, as `on() group_left` / `group_right` would.
            (Lowered::Vector(v), Lowered::ScalarPlan(s)) => Ok(Lowered::Vector(
                scalar_plan_binary(op, return_bool, Cardinality::ManyToOne, v, s, pos),
            )),
            (Lowered::ScalarPlan(s), Lowered::Vector(v)) => Ok(Lowered::Vector(
                scalar_plan_binary(op, return_bool, Cardinality::OneToMany, s, v, pos),
            )),
            _ => Err(QueryError::BadData(format!(
                "binary operator {token} needs scalar or instant vector operands"
            ))),
        }
    }
}

/// A promql-parser label matcher as plain data.
fn matcher_spec(m: &promql_parser::label::Matcher) -> MatcherSpec {
    MatcherSpec {
        name: m.name.clone(),
        op: match m.op {
            PMatchOp::Equal => "=",
            PMatchOp::NotEqual => "!=",
            PMatchOp::Re(_) => "=~",
            PMatchOp::NotRe(_) => "!~",
        },
        value: m.value.clone(),
    }
}

/// The `@` and offset of the first vector selector of `expr` (depth first), as Prometheus'
/// `info()` reads its info series: without an `@` of its own, the selector takes that of
/// the innermost enclosing subquery that has one, adding the offsets on the way.
fn first_selector_time<'e>(
    expr: &'e Expr,
    subqueries: &mut Vec<&'e SubqueryExpr>,
) -> (Option<AtModifier>, i64) {
    let found = |vs: &VectorSelector, subqueries: &[&SubqueryExpr]| {
        let mut at = vs.at.clone();
        let mut offset = Lowering::offset_of(&vs.offset);
        for sq in subqueries.iter().rev() {
            if at.is_some() {
                break;
            }
            offset = offset.saturating_add(Lowering::offset_of(&sq.offset));
            at = sq.at.clone();
        }
        (at, offset)
    };
    let children: Vec<&Expr> = match expr {
        Expr::VectorSelector(vs) => return found(vs, subqueries),
        Expr::MatrixSelector(ms) => return found(&ms.vs, subqueries),
        Expr::Subquery(sq) => {
            subqueries.push(sq);
            let r = first_selector_time(&sq.expr, subqueries);
            subqueries.pop();
            return r;
        }
        Expr::Paren(p) => vec![&p.expr],
        Expr::Unary(u) => vec![&u.expr],
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Aggregate(a) => {
            let mut c = vec![a.expr.as_ref()];
            c.extend(a.param.as_deref());
            c
        }
        Expr::Call(c) => c.args.args.iter().map(|a| a.as_ref()).collect(),
        _ => Vec::new(),
    };
    match children.into_iter().find(|c| contains_selector(c)) {
        Some(c) => first_selector_time(c, subqueries),
        None => (None, 0),
    }
}

fn contains_selector(expr: &Expr) -> bool {
    match expr {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => true,
        Expr::Subquery(sq) => contains_selector(&sq.expr),
        Expr::Paren(p) => contains_selector(&p.expr),
        Expr::Unary(u) => contains_selector(&u.expr),
        Expr::Binary(b) => contains_selector(&b.lhs) || contains_selector(&b.rhs),
        Expr::Aggregate(a) => {
            contains_selector(&a.expr) || a.param.as_deref().is_some_and(contains_selector)
        }
        Expr::Call(c) => c.args.args.iter().any(|a| contains_selector(a)),
        _ => false,
    }
}

/// The matching of a vector-to-vector operation from its modifier (none: one-to-one, or
/// many-to-many for set operators, on all labels).
fn vector_matching(modifier: Option<&BinModifier>, set_op: bool) -> VectorMatching {
    let default_card = if set_op {
        Cardinality::ManyToMany
    } else {
        Cardinality::OneToOne
    };
    let Some(m) = modifier else {
        return VectorMatching::new(default_card);
    };
    let (card, include) = match &m.card {
        VectorMatchCardinality::OneToOne => (default_card, Vec::new()),
        VectorMatchCardinality::ManyToMany => (Cardinality::ManyToMany, Vec::new()),
        VectorMatchCardinality::ManyToOne(l) => (Cardinality::ManyToOne, l.labels.clone()),
        VectorMatchCardinality::OneToMany(l) => (Cardinality::OneToMany, l.labels.clone()),
    };
    let (on, labels) = match &m.matching {
        None => (false, Vec::new()),
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
    };
    VectorMatching {
        card,
        on,
        labels,
        include,
        fill_lhs_bits: m.fill_values.lhs.map(f64::to_bits),
        fill_rhs_bits: m.fill_values.rhs.map(f64::to_bits),
    }
}

/// A binary operation where one or both sides are per-step scalars; `pos`: where it is.
fn scalar_plan_binary(
    op: BinOp,
    return_bool: bool,
    card: Cardinality,
    lhs: LogicalPlan,
    rhs: LogicalPlan,
    pos: Option<QueryPos>,
) -> LogicalPlan {
    let mut matching = VectorMatching::new(card);
    matching.on = true;
    PromNode::plan_binary(
        PromOp::VectorBinary {
            op: VectorOp::Binary(op),
            matching,
            return_bool,
            pos,
        },
        lhs,
        rhs,
    )
}

/// A vector (or per-step scalar) and a constant; `pos`: where the operation is.
fn scalar_binary(
    plan: LogicalPlan,
    op: BinOp,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
    pos: Option<QueryPos>,
) -> LogicalPlan {
    PromNode::plan(
        PromOp::ScalarBinary {
            op,
            scalar_bits: scalar.to_bits(),
            scalar_on_left,
            return_bool,
            pos,
        },
        Some(plan),
    )
}
