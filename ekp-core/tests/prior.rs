//! Priors and constraints: transforms, moment matching, sampling, quantiles, errors, serde.

// Test helpers outside `#[test]` functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ekp_core::prior::standard_normal_quantile;
use ekp_core::{Constraint, ParameterPrior, Prior, PriorError};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const EPS: f64 = f64::EPSILON;

fn logistic(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        u.exp() / (1.0 + u.exp())
    }
}

fn cg(name: &str, mean: f64, std: f64, lower: Option<f64>, upper: Option<f64>) -> ParameterPrior {
    ParameterPrior::constrained_gaussian(name, mean, std, lower, upper, 1).unwrap_or_else(|e| {
        panic!("constrained_gaussian({name}, {mean}, {std}, {lower:?}, {upper:?}): {e}")
    })
}

fn rel_err(got: f64, want: f64) -> f64 {
    ((got - want) / want).abs()
}

// ---------------------------------------------------------------- constraints

/// A finite bound with a magnitude anywhere from 0 to 1e3.
fn bound() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), -1e3..1e3f64, -1.0..1.0f64]
}

/// An interval width from 1e-3 to 1e3 (log-uniform).
fn width() -> impl Strategy<Value = f64> {
    (-3.0..3.0f64).prop_map(|e| 10f64.powf(e))
}

proptest! {
    #[test]
    fn unbounded_is_the_identity(x in -1e300..1e300f64) {
        let c = Constraint::Unbounded;
        prop_assert_eq!(c.to_unconstrained(x), x);
        prop_assert_eq!(c.to_constrained(x), x);
        prop_assert!(c.contains(x));
    }

    #[test]
    fn bounded_below_round_trips(lb in bound(), t in -12.0..12.0f64) {
        let c = Constraint::BoundedBelow { lower: lb };
        // x → u → x on the interior
        let x = lb + 10f64.powf(t / 4.0) * (1.0 + lb.abs());
        prop_assume!(x > lb);
        let u = c.to_unconstrained(x);
        let back = c.to_constrained(u);
        let tol = 8.0 * EPS * (lb.abs() + x.abs() + (2.0 + u.abs()) * (x - lb));
        prop_assert!((back - x).abs() <= tol, "x {} → u {} → {}", x, u, back);
        // u → x → u: error in x is amplified by T'(x) = 1/(x − lb)
        let u = 3.0 * t;
        let x = c.to_constrained(u);
        let again = c.to_unconstrained(x);
        let tol = 8.0 * EPS * (1.0 + u.abs() + (lb.abs() + x.abs()) / u.exp());
        prop_assert!((again - u).abs() <= tol, "u {} → x {} → {}", u, x, again);
    }

    #[test]
    fn bounded_above_round_trips(ub in bound(), t in -12.0..12.0f64) {
        let c = Constraint::BoundedAbove { upper: ub };
        let x = ub - 10f64.powf(t / 4.0) * (1.0 + ub.abs());
        prop_assume!(x < ub);
        let u = c.to_unconstrained(x);
        let back = c.to_constrained(u);
        let tol = 8.0 * EPS * (ub.abs() + x.abs() + (2.0 + u.abs()) * (ub - x));
        prop_assert!((back - x).abs() <= tol, "x {} → u {} → {}", x, u, back);
        let u = 3.0 * t;
        let x = c.to_constrained(u);
        let again = c.to_unconstrained(x);
        let tol = 8.0 * EPS * (1.0 + u.abs() + (ub.abs() + x.abs()) / u.exp());
        prop_assert!((again - u).abs() <= tol, "u {} → x {} → {}", u, x, again);
    }

    #[test]
    fn bounded_round_trips(lb in bound(), w in width(), t in 1e-6..(1.0 - 1e-6), u in -30.0..30.0f64) {
        let ub = lb + w;
        let c = Constraint::from_bounds("p", Some(lb), Some(ub)).unwrap();
        let scale = lb.abs() + ub.abs();
        // x → u → x
        let x = lb + t * (ub - lb);
        prop_assume!(c.contains(x));
        let ux = c.to_unconstrained(x);
        let back = c.to_constrained(ux);
        let (dl, du) = (x - lb, ub - x);
        let tol = 8.0 * EPS * (scale + (2.0 + dl.ln().abs() + du.ln().abs()) * dl.min(du));
        prop_assert!((back - x).abs() <= tol, "x {} → u {} → {}", x, ux, back);
        // u → x → u, with the distances to the bounds computed exactly from u
        let x = c.to_constrained(u);
        let again = c.to_unconstrained(x);
        let (dl, du) = (w * logistic(u), w * logistic(-u));
        let tol = 8.0 * EPS * (1.0 + u.abs() + scale * (1.0 / dl + 1.0 / du));
        prop_assert!((again - u).abs() <= tol, "u {} → x {} → {} (tol {})", u, x, again, tol);
    }

    #[test]
    fn to_constrained_lands_strictly_inside(lb in bound(), w in width(), u in -50.0..50.0f64) {
        let ub = lb + w;
        for c in [
            Constraint::BoundedBelow { lower: lb },
            Constraint::BoundedAbove { upper: ub },
            Constraint::from_bounds("p", Some(lb), Some(ub)).unwrap(),
        ] {
            let x = c.to_constrained(u);
            prop_assert!(c.contains(x), "{:?}: u {} → {}", c, u, x);
        }
    }

    #[test]
    fn to_constrained_is_monotone(lb in bound(), w in width(), u in -20.0..20.0f64, du in 1e-3..5.0f64) {
        let ub = lb + w;
        let b = Constraint::from_bounds("p", Some(lb), Some(ub)).unwrap();
        prop_assert!(b.to_constrained(u) <= b.to_constrained(u + du));
        let below = Constraint::BoundedBelow { lower: lb };
        prop_assert!(below.to_constrained(u) <= below.to_constrained(u + du));
        // bounded above is decreasing
        let above = Constraint::BoundedAbove { upper: ub };
        prop_assert!(above.to_constrained(u) >= above.to_constrained(u + du));
    }
}

