//! A trained model on disk: a folder with `config.json` and `model.safetensors`.
//!
//! `config.json` ([`ModelDirConfig`]):
//! ```text
//! {
//!   "format": "scoreinv-model/1",
//!   "model": { "type": "mlp", "hidden": 128, "n_layers": 3, "embed_dim": 32, "embedding": null },
//!   "sde":   { "type": "ve", "sigma_min": 0.01, "sigma_max": 50.0, "n": 1000 },
//!   "score": { "scale_by_sigma": true },
//!   "data":  { "shape": [1, 28, 28], "centered": false, "data_range": [0.0, 255.0],
//!              "source": "fashion-mnist (60000 train images)" },
//!   "training": { "step": 5000, "ema_rate": 0.999, "loss": "dsm" },
//!   "sampler": { "ct": { "lambda": 1.0, "validated_on": "…",
//!                        "methods": { "diffpir": { "start": "tv", "t0": 0.2, "steps": 250 } } } }
//! }
//! ```
//! `sampler` (optional, [`SamplerSettings`]) holds projection-sampler settings chosen for the
//! model on a task's validation data, and under `methods` the few-step samplers' warm starts
//! ([`MethodSettings`]); an exported run has none.
//! `model.safetensors` holds the EMA weights (score_sde evaluates and samples with the EMA), f32,
//! one tensor per variable of the network's `VarStore` under the same name, each with its
//! CRC-32 in the metadata. `data` says how to map a raw image `r` to model space:
//! `x = (r − lo)/(hi − lo)` with `(lo, hi) = data_range` (identity when absent), then
//! `x ← 2x − 1` when `centered`.

use super::config::ScoreSdeConfig;
use super::mlp::{CondEmbedding, Mlp, MlpConfig};
use super::ncsnpp::Ncsnpp;
use super::score_net::{NetScore, NetScoreOptions};
use super::{ScoreModel, TimeConditionedNet};
use crate::io::atomic::write_bytes;
use crate::io::safetensors::{write_tensors, TensorFile};
use crate::sde::{SdeConfig, SdeKind};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// Version tag of the model directory format.
pub const MODEL_FORMAT: &str = "scoreinv-model/1";

/// Which network, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
// The NCSN++ variant is a few hundred bytes against the MLP's tens; a config is built once per
// model, so boxing it would only add `Box::new` at every construction site.
#[allow(clippy::large_enum_variant)]
pub enum ModelConfig {
    /// [`Mlp`]: small MLP for 2-D toy data and tiny flattened images.
    Mlp(MlpConfig),
    /// NCSN++ / DDPM++ ([`Ncsnpp`]) with score_sde_pytorch's `model`, `data` and `training`
    /// config fields (a converted score_sde_pytorch checkpoint is one of these).
    Ncsnpp(ScoreSdeConfig),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp(MlpConfig::default())
    }
}

impl ModelConfig {
    /// Builds the network's variables under `path` for data described by `data`.
    pub fn build(
        &self,
        path: &nn::Path,
        data: &DataInfo,
        sde: SdeKind,
    ) -> Result<Box<dyn TimeConditionedNet>> {
        self.check_data(data)?;
        self.check_size(data)?;
        match self {
            ModelConfig::Mlp(cfg) => {
                let dim: i64 = data.shape.iter().product();
                let emb = cfg.embedding.unwrap_or(match sde {
                    SdeKind::Ve => CondEmbedding::Fourier,
                    SdeKind::Vp | SdeKind::SubVp => CondEmbedding::Positional,
                });
                Ok(Box::new(Mlp::new(path, dim, cfg, emb)?))
            }
            ModelConfig::Ncsnpp(cfg) => Ok(Box::new(Ncsnpp::new(path, cfg)?)),
        }
    }

