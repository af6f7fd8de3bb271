//! [`RadonBackend::Reference`](super::RadonBackend::Reference): the ndarray/rayon kernels of
//! [`crate::reference::radon`] on CPU tensors. No tables: interpolation weights are computed on
//! the fly. The data is copied out of and back into tensors, so autograd does not see it.
use ndarray::{Array3, ArrayView3};
use tch::{Kind, Tensor};

use super::{AngleSet, Kernels};
use crate::fbp::FbpFilter;
use crate::geometry::ParallelGeometry;
use crate::reference::radon::{self as kernels, Real};
use crate::{OperatorError, Result};

pub(super) struct Reference {
    full: ParallelGeometry,
    meas: ParallelGeometry,
    kind: Kind,
}

impl Reference {
    pub fn new(full: &ParallelGeometry, meas: &ParallelGeometry, kind: Kind) -> Self {
        Reference {
            full: full.clone(),
            meas: meas.clone(),
            kind,
        }
    }

    fn geometry(&self, set: AngleSet) -> &ParallelGeometry {
        set.pick(&self.full, &self.meas)
    }

    /// Runs a reference kernel on a CPU tensor `[m, d1, d2]` of this operator's kind.
    fn with_reference(
        &self,
        t: &Tensor,
        f64_fn: impl Fn(ArrayView3<'_, f64>) -> Result<Array3<f64>>,
        f32_fn: impl Fn(ArrayView3<'_, f32>) -> Result<Array3<f32>>,
    ) -> Result<Tensor> {
        match self.kind {
            Kind::Double => run_reference::<f64>(t, f64_fn),
            _ => run_reference::<f32>(t, f32_fn),
        }
    }
}

impl Kernels for Reference {
    fn project(&self, set: AngleSet, x: &Tensor) -> Result<Tensor> {
        let geom = self.geometry(set);
        self.with_reference(
            x,
            |v: ArrayView3<'_, f64>| kernels::forward(geom, v),
            |v: ArrayView3<'_, f32>| kernels::forward(geom, v),
        )
    }

    fn backproject(&self, set: AngleSet, y: &Tensor) -> Result<Tensor> {
        let geom = self.geometry(set);
        self.with_reference(
            y,
            |v: ArrayView3<'_, f64>| kernels::adjoint(geom, v),
            |v: ArrayView3<'_, f32>| kernels::adjoint(geom, v),
        )
    }

    fn fbp(&self, set: AngleSet, y: &Tensor, filter: FbpFilter) -> Result<Tensor> {
        let geom = self.geometry(set);
        self.with_reference(
            y,
            |v: ArrayView3<'_, f64>| kernels::fbp(geom, v, filter),
            |v: ArrayView3<'_, f32>| kernels::fbp(geom, v, filter),
        )
    }

    fn records_autograd(&self) -> bool {
        false
    }
}

fn run_reference<T: Real>(
    t: &Tensor,
    f: impl Fn(ArrayView3<'_, T>) -> Result<Array3<T>>,
) -> Result<Tensor> {
    let t = t.f_contiguous()?;
    let shape = t.size();
    let numel = t.numel();
    let mut data = vec![T::zero(); numel];
    t.f_copy_data(&mut data, numel)?;
    let dims = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
    let view = ArrayView3::from_shape(dims, &data)
        .map_err(|e| OperatorError::Invalid(format!("radon: internal shape error: {e}")))?;
    let out = f(view)?;
    let s: Vec<i64> = out.shape().iter().map(|&d| d as i64).collect();
    let flat = out
        .as_slice()
        .ok_or_else(|| OperatorError::Invalid("radon: non-contiguous reference output".into()))?;
    Ok(Tensor::f_from_slice(flat)?.f_reshape(s)?)
}
