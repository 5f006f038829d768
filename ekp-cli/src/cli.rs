//! The command line (clap derive; the doc comments are the `--help` text).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Calibrate models with ensemble Kalman processes, and run their ensembles.
///
/// Exit codes: 0 success, 1 runtime failure, 2 bad input (configuration,
/// arguments, files). Every error names the file, key or member at fault.
#[derive(Debug, Parser)]
#[command(name = "ekp-cli", version, about, long_about)]
pub struct Cli {
    /// More log messages on stderr: -v info, -vv debug, -vvv trace
    /// (`RUST_LOG` overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Quiet: errors only on stderr (wins over -v), and for `run` no
    /// progress bar and no table (only the summary).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a calibration to the end and write its results.
    ///
    /// Without --config, runs the embedded default: EnsembleKalmanProcesses.jl's
    /// Lorenz 96 example (calibrate F and A from windowed variances; truth
    /// F = 8, A = 2.5). Prints a table per iteration and a summary, and writes
    /// result.toml, observations.toml, history.csv, ensembles.csv, outputs.csv,
    /// final_ensemble.csv, state.toml and config.toml into the output folder,
    /// and the plots (plots/*.svg, plots/*.png) and report.html.
    Run(RunArgs),
    /// Show each parameter's prior: unconstrained mean/std, and constrained
    /// mean/std and 5–95 % quantiles.
    Prior(PriorArgs),
    /// File workflow: create a calibration folder and write iteration 0's
    /// parameter files (DIR/iteration_000/member_NNN/parameters.toml).
    Init(crate::workflow::InitArgs),
    /// File workflow: run the model of one member of one iteration and record
    /// the outcome. A failed member is recorded, and forward still exits 0.
    Forward(crate::workflow::ForwardArgs),
    /// File workflow: read the newest iteration's outputs, apply one update
    /// and write the next iteration's parameter files and the state; after
    /// the last iteration, complete the calibration (result.toml, ...).
    /// Running it twice on the same outputs does nothing the second time.
    Update(crate::workflow::UpdateArgs),
    /// File workflow: each member of an iteration (done, failed, missing) and
    /// the misfit history.
    Status(crate::workflow::StatusArgs),
    /// Run the file workflow as a chain of SLURM jobs: an array job of
    /// forward runs per iteration, an update job after each. Writes the
    /// sbatch scripts; --submit submits them, --wait follows them.
    Slurm(crate::slurm::SlurmArgs),
    /// Measure how fast a backend integrates Lorenz 96 ensembles (member-steps
    /// per second, printed last). For the gpu backend it also prints the
    /// adapter, its backend and device type, so a software adapter is never
    /// mistaken for a GPU. With --update: how long one ensemble Kalman update
    /// takes (seconds per update, printed last).
    Bench(crate::bench::BenchArgs),
    /// Draw the plots (DIR/plots/*.svg, *.png) and write DIR/report.html for
    /// a run folder: a finished `run`, or a file-workflow or SLURM
    /// calibration, complete or in progress.
    Plot(PlotArgs),
    /// Print a complete, commented calibration file with every key and its
    /// default (`--example`), for `--process KIND` (default inversion).
    Config(ConfigArgs),
}

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

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The calibration file (TOML). Default: the embedded Lorenz 96 example.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the ensemble runs.
    #[arg(long, value_enum, default_value_t = Backend::Threads)]
    pub backend: Backend,
    /// Output folder (created if needed; files in it are replaced).
    #[arg(long, value_name = "DIR", default_value = "ekp-output")]
    pub output: PathBuf,
    /// Seed of every random draw (overrides `process.seed`).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Threads for `--backend threads` (default: one per core). Results do
    /// not depend on it.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the summary as one JSON object on stdout (for scripts), and
    /// nothing else there: no progress bar, no table.
    #[arg(long)]
    pub json: bool,
    /// GPU precision for `--backend gpu` (default f32; f64 needs an adapter
    /// with SHADER_F64).
    #[arg(long, value_enum)]
    pub precision: Option<crate::bench::PrecisionArg>,
    /// Command models: how many member processes run at once (default: one
    /// per core).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Command models: the time limit of one member's run (seconds, or 30s,
    /// 5m, 2h; overrides `model.timeout`). A member past it is killed and
    /// counts as failed.
    #[arg(long, value_name = "T", value_parser = crate::command_model::parse_duration)]
    pub member_timeout: Option<std::time::Duration>,
}

/// Arguments of `prior`.
#[derive(Debug, clap::Args)]
pub struct PriorArgs {
    /// The calibration file (TOML). Default: the embedded Lorenz 96 example.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show the priors of an EnsembleKalmanProcesses.jl parameter file
    /// instead (tables with `prior` and `constraint` strings).
    #[arg(long, value_name = "FILE")]
    pub ekp_toml: Option<PathBuf>,
}

/// Arguments of `plot`.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// The run folder (holds state.toml).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Which image formats to write (report.html always inlines the SVGs).
    #[arg(long, value_enum, default_value_t = crate::plot::Format::Both)]
    pub format: crate::plot::Format,
}

/// Arguments of `config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print an example calibration file (every key, with its default).
    #[arg(long)]
    pub example: bool,
    /// The process of the example: inversion, transform-inversion, sampler,
    /// unscented, transform-unscented, gauss-newton, sparse-inversion.
    #[arg(long, value_name = "KIND")]
    pub process: Option<String>,
}
