//! `ekp-cli config --example [--process KIND]`: a complete, commented
//! calibration file with every key and its default.
//!
//! The defaults are not written down twice: the example is generated from a
//! minimal calibration of the requested process, parsed by [`Calibration`]
//! (so every omitted key takes its default), and each setting is printed from
//! the parsed values. The result parses as a calibration file and runs (the
//! tests check both).

use std::fmt::Write as _;

use crate::config::{Calibration, ModelSpec};
use crate::error::InputError;

/// `process.kind` of the example when none is asked for.
pub const DEFAULT_KIND: &str = "inversion";

/// A TOML value written inline (`{ kind = "fixed", dt = 1.0 }`, `[1.0, 2.0]`).
fn inline(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(t) => {
            let fields: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            if fields.is_empty() {
                "{}".to_string()
            } else {
                format!("{{ {} }}", fields.join(", "))
            }
        }
        toml::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A bare key, or quoted if it needs to be.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

/// `kind = "..."` first, the other fields after (a kind-tagged table).
fn tagged(v: &toml::Value) -> String {
    let toml::Value::Table(t) = v else {
        return inline(v);
    };
    let mut out = toml::Table::new();
    if let Some(k) = t.get("kind") {
        out.insert("kind".into(), k.clone());
    }
    let mut s = inline(&toml::Value::Table(out));
    let rest: Vec<String> = t
        .iter()
        .filter(|(k, _)| k.as_str() != "kind")
        .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
        .collect();
    if !rest.is_empty() {
        s.truncate(s.len() - 2);
        s.push_str(", ");
        s.push_str(&rest.join(", "));
        s.push_str(" }");
    }
    s
}

fn value<T: serde::Serialize>(x: &T) -> Result<toml::Value, InputError> {
    toml::Value::try_from(x)
        .map_err(|e| InputError::Argument(format!("cannot show a default: {e}")))
}

/// The minimal calibration the example is derived from.
fn minimal(kind: &str) -> String {
    // sparse-inversion's γ has no default: the example shows an illustrative one.
    let required = if kind == "sparse-inversion" {
        "gamma = 3.0\n"
    } else {
        ""
    };
    format!(
        "[process]\nkind = {}\n{required}\n[[parameters]]\nname = \"F\"\n\
         prior = {{ kind = \"constrained-gaussian\", mean = 9.0, std = 2.0, lower = 0.0 }}\n\n\
         [[parameters]]\nname = \"A\"\n\
         prior = {{ kind = \"constrained-gaussian\", mean = 3.0, std = 1.25, lower = 0.0 }}\n\n\
         [observations]\ntruth = {{ F = 8.0, A = 2.5 }}\n\n[model]\nkind = \"lorenz96\"\n",
        toml::Value::String(kind.to_string())
    )
}

/// Comments on the process-specific keys.
fn process_key_comment(k: &str) -> &'static str {
    match k {
        "impose_prior" => "extend the data with the prior (EKP.jl's impose_prior)",
        "perturb_observations" => "perturb each member's data with N(0, Γ/Δt)",
        "multiplicative_inflation" => "inflate the ensemble by this factor after each update",
        "sampler_type" => "\"eks\" | \"aldi\"",
        "alpha_reg" => "regularisation toward the prior mean, in (0, 1]",
        "update_freq" => "reset Σ_ω every this many iterations (0: never)",
        "sigma_points" => "\"symmetric\" (2p + 1) | \"simplex\" (p + 2)",
        "modified_unscented_transform" => "the mean is the centre point's",
        "gamma" => {
            "required, no default (EKP.jl's γ): the upper limit of Σ|u_i| over the sparse \
             parameters (unconstrained values) of each member; smaller is sparser"
        }
        "threshold" => "after the projection, sparse parameters with |u_i| ≤ this are set to 0",
        "reg" => "variance of N(0, reg) noise added to the sparse parameters (0: none)",
        _ => "",
    }
}

/// The example calibration file for `process.kind = kind`.
pub fn example(kind: &str) -> Result<String, InputError> {
    let cal = Calibration::parse(&minimal(kind), "<example>")
        .map_err(|e| InputError::Argument(format!("--process {kind}: no example: {e}")))?;
    let mut s = String::new();
    header(&mut s, kind);
    process_keys(&mut s, &cal);
    process_settings(&mut s, &cal)?;
    process_options(&mut s, &cal)?;
    parameters_and_observations(&mut s);
    model(&mut s, &cal)?;
    // The example must parse: a failure here is a bug, reported as such.
    Calibration::parse(&s, "<example>").map_err(|e| {
        InputError::Argument(format!(
            "internal error: the example for --process {kind} does not parse: {e}"
        ))
    })?;
    Ok(s)
}

