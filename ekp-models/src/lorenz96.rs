//! Lorenz 96 with sinusoidal forcing: EnsembleKalmanProcesses.jl's Lorenz example.
//!
//! See the crate documentation for the equations, the time stepping and the
//! observables. The integrator is a plain per-member RK4 ([`rk4_step`],
//! [`integrate`]): the reference implementation other backends compare with.
//! [`rk4_step_f32`] and [`integrate_f32`] are the same operations in f32 (the
//! f32 conventions of [`crate::lanes`]: sin in f64 rounded to f32, `F + A·s`
//! in f32, `dt`, `dt/2`, `dt/6` computed in f64 and rounded to f32): the
//! reference of the f32 lanes kernel.

use std::f64::consts::PI;

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::ensemble::MemberModel;
use crate::error::ModelsError;
use crate::lanes::{LANES, LANES_F32, LaneForcing, LaneReal, LaneState, StepLengths};

const MODEL: &str = "lorenz96";

/// Every how many steps a run checks its state for NaN/∞ and gives up early.
const FINITE_CHECK_INTERVAL: usize = 256;

/// Settings of the Lorenz 96 model and of its statistics.
///
/// The defaults are EKP.jl's Lorenz example (`examples/Lorenz/Lorenz_example.jl`,
/// `dynamics = 2`, `stats_type = 5`); the EKP.jl name of each field is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lorenz96Config {
    /// Number of sites on the ring (`N`): 36.
    pub sites: usize,
    /// Time step (`dt`): 1/64.
    pub dt: f64,
    /// Angular frequency ω of the forcing F + A sin(ω t) (`ω_true`): 2π/72.
    pub omega: f64,
    /// Start of the observed window (`t_start`): 800.
    pub t_start: f64,
    /// Length T of the observed window (`T`): 72.
    pub window: f64,
    /// Length Ts of one variance sub-window (`Ts`): 1. A sub-window holds
    /// `Ts/dt − 1` steps (63), as in EKP.jl.
    pub sub_window: f64,
    /// Number of consecutive sub-windows averaged into one observable (`Tfit`): 18.
    pub fit_windows: usize,
    /// Standard deviation of the initial perturbation of the zero state (`Fp`): 0.01.
    pub perturbation_std: f64,
    /// Seed of the initial perturbation (ChaCha8): 4137 (EKP.jl's `rng_seed`).
    pub seed: u64,
    /// Number of consecutive T-windows of the truth run (`n_samples`): 20.
    pub truth_samples: usize,
    /// A member whose state leaves `[-max_abs_state, max_abs_state]` has
    /// diverged and fails (its outputs become NaN), as a real model would
    /// crash: infinite by default (only NaN/∞ fail). Not in EKP.jl.
    pub max_abs_state: f64,
}

impl Default for Lorenz96Config {
    fn default() -> Self {
        Self {
            sites: 36,
            dt: 1.0 / 64.0,
            omega: 2.0 * PI / 72.0,
            t_start: 800.0,
            window: 72.0,
            sub_window: 1.0,
            fit_windows: 18,
            perturbation_std: 0.01,
            seed: 4137,
            truth_samples: 20,
            max_abs_state: f64::INFINITY,
        }
    }
}

/// `x / y` as an integer if it is one (to a relative 1e-9), else `None`.
fn integer_ratio(x: f64, y: f64) -> Option<usize> {
    let r = x / y;
    let k = r.round();
    if r.is_finite() && k >= 1.0 && k < 2f64.powi(52) && (r - k).abs() <= 1e-9 * k {
        Some(k as usize)
    } else {
        None
    }
}

/// The first step `j` with `j·dt > t` (EKP.jl's `t[j] > t_start` test).
fn first_step_after(t: f64, dt: f64) -> usize {
    let mut j = (t / dt).floor().max(0.0) as usize;
    while (j as f64) * dt <= t {
        j += 1;
    }
    while j > 1 && ((j - 1) as f64) * dt > t {
        j -= 1;
    }
    j
}

