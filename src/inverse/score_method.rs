//! A trained score model (a model directory, [`crate::models::model_dir`]) plus a conditional
//! sampler as a reconstruction [`Method`] for [`super::study`].
//!
//! Cases and measurements live in `[0, 1]` image units; the model lives in its own space
//! ([`DataInfo`]: `[0, 1]` of its data range, then `2x − 1` when `centered`). That map is affine,
//! `x_model = a·x + b` (read off [`DataInfo::normalize`] at the two ends of the data range), so
//! for a linear operator the measurement maps as `y_model = a·y + b·A 1`, the sampler runs in
//! model space and the result maps back with `x = (x_model − b)/a`. With `samples = K > 1` the
//! `K` posterior samples of each measurement are drawn in one batch and the reconstruction is
//! their mean ([`super::posterior`]); [`ScoreMethod::posterior`] also gives the std map.

use super::conditional::{conditional_sampler, ConditionalSampler, SamplerSources};
use super::posterior::{self, PosteriorSummary};
use super::study::Method;
use crate::models::model_dir::{load_model_dir_shared, DataInfo};
use crate::models::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::LinearOperator;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tch::{Device, Tensor};

/// A score model, its SDE and a conditional sampler, reconstructing `[0, 1]` images.
pub struct ScoreMethod {
    model: Box<dyn ScoreModel>,
    sde: Box<dyn Sde>,
    data: DataInfo,
    sampler: Box<dyn ConditionalSampler>,
    samples: i64,
    source: String,
    /// The prior's typicality reference (`typicality.json` in its directory), if it has one.
    reference: Option<crate::inverse::typicality::Reference>,
    /// The warm-start estimate (a baseline of the task), diffused to the sampler's `t0`.
    start: Option<Box<dyn Method>>,
    /// The name in tables (default: the sampler's; `ddim@20` in a steps sweep).
    label: Option<String>,
    /// Network evaluations per posterior sample of the last reconstruction (0: none yet).
    nfe: AtomicUsize,
}

impl ScoreMethod {
    /// The sampler's settings are validated against `sde`; the operator passed to
    /// [`Method::reconstruct`] must have a `T`/`Λ` decomposition if the sampler needs one.
    pub fn new(
        model: Box<dyn ScoreModel>,
        sde: Box<dyn Sde>,
        data: DataInfo,
        sampler: Box<dyn ConditionalSampler>,
        samples: i64,
    ) -> Result<Self> {
        if samples < 1 {
            return Err(Error::Config(format!(
                "number of posterior samples must be ≥ 1, got {samples}"
            )));
        }
        sampler.validate(sde.as_ref())?;
        let (a, _) = affine(&data)?;
        if a.abs() < 1e-12 {
            return Err(Error::Config(format!(
                "model data range {:?} is degenerate",
                data.data_range
            )));
        }
        Ok(Self {
            model,
            sde,
            data,
            sampler,
            samples,
            source: String::new(),
            reference: None,
            start: None,
            label: None,
            nfe: AtomicUsize::new(0),
        })
    }

    /// Names the method `label` in tables instead of the sampler's name.
    pub fn with_label(mut self, label: String) -> Self {
        self.label = Some(label);
        self
    }

    /// Starts every sample from `start`'s reconstruction diffused to the sampler's `t0` (CCDF,
    /// [`super::warm_start`]) instead of from the prior.
    pub fn with_start(mut self, start: Box<dyn Method>) -> Self {
        self.start = Some(start);
        self
    }

    /// Loads `dir` onto `device`; `n_steps` overrides the SDE's number of steps `N`.
    pub fn from_model_dir(
        dir: &Path,
        device: Device,
        n_steps: Option<usize>,
        sampler: Box<dyn ConditionalSampler>,
        samples: i64,
    ) -> Result<Self> {
        let (model, sde_cfg, cfg) = load_model_dir_shared(dir, device)?;
        let model: Box<dyn ScoreModel> = Box::new(model);
        let sde_cfg = match n_steps {
            Some(n) => sde_cfg.with_n(n),
            None => sde_cfg,
        };
        let mut m = Self::new(model, sde_cfg.build()?, cfg.data, sampler, samples)?;
        m.source = dir.display().to_string();
        m.reference = crate::inverse::typicality::Reference::read(dir)?;
        Ok(m)
    }

    /// The model's data description.
    pub fn data(&self) -> &DataInfo {
        &self.data
    }

