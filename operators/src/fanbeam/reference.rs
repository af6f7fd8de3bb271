//! [`FanBackend::Reference`](super::FanBackend::Reference): the ndarray/rayon kernels of
//! [`crate::reference::fan`] on CPU tensors, weights computed on the fly. The data is copied
//! out of and back into tensors, so autograd does not see it.
use ndarray::{Array3, ArrayView3};
use tch::{Kind, Tensor};

use super::{FbpPlan, Kernels};
use crate::geometry::FanGeometry;
use crate::radon::AngleSet;
use crate::reference::fan as kernels;
use crate::reference::radon::Real;
use crate::{OperatorError, Result};

pub(super) struct Reference {
    full: FanGeometry,
    meas: FanGeometry,
    kind: Kind,
}

impl Reference {
    pub fn new(full: &FanGeometry, meas: &FanGeometry, kind: Kind) -> Self {
        Reference {
            full: full.clone(),
            meas: meas.clone(),
            kind,
        }
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
        let g = set.pick(&self.full, &self.meas);
        self.with_reference(
            x,
            |v: ArrayView3<'_, f64>| kernels::forward(g, v),
            |v: ArrayView3<'_, f32>| kernels::forward(g, v),
        )
    }

    fn backproject(&self, set: AngleSet, y: &Tensor) -> Result<Tensor> {
        let g = set.pick(&self.full, &self.meas);
        self.with_reference(
            y,
            |v: ArrayView3<'_, f64>| kernels::adjoint(g, v),
            |v: ArrayView3<'_, f32>| kernels::adjoint(g, v),
        )
    }

    fn fbp(&self, set: AngleSet, y: &Tensor, plan: &FbpPlan) -> Result<Tensor> {
        let g = set.pick(&self.full, &self.meas);
        let p = &plan.plan;
        self.with_reference(
            y,
            |v: ArrayView3<'_, f64>| kernels::fbp(g, p, v),
            |v: ArrayView3<'_, f32>| kernels::fbp(g, p, v),
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
        .map_err(|e| OperatorError::Invalid(format!("fanbeam: internal shape error: {e}")))?;
    let out = f(view)?;
    let s: Vec<i64> = out.shape().iter().map(|&d| d as i64).collect();
    let flat = out
        .as_slice()
        .ok_or_else(|| OperatorError::Invalid("fanbeam: non-contiguous reference output".into()))?;
    Ok(Tensor::f_from_slice(flat)?.f_reshape(s)?)
}
