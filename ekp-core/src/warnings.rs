//! Warnings: settings and outputs that work but are likely to give poor
//! results, as EKP.jl's `@warn`s. The library never prints them; it returns
//! them ([`EnsembleKalmanProcess::warnings`](crate::EnsembleKalmanProcess::warnings),
//! [`UpdateReport::warnings`](crate::UpdateReport::warnings))
//! and the caller shows them (`ekp-cli` logs them at warning level).
//!
//! - Ensemble size (EKP.jl's `EnsembleKalmanProcess` constructor, for every
//!   process but UKI/UTKI, which fix their own size): fewer than 10 members;
//!   otherwise, for `p < 10` parameters, fewer than `10 p` members; and, for
//!   `p ≥ 10`, fewer than 100 members.
//! - Repeated outputs (EKP.jl's `warn_on_repeated_columns`): members whose
//!   outputs are exactly equal (and finite), usually a bug in the forward map
//!   that makes the output covariance singular.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use nalgebra::DMatrix;

use crate::process::Process;

/// Something worth telling the user that does not stop the calibration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// The ensemble is smaller than EKP.jl recommends for its parameters.
    SmallEnsemble {
        /// Members `N`.
        members: usize,
        /// Parameters `p` (flat components).
        parameters: usize,
        /// The recommended minimum.
        recommended: usize,
    },
    /// Members whose outputs are exactly equal to an earlier member's.
    RepeatedOutputs {
        /// Pairs `(earlier, later)` of 1-based member numbers with equal outputs.
        pairs: Vec<(usize, usize)>,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::SmallEnsemble {
                members,
                parameters,
                recommended,
            } => write!(
                f,
                "for {parameters} parameter{} the recommended minimum ensemble size is \
                 {recommended}; got {members} members (process.ensemble_size)",
                if *parameters == 1 { "" } else { "s" }
            ),
            Warning::RepeatedOutputs { pairs } => {
                let shown: Vec<String> = pairs
                    .iter()
                    .take(10)
                    .map(|(a, b)| format!("{a}={b}"))
                    .collect();
                write!(
                    f,
                    "{} member{} produced outputs exactly equal to another member's \
                     (members {}{}); this is likely a bug in the forward model and makes \
                     the output covariance singular",
                    pairs.len(),
                    if pairs.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if pairs.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                )
            }
        }
    }
}

/// EKP.jl's ensemble-size warnings for `members` members of `process` with
/// `parameters` parameters (none for UKI/UTKI, which fix their own size).
pub fn ensemble_size(process: &Process, parameters: usize, members: usize) -> Vec<Warning> {
    if process.derived_ensemble_size(parameters).is_some() {
        return Vec::new();
    }
    let small = |recommended: usize| Warning::SmallEnsemble {
        members,
        parameters,
        recommended,
    };
    let mut out = Vec::new();
    if members < 10 {
        out.push(small(10));
    } else if parameters < 10 && members < 10 * parameters {
        out.push(small(10 * parameters));
    }
    if parameters >= 10 && members < 100 {
        out.push(small(100));
    }
    out
}

/// Rows hashed to find candidate pairs; equal candidates are then compared
/// in full.
const FINGERPRINT_ROWS: usize = 64;

/// Pairs of members (1-based) whose outputs (columns of `g`) are exactly
/// equal and finite; a [`Warning::RepeatedOutputs`] if there are any. Cheap
/// for large `d`: columns are grouped by a hash of their first
/// 64 values, and only columns in one group are compared
/// in full (so the cost is `O(n · 64)` plus `O(d)` per equal-looking pair).
pub fn repeated_outputs(g: &DMatrix<f64>) -> Option<Warning> {
    let rows = g.nrows().min(FINGERPRINT_ROWS);
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for (j, col) in g.column_iter().enumerate() {
        let mut h = DefaultHasher::new();
        for v in col.rows(0, rows).iter() {
            // +0.0 and -0.0 compare equal: hash them alike.
            (if *v == 0.0 { 0.0f64 } else { *v }).to_bits().hash(&mut h);
        }
        groups.entry(h.finish()).or_default().push(j);
    }
    let mut pairs = Vec::new();
    for members in groups.values().filter(|m| m.len() > 1) {
        // Each member of the group against the first equal one before it.
        let mut firsts: Vec<usize> = Vec::new();
        for &j in members {
            let col = g.column(j);
            if col.iter().any(|v| !v.is_finite()) {
                continue;
            }
            match firsts.iter().find(|&&k| g.column(k) == col) {
                Some(&k) => pairs.push((k + 1, j + 1)),
                None => firsts.push(j),
            }
        }
    }
    pairs.sort_unstable();
    (!pairs.is_empty()).then_some(Warning::RepeatedOutputs { pairs })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::process::{Inversion, Unscented};

    fn recommended(w: &[Warning]) -> Vec<usize> {
        w.iter()
            .map(|w| match w {
                Warning::SmallEnsemble { recommended, .. } => *recommended,
                Warning::RepeatedOutputs { .. } => panic!("unexpected {w}"),
            })
            .collect()
    }

    #[test]
    fn ensemble_size_follows_ekp_jl_thresholds() {
        let eki = Process::Inversion(Inversion::default());
        assert_eq!(recommended(&ensemble_size(&eki, 2, 5)), vec![10]);
        assert_eq!(recommended(&ensemble_size(&eki, 2, 19)), vec![20]);
        assert!(ensemble_size(&eki, 2, 20).is_empty());
        assert!(ensemble_size(&eki, 9, 90).is_empty());
        assert_eq!(recommended(&ensemble_size(&eki, 9, 89)), vec![90]);
        assert_eq!(recommended(&ensemble_size(&eki, 10, 99)), vec![100]);
        assert_eq!(recommended(&ensemble_size(&eki, 12, 5)), vec![10, 100]);
        assert!(ensemble_size(&eki, 50, 100).is_empty());
        let uki = Process::Unscented(Unscented::new(false));
        assert!(ensemble_size(&uki, 50, 5).is_empty());
        let text = ensemble_size(&eki, 2, 5)[0].to_string();
        assert!(
            text.contains("10") && text.contains("ensemble_size"),
            "{text}"
        );
    }

    #[test]
    fn repeated_columns_are_found_exactly() {
        let mut g = DMatrix::from_fn(3, 6, |i, j| (i * 7 + j * 3) as f64 * 0.1);
        assert_eq!(repeated_outputs(&g), None);
        let c1 = g.column(1).clone_owned();
        g.set_column(4, &c1);
        // A non-finite column equal elsewhere does not count.
        g.column_mut(2).fill(f64::NAN);
        g.column_mut(5).fill(f64::NAN);
        assert_eq!(
            repeated_outputs(&g),
            Some(Warning::RepeatedOutputs {
                pairs: vec![(2, 5)]
            })
        );
        // Signed zeros are equal values.
        let mut z = DMatrix::zeros(2, 2);
        z[(0, 1)] = -0.0;
        assert!(repeated_outputs(&z).is_some());
        // Nearly equal is not equal.
        let mut near = DMatrix::from_element(2, 2, 1.0);
        near[(1, 1)] = 1.0 + f64::EPSILON;
        assert_eq!(repeated_outputs(&near), None);
        // Columns that agree beyond the hashed rows but differ further down
        // are not equal; equal long columns are found.
        let mut long = DMatrix::from_fn(1000, 4, |i, _| i as f64);
        long[(900, 2)] = -1.0;
        assert_eq!(
            repeated_outputs(&long),
            Some(Warning::RepeatedOutputs {
                pairs: vec![(1, 2), (1, 4)]
            })
        );
    }
}