    /// Checks that the model's images fit the operator's inputs (channels, then size).
    pub fn check_operator(&self, op: &dyn LinearOperator) -> Result<()> {
        let want = op.input_shape();
        let have = &self.data.shape;
        let from = if self.source.is_empty() {
            "the score model".to_string()
        } else {
            format!("model {}", self.source)
        };
        if have.len() != 3 || want.len() != 3 {
            return Err(Error::Shape {
                what: format!("{from} vs the {} operator's images", op.name()),
                expected: format!("{want:?}"),
                actual: format!("{have:?}"),
            });
        }
        if have[0] != want[0] {
            return Err(Error::Invalid(format!(
                "{from} was trained on {}-channel images but the {} task has {}-channel images",
                have[0],
                op.name(),
                want[0]
            )));
        }
        // A patch model scores images of any size.
        if have[1..] != want[1..] && !self.model.any_size() {
            return Err(Error::Invalid(format!(
                "{from} was trained on {}×{} images but the cases are {}×{}: resample them with \
                 `size` {}",
                have[1], have[2], want[1], want[2], have[1]
            )));
        }
        Ok(())
    }

    /// For a patch model on images larger than its training images: a note that the positions
    /// beyond its training frame are extrapolated (a patch prior is validated up to the size
    /// and at the pixel spacing it was trained at).
    pub fn size_note(&self, op: &dyn LinearOperator) -> Option<String> {
        let want = op.input_shape();
        let have = &self.data.shape;
        let larger = want.len() == 3 && have.len() == 3 && (want[1] > have[1] || want[2] > have[2]);
        (self.model.any_size() && larger).then(|| {
            format!(
                "the patch prior {} was trained on {}×{} images{}; the {}×{} images reach \
                 positions it never saw inside an image, where its score is unreliable \
                 (resample them to its pixel spacing, or train it at this size)",
                self.source,
                have[1],
                have[2],
                self.data
                    .spacing_mm
                    .map(|s| format!(" at {:.3}×{:.3} mm", s[0], s[1]))
                    .unwrap_or_default(),
                want[1],
                want[2]
            )
        })
    }

    /// `K` posterior samples for each measurement in `y` (`[0, 1]` units), their mean and std.
    pub fn posterior(&self, op: &dyn LinearOperator, y: &Tensor) -> Result<PosteriorSummary> {
        self.posterior_with_progress(op, y, &mut |_, _| {})
    }

    /// [`ScoreMethod::posterior`], calling `progress(done, total)` after each sampler step
    /// (`total`: the SDE's `n_steps`).
    pub fn posterior_with_progress(
        &self,
        op: &dyn LinearOperator,
        y: &Tensor,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<PosteriorSummary> {
        self.check_operator(op)?;
        if self.sampler.needs_decomposition() && op.as_decomposed().is_none() {
            return Err(super::projection::no_decomposition(
                self.sampler.name(),
                op.name(),
            ));
        }
        let (a, b) = affine(&self.data)?;
        let real = super::check_measurement(op, y)?.0;
        // y_model = a y + b A 1.
        let mut y_model = y * a;
        if b != 0.0 {
            let mut shape = vec![1];
            shape.extend(op.input_shape());
            let ones = Tensor::ones(shape.as_slice(), (real, y.device()));
            y_model += op.forward(&ones)? * b;
        }
        let sde = self.sde.as_ref();
        let model = self.model.as_ref();
        let total = self.sampler.steps(sde);
        let mut steps = |done: usize| progress(done.min(total), total);
        // The warm start in model space, one row per posterior sample.
        let start = match &self.start {
            Some(m) => {
                let x = m.reconstruct(op, y)?.to_kind(real) * a + b;
                Some(posterior::repeat_measurements(&x, self.samples)?)
            }
            None => None,
        };
        let summary = posterior::posterior(&y_model, self.samples, |yy| {
            let out = self
                .sampler
                .sample(sde, model, op, yy, start.as_ref(), &mut steps)?;
            self.nfe.store(out.nfe, Ordering::Relaxed);
            Ok((out.x - b) / a)
        })?;
        Ok(summary)
    }
}

/// `(a, b)` with `normalize(raw) = a·unit + b`, `unit ∈ [0, 1]` spanning the data range.
fn affine(data: &DataInfo) -> Result<(f64, f64)> {
    let (lo, hi) = data.data_range.unwrap_or((0.0, 1.0));
    let ends = data.normalize(&Tensor::from_slice(&[lo, hi]));
    let v = Vec::<f64>::try_from(ends)?;
    Ok((v[1] - v[0], v[0]))
}

impl Method for ScoreMethod {
    fn name(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| self.sampler.name().to_string())
    }

