//! `ekp-cli update`.

use crate::cli::UpdateArgs;
use crate::driver::Advance;
use crate::error::Result;
use ekp_core::EnsembleKalmanProcess;

use crate::folder::{RunFolder, UpdateRecord};
use crate::report::{Format, ReportObserver};
use crate::workflow::update::{UpdateOptions, Updated, update as run_update};

use super::say;

pub(super) fn update(args: UpdateArgs) -> Result<()> {
    let options = UpdateOptions {
        iteration: args.iteration,
        rewind_to: args.rewind_to,
        allow_missing: args.allow_missing,
    };
    let mut report = ReportObserver::new(Format::Both);
    let outcome = run_update(&args.dir, options, vec![&mut report])?;
    let say_rewound = |rewound: Option<std::path::PathBuf>| {
        if let (Some(aside), Some(k)) = (rewound, args.rewind_to) {
            say(&format!(
                "rewound to iteration {k}; later iterations moved to {}",
                aside.display()
            ));
        }
    };
    let (advance, problems) = match outcome {
        Updated::Nothing { why, rewound } => {
            say_rewound(rewound);
            say(&format!("nothing to do: {why}"));
            return Ok(());
        }
        Updated::Step {
            advance,
            problems,
            rewound,
        } => {
            say_rewound(rewound);
            (advance, problems)
        }
    };
    let folder = RunFolder::open(&args.dir)?;
    match advance {
        Advance::Updated { next, record } => updated(&folder, &next, &record, &problems),
        Advance::Completed {
            ekp,
            record,
            terminated_early,
        } => completed(&folder, &ekp, &record, terminated_early, &problems),
    }
    Ok(())
}

/// Failed or missing members, on stderr.
fn report_problems(folder: &RunFolder, record: &UpdateRecord, problems: &[String], what: &str) {
    if !problems.is_empty() {
        let n = folder.cal.ensemble_size;
        crate::ui::note(&format!(
            "{}: {} of {n} members failed or are missing{what}:\n  {}",
            folder.layout.iteration_name(record.iteration),
            n - record.done,
            problems.join("\n  ")
        ));
    }
}

fn updated(
    folder: &RunFolder,
    next: &EnsembleKalmanProcess,
    record: &UpdateRecord,
    problems: &[String],
) {
    let (k, n) = (record.iteration, folder.cal.ensemble_size);
    report_problems(
        folder,
        record,
        problems,
        "; the failure policy handles them",
    );
    say(&format!(
        "update {k} applied: Δt = {:.4e}, loss {:.4e}, {}/{n} members; wrote {}'s \
         parameter files and {}",
        record.dt.unwrap_or(f64::NAN),
        record.metrics.loss,
        record.done,
        folder.layout.iteration_name(k + 1),
        folder.state_path().display()
    ));
    if k + 1 >= folder.cal.iterations || next.is_terminated() {
        say(&format!(
            "next: run {} (the final ensemble), then `ekp-cli update` once more to complete",
            folder.layout.iteration_name(k + 1)
        ));
    }
}

fn completed(
    folder: &RunFolder,
    ekp: &EnsembleKalmanProcess,
    record: &UpdateRecord,
    terminated_early: bool,
    problems: &[String],
) {
    report_problems(folder, record, problems, "");
    say(&format!(
        "calibration complete: {} updates applied{}, final loss {:.4e}; results in {}",
        ekp.iterations(),
        if terminated_early {
            " (the scheduler reached its terminal time)"
        } else {
            ""
        },
        record.metrics.loss,
        folder.dir.join("result.toml").display()
    ));
}