#[test]
fn constraint_transforms_match_the_formulas() {
    let below = Constraint::BoundedBelow { lower: 2.0 };
    assert_eq!(below.to_unconstrained(3.0), 0.0);
    assert!((below.to_constrained(1.0) - (2.0 + 1f64.exp())).abs() < 1e-15);
    let above = Constraint::BoundedAbove { upper: 2.0 };
    assert_eq!(above.to_unconstrained(1.0), 0.0);
    assert!((above.to_constrained(1.0) - (2.0 - 1f64.exp())).abs() < 1e-15);
    let both = Constraint::Bounded {
        lower: -1.0,
        upper: 3.0,
    };
    assert_eq!(both.to_constrained(0.0), 1.0);
    assert!((both.to_unconstrained(2.0) - 3f64.ln()).abs() < 1e-15);
    let u = 0.7f64;
    let want = (3.0 * u.exp() - 1.0) / (u.exp() + 1.0);
    assert!((both.to_constrained(u) - want).abs() < 1e-15);
    // Far out, no inf/inf: the bounds are approached, never crossed.
    assert!(both.contains(both.to_constrained(500.0)));
    assert!(both.contains(both.to_constrained(-500.0)));
    assert!((both.to_constrained(40.0) - 3.0).abs() < 1e-14);
    // Outside the domain: NaN (or −∞ on the bound).
    assert!(below.to_unconstrained(1.0).is_nan());
    assert_eq!(below.to_unconstrained(2.0), f64::NEG_INFINITY);
    assert!(both.to_unconstrained(4.0).is_nan());
}

