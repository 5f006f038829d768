//! EKP.jl's parameter TOML files, read into our priors.
//!
//! EnsembleKalmanProcesses.jl (its `TOMLInterface`) describes each parameter
//! as a table with a `prior` string and a `constraint` string:
//!
//! ```toml
//! [amplitude]
//! prior = "Parameterized(Normal(0.5815754049028404, 0.47238072707743883))"
//! constraint = "bounded_below(0.0)"
//!
//! [vert_shift]
//! prior = "constrained_gaussian(vert_shift, 0.0, 5.0, -Inf, Inf)"
//! ```
//!
//! What is read:
//! - `Parameterized(Normal(μ, σ))`: the unconstrained `N(μ, σ²)`, with the
//!   table's `constraint`;
//! - `Parameterized(MvNormal(n, σ))`: `n` components `N(0, σ²)`;
//! - `VectorOfParameterized(repeat([Normal(μ, σ)], n))` and
//!   `VectorOfParameterized([Normal(μ, σ), ...])`: a vector parameter (the
//!   components must be equal: one of our priors is one distribution per
//!   parameter);
//! - `constrained_gaussian(name, mean, std, lower, upper)` with an optional
//!   `repeats = n` (after `;` or `,`): our `constrained-gaussian` (the
//!   `constraint` key is not needed, as in EKP.jl);
//! - constraints: `no_constraint()`, `bounded_below(a)`, `bounded_above(b)`,
//!   `bounded(a, b)`, a list `[c, c, ...]` or `repeat([c], n)` of equal ones;
//! - `Parameterized(LogNormal(μ, σ))` (and vectors of them) with
//!   `no_constraint()`: exactly the Gaussian `N(μ, σ²)`
//!   in log space with the lower bound 0 (x = exp(u)). EKP.jl keeps the
//!   LogNormal itself as its unconstrained distribution; ekp's processes
//!   work on Gaussians, so the same physical prior is updated in log space
//!   (the difference is listed in the README's "Differences from EKP.jl").
//!
//! Tables without a `prior`, or with `prior = "fixed"`, are not calibrated
//! (EKP.jl's "regular" parameters) and are skipped. Other distributions
//! (`Gamma`, `Samples`, ...) and components that differ are errors that
//! name the file and the parameter — all such problems of a file at once.
//! Parameters come in the order of their names (TOML tables are unordered,
//! as EKP.jl's `Dict`), or in the order of `names` when a subset is asked
//! for (`parameters_from = { ekp_toml = "FILE", names = ["a", "b"] }`).

use std::path::Path;

use ekp_core::{Constraint, ParameterPrior, Prior};

use super::limits::{MAX_EXPRESSION_DEPTH, MAX_PARAMETER_SIZE};
use super::names;
use crate::error::InputError;

