//! Priors: independent (transformed) Gaussian priors on named parameters.
//!
//! Every scalar component `x` of a parameter is `x = T⁻¹(u)` with `u ~ N(μ_u, σ_u²)`
//! and `T` its [`Constraint`]'s map to the real line. The ensemble Kalman processes
//! work with `u` (the *unconstrained* space); models see `x` (the *constrained* space).
//!
//! [`ParameterPrior::constrained_gaussian`] is EnsembleKalmanProcesses.jl's
//! `constrained_gaussian`: it picks `(μ_u, σ_u)` so that the *constrained*
//! distribution has a given mean and standard deviation.
//!
//! - Neither bound: `x = u`, so `μ_u, σ_u` are the targets.
//! - One bound: `x − lb` (or `ub − x`) is lognormal, and the closed form
//!   `μ_u = ln μ' − ½ ln(1 + (σ/μ')²)`, `σ_u = √ln(1 + (σ/μ')²)` (`μ'` the distance of the
//!   mean from the bound) is exact.
//! - Two bounds: `(x − lb)/(ub − lb)` is logistic-normal, whose moments have no closed
//!   form. They are computed by quadrature (`crate::quadrature`) and matched by two
//!   nested, bracketed Newton solves: for a trial `σ_u`, the `μ_u` that gives the target
//!   mean (the mean increases with `μ_u`); then the `σ_u` at which the std along that
//!   curve reaches the target (it increases with `σ_u`, from 0 towards the largest std
//!   possible on the interval, `√((mean − lb)(ub − mean))`, reached when all mass sits
//!   on the bounds). Targets at or above that limit, or that need `σ_u > 100`, are
//!   refused with [`PriorError::MomentMatch`]. (EKP.jl asks for
//!   `lb < mean − std` and `mean + std < ub`, a stricter condition; its optimiser matches
//!   the moments to ~1e-5, ours to ~1e-10.)

use std::collections::HashSet;
use std::ops::Range;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::constraint::{Constraint, ConstraintRepr};
pub use crate::error::PriorError;
use crate::quadrature::logit_normal_moments;

/// Largest unconstrained std the two-bound moment matching will use.
const MAX_BOUNDED_SIGMA_U: f64 = 100.0;

/// Smallest unconstrained std the two-bound solver searches; below
/// [`SMALL_SIGMA_U`] the first-order (delta-method) solution is exact to double precision.
const MIN_BOUNDED_SIGMA_U: f64 = 1e-8;

/// Below this (estimated) unconstrained std, two-bound targets are matched in closed form.
const SMALL_SIGMA_U: f64 = 1e-6;

/// The prior of one named parameter: `size` independent components, each
/// `T⁻¹(u)` with `u ~ N(μ_u, σ_u²)` and `T` the parameter's [`Constraint`].
///
/// Serialized with the fields `name`, `size`, `unconstrained_mean`,
/// `unconstrained_std` and `constraint` (validated when deserialized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ParameterPriorRepr")]
pub struct ParameterPrior {
    name: String,
    size: usize,
    unconstrained_mean: f64,
    unconstrained_std: f64,
    constraint: Constraint,
}

impl ParameterPrior {
    /// An unconstrained Gaussian prior `N(mean, std²)` on each of `size` components.
    ///
    /// # Errors
    /// [`PriorError::InvalidName`], [`PriorError::ZeroSize`], [`PriorError::InvalidMean`],
    /// [`PriorError::InvalidStd`].
    pub fn gaussian(name: &str, mean: f64, std: f64, size: usize) -> Result<Self, PriorError> {
        Self::from_unconstrained(name, mean, std, Constraint::Unbounded, size)
    }