#[test]
fn from_bounds_normalises_absent_and_infinite_bounds() {
    let c = |lo, hi| Constraint::from_bounds("p", lo, hi).unwrap();
    assert_eq!(c(None, None), Constraint::Unbounded);
    assert_eq!(
        c(Some(f64::NEG_INFINITY), Some(f64::INFINITY)),
        Constraint::Unbounded
    );
    assert_eq!(c(Some(0.0), None), Constraint::BoundedBelow { lower: 0.0 });
    assert_eq!(
        c(Some(0.0), Some(f64::INFINITY)),
        Constraint::BoundedBelow { lower: 0.0 }
    );
    assert_eq!(c(None, Some(1.0)), Constraint::BoundedAbove { upper: 1.0 });
    assert_eq!(
        c(Some(f64::NEG_INFINITY), Some(1.0)),
        Constraint::BoundedAbove { upper: 1.0 }
    );
    assert_eq!(
        c(Some(0.0), Some(1.0)),
        Constraint::Bounded {
            lower: 0.0,
            upper: 1.0
        }
    );
    let b = c(Some(-2.0), Some(5.0));
    assert_eq!((b.lower(), b.upper()), (-2.0, 5.0));
    assert_eq!(Constraint::Unbounded.lower(), f64::NEG_INFINITY);
    assert_eq!(Constraint::Unbounded.upper(), f64::INFINITY);
    assert!(b.contains(0.0) && !b.contains(-2.0) && !b.contains(5.0) && !b.contains(f64::NAN));

    for (lo, hi) in [
        (Some(1.0), Some(1.0)),
        (Some(2.0), Some(1.0)),
        (Some(f64::NAN), None),
        (None, Some(f64::NAN)),
        (Some(f64::INFINITY), None),
        (None, Some(f64::NEG_INFINITY)),
    ] {
        let err = Constraint::from_bounds("theta", lo, hi).unwrap_err();
        assert!(
            matches!(err, PriorError::InvalidBounds { .. }),
            "{lo:?} {hi:?}: {err:?}"
        );
        assert!(err.to_string().contains("`theta`"), "{err}");
    }
}

// ---------------------------------------------------------------- moment matching

#[test]
fn two_bounds_reference_case() {
    let p = cg("p", 0.2, 0.1, Some(0.0), Some(1.0));
    // EKP.jl (Nelder–Mead, loose tolerances) gets −1.50477, 0.64743 and checks them
    // with atol 1e-4, rtol 1e-3; the exact solution is −1.5046073, 0.6474768.
    assert!(
        (p.unconstrained_mean() - -1.50477).abs() < 5e-4,
        "{}",
        p.unconstrained_mean()
    );
    assert!(
        (p.unconstrained_std() - 0.64743).abs() < 1e-4,
        "{}",
        p.unconstrained_std()
    );
    assert!((p.unconstrained_mean() - -1.504_607_3).abs() < 1e-6);
    assert!((p.unconstrained_std() - 0.647_476_8).abs() < 1e-6);
    assert!((p.constrained_mean() - 0.2).abs() < 1e-9);
    assert!((p.constrained_std() - 0.1).abs() < 1e-9);
    assert_eq!(
        p.constraint(),
        Constraint::Bounded {
            lower: 0.0,
            upper: 1.0
        }
    );

    // The same shape on a shifted, scaled interval; and mirrored (mean near the upper bound).
    let q = cg("q", 10.0 + 0.2 * 4.0, 0.1 * 4.0, Some(10.0), Some(14.0));
    assert!((q.unconstrained_mean() - p.unconstrained_mean()).abs() < 1e-9);
    assert!((q.unconstrained_std() - p.unconstrained_std()).abs() < 1e-9);
    let r = cg("r", 0.8, 0.1, Some(0.0), Some(1.0));
    assert!((r.unconstrained_mean() + p.unconstrained_mean()).abs() < 1e-9);
    assert!((r.unconstrained_std() - p.unconstrained_std()).abs() < 1e-9);
}