/// A parsed Julia-like expression.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Ident(String),
    Call(String, Vec<Expr>, Vec<(String, Expr)>),
    Vector(Vec<Expr>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// Expressions open around the current one (at most
    /// [`MAX_EXPRESSION_DEPTH`]: the parser recurses).
    depth: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at character {}",
                c as char,
                self.i + 1
            ))
        }
    }
    fn word(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric()
                || matches!(self.s[self.i], b'_' | b'.' | b'+' | b'-'))
        {
            // A sign only starts a word or follows an exponent.
            if matches!(self.s[self.i], b'+' | b'-')
                && self.i > start
                && !matches!(self.s[self.i - 1], b'e' | b'E')
            {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    /// One expression: a number, a name, a quoted name, a vector
    /// `[a, b, ...]` or a call `f(a, b; k = v)`.
    fn expr(&mut self) -> Result<Expr, String> {
        if self.depth >= MAX_EXPRESSION_DEPTH {
            return Err(format!(
                "nested deeper than {MAX_EXPRESSION_DEPTH} levels at character {}",
                self.i + 1
            ));
        }
        self.depth += 1;
        let e = self.one_expr();
        self.depth -= 1;
        e
    }

    /// [`Parser::expr`], one level deeper.
    fn one_expr(&mut self) -> Result<Expr, String> {
        match self.peek() {
            None => Err("unexpected end".into()),
            Some(b'[') => {
                self.i += 1;
                self.vector()
            }
            Some(b'\'' | b'"') => self.quoted(),
            Some(_) => self.word_or_call(),
        }
    }

    /// The items of a vector, after its `[`.
    fn vector(&mut self) -> Result<Expr, String> {
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Expr::Vector(items));
        }
        loop {
            items.push(self.expr()?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Expr::Vector(items));
                }
                _ => {
                    return Err(format!("expected `,` or `]` at character {}", self.i + 1));
                }
            }
        }
    }

    /// A name in quotes (`'x'` or `"x"`).
    fn quoted(&mut self) -> Result<Expr, String> {
        let q = self.s[self.i];
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        let w = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.eat(q)?;
        Ok(Expr::Ident(w))
    }

    /// A number, a name, or a call of that name.
    fn word_or_call(&mut self) -> Result<Expr, String> {
        let w = self.word();
        if w.is_empty() {
            return Err(format!("unexpected character at {}", self.i + 1));
        }
        let number = match w.as_str() {
            "Inf" | "+Inf" | "Inf64" => Some(f64::INFINITY),
            "-Inf" | "-Inf64" => Some(f64::NEG_INFINITY),
            _ => w.parse::<f64>().ok(),
        };
        if let Some(x) = number {
            return Ok(Expr::Num(x));
        }
        if self.peek() != Some(b'(') {
            return Ok(Expr::Ident(w));
        }
        self.i += 1;
        self.call(w)
    }

    /// The arguments of a call of `f`, after its `(`: positional ones, and
    /// keyword ones `k = v` (after `,` or `;`).
    fn call(&mut self, f: String) -> Result<Expr, String> {
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        if self.peek() == Some(b')') {
            self.i += 1;
            return Ok(Expr::Call(f, args, kwargs));
        }
        loop {
            let e = self.expr()?;
            if self.peek() == Some(b'=') {
                self.i += 1;
                let Expr::Ident(k) = e else {
                    return Err("a keyword argument needs a name".into());
                };
                kwargs.push((k, self.expr()?));
            } else {
                args.push(e);
            }
            match self.peek() {
                Some(b',' | b';') => self.i += 1,
                Some(b')') => {
                    self.i += 1;
                    return Ok(Expr::Call(f, args, kwargs));
                }
                _ => {
                    return Err(format!("expected `,` or `)` at character {}", self.i + 1));
                }
            }
        }
    }
}

fn parse_expr(text: &str) -> Result<Expr, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.peek().is_some() {
        return Err(format!("unexpected text after character {}", p.i));
    }
    Ok(e)
}

fn num(e: &Expr) -> Result<f64, String> {
    match e {
        Expr::Num(x) => Ok(*x),
        other => Err(format!("expected a number, got {other:?}")),
    }
}

/// A number of components: a whole number from 1 to [`MAX_PARAMETER_SIZE`]
/// (checked before anything of that size is made).
fn count(e: &Expr) -> Result<usize, String> {
    let x = num(e)?;
    if !(x >= 1.0 && x.fract() == 0.0) {
        return Err(format!("expected a positive count, got {x}"));
    }
    if x > MAX_PARAMETER_SIZE as f64 {
        return Err(format!(
            "{x} components: at most {MAX_PARAMETER_SIZE} in one parameter"
        ));
    }
    Ok(x as usize)
}

/// A list given as `[a, b, ...]` or `repeat([a], n)`.
fn list(e: &Expr) -> Option<Result<Vec<Expr>, String>> {
    match e {
        Expr::Vector(v) => Some(Ok(v.clone())),
        Expr::Call(f, args, _) if f == "repeat" => Some((|| {
            let [Expr::Vector(v), n] = args.as_slice() else {
                return Err("repeat needs `repeat([x], n)`".to_string());
            };
            let [x] = v.as_slice() else {
                return Err("repeat needs one element: `repeat([x], n)`".to_string());
            };
            Ok(vec![x.clone(); count(n)?])
        })()),
        _ => None,
    }
}