/// The number of steps `j ≥ first` with `j·dt < t_end`.
fn steps_before(first: usize, t_end: f64, dt: f64) -> usize {
    // `end` is an exclusive bound: every j in first..end has j·dt < t_end.
    let mut end = ((t_end / dt).floor().max(0.0) as usize).max(first);
    while end > first && ((end - 1) as f64) * dt >= t_end {
        end -= 1;
    }
    while (end as f64) * dt < t_end {
        end += 1;
    }
    end - first
}

/// The layout of the observed steps, derived from a validated configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Steps per sub-window (`Ts/dt − 1`).
    steps_per_sub_window: usize,
    /// Sub-windows per T-window (`T/Ts`).
    sub_windows: usize,
    /// Sub-windows per observable (`Tfit`).
    fit_windows: usize,
    /// Observables (`T/(Ts·Tfit)`).
    observables: usize,
}

impl Lorenz96Config {
    /// Check every field; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), ModelsError> {
        self.layout().map(|_| ())
    }

    fn layout(&self) -> Result<Layout, ModelsError> {
        let bad = |field, reason: &str| ModelsError::config(MODEL, field, reason);
        if self.sites < 4 {
            return Err(bad("sites", "need at least 4 sites"));
        }
        if !(self.dt.is_finite() && self.dt > 0.0) {
            return Err(bad("dt", "must be positive and finite"));
        }
        if !self.omega.is_finite() {
            return Err(bad("omega", "must be finite"));
        }
        if !(self.t_start.is_finite() && self.t_start >= 0.0) {
            return Err(bad("t_start", "must be non-negative and finite"));
        }
        if !(self.window.is_finite() && self.window > 0.0) {
            return Err(bad("window", "must be positive and finite"));
        }
        if !(self.sub_window.is_finite() && self.sub_window > 0.0) {
            return Err(bad("sub_window", "must be positive and finite"));
        }
        let per_dt = integer_ratio(self.sub_window, self.dt)
            .ok_or_else(|| bad("sub_window", "must be a whole number of time steps dt"))?;
        if per_dt < 2 {
            return Err(bad(
                "sub_window",
                "must span at least 2 time steps (a sub-window holds sub_window/dt − 1 steps)",
            ));
        }
        let sub_windows = integer_ratio(self.window, self.sub_window)
            .ok_or_else(|| bad("window", "must be a whole number of sub-windows"))?;
        if self.fit_windows == 0 {
            return Err(bad("fit_windows", "must be at least 1"));
        }
        if sub_windows % self.fit_windows != 0 {
            return Err(ModelsError::config(
                MODEL,
                "fit_windows",
                format!("must divide the number of sub-windows window/sub_window = {sub_windows}"),
            ));
        }
        if !(self.perturbation_std.is_finite() && self.perturbation_std >= 0.0) {
            return Err(bad("perturbation_std", "must be non-negative and finite"));
        }
        if self.max_abs_state.is_nan() || self.max_abs_state <= 0.0 {
            return Err(bad("max_abs_state", "must be positive (inf for no limit)"));
        }
        if self.truth_samples < 2 {
            return Err(bad(
                "truth_samples",
                "need at least 2 samples for a covariance",
            ));
        }
        let t_end = self.t_start + self.window * self.truth_samples as f64;
        let steps = t_end / self.dt;
        if !steps.is_finite() || steps >= 1e15 {
            return Err(bad(
                "t_start",
                "t_start + truth_samples·window is too many time steps",
            ));
        }
        let layout = Layout {
            steps_per_sub_window: per_dt - 1,
            sub_windows,
            fit_windows: self.fit_windows,
            observables: sub_windows / self.fit_windows,
        };
        // Each T-window must hold all its sub-windows (it always does when
        // T/dt is a whole number, but rounding is checked, not assumed).
        for i in 0..self.truth_samples {
            let start = self.t_start + self.window * i as f64;
            let first = first_step_after(start, self.dt);
            let available = steps_before(first, start + self.window, self.dt);
            if available < layout.sub_windows * layout.steps_per_sub_window {
                return Err(bad(
                    "window",
                    "the window holds fewer steps than its sub-windows need",
                ));
            }
        }
        Ok(layout)
    }
}

/// The sinusoidal forcing F(t) = F + A sin(ω t).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forcing {
    /// Mean forcing F.
    pub mean: f64,
    /// Amplitude A.
    pub amplitude: f64,
    /// Angular frequency ω.
    pub omega: f64,
}

