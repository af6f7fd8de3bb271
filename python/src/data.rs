//! `scoreinv.ground_truth(spec)`: the images `scoreinv reconstruct --ground-truth SPEC` reads
//! (files, folders, DICOM series, `phantom:shepp-logan`, `phantom:ellipses:A..B`,
//! `fashion-mnist:A..B`, …), resampled and windowed as the command line does.
use crate::errors::{guarded, lib_err};
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::data::ct_slices::HuWindow;

/// `(name, image [C, H, W] float32 in [0, 1])` for every case of `spec`.
#[pyfunction]
#[pyo3(signature = (spec, size=None, window=(-1000.0, 1500.0)))]
pub fn ground_truth(
    py: Python<'_>,
    spec: String,
    size: Option<i64>,
    window: (f32, f32),
) -> PyResult<Vec<(String, PyTensor)>> {
    if let Some(s) = size.filter(|&s| s < 1) {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "size {s}: must be at least 1"
        )));
    }
    let opts = CaseOptions {
        size,
        window: HuWindow {
            lo: window.0,
            hi: window.1,
        },
        ..CaseOptions::default()
    };
    py.allow_threads(move || {
        guarded("ground_truth", || {
            let cases = load_cases(&spec, &opts).map_err(lib_err)?;
            Ok(cases
                .into_iter()
                .map(|c| (c.name, PyTensor(c.truth)))
                .collect())
        })
    })
}