/// One component: `(μ, σ, log)` of `Normal(μ, σ)` (`log` false) or
/// `LogNormal(μ, σ)` (`log` true: Gaussian in log space).
fn normal(e: &Expr) -> Result<(f64, f64, bool), String> {
    match e {
        Expr::Call(f, args, _) if f == "Normal" || f == "LogNormal" => match args.as_slice() {
            [m, s] => Ok((num(m)?, num(s)?, f == "LogNormal")),
            _ => Err(format!("{f} needs a mean and a standard deviation")),
        },
        Expr::Call(f, _, _) => Err(format!(
            "the distribution {f} is not supported: ekp's priors are (transformed) Gaussians \
             — use Normal(μ, σ) or constrained_gaussian(...)"
        )),
        other => Err(format!("expected a distribution, got {other:?}")),
    }
}

fn one_constraint(e: &Expr) -> Result<Constraint, String> {
    let Expr::Call(f, args, _) = e else {
        return Err(format!("expected a constraint, got {e:?}"));
    };
    let c = match (f.as_str(), args.as_slice()) {
        ("no_constraint", []) => Constraint::Unbounded,
        ("bounded_below", [a]) => Constraint::BoundedBelow { lower: num(a)? },
        ("bounded_above", [b]) => Constraint::BoundedAbove { upper: num(b)? },
        ("bounded", [a, b]) => Constraint::Bounded {
            lower: num(a)?,
            upper: num(b)?,
        },
        _ => {
            return Err(format!(
                "unknown constraint `{f}` with {} argument(s): use no_constraint(), \
                 bounded_below(a), bounded_above(b), bounded(a, b)",
                args.len()
            ));
        }
    };
    Ok(c)
}

/// All components equal, or an error.
fn same<T: PartialEq + Clone + std::fmt::Debug>(items: &[T], what: &str) -> Result<T, String> {
    let first = items
        .first()
        .ok_or_else(|| format!("the list of {what} is empty"))?;
    if items.iter().any(|x| x != first) {
        return Err(format!(
            "its {what} differ between components ({items:?}); ekp's priors are one \
             distribution and one constraint per parameter: split it into parameters"
        ));
    }
    Ok(first.clone())
}

/// The constraint string, for `size` components.
fn constraint(text: Option<&str>, size: usize) -> Result<Constraint, String> {
    let Some(text) = text else {
        return Err("`constraint` is missing (EKP.jl requires it with this prior)".into());
    };
    let e = parse_expr(text).map_err(|m| format!("`constraint = \"{text}\"`: {m}"))?;
    match list(&e) {
        None => one_constraint(&e),
        Some(items) => {
            let items = items?;
            if items.len() != size {
                return Err(format!(
                    "`constraint` lists {} constraints for {size} component(s)",
                    items.len()
                ));
            }
            let cs = items
                .iter()
                .map(one_constraint)
                .collect::<Result<Vec<_>, _>>()?;
            same(&cs, "constraints")
        }
    }
}

