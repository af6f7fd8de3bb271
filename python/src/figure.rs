//! The command line's labelled comparison figure (`scoreinv::io::figure::comparison`): truth,
//! each method captioned with its PSNR / SSIM, and the |error| × k of the last method, written
//! as a PNG, atomically.
use crate::errors::{guarded, lib_err};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use scoreinv::io::figure::{comparison, metrics_caption, save_png, DisplayWindow, FigureConfig};
use scoreinv::io::tensor_to_array3;
use scoreinv::metrics::{self, SsimOptions};
use std::path::PathBuf;

/// Writes the comparison figure of `images` (named by `names`, `[C, H, W]` in [0, 1]) against
/// `truth` (or none) to `path`; `window` = `(lo, hi, units)` states the display window.
#[pyfunction]
#[pyo3(signature = (path, truth, names, images, error_gain=4.0, window=None))]
pub fn save_figure(
    py: Python<'_>,
    path: PathBuf,
    truth: Option<PyTensor>,
    names: Vec<String>,
    images: Vec<PyTensor>,
    error_gain: f32,
    window: Option<(f64, f64, String)>,
) -> PyResult<()> {
    if names.is_empty() || names.len() != images.len() {
        return Err(PyValueError::new_err(format!(
            "save_figure: {} names for {} images (give one name per image, at least one)",
            names.len(),
            images.len()
        )));
    }
    if !(error_gain.is_finite() && error_gain > 0.0) {
        return Err(PyValueError::new_err(format!(
            "save_figure: error_gain must be a positive number, got {error_gain}"
        )));
    }
    let truth = truth.map(|t| t.0);
    let images: Vec<tch::Tensor> = images.into_iter().map(|t| t.0).collect();
    py.allow_threads(move || {
        guarded("save_figure", || {
            let t = truth
                .as_ref()
                .map(|t| tensor_to_array3(t, "truth"))
                .transpose()
                .map_err(lib_err)?;
            let mut methods = Vec::new();
            for (name, img) in names.iter().zip(&images) {
                let a = tensor_to_array3(img, name).map_err(lib_err)?;
                let caption = match &truth {
                    Some(tt) => Some(metrics_caption(
                        metrics::psnr_tensor(tt, img, 1.0).map_err(lib_err)?,
                        metrics::ssim_tensor(tt, img, 1.0, &SsimOptions::default())
                            .map_err(lib_err)?,
                    )),
                    None => None,
                };
                methods.push((name.clone(), a, caption));
            }
            let cfg = FigureConfig {
                error_gain,
                window: window.map(|(lo, hi, units)| DisplayWindow { lo, hi, units }),
                ..Default::default()
            };
            let figure = comparison(t.as_ref(), &methods, &cfg).map_err(lib_err)?;
            save_png(&path, &figure).map_err(lib_err)
        })
    })
}
