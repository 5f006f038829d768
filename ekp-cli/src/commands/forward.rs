//! `ekp-cli forward`.

use crate::cli::ForwardArgs;
use crate::error::{Error, Result};
use crate::folder::MemberState;
use crate::folder::member::STATUS_FILE;
use crate::models::RunOptions;
use crate::workflow::forward::{Forwarded, Selection, forward as run_forward, mark_lost};

use super::say;

/// Members listed one by one in the summary; beyond, failed ones only.
const LISTED: usize = 20;

pub(super) fn forward(args: ForwardArgs) -> Result<()> {
    crate::stop::install()?;
    let selection = match args.members {
        Some(spec) => Selection::Many(spec),
        None => Selection::One(args.member),
    };
    let options = RunOptions {
        backend: args.backend,
        precision: args.precision,
        threads: args.threads,
        jobs: args.jobs,
        member_timeout: args.member_timeout,
    };
    let ran = match &args.lost {
        Some(reason) => mark_lost(&args.dir, args.iteration, &selection, reason),
        None => run_forward(&args.dir, args.iteration, &selection, &options),
    };
    let ran = ran.map_err(|e| match e {
        Error::Interrupted { signal, name, .. } => Error::Interrupted {
            signal,
            name,
            hint: "the members not finished were stopped and not recorded (they count as \
                   missing)"
                .into(),
        },
        other => other,
    })?;
    match ran {
        Forwarded::Complete { iterations } => say(&format!(
            "nothing to run: the calibration completed at iteration {iterations} ({iterations} \
             updates)"
        )),
        Forwarded::Ran {
            folder,
            iteration,
            members,
            seconds,
            already_used,
            timeout_ignored,
        } => {
            if already_used {
                crate::ui::note(&format!(
                    "note: iteration {iteration} was already used by an update; running members \
                     of it again changes only their own files"
                ));
            }
            if timeout_ignored {
                crate::ui::note(
                    "note: --member-timeout applies to command, worker and batch models only",
                );
            }
            print_members(&folder, iteration, &members, seconds);
        }
    }
    Ok(())
}

/// One line per member (failed ones only beyond [`LISTED`]), then a summary.
fn print_members(
    folder: &crate::folder::RunFolder,
    iteration: usize,
    members: &[(usize, MemberState)],
    seconds: f64,
) {
    let many = members.len() > LISTED;
    let (mut done, mut failed) = (0, 0);
    for (member, state) in members {
        let label = folder.layout.member_label(iteration, *member);
        match state {
            MemberState::Done(_) => {
                done += 1;
                if !many {
                    say(&format!("{label}: done"));
                }
            }
            MemberState::Failed { reason, .. } => {
                failed += 1;
                say(&format!(
                    "{label}: FAILED: {reason}\n  recorded in {}; the update's failure policy \
                     deals with it",
                    folder
                        .layout
                        .member_dir(iteration, *member)
                        .join(STATUS_FILE)
                        .display()
                ));
            }
            MemberState::Missing => say(&format!("{label}: ran but left no record")),
        }
    }
    say(&format!(
        "{} member{} of iteration {iteration} in {seconds:.2} s: {done} done, {failed} failed",
        members.len(),
        if members.len() == 1 { "" } else { "s" },
    ));
}
