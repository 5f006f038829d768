//! `ekp-cli bench --update`: how long one ensemble Kalman update takes.
//!
//! Builds a process for `--parameters` parameters (prior `N(0, 1)` each),
//! `--members` members drawn from it, and `--outputs` synthetic outputs with
//! a diagonal `Γ` (variances `0.01 … 0.05`), all from fixed seeds. Output `i`
//! of member `j` is "linear-ish": `g_ij = a_i u_{k(i), j} + b_i u_{l(i), j} +
//! 0.1 sin(u_{m(i), j})`, three parameters per output, so the outputs are
//! made in `O(d N)` without a `d × p` matrix. The data are the outputs of the
//! prior mean plus a fixed offset.
//!
//! The process uses its default scheduler, failure handling and accelerator
//! (EKI: `nesterov`, so no observation perturbation), and **no localizer**:
//! localization works on `d × d` correlations, and only without it do EKI and
//! ETKI take their low-rank `O(N² d)` form. `--perturb` switches EKI to
//! perturbed observations (no accelerator). `--dense` gives `Γ` as a full
//! matrix, which forces the dense path (for comparisons on small problems);
//! `--scalar-noise` one variance (0.03) for every output, with which the
//! update's Gram matrix also serves the CRPS.
//!
//! Each repeat clones the freshly built process and times one full
//! [`EnsembleKalmanProcess::update_owned`] (failure scan, scheduler, the
//! update, metrics and the stored history: the outputs are handed over, as a
//! model that produced them would, and kept without a copy), so the figure is
//! what a calibration pays per update. The last line is `seconds/update: X` (the median).

use std::time::Instant;

use anyhow::Context;
use clap::ValueEnum;
use ekp_core::{
    Accelerator, EnsembleKalmanProcess, Inversion, Localizer, NoiseCovariance, Observation,
    ParameterPrior, Prior, Process, TransformInversion,
};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

use crate::bench::{BenchArgs, Say};
use crate::error::{InputError, Result};

/// The processes `bench --update` can time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpdateProcessArg {
    /// Ensemble Kalman inversion (EKI).
    Inversion,
    /// Ensemble transform Kalman inversion (ETKI).
    TransformInversion,
}

/// The largest `--outputs` with `--dense` (the dense path forms `d × d`
/// matrices).
const DENSE_MAX_OUTPUTS: usize = 20_000;

/// The synthetic problem: prior, data, and the outputs of the initial ensemble.
struct Problem {
    process: EnsembleKalmanProcess,
    g: DMatrix<f64>,
}

/// Which parameters output `i` depends on, and the coefficients.
fn output_map(i: usize, p: usize) -> (usize, usize, usize, f64, f64) {
    // A fixed integer hash of i: no table of size d × p.
    let h = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let k = (h % p as u64) as usize;
    let l = ((h >> 20) % p as u64) as usize;
    let m = ((h >> 40) % p as u64) as usize;
    let a = 0.5 + ((h >> 8) & 0xff) as f64 / 255.0;
    let b = -0.5 + ((h >> 28) & 0xff) as f64 / 255.0;
    (k, l, m, a, b)
}

/// The outputs of the members `u` (`p × N`), `d` of them, column by column
/// in parallel.
fn outputs(u: &DMatrix<f64>, d: usize) -> DMatrix<f64> {
    let (p, n) = u.shape();
    let mut g = DMatrix::zeros(d, n);
    g.as_mut_slice()
        .par_chunks_mut(d)
        .enumerate()
        .for_each(|(j, col)| {
            for (i, v) in col.iter_mut().enumerate() {
                let (k, l, m, a, b) = output_map(i, p);
                *v = a * u[(k, j)] + b * u[(l, j)] + 0.1 * u[(m, j)].sin();
            }
        });
    g
}

/// The CPU time of this process so far (user + system, all threads), from
/// `/proc/self/stat` (Linux; clock ticks of 1/100 s); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime is the
    // 14th field of the line, stime the 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn problem(
    kind: UpdateProcessArg,
    n: usize,
    p: usize,
    d: usize,
    perturb: bool,
    dense: bool,
    scalar: bool,
) -> anyhow::Result<Problem> {
    let prior = Prior::new(vec![
        ParameterPrior::gaussian("theta", 0.0, 1.0, p).context("the synthetic prior")?,
    ])
    .context("the synthetic prior")?;
    let truth = DMatrix::from_element(p, 1, 0.0);
    let y = outputs(&truth, d).column(0).map(|v| v + 0.05);
    let variances: Vec<f64> = (0..d)
        .map(|i| {
            if scalar {
                0.03
            } else {
                0.01 + 0.01 * (i % 5) as f64
            }
        })
        .collect();
    let noise = if dense {
        NoiseCovariance::full(DMatrix::from_diagonal(&DVector::from_vec(variances)))
    } else {
        NoiseCovariance::diagonal_variances(&variances)
    }
    .context("the synthetic noise")?;
    let obs = Observation::new(y, noise).context("the synthetic observation")?;
    let process = match kind {
        UpdateProcessArg::Inversion => Process::Inversion(Inversion {
            perturb_observations: perturb,
            ..Inversion::default()
        }),
        UpdateProcessArg::TransformInversion => {
            Process::TransformInversion(TransformInversion::default())
        }
    };
    let mut builder = EnsembleKalmanProcess::builder(prior, obs, process)
        .ensemble_size(n)
        .seed(2024)
        .localizer(Localizer::None);
    if perturb {
        builder = builder.accelerator(Accelerator::None);
    }
    let process = builder.build().context("the synthetic process")?;
    let g = outputs(process.ensemble(), d);
    Ok(Problem { process, g })
}

