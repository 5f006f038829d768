//! The per-member files: `parameters.toml` (ekp writes, the model reads),
//! `output.toml` (the model writes, ekp reads) and `status.toml` (ekp's
//! record of the member's run), and what a member's folder says about it.
//!
//! ```text
//! DIR/iteration_000/member_001/parameters.toml   written by ekp: constrained values, by name
//! DIR/iteration_000/member_001/output.toml       written by the model: values = [...]
//! DIR/iteration_000/member_001/status.toml       written by ekp after running the model
//! DIR/iteration_000/member_001/stdout.log, stderr.log   the model's output streams
//! ```

use std::path::Path;

use ekp_core::Prior;
use serde::{Deserialize, Serialize};

use crate::config::ParameterFiles;
use crate::error::InputError;

/// The parameter file of a member (written by ekp, read by the model).
pub const PARAMETERS_FILE: &str = "parameters.toml";
/// The output file of a member (written by the model, read by ekp).
pub const OUTPUT_FILE: &str = "output.toml";
/// What happened when ekp ran the member's model (written by ekp).
pub const STATUS_FILE: &str = "status.toml";
/// The model's standard output.
pub const STDOUT_FILE: &str = "stdout.log";
/// The model's standard error.
pub const STDERR_FILE: &str = "stderr.log";

/// A key as TOML writes it: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        toml::Value::String(name.to_string()).to_string()
    }
}

/// A float as TOML writes it (shortest representation that reads back to the
/// same bits; `nan`, `inf`).
fn toml_float(v: f64) -> String {
    toml::Value::Float(v).to_string()
}

/// The contents of `parameters.toml`: each parameter by name, in constrained
/// (physical) units; a vector parameter as an array.
pub fn parameters_toml(prior: &Prior, theta: &[f64], iteration: usize, member: usize) -> String {
    let mut s = format!(
        "# ekp: parameters of member {member} of iteration {iteration} (constrained values)\n"
    );
    for (p, r) in prior.parameters().iter().zip(prior.ranges()) {
        let vals: Vec<String> = r
            .clone()
            .map(|i| toml_float(theta.get(i).copied().unwrap_or(f64::NAN)))
            .collect();
        if p.size() == 1 && vals.len() == 1 {
            s.push_str(&format!("{} = {}\n", toml_key(p.name()), vals.join("")));
        } else {
            s.push_str(&format!("{} = [{}]\n", toml_key(p.name()), vals.join(", ")));
        }
    }
    s
}

fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// Writing and reading a member's `parameters.toml` in the layout the
/// calibration chose.
pub trait ParameterFilesExt {
    /// The contents of a member's `parameters.toml` for the constrained
    /// parameters `theta`.
    fn render(&self, prior: &Prior, theta: &[f64], iteration: usize, member: usize) -> String;
    /// Read a member's `parameters.toml` back into the flat parameter vector.
    fn read(&self, path: &Path, prior: &Prior) -> Result<Vec<f64>, InputError>;
}

impl ParameterFilesExt for ParameterFiles {
    fn render(&self, prior: &Prior, theta: &[f64], iteration: usize, member: usize) -> String {
        match self {
            ParameterFiles::Flat => parameters_toml(prior, theta, iteration, member),
            ParameterFiles::Ekp { template } => {
                ekp_layout(template, prior, theta, iteration, member)
            }
        }
    }

    fn read(&self, path: &Path, prior: &Prior) -> Result<Vec<f64>, InputError> {
        let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let table: toml::Table = toml::from_str(&text).map_err(|e| InputError::Parse {
            file: file.clone(),
            message: e.to_string().trim_end().to_string(),
        })?;
        match self {
            ParameterFiles::Flat => flat_values(&table, &file, prior),
            ParameterFiles::Ekp { .. } => ekp_values(&table, &file, prior),
        }
    }
}

