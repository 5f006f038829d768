//! The calibration file: its TOML schema, and its validation into one
//! [`Calibration`] before any work starts.
//!
//! Unknown keys are errors (a typo must not pass silently). Every error names
//! the file and the key.
//!
//! One file per job: `schema` (the raw serde tables), `parameters` (the
//! prior, member file layout), `process` (the algorithm), `options` (the
//! other `[process]` keys), `model`, `observations`; [`program`] (the table of a
//! model run as a program: command, worker, batch), [`ekpjl`] (EKP.jl's parameter files), [`example`] (the
//! commented example file).

use std::path::Path;

use ekp_core::{
    Accelerator, EkpBuilder, EkpError, EnsembleKalmanProcess, FailurePolicy, HistoryPolicy,
    Inflation, Localizer, Observation, ObservationSeries, Prior, Process, Scheduler, UpdateGroup,
};
use nalgebra::DMatrix;

use crate::error::InputError;

pub mod ekpjl;
pub mod example;
pub mod limits;
mod model;
pub mod names;
mod observations;
mod options;
mod parameters;
mod process;
pub mod program;
mod schema;

pub use model::ModelSpec;
pub use observations::{DataLabels, ObservationSpec};
pub use options::MinibatchSpec;
pub use parameters::ParameterFiles;
pub use program::{ProgramKind, ProgramSpec, TemplateSpec, parse_duration};

use limits::Sizes;
use schema::RawConfig;

/// The keys that belong at the top of the file, before any `[table]`.
const TOP_LEVEL_KEYS: [&str; 2] = ["parameters_from", "parameter_files"];

/// A top-level key written after a `[table]` header (so TOML puts it in
/// that table): the error that says where it must go.
fn misplaced_top_level_key(text: &str, source: &str) -> Option<InputError> {
    let table: toml::Table = toml::from_str(text).ok()?;
    for (section, value) in &table {
        let tables: Vec<&toml::Table> = match value {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_table).collect(),
            _ => continue,
        };
        for t in tables {
            if let Some(key) = TOP_LEVEL_KEYS.iter().find(|k| t.contains_key(**k)) {
                return Some(InputError::Invalid {
                    file: source.to_string(),
                    key: format!("{section}.{key}"),
                    message: format!(
                        "`{key}` is a top-level key: write it at the top of the file, before \
                         the first `[table]` header (after `[{section}]` it belongs to that table)"
                    ),
                });
            }
        }
    }
    None
}

/// The embedded default calibration: EKP.jl's Lorenz 96 example.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// The name used for the embedded default in messages.
pub const DEFAULT_SOURCE: &str = "<embedded default>";

/// A validated calibration: everything `run` needs, checked before any work.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The file it came from (or [`DEFAULT_SOURCE`]).
    pub source: String,
    /// The TOML text, as read.
    pub text: String,
    /// The algorithm.
    pub process: Process,
    /// Members `N`.
    pub ensemble_size: usize,
    /// Maximum number of updates.
    pub iterations: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// The learning-rate scheduler.
    pub scheduler: Scheduler,
    /// The failure policy.
    pub failure: FailurePolicy,
    /// The localizer.
    pub localizer: Localizer,
    /// The accelerator.
    pub accelerator: Accelerator,
    /// The fraction of non-finite outputs above which a member has failed.
    pub nan_tolerance: f64,
    /// Inflation after every update (`process.inflation`; `None`: only the
    /// process's own `multiplicative_inflation`).
    pub inflation: Option<Inflation>,
    /// Which outputs the process keeps in memory (`process.history`).
    pub history: HistoryPolicy,
    /// Minibatching: the data cut into observations, and the minibatcher.
    pub minibatch: Option<MinibatchSpec>,
    /// Update groups (empty: every parameter from every output).
    pub update_groups: Vec<UpdateGroup>,
    /// The prior.
    pub prior: Prior,
    /// The data.
    pub observations: ObservationSpec,
    /// The model.
    pub model: ModelSpec,
    /// How each member's `parameters.toml` is written (`parameter_files`).
    pub parameter_files: ParameterFiles,
    /// Names and coordinates of the data (`observations.names`, `.coordinates`).
    pub data_labels: DataLabels,
}

impl Calibration {
    /// The embedded default (EKP.jl's Lorenz example).
    pub fn embedded_default() -> Result<Self, InputError> {
        Self::parse(DEFAULT_CONFIG, DEFAULT_SOURCE)
    }

