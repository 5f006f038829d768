//! `ekp-cli`: a thin binary over the `ekp_cli` library.

use clap::Parser;

fn main() {
    let cli = ekp_cli::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match ekp_cli::execute(cli) {
        Ok(()) => std::process::exit(ekp_cli::error::EXIT_OK),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(ekp_cli::error::exit_code(&err));
        }
    }
}
