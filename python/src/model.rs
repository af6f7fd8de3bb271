//! `scoreinv.load_model(dir)`: a trained score model with its SDE and configuration.
use crate::convert::device;
use crate::errors::{guarded, lib_err};
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use scoreinv::guidance::{
    check_guidance_pair, cycled_labels, load_classifier_dir, ClassGuided, TimeDependentClassifier,
};
use scoreinv::models::ScoreModel;
use scoreinv::sampling::run::{build_sampler, sample_model, SamplerOptions};
use scoreinv::sde::{Sde, SdeConfig};
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Kind, Tensor};

/// A model directory loaded onto a device: `s(x, t) ≈ ∇ₓ log pₜ(x)` and its SDE.
#[pyclass(name = "Model", module = "scoreinv._scoreinv", frozen)]
pub struct PyModel {
    model: Arc<dyn ScoreModel>,
    config: Arc<scoreinv::models::model_dir::ModelDirConfig>,
    sde: Arc<dyn Sde>,
    sde_config: SdeConfig,
    config_json: String,
    dir: PathBuf,
    device: tch::Device,
}

#[pymethods]
impl PyModel {
    /// The model directory.
    #[getter]
    fn path(&self) -> String {
        self.dir.display().to_string()
    }
    /// `config.json` as JSON text.
    #[getter]
    fn config_json(&self) -> String {
        self.config_json.clone()
    }
    /// The SDE's settings as JSON text (`{"type": "ve", "sigma_min": …}`).
    #[getter]
    fn sde_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.sde_config)
            .map_err(|e| PyValueError::new_err(format!("SDE settings: {e}")))
    }
    /// `ve`, `vp` or `sub-vp`.
    #[getter]
    fn sde_kind(&self) -> &'static str {
        match self.sde.kind() {
            scoreinv::sde::SdeKind::Ve => "ve",
            scoreinv::sde::SdeKind::Vp => "vp",
            scoreinv::sde::SdeKind::SubVp => "sub-vp",
        }
    }
    /// The SDE's number of discretisation steps `N`.
    #[getter]
    fn n_steps(&self) -> usize {
        self.sde.n_steps()
    }
    /// The smallest time used when sampling.
    #[getter]
    fn sampling_eps(&self) -> f64 {
        self.sde.sampling_eps()
    }
    /// Per-sample shape `[C, H, W]` the model scores, if fixed.
    #[getter]
    fn sample_shape(&self) -> Option<Vec<i64>> {
        self.model.sample_shape()
    }
    /// Whether images of any size are scored (a patch model).
    #[getter]
    fn any_size(&self) -> bool {
        self.model.any_size()
    }
    /// The device the weights are on (`cpu`, `cuda:0`, …).
    #[getter]
    fn device(&self) -> String {
        match self.device {
            tch::Device::Cpu => "cpu".into(),
            tch::Device::Cuda(i) => format!("cuda:{i}"),
            tch::Device::Mps => "mps".into(),
            tch::Device::Vulkan => "vulkan".into(),
        }
    }
    /// `(m(t), s(t))`: `x(t) | x(0) ~ N(m(t) x(0), s(t)² I)`.
    fn mean_coeff_std(&self, t: f64) -> PyResult<(f64, f64)> {
        if !(t.is_finite() && (0.0..=self.sde.t_end()).contains(&t)) {
            return Err(PyValueError::new_err(format!(
                "t {t}: the SDE's time runs over [0, {}]",
                self.sde.t_end()
            )));
        }
        Ok(self.sde.mean_coeff_std(t))
    }
    /// `n` samples, in the raw units of the training data (as `samples.npy` of
    /// `scoreinv sample`), drawn as `scoreinv sample --seed SEED` draws them: the sampler
    /// `options_json` (the fields of `SamplerOptions`: sampler, steps, predictor, corrector,
    /// snr, n_corrector_steps, temperature, step_lr, ode_solver, rtol, atol, no_denoise) in
    /// batches of `batch`. With `classifier` (a time-dependent classifier directory), class-
    /// conditional samples by classifier guidance of scale `guidance_scale`, the `classes`
    /// (all when empty) cycled over the samples, all in one batch. Returns the samples and the
    /// network evaluations per sample.
    #[pyo3(signature = (n, options_json, batch, seed, progress=None, classifier=None, classes=Vec::new(), guidance_scale=1.0))]
    #[allow(clippy::too_many_arguments)]
    fn sample(
        &self,
        py: Python<'_>,
        n: usize,
        options_json: &str,
        batch: usize,
        seed: u64,
        progress: Option<PyObject>,
        classifier: Option<PathBuf>,
        classes: Vec<i64>,
        guidance_scale: f64,
    ) -> PyResult<(PyTensor, usize)> {
        let opts = sampler_options(options_json)?;
        let sampler = build_sampler(&opts, &self.sde_config).map_err(lib_err)?;
        let shape = self
            .model
            .sample_shape()
            .unwrap_or_else(|| self.config.data.shape.clone());
        if let Some(dir) = &classifier {
            if !dir.is_dir() {
                return Err(PyFileNotFoundError::new_err(format!(
                    "classifier directory {} does not exist",
                    dir.display()
                )));
            }
            if batch < n {
                return Err(PyValueError::new_err(format!(
                    "guided sampling draws all {n} samples in one batch; batch {batch} is smaller"
                )));
            }
        }
        let (model, config, dev) = (self.model.clone(), self.config.clone(), self.device);
        py.allow_threads(move || {
            guarded("sample", || {
                let mut last = 0u64;
                let mut report = |done: u64, total: u64| {
                    if let Some(cb) = progress.as_ref().filter(|_| done != last) {
                        last = done;
                        Python::with_gil(|py| {
                            if let Err(e) = cb.call1(py, ("sample", done, total)) {
                                e.print(py);
                            }
                        });
                    }
                };
                let run = match &classifier {
                    None => sample_model(
                        model.as_ref(),
                        sampler.as_ref(),
                        &shape,
                        n,
                        batch,
                        seed,
                        dev,
                        &mut report,
                    ),
                    Some(dir) => {
                        let (clf, ccfg) = load_classifier_dir(dir, dev).map_err(lib_err)?;
                        check_guidance_pair(&config, &ccfg, dir).map_err(lib_err)?;
                        let labels =
                            cycled_labels(&classes, clf.n_classes(), n).map_err(lib_err)?;
                        let guided = ClassGuided::new(
                            model.as_ref(),
                            &clf,
                            &Tensor::from_slice(&labels).to_device(dev),
                            guidance_scale,
                        )
                        .map_err(lib_err)?;
                        sample_model(
                            &guided,
                            sampler.as_ref(),
                            &shape,
                            n,
                            n,
                            seed,
                            dev,
                            &mut report,
                        )
                    }
                }
                .map_err(lib_err)?;
                let raw = config.data.denormalize(&run.x.to_kind(Kind::Float));
                Ok((PyTensor(raw), run.nfe / run.batches.max(1)))
            })
        })
    }
    /// `s(x, t)` for `x` `[B] ++ sample_shape` (float32, on the model's device) and `t` `[B]`
    /// in `(0, 1]`. Records autograd when `x` requires grad.
    fn score(&self, py: Python<'_>, x: PyTensor, t: PyTensor) -> PyResult<PyTensor> {
        let (x, t) = (x.0, t.0);
        check_input(self, &x, &t)?;
        let model = self.model.clone();
        py.allow_threads(move || guarded("score", || Ok(PyTensor(model.score(&x, &t)))))
    }
}

