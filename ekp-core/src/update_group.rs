//! Update groups: parameters updated from chosen subsets of the outputs
//! (EKP.jl's `UpdateGroup`).
//!
//! Each group names some parameters (flat indices into `u`) and some outputs
//! (indices into *one* observation's outputs). An update then runs the process
//! once per group, on the group's parameters `u[P, :]` against the group's
//! outputs `g[O, :]`, data `y[O]` and noise `Γ[O, O]` (and, with
//! `impose_prior`, the prior restricted to `P`); the parameter groups must
//! partition all parameters. The groups assume the parameter sets are
//! conditionally independent given their outputs: no covariance between groups
//! is used. With a minibatch of several observations (all of one length `L`,
//! as EKP.jl requires), a group's outputs repeat in each: `k L + O` for the
//! `k`-th observation of the minibatch.
//!
//! Deliberate differences from EKP.jl: duplicated indices within a group are
//! rejected; and a failed member (see [`failure`](crate::failure)) is failed in
//! every group, where EKP.jl re-detects failures from each group's own rows.

use serde::{Deserialize, Serialize};

/// Parameters updated from a subset of the outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroup {
    /// Flat parameter indices (0-based).
    pub parameters: Vec<usize>,
    /// Output indices within one observation (0-based).
    pub outputs: Vec<usize>,
}

impl UpdateGroup {
    /// A group of these parameters and outputs.
    pub fn new(parameters: Vec<usize>, outputs: Vec<usize>) -> Self {
        Self {
            parameters,
            outputs,
        }
    }
}

/// Checks that `groups` partition `0..p` and name outputs in `0..obs_dim`.
pub fn validate_groups(groups: &[UpdateGroup], p: usize, obs_dim: usize) -> Result<(), String> {
    let mut owner: Vec<Option<usize>> = vec![None; p];
    for (k, g) in groups.iter().enumerate() {
        let at = k + 1;
        if g.parameters.is_empty() {
            return Err(format!("update_groups[{at}].parameters is empty"));
        }
        if g.outputs.is_empty() {
            return Err(format!("update_groups[{at}].outputs is empty"));
        }
        for &i in &g.parameters {
            match owner.get(i) {
                None => {
                    return Err(format!(
                        "update_groups[{at}].parameters: index {} (counting from 1) is beyond the {p} parameter components",
                        i + 1
                    ));
                }
                Some(Some(other)) => {
                    return Err(format!(
                        "update_groups[{at}].parameters: component {} (counting from 1) is already in update_groups[{}]",
                        i + 1,
                        other + 1
                    ));
                }
                Some(None) => owner[i] = Some(k),
            }
        }
        for (n, &o) in g.outputs.iter().enumerate() {
            if o >= obs_dim {
                return Err(format!(
                    "update_groups[{at}].outputs: output {} (counting from 1) is beyond the {obs_dim} outputs of an observation",
                    o + 1
                ));
            }
            if g.outputs[..n].contains(&o) {
                return Err(format!(
                    "update_groups[{at}].outputs names output {} twice",
                    o + 1
                ));
            }
        }
    }
    if let Some(missing) = owner.iter().position(Option::is_none) {
        return Err(format!(
            "update_groups must cover every parameter component; component {} (counting from 1) is in none",
            missing + 1
        ));
    }
    Ok(())
}

/// The output rows of `group` within a minibatch of `count` observations of
/// `obs_dim` outputs each.
pub(crate) fn minibatch_rows(group: &UpdateGroup, count: usize, obs_dim: usize) -> Vec<usize> {
    (0..count)
        .flat_map(|k| group.outputs.iter().map(move |&o| k * obs_dim + o))
        .collect()
}
