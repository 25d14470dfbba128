use std::collections::BTreeMap;

use arrow::array::Array;
use hypnos_schemas::histogram::{FloatHistogram, ResetHint};
use hypnos_schemas::{MatchOp, STALE_NAN_BITS};
use proptest::prelude::*;

use super::series::{CHUNK_LEN, MemSeries};
use super::*;

fn labels(name: &str, job: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("job", job)])
}

fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
    points
        .iter()
        .map(|&(timestamp, value)| Sample { value, timestamp })
        .collect()
}

fn all() -> TimeRange {
    TimeRange::new(i64::MIN, i64::MAX)
}

fn read_bits(s: &MemSeries, r: TimeRange) -> Vec<(i64, u64)> {
    match s.read(r) {
        None => Vec::new(),
        Some((ts, vs, hist)) => {
            assert!(
                hist.is_none(),
                "a float series reads without a histogram column"
            );
            ts.values()
                .iter()
                .zip(vs.values().iter())
                .map(|(t, v)| (*t, v.to_bits()))
                .collect()
        }
    }
}

#[test]
fn in_order_appends_seal_chunks_of_120() {
    let mut s = MemSeries::new(labels("up", "a"));
    for t in 0..(2 * CHUNK_LEN as i64 + 10) {
        assert!(s.append(t * 10, t as f64));
    }
    assert_eq!(s.num_chunks(), 2);
    assert_eq!(s.num_samples(), 2 * CHUNK_LEN + 10);
    assert_eq!(s.num_out_of_order(), 0);
    // A range crossing both chunk boundaries, ends included.
    let got = read_bits(&s, TimeRange::new(1190, 2410));
    assert_eq!(got.first().unwrap().0, 1190);
    assert_eq!(got.last().unwrap().0, 2410);
    assert_eq!(got.len(), 123);
    assert!(got.windows(2).all(|w| w[0].0 + 10 == w[1].0));
    assert!(read_bits(&s, TimeRange::new(5, 9)).is_empty());
    assert!(s.read(TimeRange::new(100_000, 200_000)).is_none());
}

#[test]
fn duplicates_are_dropped_first_write_wins() {
    let mut s = MemSeries::new(labels("up", "a"));
    for t in 0..300 {
        s.append(t, 1.0);
    }
    // Equal to the last, to one in a sealed chunk, to one in the open buffer.
    assert!(!s.append(299, 2.0));
    assert!(!s.append(5, 2.0));
    assert!(!s.append(250, 2.0));
    assert_eq!(s.num_samples(), 300);
    assert!(
        read_bits(&s, all())
            .iter()
            .all(|(_, v)| *v == 1f64.to_bits())
    );
}

#[test]
fn out_of_order_samples_merge_sorted_and_dedupe() {
    let mut s = MemSeries::new(labels("up", "a"));
    for t in [10, 20, 30] {
        assert!(s.append(t, t as f64));
    }
    assert!(s.append(15, 15.0));
    assert!(s.append(5, 5.0));
    assert!(!s.append(15, 99.0));
    assert!(!s.append(20, 99.0));
    assert_eq!(s.num_out_of_order(), 2);
    let got: Vec<i64> = read_bits(&s, all()).into_iter().map(|x| x.0).collect();
    assert_eq!(got, vec![5, 10, 15, 20, 30]);
    let got: Vec<i64> = read_bits(&s, TimeRange::new(6, 15))
        .into_iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(got, vec![10, 15]);
    assert_eq!(s.time_bounds(), Some((5, 30)));
    assert!(s.has_samples_in(TimeRange::new(4, 5)));
    assert!(!s.has_samples_in(TimeRange::new(11, 14)));
}