    /// The transformed Gaussian on `(lower, upper)` whose **constrained** mean and std
    /// are `mean` and `std` (EKP.jl's `constrained_gaussian`; see the module docs).
    ///
    /// A bound of `None` or the matching infinity is absent.
    ///
    /// # Errors
    /// [`PriorError::InvalidName`], [`PriorError::ZeroSize`], [`PriorError::InvalidMean`],
    /// [`PriorError::InvalidStd`] (std not positive and finite), [`PriorError::InvalidBounds`],
    /// [`PriorError::MeanOutsideBounds`] (mean not strictly inside), and for two bounds
    /// [`PriorError::MomentMatch`] when the std is not reachable (too large for the interval).
    pub fn constrained_gaussian(
        name: &str,
        mean: f64,
        std: f64,
        lower: Option<f64>,
        upper: Option<f64>,
        size: usize,
    ) -> Result<Self, PriorError> {
        check_name_and_size(name, size)?;
        if !mean.is_finite() {
            return Err(PriorError::InvalidMean {
                name: name.to_owned(),
                mean,
            });
        }
        check_std(name, std)?;
        let constraint = Constraint::from_bounds(name, lower, upper)?;
        if !constraint.contains(mean) {
            return Err(PriorError::MeanOutsideBounds {
                name: name.to_owned(),
                mean,
                lower: constraint.lower(),
                upper: constraint.upper(),
            });
        }
        let (mu, sigma) = match constraint {
            Constraint::Unbounded => (mean, std),
            Constraint::BoundedBelow { lower } => inverse_lognormal_moments(mean - lower, std),
            Constraint::BoundedAbove { upper } => inverse_lognormal_moments(upper - mean, std),
            Constraint::Bounded { lower, upper } => {
                fit_bounded(mean, std, lower, upper).map_err(|reason| PriorError::MomentMatch {
                    name: name.to_owned(),
                    mean,
                    std,
                    lower,
                    upper,
                    reason,
                })?
            }
        };
        Self::from_unconstrained(name, mu, sigma, constraint, size)
    }

    /// The prior with unconstrained distribution `N(mean_u, std_u²)` and the given constraint.
    ///
    /// The constraint is normalised like [`Constraint::from_bounds`] (an infinite bound is absent).
    ///
    /// # Errors
    /// [`PriorError::InvalidName`], [`PriorError::ZeroSize`], [`PriorError::InvalidMean`],
    /// [`PriorError::InvalidStd`], [`PriorError::InvalidBounds`].
    pub fn from_unconstrained(
        name: &str,
        mean_u: f64,
        std_u: f64,
        constraint: Constraint,
        size: usize,
    ) -> Result<Self, PriorError> {
        check_name_and_size(name, size)?;
        if !mean_u.is_finite() {
            return Err(PriorError::InvalidMean {
                name: name.to_owned(),
                mean: mean_u,
            });
        }
        check_std(name, std_u)?;
        let constraint =
            Constraint::from_bounds(name, Some(constraint.lower()), Some(constraint.upper()))?;
        Ok(Self {
            name: name.to_owned(),
            size,
            unconstrained_mean: mean_u,
            unconstrained_std: std_u,
            constraint,
        })
    }

    /// The parameter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of (independent, identically distributed) components.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The constraint of every component.
    pub fn constraint(&self) -> Constraint {
        self.constraint
    }

    /// `μ_u`, the mean of each component in unconstrained space.
    pub fn unconstrained_mean(&self) -> f64 {
        self.unconstrained_mean
    }

    /// `σ_u`, the std of each component in unconstrained space.
    pub fn unconstrained_std(&self) -> f64 {
        self.unconstrained_std
    }

    /// The mean of each component in constrained space, `E[T⁻¹(u)]`.
    ///
    /// Closed form without or with one bound (lognormal); by quadrature with two.
    pub fn constrained_mean(&self) -> f64 {
        let (mu, sigma) = (self.unconstrained_mean, self.unconstrained_std);
        match self.constraint {
            Constraint::Unbounded => mu,
            Constraint::BoundedBelow { lower } => lower + (mu + 0.5 * sigma * sigma).exp(),
            Constraint::BoundedAbove { upper } => upper - (mu + 0.5 * sigma * sigma).exp(),
            Constraint::Bounded { lower, upper } => {
                // Measured from the nearer bound, to keep the relative precision there.
                let m = logit_normal_moments(mu, sigma);
                let hw = half_width(lower, upper);
                if m.mean <= 0.5 {
                    lower + 2.0 * (hw * m.mean)
                } else {
                    upper - 2.0 * (hw * m.mean_complement)
                }
            }
        }
    }

