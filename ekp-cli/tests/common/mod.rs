//! Helpers shared by the `ekp-cli` integration tests (each test binary uses
//! some of them).

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::path::Path;
use std::process::{Command, Output};

/// Runs `ekp-cli args` in `dir`.
pub fn ekp(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ekp-cli runs")
}

/// Output bytes as text.
pub fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

/// Whether a GPU adapter (a real GPU or Mesa's software one) is usable; when
/// not, GPU tests are skipped with a notice, unless EKP_REQUIRE_GPU=1 (CI).
pub fn gpu_available(dir: &Path) -> bool {
    let out = ekp(
        &[
            "bench",
            "--backend",
            "gpu",
            "--members",
            "4",
            "--steps",
            "4",
        ],
        dir,
    );
    if out.status.success() {
        return true;
    }
    let required = std::env::var("EKP_REQUIRE_GPU").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "EKP_REQUIRE_GPU=1 but no GPU adapter: {}",
        text(&out.stderr)
    );
    eprintln!("skipped: no GPU adapter ({})", text(&out.stderr).trim());
    false
}

/// Asserts success; returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Asserts exit `code` and that stderr holds every one of `words`; returns stderr.
#[track_caller]
pub fn fails(o: &Output, code: i32, words: &[&str]) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    for w in words {
        assert!(err.contains(w), "`{w}` not in: {err}");
    }
    err
}

/// Every file below `dir` with its bytes (nothing for a missing `dir`).
pub fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}