/// The comment at the top, `parameter_files`, `[process]` and its `kind`.
fn header(s: &mut String, kind: &str) {
    let _ = writeln!(
        s,
        "# ekp calibration file: every key with its default, for process.kind = \"{kind}\".\n\
         # Made by `ekp-cli config --example --process {kind}` (ekp-cli {}).\n\
         # Lines starting with `#` show alternatives; unknown keys are an error.\n\
         # Run it with `ekp-cli run --config FILE`; check its prior with\n\
         # `ekp-cli prior --config FILE`.\n",
        env!("CARGO_PKG_VERSION")
    );
    s.push_str(
        "# parameter_files = \"flat\"   # top-level (before any table): each member's parameters.toml\n\
         #   as `F = 8.1` (\"flat\") or in EKP.jl's layout, `[F]` with `value = 8.1` (\"ekp\")\n\n",
    );
    s.push_str("[process]\n");
    let _ = writeln!(
        s,
        "kind = {}\n# one of \"inversion\", \"transform-inversion\", \"sampler\", \"unscented\", \
         \"transform-unscented\", \"gauss-newton\", \"sparse-inversion\" (what this version supports)",
        toml::Value::String(kind.to_string())
    );
}

/// `ensemble_size`, `iterations`, `seed`.
fn process_keys(s: &mut String, cal: &Calibration) {
    if cal.process.unscented().is_some() {
        let _ = writeln!(
            s,
            "# ensemble_size: derived from the parameters ({} sigma points here); leave it out",
            cal.ensemble_size
        );
    } else {
        let _ = writeln!(s, "ensemble_size = {}   # members N", cal.ensemble_size);
    }
    let _ = writeln!(
        s,
        "iterations = {}   # at most this many updates",
        cal.iterations
    );
    let _ = writeln!(
        s,
        "seed = {}   # seed of every random draw (`run --seed N` overrides it)",
        cal.seed
    );
}

/// The process's own settings, as the process serialises them.
fn process_settings(s: &mut String, cal: &Calibration) -> Result<(), InputError> {
    if let toml::Value::Table(t) = value(&cal.process)? {
        for (k, v) in t.iter().filter(|(k, _)| k.as_str() != "kind") {
            let comment = process_key_comment(k);
            let line = format!("{} = {}", key(k), inline(v));
            if k == "perturb_observations" && !cal.accelerator.is_none() {
                let _ = writeln!(
                    s,
                    "# {line}   # {comment}; not with an accelerator (EKP.jl switches it off)"
                );
            } else if comment.is_empty() {
                let _ = writeln!(s, "{line}");
            } else if k == "gamma" {
                let _ = writeln!(s, "{line}   # {comment}");
                let _ = writeln!(
                    s,
                    "# sparse_parameters = [\"F\", \"A\"]   # the sparse (ℓ1-constrained) parameters: \
                     names, or components such as \"u[2]\"; default: every parameter"
                );
            } else {
                let _ = writeln!(s, "{line}   # {comment}");
            }
        }
    }
    Ok(())
}

/// Scheduler, localization, failure handling, NaN tolerance, accelerator,
/// inflation, history, minibatching and update groups.
fn process_options(s: &mut String, cal: &Calibration) -> Result<(), InputError> {
    let _ = writeln!(
        s,
        "scheduler = {}\n# or {{ kind = \"fixed\", dt = 1.0 }}, {{ kind = \"data-misfit\", terminate_at = 1.0, \
         on_terminate = \"stop\" }} (\"continue\", \"continue-fixed\"),\n\
         #    {{ kind = \"eks-stable\", numerator = 1.0, nugget = 2.220446049250313e-16 }}",
        tagged(&value(&cal.scheduler)?)
    );
    let _ = writeln!(
        s,
        "localization = {}\n# or {{ kind = \"none\" }}, {{ kind = \"delta\" }}, {{ kind = \"rbf\", length_scale = 1.0 }},\n\
         #    {{ kind = \"bernoulli-dropout\", prob = 0.9 }}, {{ kind = \"sec\", alpha = 1.0, r0 = 0.0 }},\n\
         #    {{ kind = \"sec-fisher\" }}, {{ kind = \"sec-nice\", delta_ug = 1.0, delta_gg = 1.0 }}",
        tagged(&value(&cal.localizer)?)
    );
    let _ = writeln!(
        s,
        "failure = {}   # or {{ kind = \"ignore\" }}",
        tagged(&value(&cal.failure)?)
    );
    let _ = writeln!(
        s,
        "nan_tolerance = {}   # a member with a larger fraction of non-finite outputs has failed",
        toml::Value::Float(cal.nan_tolerance)
    );
    let _ = writeln!(
        s,
        "accelerator = {}\n# or {{ kind = \"none\" }}, {{ kind = \"nesterov\" }}, \
         {{ kind = \"first-order-nesterov\", r = 3.0 }},\n#    {{ kind = \"constant-nesterov\", lambda = 0.9 }}",
        tagged(&value(&cal.accelerator)?)
    );
    if cal.process.unscented().is_none() {
        s.push_str(
            "# No inflation beyond the process's own by default. When given, it replaces\n\
             # `multiplicative_inflation` (as in EKP.jl): after each update with step Δt,\n\
             # multiplicative scales the ensemble covariance by 1/(1 − s Δt); additive adds\n\
             # s Δt/(1 − s Δt) Σ₀ (the prior covariance); s Δt must stay below 1.\n\
             # inflation = { multiplicative = true, additive = false, s = 1.0 }\n",
        );
    }
    s.push_str(
        "history = \"all\"   # outputs kept in memory and state.toml: \"all\" updates', or \"last\" only\n\
         #   (for large d: u, Δt, metrics are kept for every update either way)\n",
    );
    s.push_str(
        "# No minibatching by default (all data every update); 1-based indices:\n\
         # minibatch = { kind = \"fixed\", batches = [[1, 2], [3, 4]], order = \"in-order\" }\n\
         # minibatch = { kind = \"random-fixed-size\", size = 2, remainder = \"extend\" }   # or \"trim\"\n\
         # No update groups by default (every parameter from every output):\n\
         # update_groups = [{ parameters = [\"F\"], outputs = [1, 2] }, { parameters = [\"A\"], outputs = [3, 4] }]\n\n",
    );
    Ok(())
}

