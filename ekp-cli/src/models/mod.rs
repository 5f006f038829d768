//! Building the model a calibration runs, and running its members: the
//! [`Evaluator`]s the driver calls.
//!
//! | module | models |
//! |---|---|
//! | [`builtin`] | Lorenz 96, linear, sinusoid, in this process on CPU threads; the data (given or generated at the truth) |
//! | [`command`] | the user's program, one process per member, run in its member folder |
//! | [`worker`] | the user's program as long-lived workers, one JSON line per member |
//! | [`batch`] | the user's program, many members per process (CSV in, CSV out) |
//! | [`gpu`] | Lorenz 96 on a GPU through wgpu |
//! | [`launcher`] | any of them as `srun` job steps of a SLURM allocation (`run --launcher srun`) |
//!
//! [`program`] holds what the three program models share, [`template`] the
//! input templates they write into member folders.
//!
//! Every way of running a member records the same outcome in its member
//! folder (`output.toml`, `status.toml`), so `status`, `update`, `plot` and
//! `run --resume` do not care how the member ran.

pub mod batch;
pub mod builtin;
pub mod command;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod launcher;
pub mod program;
pub mod template;
pub mod worker;

use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use ekp_core::{ForwardModel, Observation};
use ekp_models::Execution;
use nalgebra::DMatrix;

use crate::config::{Calibration, ModelSpec, ProgramKind};
use crate::driver::Evaluator;
use crate::error::{Error, InputError, Result};
use crate::folder::member::{self, MemberRecord, RecordStatus};
use crate::folder::{ParameterFilesExt, RunFolder};
use crate::io::{hostname, write_replace};

pub use builtin::BuiltModel;

/// Where the ensemble runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// One member after another on one thread.
    Serial,
    /// Members in parallel on CPU threads (rayon); same results as serial.
    Threads,
    /// All members of a Lorenz 96 model on a GPU through wgpu (Vulkan, Metal,
    /// DX12 or GL; Mesa's lavapipe on machines without a GPU). An error, never a
    /// fallback, when no adapter is found.
    Gpu,
}

/// Floating-point precision of a kernel: the GPU's (`run`, `forward`,
/// `bench`; default f32) and, for `bench` only, the CPU's (default f64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// 32-bit floats (every GPU adapter; on the CPU, `bench` only).
    F32,
    /// 64-bit floats (the CPU; GPU adapters with SHADER_F64, e.g. Mesa's
    /// lavapipe).
    F64,
}

impl Precision {
    /// `f32` or `f64`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }

    /// The `ekp-gpu` precision.
    #[cfg(feature = "gpu")]
    pub fn gpu(self) -> ekp_gpu::Precision {
        match self {
            Precision::F32 => ekp_gpu::Precision::F32,
            Precision::F64 => ekp_gpu::Precision::F64,
        }
    }
}

/// The most threads or member processes ekp starts at once.
pub const MAX_WORKERS: usize = 4096;

/// How the members run: the settings of `run` and `forward`, validated.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where built-in models run.
    pub backend: Backend,
    /// GPU precision (`--backend gpu` only).
    pub precision: Option<Precision>,
    /// Threads for `--backend threads` (default: one per core).
    pub threads: Option<usize>,
    /// Processes at once for program models: command processes and workers
    /// (default: one per core), batch processes (default 1).
    pub jobs: Option<usize>,
    /// Time limit of a program model's member, or of a batch process
    /// (overrides `model.timeout`).
    pub member_timeout: Option<Duration>,
}

impl RunOptions {
    /// Serial, defaults otherwise (for `forward` of one member).
    pub fn serial() -> Self {
        Self {
            backend: Backend::Serial,
            precision: None,
            threads: None,
            jobs: None,
            member_timeout: None,
        }
    }

