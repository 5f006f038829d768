//! `ekp-cli bench`: how fast a backend integrates Lorenz 96 ensembles.
//!
//! Integrates `--members` members of the default Lorenz 96 model (36 sites,
//! dt = 1/64) for `--steps` RK4 steps each, from the model's initial state,
//! with forcings `F ∈ [7, 9]`, `A ∈ [1, 3]` drawn from a fixed seed, and prints
//! member-steps per second (the last line: `member-steps/s: X`). No statistics
//! are computed and nothing but the timing comes back, so the figure measures
//! the integrator itself on each backend.
//!
//! The CPU backends run the Lorenz 96 lanes kernel ([`ekp_models::lanes`]:
//! `LANES` members side by side, AVX-512/AVX2 picked at run time), as
//! `ekp-cli run` does; `--kernel per-member` measures the plain per-member RK4
//! reference instead, for comparison. `--precision f32` runs either in f32
//! (`LANES_F32` members side by side: twice the members per instruction),
//! bit-identical to the scalar f32 reference; the CPU default is f64, the
//! GPU's f32.

use std::time::Instant;

use anyhow::Context;
use clap::ValueEnum;
use ekp_models::lanes::{LANES, LANES_F32, LaneForcing, LaneReal, LaneState};
use ekp_models::lorenz96::Forcing;
use ekp_models::{Lorenz96, Lorenz96Config};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{InputError, Result};
#[cfg(feature = "gpu")]
use crate::models::gpu::gpu_error;
use crate::models::{Backend, Precision};

pub mod update;

/// Where the report lines go (the command prints them).
pub type Say<'a> = &'a (dyn Fn(&str) + Sync);

/// The most members `bench` integrates (their states take 36 × 8 bytes
/// each, ~10 GB at this bound).
pub const MAX_MEMBERS: usize = 30_000_000;
/// The most steps `bench` integrates (the GPU kernel counts steps in 32 bits).
pub const MAX_STEPS: usize = u32::MAX as usize;

/// The CPU integrator `bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum KernelArg {
    /// Members side by side in SIMD lanes (what `run` uses).
    #[default]
    Lanes,
    /// The plain per-member RK4 (the reference implementation).
    PerMember,
}

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The backend to measure (not with --update).
    #[arg(long, value_enum, required_unless_present = "update")]
    pub backend: Option<Backend>,
    /// Ensemble members integrated together (with --update: members of the
    /// ensemble, default 100).
    #[arg(
        long,
        value_name = "M",
        default_value_t = 10_000,
        default_value_if("update", clap::builder::ArgPredicate::IsPresent, "100")
    )]
    pub members: usize,
    /// RK4 steps per member.
    #[arg(long, value_name = "S", default_value_t = 1_000)]
    pub steps: usize,
    /// Floating-point precision of the kernel (default: f64 on the CPU
    /// backends, f32 on the GPU).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Threads for `--backend threads` and --update (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// CPU integrator for `--backend serial|threads`.
    #[arg(long, value_enum, default_value_t = KernelArg::Lanes)]
    pub kernel: KernelArg,
    /// Lane width of `--kernel lanes` (4, 8, 16 or 32; default 8 in f64,
    /// 16 in f32), for measuring the alternatives.
    #[arg(long, value_name = "L", hide = true)]
    pub lanes: Option<usize>,
    /// Time one ensemble Kalman update instead: synthetic
    /// outputs from a fixed seed, diagonal Γ, localizer none (localization
    /// forms d × d correlations, so only without it are EKI and ETKI O(N² d));
    /// the process's default accelerator (EKI: nesterov, so no observation
    /// perturbation). Prints `seconds/update: X` last.
    #[arg(long, conflicts_with_all = ["backend", "steps", "precision"])]
    pub update: bool,
    /// --update: the process to time.
    #[arg(long, value_enum, value_name = "KIND", requires = "update")]
    pub process: Option<update::UpdateProcessArg>,
    /// --update: parameters p.
    #[arg(long, value_name = "P", default_value_t = 100, requires = "update")]
    pub parameters: usize,
    /// --update: outputs d.
    #[arg(
        long,
        value_name = "D",
        default_value_t = 1_000_000,
        requires = "update"
    )]
    pub outputs: usize,
    /// --update: updates timed (each on a fresh copy of the process); the
    /// median is reported.
    #[arg(long, value_name = "R", default_value_t = 3, requires = "update")]
    pub repeats: usize,
    /// --update with inversion: perturb the observations (no accelerator).
    #[arg(long, requires = "update")]
    pub perturb: bool,
    /// --update: give Γ as a full matrix, forcing the dense d × d path (for
    /// comparison; at most 20 000 outputs).
    #[arg(long, requires = "update")]
    pub dense: bool,
    /// --update: one noise level for every output, Γ = 0.03·I (default:
    /// variances 0.01 … 0.05). With a scalar Γ the low-rank update's own Gram
    /// matrix also gives the CRPS, so the metrics read the outputs no second
    /// time.
    #[arg(long, requires = "update", conflicts_with = "dense")]
    pub scalar_noise: bool,
}