#[test]
fn one_bound_closed_form() {
    // EKP.jl's Lorenz example priors.
    for (mean, std) in [(9.0, 2.0), (3.0, 1.25)] {
        let p = cg("F", mean, std, Some(0.0), None);
        let v = (1.0f64 + (std / mean) * (std / mean)).ln();
        assert!((p.unconstrained_std() - v.sqrt()).abs() < 1e-14);
        assert!((p.unconstrained_mean() - (mean.ln() - 0.5 * v)).abs() < 1e-14);
        assert!(rel_err(p.constrained_mean(), mean) < 1e-14);
        assert!(rel_err(p.constrained_std(), std) < 1e-13);
    }
    // F: μ_u = ln 9 − ½ ln(1 + 4/81) ≈ 2.173124, σ_u ≈ 0.219550.
    let f = cg("F", 9.0, 2.0, Some(0.0), None);
    assert!((f.unconstrained_mean() - 2.173_123_5).abs() < 1e-6);
    assert!((f.unconstrained_std() - 0.219_549_8).abs() < 1e-6);
    // Shifted lower bound, and upper bounds (distance of the mean from the bound).
    for (mean, std, lower, upper) in [
        (6.0, 0.5, Some(5.0), None),
        (-2.0, 0.5, None, Some(0.0)),
        (0.5, 3.0, None, Some(1.0)),
    ] {
        let p = cg("p", mean, std, lower, upper);
        assert!((p.constrained_mean() - mean).abs() < 1e-13);
        assert!(rel_err(p.constrained_std(), std) < 1e-13);
    }
    let p = cg("p", -2.0, 0.5, None, Some(0.0));
    let v = (1.0f64 + 0.25 * 0.25).ln();
    assert!((p.unconstrained_mean() - (2f64.ln() - 0.5 * v)).abs() < 1e-14);
}

#[test]
fn no_bounds_is_the_plain_gaussian() {
    let p = cg("g", -3.0, 0.5, None, None);
    assert_eq!(p, ParameterPrior::gaussian("g", -3.0, 0.5, 1).unwrap());
    assert_eq!(p.constraint(), Constraint::Unbounded);
    assert_eq!((p.unconstrained_mean(), p.unconstrained_std()), (-3.0, 0.5));
    assert_eq!((p.constrained_mean(), p.constrained_std()), (-3.0, 0.5));
}

proptest! {
    #[test]
    fn one_bound_targets_are_matched(
        bound in -100.0..100.0f64,
        ln_dist in -3.0..3.0f64,
        ln_cv in -3.0..1.0f64,
        above in any::<bool>(),
    ) {
        let dist = 10f64.powf(ln_dist);
        let std = dist * 10f64.powf(ln_cv);
        let (mean, lower, upper) = if above {
            (bound - dist, None, Some(bound))
        } else {
            (bound + dist, Some(bound), None)
        };
        let p = cg("p", mean, std, lower, upper);
        prop_assert!((p.constrained_mean() - mean).abs() <= 1e-12 * (bound.abs() + dist));
        prop_assert!(rel_err(p.constrained_std(), std) < 1e-10);
    }

    #[test]
    fn two_bound_targets_are_matched(
        lower in -100.0..100.0f64,
        ln_width in -2.0..2.0f64,
        t in 0.001..0.999f64,
        ln_frac in -8.0..0.0f64,
    ) {
        // Any std below the largest possible, √((mean − lb)(ub − mean)), from 1e-8 to
        // 90 % of it (the smallest ones take the closed-form small-σ_u path).
        let frac = 0.9 * 10f64.powf(ln_frac);
        let w = 10f64.powf(ln_width);
        let upper = lower + w;
        let mean = lower + t * w;
        prop_assume!(lower < mean && mean < upper);
        let std = frac * ((mean - lower) * (upper - mean)).sqrt();
        let p = cg("p", mean, std, Some(lower), Some(upper));
        prop_assert!((p.constrained_mean() - mean).abs() <= 1e-9 * w + 1e-13 * lower.abs());
        prop_assert!(rel_err(p.constrained_std(), std) < 1e-8);
    }
}

