//! The default Lorenz 96 model (EKP.jl's Lorenz example) at F = 8, A = 2.5:
//! prints the four observables of one member, the truth data (y, √diag Γ), and
//! the time an ensemble takes serially and on threads.
//!
//! Run with `cargo run --release -p ekp-models --example lorenz96`.

use std::time::Instant;

use ekp_core::ForwardModel;
use ekp_models::{Ensemble, Execution, Lorenz96, Lorenz96Config, MemberModel};
use nalgebra::DMatrix;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Lorenz96::new(Lorenz96Config::default())?;
    let theta = [8.0, 2.5];

    let start = Instant::now();
    let g = model.evaluate_single(0, &theta)?;
    let one = start.elapsed();
    println!(
        "G(F = 8, A = 2.5) = {g:.4?}   ({} steps, {:.1} ms)",
        model.member_steps(),
        one.as_secs_f64() * 1e3
    );

    let start = Instant::now();
    let (y, gamma) = model.truth(&theta)?;
    let truth_time = start.elapsed();
    let sd: Vec<f64> = gamma.diagonal().iter().map(|v| v.sqrt()).collect();
    println!(
        "truth: y = {:.4?}, sqrt(diag Γ) = {sd:.4?}   ({:.1} ms)",
        y.as_slice(),
        truth_time.as_secs_f64() * 1e3
    );

    let members = 20;
    let params = DMatrix::from_fn(
        2,
        members,
        |i, j| {
            if i == 0 { 7.0 + 0.1 * j as f64 } else { 2.5 }
        },
    );
    for execution in Execution::ALL {
        let ensemble = Ensemble::new(&model, execution);
        let start = Instant::now();
        let out = ensemble.evaluate(&params)?;
        let secs = start.elapsed().as_secs_f64();
        let member_steps = (members * model.member_steps()) as f64;
        println!(
            "{execution:>7}: {members} members in {:.3} s ({:.2e} member-steps/s, {} threads); member 1: {:.4?}",
            secs,
            member_steps / secs,
            match execution {
                Execution::Serial => 1,
                Execution::Threads => rayon::current_num_threads(),
            },
            out.column(0).as_slice()
        );
    }
    Ok(())
}