impl Forcing {
    /// Constant forcing `f` (A = 0).
    pub fn constant(f: f64) -> Self {
        Self {
            mean: f,
            amplitude: 0.0,
            omega: 0.0,
        }
    }

    /// `sin(ω t)` in f64: the one computation of the forcing's sine that
    /// every backend shares (the CPU kernels here; ekp-gpu computes it on the
    /// host for its kernels), so that all of them see the same bits.
    #[inline]
    pub fn sine(omega: f64, t: f64) -> f64 {
        (omega * t).sin()
    }

    /// F(t) = F + A sin(ω t).
    #[inline]
    pub fn at(&self, t: f64) -> f64 {
        self.at_in(t)
    }

    /// F(t) in f32, the convention of the f32 kernels (CPU lanes and GPU):
    /// sin(ω t) computed in f64 exactly as [`Self::at`] does, rounded to
    /// f32, then `F + A·s` formed in f32 with F and A rounded to f32.
    #[inline]
    pub fn at_f32(&self, t: f64) -> f32 {
        self.at_in(t)
    }

    /// F(t) in the working precision `T` ([`Self::at`] for f64,
    /// [`Self::at_f32`] for f32).
    #[inline]
    fn at_in<T: LaneReal>(&self, t: f64) -> T {
        T::from_f64(self.mean)
            + T::from_f64(self.amplitude) * T::from_f64(Self::sine(self.omega, t))
    }
}

/// Scratch buffers of one RK4 integration (the stages k1..k4 and the stage
/// state), allocated once per member so the time loop does not allocate.
/// In f64 unless `T` says otherwise ([`Rk4Workspace32`] for f32).
#[derive(Debug, Clone, Default)]
pub struct Rk4Workspace<T: LaneReal = f64> {
    k1: Vec<T>,
    k2: Vec<T>,
    k3: Vec<T>,
    k4: Vec<T>,
    stage: Vec<T>,
}

/// The scratch buffers of one f32 RK4 integration ([`rk4_step_f32`],
/// [`integrate_f32`]).
pub type Rk4Workspace32 = Rk4Workspace<f32>;

impl<T: LaneReal> Rk4Workspace<T> {
    /// Buffers for a state of `sites` values.
    pub fn new(sites: usize) -> Self {
        Self {
            k1: vec![T::ZERO; sites],
            k2: vec![T::ZERO; sites],
            k3: vec![T::ZERO; sites],
            k4: vec![T::ZERO; sites],
            stage: vec![T::ZERO; sites],
        }
    }

    /// Resize the buffers for a state of `sites` values (no-op if they fit).
    fn fit(&mut self, sites: usize) {
        if self.k1.len() != sites {
            *self = Self::new(sites);
        }
    }
}

/// The Lorenz 96 tendency: `dxdt[i] = (x[i+1] − x[i−2])·x[i−1] − x[i] + forcing`,
/// indices periodic.
///
/// Writes `min(x.len(), dxdt.len())` entries.
#[inline]
pub fn tendency(x: &[f64], forcing: f64, dxdt: &mut [f64]) {
    tendency_in(x, forcing, dxdt);
}

/// [`tendency`] in f32: the same operations in the same order.
#[inline]
pub fn tendency_f32(x: &[f32], forcing: f32, dxdt: &mut [f32]) {
    tendency_in(x, forcing, dxdt);
}

/// [`tendency`] in the working precision `T`.
#[inline]
fn tendency_in<T: LaneReal>(x: &[T], forcing: T, dxdt: &mut [T]) {
    let n = x.len();
    if n >= 4 && dxdt.len() == n {
        dxdt[0] = (x[1] - x[n - 2]) * x[n - 1] - x[0] + forcing;
        dxdt[1] = (x[2] - x[n - 1]) * x[0] - x[1] + forcing;
        dxdt[n - 1] = (x[0] - x[n - 3]) * x[n - 2] - x[n - 1] + forcing;
        // Interior sites 2..n-1: w = [x[i-2], x[i-1], x[i], x[i+1]].
        for (d, w) in dxdt[2..n - 1].iter_mut().zip(x.windows(4)) {
            *d = (w[3] - w[0]) * w[1] - w[2] + forcing;
        }
    } else {
        // Tiny rings (or mismatched buffers): the same formula, indices mod n.
        for (i, d) in dxdt.iter_mut().enumerate().take(n) {
            let at = |k: usize| x[(i + n * 2 + k - 2) % n];
            *d = (at(3) - at(0)) * at(1) - at(2) + forcing;
        }
    }
}

