//! `ekp-cli prior`: each parameter's prior, in both spaces, to check it
//! before a long run.

use ekp_core::{Constraint, Prior};

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
            "{:<12} {:<22} {:>10.5} {:>10.5} {:>11.5} {:>11.5} {:>11.5} {:>11.5}\n",
            name,
            constraint,
            p.unconstrained_mean(),
            p.unconstrained_std(),
            p.constrained_mean(),
            p.constrained_std(),
            p.constrained_quantile(0.05),
            p.constrained_quantile(0.95),
        ));
    }
    s
}