    /// Check the options against the calibration's model before any work.
    pub fn check(&self, cal: &Calibration) -> Result<(), InputError> {
        let arg = |m: String| Err(InputError::Argument(m));
        if self.precision.is_some() && self.backend != Backend::Gpu {
            return arg(
                "--precision applies to --backend gpu; the CPU backends compute in f64".into(),
            );
        }
        for (flag, v) in [("--threads", self.threads), ("--jobs", self.jobs)] {
            match v {
                Some(0) => return arg(format!("{flag} must be at least 1")),
                Some(n) if n > MAX_WORKERS => {
                    return arg(format!("{flag} {n}: at most {MAX_WORKERS}"));
                }
                _ => {}
            }
        }
        let is_program = matches!(cal.model, ModelSpec::Program(_));
        if !is_program && (self.jobs.is_some() || self.member_timeout.is_some()) {
            return arg(format!(
                "--jobs and --member-timeout apply to command, worker and batch models; this \
                 model is {} (use --threads)",
                cal.model.kind()
            ));
        }
        if is_program && self.backend == Backend::Gpu {
            return arg(format!(
                "--backend gpu runs the built-in lorenz96 model; a {} model runs its members \
                 as processes (use --jobs)",
                cal.model.kind()
            ));
        }
        Ok(())
    }

    /// The CPU execution of the backend (the GPU backend still builds the
    /// CPU model: it generates the truth data).
    pub fn execution(&self) -> Execution {
        match self.backend {
            Backend::Serial | Backend::Gpu => Execution::Serial,
            Backend::Threads => Execution::Threads,
        }
    }
}

/// The data of `cal`: as given, or generated from the model at the truth.
pub fn observation(cal: &Calibration) -> Result<Observation, InputError> {
    BuiltModel::new(cal, Execution::Serial)?.observation(cal)
}

/// The evaluator of `cal`'s model under `options`, and a description of
/// where it runs (`threads`, `gpu on llvmpipe (...)`).
pub fn evaluator(cal: &Calibration, options: &RunOptions) -> Result<(Box<dyn Evaluator>, String)> {
    options.check(cal)?;
    if let ModelSpec::Program(spec) = &cal.model {
        let jobs = options.jobs.or(options.threads);
        let timeout = options.member_timeout;
        return Ok(match spec.kind {
            ProgramKind::Command => (
                Box::new(command::CommandEvaluator::new(cal, spec, jobs, timeout)?),
                ev_jobs(jobs, "processes"),
            ),
            ProgramKind::Worker => (
                Box::new(worker::WorkerEvaluator::new(cal, spec, jobs, timeout)?),
                ev_jobs(jobs, "workers"),
            ),
            ProgramKind::Batch => (
                Box::new(batch::BatchEvaluator::new(cal, spec, jobs, timeout)?),
                format!(
                    "batches of {}, {} at once",
                    spec.batch_size
                        .map_or_else(|| "every member".to_string(), |b| b.to_string()),
                    jobs.unwrap_or(1)
                ),
            ),
        });
    }
    let built = BuiltModel::new(cal, options.execution())?;
    let pool = thread_pool(options.threads)?;
    match options.backend {
        Backend::Serial | Backend::Threads => {
            let name = options.execution().to_string();
            Ok((
                Box::new(InProcess {
                    model: Box::new(built.ensemble),
                    pool,
                }),
                name,
            ))
        }
        Backend::Gpu => gpu_evaluator(cal, &built, options, pool),
    }
}

/// The GPU backend's evaluator.
#[cfg(feature = "gpu")]
fn gpu_evaluator(
    cal: &Calibration,
    built: &BuiltModel,
    options: &RunOptions,
    pool: rayon::ThreadPool,
) -> Result<(Box<dyn Evaluator>, String)> {
    let precision = options.precision.unwrap_or(Precision::F32).gpu();
    let g = gpu::GpuModel::new(cal, built, precision)?;
    let name = format!("gpu on {}", g.adapter_info());
    Ok((
        Box::new(InProcess {
            model: Box::new(g),
            pool,
        }),
        name,
    ))
}

/// Without the `gpu` feature, the GPU backend is a clear error.
#[cfg(not(feature = "gpu"))]
fn gpu_evaluator(
    _cal: &Calibration,
    _built: &BuiltModel,
    _options: &RunOptions,
    _pool: rayon::ThreadPool,
) -> Result<(Box<dyn Evaluator>, String)> {
    Err(no_gpu().into())
}

/// The error of `--backend gpu` in a build without the `gpu` feature.
pub fn no_gpu() -> InputError {
    InputError::Argument(
        "--backend gpu: this ekp-cli was built without the `gpu` feature (rebuild with the \
         default features, or use --backend threads)"
            .into(),
    )
}