/// One classical RK4 step of length `dt`, the forcing held at `forcing` for all
/// four stages (EKP.jl's `RK4`).
pub fn rk4_step(x: &mut [f64], ws: &mut Rk4Workspace, forcing: f64, dt: f64) {
    rk4_step_in(x, ws, forcing, StepLengths::new(dt));
}

/// [`rk4_step`] in f32: the same operations in the same order, on f32
/// values. The step lengths `dt`, `dt/2` and `dt/6` are computed in f64 from
/// the f64 `dt` and each rounded to f32 (as the f32 lanes kernel does).
pub fn rk4_step_f32(x: &mut [f32], ws: &mut Rk4Workspace32, forcing: f32, dt: f64) {
    rk4_step_in(x, ws, forcing, StepLengths::new(dt));
}

/// [`rk4_step`] in the working precision `T` (for f64 the step lengths are
/// exactly `dt`, `dt / 2.0`, `dt / 6.0`).
fn rk4_step_in<T: LaneReal>(x: &mut [T], ws: &mut Rk4Workspace<T>, forcing: T, h: StepLengths<T>) {
    ws.fit(x.len());
    let Rk4Workspace {
        k1,
        k2,
        k3,
        k4,
        stage,
    } = ws;
    let StepLengths { dt, half, sixth } = h;
    tendency_in(x, forcing, k1);
    for ((s, &xi), &k) in stage.iter_mut().zip(x.iter()).zip(k1.iter()) {
        *s = xi + k * half;
    }
    tendency_in(stage, forcing, k2);
    for ((s, &xi), &k) in stage.iter_mut().zip(x.iter()).zip(k2.iter()) {
        *s = xi + k * half;
    }
    tendency_in(stage, forcing, k3);
    for ((s, &xi), &k) in stage.iter_mut().zip(x.iter()).zip(k3.iter()) {
        *s = xi + k * dt;
    }
    tendency_in(stage, forcing, k4);
    for (i, xi) in x.iter_mut().enumerate() {
        *xi = *xi + sixth * (k1[i] + T::TWO * k2[i] + T::TWO * k3[i] + k4[i]);
    }
}

/// Advance `x` by `n_steps` RK4 steps: from t = `from_step`·dt to
/// t = (`from_step` + `n_steps`)·dt. Step `j` is forced with `forcing.at(j·dt)`,
/// the end-of-step time (EKP.jl's convention).
pub fn integrate(
    x: &mut [f64],
    ws: &mut Rk4Workspace,
    forcing: &Forcing,
    dt: f64,
    from_step: usize,
    n_steps: usize,
) {
    integrate_in(x, ws, forcing, dt, from_step, n_steps);
}

/// [`integrate`] in f32, the scalar reference of the f32 lanes kernel: step
/// `j` is [`rk4_step_f32`] forced with [`Forcing::at_f32`]`(j·dt)` (t = j·dt
/// computed in f64).
pub fn integrate_f32(
    x: &mut [f32],
    ws: &mut Rk4Workspace32,
    forcing: &Forcing,
    dt: f64,
    from_step: usize,
    n_steps: usize,
) {
    integrate_in(x, ws, forcing, dt, from_step, n_steps);
}

/// [`integrate`] in the working precision `T`.
fn integrate_in<T: LaneReal>(
    x: &mut [T],
    ws: &mut Rk4Workspace<T>,
    forcing: &Forcing,
    dt: f64,
    from_step: usize,
    n_steps: usize,
) {
    let h = StepLengths::new(dt);
    for j in from_step + 1..=from_step + n_steps {
        rk4_step_in(x, ws, forcing.at_in(dt * j as f64), h);
    }
}

