//! `scoreinv.ops`: the forward operators of `scoreinv-operators` as one Python class,
//! [`PyOperator`], built by one function per operator family. Every call takes and returns
//! torch tensors without copying them (the very `at::Tensor` crosses the boundary) and runs
//! with the GIL released.
use crate::convert::{device, matrix_f64, real_kind};
use crate::errors::{guarded, op_err};
use ndarray::Array2;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use scoreinv_operators::{
    Blur, Boundary, CoilMaps, Decomposed, FanBackend, FanBeam, FanGeometryConfig, FbpFilter,
    ImageDomain, InpaintMask, LinearOperator, MaskSpec, Masking, MriFourier, OperatorError,
    ParallelBeamRadon, RadonBackend, SamplingMask, ScanWeighting, SenseMri,
};
use std::path::Path;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// A linear operator `A` on batches `[B] ++ input_shape` (see `scoreinv_operators::LinearOperator`).
#[pyclass(name = "Operator", module = "scoreinv._scoreinv", frozen)]
pub struct PyOperator {
    pub op: Arc<dyn LinearOperator>,
    /// What the Python layer shows: the operator family and its settings.
    pub description: String,
}

impl PyOperator {
    fn new(op: impl LinearOperator + 'static, description: String) -> Self {
        Self {
            op: Arc::new(op),
            description,
        }
    }

    /// Runs `f` on the operator with the GIL released; errors become Python exceptions.
    fn call<F>(&self, py: Python<'_>, what: &'static str, t: PyTensor, f: F) -> PyResult<PyTensor>
    where
        F: FnOnce(&dyn LinearOperator, &Tensor) -> scoreinv_operators::Result<Tensor> + Send,
    {
        let op = self.op.clone();
        let t = t.0;
        py.allow_threads(move || guarded(what, || f(op.as_ref(), &t).map(PyTensor).map_err(op_err)))
    }

    fn decomposed_call(
        &self,
        py: Python<'_>,
        what: &'static str,
        t: PyTensor,
        f: fn(&dyn Decomposed, &Tensor) -> scoreinv_operators::Result<Tensor>,
    ) -> PyResult<PyTensor> {
        self.call(py, what, t, move |op, t| match op.as_decomposed() {
            Some(d) => f(d, t),
            None => Err(OperatorError::Invalid(format!(
                "{}: {what} needs the decomposition A = P(Λ)·T, which this operator lacks",
                op.name()
            ))),
        })
    }
}

