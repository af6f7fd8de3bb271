//! `scoreinv.Task` and `scoreinv.reconstruct`: a task of the `TASKS` registry with its
//! settings, the operator it builds for an image shape, simulated measurements and
//! reconstructions with the methods of `scoreinv reconstruct` (baselines and score-based
//! samplers), seeded as the command line seeds them so that the results are the same bits.
use crate::convert::device;
use crate::errors::{guarded, lib_err};
use crate::operators::PyOperator;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_tch::PyTensor;
use scoreinv::inverse::study::{self, Method, Progress, StudyConfig};
use scoreinv::inverse::tasks::{self, Task, TaskNoise, TaskOperator};
use std::sync::{Arc, Mutex};
use tch::{Device, Tensor};

/// A task (`ct`, `mri`, `inpaint`, `colorize`, `deblur`) for images of one shape `[C, H, W]`.
#[pyclass(name = "Task", module = "scoreinv._scoreinv", frozen)]
pub struct PyTask {
    task: Arc<dyn Task>,
    shape: Vec<i64>,
    seed: u64,
    /// The operator built on each device used so far.
    ops: Mutex<Vec<(Device, Arc<dyn TaskOperator>)>>,
}

impl PyTask {
    fn operator_on(&self, dev: Device) -> PyResult<Arc<dyn TaskOperator>> {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, op)) = ops.iter().find(|(d, _)| *d == dev) {
            return Ok(op.clone());
        }
        let op: Arc<dyn TaskOperator> = Arc::from(
            self.task
                .operator(&self.shape, self.seed, dev)
                .map_err(lib_err)?,
        );
        ops.push((dev, op.clone()));
        Ok(op)
    }
}