    /// The std of each component in constrained space.
    ///
    /// Closed form without or with one bound (lognormal); by quadrature with two.
    pub fn constrained_std(&self) -> f64 {
        let (mu, sigma) = (self.unconstrained_mean, self.unconstrained_std);
        match self.constraint {
            Constraint::Unbounded => sigma,
            Constraint::BoundedBelow { .. } | Constraint::BoundedAbove { .. } => {
                (mu + 0.5 * sigma * sigma).exp() * (sigma * sigma).exp_m1().sqrt()
            }
            Constraint::Bounded { lower, upper } => {
                2.0 * half_width(lower, upper) * logit_normal_moments(mu, sigma).var.sqrt()
            }
        }
    }

    /// The `q`-quantile of each component in constrained space, `q ∈ [0, 1]`.
    ///
    /// The transform of the Gaussian quantile (for [`Constraint::BoundedAbove`], whose map
    /// is decreasing, of the `1 − q` quantile). `q = 0` and `q = 1` give the bounds
    /// (`∓∞` where absent); `q` outside `[0, 1]` or NaN gives NaN.
    pub fn constrained_quantile(&self, q: f64) -> f64 {
        if q.is_nan() || !(0.0..=1.0).contains(&q) {
            return f64::NAN;
        }
        if q == 0.0 {
            return self.constraint.lower();
        }
        if q == 1.0 {
            return self.constraint.upper();
        }
        let z = standard_normal_quantile(q);
        let u = match self.constraint {
            Constraint::BoundedAbove { .. } => self.unconstrained_mean - self.unconstrained_std * z,
            _ => self.unconstrained_mean + self.unconstrained_std * z,
        };
        self.constraint.to_constrained(u)
    }

    /// The names of the components in the flat parameter vector: `name` for a scalar,
    /// `name[1]`, `name[2]`, ... (1-based) for a vector.
    pub fn flat_names(&self) -> Vec<String> {
        if self.size == 1 {
            vec![self.name.clone()]
        } else {
            (1..=self.size)
                .map(|i| format!("{}[{i}]", self.name))
                .collect()
        }
    }
}

/// The serialized form of a [`ParameterPrior`], validated on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParameterPriorRepr {
    name: String,
    #[serde(default = "one")]
    size: usize,
    unconstrained_mean: f64,
    unconstrained_std: f64,
    constraint: ConstraintRepr,
}

fn one() -> usize {
    1
}

impl TryFrom<ParameterPriorRepr> for ParameterPrior {
    type Error = PriorError;

    fn try_from(r: ParameterPriorRepr) -> Result<Self, Self::Error> {
        let constraint = r.constraint.into_constraint(&r.name)?;
        Self::from_unconstrained(
            &r.name,
            r.unconstrained_mean,
            r.unconstrained_std,
            constraint,
            r.size,
        )
    }
}

/// The joint prior: independent parameters, stacked in order into one flat vector.
///
/// Serialized as `parameters = [...]` (validated when deserialized).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PriorRepr")]
pub struct Prior {
    parameters: Vec<ParameterPrior>,
}

/// The serialized form of a [`Prior`], validated on the way in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriorRepr {
    parameters: Vec<ParameterPrior>,
}

impl TryFrom<PriorRepr> for Prior {
    type Error = PriorError;

    fn try_from(r: PriorRepr) -> Result<Self, Self::Error> {
        Self::new(r.parameters)
    }
}

impl Prior {
    /// The prior of the given parameters, in this order.
    ///
    /// # Errors
    /// [`PriorError::Empty`] without parameters, [`PriorError::DuplicateName`] when two share a name.
    pub fn new(parameters: Vec<ParameterPrior>) -> Result<Self, PriorError> {
        if parameters.is_empty() {
            return Err(PriorError::Empty);
        }
        let mut seen = HashSet::new();
        for p in &parameters {
            if !seen.insert(p.name()) {
                return Err(PriorError::DuplicateName {
                    name: p.name().to_owned(),
                });
            }
        }
        Ok(Self { parameters })
    }