#[pymethods]
impl PyOperator {
    /// Short name, e.g. `radon`.
    #[getter]
    fn name(&self) -> String {
        self.op.name().to_string()
    }
    /// Per-sample input shape `[C, H, W]`.
    #[getter]
    fn input_shape(&self) -> Vec<i64> {
        self.op.input_shape()
    }
    /// Per-sample measurement shape.
    #[getter]
    fn output_shape(&self) -> Vec<i64> {
        self.op.output_shape()
    }
    /// Whether the operator has the decomposition `A = P(Λ)·T` of the projection sampler.
    #[getter]
    fn has_decomposition(&self) -> bool {
        self.op.as_decomposed().is_some()
    }
    #[getter]
    fn description(&self) -> String {
        self.description.clone()
    }
    /// `A x`.
    fn forward(&self, py: Python<'_>, x: PyTensor) -> PyResult<PyTensor> {
        self.call(py, "forward", x, |op, x| op.forward(x))
    }
    /// `Aᴴ y`, the exact adjoint.
    fn adjoint(&self, py: Python<'_>, y: PyTensor) -> PyResult<PyTensor> {
        self.call(py, "adjoint", y, |op, y| op.adjoint(y))
    }
    /// `A⁺ y` (FBP for CT, zero-filled for MRI, Wiener for blur).
    fn pseudo_inverse(&self, py: Python<'_>, y: PyTensor) -> PyResult<PyTensor> {
        self.call(py, "pseudo_inverse", y, |op, y| op.pseudo_inverse(y))
    }
    /// `T x`.
    fn transform(&self, py: Python<'_>, x: PyTensor) -> PyResult<PyTensor> {
        self.decomposed_call(py, "transform", x, |d, x| d.transform(x))
    }
    /// `T⁻¹ z`.
    fn inverse_transform(&self, py: Python<'_>, z: PyTensor) -> PyResult<PyTensor> {
        self.decomposed_call(py, "inverse_transform", z, |d, z| d.inverse_transform(z))
    }
    /// `P(Λ) z`.
    fn subsample(&self, py: Python<'_>, z: PyTensor) -> PyResult<PyTensor> {
        self.decomposed_call(py, "subsample", z, |d, z| d.subsample(z))
    }
    /// The measurement placed in the transformed domain.
    fn embed(&self, py: Python<'_>, y: PyTensor) -> PyResult<PyTensor> {
        self.decomposed_call(py, "embed", y, |d, y| d.embed(y))
    }
    /// `Λ` on `device`.
    fn mask(&self, device_name: &str) -> PyResult<PyTensor> {
        let dev = device(device_name)?;
        match self.op.as_decomposed() {
            Some(d) => guarded("mask", || Ok(PyTensor(d.mask(dev)))),
            None => Err(PyValueError::new_err(format!(
                "{}: no decomposition A = P(Λ)·T, hence no mask Λ",
                self.op.name()
            ))),
        }
    }
    /// Seconds per `A x` over `reps` calls made inside Rust (after one warm-up call), with the
    /// GIL released: the reference the Python call overhead is measured against.
    fn time_forward(&self, py: Python<'_>, x: PyTensor, reps: usize) -> PyResult<f64> {
        let op = self.op.clone();
        let x = x.0;
        py.allow_threads(move || {
            guarded("time_forward", || {
                let sync = |t: &Tensor| {
                    if let Device::Cuda(i) = t.device() {
                        tch::Cuda::synchronize(i as i64);
                    }
                };
                sync(&op.forward(&x).map_err(op_err)?);
                let t0 = std::time::Instant::now();
                for _ in 0..reps.max(1) {
                    sync(&op.forward(&x).map_err(op_err)?);
                }
                Ok(t0.elapsed().as_secs_f64() / reps.max(1) as f64)
            })
        })
    }
    fn __repr__(&self) -> String {
        self.description.clone()
    }
}

fn parse<T: std::str::FromStr>(what: &str, v: &str) -> PyResult<T>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>()
        .map_err(|e| PyValueError::new_err(format!("{what} '{v}': {e}")))
}

fn channels_of(c: i64) -> PyResult<i64> {
    if c < 1 {
        return Err(PyValueError::new_err(format!(
            "channels must be at least 1, got {c}"
        )));
    }
    Ok(c)
}

/// Parallel-beam Radon transform of `size × size` images: at `angles_deg` when given, else
/// `views` of `n_angles` uniform angles over `[0°, 180°)` (all of them without `views`).
#[pyfunction]
#[pyo3(signature = (size, n_angles, views=None, angles_deg=None, filter="ramp", channels=1, backend="auto", dtype="float32", device_name="cpu"))]
#[allow(clippy::too_many_arguments)]
pub fn radon(
    py: Python<'_>,
    size: usize,
    n_angles: usize,
    views: Option<usize>,
    angles_deg: Option<Vec<f64>>,
    filter: &str,
    channels: i64,
    backend: &str,
    dtype: &str,
    device_name: &str,
) -> PyResult<PyOperator> {
    let (kind, dev) = (real_kind(dtype)?, device(device_name)?);
    let filter: FbpFilter = parse("filter", filter)?;
    let backend = match backend {
        "auto" => RadonBackend::Auto,
        "reference" => RadonBackend::Reference,
        "tensor-ops" => RadonBackend::TensorOps,
        "sparse" => RadonBackend::Sparse,
        other => {
            return Err(PyValueError::new_err(format!(
                "backend '{other}': expected auto, reference, tensor-ops or sparse"
            )))
        }
    };
    let channels = channels_of(channels)?;
    if let Some(a) = &angles_deg {
        if a.iter().any(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(
                "angles contain NaN or infinite values",
            ));
        }
    }
    let (op, what) = py.allow_threads(move || {
        guarded("Radon", || {
            let (op, what) = match (angles_deg, views) {
                (Some(_), Some(_)) => {
                    return Err(PyValueError::new_err(
                        "Radon: give the angles in degrees or a number of views, not both",
                    ))
                }
                (Some(a), None) => {
                    let what = format!("{} angles", a.len());
                    (ParallelBeamRadon::new(size, a, kind, dev), what)
                }
                (None, Some(v)) => (
                    ParallelBeamRadon::sparse_view(size, v, n_angles, kind, dev),
                    format!("{v} of {n_angles} views"),
                ),
                (None, None) => (
                    ParallelBeamRadon::full_view(size, n_angles, kind, dev),
                    format!("{n_angles} views"),
                ),
            };
            let op = op.map_err(op_err)?.with_filter(filter);
            let op = op.with_channels(channels).map_err(op_err)?;
            let op = if backend == RadonBackend::Auto {
                op
            } else {
                op.with_backend(backend).map_err(op_err)?
            };
            Ok((op, what))
        })
    })?;
    let d = format!("Radon({size}×{size}, {what}, filter {filter}, {dev:?})");
    Ok(PyOperator::new(op, d))
}

