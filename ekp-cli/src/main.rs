//! `ekp-cli`: a thin binary over the `ekp_cli` library.

use clap::Parser;

fn main() {
    let cli = ekp_cli::cli::Cli::parse();
    ekp_cli::ui::logging::init(cli.verbose, cli.quiet, cli.color);
    match ekp_cli::execute(cli) {
        Ok(()) => std::process::exit(ekp_cli::error::EXIT_OK),
        Err(err) => {
            eprintln!("error: {}", err.render());
            std::process::exit(err.exit_code());
        }
    }
}
