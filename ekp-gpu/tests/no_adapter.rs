//! Without drivers, `Lorenz96Gpu::new` fails with a helpful error, and f64 on
//! an adapter without 64-bit floats is refused. Each case runs this test
//! binary again as a child process with the drivers hidden from it (the
//! Vulkan loader's and libglvnd's environment variables) or with wgpu limited
//! to GL, since the drivers a process sees are fixed when it starts them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use ekp_gpu::{GpuError, Lorenz96Gpu, Precision};
use ekp_models::Lorenz96Config;

/// Set in the child: which case it runs.
const CHILD: &str = "EKP_GPU_TEST_CHILD";

/// Run the test `name` of this binary in a child with `env`; its output.
fn child(name: &str, case: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, case);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child `{case}` failed:\n{text}");
    text
}

#[test]
fn no_adapter_is_a_clear_error() {
    if std::env::var(CHILD).is_ok_and(|c| c == "no-adapter") {
        match Lorenz96Gpu::new(Lorenz96Config::default(), Precision::F32) {
            Err(e @ GpuError::NoAdapter { .. }) => {
                let message = e.to_string();
                assert!(message.contains("no GPU adapter"), "{message}");
                assert!(
                    message.contains("apt-get install mesa-vulkan-drivers libvulkan1"),
                    "{message}"
                );
                assert!(!message.contains("--backend"), "{message}");
                assert!(
                    message.contains("VK_ICD_FILENAMES=/nonexistent"),
                    "{message}"
                );
                println!("child: NoAdapter: {message}");
            }
            Ok(model) => panic!(
                "an adapter is visible with the drivers hidden: {}",
                model.adapter_info()
            ),
            Err(e) => panic!("expected NoAdapter, got: {e}"),
        }
        return;
    }
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let out = child(
        "no_adapter_is_a_clear_error",
        "no-adapter",
        &[
            ("VK_ICD_FILENAMES", "/nonexistent"),
            ("VK_DRIVER_FILES", "/nonexistent"),
            ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent"),
            ("WGPU_BACKEND", "vulkan,gl"),
        ],
    );
    assert!(out.contains("child: NoAdapter"), "{out}");
    eprintln!("{out}");
}

/// f64 on Mesa's GL driver (llvmpipe has no SHADER_F64): `F64Unsupported`.
/// Skipped when no GL adapter exists (Mesa's EGL and GL drivers:
/// `libegl1 libegl-mesa0 libgl1-mesa-dri`).
#[test]
fn f64_on_gl_is_refused() {
    if std::env::var(CHILD).is_ok_and(|c| c == "gl-f64") {
        match Lorenz96Gpu::new(Lorenz96Config::default(), Precision::F64) {
            Err(e @ GpuError::F64Unsupported { .. }) => {
                let message = e.to_string();
                assert!(message.contains("SHADER_F64"), "{message}");
                assert!(!message.contains("--precision"), "{message}");
                println!("child: F64Unsupported: {message}");
                // f32 works on the same adapter.
                let model = Lorenz96Gpu::new(Lorenz96Config::default(), Precision::F32).unwrap();
                assert_eq!(model.adapter_info().backend, "Gl");
                assert!(!model.adapter_info().shader_f64);
            }
            Err(GpuError::NoAdapter { details }) => println!("child: no GL adapter: {details}"),
            Ok(model) => {
                assert!(model.adapter_info().shader_f64);
                println!(
                    "child: the GL adapter supports f64: {}",
                    model.adapter_info()
                );
            }
            Err(e) => panic!("expected F64Unsupported, got: {e}"),
        }
        return;
    }
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let out = child("f64_on_gl_is_refused", "gl-f64", &[("WGPU_BACKEND", "gl")]);
    eprintln!("{out}");
    if out.contains("child: no GL adapter") {
        use std::io::Write as _;
        // The real stderr, so that the skip shows without --nocapture.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: no GL adapter (install libegl1 libegl-mesa0 libgl1-mesa-dri)"
        );
        return;
    }
    assert!(
        out.contains("child: F64Unsupported") || out.contains("supports f64"),
        "{out}"
    );
}
