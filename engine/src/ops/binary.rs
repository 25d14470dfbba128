//! Binary operations between two instant vectors: arithmetic and comparisons with one-to-one,
//! many-to-one and one-to-many matching, and the set operators `and`, `or`, `unless`
//! (many-to-many), with Prometheus' cardinality checks and error wording
//! (`VectorBinop`, `VectorAnd`, `VectorOr`, `VectorUnless` in Prometheus' promql/engine.go).
//!
//! Native histograms take part as Prometheus' `vectorElemBinop` says: histograms add to and
//! subtract from histograms, multiply with floats on either side and divide by floats, and
//! compare with `==` and `!=`; any other combination drops the element with an info (a
//! warning for histograms with incompatible bucket layouts). Set operators pass histograms
//! through untouched.
//!
//! Matching is done independently at every evaluation timestamp. Each input series' matching
//! signature is computed once; each step then only looks up signature ordinals.
//!
//! Every stored series carries the tenant label, and every series of a query belongs to the
//! same tenant. So that the label never changes a match outcome (some operands, such as
//! aggregations, have lost it), it takes no part in matching signatures and is left out of
//! the label sets quoted in error messages.

use std::collections::{HashMap, HashSet};

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use hypnos_schemas::Labels;
use hypnos_schemas::histogram::{FloatHistogram, HistogramError, ResetHint};
use hypnos_schemas::tenant::TENANT_LABEL;

use super::annotations::{self, AnnotationKind, Annotations, QueryPos};
use super::{BinOp, Cardinality, EvalError, VectorMatching, VectorOp, without_metadata_labels};
use crate::vector::{VectorBuilder, series_rows};

fn eval_error(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(EvalError(msg.into())))
}

/// A label set as shown in an error message: without the tenant label.
fn shown(l: &Labels) -> String {
    let mut l = l.clone();
    l.set(TENANT_LABEL, "");
    l.to_string()
}

/// A sample's value: a float, or a native histogram (its index in the side's
/// `histograms`, kept encoded until an operation needs it).
#[derive(Clone, Copy, Debug)]
enum Val {
    F(f64),
    H(u32),
}

/// One side's sample: (timestamp, series, value).
type Point = (i64, usize, Val);

/// The series of one side: distinct label sets (sorted), their signature ordinals, every
/// sample sorted by time, then series, and the encoded histograms the samples refer to.
struct Side {
    labels: Vec<Labels>,
    sig: Vec<usize>,
    points: Vec<Point>,
    histograms: Vec<Vec<u8>>,
}

