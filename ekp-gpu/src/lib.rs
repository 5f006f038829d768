//! # ekp-gpu: Lorenz 96 ensembles on a GPU
//!
//! [`Lorenz96Gpu`] evaluates the Lorenz 96 model of EnsembleKalmanProcesses.jl's
//! Lorenz example for a whole ensemble at once on a GPU through
//! [wgpu](https://wgpu.rs) (Vulkan, Metal, DX12 or GL). It computes the same
//! function as [`ekp_models::Lorenz96`] run through an [`ekp_models::Ensemble`]
//! — same [`Lorenz96Config`](ekp_models::Lorenz96Config), same initial state,
//! same observables, a NaN column for a failed member — and implements
//! [`ekp_core::ForwardModel`], so a calibration can use it in place of the CPU
//! backends.
//!
//! ```no_run
//! use ekp_core::ForwardModel;
//! use ekp_gpu::{Lorenz96Gpu, Precision};
//! use ekp_models::Lorenz96Config;
//! use nalgebra::DMatrix;
//!
//! let model = Lorenz96Gpu::new(Lorenz96Config::default(), Precision::F32)?;
//! println!("running on {}", model.adapter_info());
//! // Two members: [F, A] = [8, 2.5] and [9, 3].
//! let params = DMatrix::from_column_slice(2, 2, &[8.0, 2.5, 9.0, 3.0]);
//! let g = model.evaluate(&params)?; // 4 × 2
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The model
//!
//! `n` sites on a periodic ring, forced by F(t) = F + A sin(ω t):
//!
//! ```text
//! dx_i/dt = (x_{i+1} − x_{i−2}) x_{i−1} − x_i + F(t)
//! ```
//!
//! Classical RK4 with step dt from t = 0; step j advances the state to
//! t_j = j·dt with the forcing F_j = F + A sin(ω t_j) evaluated at the
//! *end-of-step* time and held over all four stages (EKP.jl's convention):
//!
//! ```text
//! k1 = f(x, F_j), k2 = f(x + k1·dt/2, F_j), k3 = f(x + k2·dt/2, F_j), k4 = f(x + k3·dt, F_j)
//! x ← x + dt/6 · (k1 + 2 k2 + 2 k3 + k4)
//! ```
//!
//! Observables: over the steps with t_start < t_j < t_start + T, split into
//! `T/Ts` sub-windows of `Ts/dt − 1` steps, the sample variance (divisor
//! m − 1) of all `n × (Ts/dt − 1)` values of each sub-window; then the mean over
//! each group of `Tfit` consecutive sub-windows (4 observables by default). See
//! `ekp_models`' documentation for the details; the kernel uses the same step
//! indices ([`Lorenz96::first_observed_step`](ekp_models::Lorenz96::first_observed_step),
//! [`member_steps`](ekp_models::Lorenz96::member_steps)).
//!
//! ## The kernels
//!
//! * **One invocation per member**, workgroups of 64. The member's state lives
//!   in registers (`var x0 … x{n−1}`), and the four RK4 stages are written out
//!   site by site: the WGSL is generated in Rust for the configured number of
//!   sites (at most [`MAX_SITES`]), with the periodic neighbours resolved at
//!   generation time. The arithmetic is in the same order as the CPU code
//!   (`(x[i+1] − x[i−2])·x[i−1] − x[i] + F`, `x + k·(dt/2)`,
//!   `x + dt/6·(k1 + 2k2 + 2k3 + k4)`), and so are the window statistics (below),
//!   so in f64 the GPU reproduces the CPU's rounding wherever the driver does
//!   not contract multiply-adds into FMAs (SPIR-V allows it; lavapipe does not
//!   do it: there the f64 kernel's states and observables are the CPU's bit
//!   for bit, and a whole calibration on the GPU in f64 is the serial one, byte
//!   for byte). A driver that contracts (most hardware drivers may) rounds
//!   `a·b + c` once instead of twice: a state differs by an ulp or so after a
//!   step, and Lorenz 96 at F = 8 amplifies that ~e^{1.7 t}, so after the
//!   default 800 time units of spin-up the trajectory — not its statistics —
//!   is another one (the observables then differ by their sampling noise,
//!   ~√Γᵢᵢ, and a calibration by its ensemble spread).
//! * **Many steps per dispatch**: one dispatch runs up to
//!   [`MAX_STEPS_PER_DISPATCH`] (1000) steps in a `for` loop — the only loop in
//!   the shader — and keeps the state (and the statistics) in per-member
//!   storage buffers between dispatches (rows of `capacity` members, so that
//!   neighbouring invocations touch neighbouring addresses). One dispatch per
//!   step would be 10–40× slower on software adapters; a loop over the sites
//!   ~35× slower on llvmpipe than the written-out sites.
//! * **Three kernels**, each with a plain loop body: the *spin-up* kernel for
//!   the steps before the observed window (RK4 only; the divergence check runs
//!   once, after the loop), the *observing* kernel for the window (RK4 and the
//!   statistics of every step), and the *integrating* kernel behind
//!   [`Lorenz96Gpu::integrate_only`] and [`Lorenz96Gpu::final_states`] (RK4
//!   only). Dispatches never straddle the start of the window. Software
//!   adapters run both sides of a branch under a mask, so a per-step check in
//!   the spin-up loop would cost ~15 %.
//! * **The forcing**: sin(ω t_j) is computed on the CPU in f64, exactly as
//!   the CPU model computes it (`(ω·(dt·j)).sin()`), and written before each
//!   dispatch into a small uniform buffer, the *forcing window*: the sines of
//!   that dispatch's steps `j0..` (at most 2 048 values, 16-byte slots of 4
//!   f32 or 2 f64; a dispatch of the observing kernel whose steps, with a
//!   sub-window's replay, would need more is cut there). The kernel forms
//!   F + A·sin in its working precision. This sidesteps two problems: WGSL
//!   has no f64 `sin` (SPIR-V's GLSL.std.450 `Sin` is 16/32-bit only), and in
//!   f32 both t_j = j·dt (j up to ~56 000 by default) and the sine of a large
//!   argument lose digits. In f32 the window holds the correctly rounded f32
//!   of the f64 sine: the forcing is as exact as f32 allows. A uniform buffer
//!   rather than a table in a storage buffer: software adapters load a storage
//!   value lane by lane with a bounds check each, and that one load per step
//!   cost ~20 % of the kernel on lavapipe.
//! * **Observables on the GPU, in the CPU's order**: the CPU's two-pass sample
//!   variance of a sub-window sums its `n × (Ts/dt − 1)` values step by step
//!   and site by site, divides by their count, then sums the squared
//!   deviations from that mean in the same order. The kernel does exactly
//!   these additions: a first pass over the sub-window keeps a running sum
//!   (one `+` per value, left to right) and the sub-window's starting state;
//!   then it integrates the sub-window *again* from that state — the same
//!   arithmetic on the same inputs, so the same states — summing
//!   `(x − mean)²`. Replaying costs the observed window's steps once more
//!   (8 % of the default run's 55 736) instead of storing `n × (Ts/dt − 1)`
//!   values per member (18 KiB in f64). The observing kernel counts these
//!   virtual steps; a dispatch may end anywhere, the sums and the starting
//!   state are kept in the accumulator buffer. At the end of a sub-window the
//!   variance is added to its observable's sum (f64 in f64 mode, f32 in f32
//!   mode). Only the `d` sums and a failure flag per member are read back,
//!   never trajectories; the division by `Tfit` is done on the CPU, as there.
//! * **Divergence**: a member fails when a state value is NaN, ±∞ or outside
//!   `[-max_abs_state, max_abs_state]`, at the CPU model's check points: every
//!   256th step and the step before the window, then every observed step. The
//!   test is `!(|x| ≤ limit)`, true for NaN; the flag is sticky and the
//!   member's column becomes NaN. With a finite limit the spin-up dispatches
//!   end at the check points; with the default infinite limit only NaN/±∞ fail,
//!   and a Lorenz 96 state that is not finite stays so, so checking at the end
//!   of each dispatch (and, in the window, the variance) decides the same. A
//!   member with a non-finite parameter, or any non-finite output, is NaN too.
//!
//! ## The llvmpipe loop cap
//!
//! Mesa's software drivers (llvmpipe for GL, lavapipe for Vulkan) silently
//! stop every shader loop after **65 535 iterations**, counted together over
//! all loops of one invocation: no error, just wrong results. This is why the
//! per-site loops are written out and why one dispatch runs at most
//! [`MAX_STEPS_PER_DISPATCH`] steps; a test integrates 70 000 steps and compares
//! with the CPU.
//!
//! ## Chunking
//!
//! An ensemble runs in chunks of at most
//! [`Lorenz96Gpu::max_members_per_dispatch`] members, one after the other over
//! the same buffers: a chunk's per-member buffers must each fit in one storage
//! binding (`max_storage_buffer_binding_size`, 128 MiB on Mesa's drivers: 381 300
//! members of 36 sites in f64, whose accumulators — 4 sums, 4 statistics, the
//! 36-site starting state of a sub-window — are the widest buffer) and its workgroups in one dispatch dimension
//! (`max_compute_workgroups_per_dimension` × 64, 4 194 240 members). The
//! buffers are allocated on first use, grown when a larger ensemble comes, and
//! reused by every later call. Progress is reported per chunk.
//!
//! ## Precision
//!
//! [`Precision::F32`] (the default) runs on every adapter; [`Precision::F64`]
//! needs the adapter feature `SHADER_F64` (lavapipe has it, llvmpipe/GL does
//! not: [`GpuError::F64Unsupported`]) and agrees with the CPU to rounding.
//! On lavapipe f64 runs at 80–95 % of the f32 speed (the kernel is bound by
//! registers more than by arithmetic width); on GPUs f64 is 2× (data-centre
//! parts) to 30× and more (consumer parts) slower than f32. Lorenz 96 at F = 8
//! is chaotic (leading Lyapunov exponent ≈ 1.7 per time unit), so an f32
//! trajectory parts from the f64 one within ~10 time units; its long-window
//! statistics — what a calibration fits — agree within their sampling noise
//! (tested at the default configuration against `Lorenz96::truth`).
//!
//! ## Performance
//!
//! On lavapipe (Mesa 22.3, LLVM 15, 2 CPU cores of a Xeon with AVX-512),
//! 10 000 members, 3 000 steps, 2026-12-07:
//!
//! | | f32, 36 sites | f32, 40 sites | f64, 36 sites | f64, 40 sites |
//! |---|---|---|---|---|
//! | minimal kernel (`examples/minimal_kernel.rs`) | 1.16e8 | 1.13e8 | 8.3e7 | 7.2e7 |
//! | [`Lorenz96Gpu::integrate_only`] | 1.10e8 | 1.03e8 | 7.9e7 | 6.4e7 |
//! | [`ForwardModel::evaluate`](ekp_core::ForwardModel::evaluate), default run (55 736 steps) | 9.3e7 | | 6.5e7 | |
//!
//! member-steps/s; `cargo run --release -p ekp-gpu --example minimal_kernel --
//! 10000 3000 --evaluate` measures them side by side (over three rounds our
//! kernel ran at 0.92–0.95 of the minimal one in f32, 0.88–0.98 in f64; with
//! llvmpipe held to 16 vector registers, as on an AVX2 machine, 0.95–0.98 in
//! f32). The minimal kernel is the least an unrolled RK4 can do (constant
//! forcing, no checks, no statistics); what is left of the difference is the
//! time-dependent forcing itself, the state layout and the bounds checks wgpu
//! adds to storage accesses.
//!
//! `evaluate` is slower than `integrate_only` per member-step because it
//! replays each sub-window (the observed window's 4 536 steps twice, +8 %
//! work over the 55 736 counted) and computes the statistics.
//!
//! ## No adapter
//!
//! Without a GPU driver or Mesa's software drivers, [`Lorenz96Gpu::new`] returns
//! [`GpuError::NoAdapter`], whose message names the drivers that provide an
//! adapter (a GPU driver, or Mesa's software Vulkan driver:
//! `apt-get install mesa-vulkan-drivers libvulkan1`); what to run instead
//! (e.g. the CPU models of `ekp-models`) is the caller's choice. wgpu's `WGPU_BACKEND` (e.g. `vulkan`, `gl`) picks the
//! backends; [`Lorenz96Gpu::adapter_info`] says what was chosen, so a software
//! adapter is never mistaken for a GPU.
//!
//! On a headless machine Mesa's Vulkan device-selection layer prints
//! `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` while
//! wgpu enumerates the adapters: harmless; `NODEVICE_SELECT=1` turns the layer
//! off.