    fn nfe(&self) -> Option<usize> {
        Some(self.nfe.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }

    /// The sampler, its `N` and steps run, the posterior samples, the warm start (`noise` for a
    /// cold one, with the start's own settings) and the sampler's settings (`t0`, `snr`, `ζ`, …).
    fn settings(&self) -> Option<serde_json::Value> {
        let mut v = serde_json::json!({
            "sampler": self.sampler.name(),
            "n_steps": self.sde.n_steps(),
            "steps_run": self.sampler.steps(self.sde.as_ref()),
            "samples": self.samples,
            "start": self.start.as_ref().map_or_else(|| "noise".to_string(), |b| b.name()),
            "sampler_settings": self.sampler.settings(),
        });
        if let Some(s) = self.start.as_ref().and_then(|b| b.settings()) {
            v["start_settings"] = s;
        }
        Some(v)
    }

    fn reconstruct(&self, op: &dyn LinearOperator, y: &Tensor) -> Result<Tensor> {
        Ok(self.posterior(op, y)?.mean)
    }

    fn reconstruct_with_std(
        &self,
        op: &dyn LinearOperator,
        y: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.reconstruct_with_progress(op, y, &mut |_, _| {})
    }

    fn reconstruct_with_progress(
        &self,
        op: &dyn LinearOperator,
        y: &Tensor,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Tensor, Option<Tensor>)> {
        let p = self.posterior_with_progress(op, y, progress)?;
        let std = (self.samples > 1).then_some(p.std);
        Ok((p.mean, std))
    }

    fn typicality(
        &self,
        x: &Tensor,
        image: &str,
    ) -> Result<Option<Vec<crate::inverse::typicality::Typicality>>> {
        let Some(r) = &self.reference else {
            return Ok(None);
        };
        let prior = format!("{} (trained on {})", self.source, self.data.source);
        let t = crate::inverse::typicality::assess(
            &prior,
            self.model.as_ref(),
            self.sde.as_ref(),
            &self.data,
            r,
            x,
            image,
        )?;
        Ok(Some(t))
    }
}

/// The settings of the score-based methods (`score`, `score-sde`, `dps`, `ddim`, `diffpir`) of
/// a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreSettings {
    /// The model directory (config.json + model.safetensors).
    pub model: Option<PathBuf>,
    /// Reverse-SDE steps `N` (default: the model's SDE).
    pub steps: Option<usize>,
    /// A quality-vs-cost sweep: each score method runs once per `N` here (named `NAME@N`) on the
    /// same measurements, and the study plots PSNR and SSIM against NFE and seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_sweep: Option<Vec<usize>>,
    /// Langevin corrector signal-to-noise ratio (default: validated for the model and task,
    /// else the task's published value).
    pub snr: Option<f64>,
    /// Projection weight `λ ∈ [0, 1]` of `score` (same precedence as `snr`).
    pub lambda: Option<f64>,
    /// DPS step size `ζ`.
    pub zeta: Option<f64>,
    /// DDIM's `η ∈ [0, 1]` (0: deterministic).
    pub eta: Option<f64>,
    /// DiffPIR's `λ` (`ρ_t = λ σ_y² / σ_t²`).
    pub diffpir_lambda: Option<f64>,
    /// DiffPIR's `ζ ∈ [0, 1]`, the share of fresh noise.
    pub diffpir_zeta: Option<f64>,
    /// DiffPIR's measurement noise, relative to the peak of `|y|` (as `gaussian:σ`).
    pub sigma_y: Option<f64>,
    /// Conjugate-gradient iterations of the data step of `ddim` (operators without a `T`/`Λ`
    /// decomposition) and `diffpir`.
    pub cg_iters: Option<usize>,
    /// Conjugate-gradient iterations of `score`'s final least-squares data-consistency step.
    pub consistency_iters: Option<usize>,
    /// Posterior samples per case; the reconstruction is their mean.
    pub samples: i64,
    /// CUDA only: replay `score`'s steps as one captured CUDA graph.
    pub cuda_graph: bool,
    /// Warm start (CCDF): the task's baseline (`fbp`, `tv`, `zero-filled`, `gray`, …) whose
    /// reconstruction is diffused to `t0` and the reverse SDE run from there; `noise`: from
    /// the prior at `T`; `None` (with no `t0`): the model's validated start for the task and
    /// sampler ([`crate::models::model_dir::SamplerSettings`]), else from the prior.
    pub start: Option<String>,
    /// The time `t₀ ∈ (ε, T]` of the warm start (needs `start`).
    pub t0: Option<f64>,
    /// PDHG iterations of a TV warm start (default: the study's TV iterations). A TV start
    /// only needs to be near the posterior's support at `t0`, not converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_iters: Option<usize>,
}

