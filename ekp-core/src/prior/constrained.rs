//! The priors in constrained (physical) space: each component's constraint
//! maps the Gaussian `u` to `x = T⁻¹(u)`. The constrained moments and
//! quantiles of a [`ParameterPrior`], and the maps of flat vectors and
//! ensembles between the two spaces ([`Prior::to_constrained`] and back).

use nalgebra::{DMatrix, DVector};

use super::moments::half_width;
use super::quantile::standard_normal_quantile;
use super::{ParameterPrior, Prior};
use crate::constraint::Constraint;
use crate::quadrature::logit_normal_moments;

impl ParameterPrior {
    /// The mean of each component in constrained space, `E[T⁻¹(u)]`.
    ///
    /// Closed form without or with one bound (lognormal); by quadrature with two.
    pub fn constrained_mean(&self) -> f64 {
        let (mu, sigma) = (self.unconstrained_mean(), self.unconstrained_std());
        match self.constraint() {
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
        let (mu, sigma) = (self.unconstrained_mean(), self.unconstrained_std());
        match self.constraint() {
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
            return self.constraint().lower();
        }
        if q == 1.0 {
            return self.constraint().upper();
        }
        let z = standard_normal_quantile(q);
        let u = match self.constraint() {
            Constraint::BoundedAbove { .. } => {
                self.unconstrained_mean() - self.unconstrained_std() * z
            }
            _ => self.unconstrained_mean() + self.unconstrained_std() * z,
        };
        self.constraint().to_constrained(u)
    }
}

impl Prior {
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
}

/// Row `i`'s transform of `v` (identity beyond the known rows).
fn map_row(constraints: &[Constraint], i: usize, v: f64, to_constrained: bool) -> f64 {
    match constraints.get(i) {
        Some(c) if to_constrained => c.to_constrained(v),
        Some(c) => c.to_unconstrained(v),
        None => v,
    }
}
