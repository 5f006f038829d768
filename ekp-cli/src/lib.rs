//! # ekp-cli
//!
//! The library behind the `ekp-cli` binary, in layers whose imports run one
//! way, top to bottom (no module imports one above it):
//!
//! ```text
//! commands/   one file per subcommand; the only code that prints results
//! cli/        the clap types: every flag, its help text
//! ui/         progress bar, per-iteration table, logs, prior table
//! slurm/      the file workflow as a chain of SLURM jobs
//! bench/      `ekp-cli bench`: forward-kernel and update timings
//! workflow/   init, forward, update (and rewind), status, run (claim + drive)
//! models/     building the model and running members: built-in, command, gpu
//! report/     plots (SVG/PNG) and report.html
//! driver/     the one step: evaluate → collect → update → checkpoint; observers
//! folder/     the calibration folder: one owner per file format, the lock
//! config/     the calibration file, validated; EKP.jl parameter files
//! error.rs, io.rs   typed errors and exit codes; atomic writes, capped reads
//! ```
//!
//! The binary parses arguments, calls [`execute`], and maps the error's
//! variant to an exit code ([`error::Error::exit_code`]).
//!
//! The library facade, for programs that drive a calibration themselves
//! (see `examples/calibrate_file.rs`): [`Calibration`] (parse and validate a
//! calibration file), [`workflow::run`] (claim a folder and drive it),
//! [`driver::Observer`] (hook into every step), [`models::RunOptions`]
//! (where the members run).

pub mod bench;
pub mod cli;
mod commands;
pub mod config;
pub mod driver;
pub mod error;
pub mod folder;
pub mod io;
pub mod models;
pub mod report;
pub mod slurm;
pub mod stop;
pub mod ui;
pub mod workflow;

pub use commands::execute;
pub use config::Calibration;
