//! Moment fitting for
//! [`ParameterPrior::constrained_gaussian`](super::ParameterPrior::constrained_gaussian):
//! the unconstrained `(μ_u, σ_u)` whose constrained distribution has a given
//! mean and std — closed form for one bound (lognormal), nested bracketed
//! Newton solves on the quadrature moments for two (logistic-normal); see the
//! [module docs](super).

use crate::quadrature::logit_normal_moments;

/// Largest unconstrained std the two-bound moment matching will use.
const MAX_BOUNDED_SIGMA_U: f64 = 100.0;

/// Smallest unconstrained std the two-bound solver searches; below
/// [`SMALL_SIGMA_U`] the first-order (delta-method) solution is exact to double precision.
const MIN_BOUNDED_SIGMA_U: f64 = 1e-8;

/// Below this (estimated) unconstrained std, two-bound targets are matched in closed form.
const SMALL_SIGMA_U: f64 = 1e-6;

/// Half the width of `(lower, upper)`, without overflow for huge bounds.
pub(super) fn half_width(lower: f64, upper: f64) -> f64 {
    0.5 * upper - 0.5 * lower
}

/// `(μ, σ)` of the normal whose exponential (lognormal) has mean `m > 0` and std `s > 0`:
/// `σ² = ln(1 + (s/m)²)`, `μ = ln m − σ²/2`, without overflow or underflow of `(s/m)²`.
pub(super) fn inverse_lognormal_moments(m: f64, s: f64) -> (f64, f64) {
    let ln_r = s.ln() - m.ln();
    let var = if ln_r > 0.0 {
        // ln(1 + r²) = 2 ln r + ln(1 + r⁻²)
        2.0 * ln_r + (-2.0 * ln_r).exp().ln_1p()
    } else if ln_r > -20.0 {
        (2.0 * ln_r).exp().ln_1p()
    } else {
        // r < 2e-9: ln(1 + r²) = r² to double precision; keep r² from underflowing.
        return (m.ln() - 0.5 * (2.0 * ln_r).exp(), ln_r.exp());
    };
    (m.ln() - 0.5 * var, var.sqrt())
}

/// `(μ_u, σ_u)` such that `lower + (upper − lower) L(u)`, `u ~ N(μ_u, σ_u²)`, has the
/// given mean and std (`lower < mean < upper`, `std > 0`).
pub(super) fn fit_bounded(
    mean: f64,
    std: f64,
    lower: f64,
    upper: f64,
) -> Result<(f64, f64), String> {
    let hw = half_width(lower, upper);
    // Distances of the mean from the bounds, and the std, as fractions of the width.
    let d_lo = (0.5 * mean - 0.5 * lower) / hw;
    let d_hi = (0.5 * upper - 0.5 * mean) / hw;
    let s = 0.5 * std / hw;
    let s_max = (d_lo * d_hi).sqrt();
    if s >= s_max {
        return Err(format!(
            "the largest std of any distribution on this interval with this mean is {} \
             (all mass on the two bounds); ask for a smaller std",
            2.0 * hw * s_max
        ));
    }
    // Solve near the closer bound, where the values keep their relative precision;
    // L(−t) = 1 − L(t) mirrors the solution for the other side.
    let (mu, sigma) = if d_lo <= d_hi {
        fit_logit_normal(d_lo, d_hi, s)?
    } else {
        let (mu, sigma) = fit_logit_normal(d_hi, d_lo, s)?;
        (-mu, sigma)
    };
    Ok((mu, sigma))
}

