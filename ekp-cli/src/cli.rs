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
    /// final_ensemble.csv, state.toml and config.toml into the output folder.
    Run(RunArgs),
    /// Show each parameter's prior: unconstrained mean/std, and constrained
    /// mean/std and 5–95 % quantiles.
    Prior(PriorArgs),
}

/// Where the ensemble runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// One member after another on one thread.
    Serial,
    /// Members in parallel on CPU threads (rayon); same results as serial.
    Threads,
    /// All members on a GPU through wgpu (not available in this build).
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
    /// No progress bar and no table: only the summary.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Arguments of `prior`.
#[derive(Debug, clap::Args)]
pub struct PriorArgs {
    /// The calibration file (TOML). Default: the embedded Lorenz 96 example.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}