/// The `[[parameters]]` and `[observations]` tables (those of the minimal
/// calibration, with the alternatives in comments).
fn parameters_and_observations(s: &mut String) {
    s.push_str(
        "# One [[parameters]] table per parameter, in order.\n\
         [[parameters]]\nname = \"F\"\n\
         # constrained-gaussian: a Gaussian in unconstrained space whose constrained\n\
         # mean and std are these; `lower` / `upper` absent: -inf / +inf.\n\
         prior = { kind = \"constrained-gaussian\", mean = 9.0, std = 2.0, lower = 0.0 }\n\
         # prior = { kind = \"gaussian\", mean = 0.0, std = 1.0 }   # unbounded\n\
         # size = 1   # > 1: a vector parameter (names F[1], F[2], ...)\n\n\
         [[parameters]]\nname = \"A\"\n\
         prior = { kind = \"constrained-gaussian\", mean = 3.0, std = 1.25, lower = 0.0 }\n\n",
    );
    s.push_str(
        "[observations]\n\
         # Synthetic data from the model at these parameters. Lorenz 96 estimates Γ\n\
         # from its truth run; other models need noise_std or covariance.\n\
         truth = { F = 8.0, A = 2.5 }\n\
         # Or the data themselves, with their noise:\n\
         # values = [1.0, 2.0]\n\
         # noise_std = 0.1            # Γ = 0.1² I; or noise_std = [0.1, 0.2] (diagonal)\n\
         # covariance = [[0.01, 0.0], [0.0, 0.04]]\n\n",
    );
}

/// The `[model]` table: Lorenz 96 with its defaults, the others in comments.
fn model(s: &mut String, cal: &Calibration) -> Result<(), InputError> {
    s.push_str("[model]\nkind = \"lorenz96\"   # lorenz96 | linear | sinusoid | command | worker | batch\n");
    if let ModelSpec::Lorenz96 { config, .. } = &cal.model {
        if let toml::Value::Table(t) = value(config)? {
            for (k, v) in &t {
                let _ = writeln!(s, "{} = {}", key(k), inline(v));
            }
        }
    }
    s.push_str(
        "# fixed = { F = 8.0 }   # model parameters held fixed (lorenz96: F, A; sinusoid: amplitude, vert_shift)\n\
         # Other models (each line below, as the body of an inline table, is a whole [model]):\n\
         # kind = \"linear\", matrix = [[1.0, 0.0], [0.0, 1.0]], offset = [0.0, 0.0]   # matrix: d rows, p columns\n\
         # kind = \"sinusoid\"   # EKP.jl's sinusoid: parameters amplitude, vert_shift\n\
         # kind = \"command\", program = \"./model.sh\", args = [\"{parameters}\", \"{output}\"], env = {}, timeout = 600.0   # one process per member, in its folder: reads parameters.toml, writes output.toml\n\
         # kind = \"worker\", program = \"./worker.py\", args = [], env = {}, timeout = 600.0   # long-lived processes: one JSON line per member in, one answer line out\n\
         # kind = \"batch\", program = \"./batch.py\", args = [\"{parameters}\", \"{outputs}\"], batch_size = 1000, timeout = 3600.0   # many members per process: CSV in, CSV out\n\
         # kind = \"command\", program = \"./model\", templates = [{ template = \"model.nml.in\", target = \"model.nml\" }]   # templates (command, worker, batch): {{NAME}}, {{NAME[i]}} replaced by the member's values\n",
    );
    Ok(())
}