impl Side {
    fn collect(
        batches: &[RecordBatch],
        matching: &VectorMatching,
        keep_tenant: bool,
        sigs: &mut HashMap<Vec<u8>, usize>,
    ) -> Result<Side> {
        let mut by_labels: HashMap<Labels, Vec<(i64, Val)>> = HashMap::new();
        let mut histograms = Vec::new();
        for batch in batches {
            for s in series_rows(batch)? {
                let pts = (0..s.ts.len()).map(|i| {
                    let val = match s.histogram_bytes(i) {
                        Some(h) => {
                            histograms.push(h.to_vec());
                            Val::H((histograms.len() - 1) as u32)
                        }
                        None => Val::F(s.values[i]),
                    };
                    (s.ts[i], val)
                });
                let pts: Vec<(i64, Val)> = pts.collect();
                by_labels.entry(s.labels).or_default().extend(pts);
            }
        }
        let mut series: Vec<(Labels, Vec<(i64, Val)>)> = by_labels.into_iter().collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut side = Side {
            labels: Vec::with_capacity(series.len()),
            sig: Vec::with_capacity(series.len()),
            points: Vec::new(),
            histograms,
        };
        for (i, (labels, pts)) in series.into_iter().enumerate() {
            let next = sigs.len();
            side.sig.push(
                *sigs
                    .entry(matching.signature(&labels, keep_tenant))
                    .or_insert(next),
            );
            side.labels.push(labels);
            side.points.extend(pts.into_iter().map(|(t, v)| (t, i, v)));
        }
        side.points.sort_by_key(|p| (p.0, p.1));
        if side
            .points
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
        {
            return Err(eval_error(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        Ok(side)
    }
}

/// A reference to a label set: series `idx` of side `side` (0: left, 1: right), or, when
/// `fill`, the match labels of that series (the labels of a fill value standing in for a
/// missing match on the other side).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct LabelRef {
    side: u8,
    idx: usize,
    fill: bool,
}

/// One sample of a step: its label set and value, and its signature ordinal.
#[derive(Clone, Copy)]
struct Sample {
    labels: LabelRef,
    v: Val,
    sig: usize,
}

/// An output value: a float or an encoded histogram.
#[derive(Clone, Debug)]
enum OutVal {
    F(f64),
    H(Vec<u8>),
}

/// The output series, keyed by label set, with their points in time order.
#[derive(Default)]
struct Output {
    ids: HashMap<Labels, usize>,
    series: Vec<(Labels, Vec<(i64, OutVal)>)>,
}

impl Output {
    fn id(&mut self, labels: Labels) -> usize {
        if let Some(id) = self.ids.get(&labels) {
            return *id;
        }
        let id = self.series.len();
        self.ids.insert(labels.clone(), id);
        self.series.push((labels, Vec::new()));
        id
    }

    fn push(&mut self, id: usize, t: i64, v: OutVal) -> Result<()> {
        let pts = &mut self.series[id].1;
        if pts.last().is_some_and(|p| p.0 == t) {
            return Err(eval_error(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        pts.push((t, v));
        Ok(())
    }

    fn finish(mut self) -> RecordBatch {
        self.series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = VectorBuilder::new();
        for (labels, pts) in self.series {
            out.start_series(&labels);
            for (t, v) in pts {
                match v {
                    OutVal::F(v) => out.push(t, v),
                    OutVal::H(h) => out.push_histogram_bytes(t, h),
                }
            }
        }
        out.finish()
    }
}

/// Marks per signature ordinal, valid for one step (a step number stamps each mark, so
/// nothing has to be cleared between steps).
struct Marks {
    stamp: Vec<u64>,
    sample: Vec<Option<Sample>>,
}

impl Marks {
    fn new(n: usize) -> Self {
        Self {
            stamp: vec![0; n],
            sample: vec![None; n],
        }
    }

    fn is_set(&self, sig: usize, step: u64) -> bool {
        self.stamp[sig] == step
    }

    fn set(&mut self, sig: usize, step: u64, s: Option<Sample>) {
        self.stamp[sig] = step;
        self.sample[sig] = s;
    }
}

/// The evaluation of one operation over all steps.
struct Eval<'a> {
    op: VectorOp,
    matching: &'a VectorMatching,
    return_bool: bool,
    sides: [Side; 2],
    out: Output,
    /// Output series id per (left label set, right label set) of a binary operation.
    result_ids: HashMap<(LabelRef, LabelRef), usize>,
    /// Output series id per input series of a set operation.
    set_ids: [Vec<Option<usize>>; 2],
    /// Signatures present on one side (set operators) or the "one" side (binary).
    present: Marks,
    /// Signatures matched so far in this step (one-to-one: at most once).
    matched: Marks,
    /// (signature, output series) pairs produced in this step (many-to-one).
    matched_groups: HashSet<(usize, usize)>,
    /// The annotation of the step's last element that had one: Prometheus reports only
    /// that one per step.
    step_note: Option<(AnnotationKind, String)>,
    notes: &'a Annotations,
    pos: Option<QueryPos>,
}

/// The outcome of an operator on one pair of samples (Prometheus' `vectorElemBinop`).
enum Elem {
    /// A value, whether a comparison holds (always true for arithmetic), and an info to
    /// report.
    Value {
        value: OutVal,
        keep: bool,
        note: Option<String>,
    },
    /// No result: the element is dropped with this annotation.
    Dropped(AnnotationKind, String),
}

fn decode(bytes: &[u8]) -> Result<FloatHistogram> {
    FloatHistogram::decode(bytes).map_err(|e| DataFusionError::Internal(e.to_string()))
}

fn incompatible(lhs: &str, op: BinOp, rhs: &str) -> Elem {
    Elem::Dropped(
        AnnotationKind::Info,
        annotations::incompatible_types_in_binop(lhs, op.token(), rhs),
    )
}

/// `op` between a float `f` and a histogram `h` (`h_left`: the histogram is the left
/// operand): `*` on either side, and `/`, `</` and `>/` by a float give a histogram.
fn float_histogram_elem(op: BinOp, f: f64, h: &[u8], h_left: bool) -> Result<Elem> {
    let apply = |op: BinOp| -> Result<Elem> {
        let mut h = decode(h)?;
        match op {
            BinOp::Div => h.div(f),
            BinOp::TrimUpper => h.trim_buckets(f, true),
            BinOp::TrimLower => h.trim_buckets(f, false),
            _ => h.mul(f),
        }
        if !op.is_trim() {
            // A trim compacts only what it changed, as in Prometheus.
            h.compact(0);
        }
        Ok(Elem::Value {
            value: OutVal::H(h.encode()),
            keep: true,
            note: None,
        })
    };
    match (op, h_left) {
        (BinOp::Mul, _) | (BinOp::Div | BinOp::TrimUpper | BinOp::TrimLower, true) => apply(op),
        (_, true) => Ok(incompatible("histogram", op, "float")),
        (_, false) => Ok(incompatible("float", op, "histogram")),
    }
}

/// `op` between two histograms: `+` and `-` combine them, `==` and `!=` compare them
/// (keeping the left one), anything else is incompatible.
fn histograms_elem(op: BinOp, l: &[u8], r: &[u8]) -> Result<Elem> {
    match op {
        BinOp::Add | BinOp::Sub => {
            let (mut a, b) = (decode(l)?, decode(r)?);
            let (combined, operation) = if op == BinOp::Add {
                (a.add(&b), "addition")
            } else {
                (a.sub(&b), "subtraction")
            };
            let outcome = match combined {
                Ok(o) => o,
                Err(HistogramError::MixedExponentialCustom) => {
                    return Ok(Elem::Dropped(
                        AnnotationKind::Warning,
                        annotations::incompatible_bucket_layout_in_binop(op.token()),
                    ));
                }
                Err(e @ HistogramError::Invalid(_)) => {
                    return Err(DataFusionError::Internal(e.to_string()));
                }
            };
            // As Prometheus, a counter reset collision drops the element with a warning.
            if outcome.counter_reset_collision {
                return Ok(Elem::Dropped(
                    AnnotationKind::Warning,
                    annotations::histogram_counter_reset_collision(operation),
                ));
            }
            if op == BinOp::Sub {
                // A difference is no counter.
                a.counter_reset_hint = ResetHint::Gauge;
            }
            a.compact(0);
            Ok(Elem::Value {
                value: OutVal::H(a.encode()),
                keep: true,
                note: outcome
                    .nhcb_bounds_reconciled
                    .then(|| annotations::mismatched_custom_buckets(operation)),
            })
        }
        BinOp::Eq | BinOp::Ne => {
            let equal = decode(l)?.equals(&decode(r)?);
            Ok(Elem::Value {
                value: OutVal::H(l.to_vec()),
                keep: equal == (op == BinOp::Eq),
                note: None,
            })
        }
        _ => Ok(incompatible("histogram", op, "histogram")),
    }
}

impl Eval<'_> {
    /// The output value of side `side`'s sample value `v`.
    fn out_val(&self, side: usize, v: Val) -> OutVal {
        match v {
            Val::F(f) => OutVal::F(f),
            Val::H(i) => OutVal::H(self.sides[side].histograms[i as usize].clone()),
        }
    }

    /// The histogram bytes of a sample, if it is a histogram.
    fn hist(&self, s: &Sample) -> Option<&[u8]> {
        match s.v {
            Val::H(i) => Some(&self.sides[s.labels.side as usize].histograms[i as usize]),
            Val::F(_) => None,
        }
    }

    /// `op` applied to a left and a right sample.
    fn elem(&self, op: BinOp, l: &Sample, r: &Sample) -> Result<Elem> {
        Ok(match (l.v, r.v) {
            (Val::F(_), Val::F(_)) if op.is_trim() => incompatible("float", op, "float"),
            (Val::F(a), Val::F(b)) => {
                let (value, keep) = op.apply(a, b);
                Elem::Value {
                    value: OutVal::F(value),
                    keep,
                    note: None,
                }
            }
            (Val::F(f), Val::H(_)) => {
                float_histogram_elem(op, f, self.hist(r).expect("a histogram"), false)?
            }
            (Val::H(_), Val::F(f)) => {
                float_histogram_elem(op, f, self.hist(l).expect("a histogram"), true)?
            }
            (Val::H(_), Val::H(_)) => histograms_elem(
                op,
                self.hist(l).expect("a histogram"),
                self.hist(r).expect("a histogram"),
            )?,
        })
    }

    /// The labels of `r`; a fill value's labels keep its source's tenant label.
    fn labels(&self, r: LabelRef) -> Labels {
        let l = &self.sides[r.side as usize].labels[r.idx];
        if r.fill {
            let mut m = self.matching.match_labels(l);
            m.set(TENANT_LABEL, l.get(TENANT_LABEL));
            m
        } else {
            l.clone()
        }
    }

    fn set_output(&mut self, side: usize, idx: usize) -> usize {
        if let Some(id) = self.set_ids[side][idx] {
            return id;
        }
        let id = self.out.id(self.sides[side].labels[idx].clone());
        self.set_ids[side][idx] = Some(id);
        id
    }

    fn samples(&self, side: usize, points: &[Point]) -> Vec<Sample> {
        points
            .iter()
            .map(|(_, idx, v)| Sample {
                labels: LabelRef {
                    side: side as u8,
                    idx: *idx,
                    fill: false,
                },
                v: *v,
                sig: self.sides[side].sig[*idx],
            })
            .collect()
    }

    /// Prometheus' `resultMetric`: the labels of the "many" (or left) side, without the name
    /// for arithmetic and `bool`, reduced to the `on` labels (or without the ignored ones)
    /// for one-to-one matching, with the `group_x` labels copied from the "one" side.
    ///
    /// These rules apply to the labels without the tenant label; the result then carries the
    /// tenant label of the "many" side, or else of the "one" side, so that results that
    /// Prometheus would merge into one series are one series here too.
    fn result_id(&mut self, many: LabelRef, one: LabelRef) -> usize {
        if let Some(id) = self.result_ids.get(&(many, one)) {
            return *id;
        }
        let m = self.matching;
        let mut labels = self.labels(many);
        let one_labels = self.labels(one);
        let tenant = match labels.get(TENANT_LABEL) {
            "" => one_labels.get(TENANT_LABEL).to_string(),
            t => t.to_string(),
        };
        labels.set(TENANT_LABEL, "");
        let drop_name =
            self.return_bool || matches!(self.op, VectorOp::Binary(op) if op.changes_metric());
        if drop_name {
            labels = without_metadata_labels(&labels);
        }
        if m.card == Cardinality::OneToOne {
            labels = if m.on {
                labels.keep(&m.labels)
            } else {
                Labels::from_sorted(
                    labels
                        .iter()
                        .filter(|l| !m.labels.contains(&l.name))
                        .cloned()
                        .collect(),
                )
            };
        }
        for name in &m.include {
            if name != TENANT_LABEL {
                labels.set(name, one_labels.get(name));
            }
        }
        labels.set(TENANT_LABEL, &tenant);
        let id = self.out.id(labels);
        self.result_ids.insert((many, one), id);
        id
    }

    fn step(&mut self, step: u64, t: i64, lhs: &[Point], rhs: &[Point]) -> Result<()> {
        match self.op {
            VectorOp::And => {
                if lhs.is_empty() || rhs.is_empty() {
                    return Ok(());
                }
                for (_, idx, _) in rhs {
                    self.present.set(self.sides[1].sig[*idx], step, None);
                }
                for (_, idx, v) in lhs {
                    if self.present.is_set(self.sides[0].sig[*idx], step) {
                        let id = self.set_output(0, *idx);
                        let v = self.out_val(0, *v);
                        self.out.push(id, t, v)?;
                    }
                }
            }
            VectorOp::Or => {
                for (_, idx, v) in lhs {
                    self.present.set(self.sides[0].sig[*idx], step, None);
                    let id = self.set_output(0, *idx);
                    let v = self.out_val(0, *v);
                    self.out.push(id, t, v)?;
                }
                for (_, idx, v) in rhs {
                    if !self.present.is_set(self.sides[1].sig[*idx], step) {
                        let id = self.set_output(1, *idx);
                        let v = self.out_val(1, *v);
                        self.out.push(id, t, v)?;
                    }
                }
            }
            VectorOp::Unless => {
                for (_, idx, _) in rhs {
                    self.present.set(self.sides[1].sig[*idx], step, None);
                }
                for (_, idx, v) in lhs {
                    if !self.present.is_set(self.sides[0].sig[*idx], step) {
                        let id = self.set_output(0, *idx);
                        let v = self.out_val(0, *v);
                        self.out.push(id, t, v)?;
                    }
                }
            }
            VectorOp::Binary(op) => {
                self.step_note = None;
                self.binary_step(op, step, t, lhs, rhs)?;
                if let Some((kind, msg)) = self.step_note.take() {
                    self.notes.add(kind, &msg, self.pos);
                }
            }
        }
        Ok(())
    }

    fn binary_step(
        &mut self,
        op: BinOp,
        step: u64,
        t: i64,
        lhs: &[Point],
        rhs: &[Point],
    ) -> Result<()> {
        let m = self.matching;
        let (fill_lhs, fill_rhs) = (m.fill_lhs(), m.fill_rhs());
        if (lhs.is_empty() && rhs.is_empty())
            || ((lhs.is_empty() || rhs.is_empty()) && fill_lhs.is_none() && fill_rhs.is_none())
        {
            return Ok(());
        }
        // `many` is the left side, `one` the right, except for group_right where they swap
        // (and the operands swap back when the operator is applied).
        let swapped = m.card == Cardinality::OneToMany;
        let (mut many, mut one) = (self.samples(0, lhs), self.samples(1, rhs));
        if swapped {
            std::mem::swap(&mut many, &mut one);
        }
        for rs in &one {
            if self.present.is_set(rs.sig, step) {
                let dup = self.present.sample[rs.sig].expect("a present signature has a sample");
                let (a, b) = (self.labels(rs.labels), self.labels(dup.labels));
                let (mut d1, mut d2) = (shown(&a), shown(&b));
                if d1 > d2 {
                    std::mem::swap(&mut d1, &mut d2);
                }
                let side = if swapped { "left" } else { "right" };
                return Err(eval_error(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{d1}, {d2}];many-to-many matching not allowed: matching labels must be unique on one side",
                    shown(&m.match_labels(&a))
                )));
            }
            self.present.set(rs.sig, step, Some(*rs));
        }
        self.matched_groups.clear();
        for ls in &many {
            let rs = if self.present.is_set(ls.sig, step) {
                self.present.sample[ls.sig].expect("a present signature has a sample")
            } else {
                // Without a match, `fill_right`'s value, even for group_right (as Prometheus).
                let Some(fill) = fill_rhs else { continue };
                Sample {
                    labels: LabelRef {
                        fill: true,
                        ..ls.labels
                    },
                    v: Val::F(fill),
                    sig: ls.sig,
                }
            };
            self.pair(op, step, t, *ls, rs, swapped)?;
        }
        if let Some(fill) = fill_lhs {
            for rs in &one {
                if self.matched.is_set(rs.sig, step) {
                    continue;
                }
                let ls = Sample {
                    labels: LabelRef {
                        fill: true,
                        ..rs.labels
                    },
                    v: Val::F(fill),
                    sig: rs.sig,
                };
                self.pair(op, step, t, ls, *rs, swapped)?;
            }
        }
        Ok(())
    }

    /// Prometheus' `doBinOp` for one pair of samples.
    fn pair(
        &mut self,
        op: BinOp,
        step: u64,
        t: i64,
        ls: Sample,
        rs: Sample,
        swapped: bool,
    ) -> Result<()> {
        let (l, r) = if swapped { (&rs, &ls) } else { (&ls, &rs) };
        let (mut value, keep) = match self.elem(op, l, r)? {
            Elem::Value { value, keep, note } => {
                if let Some(note) = note {
                    self.step_note = Some((AnnotationKind::Info, note));
                }
                (value, keep)
            }
            Elem::Dropped(kind, msg) => {
                // Dropped before any matching check, as in Prometheus.
                self.step_note = Some((kind, msg));
                return Ok(());
            }
        };
        if self.return_bool {
            value = OutVal::F(if keep { 1.0 } else { 0.0 });
        }
        let id = self.result_id(ls.labels, rs.labels);
        if self.matching.card == Cardinality::OneToOne {
            if self.matched.is_set(ls.sig, step) {
                return Err(eval_error(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                ));
            }
        } else if !self.matched_groups.insert((ls.sig, id)) {
            return Err(eval_error(
                "multiple matches for labels: grouping labels must ensure unique matches",
            ));
        }
        self.matched.set(ls.sig, step, None);
        if keep || self.return_bool {
            self.out.push(id, t, value)?;
        }
        Ok(())
    }
}

/// Evaluates `lhs op rhs` between two instant vectors at every timestamp present in either.
/// `return_bool` is the `bool` modifier of comparisons.
pub fn vector_binary(
    lhs: &[RecordBatch],
    rhs: &[RecordBatch],
    op: VectorOp,
    matching: &VectorMatching,
    return_bool: bool,
) -> Result<RecordBatch> {
    vector_binary_annotated(
        lhs,
        rhs,
        op,
        matching,
        return_bool,
        &Annotations::new(),
        None,
    )
}

/// [`vector_binary`] adding its annotations (incompatible sample types, histogram
/// combinations) to `notes`; `pos` is the position of the binary expression.
pub fn vector_binary_annotated(
    lhs: &[RecordBatch],
    rhs: &[RecordBatch],
    op: VectorOp,
    matching: &VectorMatching,
    return_bool: bool,
    notes: &Annotations,
    pos: Option<QueryPos>,
) -> Result<RecordBatch> {
    if op.is_set_operator() != (matching.card == Cardinality::ManyToMany) {
        return Err(DataFusionError::Internal(
            "set operators, and only they, use many-to-many matching".into(),
        ));
    }
    // Series that lost the tenant label (e.g. `sum by (job)`) match on the other labels, as
    // in Prometheus; when every series of both sides still has it, it takes part in
    // matching (unless `on(...)` names the labels), so tenants of a federated query stay
    // apart.
    let all_have_tenant = |batches: &[RecordBatch]| -> Result<bool> {
        for b in batches {
            for s in series_rows(b)? {
                if s.labels.get(TENANT_LABEL).is_empty() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    let keep_tenant = !matching.on && all_have_tenant(lhs)? && all_have_tenant(rhs)?;
    let mut sigs = HashMap::new();
    let left = Side::collect(lhs, matching, keep_tenant, &mut sigs)?;
    let right = Side::collect(rhs, matching, keep_tenant, &mut sigs)?;
    let set_ids = [
        vec![None; left.labels.len()],
        vec![None; right.labels.len()],
    ];
    let mut ev = Eval {
        op,
        matching,
        return_bool,
        sides: [left, right],
        out: Output::default(),
        result_ids: HashMap::new(),
        set_ids,
        present: Marks::new(sigs.len()),
        matched: Marks::new(sigs.len()),
        matched_groups: HashSet::new(),
        step_note: None,
        notes,
        pos,
    };
    let (lp, rp) = (
        std::mem::take(&mut ev.sides[0].points),
        std::mem::take(&mut ev.sides[1].points),
    );
    let (mut i, mut j, mut step) = (0, 0, 0u64);
    while i < lp.len() || j < rp.len() {
        let t = match (lp.get(i), rp.get(j)) {
            (Some(a), Some(b)) => a.0.min(b.0),
            (Some(a), None) => a.0,
            (None, Some(b)) => b.0,
            (None, None) => unreachable!("loop condition"),
        };
        let i_end = i + lp[i..].iter().take_while(|p| p.0 == t).count();
        let j_end = j + rp[j..].iter().take_while(|p| p.0 == t).count();
        step += 1;
        ev.step(step, t, &lp[i..i_end], &rp[j..j_end])?;
        (i, j) = (i_end, j_end);
    }
    Ok(ev.out.finish())
}

/// `vector op scalar` (or `scalar op vector` when `scalar_on_left`), as Prometheus'
/// `VectorscalarBinop`. Comparisons filter, keeping the vector's sample and name, unless
/// `return_bool` (then 1 or 0, name dropped); arithmetic drops the metric name. A histogram
/// sample is multiplied (either side) or divided (on the left); any other operation drops
/// it with an info added to `notes` at `pos`, the binary expression's position.
#[allow(clippy::too_many_arguments)] // the operation, and where to annotate
pub fn scalar_binary_annotated(
    input: &RecordBatch,
    op: BinOp,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
    notes: &Annotations,
    pos: Option<QueryPos>,
) -> Result<RecordBatch> {
    let mut out = VectorBuilder::new();
    let drop_name = op.changes_metric() || return_bool;
    for s in series_rows(input)? {
        if drop_name {
            out.start_series(&super::mark_name_dropped(&s.labels));
        } else {
            out.start_series(&s.labels);
        }
        for (i, (t, v)) in s.ts.iter().zip(s.values).enumerate() {
            if op.is_trim() && !s.is_histogram(i) {
                let msg = annotations::incompatible_types_in_binop("float", op.token(), "float");
                notes.info(&msg, pos);
                continue;
            }
            if let Some(h) = s.histogram_bytes(i) {
                match float_histogram_elem(op, scalar, h, !scalar_on_left)? {
                    Elem::Value {
                        value: OutVal::H(h),
                        ..
                    } => out.push_histogram_bytes(*t, h),
                    Elem::Value {
                        value: OutVal::F(_),
                        ..
                    } => {
                        return Err(DataFusionError::Internal(
                            "a histogram scaled into a float".into(),
                        ));
                    }
                    Elem::Dropped(kind, msg) => notes.add(kind, &msg, pos),
                }
                continue;
            }
            let (l, r) = if scalar_on_left {
                (scalar, *v)
            } else {
                (*v, scalar)
            };
            let (value, keep) = op.apply(l, r);
            if op.is_comparison() {
                // The vector's sample is the value kept, whichever side it is on.
                if return_bool {
                    out.push(*t, if keep { 1.0 } else { 0.0 });
                } else if keep {
                    out.push(*t, *v);
                }
            } else {
                out.push(*t, value);
            }
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests;
