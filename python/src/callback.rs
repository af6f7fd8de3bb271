//! An operator defined in Python (a deepinv `LinearPhysics`, or any `A`, `Aᴴ`, `A⁺` given as
//! callables) as a `LinearOperator` of the library, so that its samplers run on it. Each call
//! takes the GIL for the duration of the Python function.
use crate::operators::PyOperator;
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use scoreinv_operators::{LinearOperator, OperatorError, Result};
use std::sync::Arc;
use tch::Tensor;

/// `A`, `Aᴴ` and `A⁺` as Python callables on batches.
struct CallbackOperator {
    name: String,
    input_shape: Vec<i64>,
    output_shape: Vec<i64>,
    forward: Py<PyAny>,
    adjoint: Py<PyAny>,
    pseudo_inverse: Option<Py<PyAny>>,
}

impl CallbackOperator {
    fn call(&self, f: &Py<PyAny>, what: &str, t: &Tensor, shape: &[i64]) -> Result<Tensor> {
        let out = Python::with_gil(|py| -> PyResult<Tensor> {
            let r = f.call1(py, (PyTensor(t.shallow_clone()),))?;
            Ok(r.extract::<PyTensor>(py)?.0)
        })
        .map_err(|e| OperatorError::Invalid(format!("{} {what}: {e}", self.name)))?;
        scoreinv_operators::check_batch_shape(&self.name, &format!("{what} result"), shape, &out)?;
        Ok(out)
    }
}

impl LinearOperator for CallbackOperator {
    fn name(&self) -> &str {
        &self.name
    }
    fn input_shape(&self) -> Vec<i64> {
        self.input_shape.clone()
    }
    fn output_shape(&self) -> Vec<i64> {
        self.output_shape.clone()
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.call(&self.forward, "A", x, &self.output_shape)
    }
    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.call(&self.adjoint, "A_adjoint", y, &self.input_shape)
    }
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        match &self.pseudo_inverse {
            Some(f) => self.call(f, "A_dagger", y, &self.input_shape),
            None => self.call(&self.adjoint, "A_adjoint", y, &self.input_shape),
        }
    }
}

/// An operator from Python callables (`pseudo_inverse` defaults to the adjoint) on batches
/// `[B] ++ input_shape` → `[B] ++ output_shape`.
#[pyfunction]
#[pyo3(signature = (name, input_shape, output_shape, forward, adjoint, pseudo_inverse=None))]
pub fn callback_operator(
    name: String,
    input_shape: Vec<i64>,
    output_shape: Vec<i64>,
    forward: Py<PyAny>,
    adjoint: Py<PyAny>,
    pseudo_inverse: Option<Py<PyAny>>,
) -> PyOperator {
    let description = format!("{name} (Python: {input_shape:?} → {output_shape:?})");
    PyOperator {
        op: Arc::new(CallbackOperator {
            name,
            input_shape,
            output_shape,
            forward,
            adjoint,
            pseudo_inverse,
        }),
        description,
    }
}
