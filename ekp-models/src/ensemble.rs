//! One-member models and their serial or threaded ensemble evaluation.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ekp_core::{ForwardModel, ModelError};
use nalgebra::DMatrix;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A model evaluated one ensemble member at a time.
///
/// Implementations must be deterministic functions of `(member, theta)`: the
/// same call gives the same bits on any thread, which is what makes
/// [`Execution::Serial`] and [`Execution::Threads`] agree exactly.
pub trait MemberModel: Send + Sync {
    /// A short name for messages (`lorenz96`, `linear`, `sinusoid`).
    fn name(&self) -> &str;

    /// The names of the parameters, in order (`parameter_dim()` of them).
    fn parameter_names(&self) -> Vec<String>;

    /// Number of parameters `p` one member takes.
    fn parameter_dim(&self) -> usize;

    /// Number of outputs `d` one member produces.
    fn output_dim(&self) -> usize;

    /// Evaluate member `member` (0-based column index in the ensemble) at the
    /// constrained parameters `theta`, writing `output_dim()` values to `out`.
    ///
    /// A member that fails (non-finite state, a parameter vector of the wrong
    /// length, an output buffer of the wrong length) fills `out` with NaN. It
    /// never panics.
    fn evaluate_member(&self, member: usize, theta: &[f64], out: &mut [f64]);

    /// Evaluate the consecutive members `first_member`, `first_member + 1`, …:
    /// `thetas` holds their parameters one member after another
    /// (`parameter_dim()` values each), `outs` receives their outputs the
    /// same way (`output_dim()` values each; its length sets the number of
    /// members).
    ///
    /// Every member's outputs must be bit-identical to
    /// [`Self::evaluate_member`]'s, so how an [`Ensemble`] cuts the ensemble
    /// into batches never changes a result. The default evaluates the members
    /// one by one; models with a faster many-member kernel (Lorenz 96)
    /// override it. Never panics.
    fn evaluate_batch(&self, first_member: usize, thetas: &[f64], outs: &mut [f64]) {
        let p = self.parameter_dim();
        let d = self.output_dim();
        if d == 0 {
            return;
        }
        for (j, out) in outs.chunks_mut(d).enumerate() {
            let theta = thetas.get(j * p..(j + 1) * p).unwrap_or(&[]);
            self.evaluate_member(first_member + j, theta, out);
        }
    }

    /// Members per [`Self::evaluate_batch`] call this model prefers: the
    /// number an [`Ensemble`] hands it at once (1 by default).
    fn batch_size(&self) -> usize {
        1
    }

    /// Evaluate one member into a new vector, checking the parameter count.
    ///
    /// Non-finite outputs are replaced by an all-NaN vector, as in an
    /// [`Ensemble`] evaluation (the member failed).
    fn evaluate_single(&self, member: usize, theta: &[f64]) -> Result<Vec<f64>, ModelError> {
        if theta.len() != self.parameter_dim() {
            return Err(ModelError::ParameterCount {
                model: self.name().to_string(),
                expected: self.parameter_dim(),
                got: theta.len(),
            });
        }
        let mut out = vec![0.0; self.output_dim()];
        self.evaluate_member(member, theta, &mut out);
        mark_failure(&mut out);
        Ok(out)
    }
}

impl<M: MemberModel + ?Sized> MemberModel for Box<M> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn parameter_names(&self) -> Vec<String> {
        (**self).parameter_names()
    }
    fn parameter_dim(&self) -> usize {
        (**self).parameter_dim()
    }
    fn output_dim(&self) -> usize {
        (**self).output_dim()
    }
    fn evaluate_member(&self, member: usize, theta: &[f64], out: &mut [f64]) {
        (**self).evaluate_member(member, theta, out);
    }
    fn evaluate_batch(&self, first_member: usize, thetas: &[f64], outs: &mut [f64]) {
        (**self).evaluate_batch(first_member, thetas, outs);
    }
    fn batch_size(&self) -> usize {
        (**self).batch_size()
    }
}

impl<M: MemberModel + ?Sized> MemberModel for Arc<M> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn parameter_names(&self) -> Vec<String> {
        (**self).parameter_names()
    }
    fn parameter_dim(&self) -> usize {
        (**self).parameter_dim()
    }
    fn output_dim(&self) -> usize {
        (**self).output_dim()
    }
    fn evaluate_member(&self, member: usize, theta: &[f64], out: &mut [f64]) {
        (**self).evaluate_member(member, theta, out);
    }
    fn evaluate_batch(&self, first_member: usize, thetas: &[f64], outs: &mut [f64]) {
        (**self).evaluate_batch(first_member, thetas, outs);
    }
    fn batch_size(&self) -> usize {
        (**self).batch_size()
    }
}

