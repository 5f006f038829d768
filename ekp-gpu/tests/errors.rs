//! Errors that need no adapter: the configuration is checked first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ekp_gpu::{GpuError, Lorenz96Gpu, MAX_SITES, Precision};
use ekp_models::{Lorenz96Config, ModelsError};

#[test]
fn invalid_config_is_a_config_error() {
    let config = Lorenz96Config {
        sub_window: 0.3,
        ..Lorenz96Config::default()
    };
    match Lorenz96Gpu::new(config, Precision::F32) {
        Err(GpuError::Config(ModelsError::InvalidConfig { field, .. })) => {
            assert_eq!(field, "sub_window");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn too_many_sites_is_refused() {
    let config = Lorenz96Config {
        sites: MAX_SITES + 1,
        ..Lorenz96Config::default()
    };
    match Lorenz96Gpu::new(config, Precision::F32) {
        Err(e @ GpuError::InvalidInput { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("at most {MAX_SITES} sites")),
                "{text}"
            );
            // A library's message states the fact; the CLI adds its flags.
            assert!(!text.contains("--"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Lorenz96Gpu>();
    check::<GpuError>();
}

#[test]
fn precision_parses_and_prints() {
    assert_eq!("f32".parse::<Precision>().unwrap(), Precision::F32);
    assert_eq!("F64".parse::<Precision>().unwrap(), Precision::F64);
    assert!("f16".parse::<Precision>().is_err());
    assert_eq!(Precision::default(), Precision::F32);
    assert_eq!(Precision::F64.to_string(), "f64");
    assert_eq!(Precision::F64.bytes(), 8);
}