fn parameters(members: usize) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    DMatrix::from_fn(2, members, |i, _| {
        if i == 0 {
            rng.random_range(7.0..9.0)
        } else {
            rng.random_range(1.0..3.0)
        }
    })
}

/// Integrate every member on the CPU with the plain per-member RK4 (in f32
/// when `f32`); returns a checksum so the work cannot be optimised away.
fn integrate_per_member(
    model: &Lorenz96,
    params: &DMatrix<f64>,
    steps: usize,
    threads: bool,
    f32: bool,
) -> f64 {
    let member = |j: usize| -> f64 {
        let theta = [params[(0, j)], params[(1, j)]];
        let sum = if f32 {
            model
                .final_state_f32(&theta, steps)
                .map(|x| x.iter().map(|&v| f64::from(v)).sum())
        } else {
            model.final_state(&theta, steps).map(|x| x.iter().sum())
        };
        sum.unwrap_or(f64::NAN)
    };
    if threads {
        (0..params.ncols()).into_par_iter().map(member).sum()
    } else {
        (0..params.ncols()).map(member).sum()
    }
}

/// Integrate every member on the CPU with the lanes kernel, `L` members at a
/// time in precision `T`; returns a checksum (the sum of every member's
/// final state, in f64).
fn integrate_lanes<const L: usize, T: LaneReal>(
    model: &Lorenz96,
    params: &DMatrix<f64>,
    steps: usize,
    threads: bool,
) -> f64 {
    let config = model.config();
    let n = config.sites;
    let groups = params.ncols().div_ceil(L);
    // The sum of each member's final state, in member order: with one
    // thread the checksum is the per-member kernel's, bit for bit.
    let group = |state: &mut LaneState<L, T>, g: usize| -> Vec<f64> {
        let members = g * L..((g + 1) * L).min(params.ncols());
        let forcings: Vec<Forcing> = members
            .map(|j| Forcing {
                mean: params[(0, j)],
                amplitude: params[(1, j)],
                omega: config.omega,
            })
            .collect();
        let Some(forcing) = LaneForcing::<L, T>::gather(&forcings) else {
            return vec![f64::NAN];
        };
        state.fill_from_f64(model.initial_state());
        state.integrate(&forcing, config.dt, 0, steps);
        (0..forcings.len())
            .map(|l| {
                state
                    .state()
                    .iter()
                    .map(|site| site[l].to_f64())
                    .sum::<f64>()
            })
            .collect()
    };
    if threads {
        (0..groups)
            .into_par_iter()
            .map_init(
                || LaneState::<L, T>::new(n),
                |s, g| group(s, g).iter().sum::<f64>(),
            )
            .sum()
    } else {
        let mut state = LaneState::<L, T>::new(n);
        (0..groups).flat_map(|g| group(&mut state, g)).sum()
    }
}

/// Time the GPU kernel; returns member-steps per second.
#[cfg(feature = "gpu")]
fn gpu(args: &BenchArgs, params: &DMatrix<f64>, say: Say<'_>) -> Result<f64> {
    let config = Lorenz96Config::default();
    let precision = args.precision.unwrap_or(Precision::F32).gpu();
    let gpu = ekp_gpu::Lorenz96Gpu::new(config, precision).map_err(gpu_error)?;
    let info = gpu.adapter_info();
    say(&format!("backend: gpu ({precision})"));
    say(&format!("adapter: {info}"));
    let stats = gpu.integrate_only(params, args.steps).map_err(gpu_error)?;
    say(&format!(
        "elapsed: {:.3} s in {} dispatch(es), {} chunk(s)",
        stats.elapsed.as_secs_f64(),
        stats.dispatches,
        stats.chunks
    ));
    Ok(stats.member_steps_per_second())
}

