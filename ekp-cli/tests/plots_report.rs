//! Plots (`DIR/plots/*.svg`, `*.png`) and `report.html`: written by `run`,
//! by `ekp-cli plot --dir DIR` on a file-workflow folder in progress, and
//! well-formed, complete and self-contained.

#![cfg(feature = "plots")] // figures need the `plots` feature
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::ekp;

use std::path::Path;
use std::process::Output;

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

const LINEAR: &str = r#"
[process]
kind = "inversion"
ensemble_size = 8
iterations = 3
seed = 7

[[parameters]]
name = "a"
prior = { kind = "gaussian", mean = 0.0, std = 2.0 }

[[parameters]]
name = "b"
prior = { kind = "constrained-gaussian", mean = 1.0, std = 0.5, lower = 0.0 }
size = 2

[observations]
truth = { a = 1.0, b = [0.5, 1.5] }
noise_std = 0.1

[model]
kind = "linear"
matrix = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
"#;

const FIGURES: [&str; 4] = ["misfit", "parameters", "pairs", "outputs"];

/// HTML elements without an end tag.
const VOID: [&str; 6] = ["meta", "br", "hr", "img", "input", "link"];

/// Checks that every element of `doc` is closed in order (HTML void elements
/// and XML self-closing tags aside); returns the element names seen.
fn check_balanced(doc: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("every tag ends");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "<{open}> closed by </{name}>");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(!name.is_empty(), "bad tag <{tag}>");
        seen.push(name.clone());
        if tag.trim_end().ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        stack.push(name);
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    seen
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: not a PNG",
        path.display()
    );
    let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    (w, h)
}

fn check_folder(dir: &Path, names: &[&str], complete: bool) {
    for f in FIGURES {
        let svg = std::fs::read_to_string(dir.join("plots").join(format!("{f}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{f}.svg");
        let tags = check_balanced(&svg);
        assert!(tags.iter().any(|t| t == "text"), "{f}.svg has no text");
        let (w, h) = png_size(&dir.join("plots").join(format!("{f}.png")));
        assert!(w >= 400 && h >= 400, "{f}.png is {w}×{h}");
    }
    let params = std::fs::read_to_string(dir.join("plots/parameters.svg")).unwrap();
    for n in names {
        assert!(
            params.contains(&format!("{n}: ensemble per iteration")),
            "{n}"
        );
    }
    assert!(params.contains("truth"), "the truth is drawn");

    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    let tags = check_balanced(&html);
    for t in ["html", "head", "title", "body", "table", "pre"] {
        assert!(tags.iter().any(|x| x == t), "no <{t}>");
    }
    assert_eq!(
        tags.iter().filter(|t| *t == "svg").count(),
        4,
        "4 inline SVGs"
    );
    for id in ekp_cli::report::html::SECTIONS {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id}"
        );
    }
    // Self-contained: nothing fetched (the SVG namespace is a name, not a fetch).
    for bad in ["<script", "<link", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(bad), "report.html contains {bad}");
    }
    assert!(html.contains(env!("CARGO_PKG_VERSION")), "software version");
    assert!(
        html.contains("kind = &quot;linear&quot;"),
        "configuration, escaped"
    );
    for n in names {
        assert!(html.contains(&format!("<td>{n}</td>")), "posterior row {n}");
    }
    assert!(
        html.contains(if complete {
            "<strong>complete: "
        } else {
            "<strong>in progress: "
        }),
        "status"
    );
}

#[test]
fn run_writes_plots_and_a_complete_self_contained_report() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("lin.toml"), LINEAR).unwrap();
    ok(&ekp(
        &["run", "--config", "lin.toml", "--output", "out", "--quiet"],
        tmp.path(),
    ));
    let out = tmp.path().join("out");
    check_folder(&out, &["a", "b[1]", "b[2]"], true);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // The per-iteration table has a row per ensemble (0..=3) under its header.
    let table = &html[html.find("<section id=\"iterations\">").unwrap()..];
    let table = &table[..table.find("</section>").unwrap()];
    assert_eq!(table.matches("<tr>").count(), 1 + 4, "{table}");

    // `plot --dir` redraws a finished run folder, here as SVG only.
    std::fs::remove_dir_all(out.join("plots")).unwrap();
    ok(&ekp(
        &["plot", "--dir", "out", "--format", "svg"],
        tmp.path(),
    ));
    assert!(out.join("plots/pairs.svg").exists());
    assert!(!out.join("plots/pairs.png").exists());
}

#[test]
fn plot_draws_a_file_workflow_folder_in_progress() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("lin.toml"), LINEAR).unwrap();
    ok(&ekp(
        &["init", "--config", "lin.toml", "--dir", "wf"],
        tmp.path(),
    ));
    // Right after init: the prior ensemble only.
    ok(&ekp(&["plot", "--dir", "wf"], tmp.path()));
    check_folder(&tmp.path().join("wf"), &["a", "b[1]", "b[2]"], false);
    // After one update: the misfit of ensemble 0 and its outputs.
    for j in 1..=8 {
        let m = j.to_string();
        ok(&ekp(
            &["forward", "--dir", "wf", "--iteration", "0", "--member", &m],
            tmp.path(),
        ));
    }
    ok(&ekp(&["update", "--dir", "wf"], tmp.path()));
    ok(&ekp(&["plot", "--dir", "wf"], tmp.path()));
    let wf = tmp.path().join("wf");
    check_folder(&wf, &["a", "b[1]", "b[2]"], false);
    let outputs = std::fs::read_to_string(wf.join("plots/outputs.svg")).unwrap();
    assert!(outputs.contains("outputs of ensemble 0"));
}

#[test]
fn plot_of_a_folder_without_a_state_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ekp(&["plot", "--dir", "."], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains("not a calibration folder") && err.contains("workflow.toml is missing"),
        "{err}"
    );
}