impl<M: MemberModel + ?Sized> MemberModel for &M {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn parameter_names(&self) -> Vec<String> {
        (**self).parameter_names()
    }
    fn parameter_dim(&self) -> usize {
        (**self).parameter_dim()
    }
    fn output_dim(&self) -> usize {
        (**self).output_dim()
    }
    fn evaluate_member(&self, member: usize, theta: &[f64], out: &mut [f64]) {
        (**self).evaluate_member(member, theta, out);
    }
    fn evaluate_batch(&self, first_member: usize, thetas: &[f64], outs: &mut [f64]) {
        (**self).evaluate_batch(first_member, thetas, outs);
    }
    fn batch_size(&self) -> usize {
        (**self).batch_size()
    }
}

/// Replace an output with all NaN if any entry is non-finite.
fn mark_failure(out: &mut [f64]) {
    if out.iter().any(|v| !v.is_finite()) {
        out.fill(f64::NAN);
    }
}

/// How an [`Ensemble`] runs its members on the CPU.
///
/// Serialized in kebab-case (`"serial"`, `"threads"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Execution {
    /// One member after another, on the calling thread.
    Serial,
    /// Members in parallel on rayon's current thread pool (the global pool
    /// unless called inside `ThreadPool::install`).
    #[default]
    Threads,
}

impl Execution {
    /// Every variant, in order.
    pub const ALL: [Execution; 2] = [Execution::Serial, Execution::Threads];

    /// The kebab-case name (`serial`, `threads`).
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Serial => "serial",
            Execution::Threads => "threads",
        }
    }
}

impl fmt::Display for Execution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown execution name was parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown execution `{0}` (expected `serial` or `threads`)")]
pub struct ParseExecutionError(pub String);

impl FromStr for Execution {
    type Err = ParseExecutionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "serial" => Ok(Execution::Serial),
            "threads" => Ok(Execution::Threads),
            other => Err(ParseExecutionError(other.to_string())),
        }
    }
}

/// A [`MemberModel`] run over a whole ensemble: an [`ekp_core::ForwardModel`].
///
/// Column `j` of the parameter matrix is evaluated as member `j`; a member
/// whose outputs are not all finite gets a column of NaN.
#[derive(Debug, Clone)]
pub struct Ensemble<M> {
    /// The per-member model.
    pub model: M,
    /// Serial or threaded evaluation.
    pub execution: Execution,
}

impl<M: MemberModel> Ensemble<M> {
    /// Wrap `model`, evaluated as `execution` says.
    pub fn new(model: M, execution: Execution) -> Self {
        Self { model, execution }
    }
}

impl<M: MemberModel> ForwardModel for Ensemble<M> {
    fn name(&self) -> &str {
        self.model.name()
    }

    fn parameter_dim(&self) -> usize {
        self.model.parameter_dim()
    }

    fn output_dim(&self) -> usize {
        self.model.output_dim()
    }

    fn evaluate_into(
        &self,
        params: &DMatrix<f64>,
        out: &mut DMatrix<f64>,
    ) -> Result<(), ModelError> {
        self.evaluate_into_with_progress(params, out, &|_| {})
    }

    /// Reports each batch of members as it finishes (from whichever thread
    /// ran it), with the number of members in it.
    fn evaluate_into_with_progress(
        &self,
        params: &DMatrix<f64>,
        out: &mut DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), ModelError> {
        self.check_shapes(params, out)?;
        let p = self.model.parameter_dim();
        let d = self.model.output_dim();
        if d == 0 || params.ncols() == 0 {
            progress(params.ncols());
            return Ok(());
        }
        // Both matrices are column-major: member j's parameters are
        // params[j*p..(j+1)*p] and its outputs out[j*d..(j+1)*d]. Members go
        // to the model in batches of `batch_size()` consecutive columns.
        let thetas = params.as_slice();
        let model = &self.model;
        let batch = model.batch_size().max(1);
        let run = |(c, outs): (usize, &mut [f64])| {
            let first = c * batch;
            let m = outs.len() / d;
            model.evaluate_batch(first, &thetas[first * p..(first + m) * p], outs);
            for column in outs.chunks_mut(d) {
                mark_failure(column);
            }
            progress(m);
        };
        match self.execution {
            Execution::Serial => out
                .as_mut_slice()
                .chunks_mut(d * batch)
                .enumerate()
                .for_each(run),
            Execution::Threads => out
                .as_mut_slice()
                .par_chunks_mut(d * batch)
                .enumerate()
                .with_max_len(1)
                .for_each(run),
        }
        Ok(())
    }
}