    /// The parameters, in order.
    pub fn parameters(&self) -> &[ParameterPrior] {
        &self.parameters
    }

    /// The parameter with this name.
    pub fn parameter(&self, name: &str) -> Option<&ParameterPrior> {
        self.parameters.iter().find(|p| p.name() == name)
    }

    /// Length of the flat parameter vector (sum of the sizes).
    pub fn dim(&self) -> usize {
        self.parameters.iter().map(ParameterPrior::size).sum()
    }

    /// The rows of each parameter in the flat vector, in parameter order.
    pub fn ranges(&self) -> Vec<Range<usize>> {
        let mut start = 0;
        self.parameters
            .iter()
            .map(|p| {
                let r = start..start + p.size();
                start = r.end;
                r
            })
            .collect()
    }

    /// The name of every row of the flat vector (see [`ParameterPrior::flat_names`]).
    pub fn flat_names(&self) -> Vec<String> {
        self.parameters
            .iter()
            .flat_map(ParameterPrior::flat_names)
            .collect()
    }

    /// The constraint of every row of the flat vector.
    pub fn constraints(&self) -> Vec<Constraint> {
        self.flat(|p| p.constraint())
    }

    /// The unconstrained prior mean (flat).
    pub fn mean(&self) -> DVector<f64> {
        DVector::from_vec(self.flat(ParameterPrior::unconstrained_mean))
    }

    /// The unconstrained prior std (flat).
    pub fn std(&self) -> DVector<f64> {
        DVector::from_vec(self.flat(ParameterPrior::unconstrained_std))
    }

    /// The unconstrained prior covariance (diagonal, `dim × dim`).
    pub fn cov(&self) -> DMatrix<f64> {
        DMatrix::from_diagonal(&self.std().map(|s| s * s))
    }

    /// `n` independent draws from the unconstrained prior, one per column (`dim × n`).
    ///
    /// Drawn member by member (column by column), each component as
    /// `mean + std · z` with `z` from [`StandardNormal`], so a seeded RNG gives the same
    /// matrix everywhere.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> DMatrix<f64> {
        let mean = self.mean();
        let std = self.std();
        let dim = mean.len();
        let mut data = Vec::with_capacity(dim * n);
        for _ in 0..n {
            for (m, s) in mean.iter().zip(std.iter()) {
                let z: f64 = StandardNormal.sample(rng);
                data.push(m + s * z);
            }
        }
        DMatrix::from_vec(dim, n, data)
    }

    /// Maps an unconstrained flat vector to constrained space, row by row.
    ///
    /// `u` should have [`Prior::dim`] rows; any extra rows are copied unchanged.
    pub fn to_constrained(&self, u: &DVector<f64>) -> DVector<f64> {
        let constraints = self.constraints();
        DVector::from_iterator(
            u.len(),
            u.iter()
                .enumerate()
                .map(|(i, &v)| map_row(&constraints, i, v, true)),
        )
    }

    /// Maps each column of an unconstrained ensemble (`dim × N`) to constrained space.
    ///
    /// Any rows beyond [`Prior::dim`] are copied unchanged.
    pub fn to_constrained_matrix(&self, u: &DMatrix<f64>) -> DMatrix<f64> {
        let constraints = self.constraints();
        DMatrix::from_fn(u.nrows(), u.ncols(), |i, j| {
            map_row(&constraints, i, u[(i, j)], true)
        })
    }

    /// Maps a constrained flat vector to unconstrained space, row by row (NaN for a value
    /// outside its domain).
    ///
    /// `x` should have [`Prior::dim`] rows; any extra rows are copied unchanged.
    pub fn to_unconstrained(&self, x: &DVector<f64>) -> DVector<f64> {
        let constraints = self.constraints();
        DVector::from_iterator(
            x.len(),
            x.iter()
                .enumerate()
                .map(|(i, &v)| map_row(&constraints, i, v, false)),
        )
    }

    /// Maps each column of a constrained ensemble (`dim × N`) to unconstrained space.
    pub fn to_unconstrained_matrix(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        let constraints = self.constraints();
        DMatrix::from_fn(x.nrows(), x.ncols(), |i, j| {
            map_row(&constraints, i, x[(i, j)], false)
        })
    }

    /// One value per flat row.
    fn flat<T: Copy>(&self, f: impl Fn(&ParameterPrior) -> T) -> Vec<T> {
        self.parameters
            .iter()
            .flat_map(|p| std::iter::repeat_n(f(p), p.size()))
            .collect()
    }
}