/// `(μ, σ)` of the logistic-normal distribution with mean `m` (`1 − m = mc`, `m ≤ mc`)
/// and std `s < √(m mc)`.
fn fit_logit_normal(m: f64, mc: f64, s: f64) -> Result<(f64, f64), String> {
    let logit = m.ln() - mc.ln();
    // Delta method: sd ≈ L'(μ) σ with L'(logit m) = m(1 − m).
    let sigma0 = s / (m * mc);
    if sigma0 < SMALL_SIGMA_U {
        // Second order in σ: E[L(μ + σZ)] ≈ L(μ) + ½ L''(μ) σ², L'' = L'(1 − 2L).
        return Ok((logit - 0.5 * (mc - m) * sigma0 * sigma0, sigma0));
    }
    let std_gap = |ln_sigma: f64| -> Option<(f64, f64)> {
        let sigma = ln_sigma.exp();
        let mu = solve_logit_normal_mean(m, logit, sigma)?;
        let mom = logit_normal_moments(mu, sigma);
        let sd = mom.var.sqrt();
        // Along the curve mean(μ, σ) = m: dμ/dσ = −(∂mean/∂σ)/(∂mean/∂μ).
        let dmu_dsigma = -mom.dmean_dsigma / mom.dmean_dmu;
        let dvar_dsigma = mom.dvar_dsigma + mom.dvar_dmu * dmu_dsigma;
        Some((sd - s, sigma * dvar_dsigma / (2.0 * sd)))
    };
    let ln_sigma = match increasing_root(
        std_gap,
        sigma0.min(10.0).ln(),
        MIN_BOUNDED_SIGMA_U.ln(),
        MAX_BOUNDED_SIGMA_U.ln(),
        1.0,
        1e-12 * s,
    ) {
        Root::Found(x) => x,
        Root::AboveRange => {
            return Err(format!(
                "it would need an unconstrained std above {MAX_BOUNDED_SIGMA_U} (nearly all \
                 mass on the bounds); ask for a smaller std"
            ));
        }
        Root::BelowRange | Root::Failed => {
            return Err("the moment-matching solve did not converge".to_owned());
        }
    };
    let sigma = ln_sigma.exp();
    let mu = solve_logit_normal_mean(m, logit, sigma)
        .ok_or_else(|| "the moment-matching solve did not converge".to_owned())?;
    let mom = logit_normal_moments(mu, sigma);
    let sd = mom.var.sqrt();
    if (mom.mean - m).abs() > 1e-9 * m || (sd - s).abs() > 1e-8 * s {
        return Err(format!(
            "the moment-matching solve did not converge (reached relative mean {}, std {} \
             for targets {m}, {s})",
            mom.mean, sd
        ));
    }
    Ok((mu, sigma))
}

/// The `μ` at which the logistic-normal with this `σ` has mean `m` (`logit = ln(m/(1−m))`).
fn solve_logit_normal_mean(m: f64, logit: f64, sigma: f64) -> Option<f64> {
    // Probit approximation E[L(μ + σZ)] ≈ L(μ / √(1 + πσ²/8)) for the first guess.
    let k = (1.0 + std::f64::consts::PI * sigma * sigma / 8.0).sqrt();
    let limit = 1e4 * k;
    let mean_gap = |mu: f64| -> Option<(f64, f64)> {
        let mom = logit_normal_moments(mu, sigma);
        Some((mom.mean - m, mom.dmean_dmu))
    };
    match increasing_root(mean_gap, logit * k, -limit, limit, 2.0 * k, 1e-14 * m) {
        Root::Found(mu) => Some(mu),
        Root::AboveRange | Root::BelowRange | Root::Failed => None,
    }
}

/// Outcome of [`increasing_root`].
enum Root {
    Found(f64),
    /// `f < 0` on the whole range.
    AboveRange,
    /// `f > 0` on the whole range.
    BelowRange,
    /// `f` failed or did not converge.
    Failed,
}