/// One parameter's prior from its table, or `None` if it is not calibrated.
fn parameter(name: &str, table: &toml::Table) -> Result<Option<ParameterPrior>, String> {
    let prior = match table.get("prior") {
        None => return Ok(None),
        Some(toml::Value::String(s)) if s.trim() == "fixed" => return Ok(None),
        Some(toml::Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "`prior` must be a string, got {}",
                other.type_str()
            ));
        }
    };
    let cons = match table.get("constraint") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(format!(
                "`constraint` must be a string, got {}",
                other.type_str()
            ));
        }
    };
    let e = parse_expr(&prior).map_err(|m| format!("`prior = \"{prior}\"`: {m}"))?;
    let built = match &e {
        Expr::Call(f, args, kwargs) if f == "constrained_gaussian" => {
            constrained_gaussian(name, args, kwargs)?
        }
        Expr::Call(f, args, _) if f == "Parameterized" => parameterized(name, args, cons)?,
        Expr::Call(f, args, _) if f == "VectorOfParameterized" => {
            vector_of_parameterized(name, args, cons)?
        }
        Expr::Call(f, _, _) => {
            return Err(format!(
                "the prior {f}(...) is not supported; use Parameterized(Normal(μ, σ)), \
                 VectorOfParameterized(...) of Normals, or constrained_gaussian(...)"
            ));
        }
        other => return Err(format!("expected a distribution, got {other:?}")),
    };
    Ok(Some(built))
}

/// `constrained_gaussian(name, mean, std, lower, upper; repeats = n)` (its
/// own bounds: no `constraint` needed).
fn constrained_gaussian(
    name: &str,
    args: &[Expr],
    kwargs: &[(String, Expr)],
) -> Result<ParameterPrior, String> {
    let [_name, m, s, lo, hi] = args else {
        return Err("constrained_gaussian needs (name, mean, std, lower, upper)".to_string());
    };
    let mut repeats = 1;
    for (k, v) in kwargs {
        if k != "repeats" {
            return Err(format!("constrained_gaussian: unsupported keyword `{k}`"));
        }
        repeats = count(v)?;
    }
    ParameterPrior::constrained_gaussian(
        name,
        num(m)?,
        num(s)?,
        Some(num(lo)?),
        Some(num(hi)?),
        repeats,
    )
    .map_err(|e| e.to_string())
}

/// `Parameterized(Normal(μ, σ))` or `Parameterized(MvNormal(n, σ))`, with
/// the table's `constraint`.
fn parameterized(name: &str, args: &[Expr], cons: Option<&str>) -> Result<ParameterPrior, String> {
    let [d] = args else {
        return Err("Parameterized needs one distribution".into());
    };
    match d {
        Expr::Call(g, a, _) if g == "MvNormal" => {
            let [n, s] = a.as_slice() else {
                return Err("MvNormal is read as MvNormal(n, σ) (zero mean)".into());
            };
            let n = count(n)?;
            ParameterPrior::from_unconstrained(name, 0.0, num(s)?, constraint(cons, n)?, n)
                .map_err(|e| e.to_string())
        }
        _ => {
            let (m, s, log) = normal(d)?;
            let c = log_constraint(log, constraint(cons, 1)?)?;
            ParameterPrior::from_unconstrained(name, m, s, c, 1).map_err(|e| e.to_string())
        }
    }
}

/// The constraint of a component: for a LogNormal, the lower bound 0 (its
/// log is the Gaussian), which leaves no room for another constraint.
fn log_constraint(log: bool, c: Constraint) -> Result<Constraint, String> {
    match (log, c) {
        (false, c) => Ok(c),
        (true, Constraint::Unbounded) => Ok(Constraint::BoundedBelow { lower: 0.0 }),
        (true, other) => Err(format!(
            "LogNormal with the constraint {other:?}: a LogNormal is read as a Gaussian in log \
             space (lower bound 0), so it takes no constraint (give no_constraint() or none)"
        )),
    }
}

/// `VectorOfParameterized([Normal(μ, σ), ...])` or
/// `VectorOfParameterized(repeat([Normal(μ, σ)], n))` of equal components,
/// with the table's `constraint`.
fn vector_of_parameterized(
    name: &str,
    args: &[Expr],
    cons: Option<&str>,
) -> Result<ParameterPrior, String> {
    let [inner] = args else {
        return Err("VectorOfParameterized needs one list of distributions".into());
    };
    let items =
        list(inner).ok_or("VectorOfParameterized needs `[d1, d2, ...]` or `repeat([d], n)`")??;
    let comps = items.iter().map(normal).collect::<Result<Vec<_>, _>>()?;
    let n = comps.len();
    let (m, s, log) = same(&comps, "distributions")?;
    let c = log_constraint(log, constraint(cons, n)?)?;
    ParameterPrior::from_unconstrained(name, m, s, c, n).map_err(|e| e.to_string())
}

