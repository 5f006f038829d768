//! Constraints: smooth bijections between a parameter's physical (constrained)
//! domain and the real line, on which the ensemble Kalman processes work.
//!
//! | constraint | domain of `x` | `u = T(x)` | `x = T⁻¹(u)` |
//! |---|---|---|---|
//! | unbounded | ℝ | `x` | `u` |
//! | bounded below | `(lb, ∞)` | `ln(x − lb)` | `lb + eᵘ` |
//! | bounded above | `(−∞, ub)` | `ln(ub − x)` | `ub − eᵘ` |
//! | bounded | `(lb, ub)` | `ln((x − lb)/(ub − x))` | `(ub eᵘ + lb)/(eᵘ + 1)` |
//!
//! These are EnsembleKalmanProcesses.jl's `no_constraint`, `bounded_below`,
//! `bounded_above` and `bounded`. Note that `bounded_above` is *decreasing*.

use serde::{Deserialize, Serialize};

use crate::error::PriorError;

/// The domain of one scalar parameter and its map to the real line (see the module docs).
///
/// Serialized as a table tagged by `kind`: `{ kind = "unbounded" }`,
/// `{ kind = "bounded-below", lower = 0.0 }`, `{ kind = "bounded-above", upper = 1.0 }`,
/// `{ kind = "bounded", lower = 0.0, upper = 1.0 }`. Deserialization validates the
/// bounds like [`Constraint::from_bounds`] (an infinite bound means "absent").
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", try_from = "ConstraintRepr")]
pub enum Constraint {
    /// No constraint: `u = x`.
    #[default]
    Unbounded,
    /// `x > lower`: `u = ln(x − lower)`.
    BoundedBelow {
        /// The (finite) lower bound.
        lower: f64,
    },
    /// `x < upper`: `u = ln(upper − x)` (decreasing in `x`).
    BoundedAbove {
        /// The (finite) upper bound.
        upper: f64,
    },
    /// `lower < x < upper`: `u = ln((x − lower)/(upper − x))`.
    Bounded {
        /// The (finite) lower bound.
        lower: f64,
        /// The (finite) upper bound.
        upper: f64,
    },
}

impl Constraint {
    /// The constraint for the open interval `(lower, upper)`.
    ///
    /// `None` or an infinite bound on the right side (`−∞` below, `+∞` above) means
    /// "absent". `name` is the parameter's name, used in the error.
    ///
    /// # Errors
    /// [`PriorError::InvalidBounds`] if a bound is NaN, `lower` is `+∞`, `upper` is
    /// `−∞`, `lower >= upper`, or no floating-point number lies strictly between them.
    pub fn from_bounds(
        name: &str,
        lower: Option<f64>,
        upper: Option<f64>,
    ) -> Result<Self, PriorError> {
        let lo = lower.unwrap_or(f64::NEG_INFINITY);
        let hi = upper.unwrap_or(f64::INFINITY);
        let invalid = || PriorError::InvalidBounds {
            name: name.to_owned(),
            lower: lo,
            upper: hi,
        };
        // `lo >= hi` also rejects lower = +∞ and upper = −∞.
        if lo.is_nan() || hi.is_nan() || lo >= hi {
            return Err(invalid());
        }
        Ok(match (lo.is_finite(), hi.is_finite()) {
            (false, false) => Self::Unbounded,
            (true, false) => Self::BoundedBelow { lower: lo },
            (false, true) => Self::BoundedAbove { upper: hi },
            (true, true) => {
                if next_up(lo) >= hi {
                    return Err(invalid());
                }
                Self::Bounded {
                    lower: lo,
                    upper: hi,
                }
            }
        })
    }

    /// The lower bound, `−∞` when there is none.
    pub fn lower(&self) -> f64 {
        match *self {
            Self::BoundedBelow { lower } | Self::Bounded { lower, .. } => lower,
            Self::Unbounded | Self::BoundedAbove { .. } => f64::NEG_INFINITY,
        }
    }

    /// The upper bound, `+∞` when there is none.
    pub fn upper(&self) -> f64 {
        match *self {
            Self::BoundedAbove { upper } | Self::Bounded { upper, .. } => upper,
            Self::Unbounded | Self::BoundedBelow { .. } => f64::INFINITY,
        }
    }

    /// Whether `x` lies strictly inside the domain (the open interval). NaN never does.
    pub fn contains(&self, x: f64) -> bool {
        self.lower() < x && x < self.upper()
    }

    /// Whether this is [`Constraint::Unbounded`].
    pub fn is_unbounded(&self) -> bool {
        matches!(self, Self::Unbounded)
    }

    /// The map `x ↦ u` to the real line.
    ///
    /// For `x` outside the domain the result is NaN, and `±∞` on a bound.
    pub fn to_unconstrained(&self, x: f64) -> f64 {
        match *self {
            Self::Unbounded => x,
            Self::BoundedBelow { lower } => (x - lower).ln(),
            Self::BoundedAbove { upper } => (upper - x).ln(),
            // ln(x − lb) − ln(ub − x): no overflow of the ratio near the upper bound.
            Self::Bounded { lower, upper } => (x - lower).ln() - (upper - x).ln(),
        }
    }

