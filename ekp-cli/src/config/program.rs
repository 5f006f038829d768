//! The `[model]` table of a model run as a program — `command`, `worker`
//! or `batch` — validated: the program, its arguments, environment, time
//! limit and input templates (how the program is run is the
//! `models::command`, `models::worker` and `models::batch` modules' job).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::InputError;

/// The arguments a `command` program gets when `args` is not given.
pub const DEFAULT_ARGS: [&str; 2] = ["{parameters}", "{output}"];

/// The arguments a `batch` program gets when `args` is not given.
pub const DEFAULT_BATCH_ARGS: [&str; 2] = ["{parameters}", "{outputs}"];

/// The files ekp itself writes in a member folder: no template may target them.
pub const RESERVED_TARGETS: [&str; 6] = [
    "parameters.toml",
    "output.toml",
    "status.toml",
    "stdout.log",
    "stderr.log",
    "running.pid",
];

/// The most input templates one model may have.
pub const MAX_TEMPLATES: usize = 64;

/// How a model program is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// `kind = "command"`: one process per member.
    Command,
    /// `kind = "worker"`: long-lived processes, one JSON line per member.
    Worker,
    /// `kind = "batch"`: one process per iteration (or per `batch_size` members).
    Batch,
}

impl ProgramKind {
    /// The `model.kind` name.
    pub fn name(self) -> &'static str {
        match self {
            ProgramKind::Command => "command",
            ProgramKind::Worker => "worker",
            ProgramKind::Batch => "batch",
        }
    }
}

/// One input template: `target` is written in each member folder from
/// `template`, with `{{NAME}}` / `{{NAME[i]}}` replaced by the member's values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The template file, as written (relative to the calibration file's folder).
    pub template: String,
    /// The file to write, relative to the member folder.
    pub target: String,
}

/// A validated `[model]` table of `kind = "command"`, `"worker"` or `"batch"`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSpec {
    /// How the program is run.
    pub kind: ProgramKind,
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
    /// Input templates written in each member folder before the member runs.
    pub templates: Vec<TemplateSpec>,
    /// `batch` models: members per batch process (`None`: all of an
    /// evaluation's members in one process).
    pub batch_size: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    program: String,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    timeout: Option<f64>,
    templates: Option<Vec<TemplateSpec>>,
    batch_size: Option<usize>,
}

impl ProgramSpec {
    /// Validate the rest of a `[model]` table (`kind` and `fixed` removed) of
    /// a model of `kind` in the calibration file `file`, whose folder is `base`.
    pub fn from_table(
        table: toml::Table,
        file: &str,
        base: &Path,
        kind: ProgramKind,
    ) -> Result<Self, InputError> {
        let invalid = |key: &str, message: String| InputError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        // Checked here rather than by serde, whose message would list
        // `batch_size` for every kind.
        const KEYS: [&str; 5] = ["program", "args", "env", "timeout", "templates"];
        if let Some(k) = table
            .keys()
            .find(|k| !KEYS.contains(&k.as_str()) && k.as_str() != "batch_size")
        {
            let extra = if kind == ProgramKind::Batch {
                ", batch_size"
            } else {
                ""
            };
            return Err(invalid(
                &format!("model.{}", k.escape_debug()),
                format!(
                    "unknown key for a {} model; its keys are kind, fixed, {}{extra}",
                    kind.name(),
                    KEYS.join(", ")
                ),
            ));
        }
        let raw: RawCommand = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("model", e.to_string().trim_end().to_string()))?;
        if raw.program.trim().is_empty() {
            return Err(invalid("model.program", "is empty".into()));
        }
        let batch_size = match (kind, raw.batch_size) {
            (ProgramKind::Batch, Some(0)) => {
                return Err(invalid("model.batch_size", "must be at least 1".into()));
            }
            (ProgramKind::Batch, b) => b,
            (_, None) => None,
            (other, Some(_)) => {
                return Err(invalid(
                    "model.batch_size",
                    format!(
                        "applies to batch models; this model is {} (kind = \"batch\" runs \
                         many members per process)",
                        other.name()
                    ),
                ));
            }
        };
        let templates = raw.templates.unwrap_or_default();
        check_templates(&templates, &invalid)?;
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
        let default_args: &[&str] = match kind {
            ProgramKind::Command => &DEFAULT_ARGS,
            ProgramKind::Worker => &[],
            ProgramKind::Batch => &DEFAULT_BATCH_ARGS,
        };
        Ok(Self {
            kind,
            program: raw.program,
            args: raw
                .args
                .unwrap_or_else(|| default_args.iter().map(|s| s.to_string()).collect()),
            env,
            timeout,
            base_dir: base.to_path_buf(),
            templates,
            batch_size,
        })
    }

    /// A template's file: relative to [`base_dir`](Self::base_dir).
    pub fn template_path(&self, t: &TemplateSpec) -> PathBuf {
        let joined = self.base_dir.join(&t.template);
        std::path::absolute(&joined).unwrap_or(joined)
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

/// Templates: at most [`MAX_TEMPLATES`], each `target` a plain relative
/// path inside the member folder (no `..`, not one of ekp's own files),
/// no two the same.
fn check_templates(
    templates: &[TemplateSpec],
    invalid: &dyn Fn(&str, String) -> InputError,
) -> Result<(), InputError> {
    if templates.len() > MAX_TEMPLATES {
        return Err(invalid(
            "model.templates",
            format!("{} templates: at most {MAX_TEMPLATES}", templates.len()),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in templates.iter().enumerate() {
        let key = format!("model.templates[{}]", i + 1);
        if t.template.trim().is_empty() || t.template.contains('\0') {
            return Err(invalid(
                &format!("{key}.template"),
                "is not a file name".into(),
            ));
        }
        let target = Path::new(&t.target);
        let plain = !t.target.is_empty()
            && !t.target.contains('\0')
            && target
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(invalid(
                &format!("{key}.target"),
                format!(
                    "`{}` must be a relative path inside the member folder (no `..`, not absolute)",
                    t.target.escape_debug()
                ),
            ));
        }
        if RESERVED_TARGETS.contains(&t.target.as_str()) {
            return Err(invalid(
                &format!("{key}.target"),
                format!(
                    "`{}` is a file ekp writes itself in the member folder",
                    t.target
                ),
            ));
        }
        if !seen.insert(t.target.clone()) {
            return Err(invalid(
                &format!("{key}.target"),
                format!("`{}` is the target of two templates", t.target),
            ));
        }
    }
    Ok(())
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
    fn an_unknown_key_is_named_with_the_keys_of_its_kind() {
        let table: toml::Table = toml::from_str("program = \"m\"\nbatchsize = 4\n").unwrap();
        let worker =
            ProgramSpec::from_table(table.clone(), "c.toml", Path::new("."), ProgramKind::Worker)
                .unwrap_err()
                .to_string();
        assert!(
            worker.contains("model.batchsize") && worker.contains("worker model"),
            "{worker}"
        );
        assert!(!worker.contains("batch_size"), "{worker}");
        let batch = ProgramSpec::from_table(table, "c.toml", Path::new("."), ProgramKind::Batch)
            .unwrap_err()
            .to_string();
        assert!(
            batch.contains("model.batchsize") && batch.contains("batch_size"),
            "{batch}"
        );
    }

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