fn check_input(m: &PyModel, x: &Tensor, t: &Tensor) -> PyResult<()> {
    let s = x.size();
    let want = m.model.sample_shape();
    let ok = match &want {
        Some(w) if m.model.any_size() => s.len() == w.len() + 1 && s.get(1) == w.first(),
        Some(w) => s.len() == w.len() + 1 && s[1..] == w[..],
        None => !s.is_empty(),
    };
    if !ok {
        return Err(PyValueError::new_err(format!(
            "score: x has shape {s:?}, the model scores [B] + {:?}{}",
            want.unwrap_or_default(),
            if m.model.any_size() {
                " (any H, W)"
            } else {
                ""
            }
        )));
    }
    if x.kind() != Kind::Float {
        return Err(PyValueError::new_err(format!(
            "score: x has dtype {:?}; the model's weights are float32",
            x.kind()
        )));
    }
    if x.device() != m.device || t.device() != m.device {
        return Err(PyValueError::new_err(format!(
            "score: x is on {:?} and t on {:?}, the model on {:?}",
            x.device(),
            t.device(),
            m.device
        )));
    }
    if t.size() != [s[0]] || t.kind() != Kind::Float {
        return Err(PyValueError::new_err(format!(
            "score: t must be float32 of shape [{}] (one time per sample), got {:?} ({:?})",
            s[0],
            t.size(),
            t.kind()
        )));
    }
    let (lo, hi) = tch::no_grad(|| {
        let lo = t.min().double_value(&[]);
        let hi = t.max().double_value(&[]);
        (lo, hi)
    });
    if !(lo > 0.0 && hi <= m.sde.t_end()) {
        return Err(PyValueError::new_err(format!(
            "score: t spans [{lo}, {hi}], the SDE's times are in (0, {}]",
            m.sde.t_end()
        )));
    }
    Ok(())
}

