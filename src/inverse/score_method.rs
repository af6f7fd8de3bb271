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

use super::posterior::{self, PosteriorSummary};
use super::study::Method;
use super::{dps, projection, replacement};
use crate::models::model_dir::{load_model_dir, DataInfo};
use crate::models::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::{Decomposed, LinearOperator};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Tensor};

/// Which conditional sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScoreAlgorithm {
    /// Song et al. 2022 projection sampler (`score`).
    Projection(projection::ProjectionConfig),
    /// score_sde replacement sampler (`score-sde`).
    Replacement(replacement::ReplacementConfig),
    /// Diffusion posterior sampling (`dps`).
    Dps(dps::DpsConfig),
}

impl ScoreAlgorithm {
    /// Command-line name: `score`, `score-sde`, `dps`.
    pub fn name(&self) -> &'static str {
        match self {
            ScoreAlgorithm::Projection(_) => "score",
            ScoreAlgorithm::Replacement(_) => "score-sde",
            ScoreAlgorithm::Dps(_) => "dps",
        }
    }
}

/// A score model, its SDE and a sampler, reconstructing `[0, 1]` images.
pub struct ScoreMethod {
    model: Box<dyn ScoreModel>,
    sde: Box<dyn Sde>,
    data: DataInfo,
    algorithm: ScoreAlgorithm,
    decomposed: Option<Arc<dyn Decomposed>>,
    samples: i64,
    source: String,
}

impl ScoreMethod {
    /// `decomposed` is the operator's `T`/`Λ` decomposition (needed by `score` and
    /// `score-sde`; the operator passed to [`Method::reconstruct`] must be the same one).
    pub fn new(
        model: Box<dyn ScoreModel>,
        sde: Box<dyn Sde>,
        data: DataInfo,
        algorithm: ScoreAlgorithm,
        decomposed: Option<Arc<dyn Decomposed>>,
        samples: i64,
    ) -> Result<Self> {
        if samples < 1 {
            return Err(Error::Config(format!(
                "number of posterior samples must be ≥ 1, got {samples}"
            )));
        }
        match &algorithm {
            ScoreAlgorithm::Projection(c) => c.validate(sde.as_ref())?,
            ScoreAlgorithm::Replacement(c) => c.validate(sde.as_ref())?,
            ScoreAlgorithm::Dps(c) => c.validate(sde.as_ref())?,
        }
        if !matches!(algorithm, ScoreAlgorithm::Dps(_)) && decomposed.is_none() {
            return Err(Error::Config(format!(
                "method '{}' needs an operator with a T/Λ decomposition",
                algorithm.name()
            )));
        }
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
            algorithm,
            decomposed,
            samples,
            source: String::new(),
        })
    }

    /// Loads `dir` onto `device`; `n_steps` overrides the SDE's number of steps `N`.
    pub fn from_model_dir(
        dir: &Path,
        device: Device,
        n_steps: Option<usize>,
        algorithm: ScoreAlgorithm,
        decomposed: Option<Arc<dyn Decomposed>>,
        samples: i64,
    ) -> Result<Self> {
        let (model, sde_cfg, cfg) = load_model_dir(dir, device)?;
        let sde_cfg = match n_steps {
            Some(n) => sde_cfg.with_n(n),
            None => sde_cfg,
        };
        let mut m = Self::new(
            model,
            sde_cfg.build()?,
            cfg.data,
            algorithm,
            decomposed,
            samples,
        )?;
        m.source = dir.display().to_string();
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
        if have[1..] != want[1..] {
            return Err(Error::Invalid(format!(
                "{from} was trained on {}×{} images but the cases are {}×{}: resample them with \
                 `size` {}",
                have[1], have[2], want[1], want[2], have[1]
            )));
        }
        Ok(())
    }

    /// `K` posterior samples for each measurement in `y` (`[0, 1]` units), their mean and std.
    pub fn posterior(&self, op: &dyn LinearOperator, y: &Tensor) -> Result<PosteriorSummary> {
        self.check_operator(op)?;
        let decomposed = match (&self.algorithm, &self.decomposed) {
            (ScoreAlgorithm::Dps(_), _) => None,
            (_, Some(d)) => {
                if d.name() != op.name()
                    || d.input_shape() != op.input_shape()
                    || d.output_shape() != op.output_shape()
                {
                    return Err(Error::Invalid(format!(
                        "method '{}' was built for the {} operator {:?} → {:?}, not {} {:?} → {:?}",
                        self.algorithm.name(),
                        d.name(),
                        d.input_shape(),
                        d.output_shape(),
                        op.name(),
                        op.input_shape(),
                        op.output_shape()
                    )));
                }
                Some(d.as_ref())
            }
            (_, None) => unreachable!("checked in ScoreMethod::new"),
        };
        let (a, b) = affine(&self.data)?;
        // y_model = a y + b A 1.
        let mut y_model = y * a;
        if b != 0.0 {
            let mut shape = vec![1];
            shape.extend(op.input_shape());
            let real = super::check_measurement(op, y)?.0;
            let ones = Tensor::ones(shape.as_slice(), (real, y.device()));
            y_model += op.forward(&ones)? * b;
        }
        let sde = self.sde.as_ref();
        let model = self.model.as_ref();
        let mut quiet = |_: usize| {};
        let summary = posterior::posterior(&y_model, self.samples, |yy| {
            let out = match (&self.algorithm, decomposed) {
                (ScoreAlgorithm::Projection(c), Some(d)) => {
                    projection::sample(sde, model, d, yy, c, &mut quiet)?
                }
                (ScoreAlgorithm::Replacement(c), Some(d)) => {
                    replacement::sample(sde, model, d, yy, c, &mut quiet)?
                }
                (ScoreAlgorithm::Dps(c), _) => dps::sample(sde, model, op, yy, c, &mut quiet)?,
                _ => unreachable!("decomposition checked above"),
            };
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
        self.algorithm.name().to_string()
    }

    fn reconstruct(&self, op: &dyn LinearOperator, y: &Tensor) -> Result<Tensor> {
        Ok(self.posterior(op, y)?.mean)
    }

    fn reconstruct_with_std(
        &self,
        op: &dyn LinearOperator,
        y: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let p = self.posterior(op, y)?;
        let std = (self.samples > 1).then_some(p.std);
        Ok((p.mean, std))
    }
}

/// The settings of the score-based methods (`score`, `score-sde`, `dps`) of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreSettings {
    /// The model directory (config.json + model.safetensors).
    pub model: Option<PathBuf>,
    /// Reverse-SDE steps `N` (default: the model's SDE).
    pub steps: Option<usize>,
    /// Langevin corrector signal-to-noise ratio (default: validated for the model and task,
    /// else the task's published value).
    pub snr: Option<f64>,
    /// Projection weight `λ ∈ [0, 1]` of `score` (same precedence as `snr`).
    pub lambda: Option<f64>,
    /// DPS step size `ζ`.
    pub zeta: Option<f64>,
    /// Conjugate-gradient iterations of `score`'s final least-squares data-consistency step.
    pub consistency_iters: Option<usize>,
    /// Posterior samples per case; the reconstruction is their mean.
    pub samples: i64,
    /// CUDA only: replay `score`'s steps as one captured CUDA graph.
    pub cuda_graph: bool,
}