#[test]
fn unreachable_two_bound_std_is_an_error() {
    // Largest possible std on (0, 1) with mean 0.5 is 0.5 (mass ½ on each bound).
    for std in [0.5, 0.6, 10.0] {
        let err = ParameterPrior::constrained_gaussian("kappa", 0.5, std, Some(0.0), Some(1.0), 1)
            .unwrap_err();
        assert!(matches!(err, PriorError::MomentMatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("`kappa`") && msg.contains("largest std"),
            "{msg}"
        );
    }
    // Reachable in principle, but only with σ_u > 100 (nearly two point masses).
    let err = ParameterPrior::constrained_gaussian(
        "kappa",
        0.01,
        0.995 * 0.0099f64.sqrt(),
        Some(0.0),
        Some(1.0),
        1,
    )
    .unwrap_err();
    assert!(matches!(err, PriorError::MomentMatch { .. }), "{err:?}");
    // EKP.jl would refuse mean − std < lower here; the target is reachable and is matched.
    let p = cg("p", 0.1, 0.15, Some(0.0), Some(1.0));
    assert!((p.constrained_mean() - 0.1).abs() < 1e-10);
    assert!((p.constrained_std() - 0.15).abs() < 1e-10);
}

// ---------------------------------------------------------------- sampling

fn lorenz_like_prior() -> Prior {
    Prior::new(vec![
        cg("F", 9.0, 2.0, Some(0.0), None),
        cg("A", 3.0, 1.25, Some(0.0), None),
        cg("p", 0.2, 0.1, Some(0.0), Some(1.0)),
        cg("n", -2.0, 0.5, None, Some(0.0)),
        ParameterPrior::constrained_gaussian("v", 5.0, 4.0, Some(-1.0), Some(12.0), 2).unwrap(),
        ParameterPrior::gaussian("g", 1.0, 3.0, 1).unwrap(),
    ])
    .unwrap()
}

#[test]
fn monte_carlo_moments_match_the_targets() {
    let prior = lorenz_like_prior();
    let targets = [
        (9.0, 2.0),
        (3.0, 1.25),
        (0.2, 0.1),
        (-2.0, 0.5),
        (5.0, 4.0),
        (5.0, 4.0),
        (1.0, 3.0),
    ];
    let n = 200_000;
    let mut rng = ChaCha8Rng::seed_from_u64(20240611);
    let u = prior.sample(&mut rng, n);
    assert_eq!(u.shape(), (prior.dim(), n));
    let x = prior.to_constrained_matrix(&u);
    let constraints = prior.constraints();
    let nf = n as f64;
    for (i, &(mean, std)) in targets.iter().enumerate() {
        let row = x.row(i);
        assert!(
            row.iter().all(|&v| constraints[i].contains(v)),
            "row {i} leaves its domain"
        );
        let m = row.mean();
        let m2 = row.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (nf - 1.0);
        let m4 = row.iter().map(|v| (v - m).powi(4)).sum::<f64>() / nf;
        let s = m2.sqrt();
        let se_mean = s / nf.sqrt();
        // Var(s²) ≈ (m₄ − s⁴)/n, so SE(s) ≈ √(m₄ − s⁴)/(2 s √n).
        let se_std = (m4 - m2 * m2).sqrt() / (2.0 * s * nf.sqrt());
        assert!(
            (m - mean).abs() < 5.0 * se_mean,
            "row {i}: mean {m} vs {mean} (se {se_mean})"
        );
        assert!(
            (s - std).abs() < 5.0 * se_std,
            "row {i}: std {s} vs {std} (se {se_std})"
        );
    }
    // The unconstrained draws have the prior's own mean and std.
    let (mean_u, std_u) = (prior.mean(), prior.std());
    for i in 0..prior.dim() {
        let row = u.row(i);
        let m = row.mean();
        assert!((m - mean_u[i]).abs() < 5.0 * std_u[i] / nf.sqrt());
        assert!(rel_err(row.variance().sqrt(), std_u[i]) < 0.01);
    }
}

#[test]
fn sampling_is_reproducible_and_member_by_member() {
    let prior = lorenz_like_prior();
    let a = prior.sample(&mut ChaCha8Rng::seed_from_u64(7), 5);
    let b = prior.sample(&mut ChaCha8Rng::seed_from_u64(7), 5);
    let c = prior.sample(&mut ChaCha8Rng::seed_from_u64(8), 5);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Column j, row i uses the (j·dim + i)-th standard normal draw.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mean, std) = (prior.mean(), prior.std());
    for j in 0..5 {
        for i in 0..prior.dim() {
            let z: f64 = StandardNormal.sample(&mut rng);
            assert_eq!(a[(i, j)], mean[i] + std[i] * z);
        }
    }
    // A dyn RNG works too.
    let mut boxed: Box<dyn rand::RngCore> = Box::new(ChaCha8Rng::seed_from_u64(7));
    assert_eq!(prior.sample(boxed.as_mut(), 5), a);
    assert_eq!(
        prior.sample(&mut ChaCha8Rng::seed_from_u64(7), 0).shape(),
        (prior.dim(), 0)
    );
}

