//! The default Lorenz 96 observables at F = 8, A = 2.5 on the GPU (f32 and,
//! where the adapter supports it, f64) next to the CPU's.
//!
//! ```text
//! cargo run --release -p ekp-gpu --example lorenz96_gpu
//! ```
//!
//! Exits with status 1 and the error message when no adapter is found.

use std::process::ExitCode;
use std::time::Instant;

use ekp_core::ForwardModel;
use ekp_gpu::{GpuError, Lorenz96Gpu, Precision};
use ekp_models::{Ensemble, Execution, Lorenz96, Lorenz96Config};
use nalgebra::DMatrix;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = Lorenz96Config::default();
    let params = DMatrix::from_column_slice(2, 1, &[8.0, 2.5]);

    let begin = Instant::now();
    let cpu = Ensemble::new(Lorenz96::new(config.clone())?, Execution::Serial).evaluate(&params)?;
    println!("cpu f64: {:?}  ({:.2?})", cpu.as_slice(), begin.elapsed());

    for precision in [Precision::F32, Precision::F64] {
        let model = match Lorenz96Gpu::new(config.clone(), precision) {
            Ok(m) => m,
            Err(e @ GpuError::F64Unsupported { .. }) => {
                println!("gpu {precision}: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if precision == Precision::F32 {
            println!("adapter: {}", model.adapter_info());
        }
        let begin = Instant::now();
        let gpu = model.evaluate(&params)?;
        println!(
            "gpu {precision}: {:?}  ({:.2?})",
            gpu.as_slice(),
            begin.elapsed()
        );
    }
    Ok(())
}