/// The root of an increasing function on `[x_min, x_max]`: Newton's method from `x0`,
/// kept inside a bracket and replaced by bisection when it leaves the bracket or
/// converges too slowly (as in Numerical Recipes' `rtsafe`). Until the root is
/// bracketed, steps are limited to `max_step`, doubling each time.
/// `f` returns the value and derivative; it stops when `|f| ≤ ftol` or the bracket
/// is a few ulps wide.
fn increasing_root(
    mut f: impl FnMut(f64) -> Option<(f64, f64)>,
    x0: f64,
    x_min: f64,
    x_max: f64,
    max_step: f64,
    ftol: f64,
) -> Root {
    let (mut lo, mut hi) = (x_min, x_max);
    let (mut lo_known, mut hi_known) = (false, false);
    let mut x = x0.max(x_min).min(x_max);
    let mut step_limit = max_step;
    let (mut dx, mut dx_old) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..300 {
        let Some((fx, dfx)) = f(x) else {
            return Root::Failed;
        };
        if !fx.is_finite() {
            return Root::Failed;
        }
        if fx.abs() <= ftol {
            return Root::Found(x);
        }
        if fx < 0.0 {
            if x >= x_max {
                return Root::AboveRange;
            }
            lo = x;
            lo_known = true;
        } else {
            if x <= x_min {
                return Root::BelowRange;
            }
            hi = x;
            hi_known = true;
        }
        let bracketed = lo_known && hi_known;
        if bracketed && hi - lo <= 4.0 * f64::EPSILON * (1.0 + lo.abs().max(hi.abs())) {
            return Root::Found(0.5 * (lo + hi));
        }
        let newton = x - fx / dfx;
        let mut next = if dfx > 0.0 && newton.is_finite() {
            newton.max(x - step_limit).min(x + step_limit)
        } else if fx < 0.0 {
            x + step_limit
        } else {
            x - step_limit
        };
        if bracketed {
            let fast_enough = (next - x).abs() <= 0.5 * dx_old.abs();
            if !(next > lo && next < hi && fast_enough) {
                next = 0.5 * (lo + hi);
            }
        } else {
            step_limit *= 2.0;
            next = next.max(x_min).min(x_max);
        }
        dx_old = dx;
        dx = next - x;
        if dx == 0.0 {
            return Root::Found(x);
        }
        x = next;
    }
    Root::Failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quadrature::logit_normal_moments;

    #[test]
    fn inverse_lognormal_handles_extreme_ratios() {
        for &(m, s) in &[
            (1.0, 1e-12),
            (1.0, 1e-5),
            (2.0, 3.0),
            (1e-300, 1.0),
            (1.0, 1e200),
        ] {
            let (mu, sigma) = inverse_lognormal_moments(m, s);
            assert!(
                mu.is_finite() && sigma.is_finite() && sigma > 0.0,
                "{m} {s}"
            );
            // Forward: mean e^{μ+σ²/2}, relative std √(e^{σ²} − 1).
            let ln_mean = mu + 0.5 * sigma * sigma;
            assert!(
                (ln_mean - m.ln()).abs() < 1e-12 * (1.0 + m.ln().abs()),
                "{m} {s}"
            );
            if sigma < 20.0 {
                let rel = (sigma * sigma).exp_m1().sqrt();
                assert!((rel / (s / m) - 1.0).abs() < 1e-12, "{m} {s}");
            }
        }
    }

    #[test]
    fn bounded_std_is_monotone_along_the_mean_curve() {
        // The outer solve assumes std(σ) increases along mean(μ(σ), σ) = m.
        for &m in &[0.5f64, 0.2, 0.01] {
            let logit = (m / (1.0 - m)).ln();
            let mut prev = 0.0;
            for k in -20..=20 {
                let sigma = 10f64.powf(k as f64 / 10.0);
                let mu = solve_logit_normal_mean(m, logit, sigma).expect("mean solve");
                let mom = logit_normal_moments(mu, sigma);
                assert!((mom.mean - m).abs() < 1e-13, "m {m} σ {sigma}");
                let sd = mom.var.sqrt();
                assert!(sd > prev, "m {m} σ {sigma}: {sd} after {prev}");
                assert!(sd < (m * (1.0 - m)).sqrt());
                prev = sd;
            }
        }
    }

    #[test]
    fn tiny_bounded_std_uses_the_series() {
        let (mu, sigma) = fit_bounded(0.3, 1e-9, 0.0, 1.0).expect("fit");
        let mom = logit_normal_moments(mu, sigma);
        assert!((mom.mean - 0.3).abs() < 1e-15);
        assert!((mom.var.sqrt() / 1e-9 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn near_the_largest_std_still_converges() {
        // √(0.5 · 0.5) = 0.5 is the limit; 0.49 needs σ_u of about 20.
        let (mu, sigma) = fit_bounded(0.5, 0.49, 0.0, 1.0).expect("fit");
        assert!(mu.abs() < 1e-9);
        assert!(sigma > 5.0 && sigma < MAX_BOUNDED_SIGMA_U, "{sigma}");
        let mom = logit_normal_moments(mu, sigma);
        assert!((mom.var.sqrt() - 0.49).abs() < 1e-9);
    }
}
