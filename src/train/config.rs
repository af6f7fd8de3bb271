//! [`TrainConfig`]: everything a training run needs, serde (TOML or JSON) with score_sde_pytorch's
//! published defaults, plus named presets.
//!
//! Defaults (score_sde_pytorch `configs/default_cifar10_configs.py`): batch 128, 1 300 001
//! iterations, log every 50, evaluate every 100, preemption snapshot every 10 000 steps,
//! continuous DSM without likelihood weighting and with `½Σ` reduction, Adam 2e-4 / 0.9 / 0.999 /
//! 1e-8, warm-up 5000, gradient clip 1, `data.centered = false`, `random_flip = true`.

use super::losses::LossConfig;
use super::optim::OptimConfig;
use crate::models::mlp::{CondEmbedding, MlpConfig};
use crate::models::model_dir::ModelConfig;
use crate::models::score_net::NetScoreOptions;
use crate::sde::SdeConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

fn d_batch() -> usize {
    128
}
fn d_iters() -> u64 {
    1_300_001
}
fn d_log() -> u64 {
    50
}
fn d_eval() -> u64 {
    100
}
fn d_ckpt() -> u64 {
    10_000
}
fn d_sample_n() -> usize {
    16
}
fn d_seed() -> u64 {
    42
}
fn d_heldout() -> f64 {
    0.05
}
pub(crate) fn d_true() -> bool {
    true
}

/// The loop: batch size, length, logging/evaluation/checkpoint periods, seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Total number of optimisation steps.
    #[serde(default = "d_iters")]
    pub n_iters: u64,
    /// Steps between loss CSV rows.
    #[serde(default = "d_log")]
    pub log_freq: u64,
    /// Steps between held-out DSM evaluations (0: only the one at the end of a run).
    #[serde(default = "d_eval")]
    pub eval_freq: u64,
    /// Steps between checkpoints (0: only at the end).
    #[serde(default = "d_ckpt")]
    pub checkpoint_freq: u64,
    /// Seed of every random stream (data order, flips, noise, initialisation).
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Batch size of the held-out evaluation (default: `batch_size`).
    #[serde(default)]
    pub eval_batch_size: Option<usize>,
    /// Steps between sample grids of the EMA weights, `samples/step_NNNNNNN.png` (and `.npy`)
    /// in the run folder (0: never). score_sde_pytorch samples at every snapshot
    /// (`snapshot_sampling`), so the default is the checkpoint period.
    #[serde(default = "d_ckpt")]
    pub sample_freq: u64,
    /// Samples per grid.
    #[serde(default = "d_sample_n")]
    pub sample_n: usize,
    /// Steps `N` of the grid's predictor–corrector sampler (the default PC sampler of
    /// `scoreinv sample`); `None`: the SDE's own N (the published setting, slow on a CPU).
    #[serde(default)]
    pub sample_steps: Option<usize>,
    /// Mixed precision on CUDA through libtorch autocast ([`crate::autocast`]): convolutions
    /// and matrix products in `autocast_dtype`, parameters, optimizer and loss in float32.
    #[serde(default)]
    pub autocast: bool,
    /// Dtype of the autocast regions: `bfloat16` (default; float32's exponent range, no loss
    /// scaling) or `float16`.
    #[serde(default)]
    pub autocast_dtype: crate::autocast::AutocastDtype,
    /// The model directory whose weights this run started from (set by
    /// [`Trainer::fine_tune`](crate::train::Trainer::fine_tune), `scoreinv train --init`);
    /// `None`: a network initialised at random. Kept for provenance: resuming reads the
    /// checkpoint, not this directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            batch_size: d_batch(),
            n_iters: d_iters(),
            log_freq: d_log(),
            eval_freq: d_eval(),
            checkpoint_freq: d_ckpt(),
            seed: d_seed(),
            eval_batch_size: None,
            sample_freq: d_ckpt(),
            sample_n: d_sample_n(),
            sample_steps: None,
            autocast: false,
            autocast_dtype: Default::default(),
            init: None,
        }
    }
}

/// How data is presented to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Model space `[-1, 1]` instead of `[0, 1]` (images only).
    #[serde(default)]
    pub centered: bool,
    /// Random horizontal flips of images (p = ½).
    #[serde(default = "d_true")]
    pub random_flip: bool,
    /// Probability that a training image's intensities are remapped by a random piecewise-linear
    /// curve ([`crate::train::data::random_contrast`]; 0: never). Teaches a prior shapes rather
    /// than one contrast (MRI of unseen weightings). Default 0, as published.
    #[serde(default)]
    pub random_contrast: f64,
    /// Fraction of the data held out for evaluation (deterministic split).
    #[serde(default = "d_heldout")]
    pub heldout_fraction: f64,
    /// Train a position-aware patch model (PaDIS, [`crate::train::patches`]): random
    /// `patch_size × patch_size` patches of the full-resolution images with two position
    /// channels; the network is built for the patch, the model scores images of any size
    /// ([`crate::models::patch::PatchScore`]). `None`: whole images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_size: Option<i64>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            centered: false,
            random_flip: true,
            random_contrast: 0.0,
            heldout_fraction: d_heldout(),
            patch_size: None,
        }
    }
}