    /// Read and validate a calibration file.
    pub fn from_file(path: &Path) -> Result<Self, InputError> {
        let text = crate::io::read_text(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and validate calibration TOML; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, InputError> {
        let base = Path::new(source)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf();
        Self::parse_with_base(text, source, &base)
    }

    /// [`Calibration::parse`], with relative paths in the file (such as
    /// `parameters_from.ekp_toml`) resolved against `base`.
    pub fn parse_with_base(text: &str, source: &str, base: &Path) -> Result<Self, InputError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            misplaced_top_level_key(text, source).unwrap_or_else(|| InputError::Parse {
                file: source.to_string(),
                message: e.to_string().trim_end().to_string(),
            })
        })?;
        let ctx = Ctx { file: source };
        let prior = ctx.prior_source(&raw, base)?;
        let parameter_files = ctx.parameter_files(&raw, base)?;
        let (process, ensemble_size) = ctx.process(&raw.process, &prior)?;
        let options = ctx.options(&raw.process, &process, &prior)?;
        let iterations = raw.process.iterations.unwrap_or(5);
        let model = ctx.model(&raw.model, &prior)?;
        let observations = ctx.observations(&raw.observations, &prior, &model)?;
        if let ObservationSpec::Given { values, .. } = &observations {
            ctx.check_against_data(&options, values.len())?;
        }
        let data_dim = match &observations {
            ObservationSpec::Given { values, .. } => Some(values.len()),
            ObservationSpec::Truth { .. } => Some(model.truth_outputs()).filter(|d| *d > 0),
        };
        let data_labels = ctx.data_labels(&raw.observations, data_dim)?;
        let history = raw.process.history.unwrap_or_default();
        ctx.check_memory(
            &limits::Sizes {
                parameters: prior.dim(),
                outputs: match &observations {
                    ObservationSpec::Given { values, .. } => values.len(),
                    ObservationSpec::Truth { .. } => model.truth_outputs(),
                },
                members: ensemble_size,
                iterations,
                all_outputs: history == HistoryPolicy::All,
            },
            raw.process.ensemble_size.is_some(),
        )?;
        Ok(Self {
            source: source.to_string(),
            text: text.to_string(),
            process,
            ensemble_size,
            iterations,
            seed: raw.process.seed.unwrap_or(42),
            scheduler: options.scheduler,
            failure: options.failure,
            localizer: options.localizer,
            accelerator: options.accelerator,
            nan_tolerance: options.nan_tolerance,
            inflation: options.inflation,
            history,
            minibatch: options.minibatch,
            update_groups: options.update_groups,
            prior,
            observations,
            model,
            parameter_files,
            data_labels,
        })
    }
}

impl Calibration {
    /// This calibration with every random draw seeded by `seed`, written into
    /// its text too (`process.seed`, comments and key order kept), so the
    /// file recorded in a calibration folder is the one that ran.
    pub fn with_seed(mut self, seed: u64) -> Result<Self, InputError> {
        let invalid = |message: String| InputError::Invalid {
            file: self.source.clone(),
            key: "process.seed".into(),
            message,
        };
        let value = i64::try_from(seed).map_err(|_| {
            invalid(format!(
                "--seed {seed}: at most {} (a TOML integer)",
                i64::MAX
            ))
        })?;
        let mut doc: toml_edit::DocumentMut = self
            .text
            .parse()
            .map_err(|e: toml_edit::TomlError| invalid(e.to_string()))?;
        let process = doc
            .get_mut("process")
            .and_then(|p| p.as_table_like_mut())
            .ok_or_else(|| invalid("[process] is missing".into()))?;
        process.insert("seed", toml_edit::value(value));
        self.text = doc.to_string();
        self.seed = seed;
        Ok(self)
    }

    /// A process builder with every `[process]` option of this calibration
    /// applied (scheduler, localization, failure handling, NaN tolerance,
    /// accelerator, minibatching, update groups), for the data `observation`
    /// (all data values, in order). Build it after setting anything else
    /// (e.g. an initial ensemble). With minibatching, the process fits one
    /// minibatch per update: tell it the outputs for all data values with
    /// [`EnsembleKalmanProcess::update_from_all_outputs`].
    pub fn builder(&self, observation: Observation) -> Result<EkpBuilder, EkpError> {
        let series = match &self.minibatch {
            None => ObservationSeries::from(observation),
            Some(spec) => {
                let sizes = spec
                    .observation_sizes
                    .clone()
                    .unwrap_or_else(|| vec![1; observation.dim()]);
                ObservationSeries::split(&observation, &sizes, spec.minibatcher.clone())
                    .map_err(|e| EkpError::InvalidSetting(format!("process.minibatch: {e}")))?
            }
        };
        let builder =
            EnsembleKalmanProcess::builder(self.prior.clone(), series, self.process.clone())
                .ensemble_size(self.ensemble_size)
                .seed(self.seed)
                .scheduler(self.scheduler.clone())
                .localizer(self.localizer.clone())
                .failure_policy(self.failure)
                .nan_tolerance(self.nan_tolerance)
                .accelerator(self.accelerator)
                .update_groups(self.update_groups.clone())
                .history(self.history);
        Ok(match self.inflation {
            Some(inflation) => builder.inflation(inflation),
            None => builder,
        })
    }
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Refuses a calibration whose ensemble history would need more than
    /// [`limits::MAX_ESTIMATED_BYTES`] (see [`limits::ensemble_history_bytes`]);
    /// the key is `process.ensemble_size` when given, else the larger of the
    /// parameters and the data.
    fn check_memory(&self, sizes: &limits::Sizes, members_given: bool) -> Result<(), InputError> {
        let bytes = limits::ensemble_history_bytes(sizes);
        if bytes <= u128::from(limits::MAX_ESTIMATED_BYTES) {
            return Ok(());
        }
        let key = if members_given {
            "process.ensemble_size"
        } else if sizes.parameters >= sizes.outputs {
            "parameters"
        } else {
            "observations"
        };
        let Sizes {
            parameters: p,
            outputs: d,
            members: n,
            iterations,
            all_outputs,
        } = *sizes;
        let kept = if all_outputs { "(iterations + 1)" } else { "1" };
        // Whether `history = "last"` alone would bring it under the limit.
        let helps = all_outputs
            && limits::ensemble_history_bytes(&Sizes {
                all_outputs: false,
                ..*sizes
            }) <= u128::from(limits::MAX_ESTIMATED_BYTES);
        Err(self.invalid(
            key,
            format!(
                "the ensemble history needs about {} of memory, more than the limit of {} \
                 (estimated for N = {n} members (process.ensemble_size), p = {p} parameter \
                 components, d = {d} data values and iterations = {iterations} \
                 (process.iterations): 8 bytes × N × (p × (iterations + 1) + d × {kept} + d) \
                 plus {} bytes a member and ensemble); lower some of them{}",
                limits::human_bytes(bytes),
                limits::human_bytes(u128::from(limits::MAX_ESTIMATED_BYTES)),
                limits::MEMBER_BOOKKEEPING_BYTES,
                if helps {
                    ", or keep only the last outputs with process.history = \"last\""
                } else {
                    ""
                }
            ),
        ))
    }