// ---------------------------------------------------------------- quantiles

#[test]
fn gaussian_quantiles() {
    let g = ParameterPrior::gaussian("g", 1.0, 2.0, 1).unwrap();
    assert!((g.constrained_quantile(0.05) - (1.0 - 1.644_853_6 * 2.0)).abs() < 1e-6);
    assert!((g.constrained_quantile(0.95) - (1.0 + 1.644_853_6 * 2.0)).abs() < 1e-6);
    assert!((g.constrained_quantile(0.5) - 1.0).abs() < 1e-15);
    assert!((standard_normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-14);
    assert_eq!(g.constrained_quantile(0.0), f64::NEG_INFINITY);
    assert_eq!(g.constrained_quantile(1.0), f64::INFINITY);
    assert!(g.constrained_quantile(1.5).is_nan());
    assert!(g.constrained_quantile(f64::NAN).is_nan());
}

#[test]
fn constrained_quantiles_are_ordered_and_match_samples() {
    let priors = [
        cg("below", 9.0, 2.0, Some(0.0), None),
        cg("above", -2.0, 0.5, None, Some(0.0)),
        cg("both", 0.2, 0.1, Some(0.0), Some(1.0)),
    ];
    let qs = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];
    let n = 200_000;
    for p in &priors {
        let c = p.constraint();
        let values: Vec<f64> = qs.iter().map(|&q| p.constrained_quantile(q)).collect();
        assert!(
            values.windows(2).all(|w| w[0] < w[1]),
            "{}: {values:?}",
            p.name()
        );
        assert!(values.iter().all(|&v| c.contains(v)));
        assert_eq!(p.constrained_quantile(0.0), c.lower());
        assert_eq!(p.constrained_quantile(1.0), c.upper());
        // Empirical CDF at each quantile ≈ q (binomial standard error √(q(1−q)/n)).
        let prior = Prior::new(vec![p.clone()]).unwrap();
        let x = prior.to_constrained_matrix(&prior.sample(&mut ChaCha8Rng::seed_from_u64(3), n));
        for (&q, &v) in qs.iter().zip(&values) {
            let below = x.iter().filter(|&&xi| xi <= v).count() as f64 / n as f64;
            let se = (q * (1.0 - q) / n as f64).sqrt();
            assert!(
                (below - q).abs() < 5.0 * se,
                "{}: P(X ≤ q{q}) = {below}",
                p.name()
            );
        }
    }
    // Bounded above: the 5 % quantile is the transform of the 95 % Gaussian quantile.
    let above = &priors[1];
    let u95 = above.unconstrained_mean() + 1.644_853_626_951_472 * above.unconstrained_std();
    assert!((above.constrained_quantile(0.05) - (0.0 - u95.exp())).abs() < 1e-12);
}

// ---------------------------------------------------------------- errors

