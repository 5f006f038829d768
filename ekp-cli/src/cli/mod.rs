//! The command line (clap derive; the doc comments are the `--help` text).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Calibrate models with ensemble Kalman processes, and run their ensembles.
///
/// Exit codes: 0 success, 1 runtime failure, 2 bad input (configuration,
/// arguments, files). Every error names the file, key or member at fault.
#[derive(Debug, Parser)]
#[command(name = "ekp-cli", version = env!("EKP_LONG_VERSION"), about, long_about)]
pub struct Cli {
    /// More log messages on stderr: -v info, -vv debug, -vvv trace
    /// (`RUST_LOG` overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Quiet: errors only on stderr (wins over -v; no notes, no warnings),
    /// and for `run` no progress bar and no table (only the summary).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour the log lines on stderr: auto (on a terminal, unless the
    /// NO_COLOR environment variable is set), always, never.
    #[arg(long, value_enum, global = true, default_value_t = crate::ui::logging::ColorChoice::Auto, value_name = "WHEN")]
    pub color: crate::ui::logging::ColorChoice,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
// Parsed once per process: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run a calibration to the end and write its results.
    ///
    /// Without --config, runs the embedded default: EnsembleKalmanProcesses.jl's
    /// Lorenz 96 example (calibrate F and A from windowed variances; truth
    /// F = 8, A = 2.5). Prints a table per iteration and a summary.
    ///
    /// The output folder is a calibration folder (the same as `init` makes),
    /// checkpointed after every update: `status`, `plot` and `update` work on
    /// it, and an interrupted run continues with `run --resume`. At the end
    /// it holds result.toml, observations.toml, history.csv, ensembles.csv,
    /// outputs.csv, final_ensemble.csv, state.toml, config.toml, the plots
    /// (plots/*.svg, *.png) and report.html. A folder holding another or an
    /// unfinished calibration is refused (see --resume, --overwrite).
    Run(RunArgs),
    /// Show each parameter's prior: unconstrained mean/std, and constrained
    /// mean/std and 5–95 % quantiles.
    Prior(PriorArgs),
    /// File workflow: create a calibration folder and write iteration 0's
    /// parameter files (DIR/iteration_000/member_NNN/parameters.toml).
    Init(InitArgs),
    /// File workflow: run the model of one member of one iteration and record
    /// the outcome. A failed member is recorded, and forward still exits 0.
    Forward(ForwardArgs),
    /// File workflow: read the newest iteration's outputs, apply one update
    /// and write the next iteration's parameter files and the state; after
    /// the last iteration, complete the calibration (result.toml, ...).
    /// Running it twice on the same outputs does nothing the second time.
    Update(UpdateArgs),
    /// File workflow: each member of an iteration (done, failed, missing) and
    /// the misfit history.
    Status(StatusArgs),
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
    /// Print a shell completion script: `ekp-cli completions bash >
    /// ~/.local/share/bash-completion/completions/ekp-cli` (zsh, fish,
    /// elvish and powershell too).
    Completions(CompletionsArgs),
    /// Print the manual page (roff): `ekp-cli man > ekp-cli.1; man ./ekp-cli.1`.
    Man,
}

/// Arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub use crate::models::{Backend, Precision};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The calibration file (TOML). Default: the embedded Lorenz 96 example.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the ensemble runs.
    #[arg(long, value_enum, default_value_t = Backend::Threads)]
    pub backend: Backend,
    /// The calibration folder to write (created if needed). A finished run of
    /// the same calibration in it is replaced; another or an unfinished
    /// calibration is refused unless --resume or --overwrite says what to do.
    #[arg(long, value_name = "DIR", default_value = "ekp-output")]
    pub output: PathBuf,
    /// Continue the interrupted run in --output from its last checkpoint
    /// (members already finished are not run again); the result is the one
    /// an uninterrupted run gives. Without --config, the folder's own
    /// calibration runs; with it, the file must be the same calibration.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Replace whatever calibration --output holds (its files, iteration
    /// folders and plots are removed; other files are left alone).
    #[arg(long)]
    pub overwrite: bool,
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
    pub precision: Option<Precision>,
    /// Command, worker and batch models: how many processes run at once —
    /// member processes or workers (default: one per core), batch processes
    /// (default 1).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Command, worker and batch models: the time limit of one member's run,
    /// or of one batch process (seconds, or 30s, 5m, 2h; overrides
    /// `model.timeout`). A member past it is killed and counts as failed.
    #[arg(long, value_name = "T", value_parser = crate::config::parse_duration)]
    pub member_timeout: Option<std::time::Duration>,
    /// --launcher and the flags of `--launcher srun`.
    #[command(flatten)]
    pub launch: crate::models::launcher::LaunchArgs,
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
    /// Print the priors as one JSON object on stdout (for scripts).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `plot`.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// The calibration folder (made by `run` or `init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Which image formats to write (report.html always inlines the SVGs).
    #[arg(long, value_enum, default_value_t = crate::report::Format::Both)]
    pub format: crate::report::Format,
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

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The calibration file (TOML); it is copied into the folder.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The calibration folder to create (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Seed of every random draw (overrides `process.seed`; written into the
    /// folder's config.toml).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// Arguments of `forward`.
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// The calibration folder (made by `init` or `run`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The iteration (from 0). Default: the newest one.
    #[arg(long, value_name = "I")]
    pub iteration: Option<usize>,
    /// The member (from 1). Default: $SLURM_ARRAY_TASK_ID.
    #[arg(long, value_name = "J", conflicts_with = "members")]
    pub member: Option<usize>,
    /// Several members at once, run in parallel as --backend / --jobs say:
    /// a range A-B, or a list such as 1-4,7,9-10 (for SLURM tasks that run
    /// several members: `slurm --members-per-task K`).
    #[arg(long, value_name = "A-B")]
    pub members: Option<String>,
    /// Where built-in models run (with --members: threads or gpu integrate
    /// the members together).
    #[arg(long, value_enum, default_value_t = Backend::Threads)]
    pub backend: Backend,
    /// Threads for `--backend threads` (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// GPU precision for `--backend gpu` (default f32).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Command, worker and batch models: how many processes run at once
    /// (member processes or workers: default one per core; batch processes: 1).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Time limit of a command or worker model's member, or of a batch
    /// process (seconds, or 30s, 5m, 2h); overrides `model.timeout`. The
    /// model is stopped when it runs longer.
    #[arg(long, value_name = "T", value_parser = crate::config::parse_duration)]
    pub member_timeout: Option<std::time::Duration>,
    /// Run nothing: record each selected member that has no outcome yet as
    /// failed with the cause REASON (what the SLURM chain's tasks do when
    /// SLURM requeued them after node failures more often than `slurm
    /// --retries` allows).
    #[arg(long, value_name = "REASON")]
    pub lost: Option<String>,
}

/// Arguments of `update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The calibration folder (made by `init` or `run`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Apply the update only if the newest iteration is I; if the calibration
    /// is already past I, do nothing (for job chains: a repeated job is harmless).
    #[arg(long, value_name = "I")]
    pub iteration: Option<usize>,
    /// Go back to iteration K first: its saved state becomes the current one,
    /// and the later iterations' folders are moved to `DIR/rewound_<time>_<pid>/`.
    /// Then apply the update of iteration K's outputs.
    #[arg(long, value_name = "K")]
    pub rewind_to: Option<usize>,
    /// Count members that have not run yet as failed (without it, `update`
    /// refuses while members are missing, listing them).
    #[arg(long)]
    pub allow_missing: bool,
}

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The calibration folder (made by `init` or `run`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Show the members of iteration I. Default: the newest one.
    #[arg(long, value_name = "I")]
    pub iteration: Option<usize>,
    /// Print the status as one JSON object on stdout (for scripts).
    #[arg(long)]
    pub json: bool,
}