mod device;
mod error;
mod lorenz96;
mod shader;

use std::fmt;
use std::str::FromStr;

pub use device::AdapterInfo;
pub use error::GpuError;
pub use lorenz96::{IntegrationStats, Lorenz96Gpu};

/// The most RK4 steps one dispatch runs: well below llvmpipe's cap of 65 535
/// loop iterations per invocation (see the crate documentation).
pub const MAX_STEPS_PER_DISPATCH: usize = 1000;

/// The most sites the GPU kernel takes. The kernel is generated with every
/// site written out and the state in registers: compiling it takes ~0.1 s at
/// 36 sites and ~1.7 s at 1024 on lavapipe, and grows from there.
pub const MAX_SITES: usize = 2048;

/// The floating-point type the kernels compute in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// 32-bit floats: runs on every adapter.
    #[default]
    F32,
    /// 64-bit floats: needs the adapter feature `SHADER_F64`.
    F64,
}

impl Precision {
    /// Bytes of one value.
    pub fn bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    /// The largest finite value of this precision.
    pub(crate) fn max_finite(self) -> f64 {
        match self {
            Self::F32 => f64::from(f32::MAX),
            Self::F64 => f64::MAX,
        }
    }

    /// `v` rounded to this precision.
    pub(crate) fn round(self, v: f64) -> f64 {
        match self {
            Self::F32 => f64::from(v as f32),
            Self::F64 => v,
        }
    }

    /// `values` in this precision, as little-endian bytes.
    pub(crate) fn encode(self, values: &[f64]) -> Vec<u8> {
        match self {
            Self::F32 => values
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
            Self::F64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// Values of this precision from little-endian bytes.
    pub(crate) fn decode(self, bytes: &[u8]) -> Vec<f64> {
        match self {
            Self::F32 => bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Self::F64 => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        })
    }
}

/// A precision name that is neither `f32` nor `f64`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision `{0}`: expected `f32` or `f64`")]
pub struct ParsePrecisionError(pub String);

impl FromStr for Precision {
    type Err = ParsePrecisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "single" => Ok(Self::F32),
            "f64" | "double" => Ok(Self::F64),
            _ => Err(ParsePrecisionError(s.to_string())),
        }
    }
}
