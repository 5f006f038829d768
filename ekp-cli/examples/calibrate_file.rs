//! Library use of `ekp-cli`: what `ekp-cli run` does, from your own program.
//!
//! A calibration file (here inline: a linear model, 2 parameters, 4 data
//! values) is parsed and validated into one [`Calibration`], its model built,
//! and the calibration loop driven by [`calibrate`]. An [`Observer`] hangs off
//! the loop and sees every iteration — the place for your own progress
//! report, logging or checkpoints — and [`write_all`] leaves the same files
//! as the command line would (here in a temporary folder).
//!
//! Run it with `cargo run -p ekp-cli --example calibrate_file`.

use ekp_cli::config::Calibration;
use ekp_cli::model::BuiltModel;
use ekp_cli::output::write_all;
use ekp_cli::run::{IterationRow, Observer, calibrate};
use ekp_models::Execution;

const CALIBRATION: &str = r#"
[process]
kind = "inversion"
ensemble_size = 20
iterations = 8
seed = 1

[[parameters]]
name = "slope"
prior = { kind = "gaussian", mean = 0.0, std = 2.0 }

[[parameters]]
name = "rate"
prior = { kind = "constrained-gaussian", mean = 1.0, std = 0.5, lower = 0.0 }

[observations]
truth = { slope = 1.5, rate = 0.7 }
noise_std = 0.05

[model]
kind = "linear"
matrix = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]]
"#;

/// Prints the data misfit of each ensemble as the loop goes.
struct PrintLoss;

impl Observer for PrintLoss {
    fn iteration_done(&mut self, row: &IterationRow) {
        println!(
            "ensemble {}: loss {:.3e}, parameter means {:?}",
            row.iteration,
            row.metrics.loss,
            row.mean.as_slice()
        );
    }
}

fn main() -> anyhow::Result<()> {
    let cal = Calibration::parse(CALIBRATION, "<inline>")?;
    let built = BuiltModel::new(&cal, Execution::Threads)?;
    let observation = built.observation(&cal)?;
    let mut printer = PrintLoss;
    let out = calibrate(&cal, observation, &built.ensemble, &mut [&mut printer])?;
    if let Some(last) = out.rows.last() {
        println!(
            "final constrained means: {:?} (truth [1.5, 0.7])",
            last.mean.as_slice()
        );
    }
    let dir = std::env::temp_dir().join("ekp-example-calibrate-file");
    let written = write_all(&dir, &cal, &out)?;
    println!("{} files written in {}", written.len(), dir.display());
    Ok(())
}
