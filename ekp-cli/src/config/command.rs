//! The `[model]` table of a `command` model, validated: the program, its
//! arguments, environment and time limit (how the program is run is
//! the `models::command` module's job).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::InputError;

/// The arguments a program gets when `args` is not given.
pub const DEFAULT_ARGS: [&str; 2] = ["{parameters}", "{output}"];

/// A validated `[model]` table of `kind = "command"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    /// `program` as written.
    pub program: String,
    /// `args` (placeholders not yet substituted).
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// `timeout`: the time limit per member.
    pub timeout: Option<Duration>,
    /// Where a relative `program` path is resolved: the folder of the
    /// calibration file (for a folder made by `init`, the folder of the
    /// original file, recorded in `workflow.toml`).
    pub base_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    program: String,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    timeout: Option<f64>,
}

impl CommandSpec {
    /// Validate the rest of a `[model]` table (`kind` and `fixed` removed) of
    /// the calibration file `file`, whose folder is `base`.
    pub fn from_table(table: toml::Table, file: &str, base: &Path) -> Result<Self, InputError> {
        let invalid = |key: &str, message: String| InputError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let raw: RawCommand = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("model", e.to_string().trim_end().to_string()))?;
        if raw.program.trim().is_empty() {
            return Err(invalid("model.program", "is empty".into()));
        }
        let timeout = match raw.timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 && t <= MAX_DURATION_SECS => {
                Some(Duration::from_secs_f64(t))
            }
            Some(t) => {
                return Err(invalid(
                    "model.timeout",
                    format!(
                        "must be a positive number of seconds, at most {MAX_DURATION_SECS} \
                         (a year), got {t}"
                    ),
                ));
            }
        };
        let env = raw.env.unwrap_or_default();
        if let Some(k) = env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(invalid(
                &format!("model.env.{k}"),
                "is not a valid environment variable name".into(),
            ));
        }
        Ok(Self {
            program: raw.program,
            args: raw
                .args
                .unwrap_or_else(|| DEFAULT_ARGS.iter().map(|s| s.to_string()).collect()),
            env,
            timeout,
            base_dir: base.to_path_buf(),
        })
    }

    /// The program to start: a path with a `/` is taken relative to
    /// [`base_dir`](Self::base_dir) (and made absolute); a bare name is left
    /// for the operating system to find on `PATH`.
    pub fn resolved_program(&self) -> PathBuf {
        let p = Path::new(&self.program);
        if !self.program.contains('/') {
            return p.to_path_buf();
        }
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        };
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// Check, before any member runs, that a program given as a path exists
    /// and is a file.
    pub fn check_program(&self, file: &str) -> Result<PathBuf, InputError> {
        let program = self.resolved_program();
        if self.program.contains('/') && !program.is_file() {
            return Err(InputError::Invalid {
                file: file.to_string(),
                key: "model.program".into(),
                message: format!(
                    "{} is not a file (a relative `program` is taken from the folder of the \
                     calibration file, {})",
                    program.display(),
                    self.base_dir.display()
                ),
            });
        }
        Ok(program)
    }
}

/// The longest time limit accepted anywhere (a year, in seconds): larger
/// values are refused rather than overflowing a `Duration`.
pub const MAX_DURATION_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// Parse a time limit: seconds (`90`, `2.5`), or with a unit (`30s`, `5m`, `2h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1.0),
        Some((i, 'm')) => (&t[..i], 60.0),
        Some((i, 'h')) => (&t[..i], 3600.0),
        _ => (t, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale <= MAX_DURATION_SECS => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!(
            "`{s}` is not a time limit: give seconds (90, 2.5) or a number with s, m or h \
             (30s, 5m, 2h), at most a year"
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("1e300").is_err());
        assert!(parse_duration("inf").is_err());
    }
}
