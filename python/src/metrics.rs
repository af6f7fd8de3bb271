//! PSNR and SSIM exactly as `scoreinv reconstruct` scores its cases (`scoreinv::metrics`,
//! identical to scikit-image's).
use crate::errors::{guarded, lib_err};
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use scoreinv::metrics::{self, SsimOptions};

/// PSNR in dB of `test` against `truth` (`[H, W]` or `[C, H, W]`) for `data_range`.
#[pyfunction]
#[pyo3(signature = (truth, test, data_range=1.0))]
pub fn psnr(py: Python<'_>, truth: PyTensor, test: PyTensor, data_range: f64) -> PyResult<f64> {
    let (a, b) = (truth.0, test.0);
    py.allow_threads(move || {
        guarded("psnr", || {
            metrics::psnr_tensor(&a, &b, data_range).map_err(lib_err)
        })
    })
}

/// SSIM (7×7 uniform window, as scikit-image's default; mean over channels of `[C, H, W]`).
#[pyfunction]
#[pyo3(signature = (truth, test, data_range=1.0))]
pub fn ssim(py: Python<'_>, truth: PyTensor, test: PyTensor, data_range: f64) -> PyResult<f64> {
    let (a, b) = (truth.0, test.0);
    py.allow_threads(move || {
        guarded("ssim", || {
            metrics::ssim_tensor(&a, &b, data_range, &SsimOptions::default()).map_err(lib_err)
        })
    })
}
