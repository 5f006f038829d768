//! Input templates: a model's own input file (a Fortran namelist, a YAML
//! file) written into each member folder before the member runs.
//!
//! ```toml
//! [model]
//! kind = "command"
//! program = "./model"
//! templates = [{ template = "model.nml.in", target = "model.nml" }]
//! ```
//!
//! `template` is read once (relative to the calibration file's folder), when
//! the run starts; `target` is written in the member folder with every
//! `{{NAME}}` replaced by the member's constrained value of the scalar
//! parameter `NAME`, and `{{NAME[i]}}` by component `i` (from 1) of the
//! vector parameter `NAME`. Spaces inside the braces are allowed
//! (`{{ F }}`). Values are written as the shortest decimal that reads back
//! to the same number (`8.1`, `1.0`, `2.5e-7`). Any other `{{…}}`, or a
//! `{{` without its `}}`, is refused before any member runs (exit 2, naming
//! the template file and line). Text outside the braces is copied as it is.

use std::path::Path;

use ekp_core::Prior;

use crate::config::ProgramSpec;
use crate::error::InputError;

/// The largest template file ekp reads (16 MiB).
pub const MAX_TEMPLATE_BYTES: u64 = 16 << 20;

/// A piece of a template: text copied as it is, or a value.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// Copied.
    Text(String),
    /// The flat parameter component with this index.
    Value(usize),
}

/// One template, parsed.
#[derive(Debug, Clone)]
struct Compiled {
    target: String,
    pieces: Vec<Piece>,
}

/// A model's templates, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    files: Vec<Compiled>,
}

impl Templates {
    /// Read and check the templates of `spec` against the parameters of
    /// `prior` (`file`, the calibration file, names the key of a template
    /// that cannot be read).
    pub fn load(spec: &ProgramSpec, prior: &Prior, file: &str) -> Result<Self, InputError> {
        let mut files = Vec::with_capacity(spec.templates.len());
        for (i, t) in spec.templates.iter().enumerate() {
            let path = spec.template_path(t);
            let text = crate::io::read_text_capped(&path, MAX_TEMPLATE_BYTES).map_err(|e| {
                InputError::Invalid {
                    file: file.to_string(),
                    key: format!("model.templates[{}].template", i + 1),
                    message: e.to_string(),
                }
            })?;
            files.push(Compiled {
                target: t.target.clone(),
                pieces: parse(&text, prior, &path)?,
            });
        }
        Ok(Self { files })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Write every target into `member_dir` for the constrained parameters
    /// `theta` (atomically: a member never sees half a file). The error
    /// says which target could not be written.
    pub fn write(&self, member_dir: &Path, theta: &[f64]) -> Result<(), String> {
        for f in &self.files {
            let text = render(&f.pieces, theta);
            let path = member_dir.join(&f.target);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("template target {}: {e}", f.target))?;
            }
            crate::io::write_replace(&path, text.as_bytes())
                .map_err(|e| format!("template target {}: {e:#}", f.target))?;
        }
        Ok(())
    }
}

/// The text of a template for `theta`.
fn render(pieces: &[Piece], theta: &[f64]) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Value(i) => out.push_str(&shortest(theta.get(*i).copied().unwrap_or(f64::NAN))),
        }
    }
    out
}

/// The shortest decimal that reads back to `v` (Rust's `Debug` form:
/// `8.1`, `1.0`, `1e-7`, `1e300`).
pub fn shortest(v: f64) -> String {
    format!("{v:?}")
}