/// Like [`integrate`], but stops early (returning `false`) once the state is
/// no longer finite or leaves `[-limit, limit]`.
fn integrate_checked(
    x: &mut [f64],
    ws: &mut Rk4Workspace,
    forcing: &Forcing,
    dt: f64,
    from_step: usize,
    n_steps: usize,
    limit: f64,
) -> bool {
    let mut done = 0;
    while done < n_steps {
        let chunk = FINITE_CHECK_INTERVAL.min(n_steps - done);
        integrate(x, ws, forcing, dt, from_step + done, chunk);
        done += chunk;
        if !within(x, limit) {
            return false;
        }
    }
    true
}

/// Every value finite and within `[-limit, limit]` (`limit` may be ∞).
fn within(x: &[f64], limit: f64) -> bool {
    x.iter().all(|v| v.is_finite() && v.abs() <= limit)
}

/// Sample variance (divisor n − 1) by two passes.
fn sample_variance(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
}

/// The Lorenz 96 model of EKP.jl's Lorenz example, as a [`MemberModel`].
///
/// Parameters `["F", "A"]`: the mean forcing and the amplitude of
/// F + A sin(ω t). Outputs: the `T/(Ts·Tfit)` variance observables (4 by
/// default). Every member starts from the same initial state [`Self::initial_state`].
#[derive(Debug, Clone, PartialEq)]
pub struct Lorenz96 {
    config: Lorenz96Config,
    x0: Vec<f64>,
    layout: Layout,
}

impl Lorenz96 {
    /// Validate `config` and draw the initial state from its seed.
    pub fn new(config: Lorenz96Config) -> Result<Self, ModelsError> {
        let layout = config.layout()?;
        let normal = Normal::new(0.0, config.perturbation_std)
            .map_err(|e| ModelsError::config(MODEL, "perturbation_std", e.to_string()))?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let x0 = (0..config.sites).map(|_| normal.sample(&mut rng)).collect();
        Ok(Self { config, x0, layout })
    }

    /// The configuration.
    pub fn config(&self) -> &Lorenz96Config {
        &self.config
    }

    /// The initial state at t = 0 shared by all runs (`sites` values).
    pub fn initial_state(&self) -> &[f64] {
        &self.x0
    }

    /// Steps per variance sub-window (`Ts/dt − 1`; 63 by default).
    pub fn steps_per_sub_window(&self) -> usize {
        self.layout.steps_per_sub_window
    }

    /// Variance sub-windows per T-window (`T/Ts`; 72 by default).
    pub fn sub_windows(&self) -> usize {
        self.layout.sub_windows
    }

    /// The first observed step of T-window `sample` (0-based; 0 is the window
    /// an ensemble member observes): the first `j` with `j·dt > t_start + T·sample`.
    pub fn first_observed_step(&self, sample: usize) -> usize {
        let c = &self.config;
        first_step_after(c.t_start + c.window * sample as f64, c.dt)
    }

    /// Steps a member integrates: up to the last step it observes.
    pub fn member_steps(&self) -> usize {
        self.last_observed_step(0)
    }

    fn last_observed_step(&self, sample: usize) -> usize {
        self.first_observed_step(sample)
            + self.layout.sub_windows * self.layout.steps_per_sub_window
            - 1
    }

    /// The forcing at parameters `theta = [F, A]`.
    pub fn forcing(&self, theta: &[f64]) -> Option<Forcing> {
        match theta {
            [f, a] => Some(Forcing {
                mean: *f,
                amplitude: *a,
                omega: self.config.omega,
            }),
            _ => None,
        }
    }

    /// The state after `steps` RK4 steps from [`Self::initial_state`] at
    /// `theta = [F, A]` (t = steps·dt), without statistics: the reference
    /// other backends (GPU, benchmarks) compare with. Non-finite values are
    /// returned as they are.
    pub fn final_state(&self, theta: &[f64], steps: usize) -> Result<Vec<f64>, ModelsError> {
        self.final_state_in(theta, steps)
    }

    /// [`Self::final_state`] in f32: the initial state rounded to f32, then
    /// [`integrate_f32`] (the f32 forcing convention of [`Forcing::at_f32`]).
    /// The scalar reference of [`Self::final_states_into_f32`].
    pub fn final_state_f32(&self, theta: &[f64], steps: usize) -> Result<Vec<f32>, ModelsError> {
        self.final_state_in(theta, steps)
    }