    /// Refuses a network whose parameters (held twice while weights are loaded into them)
    /// and one sample would not fit in the memory budget ([`crate::io::budget`]), before it is
    /// built: a corrupted config must not allocate terabytes.
    pub fn check_size(&self, data: &DataInfo) -> Result<()> {
        match self {
            ModelConfig::Mlp(cfg) => {
                let f = |v: i64| v.max(0) as f64;
                let dim: f64 = data.shape.iter().map(|&d| f(d)).product();
                let (h, e, l) = (f(cfg.hidden), f(cfg.embed_dim), cfg.n_layers as f64);
                // embed, input, hidden layers, condition projections, output
                let params = e * h
                    + h
                    + dim * h
                    + h
                    + (2.0 * l - 1.0).max(0.0) * (h * h + h)
                    + h * dim
                    + dim
                    + e;
                let bytes = (params * 8.0 + dim * 4.0) as u128; // saturating
                crate::io::budget::check_alloc(
                    bytes,
                    &format!(
                        "the MLP of this config (hidden = {}, n_layers = {}, embed_dim = {}) on \
                         data of shape {:?}",
                        cfg.hidden, cfg.n_layers, cfg.embed_dim, data.shape
                    ),
                )
                .map_err(|e| Error::Config(e.to_string()))
            }
            ModelConfig::Ncsnpp(cfg) => cfg.check_size(),
        }
    }

    /// Checks that this network can take samples of `data`'s shape (channels, image size).
    pub fn check_data(&self, data: &DataInfo) -> Result<()> {
        if data.shape.is_empty()
            || data.shape.iter().any(|&d| d < 1)
            || data
                .shape
                .iter()
                .try_fold(1i64, |acc, &d| acc.checked_mul(d))
                .is_none()
        {
            return Err(Error::Config(format!(
                "data shape {:?} is not a valid per-sample shape",
                data.shape
            )));
        }
        match self {
            // The MLP flattens whatever it gets; its width follows the data.
            ModelConfig::Mlp(_) => Ok(()),
            ModelConfig::Ncsnpp(cfg) => {
                let (c, s) = (cfg.data.num_channels as i64, cfg.data.image_size as i64);
                if data.shape != [c, s, s] {
                    return Err(Error::Config(format!(
                        "NCSN++ is configured for images [{c}, {s}, {s}] but the data are {:?}",
                        data.shape
                    )));
                }
                if data.centered != cfg.data.centered {
                    return Err(Error::Config(format!(
                        "NCSN++ data.centered = {} but the data description says centered = {}",
                        cfg.data.centered, data.centered
                    )));
                }
                Ok(())
            }
        }
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ModelConfig::Mlp(_) => "mlp",
            ModelConfig::Ncsnpp(_) => "ncsnpp",
        }
    }
}

/// What the model was trained on and how raw data maps to model space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// Per-sample shape: `[C, H, W]` for images, `[D]` for vectors.
    pub shape: Vec<i64>,
    /// Model space is `[-1, 1]` (score_sde `data.centered`) rather than `[0, 1]`.
    #[serde(default)]
    pub centered: bool,
    /// Raw values `(lo, hi)` mapped to `[0, 1]`; `None`: raw values are used as they are.
    #[serde(default)]
    pub data_range: Option<(f64, f64)>,
    /// Human-readable description of the source.
    #[serde(default)]
    pub source: String,
    /// Pixel spacing `(row, column)` in mm of the images, when the source has one (CT and MRI
    /// volumes at their native resolution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spacing_mm: Option<[f64; 2]>,
}

impl DataInfo {
    /// Vectors of `dim` features used as they are.
    pub fn vectors(dim: i64, source: impl Into<String>) -> Self {
        Self {
            shape: vec![dim],
            centered: false,
            data_range: None,
            source: source.into(),
            spacing_mm: None,
        }
    }

    /// Number of channels for image data (`shape.len() == 3`).
    pub fn channels(&self) -> Option<i64> {
        (self.shape.len() == 3).then(|| self.shape[0])
    }

    /// `(H, W)` for image data.
    pub fn image_size(&self) -> Option<(i64, i64)> {
        (self.shape.len() == 3).then(|| (self.shape[1], self.shape[2]))
    }

    /// Raw → model space.
    /// Images in `[0, 1]` spanning the data range (`data_range`, else `[0, 1]`) to model units.
    pub fn normalize_unit(&self, unit: &Tensor) -> Result<Tensor> {
        let (lo, hi) = self.data_range.unwrap_or((0.0, 1.0));
        Ok(self.normalize(&(unit * (hi - lo) + lo)))
    }

    pub fn normalize(&self, raw: &Tensor) -> Tensor {
        let x = match self.data_range {
            Some((lo, hi)) => (raw - lo) / (hi - lo),
            None => raw.shallow_clone(),
        };
        if self.centered {
            x * 2.0 - 1.0
        } else {
            x
        }
    }