/// `4 processes`, or `processes, one per core`, for `what` = `processes`.
fn ev_jobs(workers: Option<usize>, what: &str) -> String {
    workers.map_or_else(
        || format!("{what}, one per core"),
        |n| format!("{n} {what}"),
    )
}

/// A rayon pool of `threads` threads (default: one per core).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("cannot start the thread pool")
        .map_err(Error::from)
}

/// Members per evaluation chunk of an in-process model: a chunk's outcomes
/// are recorded together, so an interrupted run loses at most one chunk.
fn chunk_size(members: usize) -> usize {
    members.div_ceil(8).clamp(256, 65_536).min(members.max(1))
}

/// A built-in model run in this process (CPU threads or a GPU): members are
/// evaluated a chunk at a time, and each member's outputs are recorded.
struct InProcess {
    model: Box<dyn ForwardModel + Sync>,
    pool: rayon::ThreadPool,
}

impl Evaluator for InProcess {
    fn run_members(
        &self,
        folder: &RunFolder,
        iteration: usize,
        members: &[usize],
        params: &DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<()> {
        let d = self.model.output_dim();
        let size = chunk_size(members.len());
        for (c, chunk) in members.chunks(size).enumerate() {
            if let Some(signal) = crate::stop::requested() {
                return Err(crate::stop::interrupted(signal, String::new()));
            }
            let started = std::time::Instant::now();
            let p = params.columns(c * size, chunk.len()).into_owned();
            let mut out = DMatrix::zeros(d, chunk.len());
            self.pool
                .install(|| {
                    self.model
                        .evaluate_into_with_progress(&p, &mut out, progress)
                })
                .map_err(|e| anyhow::anyhow!("the {} model failed: {e}", self.model.name()))?;
            let seconds = started.elapsed().as_secs_f64() / chunk.len() as f64;
            let host = hostname();
            for (i, &m) in chunk.iter().enumerate() {
                let values: Vec<f64> = out.column(i).iter().copied().collect();
                let theta: Vec<f64> = p.column(i).iter().copied().collect();
                let ran_with =
                    folder
                        .cal
                        .parameter_files
                        .render(&folder.cal.prior, &theta, iteration, m);
                let run = InProcessRun {
                    values: &values,
                    seconds,
                    host: &host,
                    parameters_hash: crate::io::content_hash(ran_with.as_bytes()),
                };
                record_in_process(folder, iteration, m, &run)?;
            }
        }
        Ok(())
    }
}

/// What an in-process member's run gave.
pub struct InProcessRun<'a> {
    /// Its outputs.
    pub values: &'a [f64],
    /// Wall-clock seconds (its share of its chunk's).
    pub seconds: f64,
    /// Where it ran.
    pub host: &'a str,
    /// The content hash of the `parameters.toml` of the values it ran with.
    pub parameters_hash: String,
}

/// Record the outcome of an in-process member: its `output.toml`, then its
/// `status.toml` (failed when an output is not finite).
pub fn record_in_process(
    folder: &RunFolder,
    iteration: usize,
    number: usize,
    run: &InProcessRun<'_>,
) -> Result<()> {
    let (values, seconds, host) = (run.values, run.seconds, run.host);
    let dir = folder.layout.member_dir(iteration, number);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create folder", dir.display()))?;
    write_replace(
        &dir.join(member::OUTPUT_FILE),
        member::output_toml(values).as_bytes(),
    )?;
    let failed = values.iter().any(|v| !v.is_finite());
    MemberRecord {
        status: if failed {
            RecordStatus::Failed
        } else {
            RecordStatus::Done
        },
        reason: failed.then(|| "the model produced non-finite outputs".to_string()),
        malformed: false,
        exit_code: None,
        seconds,
        host: host.to_string(),
        parameters_hash: Some(run.parameters_hash.clone()),
    }
    .write(&dir)?;
    Ok(())
}

#[cfg(test)]
mod gpu_feature_tests {
    #[test]
    fn the_error_without_the_gpu_feature_says_what_to_do() {
        let e = super::no_gpu().to_string();
        assert!(
            e.contains("`gpu` feature") && e.contains("--backend threads"),
            "{e}"
        );
    }
}