#[test]
fn invalid_inputs_are_reported_with_the_parameter_name() {
    fn check(result: Result<ParameterPrior, PriorError>, want: fn(&PriorError) -> bool) {
        let err = result.unwrap_err();
        assert!(want(&err), "unexpected variant: {err:?}");
        assert!(
            err.to_string().contains("`alpha`"),
            "message does not name the parameter: {err}"
        );
    }
    let cgr =
        |mean, std, lo, hi| ParameterPrior::constrained_gaussian("alpha", mean, std, lo, hi, 1);
    for std in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        check(cgr(0.5, std, Some(0.0), Some(1.0)), |e| {
            matches!(e, PriorError::InvalidStd { .. })
        });
        check(ParameterPrior::gaussian("alpha", 0.0, std, 1), |e| {
            matches!(e, PriorError::InvalidStd { .. })
        });
        check(
            ParameterPrior::from_unconstrained("alpha", 0.0, std, Constraint::Unbounded, 1),
            |e| matches!(e, PriorError::InvalidStd { .. }),
        );
    }
    for (mean, lo, hi) in [
        (0.0, Some(0.0), Some(1.0)),
        (1.0, Some(0.0), Some(1.0)),
        (-0.5, Some(0.0), None),
        (2.0, None, Some(1.0)),
        (2.0, Some(0.0), Some(1.0)),
    ] {
        check(cgr(mean, 0.1, lo, hi), |e| {
            matches!(e, PriorError::MeanOutsideBounds { .. })
        });
    }
    check(cgr(f64::NAN, 0.1, None, None), |e| {
        matches!(e, PriorError::InvalidMean { .. })
    });
    check(cgr(0.5, 0.1, Some(1.0), Some(0.0)), |e| {
        matches!(e, PriorError::InvalidBounds { .. })
    });
    check(cgr(0.5, 0.1, Some(1.0), Some(1.0)), |e| {
        matches!(e, PriorError::InvalidBounds { .. })
    });
    check(cgr(0.5, 0.1, Some(f64::NAN), None), |e| {
        matches!(e, PriorError::InvalidBounds { .. })
    });
    check(
        ParameterPrior::from_unconstrained(
            "alpha",
            0.0,
            1.0,
            Constraint::Bounded {
                lower: 2.0,
                upper: 1.0,
            },
            1,
        ),
        |e| matches!(e, PriorError::InvalidBounds { .. }),
    );
    check(ParameterPrior::gaussian("alpha", 0.0, 1.0, 0), |e| {
        matches!(e, PriorError::ZeroSize { .. })
    });
    assert!(matches!(
        ParameterPrior::gaussian("", 0.0, 1.0, 1),
        Err(PriorError::InvalidName { .. })
    ));

    let a = ParameterPrior::gaussian("alpha", 0.0, 1.0, 1).unwrap();
    let b = ParameterPrior::gaussian("beta", 0.0, 1.0, 1).unwrap();
    let err = Prior::new(vec![a.clone(), b, a]).unwrap_err();
    assert!(matches!(&err, PriorError::DuplicateName { name } if name == "alpha"));
    assert!(err.to_string().contains("`alpha`"));
    assert!(matches!(Prior::new(vec![]), Err(PriorError::Empty)));
}

// ---------------------------------------------------------------- the flat vector

#[test]
fn flat_layout_and_transforms() {
    let prior = Prior::new(vec![
        cg("F", 9.0, 2.0, Some(0.0), None),
        ParameterPrior::constrained_gaussian("x", 0.3, 0.1, Some(0.0), Some(1.0), 3).unwrap(),
        ParameterPrior::gaussian("g", 1.0, 3.0, 1).unwrap(),
    ])
    .unwrap();
    assert_eq!(prior.dim(), 5);
    assert_eq!(prior.ranges(), vec![0..1, 1..4, 4..5]);
    assert_eq!(prior.flat_names(), ["F", "x[1]", "x[2]", "x[3]", "g"]);
    assert_eq!(prior.parameters().len(), 3);
    assert_eq!(prior.parameter("x").map(ParameterPrior::size), Some(3));
    assert!(prior.parameter("nope").is_none());

    let x_prior = &prior.parameters()[1];
    let mean = prior.mean();
    let std = prior.std();
    let f = &prior.parameters()[0];
    let want_mean = [
        f.unconstrained_mean(),
        x_prior.unconstrained_mean(),
        x_prior.unconstrained_mean(),
        x_prior.unconstrained_mean(),
        1.0,
    ];
    assert_eq!(mean.as_slice(), want_mean);
    assert_eq!(std[4], 3.0);
    let cov = prior.cov();
    assert_eq!(cov.shape(), (5, 5));
    assert_eq!(cov, DMatrix::from_diagonal(&std.map(|s| s * s)));

    // to_constrained / to_unconstrained, vector and column-wise matrix.
    let u = DVector::from_vec(vec![2.0, -1.0, 0.0, 3.0, -7.0]);
    let x = prior.to_constrained(&u);
    let want = [2f64.exp(), logistic(-1.0), 0.5, logistic(3.0), -7.0];
    for (got, want) in x.iter().zip(want) {
        assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    }
    let back = prior.to_unconstrained(&x);
    assert!((back - &u).amax() < 1e-14);
    let ens = DMatrix::from_fn(5, 4, |i, j| u[i] + j as f64 * 0.5);
    let xs = prior.to_constrained_matrix(&ens);
    for j in 0..4 {
        assert_eq!(
            xs.column(j).into_owned(),
            prior.to_constrained(&ens.column(j).into_owned())
        );
    }
    assert!((prior.to_unconstrained_matrix(&xs) - &ens).amax() < 1e-13);
}

