//! # ekp-core: ensemble Kalman processes
//!
//! (crate docs with the mathematics: written at the end)

pub mod constraint;
pub mod ensemble_kalman_process;
pub mod error;
pub mod failure;
pub mod linalg;
pub mod model;
pub mod observation;
pub mod prior;
pub mod process;
mod quadrature;
pub mod scheduler;
pub mod serde_nalgebra;

pub use constraint::Constraint;
pub use ensemble_kalman_process::{
    EkpBuilder, EnsembleKalmanProcess, ErrorMetrics, UpdateOutcome, UpdateReport,
};
pub use error::EkpError;
pub use failure::FailurePolicy;
pub use model::{ForwardModel, ModelError};
pub use observation::{NoiseCovariance, Observation, ObservationError};
pub use prior::{ParameterPrior, Prior, PriorError};
pub use process::{Inversion, Process, TransformInversion};
pub use scheduler::Scheduler;