/// Parse a template's text into pieces, resolving every `{{…}}` against
/// the parameters of `prior`.
fn parse(text: &str, prior: &Prior, path: &Path) -> Result<Vec<Piece>, InputError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(open) = rest.find("{{") {
        let line = 1 + text[..consumed + open].matches('\n').count();
        let bad = |message: String| InputError::Invalid {
            file: path.display().to_string(),
            key: format!("line {line}"),
            message,
        };
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(bad("`{{` without its closing `}}`".into()));
        };
        let name = after[..close].trim();
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        pieces.push(Piece::Value(lookup(name, prior).map_err(bad)?));
        let used = open + 2 + close + 2;
        consumed += used;
        rest = &rest[used..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// The flat index of `NAME` (a scalar) or `NAME[i]` (component `i`, from 1,
/// of a vector); the error lists the names there are.
fn lookup(name: &str, prior: &Prior) -> Result<usize, String> {
    let (base, component) = match name.strip_suffix(']').and_then(|n| n.split_once('[')) {
        Some((base, i)) => (base.trim(), Some(i.trim())),
        None => (name, None),
    };
    let known = || {
        prior
            .parameters()
            .iter()
            .map(|p| match p.size() {
                1 => p.name().to_string(),
                n => format!("{}[1..{n}]", p.name()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = prior
        .parameters()
        .iter()
        .zip(prior.ranges())
        .find(|(p, _)| p.name() == base);
    let Some((p, range)) = found else {
        return Err(format!(
            "`{{{{{}}}}}`: no parameter is called `{}`; the parameters are {}",
            name.escape_debug(),
            base.escape_debug(),
            known()
        ));
    };
    match (component, p.size()) {
        (None, 1) => Ok(range.start),
        (None, n) => Err(format!(
            "`{{{{{base}}}}}` is a vector of {n}: write one component, `{{{{{base}[1]}}}}` to \
             `{{{{{base}[{n}]}}}}`"
        )),
        (Some(_), 1) => Err(format!(
            "`{{{{{}}}}}`: `{base}` is a number, not a vector: write `{{{{{base}}}}}`",
            name.escape_debug()
        )),
        (Some(i), n) => match i.parse::<usize>() {
            Ok(i) if (1..=n).contains(&i) => Ok(range.start + i - 1),
            _ => Err(format!(
                "`{{{{{}}}}}`: `{base}` has components 1 to {n}",
                name.escape_debug()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use ekp_core::ParameterPrior;

    fn prior() -> Prior {
        Prior::new(vec![
            ParameterPrior::gaussian("F", 0.0, 1.0, 1).unwrap(),
            ParameterPrior::gaussian("theta", 0.0, 1.0, 3).unwrap(),
        ])
        .unwrap()
    }

    fn render_text(text: &str, theta: &[f64]) -> Result<String, InputError> {
        Ok(render(&parse(text, &prior(), Path::new("t.in"))?, theta))
    }

    #[test]
    fn names_and_components_are_replaced_by_the_shortest_decimal() {
        let theta = [8.1, 1.0, 2.5e-7, 1e300];
        let out = render_text(
            "&nml\n f = {{F}}, a = {{ theta[1] }}\n b={{theta[2]}} c={{theta[3]}} /\n",
            &theta,
        )
        .unwrap();
        assert_eq!(out, "&nml\n f = 8.1, a = 1.0\n b=2.5e-7 c=1e300 /\n");
        for v in [0.1 + 0.2, 1.0 / 3.0, -7.25e-300, 123456789.125] {
            assert_eq!(shortest(v).parse::<f64>().unwrap(), v);
        }
        // Single braces and text without placeholders pass through.
        assert_eq!(render_text("{F} {}", &theta).unwrap(), "{F} {}");
    }

    #[test]
    fn unknown_names_are_refused_with_the_line() {
        let e = render_text("a\nb\nx = {{G}}\n", &[0.0; 4])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.in") && e.contains("line 3") && e.contains("`G`"),
            "{e}"
        );
        assert!(e.contains("F, theta[1..3]"), "{e}");
        for bad in [
            "{{theta}}",
            "{{theta[0]}}",
            "{{theta[4]}}",
            "{{F[1]}}",
            "{{F",
            "{{}}",
        ] {
            assert!(render_text(bad, &[0.0; 4]).is_err(), "{bad} was accepted");
        }
    }
}
