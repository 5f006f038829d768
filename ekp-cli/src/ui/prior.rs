//! `ekp-cli prior`: each parameter's prior, in both spaces, to check it
//! before a long run.

use ekp_core::{Constraint, Prior};

use crate::report::number::sig;

/// The table printed by `ekp-cli prior`.
pub fn prior_table(prior: &Prior) -> String {
    let mut s = format!(
        "{:<12} {:<22} {:>10} {:>10} {:>11} {:>11} {:>11} {:>11}\n",
        "parameter", "constraint", "u mean", "u std", "mean", "std", "5%", "95%"
    );
    for p in prior.parameters() {
        let constraint = match p.constraint() {
            Constraint::Unbounded => "none".to_string(),
            Constraint::BoundedBelow { lower } => format!("> {lower}"),
            Constraint::BoundedAbove { upper } => format!("< {upper}"),
            Constraint::Bounded { lower, upper } => format!("({lower}, {upper})"),
        };
        let name = if p.size() == 1 {
            p.name().to_string()
        } else {
            format!("{}[{}]", p.name(), p.size())
        };
        s.push_str(&format!(
            "{:<12} {:<22} {:>10} {:>10} {:>11} {:>11} {:>11} {:>11}\n",
            name,
            constraint,
            sig(p.unconstrained_mean(), 5),
            sig(p.unconstrained_std(), 5),
            sig(p.constrained_mean(), 5),
            sig(p.constrained_std(), 5),
            sig(p.constrained_quantile(0.05), 5),
            sig(p.constrained_quantile(0.95), 5),
        ));
    }
    s
}

/// The priors as JSON (`ekp-cli prior --json`): per parameter its name,
/// size, constraint (`lower`/`upper`, `null` when unbounded), and the
/// unconstrained and constrained mean and std and 5 %/95 % quantiles.
pub fn prior_json(prior: &Prior, source: &str) -> serde_json::Value {
    let parameters: Vec<serde_json::Value> = prior
        .parameters()
        .iter()
        .map(|p| {
            let (lower, upper) = match p.constraint() {
                Constraint::Unbounded => (None, None),
                Constraint::BoundedBelow { lower } => (Some(lower), None),
                Constraint::BoundedAbove { upper } => (None, Some(upper)),
                Constraint::Bounded { lower, upper } => (Some(lower), Some(upper)),
            };
            serde_json::json!({
                "name": p.name(),
                "size": p.size(),
                "lower": lower,
                "upper": upper,
                "unconstrained_mean": p.unconstrained_mean(),
                "unconstrained_std": p.unconstrained_std(),
                "mean": p.constrained_mean(),
                "std": p.constrained_std(),
                "q05": p.constrained_quantile(0.05),
                "q95": p.constrained_quantile(0.95),
            })
        })
        .collect();
    serde_json::json!({ "source": source, "parameters": parameters })
}