/// The values of one parameter (`v`, `key` naming it in errors), checked
/// against its size.
fn parameter_values(
    v: &toml::Value,
    p: &ekp_core::ParameterPrior,
    invalid: &dyn Fn(&str, String) -> InputError,
    key: &str,
) -> Result<Vec<f64>, InputError> {
    let vals: Vec<f64> = match v {
        toml::Value::Array(a) => a
            .iter()
            .map(number)
            .collect::<Option<_>>()
            .ok_or_else(|| invalid(key, "must be an array of numbers".into()))?,
        other => vec![number(other).ok_or_else(|| invalid(key, "must be a number".into()))?],
    };
    if vals.len() != p.size() {
        return Err(invalid(
            key,
            format!(
                "has {} values, the parameter has size {}",
                vals.len(),
                p.size()
            ),
        ));
    }
    Ok(vals)
}

/// The flat layout: exactly the calibration's parameters, by name.
fn flat_values(table: &toml::Table, file: &str, prior: &Prior) -> Result<Vec<f64>, InputError> {
    let invalid = |key: &str, message: String| InputError::Invalid {
        file: file.to_string(),
        key: key.to_string(),
        message,
    };
    let names: Vec<&str> = prior.parameters().iter().map(|p| p.name()).collect();
    if let Some(extra) = table.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(invalid(
            extra,
            format!(
                "is not a parameter of this calibration (its parameters: {})",
                names.join(", ")
            ),
        ));
    }
    let mut theta = Vec::with_capacity(prior.dim());
    for p in prior.parameters() {
        let Some(v) = table.get(p.name()) else {
            return Err(invalid(
                p.name(),
                format!(
                    "missing (the calibration's parameters: {})",
                    names.join(", ")
                ),
            ));
        };
        theta.extend(parameter_values(v, p, &invalid, p.name())?);
    }
    Ok(theta)
}

/// A member's file in EKP.jl's layout (its `save_parameter_ensemble`): the
/// `template` file's text with each calibrated parameter's `value` set in
/// its table (added where the table or the key is absent). `toml_edit`
/// keeps everything else as the file had it: comments, key order, the
/// other entries and parameters.
fn ekp_layout(
    template: &str,
    prior: &Prior,
    theta: &[f64],
    iteration: usize,
    member: usize,
) -> String {
    // The template parsed as TOML when the calibration was read.
    let mut doc: toml_edit::DocumentMut = template.parse().unwrap_or_default();
    for (p, r) in prior.parameters().iter().zip(prior.ranges()) {
        let mut values = r.clone().map(|i| theta.get(i).copied().unwrap_or(f64::NAN));
        let value = if p.size() == 1 {
            toml_edit::value(values.next().unwrap_or(f64::NAN))
        } else {
            toml_edit::value(values.collect::<toml_edit::Array>())
        };
        let entry = doc.entry(p.name()).or_insert(toml_edit::table());
        match entry.as_table_like_mut() {
            Some(t) => {
                t.insert("value", value);
            }
            // `name = 8.1` where a table belongs: EKP.jl's layout needs one.
            None => {
                let mut t = toml_edit::Table::new();
                t.insert("value", value);
                *entry = toml_edit::Item::Table(t);
            }
        }
    }
    format!(
        "# ekp: parameters of member {member} of iteration {iteration} \
         (constrained values, EKP.jl's layout)\n{doc}"
    )
}

/// EKP.jl's layout: `[name]` tables with a `value`; other tables and keys
/// (the template's) are ignored.
fn ekp_values(table: &toml::Table, file: &str, prior: &Prior) -> Result<Vec<f64>, InputError> {
    let invalid = |key: &str, message: String| InputError::Invalid {
        file: file.to_string(),
        key: key.to_string(),
        message,
    };
    let mut theta = Vec::with_capacity(prior.dim());
    for p in prior.parameters() {
        let key = format!("{}.value", p.name());
        let v = match table.get(p.name()) {
            Some(toml::Value::Table(t)) => t.get("value"),
            _ => None,
        };
        let Some(v) = v else {
            return Err(invalid(
                &key,
                "missing (EKP.jl's layout: a table per parameter with its `value`)".into(),
            ));
        };
        theta.extend(parameter_values(v, p, &invalid, &key)?);
    }
    Ok(theta)
}

/// Read a member's flat `parameters.toml` back into the flat parameter
/// vector; the names must be exactly the calibration's parameters.
pub fn read_parameters(path: &Path, prior: &Prior) -> Result<Vec<f64>, InputError> {
    ParameterFiles::Flat.read(path, prior)
}

