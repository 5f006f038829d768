//! No calibration file reaches a panic (exit 101) or an allocation failure:
//! every size and count is bounded, the ensemble's memory is estimated up
//! front, EKP.jl prior strings have a nesting limit, and parameter names
//! are printable. Each hostile input is refused as bad input (exit 2) by
//! the real binary, with the key named on stderr and nothing written to the
//! output folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use std::path::Path;

use common::{ekp, text};

/// A small, valid calibration with the linear model; `process` and
/// `parameters` replace its `[process]` keys and `[[parameters]]` tables.
fn calibration(process: &str, parameters: &str) -> String {
    format!(
        "[process]\nkind = \"inversion\"\n{process}\n\n{parameters}\n\n\
         [observations]\nvalues = [1.0, 2.0]\nnoise_std = 0.1\n\n\
         [model]\nkind = \"linear\"\nmatrix = [[1.0], [2.0]]\n"
    )
}

const ONE_PARAMETER: &str =
    "[[parameters]]\nname = \"x\"\nprior = { kind = \"gaussian\", mean = 0.0, std = 1.0 }";

/// Writes `toml` as `config.toml` in `dir`, runs `prior --config` and
/// `run --config --output`, and checks both are refused with exit 2, with
/// `key` (and each of `also`) on stderr, and without an output folder.
fn refused(dir: &Path, toml: &str, key: &str, also: &[&str]) {
    let config = dir.join("config.toml");
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap();
    let output = dir.join("out");
    let output_arg = output.to_str().unwrap();
    for args in [
        vec!["prior", "--config", config],
        vec!["run", "--config", config, "--output", output_arg],
    ] {
        let out = ekp(&args, dir);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: expected exit 2\nstderr: {stderr}\nstdout: {}",
            text(&out.stdout)
        );
        assert!(
            stderr.contains(key),
            "{args:?}: stderr does not name `{key}`: {stderr}"
        );
        for a in also {
            assert!(stderr.contains(a), "{args:?}: stderr lacks {a:?}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let written = std::fs::read_dir(&output).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 0, "something was written to {}", output.display());
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn a_huge_ensemble_size_is_refused() {
    let dir = tmp();
    refused(
        dir.path(),
        &calibration("ensemble_size = 9223372036854775807", ONE_PARAMETER),
        "process.ensemble_size",
        &["at most 10000000"],
    );
}

#[test]
fn ten_million_members_are_refused_by_the_memory_estimate() {
    let dir = tmp();
    refused(
        dir.path(),
        &calibration("ensemble_size = 10000000", ONE_PARAMETER),
        "process.ensemble_size",
        &["GiB", "16.0 GiB", "process.iterations"],
    );
}

#[test]
fn the_memory_estimate_counts_the_iterations() {
    let dir = tmp();
    refused(
        dir.path(),
        &calibration("ensemble_size = 1000000\niterations = 10000", ONE_PARAMETER),
        "process.ensemble_size",
        &["GiB", "iterations = 10000"],
    );
}

#[test]
fn huge_iterations_are_refused() {
    let dir = tmp();
    refused(
        dir.path(),
        &calibration("iterations = 9223372036854775807", ONE_PARAMETER),
        "process.iterations",
        &["at most 1000000"],
    );
}

#[test]
fn a_huge_parameter_size_is_refused() {
    let dir = tmp();
    let parameters = format!("{ONE_PARAMETER}\nsize = 9223372036854775807");
    refused(
        dir.path(),
        &calibration("", &parameters),
        "parameters[1] (name = \"x\").size",
        &["at most 1000000"],
    );
}

#[test]
fn too_many_parameter_components_in_all_are_refused() {
    let dir = tmp();
    let parameters: Vec<String> = (1..=11)
        .map(|i| {
            format!(
                "[[parameters]]\nname = \"p{i}\"\nsize = 1000000\n\
                 prior = {{ kind = \"gaussian\", mean = 0.0, std = 1.0 }}"
            )
        })
        .collect();
    refused(
        dir.path(),
        &calibration("", &parameters.join("\n\n")),
        "`parameters`",
        &["11000000", "10000000"],
    );
}

#[test]
fn too_many_sigma_points_are_refused() {
    let dir = tmp();
    let parameters: Vec<String> = (1..=6)
        .map(|i| {
            format!(
                "[[parameters]]\nname = \"p{i}\"\nsize = 1000000\n\
                 prior = {{ kind = \"gaussian\", mean = 0.0, std = 1.0 }}"
            )
        })
        .collect();
    let toml = calibration("", &parameters.join("\n\n"))
        .replace("kind = \"inversion\"", "kind = \"unscented\"");
    refused(dir.path(), &toml, "`parameters`", &["sigma points"]);
}

#[test]
fn observation_sizes_that_overflow_are_refused() {
    let dir = tmp();
    let process = "minibatch = { kind = \"fixed\", batches = [[1]], observation_sizes = \
                   [9223372036854775807, 9223372036854775807, 9223372036854775807] }";
    refused(
        dir.path(),
        &calibration(process, ONE_PARAMETER),
        "process.minibatch.observation_sizes",
        &[],
    );
}

#[test]
fn a_sinusoid_with_too_many_time_samples_is_refused() {
    let dir = tmp();
    let toml = "[process]\nkind = \"inversion\"\n\n\
        [[parameters]]\nname = \"amplitude\"\nprior = { kind = \"gaussian\", mean = 1.0, std = 1.0 }\n\n\
        [[parameters]]\nname = \"vert_shift\"\nprior = { kind = \"gaussian\", mean = 1.0, std = 1.0 }\n\n\
        [observations]\nvalues = [1.0, 2.0]\nnoise_std = 0.1\n\n\
        [model]\nkind = \"sinusoid\"\ndt = 1e-300\n";
    refused(dir.path(), toml, "model.dt", &["10000000"]);
}

#[test]
fn a_lorenz96_with_too_many_sites_is_refused() {
    let dir = tmp();
    let toml = "[process]\nkind = \"inversion\"\n\n\
        [[parameters]]\nname = \"F\"\nprior = { kind = \"gaussian\", mean = 8.0, std = 1.0 }\n\n\
        [observations]\nvalues = [1.0, 2.0, 3.0, 4.0]\nnoise_std = 0.1\n\n\
        [model]\nkind = \"lorenz96\"\nsites = 9223372036854775807\nfixed = { A = 0.0 }\n";
    refused(dir.path(), toml, "model.sites", &["10000000"]);
}

#[test]
fn unprintable_parameter_names_are_refused() {
    let dir = tmp();
    for (name, shown) in [
        ("a\\nb", "U+000A"),
        ("a\\tb", "U+0009"),
        ("\\u001b[31mred", "U+001B"),
        ("a\\u202eb", "U+202E"),
    ] {
        let parameters = format!(
            "{ONE_PARAMETER}\n\n[[parameters]]\nname = \"{name}\"\n\
             prior = {{ kind = \"gaussian\", mean = 0.0, std = 1.0 }}"
        );
        let toml =
            calibration("", &parameters).replace("[[1.0], [2.0]]", "[[1.0, 0.0], [2.0, 0.0]]");
        refused(dir.path(), &toml, "parameters[2].name", &[shown]);
        let config = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
        assert!(config.contains(name));
    }
}

#[test]
fn empty_and_overlong_parameter_names_are_refused() {
    let dir = tmp();
    let blank =
        "[[parameters]]\nname = \"  \"\nprior = { kind = \"gaussian\", mean = 0.0, std = 1.0 }";
    refused(
        dir.path(),
        &calibration("", blank),
        "parameters[1].name",
        &["empty name"],
    );
    let long = format!(
        "[[parameters]]\nname = \"{}\"\nprior = {{ kind = \"gaussian\", mean = 0.0, std = 1.0 }}",
        "x".repeat(257)
    );
    refused(
        dir.path(),
        &calibration("", &long),
        "parameters[1].name",
        &["257 characters", "at most 256"],
    );
}

/// A calibration whose prior is the EKP.jl file `priors.toml` holding `ekp`.
fn from_ekp_file(dir: &Path, ekp: &str) -> String {
    std::fs::write(dir.join("priors.toml"), ekp).unwrap();
    format!(
        "parameters_from = {{ ekp_toml = \"priors.toml\" }}\n\n{}",
        calibration("", "")
    )
}

#[test]
fn a_deeply_nested_ekp_prior_is_refused_without_a_stack_overflow() {
    let dir = tmp();
    let depth = 100_000;
    let prior = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let ekp =
        format!("[x]\nprior = \"Parameterized({prior})\"\nconstraint = \"no_constraint()\"\n");
    let toml = from_ekp_file(dir.path(), &ekp);
    refused(
        dir.path(),
        &toml,
        "parameters_from.ekp_toml",
        &["nested deeper than 64"],
    );
    let calls = format!("{}1{}", "f(".repeat(depth), ")".repeat(depth));
    let ekp = format!("[x]\nprior = \"{calls}\"\n");
    let toml = from_ekp_file(dir.path(), &ekp);
    refused(
        dir.path(),
        &toml,
        "parameters_from.ekp_toml",
        &["nested deeper than 64"],
    );
}

#[test]
fn huge_ekp_repeats_are_refused_before_allocating() {
    let dir = tmp();
    for prior in [
        "VectorOfParameterized(repeat([Normal(0, 1)], 999999999))",
        "Parameterized(MvNormal(999999999, 1.0))",
        "constrained_gaussian(x, 1.0, 0.5, 0.0, Inf; repeats = 999999999)",
    ] {
        let ekp = format!(
            "[x]\nprior = \"{prior}\"\nconstraint = \"repeat([no_constraint()], 999999999)\"\n"
        );
        let toml = from_ekp_file(dir.path(), &ekp);
        refused(
            dir.path(),
            &toml,
            "parameters_from.ekp_toml",
            &["999999999", "at most 1000000"],
        );
    }
}

#[test]
fn unprintable_ekp_names_are_refused() {
    let dir = tmp();
    let ekp = "[\"a\\u001bb\"]\nprior = \"Parameterized(Normal(0, 1))\"\nconstraint = \"no_constraint()\"\n";
    let toml = from_ekp_file(dir.path(), ekp);
    refused(
        dir.path(),
        &toml,
        "parameters_from.ekp_toml",
        &["U+001B", "a\\u{1b}b"],
    );
}

#[test]
fn the_limits_leave_ordinary_calibrations_alone() {
    let dir = tmp();
    let config = dir.path().join("config.toml");
    let parameters = format!("{ONE_PARAMETER}\nsize = 1000");
    let toml = calibration("ensemble_size = 50\niterations = 2", &parameters).replace(
        "[[1.0], [2.0]]",
        &format!("[[{0}], [{0}]]", vec!["0.001"; 1000].join(", ")),
    );
    std::fs::write(&config, toml).unwrap();
    let out = ekp(&["prior", "--config", config.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