    /// Model space → raw.
    pub fn denormalize(&self, x: &Tensor) -> Tensor {
        let x = if self.centered {
            (x + 1.0) * 0.5
        } else {
            x.shallow_clone()
        };
        match self.data_range {
            Some((lo, hi)) => x * (hi - lo) + lo,
            None => x,
        }
    }
}

/// Facts about the training run kept with the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingInfo {
    pub step: u64,
    pub ema_rate: f64,
    pub loss: String,
    /// The model directory the run was fine-tuned from (`scoreinv train --init`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// Probability of the random contrast remapping the run trained with
    /// (`data.random_contrast`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_contrast: Option<f64>,
}

/// Projection-sampler settings chosen for this model on one task's validation data (and
/// recorded in its model card), under `"sampler": {"ct": {...}}` in `config.json`. The
/// published per-task values ([`crate::inverse::projection::ProjectionConfig::ct`], …) are
/// chosen for the reference's 256²–320² models; a small prior may do better with others.
/// `scoreinv reconstruct TASK` uses them for `--method score` where `--snr` / `--lambda` are not
/// given ([`crate::inverse::projection::ProjectionConfig::with_model_settings`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SamplerSettings {
    /// Langevin corrector signal-to-noise ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snr: Option<f64>,
    /// Projection weight `λ ∈ [0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    /// Warm start of `score` (CCDF, [`crate::inverse::warm_start`]): the task's baseline whose
    /// reconstruction is diffused to `t0` (with `t0`); the user's `start` / `t0` override, and
    /// `start` = `noise` turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The warm start's time `t0 ∈ (0, 1]` (with `start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t0: Option<f64>,
    /// Where the values were chosen (for people; e.g. the validation cases and settings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_on: Option<String>,
    /// The few-step samplers' validated warm starts and step counts, by sampler name
    /// (`"methods": {"diffpir": {"start": "tv", "t0": 0.2, "steps": 250}}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub methods: BTreeMap<String, MethodSettings>,
}

/// A few-step sampler's validated setting for one task: a warm start (CCDF, Chung, Sim & Ye
/// 2022), the baseline `start` diffused to `t0`, then the `N · t0` reverse steps below it; or a
/// cold start (`start` = `noise`, no `t0`) running all `N` steps from the prior. `ddim` and
/// `diffpir` take one network evaluation per step. `settings` are the sampler's own validated
/// settings by their study names (`{"diffpir_zeta": 1.0}`; one of [`METHOD_SETTING_KEYS`]).
/// `scoreinv reconstruct` takes the record for `--method NAME` where the user sets none of
/// `--start`, `--t0`; `--steps` and each setting's flag override their part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSettings {
    /// The task's baseline whose reconstruction is diffused to `t0` (`tv`, `fbp`, …), or
    /// `noise` for a cold start.
    pub start: String,
    /// The warm start's time `t0 ∈ (0, 1]`; none for `start` = `noise`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t0: Option<f64>,
    /// The SDE's step count `N` (the sampler runs the `N · t0` steps below `t0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// The sampler's validated settings (finite numbers), e.g. `diffpir_zeta`, `eta`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, f64>,
    /// Where the values were chosen (for people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_on: Option<String>,
}

/// The sampler settings a [`MethodSettings`] record may hold (the study's names, as the flags
/// `--eta`, `--diffpir-lambda`, `--diffpir-zeta`, `--sigma-y`, `--zeta`, `--start-iters`).
pub const METHOD_SETTING_KEYS: &[&str] = &[
    "eta",
    "diffpir_lambda",
    "diffpir_zeta",
    "sigma_y",
    "zeta",
    "start_iters",
];
/// The keys of [`METHOD_SETTING_KEYS`] that count something (whole numbers ≥ 1).
const METHOD_SETTING_COUNTS: &[&str] = &["start_iters"];

/// A recorded setting as the study's JSON value (counts as integers).
pub fn method_setting_json(key: &str, v: f64) -> serde_json::Value {
    if METHOD_SETTING_COUNTS.contains(&key) {
        serde_json::json!(v as u64)
    } else {
        serde_json::json!(v)
    }
}