#[test]
fn nan_payloads_come_back_bit_exact() {
    let mut s = MemSeries::new(labels("up", "a"));
    let odd = 0x7ff8_0000_dead_beefu64;
    s.append(2, f64::from_bits(STALE_NAN_BITS));
    s.append(1, f64::from_bits(odd));
    s.append(3, -0.0);
    assert_eq!(
        read_bits(&s, all()),
        vec![(1, odd), (2, STALE_NAN_BITS), (3, (-0.0f64).to_bits())]
    );
}

#[test]
fn head_keeps_series_apart_on_fingerprint_collisions() {
    let mut h = Head::default();
    let a = labels("up", "a");
    let b = labels("up", "b");
    h.append_with_fingerprint(7, a.clone(), &samples(&[(1, 1.0)]), vec![]);
    h.append_with_fingerprint(7, b.clone(), &samples(&[(1, 2.0)]), vec![]);
    let st = h.append_with_fingerprint(7, a.clone(), &samples(&[(1, 3.0), (2, 3.0)]), vec![]);
    assert_eq!(
        st,
        AppendStats {
            appended: 1,
            duplicates: 1
        }
    );
    assert_eq!((h.num_series(), h.num_samples()), (2, 3));
    let mut got = h.all_series();
    got.sort_by(|x, y| x.labels.cmp(&y.labels));
    assert_eq!(got[0].labels, a);
    assert_eq!(got[0].values().values().to_vec(), vec![1.0, 3.0]);
    assert_eq!(got[1].labels, b);
    assert_eq!(got[1].values().values().to_vec(), vec![2.0]);
}

#[test]
fn head_select_filters_by_matchers_and_range() {
    let mut h = Head::default();
    h.append(labels("up", "a"), &samples(&[(1, 1.0), (5, 1.0)]));
    h.append(labels("up", "b"), &samples(&[(10, 1.0)]));
    h.append(labels("down", "a"), &samples(&[(1, 1.0)]));
    let up = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
    assert_eq!(h.select(std::slice::from_ref(&up), all()).len(), 2);
    let got = h.select(std::slice::from_ref(&up), TimeRange::new(2, 9));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].timestamps().values().to_vec(), vec![5]);
    let re = Matcher::new(MatchOp::Re, "job", "a|c").unwrap();
    assert_eq!(h.select(&[re], all()).len(), 2);
    assert_eq!(
        h.series_labels(&[up], TimeRange::new(2, 4)),
        Vec::<Labels>::new()
    );
}

#[test]
fn merge_selections_unions_series_and_keeps_the_oldest_sample() {
    let sd =
        |l: &Labels, ts: Vec<i64>, vs: Vec<f64>| SeriesData::new(l.clone(), ts.into(), vs.into());
    let a = labels("up", "a");
    let b = labels("up", "b");
    let old = vec![sd(&a, vec![1, 3], vec![1.0, 3.0])];
    let new = vec![
        sd(&a, vec![2, 3, 4], vec![2.0, 9.0, 4.0]),
        sd(&b, vec![1], vec![1.0]),
    ];
    let got = merge_selections(vec![old, new]);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].timestamps().values().to_vec(), vec![1, 2, 3, 4]);
    assert_eq!(got[0].values().values().to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(got[1].labels, b);
}

proptest! {
    /// Appends and reads agree with a BTreeMap model (first write wins) for random mostly
    /// increasing timestamps with out-of-order samples and duplicates.
    #[test]
    fn series_matches_btreemap_model(
        steps in prop::collection::vec((-40i64..6, any::<u64>()), 0..700),
        ranges in prop::collection::vec((-50i64..800, 0i64..400), 1..8),
    ) {
        let mut s = MemSeries::new(labels("up", "a"));
        let mut model: BTreeMap<i64, u64> = BTreeMap::new();
        let mut base = 0i64;
        for (delta, bits) in steps {
            base += 1;
            let t = base + delta;
            let appended = s.append(t, f64::from_bits(bits));
            let fresh = !model.contains_key(&t);
            if fresh {
                model.insert(t, bits);
            }
            prop_assert_eq!(appended, fresh, "timestamp {}", t);
        }
        prop_assert_eq!(s.num_samples(), model.len());
        let want: Vec<(i64, u64)> = model.iter().map(|(t, v)| (*t, *v)).collect();
        prop_assert_eq!(read_bits(&s, all()), want);
        for (min, len) in ranges {
            let r = TimeRange::new(min, min + len);
            let want: Vec<(i64, u64)> = model.range(r.min..=r.max).map(|(t, v)| (*t, *v)).collect();
            prop_assert_eq!(s.has_samples_in(r), !want.is_empty());
            prop_assert_eq!(read_bits(&s, r), want);
        }
    }
}