    /// [`Self::final_state`] in precision `T` (the initial state rounded to
    /// `T`; [`integrate`] or [`integrate_f32`]).
    fn final_state_in<T: LaneReal>(
        &self,
        theta: &[f64],
        steps: usize,
    ) -> Result<Vec<T>, ModelsError> {
        let forcing = self.forcing(theta).ok_or(ModelsError::ParameterCount {
            model: MODEL,
            expected: 2,
            got: theta.len(),
        })?;
        let mut x: Vec<T> = self.x0.iter().map(|&v| T::from_f64(v)).collect();
        let mut ws = Rk4Workspace::<T>::new(x.len());
        integrate_in(&mut x, &mut ws, &forcing, self.config.dt, 0, steps);
        Ok(x)
    }

    /// The states after `steps` RK4 steps of every member, integrated
    /// [`LANES`] members side by side by the [`crate::lanes`] kernel:
    /// `thetas` holds the members' `[F, A]` one after another (`2·m` values),
    /// `out` receives their states one after another (`sites·m` values). Each
    /// state is bit-identical to [`Self::final_state`].
    pub fn final_states_into(
        &self,
        thetas: &[f64],
        steps: usize,
        out: &mut [f64],
    ) -> Result<(), ModelsError> {
        self.final_states_lanes::<f64, LANES>(thetas, steps, out)
    }

    /// [`Self::final_states_into`] in f32: [`LANES_F32`] members side by side
    /// by the f32 [`crate::lanes`] kernel, from the initial state rounded to
    /// f32, with the f32 forcing convention of [`Forcing::at_f32`]. `thetas`
    /// holds the members' `[F, A]` (f64, `2·m` values), `out` receives their
    /// f32 states one after another (`sites·m` values). Each state is
    /// bit-identical to [`Self::final_state_f32`].
    pub fn final_states_into_f32(
        &self,
        thetas: &[f64],
        steps: usize,
        out: &mut [f32],
    ) -> Result<(), ModelsError> {
        self.final_states_lanes::<f32, LANES_F32>(thetas, steps, out)
    }

    /// [`Self::final_states_into`] in precision `T`, `L` lanes at a time.
    fn final_states_lanes<T: LaneReal, const L: usize>(
        &self,
        thetas: &[f64],
        steps: usize,
        out: &mut [T],
    ) -> Result<(), ModelsError> {
        let n = self.config.sites;
        let m = thetas.len() / 2;
        if thetas.len() != 2 * m {
            return Err(ModelsError::BufferLength {
                model: MODEL,
                buffer: "parameters",
                expected: 2 * m,
                got: thetas.len(),
            });
        }
        if out.len() != n * m {
            return Err(ModelsError::BufferLength {
                model: MODEL,
                buffer: "states",
                expected: n * m,
                got: out.len(),
            });
        }
        let mut state = LaneState::<L, T>::new(n);
        for (thetas, out) in thetas.chunks(2 * L).zip(out.chunks_mut(n * L)) {
            let forcings: Vec<Forcing> = thetas
                .chunks_exact(2)
                .filter_map(|t| self.forcing(t))
                .collect();
            let Some(forcing) = LaneForcing::<L, T>::gather(&forcings) else {
                continue;
            };
            state.fill_from_f64(&self.x0);
            state.integrate(&forcing, self.config.dt, 0, steps);
            for (lane, x) in out.chunks_exact_mut(n).enumerate() {
                state.copy_lane(lane, x);
            }
        }
        Ok(())
    }