/// A complete training configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default = "SdeConfig::ve_default")]
    pub sde: SdeConfig,
    /// Options of the network→score wrapper (`scale_by_sigma` for VE nets without their own).
    #[serde(default)]
    pub score: NetScoreOptions,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default)]
    pub training: TrainingConfig,
    #[serde(default)]
    pub data: DataConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: ModelConfig::default(),
            sde: SdeConfig::ve_default(),
            score: NetScoreOptions::default(),
            loss: LossConfig::default(),
            optim: OptimConfig::default(),
            training: TrainingConfig::default(),
            data: DataConfig::default(),
        }
    }
}

/// Names accepted by [`preset`].
pub const PRESETS: &[&str] = &[
    "tiny",
    "toy2d",
    "ncsnpp-tiny",
    "ncsnpp-64",
    "ncsnpp-color-64",
    "ncsnpp-patch64",
    "ddpmpp-fmnist",
];

impl TrainConfig {
    /// Takes the image geometry of NCSN++ (`data.num_channels`, `data.image_size`,
    /// `data.centered`) from the data it will be trained on, so one preset serves any size.
    /// A patch model (`data.patch_size = P`) takes `P × P` patches plus two position channels.
    pub fn fitted_to(mut self, info: &crate::models::model_dir::DataInfo) -> Self {
        let patch = self.data.patch_size;
        if let ModelConfig::Ncsnpp(sc) = &mut self.model {
            if let (Some(p), [c, _, _]) = (patch, &info.shape[..]) {
                sc.data.num_channels = *c as usize;
                sc.data.image_size = p.max(0) as usize;
                sc.data.extra_input_channels = 2;
            } else if let [c, h, w] = info.shape[..] {
                if h == w {
                    sc.data.num_channels = c as usize;
                    sc.data.image_size = h as usize;
                }
            }
            sc.data.centered = info.centered;
        }
        self
    }

