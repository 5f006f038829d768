//! Errors of the GPU backend.

use ekp_models::ModelsError;
use thiserror::Error;

/// The drivers that provide an adapter, named when none is found. (What to
/// run instead is the caller's to say: this is a library.)
pub(crate) const INSTALL_HINT: &str = "an adapter needs a GPU driver or Mesa's software Vulkan \
driver (lavapipe: `apt-get install mesa-vulkan-drivers libvulkan1`)";

/// Why the GPU backend could not be set up or could not run.
///
/// A member that diverges is not an error (its output column is NaN); these
/// are failures of the device, of the driver, or of the input as a whole.
/// Nothing in this crate panics on a driver or validation failure: it is
/// reported as one of these.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GpuError {
    /// No wgpu adapter (no GPU driver, no software Vulkan/GL driver).
    #[error("no GPU adapter found: {details}; {INSTALL_HINT}")]
    NoAdapter {
        /// What was tried and which environment variables were in effect.
        details: String,
    },
    /// `Precision::F64` was requested but no adapter supports 64-bit floats in
    /// shaders (`SHADER_F64`; Mesa's GL driver llvmpipe does not, its Vulkan
    /// driver lavapipe does).
    #[error(
        "the GPU adapter {adapter} does not support 64-bit floats in shaders (SHADER_F64), \
         which f64 precision needs (f32 does not); Mesa's Vulkan driver lavapipe \
         (`apt-get install mesa-vulkan-drivers libvulkan1`) supports them"
    )]
    F64Unsupported {
        /// The best adapter that was found (name, backend, device type).
        adapter: String,
    },
    /// The adapter refused to create a device.
    #[error("could not open a device on the GPU adapter {adapter}: {message}")]
    RequestDevice {
        /// The adapter.
        adapter: String,
        /// The driver's message.
        message: String,
    },
    /// wgpu reported a validation error (a bug in this crate, or a driver or
    /// limit this crate did not anticipate).
    #[error("GPU validation error while {context}: {message}")]
    Validation {
        /// What was being done.
        context: String,
        /// wgpu's message.
        message: String,
    },
    /// The device ran out of memory.
    #[error("GPU out of memory while {context}: {message}")]
    OutOfMemory {
        /// What was being done.
        context: String,
        /// wgpu's message.
        message: String,
    },
    /// The device was lost (driver reset, crash) or another internal error.
    #[error("GPU device lost or failed: {message}")]
    DeviceLost {
        /// The reason given by the driver.
        message: String,
    },
    /// Waiting for the device failed.
    #[error("waiting for the GPU failed: {message}")]
    Poll {
        /// wgpu's message.
        message: String,
    },
    /// Reading results back from the device failed.
    #[error("reading results back from the GPU failed: {message}")]
    Map {
        /// wgpu's message.
        message: String,
    },
    /// The model configuration is invalid.
    #[error(transparent)]
    Config(#[from] ModelsError),
    /// The request cannot be run (wrong parameter count, too many steps, ...).
    #[error("invalid GPU request: {message}")]
    InvalidInput {
        /// What is wrong.
        message: String,
    },
    /// A broken invariant inside ekp-gpu (a bug, not the caller's input).
    #[error("internal error in ekp-gpu (a bug, please report it): {message}")]
    Internal {
        /// What was found broken.
        message: String,
    },
}