/// The priors of an EKP.jl parameter TOML text; `file` names it in errors.
pub fn priors_from_str(text: &str, file: &str) -> Result<Vec<ParameterPrior>, InputError> {
    priors_from_str_names(text, file, None)
}

/// The priors of an EKP.jl parameter TOML text: every parameter with a
/// prior, or those of `names` (in that order; each must have a prior).
/// Every problem is reported, in one error.
pub fn priors_from_str_names(
    text: &str,
    file: &str,
    names: Option<&[String]>,
) -> Result<Vec<ParameterPrior>, InputError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| InputError::Parse {
        file: file.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let shown = |name: &str| match names::check_name(name) {
        Ok(()) => name.to_string(),
        Err(_) => name.escape_debug().to_string(),
    };
    let chosen: Vec<(&str, Option<&toml::Value>)> = match names {
        None => table.iter().map(|(k, v)| (k.as_str(), Some(v))).collect(),
        Some(list) => list.iter().map(|n| (n.as_str(), table.get(n))).collect(),
    };
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (name, v) in chosen {
        let t = match v {
            Some(toml::Value::Table(t)) => t,
            Some(_) if names.is_none() => continue,
            _ => {
                problems.push(format!(
                    "`{}`: not a parameter table of this file",
                    shown(name)
                ));
                continue;
            }
        };
        match parameter(name, t).and_then(|p| {
            if p.is_some() {
                names::check_name(name).map_err(|e| e.to_string())?;
            }
            Ok(p)
        }) {
            Ok(Some(p)) => out.push(p),
            Ok(None) if names.is_some() => {
                problems.push(format!(
                    "`{}`: has no prior (it is not calibrated)",
                    shown(name)
                ));
            }
            Ok(None) => {}
            Err(m) => problems.push(format!("`{}`: {m}", shown(name))),
        }
    }
    match problems.as_slice() {
        [] => {}
        [one] => {
            return Err(InputError::Parse {
                file: file.to_string(),
                message: one.clone(),
            });
        }
        many => {
            return Err(InputError::Parse {
                file: file.to_string(),
                message: format!(
                    "{} parameters cannot be read (give `names = [...]` in `parameters_from` \
                     to take only some):\n  {}",
                    many.len(),
                    many.join("\n  ")
                ),
            });
        }
    }
    if out.is_empty() {
        return Err(InputError::Invalid {
            file: file.to_string(),
            key: "prior".into(),
            message: "no parameter with a prior: nothing to calibrate".into(),
        });
    }
    Ok(out)
}