/// The task `name` with `settings_json` (its settings struct's fields; missing ones take the
/// published defaults) for images `shape`; `seed` seeds random masks and coil maps.
#[pyfunction]
#[pyo3(signature = (name, settings_json, shape, seed=0))]
pub fn task(name: &str, settings_json: &str, shape: Vec<i64>, seed: i64) -> PyResult<PyTask> {
    let mut v: serde_json::Value = serde_json::from_str(settings_json)
        .map_err(|e| PyValueError::new_err(format!("{name} settings: {e}")))?;
    let Some(o) = v.as_object_mut() else {
        return Err(PyValueError::new_err(format!(
            "{name} settings: expected keyword arguments (a JSON object)"
        )));
    };
    let given: Vec<String> = o
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    o.insert("task".into(), serde_json::json!(name));
    if seed < 0 {
        return Err(PyValueError::new_err(format!(
            "seed {seed}: must be non-negative"
        )));
    }
    let t = tasks::from_json(v).map_err(lib_err)?;
    // The settings structs take missing fields from their defaults and ignore unknown ones: a
    // misspelt setting is refused here rather than silently replaced by its default.
    let known = t.settings();
    if let Some(k) = given.iter().find(|k| known.get(k.as_str()).is_none()) {
        let fields: Vec<&String> = known
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        return Err(PyValueError::new_err(format!(
            "{name} settings: unknown field '{k}'; fields: {}",
            fields
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    t.check_image("image", &shape).map_err(lib_err)?;
    Ok(PyTask {
        task: Arc::from(t),
        shape,
        seed: seed as u64,
        ops: Mutex::new(Vec::new()),
    })
}

#[pymethods]
impl PyTask {
    #[getter]
    fn name(&self) -> &'static str {
        self.task.name()
    }
    /// The task's settings with every default filled in, as JSON text.
    #[getter]
    fn settings_json(&self) -> String {
        self.task.settings().to_string()
    }
    #[getter]
    fn shape(&self) -> Vec<i64> {
        self.shape.clone()
    }
    #[getter]
    fn seed(&self) -> u64 {
        self.seed
    }
    /// The task's baselines (the first ones are the default methods).
    #[getter]
    fn baselines(&self) -> Vec<&'static str> {
        self.task.baselines().iter().map(|(n, _)| *n).collect()
    }
    /// The operator `A` on `device_name`, with one line describing it.
    #[pyo3(signature = (device_name="cpu"))]
    fn operator(&self, device_name: &str) -> PyResult<PyOperator> {
        let op = self.operator_on(device(device_name)?)?;
        Ok(PyOperator {
            op: op.op(),
            description: op.describe(),
        })
    }
    /// `y = A x + n` for one image `x` `[C, H, W]`, with the task's default noise when
    /// `noise` is None; libtorch's global generator is seeded as `scoreinv simulate --seed`
    /// seeds it (so is torch's: they are the same generator).
    #[pyo3(signature = (x, noise=None, seed=None))]
    fn simulate(
        &self,
        py: Python<'_>,
        x: PyTensor,
        noise: Option<String>,
        seed: Option<i64>,
    ) -> PyResult<PyTensor> {
        let x = x.0;
        if x.size() != self.shape {
            return Err(PyValueError::new_err(format!(
                "simulate: x has shape {:?}, the task's images are {:?}",
                x.size(),
                self.shape
            )));
        }
        check_finite(&x, "simulate: x")?;
        let op = self.operator_on(x.device())?;
        let spec = noise.unwrap_or_else(|| self.task.default_noise().to_string());
        let noise = TaskNoise::parse(&spec, self.task.as_ref()).map_err(lib_err)?;
        let seed = seed.unwrap_or(self.seed as i64);
        if seed < 0 {
            return Err(PyValueError::new_err(format!(
                "seed {seed}: must be non-negative"
            )));
        }
        py.allow_threads(move || {
            guarded("simulate", || {
                tch::manual_seed(study::case_seed(seed as u64, 0));
                tasks::simulate(op.as_ref(), &noise, &x)
                    .map(PyTensor)
                    .map_err(lib_err)
            })
        })
    }

    /// Reconstructions of the measurement batch `y` `[B] ++ output_shape` by each of `methods`
    /// (empty: the task's baselines), with the score settings `score_json` (the fields of
    /// `ScoreSettings`: model, steps, samples, snr, lambda, …), seeded as
    /// `scoreinv reconstruct --seed` seeds a case. With `normalise`, `y` is divided by the peak
    /// of `|A⁺ y|` first and the results multiplied back (a measurement of unknown scale).
    /// Returns `(method, mean, std, seconds, nfe)` per method, and notes for the user.
    /// `progress(method, done, total)` is called at each sampler step.
    #[pyo3(signature = (y, methods, score_json="{}", tv_lambda=None, tv_iters=None, seed=0, normalise=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn reconstruct(
        &self,
        py: Python<'_>,
        y: PyTensor,
        methods: Vec<String>,
        score_json: &str,
        tv_lambda: Option<f64>,
        tv_iters: Option<usize>,
        seed: i64,
        normalise: bool,
        progress: Option<PyObject>,
    ) -> PyResult<Reconstructions> {
        let cfg = study_config(methods, score_json, tv_lambda, tv_iters, seed)?;
        let top = self.operator_on(y.device())?;
        run(py, self.task.clone(), top, y.0, cfg, normalise, progress)
    }
}

/// `(method, mean, std, seconds, nfe, settings)` per method (`settings`: the method's settings
/// as run, JSON, as `metrics.json` records them under `settings.methods`), and notes for the user.
type Reconstructions = (
    Vec<(
        String,
        PyTensor,
        Option<PyTensor>,
        f64,
        Option<usize>,
        Option<String>,
    )>,
    Vec<String>,
);

/// The study settings of a reconstruction, checked.
fn study_config(
    methods: Vec<String>,
    score_json: &str,
    tv_lambda: Option<f64>,
    tv_iters: Option<usize>,
    seed: i64,
) -> PyResult<StudyConfig> {
    if seed < 0 {
        return Err(PyValueError::new_err(format!(
            "seed {seed}: must be non-negative"
        )));
    }
    if let Some(l) = tv_lambda.filter(|l| !(l.is_finite() && *l >= 0.0)) {
        return Err(PyValueError::new_err(format!(
            "tv_lambda {l}: must be finite and non-negative"
        )));
    }
    let score = serde_json::from_str(score_json)
        .map_err(|e| PyValueError::new_err(format!("score settings: {e}")))?;
    let cfg = StudyConfig {
        methods,
        tv_lambda,
        tv_iters,
        seed,
        score,
        ..StudyConfig::default()
    };
    study::check_distinct_methods(&cfg.methods).map_err(lib_err)?;
    Ok(cfg)
}

/// Builds the methods of `cfg` for `top` and runs them on `y` as `scoreinv reconstruct`
/// does (see [`PyTask::reconstruct`]), with the GIL released.
fn run(
    py: Python<'_>,
    task: Arc<dyn Task>,
    top: Arc<dyn TaskOperator>,
    y: Tensor,
    cfg: StudyConfig,
    normalise: bool,
    progress: Option<PyObject>,
) -> PyResult<Reconstructions> {
    let dev = y.device();
    let a = top.op();
    a.check_output(&y).map_err(crate::errors::op_err)?;
    check_finite(&y, "reconstruct: y")?;
    py.allow_threads(move || {
        guarded("reconstruct", || {
            let baselines = study::task_baselines(task.as_ref(), &cfg.methods).map_err(lib_err)?;
            let mut ms: Vec<Box<dyn Method>> =
                study::baseline_methods(&baselines, top.tv_config(), &cfg);
            let (score, notes) = scoreinv::inverse::score_method::score_methods(
                &cfg.methods,
                &cfg.score,
                top.as_ref(),
                study::study_tv(top.tv_config(), &cfg),
                task.as_ref(),
                dev,
            )
            .map_err(lib_err)?;
            ms.extend(score);
            let settings = study::method_settings(&ms);
            let refs: Vec<&dyn Method> = ms.iter().map(|m| m.as_ref()).collect();
            let scale = if normalise {
                let p = a
                    .pseudo_inverse(&y)
                    .map_err(crate::errors::op_err)?
                    .abs()
                    .max()
                    .double_value(&[]);
                if p.is_finite() && p > 0.0 {
                    p
                } else {
                    1.0
                }
            } else {
                1.0
            };
            let ys = if scale == 1.0 {
                y.shallow_clone()
            } else {
                &y / scale
            };
            let mut report = |p: Progress| {
                if let (Progress::Step(s), Some(cb)) = (p, progress.as_ref()) {
                    Python::with_gil(|py| {
                        if let Err(e) = cb.call1(py, (s.method, s.done, s.total)) {
                            e.print(py);
                        }
                    });
                }
            };
            let runs = study::run_methods(
                a.as_ref(),
                &ys,
                Some(study::case_seed(cfg.seed as u64, 0)),
                &refs,
                &mut report,
            )
            .map_err(lib_err)?;
            let unscale = |t: Tensor| if scale == 1.0 { t } else { t * scale };
            let out = runs
                .into_iter()
                .map(|r| {
                    let ran = settings.get(&r.name).map(|v| v.to_string());
                    (
                        r.name,
                        PyTensor(unscale(r.recon)),
                        r.std.map(|s| PyTensor(unscale(s))),
                        r.seconds,
                        r.nfe,
                        ran,
                    )
                })
                .collect();
            Ok((out, notes))
        })
    })
}

/// Any operator (`op`: one of `scoreinv.ops`, or one defined in Python) reconstructed with the
/// methods, presets and published sampler settings of the task `task_name` (default settings),
/// for images `op.input_shape`. The TV preset is the task's operator's for that shape; the
/// samplers that need the decomposition `A = P(Λ)·T` need it from `op`.
#[pyfunction]
#[pyo3(signature = (op, task_name, y, methods, score_json="{}", tv_lambda=None, tv_iters=None, seed=0, normalise=false, progress=None))]
#[allow(clippy::too_many_arguments)]
pub fn reconstruct_operator(
    py: Python<'_>,
    op: &PyOperator,
    task_name: &str,
    y: PyTensor,
    methods: Vec<String>,
    score_json: &str,
    tv_lambda: Option<f64>,
    tv_iters: Option<usize>,
    seed: i64,
    normalise: bool,
    progress: Option<PyObject>,
) -> PyResult<Reconstructions> {
    let cfg = study_config(methods, score_json, tv_lambda, tv_iters, seed)?;
    let t = tasks::from_json(serde_json::json!({ "task": task_name })).map_err(lib_err)?;
    let shape = op.op.input_shape();
    t.check_image("the operator's images", &shape)
        .map_err(lib_err)?;
    // The task's TV preset for images of this shape (MRI adapts it to the mask).
    let tv = t
        .operator(&shape, 0, Device::Cpu)
        .map_err(lib_err)?
        .tv_config();
    let top: Arc<dyn TaskOperator> = Arc::new(AnyOperator {
        op: op.op.clone(),
        description: op.description.clone(),
        tv,
    });
    run(py, Arc::from(t), top, y.0, cfg, normalise, progress)
}

/// An operator with a task's TV preset (what the methods need besides `A`).
struct AnyOperator {
    op: Arc<dyn scoreinv_operators::LinearOperator>,
    description: String,
    tv: scoreinv::inverse::baselines::TvConfig,
}

impl TaskOperator for AnyOperator {
    fn op(&self) -> Arc<dyn scoreinv_operators::LinearOperator> {
        self.op.clone()
    }
    fn describe(&self) -> String {
        self.description.clone()
    }
    fn tv_config(&self) -> scoreinv::inverse::baselines::TvConfig {
        self.tv
    }
    fn write_measurement(&self, _y: &Tensor, _out: &std::path::Path) -> scoreinv::Result<()> {
        Err(scoreinv::Error::Config(format!(
            "{}: measurements of an operator built in Python are not written to files",
            self.description
        )))
    }
}

/// Refuses NaN and infinity in `t`.
pub fn check_finite(t: &Tensor, what: &str) -> PyResult<()> {
    let ok = tch::no_grad(|| t.isfinite().all().int64_value(&[]) != 0);
    if !ok {
        return Err(PyValueError::new_err(format!(
            "{what} contains NaN or infinite values"
        )));
    }
    Ok(())
}

/// The task names of the registry.
#[pyfunction]
pub fn task_names() -> Vec<&'static str> {
    tasks::TASKS.iter().map(|t| t.name).collect()
}