    /// Reads a TOML (`.toml`) or JSON file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: TrainConfig = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| Error::format(path, e.to_string()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every section.
    /// The sampler of the periodic sample grids: `scoreinv sample`'s default PC sampler with
    /// `training.sample_steps` steps.
    pub fn grid_sampler_flags(&self) -> crate::sampling::SamplerOptions {
        crate::sampling::SamplerOptions {
            steps: self.training.sample_steps,
            ..Default::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let sde = self.sde.build()?;
        self.loss.validate(sde.kind())?;
        self.optim.validate()?;
        let t = &self.training;
        if t.batch_size < 1 || t.eval_batch_size == Some(0) {
            return Err(Error::Config(
                "training.batch_size must be at least 1".into(),
            ));
        }
        if t.sample_freq > 0 {
            if t.sample_n == 0 {
                return Err(Error::Config(
                    "training.sample_n must be at least 1 when training.sample_freq > 0".into(),
                ));
            }
            crate::sampling::run::build_sampler(&self.grid_sampler_flags(), &self.sde)
                .map_err(|e| Error::Config(format!("training.sample_steps: {e}")))?;
        }
        if !(0.0..=1.0).contains(&self.data.random_contrast) {
            return Err(Error::Config(format!(
                "data.random_contrast is a probability in [0, 1], got {}",
                self.data.random_contrast
            )));
        }
        if let Some(p) = self.data.patch_size {
            if p < 4 {
                return Err(Error::Config(format!(
                    "data.patch_size must be at least 4 pixels, got {p}"
                )));
            }
            if !matches!(self.model, ModelConfig::Ncsnpp(_)) {
                return Err(Error::Config(
                    "data.patch_size needs an NCSN++/DDPM++ network (it takes the position \
                     channels); the MLP presets train on whole images"
                        .into(),
                ));
            }
            if self.loss.kind != super::losses::LossKind::Dsm {
                return Err(Error::Config(format!(
                    "patch training uses the DSM loss; loss.kind is {}",
                    self.loss.name()
                )));
            }
        }
        if !(0.0..1.0).contains(&self.data.heldout_fraction) {
            return Err(Error::Config(format!(
                "data.heldout_fraction must lie in [0, 1), got {}",
                self.data.heldout_fraction
            )));
        }
        Ok(())
    }
}

/// The optimiser and loop of the shipped CPU-trained priors (`ncsnpp-64`, `ddpmpp-fmnist`):
/// lr 5e-4 (small networks tolerate more than NCSN++'s published 2e-4) with warm-up 500, EMA
/// 0.999 (the published 0.9999 averages over more steps than a CPU run takes), up to 20 000
/// steps of `batch`, a loss row every 25 steps, held-out DSM every 500, a checkpoint every 250
/// (a few minutes of CPU, so little is lost when a background run is stopped).
fn shipped_cpu_schedule(cfg: &mut TrainConfig, batch: usize) {
    cfg.optim.lr = 5e-4;
    cfg.optim.warmup = 500;
    cfg.optim.ema_rate = 0.999;
    cfg.training.batch_size = batch;
    cfg.training.n_iters = 20_000;
    cfg.training.log_freq = 25;
    cfg.training.eval_freq = 500;
    cfg.training.checkpoint_freq = 250;
    cfg.training.sample_freq = 1000;
    cfg.training.sample_n = 16;
    cfg.training.sample_steps = Some(100);
}

/// The loop of the smoke-test presets (`tiny`, `ncsnpp-tiny`): 200 steps of `batch` at lr 1e-3
/// (warm-up 20, EMA 0.99), a loss row every 10 steps, held-out DSM every 50, a checkpoint and a
/// sample grid (8 samples, 25 PC steps) every 100.
fn smoke_schedule(cfg: &mut TrainConfig, batch: usize) {
    cfg.optim.lr = 1e-3;
    cfg.optim.warmup = 20;
    cfg.optim.ema_rate = 0.99;
    cfg.training.batch_size = batch;
    cfg.training.n_iters = 200;
    cfg.training.log_freq = 10;
    cfg.training.eval_freq = 50;
    cfg.training.checkpoint_freq = 100;
    cfg.training.sample_freq = 100;
    cfg.training.sample_n = 8;
    cfg.training.sample_steps = Some(25);
}

/// The small VE NCSN++ of the shipped 64×64 priors (biggan blocks, FIR, progressive input,
/// Fourier embedding; nf 16, ch_mult 1,2,2,2, one block per level, attention at 8×8) on the VE
/// SDE with σ_min 0.01 and the given σ_max, trained with [`shipped_cpu_schedule`] at batch 16.
/// The channel count and size come from the data ([`TrainConfig::fitted_to`]).
fn small_ncsnpp_ve(cfg: &mut TrainConfig, sigma_max: f64) {
    let mut sc = crate::models::config::ScoreSdeConfig::default();
    sc.model.nf = 16;
    sc.model.ch_mult = vec![1, 2, 2, 2];
    sc.model.num_res_blocks = 1;
    sc.model.attn_resolutions = vec![8];
    sc.model.fourier_scale = 16.0;
    sc.model.sigma_max = sigma_max;
    sc.model.sigma_min = 0.01;
    cfg.model = ModelConfig::Ncsnpp(sc);
    cfg.sde = SdeConfig::Ve {
        sigma_min: 0.01,
        sigma_max,
        n: 1000,
    };
    cfg.score.scale_by_sigma = false;
    shipped_cpu_schedule(cfg, 16);
}

/// A named preset.
///
/// * `tiny`: MLP (64 wide, 2 layers) on VE, 200 steps of batch 16, seconds on a CPU; for smoke
///   tests of the whole pipeline on any data.
/// * `toy2d`: MLP (128 wide, 3 layers) for 2-D toy data on VE (σ_min 0.01, σ_max 10 — about the
///   diameter of such data), 5000 steps of batch 256, lr 1e-3 (a small MLP tolerates more than
///   NCSN++'s 2e-4), warm-up 100, EMA 0.999.
/// * `ncsnpp-tiny`: a few-thousand-parameter NCSN++ for tests.
/// * `ncsnpp-64`: the shipped CT and MRI priors (`ct-ellipses`, `ct-head`, `mri-brain`): VE NCSN++ at 64×64×1,
///   σ_max 30, batch 16, lr 5e-4 (model cards in `data/models/`).
/// * `ncsnpp-color-64`: the shipped `color-64` prior: the same network on RGB 64×64 photo crops,
///   σ_max 100.
/// * `ncsnpp-patch64`: the shipped native-resolution patch priors (`ct-head-patch`): the
///   `ncsnpp-64` network on 64×64 patches plus two position channels (PaDIS), σ_max 30, batch
///   16 patches; sample grids (full images, expensive) of 2 images every 1 000 steps.
/// * `ddpmpp-fmnist`: the shipped `fashion-mnist` prior: VP DDPM++ at 28×28×1, batch 32.
pub fn preset(name: &str) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::default();
    match name {
        "tiny" => {
            cfg.model = ModelConfig::Mlp(MlpConfig {
                hidden: 64,
                n_layers: 2,
                embed_dim: 16,
                embedding: Some(CondEmbedding::Fourier),
            });
            cfg.sde = SdeConfig::ve_default();
            cfg.score.scale_by_sigma = true;
            smoke_schedule(&mut cfg, 16);
        }
        "toy2d" => {
            cfg.model = ModelConfig::Mlp(MlpConfig::default());
            cfg.sde = SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 10.0,
                n: 1000,
            };
            cfg.score.scale_by_sigma = true;
            cfg.optim.lr = 1e-3;
            cfg.optim.warmup = 100;
            cfg.training.batch_size = 256;
            cfg.training.n_iters = 5000;
            cfg.training.log_freq = 50;
            cfg.training.eval_freq = 500;
            cfg.training.checkpoint_freq = 1000;
            cfg.training.sample_freq = 1000;
            cfg.training.sample_n = 256;
            cfg.training.sample_steps = Some(200);
            cfg.data.random_flip = false;
        }
        "ncsnpp-tiny" => {
            // A few-thousand-parameter NCSN++ (VE, biggan blocks, FIR, progressive input) for
            // tests and smoke runs: seconds per hundred steps on CPU at 16×16.
            let mut sc = crate::models::config::ScoreSdeConfig::default();
            sc.model.nf = 8;
            sc.model.ch_mult = vec![1, 2];
            sc.model.num_res_blocks = 1;
            sc.model.attn_resolutions = vec![];
            sc.model.fourier_scale = 16.0;
            cfg.model = ModelConfig::Ncsnpp(sc);
            cfg.sde = SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 10.0,
                n: 1000,
            };
            cfg.score.scale_by_sigma = false;
            smoke_schedule(&mut cfg, 8);
        }
        "ncsnpp-64" => {
            // The CPU-trainable CT prior of the shipped `ct-ellipses` / `ct-head` models: VE
            // NCSN++ at 64×64×1, widths cut down so a step of batch 16 takes about a second on
            // 2 CPU cores. σ_max = 30 ≥ the largest pairwise distance of such 64² images in
            // [0, 1] (measured: 27 for 500 ellipse phantoms, 20 for the head-CT axial slices)
            // (Technique 1 of Song & Ermon 2020, "Improved techniques").
            small_ncsnpp_ve(&mut cfg, 30.0);
        }
        "ncsnpp-color-64" => {
            // The shipped `color-64` prior: the same network on RGB 64×64 crops of photos,
            // σ_max = 100 ≥ the largest pairwise distance of such crops in [0, 1] (measured: 95
            // for 600 random crops of data/color-photos.txt).
            small_ncsnpp_ve(&mut cfg, 100.0);
        }
        "ncsnpp-patch64" => {
            // Patches of 64 pixels (61 mm at the 0.96 mm of the InVesalius head) with their
            // positions; σ_max = 30 as for the whole 64² images (a patch of 64² pixels in
            // [0, 1] has the same largest pairwise distance bound).
            small_ncsnpp_ve(&mut cfg, 30.0);
            cfg.data.patch_size = Some(64);
            cfg.training.sample_n = 2;
            cfg.training.sample_steps = Some(50);
        }
        "ddpmpp-fmnist" => {
            // The shipped `fashion-mnist` prior: DDPM++ (cont.) on the VP SDE, as
            // score_sde_pytorch `configs/vp/cifar10_ddpmpp_continuous.py` (biggan blocks without
            // FIR, no pyramids, positional embedding, centred data), cut down for 28×28×1 on a CPU.
            let mut sc = crate::models::config::ScoreSdeConfig::default();
            sc.model.nf = 32;
            sc.model.ch_mult = vec![1, 2, 2];
            sc.model.num_res_blocks = 1;
            sc.model.attn_resolutions = vec![7];
            sc.model.fir = false;
            sc.model.progressive = "none".into();
            sc.model.progressive_input = "none".into();
            sc.model.embedding_type = "positional".into();
            sc.model.scale_by_sigma = false;
            cfg.model = ModelConfig::Ncsnpp(sc);
            cfg.sde = SdeConfig::vp_default();
            cfg.score.scale_by_sigma = false;
            cfg.data.centered = true;
            shipped_cpu_schedule(&mut cfg, 32);
        }
        other => {
            return Err(Error::Config(format!(
                "unknown preset '{other}'; available: {}",
                PRESETS.join(", ")
            )))
        }
    }
    cfg.validate()?;
    Ok(cfg)
}
