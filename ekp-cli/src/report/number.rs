//! Numbers as a person reads them: significant digits (a parameter of
//! 2e-5 must not print as `0.0000`), and what the "±" after an estimate is.

use ekp_core::Process;

/// `v` with `digits` significant digits: plain decimals for
/// 10⁻³ ≤ |v| < 10⁵ (`8.0215`, `0.031245`, `12346`), scientific notation
/// otherwise (`2.0000e-5`, `1.2346e7`); `0`, `NaN`, `inf` as they are.
pub fn sig(v: f64, digits: usize) -> String {
    let digits = digits.max(1);
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let exponent = v.abs().log10().floor() as i32;
    if (-3..5).contains(&exponent) {
        let decimals = (digits as i32 - 1 - exponent).max(0) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.*e}", digits - 1)
    }
}

/// What the "±" after a parameter's estimate is, for `process`: the
/// spread of an optimiser's ensemble (it shrinks with the iterations and is
/// no error bar), or a posterior standard deviation (samplers, and the
/// unscented processes' covariance).
pub fn spread_label(process: &Process) -> &'static str {
    match process {
        Process::Inversion(_)
        | Process::TransformInversion(_)
        | Process::GaussNewton(_)
        | Process::SparseInversion(_) => "spread",
        Process::Sampler(_) | Process::Unscented(_) | Process::TransformUnscented(_) => "std",
    }
}

/// One sentence saying what the "±" of [`spread_label`] means.
pub fn spread_note(process: &Process) -> &'static str {
    match spread_label(process) {
        "spread" => {
            "± is the ensemble's spread (its std across members): it shrinks as the ensemble \
             converges and is not an error bar"
        }
        _ => "± is the approximate posterior standard deviation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_numbers_keep_their_significant_digits() {
        assert_eq!(sig(2e-5, 5), "2.0000e-5");
        assert_eq!(sig(2.1234567e-5, 3), "2.12e-5");
        assert_eq!(sig(8.021_456, 5), "8.0215");
        assert_eq!(sig(0.031_245_6, 5), "0.031246");
        assert_eq!(sig(-0.001_5, 2), "-0.0015");
        assert_eq!(sig(12_345.6, 5), "12346");
        assert_eq!(sig(1.234_56e7, 5), "1.2346e7");
        assert_eq!(sig(0.0, 5), "0");
        assert_eq!(sig(f64::NAN, 5), "NaN");
        for v in [2e-5, 3.3e-300, 7.77, 1e300, -42.0] {
            let back: f64 = sig(v, 5).parse().unwrap();
            assert!((back - v).abs() <= v.abs() * 1e-4, "{v} → {back}");
        }
    }
}