/// Fan-beam CT from a geometry given as JSON text (`geometry_json`) or read from a TOML or
/// JSON file (`geometry_path`): every angle, or `views` of them.
#[pyfunction]
#[pyo3(signature = (geometry_json=None, geometry_path=None, views=None, filter="ramp", weighting="auto", channels=1, backend="auto", dtype="float32", device_name="cpu"))]
#[allow(clippy::too_many_arguments)]
pub fn fanbeam(
    py: Python<'_>,
    geometry_json: Option<&str>,
    geometry_path: Option<&str>,
    views: Option<usize>,
    filter: &str,
    weighting: &str,
    channels: i64,
    backend: &str,
    dtype: &str,
    device_name: &str,
) -> PyResult<PyOperator> {
    let (kind, dev) = (real_kind(dtype)?, device(device_name)?);
    let geometry: FanGeometryConfig = match (geometry_json, geometry_path) {
        (Some(j), None) => serde_json::from_str(j)
            .map_err(|e| PyValueError::new_err(format!("fan-beam geometry: {e}")))?,
        (None, Some(p)) => read_geometry(Path::new(p))?,
        _ => {
            return Err(PyValueError::new_err(
                "FanBeam: give the geometry as a dict or a TOML/JSON file, one of them",
            ))
        }
    };
    let filter: FbpFilter = parse("filter", filter)?;
    let weighting: ScanWeighting =
        serde_json::from_value(serde_json::json!(weighting)).map_err(|_| {
            PyValueError::new_err(format!(
                "weighting '{weighting}': expected auto, full-scan or parker"
            ))
        })?;
    let backend = match backend {
        "auto" => FanBackend::Auto,
        "reference" => FanBackend::Reference,
        "sparse" => FanBackend::Sparse,
        other => {
            return Err(PyValueError::new_err(format!(
                "backend '{other}': expected auto, reference or sparse"
            )))
        }
    };
    let channels = channels_of(channels)?;
    let n = geometry.image_size;
    let n_full = geometry.angles_deg.len();
    let op = py.allow_threads(move || {
        guarded("FanBeam", || {
            // The backend is chosen at construction, so that a `reference` operator never
            // builds the `auto` one's sparse matrices first.
            let kept = match views {
                Some(v) => FanBeam::sparse_view_kept(&geometry.angles_deg, v),
                None => Ok((0..geometry.angles_deg.len()).collect()),
            }
            .map_err(op_err)?;
            FanBeam::subset_with_backend(geometry, kept, kind, dev, backend)
                .and_then(|o| o.with_filter(filter))
                .and_then(|o| o.with_scan_weighting(weighting))
                .and_then(|o| o.with_channels(channels))
                .map_err(op_err)
        })
    })?;
    let kept = op.kept_indices().len();
    let d = format!("FanBeam({n}×{n}, {kept} of {n_full} views, filter {filter}, {dev:?})");
    Ok(PyOperator::new(op, d))
}

/// A fan-beam geometry file: TOML (`.toml`) or JSON, with the fields of `FanGeometryConfig`.
fn read_geometry(path: &Path) -> PyResult<FanGeometryConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let msg = format!("fan-beam geometry {}: {e}", path.display());
        if e.kind() == std::io::ErrorKind::NotFound {
            PyFileNotFoundError::new_err(msg)
        } else {
            pyo3::exceptions::PyOSError::new_err(msg)
        }
    })?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let parsed = if is_toml {
        toml::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| PyValueError::new_err(format!("{}: {e}", path.display())))
}