/// The most memory `bench --update` may plan to use (bytes).
pub const MAX_BYTES: f64 = 16e9;

/// Run `bench --update` and print its report.
pub fn bench_update(args: &BenchArgs, say: Say<'_>) -> Result<()> {
    let kind = args.process.unwrap_or(UpdateProcessArg::Inversion);
    let n = args.members;
    let p = args.parameters;
    let d = args.outputs;
    if n < 2 || p == 0 || d == 0 || args.repeats == 0 {
        return Err(InputError::Argument(
            "bench --update needs --members ≥ 2, --parameters ≥ 1, --outputs ≥ 1 and --repeats ≥ 1"
                .into(),
        )
        .into());
    }
    // The outputs and their anomalies (d × N each), and the parameters.
    let bytes = 8.0 * (n as f64) * (3.0 * d as f64 + 2.0 * p as f64);
    if bytes > MAX_BYTES {
        return Err(InputError::Argument(format!(
            "bench --update with {n} members, {p} parameters and {d} outputs needs about {:.1} GB; \
             at most {:.0} GB",
            bytes / 1e9,
            MAX_BYTES / 1e9
        ))
        .into());
    }
    if args.perturb && kind != UpdateProcessArg::Inversion {
        return Err(
            InputError::Argument("--perturb applies to --process inversion only".into()).into(),
        );
    }
    if args.dense && d > DENSE_MAX_OUTPUTS {
        return Err(InputError::Argument(format!(
            "--dense forms {d} × {d} matrices: use at most {DENSE_MAX_OUTPUTS} outputs"
        ))
        .into());
    }
    if args.threads == Some(0) {
        return Err(InputError::Argument("--threads must be at least 1".into()).into());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start the thread pool")?;
    Ok(pool.install(|| run(args, kind, n, p, d, say))?)
}

fn run(
    args: &BenchArgs,
    kind: UpdateProcessArg,
    n: usize,
    p: usize,
    d: usize,
    say: Say<'_>,
) -> anyhow::Result<()> {
    let made = Instant::now();
    let Problem { process, g } =
        problem(kind, n, p, d, args.perturb, args.dense, args.scalar_noise)?;
    let kind_name = process.process().kind();
    say(&format!(
        "process: {kind_name} (members {n}, parameters {p}, outputs {d}; Γ {}, localizer none, accelerator {}, perturbed observations {})",
        if args.dense {
            "full (dense path)"
        } else if args.scalar_noise {
            "0.03 I (scalar)"
        } else {
            "diagonal"
        },
        process.accelerator().kind(),
        if process.perturbs_observations() {
            "yes"
        } else {
            "no"
        },
    ));
    say(&format!(
        "threads: {}; outputs matrix: {:.1} MB; set up in {:.3} s",
        rayon::current_num_threads(),
        (d * n * 8) as f64 / 1e6,
        made.elapsed().as_secs_f64()
    ));
    let mut times = Vec::with_capacity(args.repeats);
    let mut cpu = Vec::with_capacity(args.repeats);
    let mut checksum = 0.0;
    for _ in 0..args.repeats {
        let mut ekp = process.clone();
        // A model hands its outputs over: the process keeps them in its
        // history without a copy.
        let told = g.clone();
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        ekp.update_owned(told).context("the update failed")?;
        times.push(start.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu_start, process_cpu_seconds()) {
            cpu.push(b - a);
        }
        checksum = ekp.ensemble().sum();
    }
    if !cpu.is_empty() {
        cpu.sort_by(f64::total_cmp);
        say(&format!(
            "cpu time per update (all threads, median): {:.2} s",
            cpu[cpu.len() / 2]
        ));
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    say(&format!("checksum: {checksum:.6e}"));
    say(&format!(
        "updates: {} (min {:.4} s, median {median:.4} s, max {:.4} s)",
        times.len(),
        times[0],
        times[times.len() - 1]
    ));
    say(&format!("seconds/update: {median:.4}"));
    Ok(())
}