/// Without the `gpu` feature: a clear error.
#[cfg(not(feature = "gpu"))]
fn gpu(_args: &BenchArgs, _params: &DMatrix<f64>, _say: Say<'_>) -> Result<f64> {
    Err(crate::models::no_gpu().into())
}

/// Time the CPU kernel (`threads`: on every core, else one thread);
/// returns the seconds taken.
fn cpu(
    args: &BenchArgs,
    threads: bool,
    lanes: Option<usize>,
    params: &DMatrix<f64>,
    say: Say<'_>,
) -> Result<f64> {
    let precision = args.precision.unwrap_or(Precision::F64);
    let lanes = lanes.unwrap_or(match precision {
        Precision::F64 => LANES,
        Precision::F32 => LANES_F32,
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(if threads {
            args.threads.unwrap_or(0)
        } else {
            1
        })
        .build()
        .context("cannot start the thread pool")?;
    let model = Lorenz96::new(Lorenz96Config::default()).context("the default Lorenz 96 model")?;
    let kernel = match args.kernel {
        KernelArg::Lanes => format!("lanes kernel, {lanes} members side by side"),
        KernelArg::PerMember => "per-member kernel".to_string(),
    };
    say(&format!(
        "backend: {} ({} thread(s), {}, {kernel})",
        if threads { "threads" } else { "serial" },
        pool.current_num_threads(),
        precision.name()
    ));
    let steps = args.steps;
    let start = Instant::now();
    let checksum = pool.install(|| {
        let (m, p, s, t) = (&model, params, steps, threads);
        match (args.kernel, precision, lanes) {
            (KernelArg::PerMember, precision, _) => {
                integrate_per_member(m, p, s, t, precision == Precision::F32)
            }
            (KernelArg::Lanes, Precision::F64, 4) => integrate_lanes::<4, f64>(m, p, s, t),
            (KernelArg::Lanes, Precision::F64, 16) => integrate_lanes::<16, f64>(m, p, s, t),
            (KernelArg::Lanes, Precision::F64, 32) => integrate_lanes::<32, f64>(m, p, s, t),
            (KernelArg::Lanes, Precision::F64, _) => integrate_lanes::<LANES, f64>(m, p, s, t),
            (KernelArg::Lanes, Precision::F32, 4) => integrate_lanes::<4, f32>(m, p, s, t),
            (KernelArg::Lanes, Precision::F32, 8) => integrate_lanes::<8, f32>(m, p, s, t),
            (KernelArg::Lanes, Precision::F32, 32) => integrate_lanes::<32, f32>(m, p, s, t),
            (KernelArg::Lanes, Precision::F32, _) => integrate_lanes::<LANES_F32, f32>(m, p, s, t),
        }
    });
    let elapsed = start.elapsed();
    say(&format!("checksum: {checksum:.6e}"));
    say(&format!("elapsed: {:.3} s", elapsed.as_secs_f64()));
    Ok(elapsed.as_secs_f64())
}

/// Run the benchmark and report it through `say`.
pub fn bench(args: &BenchArgs, say: Say<'_>) -> Result<()> {
    let Some(backend) = args.backend.filter(|_| !args.update) else {
        return update::bench_update(args, say);
    };
    if args.members == 0 || args.steps == 0 {
        return Err(InputError::Argument("--members and --steps must be at least 1".into()).into());
    }
    if args.members > MAX_MEMBERS || args.steps > MAX_STEPS {
        return Err(InputError::Argument(format!(
            "--members {} --steps {}: at most {MAX_MEMBERS} members and {MAX_STEPS} steps",
            args.members, args.steps
        ))
        .into());
    }
    if args.lanes.is_some_and(|l| ![4, 8, 16, 32].contains(&l)) {
        return Err(InputError::Argument("--lanes must be 4, 8, 16 or 32".into()).into());
    }
    if args.threads == Some(0) {
        return Err(InputError::Argument("--threads must be at least 1".into()).into());
    }
    let params = parameters(args.members);
    let member_steps = args.members as f64 * args.steps as f64;
    let rate = match backend {
        Backend::Serial | Backend::Threads => {
            let elapsed = cpu(args, backend == Backend::Threads, args.lanes, &params, say)?;
            member_steps / elapsed
        }
        Backend::Gpu => gpu(args, &params, say)?,
    };
    say(&format!(
        "members: {}, steps: {}, sites: 36",
        args.members, args.steps
    ));
    say(&format!("member-steps/s: {rate:.4e}"));
    Ok(())
}
