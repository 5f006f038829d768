//! Library use of `ekp-cli`: what `ekp-cli run` does, from your own program.
//!
//! A calibration file (here inline: a linear model, 2 parameters, 4 data
//! values) is parsed and validated into one [`Calibration`]; [`prepare`]
//! claims a calibration folder (here a temporary one) and builds the model,
//! and [`drive`] runs the calibration to the end, checkpointing after every
//! update. An [`Observer`] hangs off the driver and sees every iteration —
//! the place for your own progress report or logging.
//!
//! Run it with `cargo run -p ekp-cli --example calibrate_file`.

use ekp_cli::driver::Observer;
use ekp_cli::folder::IterationRow;
use ekp_cli::models::{Backend, RunOptions};
use ekp_cli::workflow::run::{RunRequest, drive, prepare};

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
    fn iteration_done(&mut self, row: &IterationRow) -> ekp_cli::error::Result<()> {
        println!(
            "ensemble {}: loss {:.3e}, parameter means {:?}",
            row.iteration,
            row.metrics.loss,
            row.mean.as_slice()
        );
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ekp-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("linear.toml");
    std::fs::write(&config, CALIBRATION)?;
    let request = RunRequest {
        config: Some(config),
        output: dir.join("run"),
        seed: None,
        resume: false,
        overwrite: false,
        launch: Default::default(),
    };
    let options = RunOptions {
        backend: Backend::Threads,
        ..RunOptions::serial()
    };
    let prepared = prepare(&request, &options).map_err(|e| anyhow::anyhow!(e.render()))?;
    let mut printer = PrintLoss;
    let ekp = drive(
        &prepared.folder,
        prepared.evaluator.as_ref(),
        vec![&mut printer],
    )
    .map_err(|e| anyhow::anyhow!(e.render()))?;
    let mean = ekp.prior().to_constrained(&ekp.unconstrained_mean());
    println!(
        "final constrained means: {:?} (truth [1.5, 0.7]); the calibration folder is {}",
        mean.as_slice(),
        prepared.folder.dir.display()
    );
    Ok(())
}
