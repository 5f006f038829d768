//! `ekp-cli status`.

use crate::cli::StatusArgs;
use crate::error::Result;
use crate::folder::{CONFIG_FILE, IterationRow, MemberState};
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
fn status_json(s: &Status) -> serde_json::Value {
    let folder = &s.folder;
    let members: Vec<serde_json::Value> = s
        .members
        .iter()
        .enumerate()
        .map(|(j, m)| match m {
            MemberState::Done(_) => serde_json::json!({ "member": j + 1, "state": "done" }),
            MemberState::Failed { reason, .. } => {
                serde_json::json!({ "member": j + 1, "state": "failed", "reason": reason })
            }
            MemberState::Missing => serde_json::json!({ "member": j + 1, "state": "missing" }),
        })
        .collect();
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
    })
}

pub(super) fn status(args: StatusArgs) -> Result<()> {
    let s = read_status(&args.dir, args.iteration)?;
    if args.json {
        say(&status_json(&s).to_string());
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
        say(&match m {
            MemberState::Done(_) => format!("  {name}  done"),
            MemberState::Failed { reason, .. } => format!("  {name}  failed   {reason}"),
            MemberState::Missing => format!("  {name}  missing"),
        });
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
