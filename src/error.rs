//! The library's error type. Library code returns [`Result`]; the binary reports errors with
//! `anyhow`, naming the file and the problem.
use std::path::PathBuf;
use thiserror::Error;

/// Everything scoreinv can refuse or fail at.
#[derive(Debug, Error)]
pub enum Error {
    /// Reading or writing a file failed.
    /// (The cause is part of the message, not a separate `source`, so that a report of the
    /// whole chain does not print it twice.)
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A file exists but its contents are not what its format promises.
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// A tensor or array had the wrong shape.
    #[error("{what}: expected shape {expected}, got {actual}")]
    Shape {
        what: String,
        expected: String,
        actual: String,
    },
    /// NaN or infinity where finite numbers are needed.
    #[error("{0} contains NaN or infinite values")]
    NonFinite(String),
    /// An invalid setting or combination of settings.
    #[error("{0}")]
    Config(String),
    /// Invalid user input that is none of the above.
    #[error("{0}")]
    Invalid(String),
    /// A checkpoint or model directory is incomplete or inconsistent.
    #[error("checkpoint {}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },
    /// Stopped by SIGINT/SIGTERM at a safe point ([`crate::interrupt`]); the message says what
    /// was kept and how to continue.
    #[error("{0}")]
    Interrupted(String),
    /// Training diverged.
    #[error("{0}")]
    Diverged(String),
    /// An error from a forward operator.
    #[error(transparent)]
    Operator(#[from] scoreinv_operators::OperatorError),
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
    /// An [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