/// The contents of an `output.toml`: `values = [...]`.
pub fn output_toml(values: &[f64]) -> String {
    let vals: Vec<String> = values.iter().map(|v| toml_float(*v)).collect();
    format!("values = [{}]\n", vals.join(", "))
}

/// The largest output magnitude ekp accepts: beyond it, squares (in
/// covariances and misfits) overflow to infinity, so such a member is failed
/// rather than breaking the update.
pub const MAX_OUTPUT_MAGNITUDE: f64 = 1e150;

/// Why an output file is not usable.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputProblem {
    /// There is no output file.
    Missing,
    /// It cannot be read, is not TOML, or `values` is absent, not an array of
    /// numbers, or of the wrong length: the file is malformed.
    Malformed(String),
    /// A finite value too large to compute with: the model failed.
    TooLarge(String),
    /// It is well formed but holds NaN or ±∞: the model failed.
    NonFinite {
        /// Which value.
        message: String,
        /// All the values, as written.
        values: Vec<f64>,
    },
}

impl std::fmt::Display for OutputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputProblem::Missing => write!(f, "{OUTPUT_FILE} was not written"),
            OutputProblem::Malformed(m)
            | OutputProblem::TooLarge(m)
            | OutputProblem::NonFinite { message: m, .. } => f.write_str(m),
        }
    }
}

/// Read `values` from an `output.toml`, expecting `d` finite numbers. Other
/// keys are allowed (and ignored): a model may write diagnostics there.
pub fn read_output(path: &Path, d: usize) -> Result<Vec<f64>, OutputProblem> {
    // A model that writes far more than `d` numbers must not make ekp read
    // it all into memory: 1 MiB, or 100 bytes a value, whichever is more.
    let cap = (1u64 << 20).max(100 * d as u64);
    match std::fs::metadata(path) {
        Ok(m) if m.len() > cap => {
            return Err(OutputProblem::Malformed(format!(
                "{OUTPUT_FILE}: {} bytes, more than the {cap} bytes {d} values can need; not read",
                m.len()
            )));
        }
        _ => {}
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(OutputProblem::Missing),
        Err(e) => {
            return Err(OutputProblem::Malformed(format!(
                "{OUTPUT_FILE}: cannot read: {e}"
            )));
        }
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        OutputProblem::Malformed(format!(
            "{OUTPUT_FILE}: not valid TOML: {}",
            e.message().trim_end()
        ))
    })?;
    let values = match table.get("values") {
        None => {
            return Err(OutputProblem::Malformed(format!(
                "{OUTPUT_FILE}: `values` is missing"
            )));
        }
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(number)
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| {
                OutputProblem::Malformed(format!(
                    "{OUTPUT_FILE}: `values` must be an array of numbers"
                ))
            })?,
        Some(other) => {
            return Err(OutputProblem::Malformed(format!(
                "{OUTPUT_FILE}: `values` must be an array of numbers, not a {}",
                other.type_str()
            )));
        }
    };
    if values.len() != d {
        return Err(OutputProblem::Malformed(format!(
            "{OUTPUT_FILE}: `values` has {} entries, the observations have {d}",
            values.len()
        )));
    }
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| v.is_finite() && v.abs() > MAX_OUTPUT_MAGNITUDE)
    {
        return Err(OutputProblem::TooLarge(format!(
            "{OUTPUT_FILE}: `values[{i}]` = {v:e} is too large to compute with (|value| above \
             {MAX_OUTPUT_MAGNITUDE:e}: its square overflows)"
        )));
    }
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(OutputProblem::NonFinite {
            message: format!("{OUTPUT_FILE}: `values[{i}]` is {v}"),
            values: values.clone(),
        });
    }
    Ok(values)
}

/// Whether ekp's run of a member's model succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    /// The model exited 0 and wrote a usable output.
    Done,
    /// It crashed, timed out, or wrote no or bad output.
    Failed,
}

