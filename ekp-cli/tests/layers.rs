//! The layers of `ekp-cli/src` import one way, top to bottom: a module may
//! use the modules below it, never one above (so there is no import cycle).
//! The order is the one in the crate docs (`src/lib.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

/// Top to bottom. Modules on one line are one layer (they do not import
/// each other).
const LAYERS: [&[&str]; 12] = [
    &["commands"],
    &["cli"],
    &["ui"],
    &["slurm", "bench"],
    &["workflow"],
    &["models", "report"],
    &["driver"],
    &["folder"],
    &["config"],
    &["stop"],
    &["io"],
    &["error"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// `crate::NAME` paths in a Rust source text (`use crate::x`, `crate::x::y`).
fn crate_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `ekp_cli::` is not `crate::`; skip words ending in `crate::` such as `some_crate::`.
        let before = text[..i].chars().last();
        if !name.is_empty() && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(name);
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn imports_run_one_way_top_to_bottom() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(mine) = layer_of(&top) else {
            violations.push(format!("{}: module `{top}` is in no layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        for used in crate_paths(&text) {
            checked += 1;
            if used == top {
                continue;
            }
            match layer_of(&used) {
                None => violations.push(format!("{}: uses unknown `crate::{used}`", rel.display())),
                Some(l) if l <= mine => violations.push(format!(
                    "{}: `{top}` uses `crate::{used}`, which is not below it",
                    rel.display()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} imports seen: is the scan broken?"
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scan_finds_crate_paths() {
    assert_eq!(
        crate_paths("use crate::folder::{a, b};\nlet x = crate::io::f(); other_crate::z"),
        vec!["folder", "io"]
    );
}