fn domain(name: &str) -> PyResult<ImageDomain> {
    match name {
        "real" => Ok(ImageDomain::Real),
        "complex" => Ok(ImageDomain::Complex),
        other => Err(PyValueError::new_err(format!(
            "domain '{other}': expected real or complex"
        ))),
    }
}

/// A k-space sampling mask: a spec (`random:4`, `equispaced:4`, `gaussian:8`, `poisson:4`,
/// `radial:32`, …) built for `[h, w]` with `seed`, or a 0/1 array `[h, w]`.
fn sampling_mask(
    spec: Option<&str>,
    array: Option<PyTensor>,
    h: usize,
    w: usize,
    seed: u64,
) -> PyResult<SamplingMask> {
    match (spec, array) {
        (Some(s), None) => {
            let spec: MaskSpec = s.parse().map_err(op_err)?;
            spec.build(h, w, seed).map_err(op_err)
        }
        (None, Some(a)) => {
            let (mh, mw, v) = matrix_f64(&a, "mask")?;
            if (mh, mw) != (h, w) {
                return Err(PyValueError::new_err(format!(
                    "mask: shape [{mh}, {mw}], expected [{h}, {w}] (the image size)"
                )));
            }
            let arr = Array2::from_shape_vec((h, w), v.iter().map(|&x| x as f32).collect())
                .map_err(|e| PyValueError::new_err(format!("mask: {e}")))?;
            SamplingMask::from_array(arr, "user mask").map_err(op_err)
        }
        _ => Err(PyValueError::new_err(
            "mask: give a mask spec (e.g. 'random:4') or a 0/1 array, one of them",
        )),
    }
}

/// Single-coil undersampled Fourier operator `A = M F` on `[channels, h, w]` images.
#[pyfunction]
#[pyo3(signature = (h, w, mask_spec=None, mask=None, channels=1, seed=0, domain_name="real"))]
pub fn mri_fourier(
    h: usize,
    w: usize,
    mask_spec: Option<&str>,
    mask: Option<PyTensor>,
    channels: usize,
    seed: u64,
    domain_name: &str,
) -> PyResult<PyOperator> {
    let dom = domain(domain_name)?;
    guarded("MriFourier", || {
        let m = sampling_mask(mask_spec, mask, h, w, seed)?;
        let d = format!(
            "MriFourier({h}×{w}, {}, acceleration {:.2}, {domain_name} images)",
            m.description(),
            m.acceleration()
        );
        let op = MriFourier::with_domain(m, channels, dom).map_err(op_err)?;
        Ok(PyOperator::new(op, d))
    })
}

/// Multi-coil SENSE `A = M F S` with coil maps `maps` (complex `[coils, h, w]`).
#[pyfunction]
#[pyo3(signature = (maps, mask_spec=None, mask=None, seed=0, domain_name="real"))]
pub fn sense_mri(
    maps: PyTensor,
    mask_spec: Option<&str>,
    mask: Option<PyTensor>,
    seed: u64,
    domain_name: &str,
) -> PyResult<PyOperator> {
    let dom = domain(domain_name)?;
    guarded("SenseMri", || {
        let s = maps.size();
        if s.len() != 3 || !maps.is_complex() {
            return Err(PyValueError::new_err(format!(
                "coil maps: expected a complex tensor [coils, H, W], got shape {s:?} ({:?})",
                maps.kind()
            )));
        }
        let cm = CoilMaps::from_tensor(&maps.to_device(Device::Cpu)).map_err(op_err)?;
        let (coils, h, w) = cm.dim();
        let m = sampling_mask(mask_spec, mask, h, w, seed)?;
        let d = format!(
            "SenseMri({coils} coils, {h}×{w}, {}, acceleration {:.2})",
            m.description(),
            m.acceleration()
        );
        let op = SenseMri::with_domain(cm, m, dom).map_err(op_err)?;
        Ok(PyOperator::new(op, d))
    })
}

