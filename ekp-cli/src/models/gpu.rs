//! Lorenz 96 on a GPU (`--backend gpu`) through `ekp-gpu`.

use crate::config::{Calibration, ModelSpec};
use crate::error::{Error, InputError};
use crate::models::builtin::{BuiltModel, Source};

/// Map a GPU error to bad input (no adapter, no f64, a request or model
/// configuration the kernel cannot run: the user must change something) or a
/// runtime failure (the device, the driver, a bug).
pub fn gpu_error(e: ekp_gpu::GpuError) -> Error {
    use ekp_gpu::GpuError as G;
    match e {
        G::NoAdapter { .. } | G::InvalidInput { .. } | G::Config(_) => InputError::Argument(
            format!("--backend gpu: {e}; or run on the CPU with `--backend threads`"),
        )
        .into(),
        G::F64Unsupported { .. } => InputError::Argument(format!(
            "--backend gpu --precision f64: {e}; use `--precision f32`, or `--backend threads`"
        ))
        .into(),
        G::RequestDevice { .. }
        | G::Validation { .. }
        | G::OutOfMemory { .. }
        | G::DeviceLost { .. }
        | G::Poll { .. }
        | G::Map { .. }
        | G::Internal { .. } => Error::Runtime(anyhow::Error::new(e).context("GPU backend failed")),
    }
}

/// Lorenz 96 on a GPU (`--backend gpu`), with the calibration's parameters
/// mapped onto the model's `[F, A]` as for the CPU backends.
pub struct GpuModel {
    gpu: ekp_gpu::Lorenz96Gpu,
    sources: Vec<Source>,
    calibrated: usize,
}

impl GpuModel {
    /// The GPU model of `built` (which must be a Lorenz 96 calibration).
    pub fn new(
        cal: &Calibration,
        built: &BuiltModel,
        precision: ekp_gpu::Precision,
    ) -> Result<Self, Error> {
        let ModelSpec::Lorenz96 { config, .. } = &cal.model else {
            return Err(InputError::Argument(format!(
                "--backend gpu runs the lorenz96 model only; this calibration's model is {} \
                 (use --backend threads)",
                cal.model.kind()
            ))
            .into());
        };
        let gpu = ekp_gpu::Lorenz96Gpu::new(config.clone(), precision).map_err(gpu_error)?;
        Ok(Self {
            gpu,
            sources: built.ensemble.model.sources.clone(),
            calibrated: built.ensemble.model.calibrated,
        })
    }

    /// The adapter the model runs on.
    pub fn adapter_info(&self) -> &ekp_gpu::AdapterInfo {
        self.gpu.adapter_info()
    }
}

impl ekp_core::ForwardModel for GpuModel {
    fn name(&self) -> &str {
        "lorenz96 (gpu)"
    }
    fn parameter_dim(&self) -> usize {
        self.calibrated
    }
    fn output_dim(&self) -> usize {
        self.gpu.output_dim()
    }
    fn evaluate_into(
        &self,
        params: &nalgebra::DMatrix<f64>,
        out: &mut nalgebra::DMatrix<f64>,
    ) -> Result<(), ekp_core::ModelError> {
        self.evaluate_into_with_progress(params, out, &|_| {})
    }
    fn evaluate_into_with_progress(
        &self,
        params: &nalgebra::DMatrix<f64>,
        out: &mut nalgebra::DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), ekp_core::ModelError> {
        let mapped = nalgebra::DMatrix::from_fn(self.sources.len(), params.ncols(), |i, j| {
            self.sources[i].value(|k| params.get((k, j)).copied())
        });
        self.gpu.evaluate_into_with_progress(&mapped, out, progress)
    }
}