/// A sample as read back: (timestamp, value bits, histogram bytes).
type Row = (i64, u64, Option<Vec<u8>>);

fn read_rows(s: &MemSeries, r: TimeRange) -> Vec<Row> {
    match s.read(r) {
        None => Vec::new(),
        Some((ts, vs, hist)) => (0..ts.len())
            .map(|i| {
                let h = hist
                    .as_ref()
                    .and_then(|h| (!h.is_null(i)).then(|| h.value(i).to_vec()));
                (ts.value(i), vs.value(i).to_bits(), h)
            })
            .collect(),
    }
}

fn hist_bytes(t: i64) -> Vec<u8> {
    format!("h{t}").into_bytes()
}

fn hist(t: i64) -> HistogramSample {
    HistogramSample {
        timestamp: t,
        encoded: hist_bytes(t),
    }
}

#[test]
fn histograms_and_floats_share_a_series_in_time_order() {
    let mut s = MemSeries::new(labels("h", "a"));
    // Histograms every 50th sample: the first chunk and the open buffer hold some, the
    // second chunk (120..240) none.
    for t in 0..300i64 {
        let appended = if t % 50 == 0 && !(120..240).contains(&t) {
            s.append_histogram(t, hist_bytes(t))
        } else {
            s.append(t, t as f64)
        };
        assert!(appended);
    }
    assert_eq!(s.num_chunks(), 2);
    // Out of order: below everything, both kinds.
    assert!(s.append_histogram(-2, hist_bytes(-2)));
    assert!(s.append(-1, -1.0));
    let rows = read_rows(&s, all());
    assert_eq!(rows.len(), 302);
    for (t, v, h) in &rows {
        if *t == -2 || (*t >= 0 && t % 50 == 0 && !(120..240).contains(t)) {
            assert_eq!(h.as_deref(), Some(hist_bytes(*t).as_slice()), "at {t}");
            assert_eq!(*v, 0f64.to_bits(), "a histogram row's value is 0");
        } else {
            assert_eq!((*v, h.clone()), ((*t as f64).to_bits(), None), "at {t}");
        }
    }
    // A range over the chunk without histograms reads as plain floats.
    assert!(s.read(TimeRange::new(130, 230)).unwrap().2.is_none());
    // One that touches a histogram gets the column.
    let rows = read_rows(&s, TimeRange::new(95, 105));
    assert_eq!(rows.iter().filter(|r| r.2.is_some()).count(), 1);
    assert_eq!(rows.len(), 11);
    // Duplicates across kinds: the first write wins.
    assert!(!s.append(50, 1.0));
    assert!(!s.append_histogram(51, hist_bytes(0)));
    assert!(!s.append_histogram(-1, hist_bytes(0)));
    assert!(!s.append(-2, 1.0));
    assert_eq!(s.num_samples(), 302);
    assert_eq!(read_rows(&s, TimeRange::new(50, 51))[1].2, None);
}

