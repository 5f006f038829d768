//! `ekp-cli prior`.

use crate::cli::PriorArgs;
use crate::config::{Calibration, ekpjl};
use crate::error::{InputError, Result};
use crate::ui::prior::{prior_json, prior_table};

use super::say;

pub(super) fn prior(args: PriorArgs) -> Result<()> {
    if let Some(path) = &args.ekp_toml {
        if args.config.is_some() {
            return Err(InputError::Argument(
                "prior: give either --config or --ekp-toml, not both".into(),
            )
            .into());
        }
        let prior = ekpjl::prior_from_file(path)?;
        if args.json {
            say(&prior_json(&prior, &path.display().to_string()).to_string());
            return Ok(());
        }
        say(&format!(
            "prior of {} (EKP.jl parameter file)",
            path.display()
        ));
        say(prior_table(&prior).trim_end());
        return Ok(());
    }
    let cal = match &args.config {
        Some(path) => Calibration::from_file(path)?,
        None => Calibration::embedded_default()?,
    };
    if args.json {
        say(&prior_json(&cal.prior, &cal.source).to_string());
        return Ok(());
    }
    say(&format!("prior of {}", cal.source));
    say(prior_table(&cal.prior).trim_end());
    Ok(())
}
