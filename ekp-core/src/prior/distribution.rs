//! The distributions: [`ParameterPrior`] (one named parameter, a transformed
//! Gaussian per component) and [`Prior`] (independent parameters stacked into
//! one flat vector), their validation, serde forms and sampling.

use std::collections::HashSet;
use std::ops::Range;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::moments::{fit_bounded, inverse_lognormal_moments};
use crate::constraint::{Constraint, ConstraintRepr};
use crate::error::PriorError;

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

    /// One value per flat row.
    pub(super) fn flat<T: Copy>(&self, f: impl Fn(&ParameterPrior) -> T) -> Vec<T> {
        self.parameters
            .iter()
            .flat_map(|p| std::iter::repeat_n(f(p), p.size()))
            .collect()
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