/// Loads `dir` (config.json + model.safetensors) onto `device_name`.
#[pyfunction]
#[pyo3(signature = (dir, device_name="cpu"))]
pub fn load_model(py: Python<'_>, dir: PathBuf, device_name: &str) -> PyResult<PyModel> {
    let dev = device(device_name)?;
    if !dir.is_dir() {
        return Err(PyFileNotFoundError::new_err(format!(
            "model directory {} does not exist (expected a folder with config.json and \
             model.safetensors)",
            dir.display()
        )));
    }
    for f in ["config.json", "model.safetensors"] {
        if !dir.join(f).is_file() {
            return Err(PyFileNotFoundError::new_err(format!(
                "model directory {}: {f} is missing",
                dir.display()
            )));
        }
    }
    let d = dir.clone();
    let (model, sde_config, cfg) = py.allow_threads(move || {
        guarded("load_model", || {
            scoreinv::models::model_dir::load_model_dir(&d, dev).map_err(lib_err)
        })
    })?;
    let config_json = serde_json::to_string(&cfg)
        .map_err(|e| PyValueError::new_err(format!("model config: {e}")))?;
    let sde = sde_config.build().map_err(lib_err)?;
    Ok(PyModel {
        model: Arc::from(model),
        config: Arc::new(cfg),
        sde: Arc::from(sde),
        sde_config,
        config_json,
        dir,
        device: dev,
    })
}

/// `SamplerOptions` from JSON text (missing fields: the sampler's defaults).
fn sampler_options(text: &str) -> PyResult<SamplerOptions> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| PyValueError::new_err(format!("sampler options: {e}")))?;
    let o = v
        .as_object()
        .ok_or_else(|| PyValueError::new_err("sampler options: expected keyword arguments"))?;
    let field = |k: &str| o.get(k).filter(|v| !v.is_null());
    fn parse<T: serde::de::DeserializeOwned>(
        k: &str,
        v: Option<&serde_json::Value>,
    ) -> PyResult<Option<T>> {
        v.map(|v| {
            serde_json::from_value(v.clone())
                .map_err(|e| PyValueError::new_err(format!("sampler option `{k}` {v}: {e}")))
        })
        .transpose()
    }
    const KNOWN: [&str; 12] = [
        "sampler",
        "steps",
        "predictor",
        "corrector",
        "snr",
        "n_corrector_steps",
        "temperature",
        "step_lr",
        "ode_solver",
        "rtol",
        "atol",
        "no_denoise",
    ];
    if let Some(k) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(PyValueError::new_err(format!(
            "sampler option `{k}` is unknown; options: {}",
            KNOWN.join(", ")
        )));
    }
    let d = SamplerOptions::default();
    Ok(SamplerOptions {
        sampler: parse("sampler", field("sampler"))?.unwrap_or(d.sampler),
        steps: parse("steps", field("steps"))?,
        predictor: parse("predictor", field("predictor"))?,
        corrector: parse("corrector", field("corrector"))?,
        snr: parse("snr", field("snr"))?,
        n_corrector_steps: parse("n_corrector_steps", field("n_corrector_steps"))?,
        temperature: parse("temperature", field("temperature"))?,
        step_lr: parse("step_lr", field("step_lr"))?,
        ode_solver: parse("ode_solver", field("ode_solver"))?,
        rtol: parse("rtol", field("rtol"))?,
        atol: parse("atol", field("atol"))?,
        no_denoise: parse("no_denoise", field("no_denoise"))?.unwrap_or(false),
    })
}