/// `status.toml`: what happened when ekp ran a member's model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecord {
    /// Done or failed.
    pub status: RecordStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the failure is a malformed output file (rather than a model
    /// that crashed, timed out or produced NaN).
    #[serde(default)]
    pub malformed: bool,
    /// The process's exit code, if it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Where it ran.
    pub host: String,
    /// The content hash of the `parameters.toml` it ran with (absent in
    /// records of older versions): `update` refuses outputs whose
    /// parameters are not the ones ekp wrote for the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters_hash: Option<String>,
}

impl MemberRecord {
    /// Write it to `dir/status.toml` (atomically).
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let text = toml::to_string(self)?;
        crate::io::write_replace(&dir.join(STATUS_FILE), text.as_bytes())
    }

    /// Read `dir/status.toml`: `None` if absent or unreadable.
    pub fn read(dir: &Path) -> Option<Result<Self, String>> {
        let path = dir.join(STATUS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return Some(Err(format!("{STATUS_FILE}: cannot read: {e}"))),
        };
        Some(toml::from_str(&text).map_err(|e| format!("{STATUS_FILE}: {}", e.message())))
    }
}

/// What a member of an evaluated iteration left.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberState {
    /// Its outputs.
    Done(Vec<f64>),
    /// It failed: why, and whether the fault is a malformed output file.
    Failed {
        /// What went wrong.
        reason: String,
        /// The output file is malformed (wrong length, not TOML, ...), as
        /// opposed to a model that crashed, timed out or wrote NaN.
        malformed: bool,
        /// Outputs of the right length with non-finite entries, when that is
        /// the failure: the process's NaN tolerance judges them.
        values: Option<Vec<f64>>,
    },
    /// Nothing yet: no output and no record of a run.
    Missing,
}