    /// The map `u ↦ x` from the real line into the domain (inverse of
    /// [`Constraint::to_unconstrained`]).
    ///
    /// The result lies strictly inside the domain for every finite `u` (and for
    /// `u = ±∞` where that side is bounded): where rounding would land on a bound it
    /// is moved to the nearest float inside. NaN maps to NaN.
    pub fn to_constrained(&self, u: f64) -> f64 {
        match *self {
            Self::Unbounded => u,
            Self::BoundedBelow { lower } => above(lower, lower + u.exp()),
            Self::BoundedAbove { upper } => below(upper, upper - u.exp()),
            Self::Bounded { lower, upper } => {
                // (ub eᵘ + lb)/(eᵘ + 1), divided through by the larger of eᵘ and 1.
                let x = if u >= 0.0 {
                    let e = (-u).exp();
                    (upper + lower * e) / (1.0 + e)
                } else {
                    let e = u.exp();
                    (upper * e + lower) / (1.0 + e)
                };
                below(upper, above(lower, x))
            }
        }
    }
}

/// `x`, or the smallest float above `lower` if `x <= lower` (NaN passes through).
fn above(lower: f64, x: f64) -> f64 {
    if x <= lower { next_up(lower) } else { x }
}

/// `x`, or the largest float below `upper` if `x >= upper` (NaN passes through).
fn below(upper: f64, x: f64) -> f64 {
    if x >= upper { -next_up(-upper) } else { x }
}

/// The smallest float greater than `x` (`f64::next_up`, which needs Rust 1.86).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    if x > 0.0 {
        f64::from_bits(bits + 1)
    } else {
        f64::from_bits(bits - 1)
    }
}

/// The serialized form of a [`Constraint`], validated on the way in.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) enum ConstraintRepr {
    Unbounded,
    BoundedBelow { lower: f64 },
    BoundedAbove { upper: f64 },
    Bounded { lower: f64, upper: f64 },
}

impl ConstraintRepr {
    /// The validated constraint; `name` is the parameter it belongs to, for errors.
    pub(crate) fn into_constraint(self, name: &str) -> Result<Constraint, PriorError> {
        match self {
            Self::Unbounded => Ok(Constraint::Unbounded),
            Self::BoundedBelow { lower } => Constraint::from_bounds(name, Some(lower), None),
            Self::BoundedAbove { upper } => Constraint::from_bounds(name, None, Some(upper)),
            Self::Bounded { lower, upper } => {
                Constraint::from_bounds(name, Some(lower), Some(upper))
            }
        }
    }
}

impl TryFrom<ConstraintRepr> for Constraint {
    type Error = String;

    fn try_from(repr: ConstraintRepr) -> Result<Self, Self::Error> {
        repr.into_constraint("<constraint>").map_err(|e| match e {
            PriorError::InvalidBounds { lower, upper, .. } => format!(
                "invalid constraint bounds: lower = {lower}, upper = {upper} (need lower < upper, no NaN)"
            ),
            other => other.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_up_steps_one_ulp() {
        assert_eq!(next_up(1.0), 1.0 + f64::EPSILON);
        assert_eq!(next_up(0.0), f64::from_bits(1));
        assert_eq!(next_up(-0.0), f64::from_bits(1));
        assert!(next_up(-1.0) > -1.0);
        assert_eq!(next_up(f64::NEG_INFINITY), f64::MIN);
        assert_eq!(next_up(f64::INFINITY), f64::INFINITY);
        assert_eq!(-next_up(-1.0), 1.0 - f64::EPSILON / 2.0);
    }

    #[test]
    fn extreme_u_stays_inside() {
        let c = Constraint::Bounded {
            lower: 0.0,
            upper: 1.0,
        };
        for u in [
            -1e4,
            -800.0,
            -40.0,
            40.0,
            800.0,
            1e4,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let x = c.to_constrained(u);
            assert!(c.contains(x), "u = {u} gave {x}");
        }
        assert!(c.to_constrained(f64::NAN).is_nan());
        let c = Constraint::BoundedBelow { lower: 3.0 };
        assert!(c.contains(c.to_constrained(-1e3)));
        let c = Constraint::BoundedAbove { upper: -3.0 };
        assert!(c.contains(c.to_constrained(-1e3)));
    }

    #[test]
    fn huge_bounds_do_not_overflow() {
        let c = Constraint::Bounded {
            lower: -f64::MAX,
            upper: f64::MAX,
        };
        assert_eq!(c.to_constrained(0.0), 0.0);
        let x = c.to_constrained(1.0);
        assert!(x.is_finite() && x > 0.0);
    }

    #[test]
    fn no_interior_is_invalid() {
        assert!(Constraint::from_bounds("p", Some(1.0), Some(next_up(1.0))).is_err());
        assert!(Constraint::from_bounds("p", Some(1.0), Some(next_up(next_up(1.0)))).is_ok());
    }
}
