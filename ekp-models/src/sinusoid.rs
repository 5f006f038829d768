//! EnsembleKalmanProcesses.jl's sinusoid example.
//!
//! The model draws a curve `A sin(φ + t) + v` for t = 0, dt, 2dt, … ≤ 2π + dt
//! (EKP.jl's `trange = 0:dt:(2π + dt)`, 630 points for dt = 0.01) with a random
//! phase φ, and returns `[max − min, mean]`: the range informs the amplitude
//! A, the mean the vertical shift v.
//!
//! **Reproducible phase.** EKP.jl draws φ = 2π·U(0, 1) from a global RNG on
//! each call, so its outputs depend on the call order. Here φ of member `j` is
//! the first draw of a ChaCha8 generator seeded with the configuration's
//! `seed` on stream `j`: it depends only on `(seed, member)`, so serial and
//! threaded evaluation agree bit for bit and the same seed reproduces every
//! output. The same member index gets the same phase in every call; to draw
//! fresh phases (e.g. per iteration), change the seed ([`Sinusoid::with_seed`]).

use std::f64::consts::PI;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ensemble::MemberModel;
use crate::error::ModelsError;

const MODEL: &str = "sinusoid";

/// Settings of the sinusoid model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinusoidConfig {
    /// Seed of the random phases (EKP.jl's `rng_seed`: 41).
    pub seed: u64,
    /// Spacing of the time samples (EKP.jl's `dt`: 0.01).
    pub dt: f64,
}

impl Default for SinusoidConfig {
    fn default() -> Self {
        Self { seed: 41, dt: 0.01 }
    }
}

impl SinusoidConfig {
    /// Check the fields; the error names the one at fault.
    pub fn validate(&self) -> Result<(), ModelsError> {
        if !(self.dt.is_finite() && self.dt > 0.0 && self.dt <= PI) {
            return Err(ModelsError::config(
                MODEL,
                "dt",
                "must be positive, finite and at most π",
            ));
        }
        Ok(())
    }
}

/// EKP.jl's sinusoid: parameters `["amplitude", "vert_shift"]`, outputs
/// `[max − min, mean]` of `amplitude·sin(φ + t) + vert_shift` (see the module
/// documentation for the times and the phase φ).
#[derive(Debug, Clone, PartialEq)]
pub struct Sinusoid {
    config: SinusoidConfig,
    times: Vec<f64>,
}

impl Sinusoid {
    /// Validate `config` and lay out the time samples.
    pub fn new(config: SinusoidConfig) -> Result<Self, ModelsError> {
        config.validate()?;
        let stop = 2.0 * PI + config.dt;
        // Julia's 0:dt:stop: k·dt for k = 0..=floor(stop/dt) (with a little
        // slack for rounding, as Julia's range length computation has).
        let count = (stop / config.dt * (1.0 + 1e-12)).floor() as usize + 1;
        let times = (0..count).map(|k| k as f64 * config.dt).collect();
        Ok(Self { config, times })
    }

    /// The same model with another phase seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &SinusoidConfig {
        &self.config
    }

    /// The time samples t_k.
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// The phase φ ∈ [0, 2π) of member `member`: 2π times the first uniform
    /// draw of ChaCha8 seeded with `seed`, stream `member`.
    pub fn phase(&self, member: usize) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        rng.set_stream(member as u64);
        2.0 * PI * rng.random::<f64>()
    }
}

impl MemberModel for Sinusoid {
    fn name(&self) -> &str {
        MODEL
    }

    fn parameter_names(&self) -> Vec<String> {
        vec!["amplitude".to_string(), "vert_shift".to_string()]
    }

    fn parameter_dim(&self) -> usize {
        2
    }

    fn output_dim(&self) -> usize {
        2
    }

    fn evaluate_member(&self, member: usize, theta: &[f64], out: &mut [f64]) {
        let (&[amplitude, shift], 2) = (theta, out.len()) else {
            out.fill(f64::NAN);
            return;
        };
        let phi = self.phase(member);
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        let mut sum = 0.0;
        for &t in &self.times {
            let v = amplitude * (t + phi).sin() + shift;
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v;
        }
        out[0] = hi - lo;
        out[1] = sum / self.times.len() as f64;
        if !out.iter().all(|v| v.is_finite()) {
            out.fill(f64::NAN);
        }
    }
}