#[test]
fn open_buffer_histograms_seal_into_a_histogram_column() {
    let mut s = MemSeries::new(labels("h", "a"));
    for t in 0..CHUNK_LEN as i64 - 1 {
        s.append(t, 1.0);
    }
    // The last sample of the chunk is a histogram: the earlier floats become nulls.
    s.append_histogram(1000, hist_bytes(1000));
    assert_eq!(s.num_chunks(), 1);
    s.append(1001, 2.0);
    let rows = read_rows(&s, all());
    assert_eq!(rows.len(), CHUNK_LEN + 1);
    assert!(rows[..CHUNK_LEN - 1].iter().all(|r| r.2.is_none()));
    assert_eq!(rows[CHUNK_LEN - 1].2, Some(hist_bytes(1000)));
    assert_eq!(rows[CHUNK_LEN], (1001, 2f64.to_bits(), None));
    // The open buffer after the seal holds floats only again.
    assert!(s.read(TimeRange::new(1001, 1001)).unwrap().2.is_none());
}

#[test]
fn head_appends_mixed_samples_in_time_order() {
    let mut h = Head::default();
    let l = labels("h", "a");
    let st = h.append_mixed(
        l.clone(),
        &samples(&[(1, 1.0), (3, 3.0), (5, 5.0), (6, 6.0)]),
        vec![hist(2), hist(4), hist(6), hist(7)],
    );
    // At 6 the float is kept and the histogram counted as a duplicate.
    assert_eq!(
        st,
        AppendStats {
            appended: 7,
            duplicates: 1
        }
    );
    assert_eq!(
        h.series[0].num_out_of_order(),
        0,
        "sorted input stays in order"
    );
    assert_eq!(h.num_samples(), 7);
    let got = h.select(&[], all());
    assert_eq!(got.len(), 1);
    let hs = got[0].histograms().expect("a histogram column");
    assert_eq!(
        got[0].timestamps().values().to_vec(),
        vec![1, 2, 3, 4, 5, 6, 7]
    );
    let kinds: Vec<bool> = (0..hs.len()).map(|i| hs.is_valid(i)).collect();
    assert_eq!(kinds, vec![false, true, false, true, false, false, true]);
    assert_eq!(hs.value(6), hist_bytes(7).as_slice());
    // Plain float series keep the plain schema.
    h.append(labels("up", "a"), &samples(&[(1, 1.0)]));
    let up = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
    let got = h.select(&[up], all());
    assert!(got[0].histograms().is_none());
    assert_eq!(got[0].samples.num_columns(), 2);
}

#[test]
fn merge_selections_keeps_histograms() {
    let a = labels("h", "a");
    let mut old = Head::default();
    old.append_mixed(a.clone(), &samples(&[(1, 1.0)]), vec![hist(3)]);
    let mut new = Head::default();
    new.append_mixed(a.clone(), &samples(&[(3, 9.0), (4, 4.0)]), vec![hist(2)]);
    let got = merge_selections(vec![old.select(&[], all()), new.select(&[], all())]);
    assert_eq!(got.len(), 1);
    let s = &got[0];
    assert_eq!(s.timestamps().values().to_vec(), vec![1, 2, 3, 4]);
    let hs = s.histograms().unwrap();
    // The older head's histogram at 3 wins over the newer float.
    assert_eq!(
        (0..4).map(|i| hs.is_valid(i)).collect::<Vec<_>>(),
        vec![false, true, true, false]
    );
    assert_eq!(hs.value(2), hist_bytes(3).as_slice());
    assert_eq!(s.values().value(3), 4.0);
    // Float-only parts still merge to the plain schema.
    let b = labels("up", "b");
    let mut x = Head::default();
    x.append(b.clone(), &samples(&[(1, 1.0)]));
    let mut y = Head::default();
    y.append(b, &samples(&[(2, 2.0)]));
    let got = merge_selections(vec![x.select(&[], all()), y.select(&[], all())]);
    assert!(got[0].histograms().is_none());
}