    /// [`Self::run`] for one T-window (sample 0) of up to `L` members side by
    /// side: the same steps, checks and statistics, lane by lane, so every
    /// member's outputs are bit-identical to [`Self::run`]'s. `outs` holds
    /// `observables` values per member; a failed member's are NaN.
    fn run_lanes<const L: usize>(&self, forcings: &[Forcing], outs: &mut [f64]) {
        let n = self.config.sites;
        let dt = self.config.dt;
        let limit = self.config.max_abs_state;
        let Layout {
            steps_per_sub_window: nt,
            sub_windows,
            fit_windows,
            observables,
        } = self.layout;
        let m = forcings.len().min(L);
        let Some(forcing) = LaneForcing::<L>::gather(&forcings[..m]) else {
            outs.fill(f64::NAN);
            return;
        };
        let mut alive = [true; L];
        let mut state = LaneState::<L>::new(n);
        state.fill(&self.x0);
        let mut lane_x = vec![0.0; n];
        let check = |state: &LaneState<L>, alive: &mut [bool; L], lane_x: &mut [f64]| {
            for (l, ok) in alive.iter_mut().enumerate().take(m) {
                if *ok {
                    state.copy_lane(l, lane_x);
                    *ok = within(lane_x, limit);
                }
            }
        };
        // Spin-up to the first observed step, checked every
        // FINITE_CHECK_INTERVAL steps as `integrate_checked` does.
        let first = self.first_observed_step(0);
        let spin_up = first.saturating_sub(1);
        let mut step = 0;
        while step < spin_up {
            let chunk = FINITE_CHECK_INTERVAL.min(spin_up - step);
            state.integrate(&forcing, dt, step, chunk);
            step += chunk;
            check(&state, &mut alive, &mut lane_x);
            if !alive[..m].iter().any(|&a| a) {
                outs.fill(f64::NAN);
                return;
            }
        }
        // The observed window: sub-windows of `nt` steps, variance of each.
        let mut window: Vec<[f64; L]> = vec![[0.0; L]; n * nt];
        let mut values = vec![0.0; n * nt];
        let mut obs = vec![0.0; observables * L];
        for k in 0..sub_windows {
            for row in window.chunks_exact_mut(n) {
                state.integrate(&forcing, dt, step, 1);
                step += 1;
                row.copy_from_slice(state.state());
            }
            for (l, ok) in alive.iter_mut().enumerate().take(m) {
                if !*ok {
                    continue;
                }
                for (v, site) in values.iter_mut().zip(&window) {
                    *v = site[l];
                }
                let var = sample_variance(&values);
                if within(&values, limit) && var.is_finite() {
                    obs[l * observables + k / fit_windows] += var;
                } else {
                    *ok = false;
                }
            }
        }
        for (l, out) in outs.chunks_exact_mut(observables).enumerate().take(m) {
            if alive[l] {
                for (o, &v) in out
                    .iter_mut()
                    .zip(&obs[l * observables..(l + 1) * observables])
                {
                    *o = v / fit_windows as f64;
                }
            } else {
                out.fill(f64::NAN);
            }
        }
    }

    /// Run one trajectory and write the observables of T-windows
    /// `0..samples` into `out` (`samples × observables`, window by window).
    /// Returns `false` as soon as the state is non-finite.
    fn run(&self, forcing: &Forcing, samples: usize, out: &mut [f64]) -> bool {
        let n = self.config.sites;
        let dt = self.config.dt;
        let Layout {
            steps_per_sub_window: nt,
            sub_windows,
            fit_windows,
            observables,
        } = self.layout;
        let mut x = self.x0.clone();
        let mut ws = Rk4Workspace::new(n);
        let mut window = vec![0.0; n * nt];
        out.fill(0.0);
        let mut step = 0; // steps done
        for sample in 0..samples {
            let first = self.first_observed_step(sample);
            if !integrate_checked(
                &mut x,
                &mut ws,
                forcing,
                dt,
                step,
                (first - 1).saturating_sub(step),
                self.config.max_abs_state,
            ) {
                return false;
            }
            step = step.max(first - 1);
            let obs = &mut out[sample * observables..(sample + 1) * observables];
            for k in 0..sub_windows {
                for row in window.chunks_exact_mut(n) {
                    step += 1;
                    rk4_step(&mut x, &mut ws, forcing.at(dt * step as f64), dt);
                    row.copy_from_slice(&x);
                }
                if !within(&window, self.config.max_abs_state) {
                    return false;
                }
                let var = sample_variance(&window);
                if !var.is_finite() {
                    return false;
                }
                obs[k / fit_windows] += var;
            }
            for o in obs.iter_mut() {
                *o /= fit_windows as f64;
            }
        }
        true
    }

