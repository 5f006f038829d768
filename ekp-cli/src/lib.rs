//! # ekp-cli
//!
//! The library behind the `ekp-cli` binary: the calibration file
//! ([`config`]), building its model ([`model`]), the calibration loop with its
//! observers ([`run`], [`report`]), and the files it writes ([`output`]):
//! plots ([`plot`]) and the HTML report ([`report_html`]) among them. Also:
//! the example calibration file ([`example_config`]), EKP.jl parameter files
//! ([`ekpjl_toml`]) and logging ([`logging`]). The
//! binary only parses arguments, calls [`execute`], and maps errors to exit
//! codes ([`error`]).

pub mod bench;
pub mod bench_update;
pub mod cli;
pub mod command_model;
pub mod config;
pub mod ekpjl_toml;
pub mod error;
pub mod example_config;
pub mod layout;
pub mod lock;
pub mod logging;
pub mod model;
pub mod output;
pub mod plot;
pub mod prior_cmd;
pub mod report;
pub mod report_html;
pub mod run;
pub mod slurm;
pub mod workflow;

use std::time::Instant;

use anyhow::Context;
use ekp_models::Execution;

use crate::cli::{Backend, Cli, Command, PriorArgs, RunArgs};
use crate::config::{Calibration, ObservationSpec};
use crate::error::InputError;
use crate::run::Observer;

/// Run one parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_command(args, cli.quiet),
        Command::Prior(args) => prior_command(args),
        Command::Init(args) => workflow::init(args),
        Command::Forward(args) => workflow::forward(args),
        Command::Update(args) => workflow::update(args),
        Command::Status(args) => workflow::status(args),
        Command::Slurm(args) => slurm::slurm(args),
        Command::Bench(args) => bench::bench(args),
        Command::Plot(args) => plot_command(args),
        Command::Config(args) => config_command(args),
    }
}

fn load(config: Option<&std::path::Path>) -> Result<Calibration, InputError> {
    match config {
        Some(path) => Calibration::from_file(path),
        None => Calibration::embedded_default(),
    }
}

fn prior_command(args: PriorArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.ekp_toml {
        if args.config.is_some() {
            return Err(InputError::Argument(
                "prior: give either --config or --ekp-toml, not both".into(),
            )
            .into());
        }
        let prior = ekpjl_toml::prior_from_file(path)?;
        println!("prior of {} (EKP.jl parameter file)", path.display());
        print!("{}", prior_cmd::prior_table(&prior));
        return Ok(());
    }
    let cal = load(args.config.as_deref())?;
    println!("prior of {}", cal.source);
    print!("{}", prior_cmd::prior_table(&cal.prior));
    Ok(())
}

/// A JSON number, or `null` where it is not finite (JSON has no NaN/∞).
fn json_number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// `ekp-cli config --example [--process KIND]`.
fn config_command(args: cli::ConfigArgs) -> anyhow::Result<()> {
    if !args.example {
        return Err(InputError::Argument(
            "config: say what to print: --example (a complete, commented calibration file)".into(),
        )
        .into());
    }
    let kind = args
        .process
        .as_deref()
        .unwrap_or(example_config::DEFAULT_KIND);
    print!("{}", example_config::example(kind)?);
    Ok(())
}

/// `ekp-cli plot --dir DIR`: the plots and `report.html` of a run folder.
fn plot_command(args: cli::PlotArgs) -> anyhow::Result<()> {
    let (ekp, data) = plot::PlotData::from_dir(&args.dir)?;
    let config_text = std::fs::read_to_string(args.dir.join("config.toml")).unwrap_or_default();
    let history_csv = std::fs::read_to_string(args.dir.join("history.csv")).unwrap_or_default();
    let input = report_html::ReportInput {
        dir: &args.dir,
        ekp: &ekp,
        config_text: &config_text,
        history_csv: &history_csv,
        complete: args.dir.join("final_ensemble.csv").exists(),
    };
    let written = report_html::write_report(&input, &data, args.format)?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(())
}

/// The CPU execution of a backend (the GPU backend still builds the CPU model:
/// it generates the truth data).
fn execution(backend: Backend) -> Execution {
    match backend {
        Backend::Serial | Backend::Gpu => Execution::Serial,
        Backend::Threads => Execution::Threads,
    }
}