/// A k-space mask as a `[h, w]` float32 tensor (1 = sampled), with its true acceleration.
#[pyfunction]
#[pyo3(signature = (spec, h, w, seed=0))]
pub fn mri_mask(spec: &str, h: usize, w: usize, seed: u64) -> PyResult<(PyTensor, f64)> {
    guarded("mri_mask", || {
        let m = sampling_mask(Some(spec), None, h, w, seed)?;
        let t = m.to_tensor(Kind::Float, Device::Cpu).map_err(op_err)?;
        Ok((PyTensor(t), m.acceleration()))
    })
}

/// Inpainting `y = Λ ⊙ x` with a mask spec (`box`, `box:S`, `random:F`, `half:left`,
/// `strokes`, …) built for `[h, w]` with `seed`, or a 0/1 array `[h, w]`.
#[pyfunction]
#[pyo3(signature = (h, w, mask_spec=None, mask=None, channels=1, seed=0))]
pub fn inpainting(
    h: usize,
    w: usize,
    mask_spec: Option<&str>,
    mask: Option<PyTensor>,
    channels: usize,
    seed: u64,
) -> PyResult<PyOperator> {
    guarded("Inpainting", || {
        let (arr, what) = match (mask_spec, mask) {
            (Some(s), None) => {
                let spec: InpaintMask = s.parse().map_err(op_err)?;
                (spec.build(h, w, seed).map_err(op_err)?, s.to_string())
            }
            (None, Some(a)) => {
                let (mh, mw, v) = matrix_f64(&a, "mask")?;
                if (mh, mw) != (h, w) {
                    return Err(PyValueError::new_err(format!(
                        "mask: shape [{mh}, {mw}], expected [{h}, {w}] (the image size)"
                    )));
                }
                let arr = Array2::from_shape_vec((h, w), v.iter().map(|&x| x as f32).collect())
                    .map_err(|e| PyValueError::new_err(format!("mask: {e}")))?;
                (arr, "user mask".to_string())
            }
            _ => {
                return Err(PyValueError::new_err(
                    "mask: give a mask spec (e.g. 'box') or a 0/1 array, one of them",
                ))
            }
        };
        let op = Masking::from_2d(arr, channels).map_err(op_err)?;
        let d = format!(
            "Inpainting({channels}×{h}×{w}, {what}, {:.1}% observed)",
            100.0 * op.observed_fraction()
        );
        Ok(PyOperator::new(op, d))
    })
}

/// Colorization: the gray channel of the orthonormal colour decoupling of `[3, h, w]` images.
#[pyfunction]
pub fn grayscale(h: usize, w: usize) -> PyResult<PyOperator> {
    let op = scoreinv_operators::Grayscale::new(h, w).map_err(op_err)?;
    Ok(PyOperator::new(op, format!("Grayscale(3×{h}×{w})")))
}

/// Blur of `[channels, h, w]` images by a Gaussian of `sigma` pixels or by a PSF `[kh, kw]`,
/// with `circular` or `zero` boundary; `epsilon` regularises the pseudo-inverse.
#[pyfunction]
#[pyo3(signature = (h, w, sigma=None, psf=None, boundary="circular", channels=1, epsilon=None))]
pub fn blur(
    h: usize,
    w: usize,
    sigma: Option<f64>,
    psf: Option<PyTensor>,
    boundary: &str,
    channels: usize,
    epsilon: Option<f64>,
) -> PyResult<PyOperator> {
    let b: Boundary = parse("boundary", boundary)?;
    guarded("Blur", || {
        let (op, what) = match (sigma, psf) {
            (Some(s), None) => (
                Blur::gaussian(s, b, channels, h, w),
                format!("Gaussian σ {s} px"),
            ),
            (None, Some(p)) => {
                let (kh, kw, v) = matrix_f64(&p, "psf")?;
                let arr = Array2::from_shape_vec((kh, kw), v)
                    .map_err(|e| PyValueError::new_err(format!("psf: {e}")))?;
                (
                    Blur::from_psf(arr, b, channels, h, w),
                    format!("PSF {kh}×{kw}"),
                )
            }
            _ => {
                return Err(PyValueError::new_err(
                    "Blur: give sigma (pixels) or a psf array, one of them",
                ))
            }
        };
        let mut op = op.map_err(op_err)?;
        if let Some(e) = epsilon {
            op = op.with_epsilon(e).map_err(op_err)?;
        }
        let d = format!("Blur({channels}×{h}×{w}, {what}, {boundary} boundary)");
        Ok(PyOperator::new(op, d))
    })
}