impl SamplerSettings {
    /// `snr > 0`, `λ ∈ [0, 1]`, `t0 ∈ (0, 1]`, all finite; `start` and `t0` together.
    fn check(&self, task: &str) -> std::result::Result<(), String> {
        if let Some(v) = self.snr.filter(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(format!(
                "sampler.{task}.snr must be a positive number, got {v}"
            ));
        }
        if let Some(v) = self.lambda.filter(|v| !(0.0..=1.0).contains(v)) {
            return Err(format!("sampler.{task}.lambda must lie in [0, 1], got {v}"));
        }
        if let Some(v) = self
            .t0
            .filter(|v| !(v.is_finite() && *v > 0.0 && *v <= 1.0))
        {
            return Err(format!("sampler.{task}.t0 must lie in (0, 1], got {v}"));
        }
        if self.start.is_some() != self.t0.is_some() {
            return Err(format!(
                "sampler.{task}: a warm start needs both fields, start and t0"
            ));
        }
        for (name, m) in &self.methods {
            if crate::inverse::conditional::conditional_sampler(name).is_none() {
                return Err(format!(
                    "sampler.{task}.methods: unknown sampler {name:?} (one of {})",
                    crate::inverse::conditional::CONDITIONAL_SAMPLERS
                        .iter()
                        .map(|e| e.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let cold = m.start.trim() == "noise";
            match m.t0 {
                Some(t) if !(t.is_finite() && t > 0.0 && t <= 1.0) => {
                    return Err(format!(
                        "sampler.{task}.methods.{name}.t0 must lie in (0, 1], got {t}"
                    ));
                }
                Some(t) if cold => {
                    return Err(format!(
                        "sampler.{task}.methods.{name}: start \"noise\" is a cold start and takes \
                         no t0, got t0 {t}"
                    ));
                }
                None if !cold => {
                    return Err(format!(
                        "sampler.{task}.methods.{name}: the warm start {:?} needs t0",
                        m.start
                    ));
                }
                _ => {}
            }
            if m.steps == Some(0) {
                return Err(format!(
                    "sampler.{task}.methods.{name}.steps must be at least 1, got 0"
                ));
            }
            if m.start.trim().is_empty() {
                return Err(format!(
                    "sampler.{task}.methods.{name}.start must name a baseline of the task \
                     (e.g. tv) or be \"noise\", got {:?}",
                    m.start
                ));
            }
            for (k, v) in &m.settings {
                if !METHOD_SETTING_KEYS.contains(&k.as_str()) {
                    return Err(format!(
                        "sampler.{task}.methods.{name}.settings: unknown setting {k:?} (one of {})",
                        METHOD_SETTING_KEYS.join(", ")
                    ));
                }
                if !v.is_finite() {
                    return Err(format!(
                        "sampler.{task}.methods.{name}.settings.{k} must be a finite number, got {v}"
                    ));
                }
                if METHOD_SETTING_COUNTS.contains(&k.as_str()) && !(*v >= 1.0 && v.fract() == 0.0) {
                    return Err(format!(
                        "sampler.{task}.methods.{name}.settings.{k} must be a whole number of at \
                         least 1, got {v}"
                    ));
                }
                // `start_iters` counts the PDHG iterations of a TV start; another start would
                // silently drop it.
                if k == "start_iters" && m.start.trim() != "tv" {
                    return Err(format!(
                        "sampler.{task}.methods.{name}.settings.start_iters sets the iterations of \
                         a TV warm start; start is {:?}",
                        m.start
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Contents of `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDirConfig {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    pub model: ModelConfig,
    pub sde: SdeConfig,
    #[serde(default)]
    pub score: NetScoreOptions,
    pub data: DataInfo,
    #[serde(default)]
    pub training: Option<TrainingInfo>,
    /// Validated sampler settings by task name (`ct`, `mri`, `inpaint`, `colorize`); none for a
    /// freshly exported run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sampler: BTreeMap<String, SamplerSettings>,
    /// A position-aware patch model: the network scores `size × size` patches and the model
    /// scores images of any size ([`crate::models::patch::PatchScore`]); `data.shape` is the
    /// shape of the full images it was trained on. `None`: a whole-image model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchInfo>,
}

/// The default of [`PatchInfo::max_patches`].
pub const MAX_PATCHES: i64 = 64;

fn d_max_patches() -> i64 {
    MAX_PATCHES
}

/// The patch geometry of a patch model (see [`ModelDirConfig::patch`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchInfo {
    /// The patch side `P` in pixels.
    pub size: i64,
    /// The most patches per network call at sampling time (bounds memory, whatever the image
    /// size).
    #[serde(default = "d_max_patches")]
    pub max_patches: i64,
    /// Pixel spacing `(row, column)` in mm of the training images, when the source has one
    /// (CT volumes); images at another spacing show anatomy at another scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spacing_mm: Option<[f64; 2]>,
}

impl PatchInfo {
    /// A patch model of side `size` with the default patch batch.
    pub fn new(size: i64, spacing_mm: Option<[f64; 2]>) -> Self {
        Self {
            size,
            max_patches: d_max_patches(),
            spacing_mm,
        }
    }

    /// The data description of the network's input: `[C, P, P]` patches of `data`'s images.
    pub fn network_data(&self, data: &DataInfo) -> DataInfo {
        let mut d = data.clone();
        let c = data.shape.first().copied().unwrap_or(1);
        d.shape = vec![c, self.size, self.size];
        d
    }
}

/// Writes `dir/config.json` and `dir/model.safetensors` (`weights` are the EMA tensors by
/// variable name).
pub fn save_model_dir(
    dir: &Path,
    config: &ModelDirConfig,
    weights: &[(String, Tensor)],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut md = HashMap::new();
    md.insert("format".to_string(), MODEL_FORMAT.to_string());
    write_tensors(&dir.join("model.safetensors"), weights, md)?;
    let json = dir.join("config.json");
    let text = serde_json::to_string_pretty(config)
        .map_err(|e| Error::format(&json, format!("serialising model config: {e}")))?;
    write_bytes(&json, text.as_bytes())
}

/// The sampler settings validated for `task` (`ct`, `mri`, `inpaint`, `colorize`) recorded in
/// `dir/config.json` (`"sampler": {task: …}`), `None` when the model has none for it (a freshly
/// exported run). Errors as [`read_model_config`].
pub fn sampler_settings(dir: &Path, task: &str) -> Result<Option<SamplerSettings>> {
    Ok(read_model_config(dir)?.sampler.remove(task))
}

/// Reads `dir/config.json`.
pub fn read_model_config(dir: &Path) -> Result<ModelDirConfig> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "model directory {} does not exist (expected a folder with config.json and model.safetensors)",
            dir.display()
        )));
    }
    let json = dir.join("config.json");
    // A model config is a few kilobytes; a huge file is not one (and is not read whole).
    const MAX_CONFIG_BYTES: u64 = 16 << 20;
    let len = std::fs::metadata(&json)
        .map_err(|e| Error::io(&json, e))?
        .len();
    if len > MAX_CONFIG_BYTES {
        return Err(Error::format(
            &json,
            format!("is {len} bytes: not a model config (at most {MAX_CONFIG_BYTES} bytes)"),
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
    let cfg: ModelDirConfig = serde_json::from_str(&text)
        .map_err(|e| Error::format(&json, format!("invalid model config: {e}")))?;
    for (task, settings) in &cfg.sampler {
        settings.check(task).map_err(|m| Error::format(&json, m))?;
    }
    if cfg.format != MODEL_FORMAT {
        return Err(Error::format(
            &json,
            format!(
                "format '{}' is not the supported '{MODEL_FORMAT}'",
                cfg.format
            ),
        ));
    }
    Ok(cfg)
}

/// The tensors of `dir/model.safetensors` for the variables `vars` (`(name, variable)` of a
/// `model` network), in that order, checked against each variable's shape (CRC-verified by
/// [`TensorFile`]) and on `device`; a tensor that is not one of the network's is refused.
pub fn read_weights(
    dir: &Path,
    model: &ModelConfig,
    vars: &[(String, Tensor)],
    device: Device,
) -> Result<Vec<Tensor>> {
    let path = dir.join("model.safetensors");
    let file = TensorFile::read(&path)?;
    let expected: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(extra) = file.names().iter().find(|n| !expected.contains(n.as_str())) {
        return Err(Error::Checkpoint {
            path,
            msg: format!(
                "tensor '{extra}' does not belong to the {} model described in config.json",
                model.name()
            ),
        });
    }
    vars.iter()
        .map(|(name, var)| file.tensor(name, Some(&var.size()), device))
        .collect()
}

/// How many models [`load_model_dir_shared`] keeps loaded.
pub const MODEL_CACHE_SIZE: usize = 4;

/// What identifies a loaded model: its folder, device, autocast policy, the bytes of its
/// `config.json` (a few kB) and the size and modification time of `model.safetensors` (an
/// edited or retrained model is read again).
#[derive(Debug, Clone, PartialEq)]
struct ModelKey {
    dir: PathBuf,
    device: Device,
    autocast: Option<crate::autocast::AutocastDtype>,
    config: Option<Vec<u8>>,
    weights: Option<(u64, std::time::SystemTime)>,
}

type SharedModel = (std::sync::Arc<dyn ScoreModel>, SdeConfig, ModelDirConfig);

static MODEL_CACHE: std::sync::Mutex<Vec<(ModelKey, SharedModel)>> =
    std::sync::Mutex::new(Vec::new());

/// [`load_model_dir`] through a process-wide cache of the last [`MODEL_CACHE_SIZE`] models, for
/// repeated reconstructions with one model: a notebook calling `scoreinv.reconstruct` once per
/// slice, or the several samplers of one study, read and build the network once. The network is
/// shared read-only (inference only).
pub fn load_model_dir_shared(dir: &Path, device: Device) -> Result<SharedModel> {
    let key = ModelKey {
        dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        device,
        autocast: crate::autocast::inference_autocast(),
        config: std::fs::read(dir.join("config.json")).ok(),
        weights: std::fs::metadata(dir.join("model.safetensors"))
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?))),
    };
    let cache = || MODEL_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, m)) = cache().iter().find(|(k, _)| *k == key) {
        return Ok(m.clone());
    }
    let (model, sde, cfg) = load_model_dir(dir, device)?;
    let shared: SharedModel = (std::sync::Arc::from(model), sde, cfg);
    let mut c = cache();
    // An older version of the same folder (other files) is never asked for again.
    c.retain(|(k, _)| (&k.dir, k.device, k.autocast) != (&key.dir, key.device, key.autocast));
    if c.len() >= MODEL_CACHE_SIZE {
        c.remove(0);
    }
    c.push((key, shared.clone()));
    Ok(shared)
}

/// Loads a model directory onto `device`: the score model (network + SDE wrapper with the EMA
/// weights), its SDE and the full config. The network's inference forward runs under the
/// process-wide [`crate::autocast::inference_autocast`] policy (the CLI's `--autocast`).
pub fn load_model_dir(
    dir: &Path,
    device: Device,
) -> Result<(Box<dyn ScoreModel>, SdeConfig, ModelDirConfig)> {
    let cfg = read_model_config(dir)?;
    if matches!(cfg.model, ModelConfig::Ncsnpp(_)) && cfg.score.scale_by_sigma {
        return Err(Error::format(
            dir.join("config.json"),
            "score.scale_by_sigma must be false for NCSN++: the network divides by σ itself \
             (model.model.scale_by_sigma)",
        ));
    }
    let sde_kind = cfg.sde.build()?.kind();
    let vs = nn::VarStore::new(device);
    let net_data = match &cfg.patch {
        Some(p) => {
            if p.size < 1 || p.max_patches < 1 || cfg.data.shape.len() != 3 {
                return Err(Error::format(
                    dir.join("config.json"),
                    format!(
                        "patch.size {} and patch.max_patches {} must be at least 1, on images \
                         [C, H, W] (data.shape {:?})",
                        p.size, p.max_patches, cfg.data.shape
                    ),
                ));
            }
            p.network_data(&cfg.data)
        }
        None => cfg.data.clone(),
    };
    let net = cfg.model.build(&vs.root(), &net_data, sde_kind)?;
    let mut vars = super::sorted_variables(&vs);
    let weights = read_weights(dir, &cfg.model, &vars, device)?;
    tch::no_grad(|| {
        for ((_, var), t) in vars.iter_mut().zip(&weights) {
            var.copy_(t);
        }
    });
    let model = NetScore::new(net, cfg.sde, cfg.score)?
        .with_autocast(crate::autocast::inference_autocast());
    let model: Box<dyn ScoreModel> = match &cfg.patch {
        Some(p) => Box::new(
            crate::models::patch::PatchScore::new(model, p.size, net_data.shape[0], p.max_patches)?
                .with_sample_shape(cfg.data.shape.clone())
                .with_position_frame((cfg.data.shape[1], cfg.data.shape[2])),
        ),
        None => Box::new(model.with_sample_shape(cfg.data.shape.clone())),
    };
    Ok((model, cfg.sde, cfg))
}