    pub(super) fn matrix(&self, key: &str, rows: &[Vec<f64>]) -> Result<DMatrix<f64>, InputError> {
        let nrows = rows.len();
        let ncols = rows.first().map_or(0, Vec::len);
        if nrows == 0 || ncols == 0 {
            return Err(self.invalid(key, "is empty"));
        }
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != ncols) {
            return Err(self.invalid(
                key,
                format!("row {} has {} entries, row 1 has {ncols}", i + 1, r.len()),
            ));
        }
        Ok(DMatrix::from_fn(nrows, ncols, |i, j| rows[i][j]))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// A small calibration of the linear model with `process` keys and
    /// `parameters` tables.
    fn parse(process: &str, parameters: &str) -> Result<Calibration, InputError> {
        let text = format!(
            "[process]\nkind = \"inversion\"\n{process}\n\n{parameters}\n\n\
             [observations]\nvalues = [1.0, 2.0]\nnoise_std = 0.1\n\n\
             [model]\nkind = \"linear\"\nmatrix = [[1.0], [2.0]]\n"
        );
        Calibration::parse(&text, "c.toml")
    }

    const X: &str =
        "[[parameters]]\nname = \"x\"\nprior = { kind = \"gaussian\", mean = 0.0, std = 1.0 }";

    fn key_of(e: InputError) -> String {
        match e {
            InputError::Invalid { key, .. } => key,
            other => panic!("not Invalid: {other}"),
        }
    }

    #[test]
    fn sizes_at_the_limits_pass_and_beyond_them_are_refused() {
        assert!(parse("iterations = 1000000", X).is_ok());
        let e = parse("iterations = 1000001", X).unwrap_err();
        assert_eq!(key_of(e), "process.iterations");
        let e = parse("ensemble_size = 10000001", X).unwrap_err();
        assert_eq!(key_of(e), "process.ensemble_size");
        let e = parse("", &format!("{X}\nsize = 1000001")).unwrap_err();
        assert_eq!(key_of(e), "parameters[1] (name = \"x\").size");
    }

    #[test]
    fn the_memory_estimate_names_the_key_that_drives_it() {
        let e = parse("ensemble_size = 10000000", X).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("`process.ensemble_size`"), "{message}");
        assert!(message.contains("GiB"), "{message}");
        // With the last outputs only, the same ensemble still needs too much.
        let e = parse("ensemble_size = 10000000\nhistory = \"last\"", X).unwrap_err();
        assert!(!e.to_string().contains("history = \"last\""), "{e}");
        // 1000 members of a 1000-component parameter are far below it.
        let big = format!("{X}\nsize = 1000");
        let text = format!(
            "[process]\nkind = \"inversion\"\nensemble_size = 1000\n\n{big}\n\n\
             [observations]\nvalues = [1.0]\nnoise_std = 0.1\n\n\
             [model]\nkind = \"linear\"\nmatrix = [[{}]]\n",
            vec!["1.0"; 1000].join(", ")
        );
        assert!(Calibration::parse(&text, "c.toml").is_ok());
    }

    #[test]
    fn parameter_names_are_checked_with_their_key() {
        for name in ["\\n", "a\\u0007", "\\u001b[0m", ""] {
            let p = format!(
                "[[parameters]]\nname = \"{name}\"\nprior = {{ kind = \"gaussian\", mean = 0.0, std = 1.0 }}"
            );
            let e = parse("", &p).unwrap_err();
            assert_eq!(key_of(e), "parameters[1].name", "{name}");
        }
    }
}