    /// The statistics of each of the `truth_samples` consecutive T-windows of
    /// one trajectory at `theta = [F, A]`: an `observables × truth_samples`
    /// matrix (column `i` is window [t_start + T·i, t_start + T·(i+1)]).
    pub fn truth_samples(&self, theta: &[f64]) -> Result<DMatrix<f64>, ModelsError> {
        let forcing = self.forcing(theta).ok_or(ModelsError::ParameterCount {
            model: MODEL,
            expected: 2,
            got: theta.len(),
        })?;
        let samples = self.config.truth_samples;
        let d = self.layout.observables;
        let mut out = vec![0.0; d * samples];
        if !theta.iter().all(|v| v.is_finite())
            || !self.run(&forcing, samples, &mut out)
            || !out.iter().all(|v| v.is_finite())
        {
            return Err(ModelsError::Diverged {
                model: MODEL,
                theta: theta.to_vec(),
            });
        }
        Ok(DMatrix::from_vec(d, samples, out))
    }

    /// Synthetic data at `theta = [F, A]` (EKP.jl's truth): y, the mean of the
    /// [`Self::truth_samples`], and Γ, their sample covariance (divisor
    /// samples − 1).
    pub fn truth(&self, theta: &[f64]) -> Result<(DVector<f64>, DMatrix<f64>), ModelsError> {
        let samples = self.truth_samples(theta)?;
        let n = samples.ncols() as f64;
        let mean = samples.column_mean();
        let mut anomalies = samples;
        for mut col in anomalies.column_iter_mut() {
            col -= &mean;
        }
        let cov = (&anomalies * anomalies.transpose()) / (n - 1.0);
        Ok((mean, cov))
    }
}

impl MemberModel for Lorenz96 {
    fn name(&self) -> &str {
        MODEL
    }

    fn parameter_names(&self) -> Vec<String> {
        vec!["F".to_string(), "A".to_string()]
    }

    fn parameter_dim(&self) -> usize {
        2
    }

    fn output_dim(&self) -> usize {
        self.layout.observables
    }

    /// The [`crate::lanes`] kernel: [`LANES`] members at a time, each
    /// bit-identical to [`Self::evaluate_member`].
    fn evaluate_batch(&self, first_member: usize, thetas: &[f64], outs: &mut [f64]) {
        let d = self.layout.observables;
        if d == 0 {
            return;
        }
        let m = outs.len() / d;
        if !outs.len().is_multiple_of(d) || thetas.len() != 2 * m {
            // Not a well-formed batch: member by member (NaN where malformed).
            for (j, out) in outs.chunks_mut(d).enumerate() {
                let theta = thetas.get(2 * j..2 * j + 2).unwrap_or(&[]);
                self.evaluate_member(first_member + j, theta, out);
            }
            return;
        }
        for (thetas, outs) in thetas.chunks(2 * LANES).zip(outs.chunks_mut(d * LANES)) {
            // Members with non-finite parameters fail without running; the
            // others share the lanes.
            let mut forcings = Vec::with_capacity(LANES);
            let mut slots = Vec::with_capacity(LANES);
            for (j, theta) in thetas.chunks_exact(2).enumerate() {
                match self.forcing(theta) {
                    Some(f) if theta.iter().all(|v| v.is_finite()) => {
                        forcings.push(f);
                        slots.push(j);
                    }
                    _ => outs[j * d..(j + 1) * d].fill(f64::NAN),
                }
            }
            if forcings.is_empty() {
                continue;
            }
            let mut lane_outs = vec![0.0; d * forcings.len()];
            self.run_lanes::<LANES>(&forcings, &mut lane_outs);
            for (&j, lane_out) in slots.iter().zip(lane_outs.chunks_exact(d)) {
                outs[j * d..(j + 1) * d].copy_from_slice(lane_out);
            }
        }
    }

    fn batch_size(&self) -> usize {
        LANES
    }

    fn evaluate_member(&self, _member: usize, theta: &[f64], out: &mut [f64]) {
        let ok = match self.forcing(theta) {
            Some(forcing) => {
                out.len() == self.layout.observables
                    && theta.iter().all(|v| v.is_finite())
                    && self.run(&forcing, 1, out)
            }
            None => false,
        };
        if !ok {
            out.fill(f64::NAN);
        }
    }
}
