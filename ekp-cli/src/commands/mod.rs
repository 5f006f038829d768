//! One file per subcommand: each turns its parsed arguments into calls of
//! the layers below and prints what the user reads. The only code of
//! `ekp-cli` that writes to stdout (besides the table and progress
//! observers of `crate::ui`).

mod bench;
mod config;
mod forward;
mod init;
mod plot;
mod prior;
mod run;
mod slurm;
mod status;
mod update;

use std::io::Write as _;

use crate::cli::{Cli, Command};
use crate::error::Result;

/// Run one parsed command line.
pub fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args, cli.quiet),
        Command::Prior(args) => prior::prior(args),
        Command::Init(args) => init::init(args),
        Command::Forward(args) => forward::forward(args),
        Command::Update(args) => update::update(args),
        Command::Status(args) => status::status(args),
        Command::Slurm(args) => slurm::slurm(args),
        Command::Bench(args) => bench::bench(args),
        Command::Plot(args) => plot::plot(args),
        Command::Config(args) => config::config(args),
        Command::Completions(args) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "ekp-cli", &mut out);
            write_stdout(&out)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| anyhow::anyhow!("cannot render the manual page: {e}"))?;
            write_stdout(&out)
        }
    }
}

/// Write `bytes` to stdout; a closed stdout (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
    Ok(())
}

/// Print a line on stdout; a closed stdout (`| head`) is not an error.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
