//! Lossless value codecs chosen per series chunk: a value is stored either as a scaled
//! integer (`value_int` = m, the value being `m / 10^scale` computed in IEEE double
//! arithmetic, bit for bit) or, when that does not reproduce every bit, as the raw double.

/// Largest scale tried: 10^18 is exact in a double and `m` must stay within 2^53.
pub(crate) const MAX_SCALE: i8 = 18;

/// 10^k for k in 0..=18, each exact in a double.
const POW10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// Integers of at most this magnitude convert to doubles exactly.
const MAX_EXACT: i64 = 1 << 53;

/// The value of mantissa `m` at `scale`: `m / 10^scale` with one IEEE division (correctly
/// rounded), which is what the writer checks against.
#[inline]
pub(crate) fn decode(m: i64, scale: i8) -> f64 {
    let x = m as f64;
    if scale == 0 {
        x
    } else {
        x / POW10[scale as usize]
    }
}

/// The mantissa storing `v` at `scale`, when `decode` gives back every bit of `v`.
#[inline]
pub(crate) fn encode(v: f64, scale: i8) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let scaled = if scale == 0 {
        v
    } else {
        v * POW10[scale as usize]
    };
    let r = scaled.round();
    if !(-(MAX_EXACT as f64)..=MAX_EXACT as f64).contains(&r) {
        return None;
    }
    // The product may be off by one ulp: try the neighbours too.
    let m = r as i64;
    [m, m - 1, m + 1]
        .into_iter()
        .find(|c| c.abs() <= MAX_EXACT && decode(*c, scale).to_bits() == v.to_bits())
}

/// The scale storing the most values of `values` as integers (the smallest on ties), or
/// `None` when fewer than half of them would be: then the chunk is kept as raw doubles.
pub(crate) fn choose_scale(values: &[f64]) -> Option<i8> {
    if values.is_empty() {
        return None;
    }
    // Look at a sample of the values; the per-value check happens when writing anyway.
    let step = (values.len() / 256).max(1);
    let probe: Vec<f64> = values.iter().step_by(step).copied().collect();
    let mut best: Option<(usize, i8)> = None;
    for scale in 0..=MAX_SCALE {
        let ok = probe
            .iter()
            .filter(|v| encode(**v, scale).is_some())
            .count();
        if best.is_none_or(|(n, _)| ok > n) {
            best = Some((ok, scale));
        }
        if ok == probe.len() {
            break;
        }
    }
    best.filter(|(n, _)| *n * 2 >= probe.len()).map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_integers() {
        assert_eq!(choose_scale(&[1.0, 2.0, 4096.0]), Some(0));
        assert_eq!(choose_scale(&[0.01, 1234.56, 0.5]), Some(2));
        assert_eq!(encode(1234.56, 2), Some(123456));
        assert_eq!(encode(0.1 + 0.2, 1), None);
        assert_eq!(encode(-0.0, 0), None);
        assert_eq!(encode(f64::NAN, 0), None);
        assert_eq!(encode(f64::INFINITY, 0), None);
        assert_eq!(choose_scale(&[1e300, 0.1 + 0.2]), None);
        // Up to 15-16 significant digits fit at a large scale.
        assert_eq!(choose_scale(&[std::f64::consts::PI]), Some(15));
        assert_eq!(decode(123456, 2).to_bits(), 1234.56f64.to_bits());
    }
}