impl Default for ScoreSettings {
    fn default() -> Self {
        Self {
            model: None,
            steps: None,
            snr: None,
            lambda: None,
            zeta: None,
            consistency_iters: None,
            samples: 1,
            cuda_graph: false,
        }
    }
}

/// The score-based methods of a study and notes for the user ([`score_methods`]).
pub type ScoreMethods = (Vec<Box<dyn Method>>, Vec<String>);

/// Whether `name` is a score-based method (`score`, `score-sde`, `dps`).
pub fn is_score_method(name: &str) -> bool {
    matches!(
        name.trim().to_ascii_lowercase().as_str(),
        "score" | "score-sde" | "score_sde" | "dps"
    )
}

/// The score-based methods named in `methods`, loaded from `s.model` onto `device`, checked
/// against the operator's image shape before anything is written. `score` and `score-sde` need
/// the operator's `T`/`Λ` decomposition; without one (multi-coil SENSE) only `dps` is accepted.
/// `score` takes its settings from the task's published ones, then the model's validated
/// settings for the task (`"sampler"` in its `config.json`), then `s`. Returns the methods and
/// notes for the user (settings taken from the model).
pub fn score_methods(
    methods: &[String],
    s: &ScoreSettings,
    op: &dyn crate::inverse::tasks::TaskOperator,
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
    for m in methods.iter().filter(|m| is_score_method(m)) {
        let dir = s.model.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "`method` {m} needs a trained model: set `model` to a model directory"
            ))
        })?;
        let with_dir =
            |e: Error| Error::Config(format!("`method` {m}, `model` {}: {e}", dir.display()));
        let name = m.trim().to_ascii_lowercase();
        let decomposed = op.decomposed();
        if decomposed.is_none() && name != "dps" {
            return Err(Error::Config(format!(
                "`method` {m}: the {} operator has no T/Λ decomposition; use dps",
                a.name()
            )));
        }
        let algorithm = match name.as_str() {
            "score" => {
                let mut c = task.projection_config();
                let validated = crate::models::model_dir::sampler_settings(dir, task.name())
                    .map_err(with_dir)?;
                if let Some(ms) = &validated {
                    c = c.with_model_settings(ms);
                    let flagged = |v: Option<f64>, f: Option<f64>| v.is_some() && f.is_none();
                    if flagged(ms.snr, s.snr) || flagged(ms.lambda, s.lambda) {
                        notes.push(format!(
                            "`method` score: snr {}, λ {} validated for this model ({}, \
                             sampler.{}; `snr` / `lambda` override)",
                            s.snr.unwrap_or(c.snr),
                            s.lambda.unwrap_or(c.lambda),
                            dir.join("config.json").display(),
                            task.name()
                        ));
                    }
                }
                c.snr = s.snr.unwrap_or(c.snr);
                c.lambda = s.lambda.unwrap_or(c.lambda);
                c.consistency_iters = s.consistency_iters.unwrap_or(c.consistency_iters);
                c.cuda_graph = s.cuda_graph;
                ScoreAlgorithm::Projection(c)
            }
            "dps" => {
                let mut c = dps::DpsConfig::default();
                c.zeta = s.zeta.unwrap_or(c.zeta);
                ScoreAlgorithm::Dps(c)
            }
            _ => {
                let mut c = replacement::ReplacementConfig::default();
                c.snr = s.snr.unwrap_or(c.snr);
                ScoreAlgorithm::Replacement(c)
            }
        };
        let method =
            ScoreMethod::from_model_dir(dir, device, s.steps, algorithm, decomposed, s.samples)
                .map_err(with_dir)?;
        method.check_operator(a.as_ref())?;
        out.push(Box::new(method));
    }
    Ok((out, notes))
}
