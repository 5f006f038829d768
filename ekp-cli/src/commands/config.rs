//! `ekp-cli config --example [--process KIND]`.

use crate::cli::ConfigArgs;
use crate::config::example;
use crate::error::{InputError, Result};

use super::say;

pub(super) fn config(args: ConfigArgs) -> Result<()> {
    if !args.example {
        return Err(InputError::Argument(
            "config: say what to print: --example (a complete, commented calibration file)".into(),
        )
        .into());
    }
    let kind = args.process.as_deref().unwrap_or(example::DEFAULT_KIND);
    say(example::example(kind)?.trim_end());
    Ok(())
}