/// The text of an EKP.jl parameter TOML file, checked to be TOML (the
/// template of member files written in EKP.jl's layout, see
/// [`crate::config::ParameterFiles`]).
pub fn text_from_file(path: &Path) -> Result<String, InputError> {
    let text = crate::io::read_text(path)?;
    text.parse::<toml_edit::DocumentMut>()
        .map_err(|e| InputError::Parse {
            file: path.display().to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
    Ok(text)
}

/// The prior of an EKP.jl parameter TOML file.
pub fn prior_from_file(path: &Path) -> Result<Prior, InputError> {
    prior_from_file_names(path, None)
}

/// The prior of the parameters `names` (all, for `None`) of an EKP.jl
/// parameter TOML file.
pub fn prior_from_file_names(path: &Path, names: Option<&[String]>) -> Result<Prior, InputError> {
    let text = crate::io::read_text(path)?;
    let file = path.display().to_string();
    let params = priors_from_str_names(&text, &file, names)?;
    Prior::new(params).map_err(|e| InputError::Invalid {
        file,
        key: "prior".into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn expressions_parse() {
        assert_eq!(
            parse_expr("bounded(-42.0, 42.0)").unwrap(),
            Expr::Call(
                "bounded".into(),
                vec![Expr::Num(-42.0), Expr::Num(42.0)],
                vec![]
            )
        );
        let e = parse_expr("constrained_gaussian(x, 55.5, 10, 0, Inf; repeats = 3)").unwrap();
        let Expr::Call(_, args, kw) = e else { panic!() };
        assert_eq!(args.len(), 5);
        assert_eq!(args[4], Expr::Num(f64::INFINITY));
        assert_eq!(kw, vec![("repeats".to_string(), Expr::Num(3.0))]);
        assert_eq!(parse_expr("1e-3").unwrap(), Expr::Num(1e-3));
        assert!(parse_expr("Normal(0, 1").is_err());
        assert!(parse_expr("Normal(0, 1) x").is_err());
    }

    #[test]
    fn nesting_is_limited_without_recursing_further() {
        let ok = format!("{}1{}", "[".repeat(63), "]".repeat(63));
        assert!(parse_expr(&ok).is_ok());
        let deep = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        let message = parse_expr(&deep).unwrap_err();
        assert!(
            message.contains("nested deeper than 64 levels"),
            "{message}"
        );
        let very_deep = format!("{}1{}", "f(".repeat(100_000), ")".repeat(100_000));
        assert!(parse_expr(&very_deep).is_err());
        // Unclosed nesting is refused the same way.
        assert!(parse_expr(&"[".repeat(100_000)).is_err());
    }

    #[test]
    fn counts_are_bounded_by_the_parameter_size_limit() {
        assert_eq!(count(&Expr::Num(1.0)), Ok(1));
        assert_eq!(
            count(&Expr::Num(MAX_PARAMETER_SIZE as f64)),
            Ok(MAX_PARAMETER_SIZE)
        );
        let message = count(&Expr::Num(999_999_999.0)).unwrap_err();
        assert!(message.contains("at most 1000000"), "{message}");
        assert!(count(&Expr::Num(1e300)).is_err());
        assert!(count(&Expr::Num(f64::INFINITY)).is_err());
        assert!(count(&Expr::Num(f64::NAN)).is_err());
        assert!(count(&Expr::Num(0.0)).is_err());
        assert!(count(&Expr::Num(2.5)).is_err());
        let repeat = parse_expr("repeat([Normal(0, 1)], 999999999)").unwrap();
        assert!(list(&repeat).unwrap().is_err());
    }

    #[test]
    fn huge_priors_are_refused_before_allocating() {
        for prior in [
            "VectorOfParameterized(repeat([Normal(0, 1)], 999999999))",
            "Parameterized(MvNormal(999999999, 1.0))",
            "constrained_gaussian(x, 1.0, 0.5, 0.0, Inf; repeats = 999999999)",
        ] {
            let text = format!("[x]\nprior = \"{prior}\"\nconstraint = \"no_constraint()\"\n");
            let err = priors_from_str(&text, "p.toml").unwrap_err().to_string();
            assert!(err.contains("at most 1000000"), "{err}");
        }
    }

    #[test]
    fn names_follow_the_one_rule() {
        let prior = "prior = \"Parameterized(Normal(0, 1))\"\nconstraint = \"no_constraint()\"\n";
        let text = format!("[\"a\\nb\"]\n{prior}");
        let err = priors_from_str(&text, "p.toml").unwrap_err().to_string();
        assert!(err.contains("`a\\nb`"), "{err}");
        assert!(err.contains("U+000A"), "{err}");
        assert!(!err.contains('\n'), "{err:?}");
        let long = format!("[{}]\n{prior}", "x".repeat(257));
        assert!(priors_from_str(&long, "p.toml").is_err());
        // Tables that are not calibrated are not parameters: skipped.
        let text = format!("[\"a\\tb\"]\nvalue = 1.0\n\n[ok]\n{prior}");
        assert_eq!(priors_from_str(&text, "p.toml").unwrap().len(), 1);
    }
}