/// Classify a member from its folder: ekp's record of the run (if the member
/// ran through ekp) and its `output.toml`, expecting `d` values.
///
/// A run that ekp recorded as failed is failed whatever output it left (a
/// model that exits non-zero has failed). Without a record (the model was run
/// some other way), the output file decides.
pub fn classify(dir: &Path, d: usize) -> MemberState {
    let record = MemberRecord::read(dir);
    let recorded_failure = match &record {
        Some(Ok(r)) if r.status == RecordStatus::Failed => {
            Some(r.reason.clone().unwrap_or_else(|| "failed".into()))
        }
        _ => None,
    };
    let output = read_output(&dir.join(OUTPUT_FILE), d);
    match (recorded_failure, output) {
        (None, Ok(v)) => MemberState::Done(v),
        (Some(reason), Err(OutputProblem::NonFinite { values, .. })) => MemberState::Failed {
            reason,
            malformed: false,
            values: Some(values),
        },
        (Some(reason), _) => MemberState::Failed {
            reason,
            malformed: record
                .as_ref()
                .is_some_and(|r| r.as_ref().is_ok_and(|r| r.malformed)),
            values: None,
        },
        (None, Err(OutputProblem::Missing)) if record.is_none() => MemberState::Missing,
        (None, Err(p @ (OutputProblem::Missing | OutputProblem::TooLarge(_)))) => {
            MemberState::Failed {
                reason: p.to_string(),
                malformed: false,
                values: None,
            }
        }
        (None, Err(OutputProblem::NonFinite { message, values })) => MemberState::Failed {
            reason: message,
            malformed: false,
            values: Some(values),
        },
        (None, Err(p @ OutputProblem::Malformed(_))) => MemberState::Failed {
            reason: p.to_string(),
            malformed: true,
            values: None,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn floats_round_trip_bit_for_bit() {
        let vals = [0.1, 1.0 / 3.0, -2.5e-300, 6.02e23, 1e-10, 123456789.0, -0.0];
        let s = output_toml(&vals);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("output.toml");
        std::fs::write(&p, s).unwrap();
        let back = read_output(&p, vals.len()).unwrap();
        for (a, b) in vals.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} vs {b}");
        }
    }

    #[test]
    fn ekp_layout_keeps_the_template_and_reads_back_bit_for_bit() {
        // EKP.jl's sinusoid example file, plus a parameter that is not calibrated.
        let template = String::from(
            "# Sinusoid priors\n[amplitude]\nprior = \"Parameterized(Normal(0.58, 0.47))\"\n\
             constraint = \"bounded_below(0.0)\"\n\
             [theta]\nprior = \"Parameterized(MvNormal(2, 1.0))\"\n\
             [gravity]\nvalue = 9.81\ntype = \"float\"\n",
        );
        let prior = Prior::new(vec![
            ekp_core::ParameterPrior::gaussian("amplitude", 0.0, 1.0, 1).unwrap(),
            ekp_core::ParameterPrior::gaussian("theta", 0.0, 1.0, 2).unwrap(),
        ])
        .unwrap();
        let theta = [0.1, 2.0 / 3.0, -7.25e-300];
        let files = ParameterFiles::Ekp { template };
        let text = files.render(&prior, &theta, 3, 7);
        let written: toml::Table = toml::from_str(&text).unwrap();
        // The file's comments and order are kept.
        assert!(text.contains("# Sinusoid priors\n[amplitude]"), "{text}");
        let at = |k: &str| text.find(k).unwrap();
        assert!(at("[amplitude]") < at("[theta]") && at("[theta]") < at("[gravity]"));
        // As EKP.jl's save_parameter_ensemble: `value` set, the rest kept.
        assert_eq!(written["amplitude"]["value"].as_float(), Some(0.1));
        assert_eq!(
            written["amplitude"]["constraint"].as_str(),
            Some("bounded_below(0.0)")
        );
        assert_eq!(written["theta"]["value"].as_array().map(Vec::len), Some(2));
        assert_eq!(written["gravity"]["value"].as_float(), Some(9.81));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("parameters.toml");
        std::fs::write(&p, &text).unwrap();
        let back = files.read(&p, &prior).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            theta.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // The flat reader rejects it, and the EKP reader names a missing value.
        assert!(ParameterFiles::Flat.read(&p, &prior).is_err());
        std::fs::write(&p, "[amplitude]\nvalue = 1.0\n[theta]\nprior = \"x\"\n").unwrap();
        let err = files.read(&p, &prior).unwrap_err().to_string();
        assert!(
            err.contains("theta.value") && err.contains("parameters.toml"),
            "{err}"
        );
        // Without a template (priors from [[parameters]]): one table per parameter.
        let bare = ParameterFiles::Ekp {
            template: String::new(),
        };
        let written: toml::Table = toml::from_str(&bare.render(&prior, &theta, 0, 1)).unwrap();
        assert_eq!(written.len(), 2);
        assert_eq!(written["amplitude"]["value"].as_float(), Some(0.1));
    }

    #[test]
    fn parameters_read_back_and_names_must_match() {
        let prior = Prior::new(vec![
            ekp_core::ParameterPrior::gaussian("k", 0.0, 1.0, 1).unwrap(),
            ekp_core::ParameterPrior::gaussian("theta", 0.0, 1.0, 2).unwrap(),
        ])
        .unwrap();
        let theta = [0.1, 2.0 / 3.0, -7.25];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("parameters.toml");
        std::fs::write(&p, parameters_toml(&prior, &theta, 0, 1)).unwrap();
        assert_eq!(read_parameters(&p, &prior).unwrap(), theta.to_vec());
        std::fs::write(&p, "k = 1.0\nthetta = [1.0, 2.0]\n").unwrap();
        let err = read_parameters(&p, &prior).unwrap_err().to_string();
        assert!(
            err.contains("thetta") && err.contains("parameters.toml"),
            "{err}"
        );
    }

    #[test]
    fn bad_outputs_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("output.toml");
        assert_eq!(classify(dir.path(), 2), MemberState::Missing);
        std::fs::write(&p, "values = [1.0, nan]").unwrap();
        assert!(matches!(
            classify(dir.path(), 2),
            MemberState::Failed {
                malformed: false,
                values: Some(_),
                ..
            }
        ));
        std::fs::write(&p, "values = [1.0, 2.0, 3.0]").unwrap();
        assert!(matches!(
            classify(dir.path(), 2),
            MemberState::Failed {
                malformed: true,
                ..
            }
        ));
        std::fs::write(&p, "values = [1, 2.5]\nnote = \"ok\"").unwrap();
        assert_eq!(classify(dir.path(), 2), MemberState::Done(vec![1.0, 2.5]));
    }
}
