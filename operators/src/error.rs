//! Errors of the operators crate.
use thiserror::Error;

/// Everything an operator can refuse.
#[derive(Debug, Error)]
pub enum OperatorError {
    /// A tensor had the wrong shape.
    #[error("{op}: {what} has shape {actual}, expected {expected}")]
    Shape {
        op: String,
        what: String,
        expected: String,
        actual: String,
    },
    /// An invalid parameter (e.g. an angle count of zero, a mask fraction outside (0, 1]).
    #[error("{0}")]
    Invalid(String),
    /// Input contained NaN or infinity.
    #[error("{0} contains NaN or infinite values")]
    NonFinite(String),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, OperatorError>;