fn run_command(args: RunArgs, quiet: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut cal = load(args.config.as_deref())?;
    if let Some(seed) = args.seed {
        cal.seed = seed;
    }
    let exec = execution(args.backend);
    if args.precision.is_some() && args.backend != Backend::Gpu {
        return Err(InputError::Argument(
            "--precision applies to --backend gpu; the CPU backends compute in f64".into(),
        )
        .into());
    }
    if args.threads == Some(0) {
        return Err(InputError::Argument("--threads must be at least 1".into()).into());
    }
    // Command models run their members as processes: --jobs of them at once.
    let is_command = matches!(cal.model, config::ModelSpec::Command(_));
    if !is_command && (args.jobs.is_some() || args.member_timeout.is_some()) {
        return Err(InputError::Argument(format!(
            "--jobs and --member-timeout apply to command models; this model is {} \
             (use --threads)",
            cal.model.kind()
        ))
        .into());
    }
    if args.jobs == Some(0) {
        return Err(InputError::Argument("--jobs must be at least 1".into()).into());
    }
    let workers = if is_command {
        args.jobs.or(args.threads)
    } else {
        args.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers.unwrap_or(0))
        .build()
        .context("cannot start the thread pool")?;
    let command = command_model::CommandOptions {
        root: args.output.clone(),
        timeout: args.member_timeout,
    };
    let built = model::BuiltModel::with_command_options(&cal, exec, &command)?;
    let observation = built.observation(&cal)?;
    let gpu = match args.backend {
        Backend::Gpu => {
            let precision = args.precision.unwrap_or(bench::PrecisionArg::F32).gpu();
            Some(model::GpuModel::new(&cal, &built, precision)?)
        }
        Backend::Serial | Backend::Threads => None,
    };
    let forward: &(dyn ekp_core::ForwardModel + Sync) = match &gpu {
        Some(g) => g,
        None => &built.ensemble,
    };
    let backend_name = match &gpu {
        Some(g) => format!("gpu on {}", g.adapter_info()),
        None => exec.to_string(),
    };

    let names = cal.prior.flat_names();
    let mut progress = report::Progress::new(cal.iterations);
    let mut table = report::Table::new(names.clone());
    let mut log = logging::LogObserver;
    let mut observers: Vec<&mut dyn Observer> = vec![&mut log];
    tracing::info!(
        process = cal.process.kind(),
        members = cal.ensemble_size,
        iterations = cal.iterations,
        model = cal.model.kind(),
        backend = %backend_name,
        seed = cal.seed,
        source = %cal.source,
        "run starts"
    );
    if !quiet && !args.json {
        println!(
            "ekp: {} with {} members, up to {} iterations, model {}, backend {}, seed {} ({})",
            cal.process.kind(),
            cal.ensemble_size,
            cal.iterations,
            cal.model.kind(),
            backend_name,
            cal.seed,
            cal.source
        );
        observers.push(&mut progress);
        observers.push(&mut table);
    }
    let out = pool.install(|| run::calibrate(&cal, observation, forward, &mut observers))?;
    let written = output::write_all(&args.output, &cal, &out)?;
    for p in &written {
        tracing::info!(file = %p.display(), "written");
    }

    let last = out.rows.last();
    let truth = match &cal.observations {
        ObservationSpec::Truth { theta, .. } => Some(theta.clone()),
        ObservationSpec::Given { .. } => None,
    };
    if args.json {
        let mut parameters = serde_json::Map::new();
        if let Some(r) = last {
            for (i, n) in names.iter().enumerate() {
                let mut p = serde_json::Map::new();
                p.insert("mean".into(), json_number(r.mean[i]));
                p.insert("std".into(), json_number(r.std[i]));
                if let Some(t) = &truth {
                    p.insert("truth".into(), json_number(t[i]));
                }
                parameters.insert(n.clone(), serde_json::Value::Object(p));
            }
        }
        let summary = serde_json::json!({
            "process": cal.process.kind(),
            "ensemble_size": cal.ensemble_size,
            "iterations": out.ekp.iterations(),
            "terminated_early": out.terminated_early,
            "final_loss": json_number(last.map_or(f64::NAN, |r| r.metrics.loss)),
            "final_bayes_loss": json_number(
                last.and_then(|r| r.metrics.bayes_loss).unwrap_or(f64::NAN)
            ),
            "final_avg_rmse": json_number(last.map_or(f64::NAN, |r| r.metrics.avg_rmse)),
            "final_crps": json_number(last.and_then(|r| r.metrics.crps).unwrap_or(f64::NAN)),
            "seconds": started.elapsed().as_secs_f64(),
            "backend": backend_name,
            "seed": cal.seed,
            "config": cal.source,
            "output": args.output.display().to_string(),
            "parameters": parameters,
            "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        println!("{summary}");
        return Ok(());
    }
    println!(
        "\n{} update(s) applied{} in {:.2} s ({}); final loss {:.4e}",
        out.ekp.iterations(),
        if out.terminated_early {
            " (the scheduler reached its terminal time)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64(),
        backend_name,
        last.map_or(f64::NAN, |r| r.metrics.loss)
    );
    if let Some(r) = last {
        for (i, n) in names.iter().enumerate() {
            let t = truth
                .as_ref()
                .map(|t| format!("   (truth {})", t[i]))
                .unwrap_or_default();
            println!("  {n:>12} = {:.5} ± {:.5}{t}", r.mean[i], r.std[i]);
        }
    }
    if let Some(result) = written.iter().find(|p| p.ends_with("result.toml")) {
        println!("results in {}", result.display());
    }
    Ok(())
}
