//! Records what `ekp-cli --version` reports besides the package version:
//! the git commit it was built from and the enabled build features.

use std::process::Command;

/// `git ARGS` in the crate's folder, trimmed; `None` outside a repository
/// or without git.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves (a checkout or a commit), not on every build.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])),
    ]
    .into_iter()
    .flatten()
    {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    let features: Vec<&str> = [
        ("gpu", "CARGO_FEATURE_GPU"),
        ("plots", "CARGO_FEATURE_PLOTS"),
    ]
    .into_iter()
    .filter(|(_, var)| std::env::var_os(var).is_some())
    .map(|(name, _)| name)
    .collect();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(", ")
    };
    println!(
        "cargo:rustc-env=EKP_LONG_VERSION={} (commit {commit}; features: {features})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
}