/// Row `i`'s transform of `v` (identity beyond the known rows).
fn map_row(constraints: &[Constraint], i: usize, v: f64, to_constrained: bool) -> f64 {
    match constraints.get(i) {
        Some(c) if to_constrained => c.to_constrained(v),
        Some(c) => c.to_unconstrained(v),
        None => v,
    }
}

fn check_name_and_size(name: &str, size: usize) -> Result<(), PriorError> {
    if name.is_empty() {
        return Err(PriorError::InvalidName {
            name: name.to_owned(),
        });
    }
    if size == 0 {
        return Err(PriorError::ZeroSize {
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn check_std(name: &str, std: f64) -> Result<(), PriorError> {
    if std > 0.0 && std.is_finite() {
        Ok(())
    } else {
        Err(PriorError::InvalidStd {
            name: name.to_owned(),
            std,
        })
    }
}

/// Half the width of `(lower, upper)`, without overflow for huge bounds.
fn half_width(lower: f64, upper: f64) -> f64 {
    0.5 * upper - 0.5 * lower
}

/// `(μ, σ)` of the normal whose exponential (lognormal) has mean `m > 0` and std `s > 0`:
/// `σ² = ln(1 + (s/m)²)`, `μ = ln m − σ²/2`, without overflow or underflow of `(s/m)²`.
fn inverse_lognormal_moments(m: f64, s: f64) -> (f64, f64) {
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
fn fit_bounded(mean: f64, std: f64, lower: f64, upper: f64) -> Result<(f64, f64), String> {
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

/// The standard normal quantile `Φ⁻¹(p)` (Wichura's algorithm AS 241, relative error
/// about 1e-16).
///
/// `p = 0` gives `−∞`, `p = 1` gives `+∞`, `p` outside `[0, 1]` or NaN gives NaN.
pub fn standard_normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * poly(&AS241_A, r) / poly(&AS241_B, r);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let x = if r <= 5.0 {
        let r = r - 1.6;
        poly(&AS241_C, r) / poly(&AS241_D, r)
    } else {
        let r = r - 5.0;
        poly(&AS241_E, r) / poly(&AS241_F, r)
    };
    if q < 0.0 { -x } else { x }
}

/// `c[0] + c[1] x + ... + c[7] x⁷` by Horner's rule.
fn poly(c: &[f64; 8], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

// Coefficients of AS 241 (PPND16), M. J. Wichura, Applied Statistics 37 (1988) 477–484.
#[allow(clippy::excessive_precision)]
const AS241_A: [f64; 8] = [
    3.387_132_872_796_366_608_0,
    1.331_416_678_917_843_774_5e2,
    1.971_590_950_306_551_442_7e3,
    1.373_169_376_550_946_112_5e4,
    4.592_195_393_154_987_145_7e4,
    6.726_577_092_700_870_085_3e4,
    3.343_057_558_358_812_810_5e4,
    2.509_080_928_730_122_672_7e3,
];
#[allow(clippy::excessive_precision)]
const AS241_B: [f64; 8] = [
    1.0,
    4.231_333_070_160_091_125_2e1,
    6.871_870_074_920_579_083_0e2,
    5.394_196_021_424_751_107_7e3,
    2.121_379_430_158_659_586_7e4,
    3.930_789_580_009_271_061_0e4,
    2.872_908_573_572_194_267_4e4,
    5.226_495_278_852_854_561_0e3,
];
#[allow(clippy::excessive_precision)]
const AS241_C: [f64; 8] = [
    1.423_437_110_749_683_577_34,
    4.630_337_846_156_545_295_90,
    5.769_497_221_460_691_405_50,
    3.647_848_324_763_204_605_04,
    1.270_458_252_452_368_382_58,
    2.417_807_251_774_506_117_70e-1,
    2.272_384_498_926_918_458_33e-2,
    7.745_450_142_783_414_076_40e-4,
];
#[allow(clippy::excessive_precision)]
const AS241_D: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87,
    1.676_384_830_183_803_849_40,
    6.897_673_349_851_000_045_50e-1,
    1.481_039_764_274_800_745_90e-1,
    1.519_866_656_361_645_719_66e-2,
    5.475_938_084_995_344_946_00e-4,
    1.050_750_071_644_416_843_24e-9,
];
#[allow(clippy::excessive_precision)]
const AS241_E: [f64; 8] = [
    6.657_904_643_501_103_777_20,
    5.463_784_911_164_114_369_90,
    1.784_826_539_917_291_335_80,
    2.965_605_718_285_048_912_30e-1,
    2.653_218_952_657_612_309_30e-2,
    1.242_660_947_388_078_438_60e-3,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];
#[allow(clippy::excessive_precision)]
const AS241_F: [f64; 8] = [
    1.0,
    5.998_322_065_558_879_376_90e-1,
    1.369_298_809_227_358_053_10e-1,
    1.487_536_129_085_061_485_25e-2,
    7.868_691_311_456_132_591_00e-4,
    1.846_318_317_510_054_681_80e-5,
    1.421_511_758_316_445_888_70e-7,
    2.044_263_103_389_939_785_64e-15,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Φ(x) for x ≤ 0 (and 1 − Φ(x) for x > 0: the tail beyond |x|) by Simpson's rule.
    fn normal_tail(x: f64) -> f64 {
        let a = x.abs();
        let (lo, hi) = (a, a + 12.0);
        let n = 200_000;
        let h = (hi - lo) / n as f64;
        let phi = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let mut s = phi(lo) + phi(hi);
        for i in 1..n {
            let t = lo + i as f64 * h;
            s += if i % 2 == 1 { 4.0 } else { 2.0 } * phi(t);
        }
        s * h / 3.0
    }

    #[test]
    fn quantile_inverts_the_normal_cdf() {
        for &p in &[
            1e-300, 1e-100, 1e-20, 1e-8, 1e-3, 0.02, 0.074, 0.076, 0.2, 0.4, 0.5, 0.6, 0.9, 0.99,
            0.999_999,
        ] {
            let x = standard_normal_quantile(p);
            let tail = normal_tail(x);
            let (want, got) = if x <= 0.0 { (p, tail) } else { (1.0 - p, tail) };
            if x.abs() < 1e-12 {
                assert_eq!(p, 0.5);
                continue;
            }
            assert!(
                ((got - want) / want).abs() < 1e-11 * (1.0 + x.abs()),
                "p = {p}: x = {x}, tail {got} vs {want}"
            );
        }
    }

    #[test]
    fn quantile_known_values_and_symmetry() {
        let cases = [
            (0.975, 1.959_963_984_540_054),
            (0.95, 1.644_853_626_951_472_2),
            (0.995, 2.575_829_303_548_900_4),
            (0.999, 3.090_232_306_167_813_5),
            (0.841_344_746_068_542_9, 1.0),
        ];
        for (p, want) in cases {
            let got = standard_normal_quantile(p);
            assert!(
                (got - want).abs() < 1e-14 * want.abs().max(1.0),
                "{p}: {got} vs {want}"
            );
            assert!((standard_normal_quantile(1.0 - p) + want).abs() < 1e-13);
        }
        assert_eq!(standard_normal_quantile(0.5), 0.0);
        assert_eq!(standard_normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(standard_normal_quantile(1.0), f64::INFINITY);
        assert!(standard_normal_quantile(-0.1).is_nan());
        assert!(standard_normal_quantile(1.1).is_nan());
        assert!(standard_normal_quantile(f64::NAN).is_nan());
    }

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