impl Default for ScoreSettings {
    fn default() -> Self {
        Self {
            model: None,
            steps: None,
            steps_sweep: None,
            snr: None,
            lambda: None,
            zeta: None,
            eta: None,
            diffpir_lambda: None,
            diffpir_zeta: None,
            sigma_y: None,
            cg_iters: None,
            consistency_iters: None,
            samples: 1,
            cuda_graph: false,
            start: None,
            t0: None,
            start_iters: None,
        }
    }
}

/// The score-based methods of a study and notes for the user ([`score_methods`]).
pub type ScoreMethods = (Vec<Box<dyn Method>>, Vec<String>);

/// Whether `name` is a score-based method (a registered conditional sampler:
/// [`crate::inverse::conditional::CONDITIONAL_SAMPLERS`]).
pub fn is_score_method(name: &str) -> bool {
    let base = name.split_once('@').map_or(name, |(b, _)| b);
    conditional_sampler(base).is_some()
}

/// The score-based methods named in `methods`, loaded from `s.model` onto `device`, checked
/// against the operator before anything is written: its image shape, and its `T`/`Λ`
/// decomposition for the samplers that need one (without it, e.g. multi-coil SENSE, only
/// `dps` is accepted). Each sampler takes the task's published settings, then the model's
/// validated settings for the task (`"sampler"` in its `config.json`), then `s`
/// ([`crate::inverse::conditional`]). A warm `start` with TV uses `tv` (the study's TV
/// settings). Returns the methods and notes for the user (settings taken from the model).
pub fn score_methods(
    methods: &[String],
    s: &ScoreSettings,
    op: &dyn crate::inverse::tasks::TaskOperator,
    tv: crate::inverse::baselines::TvConfig,
    task: &dyn crate::inverse::tasks::Task,
    device: Device,
) -> Result<ScoreMethods> {
    let mut out: Vec<Box<dyn Method>> = Vec::new();
    let mut notes = Vec::new();
    let a = op.op();
    if s.cuda_graph && !device.is_cuda() {
        return Err(Error::Config(format!(
            "`cuda_graph` needs a CUDA device, the run is on {}",
            crate::device::device_name(device)
        )));
    }
    let user = serde_json::to_value(s)
        .map_err(|e| Error::Invalid(format!("score settings to JSON: {e}")))?;
    // Whether the user left the setting `key` unset (so the model's record supplies it).
    let unset = |key: &str| user.get(key).is_none_or(|x| x.is_null());
    // The warm start: a baseline of the task, with `t0`.
    let start = match s.start.as_deref().map(str::trim) {
        None | Some("noise") => None,
        Some(name) => Some(
            crate::inverse::tasks::parse_method(task, name)
                .map_err(|e| Error::Config(format!("`start` {name}: {e}")))?,
        ),
    };
    match (&start, s.t0) {
        (Some((name, _)), None) => {
            return Err(Error::Config(format!(
                "`start` {name} needs `t0`, the time its reconstruction is diffused to (e.g. 0.3)"
            )))
        }
        (None, Some(t)) => {
            return Err(Error::Config(format!(
                "`t0` {t} needs a warm `start` (one of {}); `noise` starts at T",
                task.baselines()
                    .iter()
                    .map(|b| b.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        _ => {}
    }
    if let Some(n) = s.start_iters {
        if n == 0 {
            return Err(Error::Config(
                "`start_iters` must be at least 1, got 0".to_string(),
            ));
        }
        if let Some((name, _)) = start.as_ref().filter(|(name, _)| *name != "tv") {
            return Err(Error::Config(format!(
                "`start_iters` {n} sets the iterations of a TV warm start; `start` is {name}"
            )));
        }
    }
    // `N` of each score method: one value, or each of a steps sweep (methods `NAME@N`).
    let sweep: Vec<Option<usize>> = match &s.steps_sweep {
        Some(v) if v.len() > 1 => v.iter().map(|&n| Some(n)).collect(),
        _ => vec![s.steps],
    };
    for m in methods {
        let Some(entry) = conditional_sampler(m) else {
            continue;
        };
        let dir = s.model.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "`method` {m} needs a trained model: set `model` to a model directory"
            ))
        })?;
        let with_dir =
            |e: Error| Error::Config(format!("`method` {m}, `model` {}: {e}", dir.display()));
        let validated =
            crate::models::model_dir::sampler_settings(dir, task.name()).map_err(with_dir)?;
        // The warm start: the user's, else the one the model records as validated for this
        // sampler (`score`: `sampler.TASK.start`/`t0`; the few-step samplers:
        // `sampler.TASK.methods.NAME`, with its `steps` unless the user sets steps, and its
        // settings unless the user sets them); `start` = `noise` is a cold start.
        let mut user_m = user.clone();
        let mut start = start;
        let mut sweep_m = sweep.clone();
        if s.start.is_none() && s.t0.is_none() {
            let recorded = validated.as_ref().and_then(|v| {
                if entry.name == super::projection::ENTRY.name {
                    match (v.start.as_deref(), v.t0) {
                        (Some(name), Some(t0)) => Some((
                            name.to_string(),
                            Some(t0),
                            None,
                            BTreeMap::new(),
                            format!("sampler.{}", task.name()),
                        )),
                        _ => None,
                    }
                } else {
                    v.methods.get(entry.name).map(|w| {
                        let key = format!("sampler.{}.methods.{}", task.name(), entry.name);
                        (w.start.clone(), w.t0, w.steps, w.settings.clone(), key)
                    })
                }
            });
            if let Some((name, t0, steps, settings, key)) = recorded {
                let what = match t0 {
                    Some(t0) => {
                        start =
                            Some(crate::inverse::tasks::parse_method(task, &name).map_err(
                                |e| with_dir(Error::Config(format!("{key}.start: {e}"))),
                            )?);
                        user_m["t0"] = serde_json::json!(t0);
                        format!("warm start from {name} at t0 {t0}")
                    }
                    None => "cold start (from noise)".to_string(),
                };
                let mut extra = String::new();
                if let Some(n) = steps {
                    if s.steps.is_none() && s.steps_sweep.is_none() {
                        sweep_m = vec![Some(n)];
                        extra.push_str(&format!(", N = {n}"));
                    }
                }
                for (k, v) in &settings {
                    if unset(k) {
                        user_m[k.as_str()] = crate::models::model_dir::method_setting_json(k, *v);
                        extra.push_str(&format!(", {k} {v}"));
                    }
                }
                notes.push(format!(
                    "`method` {m}: {what}{extra} validated for this model ({}, {key}; `start` \
                     noise for a cold start, or a baseline with `t0`)",
                    dir.join("config.json").display(),
                ));
            }
        }
        for (k, &steps) in sweep_m.iter().enumerate() {
            let sampler = (entry.build)(&SamplerSources {
                task,
                validated: validated.as_ref(),
                user: &user_m,
            })?;
            if sampler.needs_decomposition() && a.as_decomposed().is_none() {
                return Err(super::projection::no_decomposition(m, a.name()));
            }
            if let (Some(ms), 0) = (&validated, k) {
                let taken = |v: Option<f64>, key: &str| v.is_some() && unset(key);
                let setting = sampler.settings();
                if setting.get("snr").is_some()
                    && (taken(ms.snr, "snr") || taken(ms.lambda, "lambda"))
                {
                    notes.push(format!(
                        "`method` {m}: snr {}, λ {} validated for this model ({}, sampler.{}; \
                         `snr` / `lambda` override)",
                        setting["snr"],
                        setting["lambda"],
                        dir.join("config.json").display(),
                        task.name()
                    ));
                }
            }
            let mut method = ScoreMethod::from_model_dir(dir, device, steps, sampler, s.samples)
                .map_err(with_dir)?;
            if let (Some(n), true) = (steps, sweep_m.len() > 1) {
                method = method.with_label(format!("{}@{n}", entry.name));
            }
            if let Some(b) = &start {
                // A TV start with its own iteration count (the user's or the record's).
                let mut tv = tv;
                if let Some(n) = user_m.get("start_iters").and_then(|v| v.as_u64()) {
                    tv.n_iter = n as usize;
                }
                method = method.with_start(Box::new(crate::inverse::study::BaselineMethod {
                    baseline: b.1,
                    tv,
                    label: Some(b.0),
                }));
            }
            method.check_operator(a.as_ref())?;
            if k == 0 {
                if let Some(n) = method.size_note(a.as_ref()) {
                    notes.push(format!("`method` {m}: {n}"));
                }
            }
            out.push(Box::new(method));
        }
    }
    Ok((out, notes))
}
