//! The library's errors as Python exceptions, with the library's message: a missing file is
//! `FileNotFoundError`, a refused input or setting `ValueError`, a failure of libtorch
//! `RuntimeError`, an interrupt `KeyboardInterrupt`.
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;
use scoreinv::Error;
use scoreinv_operators::OperatorError;

/// A library error as the Python exception of its kind.
pub fn lib_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { ref cause, .. } if cause.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::Format { .. }
        | Error::Shape { .. }
        | Error::NonFinite(_)
        | Error::Config(_)
        | Error::Invalid(_)
        | Error::Checkpoint { .. } => PyValueError::new_err(msg),
        Error::Interrupted(_) => PyKeyboardInterrupt::new_err(msg),
        Error::Operator(e) => op_err(e),
        Error::Diverged(_) | Error::Torch(_) => PyRuntimeError::new_err(msg),
    }
}

/// An operator error: `ValueError` for what the caller passed, `RuntimeError` from libtorch.
pub fn op_err(e: OperatorError) -> PyErr {
    let msg = e.to_string();
    match e {
        OperatorError::Torch(_) => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// Runs `f`, turning a panic (libtorch errors reached through tch's panicking calls) into a
/// `RuntimeError` instead of pyo3's `PanicException`.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, PyErr>) -> Result<T, PyErr> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown error".into());
            Err(PyRuntimeError::new_err(format!("{what}: {msg}")))
        }
    }
}
