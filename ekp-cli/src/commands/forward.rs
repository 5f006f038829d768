//! `ekp-cli forward`.

use crate::cli::ForwardArgs;
use crate::error::{Error, Result};
use crate::folder::MemberState;
use crate::folder::member::STATUS_FILE;
use crate::workflow::forward::{Forwarded, forward as run_forward};

use super::say;

pub(super) fn forward(args: ForwardArgs) -> Result<()> {
    crate::stop::install()?;
    let ran =
        run_forward(&args.dir, args.iteration, args.member, args.member_timeout).map_err(|e| {
            match e {
                Error::Interrupted { signal, name, .. } => Error::Interrupted {
                    signal,
                    name,
                    hint: "the member was stopped and not recorded (it counts as missing)".into(),
                },
                other => other,
            }
        })?;
    match ran {
        Forwarded::Complete { iterations } => say(&format!(
            "nothing to run: the calibration completed at iteration {iterations} ({iterations} \
             updates)"
        )),
        Forwarded::Ran {
            folder,
            iteration,
            member,
            state,
            seconds,
            already_used,
            timeout_ignored,
        } => {
            let label = folder.layout.member_label(iteration, member);
            if already_used {
                eprintln!(
                    "note: iteration {iteration} was already used by an update; running {label} \
                     again changes only its own files"
                );
            }
            if timeout_ignored {
                eprintln!("note: --member-timeout applies to command models only");
            }
            match state {
                MemberState::Done(_) => say(&format!("{label}: done in {seconds:.2} s")),
                MemberState::Failed { reason, .. } => say(&format!(
                    "{label}: FAILED after {seconds:.2} s: {reason}\n  recorded in {}; the \
                     update's failure policy deals with it",
                    folder
                        .layout
                        .member_dir(iteration, member)
                        .join(STATUS_FILE)
                        .display()
                )),
                MemberState::Missing => say(&format!(
                    "{label}: ran for {seconds:.2} s but left no record"
                )),
            }
        }
    }
    Ok(())
}