// ---------------------------------------------------------------- serde

#[test]
fn prior_round_trips_through_toml() {
    let prior = Prior::new(vec![
        cg("F", 9.0, 2.0, Some(0.0), None),
        cg("n", -2.0, 0.5, None, Some(0.0)),
        ParameterPrior::constrained_gaussian("x", 0.2, 0.1, Some(0.0), Some(1.0), 3).unwrap(),
        ParameterPrior::gaussian("g", 1.0, 3.0, 1).unwrap(),
    ])
    .unwrap();
    let text = toml::to_string(&prior).unwrap();
    assert!(text.contains("kind = \"bounded-below\""), "{text}");
    assert!(text.contains("kind = \"bounded-above\""), "{text}");
    assert!(text.contains("kind = \"bounded\""), "{text}");
    assert!(text.contains("kind = \"unbounded\""), "{text}");
    let back: Prior = toml::from_str(&text).unwrap();
    assert_eq!(back, prior);

    // Constraints alone, in the documented inline form.
    #[derive(serde::Deserialize)]
    struct Wrap {
        c: Constraint,
    }
    let w: Wrap = toml::from_str("c = { kind = \"bounded\", lower = 0.0, upper = 2.0 }").unwrap();
    assert_eq!(
        w.c,
        Constraint::Bounded {
            lower: 0.0,
            upper: 2.0
        }
    );
    assert!(
        toml::from_str::<Wrap>("c = { kind = \"bounded\", lower = 3.0, upper = 2.0 }").is_err()
    );
    assert!(
        toml::from_str::<Wrap>("c = { kind = \"bounded-below\", lower = 0.0, upper = 1.0 }")
            .is_err()
    );
    assert!(toml::from_str::<Wrap>("c = { kind = \"sideways\" }").is_err());
}

#[test]
fn invalid_serialized_priors_are_rejected() {
    let good = r#"
[[parameters]]
name = "F"
size = 1
unconstrained_mean = 2.0
unconstrained_std = 0.2
constraint = { kind = "bounded-below", lower = 0.0 }
"#;
    let p: Prior = toml::from_str(good).unwrap();
    assert_eq!(
        p.parameters()[0].constraint(),
        Constraint::BoundedBelow { lower: 0.0 }
    );

    let bad_std = good.replace("unconstrained_std = 0.2", "unconstrained_std = -0.2");
    let err = toml::from_str::<Prior>(&bad_std).unwrap_err().to_string();
    assert!(err.contains("`F`") && err.contains("std"), "{err}");

    let bad_bounds = good.replace(
        "{ kind = \"bounded-below\", lower = 0.0 }",
        "{ kind = \"bounded\", lower = 1.0, upper = 0.0 }",
    );
    let err = toml::from_str::<Prior>(&bad_bounds)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`F`") && err.contains("bounds"), "{err}");

    let unknown = good.replace("size = 1", "size = 1\nsigma = 3.0");
    assert!(toml::from_str::<Prior>(&unknown).is_err());

    let dup = format!("{good}{good}");
    let err = toml::from_str::<Prior>(&dup).unwrap_err().to_string();
    assert!(err.contains("more than once"), "{err}");
}
