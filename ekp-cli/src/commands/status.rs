//! `ekp-cli status`.

use crate::cli::StatusArgs;
use crate::error::Result;
use crate::folder::{CONFIG_FILE, IterationRow, MemberState};
use crate::slurm::{ChainView, chain_view};
use crate::workflow::status::{Status, status as read_status};

use super::say;

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.4e}"))
}

fn history_line(r: &IterationRow, note: &str) -> String {
    let failed: Vec<String> = r.failed.iter().map(|j| (j + 1).to_string()).collect();
    format!(
        "  {:>9}  {:>11}  {:>11.4e}  {:>11}  {:>11.4e}  {:>11}  {}{note}",
        r.iteration,
        opt(r.dt),
        r.metrics.loss,
        opt(r.metrics.bayes_loss),
        r.metrics.avg_rmse,
        opt(r.metrics.crps),
        failed.join(" ")
    )
}

/// The status as one JSON object (`status --json`); NaN metrics are `null`.
/// With a SLURM chain: `slurm` lists its jobs' states, and each member its
/// array task's `slurm_state` while squeue knows it.
fn status_json(s: &Status, slurm: Option<&ChainView>) -> serde_json::Value {
    let folder = &s.folder;
    let members: Vec<serde_json::Value> = s
        .members
        .iter()
        .enumerate()
        .map(|(j, m)| {
            let mut v = match m {
                MemberState::Done(_) => serde_json::json!({ "member": j + 1, "state": "done" }),
                MemberState::Failed { reason, .. } => {
                    serde_json::json!({ "member": j + 1, "state": "failed", "reason": reason })
                }
                MemberState::Missing => {
                    serde_json::json!({ "member": j + 1, "state": "missing" })
                }
            };
            if let Some(state) = slurm.and_then(|c| c.member_state(s.shown, j + 1)) {
                v["slurm_state"] = state.into();
            }
            v
        })
        .collect();
    let slurm = slurm.map(|c| {
        serde_json::json!({
            "submitted_unix": c.submitted_unix,
            "jobs": c.jobs.iter().map(|j| serde_json::json!({
                "job": j.job, "id": j.id, "state": j.state,
            })).collect::<Vec<_>>(),
        })
    });
    let history: Vec<serde_json::Value> = s
        .rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "iteration": r.iteration,
                "dt": r.dt,
                "loss": r.metrics.loss,
                "bayes_loss": r.metrics.bayes_loss,
                "rmse_over_noise_std": r.metrics.avg_rmse,
                "crps": r.metrics.crps,
                "failed_members": r.failed.iter().map(|j| j + 1).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "dir": folder.dir.display().to_string(),
        "process": folder.cal.process.kind(),
        "model": folder.cal.model.kind(),
        "ensemble_size": folder.cal.ensemble_size,
        "max_updates": folder.cal.iterations,
        "updates": s.ekp.iterations(),
        "complete": s.complete,
        "shown_iteration": s.shown,
        "members": members,
        "history": history,
        "slurm": slurm,
    })
}

/// `s` seconds as `42 s`, `5 min`, `3 h 2 min` or `2 d 4 h`.
fn ago_text(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The jobs of the SLURM chain submitted last, with squeue's states.
fn say_chain(c: &ChainView) {
    let ago = crate::io::unix_now().saturating_sub(c.submitted_unix);
    say(&format!(
        "\nSLURM chain submitted {} ago (slurm/chain.toml):",
        ago_text(ago)
    ));
    for j in &c.jobs {
        say(&format!("  job {:<8}  {:<22}  {}", j.id, j.job, j.state));
    }
}

pub(super) fn status(args: StatusArgs) -> Result<()> {
    let s = read_status(&args.dir, args.iteration)?;
    let slurm = chain_view(&s.folder.dir);
    if args.json {
        say(&status_json(&s, slurm.as_ref()).to_string());
        return Ok(());
    }
    let (folder, k) = (&s.folder, s.ekp.iterations());
    let cal = &folder.cal;
    say(&format!(
        "{}: {} with {} members, up to {} updates, model {} ({CONFIG_FILE} unchanged since it \
         was made)",
        folder.dir.display(),
        cal.process.kind(),
        cal.ensemble_size,
        cal.iterations,
        cal.model.kind(),
    ));
    if s.complete {
        say(&format!(
            "complete: {k} updates applied; results in result.toml"
        ));
    } else {
        say(&format!(
            "newest iteration: {} ({k} updates applied); waiting for its outputs",
            folder.layout.iteration_name(k)
        ));
    }
    let count = |f: fn(&MemberState) -> bool| s.members.iter().filter(|m| f(m)).count();
    say(&format!(
        "\n{}: {} done, {} failed, {} missing",
        folder.layout.iteration_name(s.shown),
        count(|m| matches!(m, MemberState::Done(_))),
        count(|m| matches!(m, MemberState::Failed { .. })),
        count(|m| matches!(m, MemberState::Missing)),
    ));
    for (j, m) in s.members.iter().enumerate() {
        let name = folder.layout.member_name(j + 1);
        let task = slurm
            .as_ref()
            .and_then(|c| c.member_state(s.shown, j + 1))
            .map_or_else(String::new, |t| format!("   (SLURM task {t})"));
        say(&match m {
            MemberState::Done(_) => format!("  {name}  done{task}"),
            MemberState::Failed { reason, .. } => format!("  {name}  failed   {reason}{task}"),
            MemberState::Missing => format!("  {name}  missing{task}"),
        });
    }
    if let Some(c) = &slurm {
        say_chain(c);
    }
    say("\nmisfit history:");
    say(&format!(
        "  {:>9}  {:>11}  {:>11}  {:>11}  {:>11}  {:>11}  failed members",
        "iteration", "Δt", "loss", "bayes loss", "rmse/σ", "crps"
    ));
    for r in &s.rows {
        let note = if s.complete && r.iteration == k {
            "   (final ensemble)"
        } else {
            ""
        };
        say(&history_line(r, note));
    }
    if !s.complete {
        say(&format!("  {k:>9}  (awaiting outputs)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ago_text;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(ago_text(0), "0 s");
        assert_eq!(ago_text(59), "59 s");
        assert_eq!(ago_text(61), "1 min");
        assert_eq!(ago_text(3 * 3600 + 125), "3 h 2 min");
        assert_eq!(ago_text(2 * 86_400 + 4 * 3600 + 5), "2 d 4 h");
    }
}