#[test]
fn in_order_histograms_get_the_counter_reset_hint_prometheus_records() {
    let counter = |count: f64, hint: ResetHint| FloatHistogram {
        counter_reset_hint: hint,
        count,
        sum: count,
        zero_count: count,
        ..FloatHistogram::default()
    };
    let mut s = MemSeries::new(labels("h", "a"));
    for (t, h) in [
        (1, counter(1.0, ResetHint::Unknown)),
        (2, counter(2.0, ResetHint::Unknown)),
        // A reset stays unknown, as Prometheus reads back the first sample of the chunk a
        // reset starts.
        (3, counter(1.0, ResetHint::Unknown)),
        (4, counter(5.0, ResetHint::Unknown)),
        // An explicit hint is kept.
        (5, counter(9.0, ResetHint::Reset)),
    ] {
        assert!(s.append_histogram(t, h.encode()));
    }
    // After a float, and after a gauge histogram, the hint stays unknown.
    assert!(s.append(6, 1.0));
    assert!(s.append_histogram(7, counter(10.0, ResetHint::Unknown).encode()));
    assert!(s.append_histogram(8, counter(1.0, ResetHint::Gauge).encode()));
    assert!(s.append_histogram(9, counter(2.0, ResetHint::Unknown).encode()));
    // Out of order: kept as written.
    assert!(s.append_histogram(0, counter(0.5, ResetHint::Unknown).encode()));
    let rows = read_rows(&s, all());
    let hints: Vec<(i64, Option<ResetHint>)> = rows
        .iter()
        .map(|(t, _, h)| {
            (
                *t,
                h.as_ref()
                    .map(|b| FloatHistogram::decode(b).unwrap().counter_reset_hint),
            )
        })
        .collect();
    use ResetHint::*;
    assert_eq!(
        hints,
        vec![
            (0, Some(Unknown)),
            (1, Some(Unknown)),
            (2, Some(NotReset)),
            (3, Some(Unknown)),
            (4, Some(NotReset)),
            (5, Some(Reset)),
            (6, None),
            (7, Some(Unknown)),
            (8, Some(Gauge)),
            (9, Some(Unknown)),
        ]
    );
}

proptest! {
    /// Mixed float and histogram appends agree with a BTreeMap model (first write wins).
    #[test]
    fn mixed_series_matches_btreemap_model(
        steps in prop::collection::vec((-40i64..6, any::<u64>(), any::<bool>()), 0..500),
        ranges in prop::collection::vec((-50i64..600, 0i64..300), 1..6),
    ) {
        let mut s = MemSeries::new(labels("h", "a"));
        let mut model: BTreeMap<i64, Row> = BTreeMap::new();
        let mut base = 0i64;
        for (delta, bits, is_hist) in steps {
            base += 1;
            let t = base + delta;
            let row = if is_hist {
                // A gauge histogram: the head keeps its bytes as they are (it only fills in
                // unknown counter-reset hints).
                let h = FloatHistogram {
                    counter_reset_hint: ResetHint::Gauge,
                    sum: f64::from_bits(bits),
                    ..FloatHistogram::default()
                };
                (t, 0f64.to_bits(), Some(h.encode()))
            } else {
                (t, bits, None)
            };
            let appended = match &row.2 {
                Some(b) => s.append_histogram(t, b.clone()),
                None => s.append(t, f64::from_bits(bits)),
            };
            let fresh = !model.contains_key(&t);
            if fresh {
                model.insert(t, row);
            }
            prop_assert_eq!(appended, fresh, "timestamp {}", t);
        }
        prop_assert_eq!(s.num_samples(), model.len());
        let want: Vec<Row> = model.values().cloned().collect();
        prop_assert_eq!(read_rows(&s, all()), want);
        for (min, len) in ranges {
            let r = TimeRange::new(min, min + len);
            let want: Vec<Row> = model.range(r.min..=r.max).map(|(_, v)| v.clone()).collect();
            prop_assert_eq!(s.has_samples_in(r), !want.is_empty());
            prop_assert_eq!(read_rows(&s, r), want);
        }
    }
}
