//! Training a time-dependent classifier `p_t(y | x(t))` (Song et al. 2021, App. I.4).
//!
//! Each step draws a batch `(x₀, y)` of labelled data, times `t ~ U(ε, 1)` (ε =
//! `sde.sampling_eps()` unless set), noise `z ~ N(0, I)`, perturbs with the SDE's transition
//! kernel `x_t = m(t) x₀ + s(t) z` ([`Sde::marginal_prob`](crate::sde::Sde::marginal_prob)) and minimises the cross-entropy
//! `−log softmax(f_φ(x_t, c(t)))_y`. The optimiser is the score trainer's ([`crate::train::optim`]:
//! Adam with linear warm-up, global-norm clipping, EMA of the weights); every random draw is a
//! function of `(seed, step)` ([`crate::train::rng`]), so a checkpoint (all weights, EMA, Adam
//! moments, step, seed; written atomically with [`crate::train::checkpoint`]'s helpers) resumes
//! bit-exactly. With `clean = true` the same network is trained on unperturbed data at the fixed
//! time ε: an ordinary classifier, used to score generated samples independently.
//!
//! Held-out accuracy of the EMA weights is tabulated per noise level: the row `t = ε` and
//! `n_t_bins` equal bins of `[ε, 1]` (`t` uniform within each bin), written to
//! `RUN_DIR/accuracy.csv` and `accuracy.json` (latest evaluation) and appended to
//! `RUN_DIR/heldout.csv` (step, accuracy at ε, mean over bins). The final EMA weights go to
//! `RUN_DIR/classifier/` (`config.json` + `model.safetensors`, read by [`load_classifier_dir`]).

use super::classifier::{
    ClassifierConfig, ConvClassifierConfig, MlpClassifierConfig, NetClassifier,
};
use crate::models::analytic::GaussianMixture;
use crate::models::model_dir::DataInfo;
use crate::models::TimeConditionedNet;
use crate::sde::{bcast, SdeConfig};
use crate::train::checkpoint::{write_atomic, write_tensors, TensorFile};
use crate::train::data::{random_flip, Dataset};
use crate::train::optim::{guarded_update, zero_grads, OptimConfig, OptimState};
use crate::train::rng::{Purpose, Stream};
use crate::train::CsvLog;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// Format tag of a classifier directory's `config.json`.
pub const CLASSIFIER_FORMAT: &str = "scoreinv-classifier/1";
/// Format tag of a classifier training checkpoint.
pub const CLASSIFIER_CHECKPOINT_FORMAT: &str = "scoreinv-classifier-checkpoint/1";
/// Commit file of a classifier checkpoint in the run directory.
pub const CLASSIFIER_CHECKPOINT_JSON: &str = "classifier-checkpoint.json";

fn d_batch() -> usize {
    128
}
fn d_iters() -> u64 {
    20_000
}
fn d_seed() -> u64 {
    42
}
fn d_heldout() -> f64 {
    0.1
}
fn d_log() -> u64 {
    50
}
fn d_eval() -> u64 {
    1000
}
fn d_ckpt() -> u64 {
    1000
}
fn d_bins() -> usize {
    10
}
fn d_eval_samples() -> usize {
    1000
}
fn d_true() -> bool {
    true
}

/// Everything a classifier run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierTrainConfig {
    pub model: ClassifierConfig,
    #[serde(default = "SdeConfig::ve_default")]
    pub sde: SdeConfig,
    #[serde(default)]
    pub optim: OptimConfig,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default = "d_iters")]
    pub n_iters: u64,
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Smallest training time ε; `None` = `sde.sampling_eps()`.
    #[serde(default)]
    pub eps: Option<f64>,
    /// Train an ordinary classifier on clean data (at the fixed time ε) instead.
    #[serde(default)]
    pub clean: bool,
    /// Images in `[-1, 1]` rather than `[0, 1]` (must match the score model).
    #[serde(default)]
    pub centered: bool,
    /// Random horizontal flips of images.
    #[serde(default = "d_true")]
    pub random_flip: bool,
    #[serde(default = "d_heldout")]
    pub heldout_fraction: f64,
    /// Loss CSV every this many steps (0 = never).
    #[serde(default = "d_log")]
    pub log_freq: u64,
    /// Held-out accuracy table every this many steps (0 = only at the end).
    #[serde(default = "d_eval")]
    pub eval_freq: u64,
    /// Checkpoint every this many steps (0 = only at the end).
    #[serde(default = "d_ckpt")]
    pub checkpoint_freq: u64,
    /// Number of equal time bins of `[ε, 1]` in the accuracy table.
    #[serde(default = "d_bins")]
    pub n_t_bins: usize,
    /// Held-out samples evaluated per bin (at most the held-out set).
    #[serde(default = "d_eval_samples")]
    pub eval_samples: usize,
}

/// Names accepted by [`classifier_preset`].
pub const CLASSIFIER_PRESETS: &[&str] = &["tiny", "toy2d", "fashion-mnist"];

/// Named configurations: `toy2d` (MLP for 2-D mixtures, VE σ ∈ [0.01, 10]), `tiny` (a small
/// conv net for quick image runs), `fashion-mnist` (conv net nf = 32, ch_mult 1,2,2, two blocks
/// per level, batch 128, 20 000 steps, VE σ ∈ [0.01, 50] as the Fashion-MNIST score presets).
pub fn classifier_preset(name: &str) -> Result<ClassifierTrainConfig> {
    let base = |model| ClassifierTrainConfig {
        model,
        sde: SdeConfig::ve_default(),
        optim: OptimConfig::default(),
        batch_size: d_batch(),
        n_iters: d_iters(),
        seed: d_seed(),
        eps: None,
        clean: false,
        centered: false,
        random_flip: true,
        heldout_fraction: d_heldout(),
        log_freq: d_log(),
        eval_freq: d_eval(),
        checkpoint_freq: d_ckpt(),
        n_t_bins: d_bins(),
        eval_samples: d_eval_samples(),
    };
    match name {
        "toy2d" => {
            let mut c = base(ClassifierConfig::Mlp(MlpClassifierConfig {
                hidden: 64,
                n_layers: 2,
                embed_dim: 16,
            }));
            c.sde = SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 10.0,
                n: 1000,
            };
            c.optim.lr = 3e-3;
            c.optim.warmup = 20;
            c.optim.ema_rate = 0.99;
            c.batch_size = 256;
            c.n_iters = 400;
            c.eval_freq = 100;
            c.checkpoint_freq = 100;
            Ok(c)
        }
        "tiny" => {
            let mut c = base(ClassifierConfig::Conv(ConvClassifierConfig {
                nf: 16,
                ch_mult: vec![1, 2],
                num_res_blocks: 1,
                dropout: 0.0,
                fourier_scale: 16.0,
            }));
            c.sde = SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 50.0,
                n: 1000,
            };
            c.optim.lr = 1e-3;
            c.optim.warmup = 100;
            c.batch_size = 64;
            c.n_iters = 500;
            c.eval_freq = 250;
            c.checkpoint_freq = 250;
            c.eval_samples = 256;
            Ok(c)
        }
        "fashion-mnist" => {
            let mut c = base(ClassifierConfig::Conv(ConvClassifierConfig {
                nf: 32,
                ch_mult: vec![1, 2, 2],
                num_res_blocks: 2,
                dropout: 0.1,
                fourier_scale: 16.0,
            }));
            c.sde = SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 50.0,
                n: 1000,
            };
            c.optim.lr = 2e-4;
            c.optim.warmup = 1000;
            c.random_flip = true;
            Ok(c)
        }
        _ => Err(Error::Config(format!(
            "unknown classifier preset '{name}' (known: {})",
            CLASSIFIER_PRESETS.join(", ")
        ))),
    }
}

impl ClassifierTrainConfig {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        self.optim.validate()?;
        let sde = self.sde.build()?;
        let eps = self.eps_or_default();
        if !(eps > 0.0 && eps < sde.t_end()) {
            return Err(Error::Config(format!(
                "classifier training eps must satisfy 0 < eps < T = {}, got {eps}",
                sde.t_end()
            )));
        }
        if self.batch_size < 1 || self.n_t_bins < 1 || self.eval_samples < 1 {
            return Err(Error::Config(format!(
                "batch_size, n_t_bins and eval_samples must be >= 1; got {}, {}, {}",
                self.batch_size, self.n_t_bins, self.eval_samples
            )));
        }
        if !(0.0..1.0).contains(&self.heldout_fraction) {
            return Err(Error::Config(format!(
                "heldout_fraction must be in [0, 1), got {}",
                self.heldout_fraction
            )));
        }
        Ok(())
    }

    /// ε: the configured one or the SDE's sampling ε.
    pub fn eps_or_default(&self) -> f64 {
        self.eps
            .unwrap_or_else(|| self.sde.build().map(|s| s.sampling_eps()).unwrap_or(1e-5))
    }
}

/// A 2-D mixture of three well-separated Gaussians (weights ⅓, means (−3, −2), (3, −2),
/// (0, 3), covariances with correlation), the labelled toy data `mixture2d`.
pub fn toy_mixture() -> GaussianMixture {
    GaussianMixture::new(
        &[1.0, 1.0, 1.0],
        &[vec![-3.0, -2.0], vec![3.0, -2.0], vec![0.0, 3.0]],
        &[
            vec![vec![0.6, 0.2], vec![0.2, 0.4]],
            vec![vec![0.4, -0.15], vec![-0.15, 0.6]],
            vec![vec![0.8, 0.0], vec![0.0, 0.3]],
        ],
    )
    .expect("the toy mixture's covariances are positive definite")
}

/// `n` labelled samples of `mixture` (torch's generator seeded with `seed`), as a [`Dataset`]
/// of vectors with the component index as label.
pub fn mixture_dataset(mixture: &GaussianMixture, n: usize, seed: u64) -> Result<Dataset> {
    if mixture.n_components() > 256 {
        return Err(Error::Invalid(
            "mixture datasets store labels as bytes: at most 256 components".into(),
        ));
    }
    tch::manual_seed(seed as i64);
    let (x, labels) = mixture.sample_with_labels(n as i64, Kind::Float, Device::Cpu);
    let labels: Vec<i64> = Vec::try_from(&labels)?;
    Dataset::new(
        x.reshape([n as i64, -1]),
        Some(labels.into_iter().map(|l| l as u8).collect()),
        DataInfo::vectors(
            mixture.dim() as i64,
            format!(
                "Gaussian mixture ({} components, {n} samples)",
                mixture.n_components()
            ),
        ),
    )
}

/// One row of the accuracy table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyRow {
    pub t_lo: f64,
    pub t_hi: f64,
    pub accuracy: f64,
    pub n: usize,
}

/// Contents of a classifier directory's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierDirConfig {
    /// Always [`CLASSIFIER_FORMAT`].
    pub format: String,
    pub model: ClassifierConfig,
    pub sde: SdeConfig,
    pub n_classes: i64,
    pub data: DataInfo,
    /// Trained on clean data only (use [`NetClassifier::clean_logits`]).
    #[serde(default)]
    pub clean: bool,
    /// Steps trained.
    #[serde(default)]
    pub step: u64,
    /// Held-out accuracy per time bin of the saved (EMA) weights.
    #[serde(default)]
    pub accuracy: Vec<AccuracyRow>,
}

/// Loads `dir/config.json` + `dir/model.safetensors` onto `device`.
pub fn load_classifier_dir(
    dir: &Path,
    device: Device,
) -> Result<(NetClassifier, ClassifierDirConfig)> {
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "classifier directory {} does not exist (expected a folder with config.json and model.safetensors)",
            dir.display()
        )));
    }
    let json = dir.join("config.json");
    let text = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
    let cfg: ClassifierDirConfig = serde_json::from_str(&text)
        .map_err(|e| Error::format(&json, format!("invalid classifier config: {e}")))?;
    if cfg.format != CLASSIFIER_FORMAT {
        return Err(Error::format(
            &json,
            format!(
                "format '{}' is not the supported '{CLASSIFIER_FORMAT}'",
                cfg.format
            ),
        ));
    }
    let weights = dir.join("model.safetensors");
    let file = TensorFile::read(&weights)?;
    let vs = nn::VarStore::new(device);
    let kind = cfg.sde.build()?.kind();
    let net = cfg
        .model
        .build(&vs.root(), &cfg.data.shape, cfg.n_classes, kind)?;
    let vars = crate::models::sorted_variables(&vs);
    let expected: std::collections::HashSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(extra) = file.names().iter().find(|n| !expected.contains(n.as_str())) {
        return Err(Error::Checkpoint {
            path: weights,
            msg: format!(
                "tensor '{extra}' does not belong to the {} classifier described in config.json",
                cfg.model.name()
            ),
        });
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in vars.iter() {
            let t = file.tensor(name, Some(&var.size()), device)?;
            var.shallow_clone().copy_(&t);
        }
        Ok(())
    })?;
    let clf =
        NetClassifier::new(net, cfg.sde, cfg.n_classes, cfg.data.shape.clone())?.with_var_store(vs);
    Ok((clf, cfg))
}

/// The non-tensor half of a classifier checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierCheckpointMeta {
    pub format: String,
    pub step: u64,
    pub seed: u64,
    pub ema_num_updates: u64,
    /// Tensor file name relative to the run directory.
    pub tensors: String,
    pub config: ClassifierTrainConfig,
    pub n_classes: i64,
    pub data: DataInfo,
    pub last_loss: Option<f64>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierStepStats {
    /// Steps completed after this one.
    pub step: u64,
    pub loss: f64,
    /// Accuracy on the (perturbed) training batch.
    pub batch_accuracy: f64,
    pub lr: f64,
    pub grad_norm: f64,
}

/// Events of [`ClassifierTrainer::run`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClassifierEvent {
    Step(ClassifierStepStats),
    /// Held-out accuracy at `t = ε` and averaged over the time bins, with the whole table.
    Accuracy {
        step: u64,
        at_eps: f64,
        mean: f64,
        rows: Vec<AccuracyRow>,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
}

/// The state and loop of classifier training.
pub struct ClassifierTrainer {
    cfg: ClassifierTrainConfig,
    device: Device,
    _vs: nn::VarStore,
    model: NetClassifier,
    n_classes: i64,
    /// Sorted variables, trainable indices, Adam, EMA and (with `optim.flat_buffers`) the
    /// contiguous buffers.
    opt: OptimState,
    step: u64,
    train: Dataset,
    train_labels: Tensor,
    heldout: Option<(Dataset, Tensor)>,
    epoch_perm: Option<(u64, Vec<i64>)>,
    last_loss: Option<f64>,
    last_accuracy: Vec<AccuracyRow>,
}

fn labels_tensor(d: &Dataset) -> Result<Tensor> {
    let l = d.labels.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "classifier training needs labelled data; '{}' has no labels (for IDX data, put train-labels-idx1-ubyte next to the images)",
            d.info.source
        ))
    })?;
    let v: Vec<i64> = l.iter().map(|&x| x as i64).collect();
    Ok(Tensor::from_slice(&v))
}

impl ClassifierTrainer {
    /// A fresh run on labelled `data` (split by `cfg.heldout_fraction`); `K` = largest label + 1.
    pub fn new(cfg: ClassifierTrainConfig, data: &Dataset, device: Device) -> Result<Self> {
        let n_classes = labels_tensor(data)?.max().int64_value(&[]) + 1;
        Self::with_classes(cfg, data, device, n_classes)
    }

    fn with_classes(
        cfg: ClassifierTrainConfig,
        data: &Dataset,
        device: Device,
        n_classes: i64,
    ) -> Result<Self> {
        cfg.validate()?;
        let all_labels = labels_tensor(data)?;
        let max_label = all_labels.max().int64_value(&[]);
        if n_classes < 2 || max_label >= n_classes {
            return Err(Error::Invalid(format!(
                "classifier training needs labels in [0, K) with K >= 2; data '{}' has largest label {max_label}, K = {n_classes}",
                data.info.source
            )));
        }
        let (train, heldout) = data.split(cfg.heldout_fraction)?;
        let train_labels = labels_tensor(&train)?;
        let heldout = match heldout {
            Some(h) => {
                let l = labels_tensor(&h)?;
                Some((h, l))
            }
            None => None,
        };
        tch::manual_seed(Stream::new(cfg.seed, 0, Purpose::Torch).seed_u64() as i64);
        let vs = nn::VarStore::new(device);
        let sde_kind = cfg.sde.build()?.kind();
        let net: Box<dyn TimeConditionedNet> =
            cfg.model
                .build(&vs.root(), &data.info.shape, n_classes, sde_kind)?;
        let model = NetClassifier::new(net, cfg.sde, n_classes, data.info.shape.clone())?;
        let opt = OptimState::new(&vs, &cfg.optim);
        Ok(Self {
            cfg,
            device,
            _vs: vs,
            model,
            n_classes,
            opt,
            step: 0,
            train,
            train_labels,
            heldout,
            epoch_perm: None,
            last_loss: None,
            last_accuracy: vec![],
        })
    }

    /// Continues the run in `run_dir` on the same labelled data. `adjust` may change settings
    /// that keep the random streams and the model (e.g. `n_iters`, frequencies, `optim.lr`).
    pub fn resume(
        run_dir: &Path,
        data: &Dataset,
        device: Device,
        adjust: impl FnOnce(&mut ClassifierTrainConfig),
    ) -> Result<Self> {
        let (meta, file) = read_classifier_checkpoint(run_dir)?;
        if meta.data.shape != data.info.shape {
            return Err(Error::Config(format!(
                "the classifier checkpoint in {} was trained on samples of shape {:?} ({}), the data given has shape {:?} ({})",
                run_dir.display(),
                meta.data.shape,
                meta.data.source,
                data.info.shape,
                data.info.source
            )));
        }
        let mut cfg = meta.config.clone();
        adjust(&mut cfg);
        if cfg.seed != meta.seed
            || cfg.model != meta.config.model
            || cfg.sde != meta.config.sde
            || cfg.batch_size != meta.config.batch_size
            || cfg.clean != meta.config.clean
            || cfg.eps != meta.config.eps
        {
            return Err(Error::Config(
                "a resumed classifier run must keep the seed, model, SDE, eps, clean mode and batch size of its checkpoint".into(),
            ));
        }
        let mut tr = Self::with_classes(cfg, data, device, meta.n_classes)?;
        tr.opt
            .load_checkpoint(&file, device, meta.step, meta.ema_num_updates)?;
        tr.step = meta.step;
        tr.last_loss = meta.last_loss;
        Ok(tr)
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }
    /// The configuration.
    pub fn config(&self) -> &ClassifierTrainConfig {
        &self.cfg
    }
    /// Number of classes.
    pub fn n_classes(&self) -> i64 {
        self.n_classes
    }
    /// The training data description.
    pub fn data_info(&self) -> &DataInfo {
        &self.train.info
    }
    /// The classifier being trained (current weights).
    pub fn classifier(&self) -> &NetClassifier {
        &self.model
    }
    /// `(name, tensor)` of the current weights, sorted by name.
    pub fn weights(&self) -> Vec<(String, Tensor)> {
        self.opt
            .names
            .iter()
            .cloned()
            .zip(self.opt.params.iter().map(|p| p.detach().copy()))
            .collect()
    }
    /// `(name, tensor)` of the EMA weights.
    pub fn ema_weights(&self) -> Vec<(String, Tensor)> {
        self.opt
            .names
            .iter()
            .cloned()
            .zip(self.opt.ema.shadow.iter().map(|p| p.copy()))
            .collect()
    }

    /// Replaces the current weights with the EMA weights (e.g. to evaluate them).
    pub fn load_ema_into_model(&mut self) {
        tch::no_grad(|| {
            for (p, s) in self.opt.params.iter_mut().zip(&self.opt.ema.shadow) {
                p.copy_(s);
            }
        });
    }

    fn batch_indices(&mut self) -> Vec<i64> {
        let n = self.train.len() as u64;
        let b = self.cfg.batch_size as u64;
        let mut out = Vec::with_capacity(b as usize);
        for pos in self.step * b..(self.step + 1) * b {
            let epoch = pos / n;
            if self.epoch_perm.as_ref().map(|(e, _)| *e) != Some(epoch) {
                let perm =
                    Stream::new(self.cfg.seed, epoch, Purpose::DataOrder).permutation(n as usize);
                self.epoch_perm = Some((epoch, perm));
            }
            out.push(
                self.epoch_perm
                    .as_ref()
                    .map(|(_, p)| p[(pos % n) as usize])
                    .unwrap_or(0),
            );
        }
        out
    }

    /// Perturbs `x0` at times drawn from `stream`: `t ~ U(lo, hi)` per sample (clean mode:
    /// `x0` itself at `t = ε`). Returns `(x_t, t)`.
    fn perturb(&self, x0: &Tensor, stream: &mut Stream, lo: f64, hi: f64) -> (Tensor, Tensor) {
        let b = x0.size()[0];
        let eps = self.cfg.eps_or_default();
        if self.cfg.clean {
            let t = Tensor::full([b], eps, (Kind::Float, x0.device()));
            return (x0.shallow_clone(), t);
        }
        // The SDE config was validated at construction.
        let sde = self.cfg.sde.build().expect("validated SDE");
        perturb_in_bin(sde.as_ref(), x0, stream, lo, hi)
    }

    fn trainable_params(&self) -> Vec<Tensor> {
        self.opt
            .trainable
            .iter()
            .map(|&i| self.opt.params[i].shallow_clone())
            .collect()
    }

    /// One optimisation step; a non-finite loss or gradient returns [`Error::Diverged`] before
    /// any parameter changes.
    pub fn train_step(&mut self) -> Result<ClassifierStepStats> {
        let seed = self.cfg.seed;
        let idx = self.batch_indices();
        let mut x0 = self.train.gather(&idx);
        if self.cfg.random_flip {
            let coins = Stream::new(seed, self.step, Purpose::Augment).coins(idx.len());
            x0 = random_flip(&x0, &coins);
        }
        let x0 = x0.to_device(self.device);
        let y = self
            .train_labels
            .index_select(0, &Tensor::from_slice(&idx))
            .to_device(self.device);
        let mut stream = Stream::new(seed, self.step, Purpose::Loss);
        tch::manual_seed(Stream::new(seed, self.step, Purpose::Torch).seed_u64() as i64);
        let eps = self.cfg.eps_or_default();
        let (xt, t) = self.perturb(&x0, &mut stream, eps, 1.0);
        let tp = self.trainable_params();
        zero_grads(&tp, self.opt.flat.as_ref());
        let logits = self.model.logits_train(&xt, &t, true);
        let loss = logits.cross_entropy_for_logits(&y);
        let lv = loss.double_value(&[]);
        let acc = tch::no_grad(|| {
            logits
                .argmax(1, false)
                .eq_tensor(&y)
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[])
        });
        let lr = self.cfg.optim.lr_at(self.step);
        let gn = guarded_update(
            "classifier training",
            self.step,
            &loss,
            lv,
            lr,
            &tp,
            &self.opt.params,
            &mut self.opt.adam,
            &mut self.opt.ema,
            self.opt.flat.as_mut(),
            &self.cfg.optim,
        )?;
        self.step += 1;
        self.last_loss = Some(lv);
        Ok(ClassifierStepStats {
            step: self.step,
            loss: lv,
            batch_accuracy: acc,
            lr,
            grad_norm: gn,
        })
    }

    /// Held-out accuracy of the EMA weights: the row `t = ε`, then `n_t_bins` bins of `[ε, 1]`
    /// (clean mode: only the `t = ε` row, on unperturbed data). Fixed evaluation noise
    /// (`Purpose::Eval`, keyed by the bin), so values are comparable across the run. Empty
    /// without a held-out set.
    pub fn heldout_accuracy(&mut self) -> Result<Vec<AccuracyRow>> {
        let Some((ho, ho_labels)) = &self.heldout else {
            return Ok(vec![]);
        };
        let n = self.cfg.eval_samples.min(ho.len());
        let idx: Vec<i64> = (0..n as i64).collect();
        let x0 = ho.gather(&idx).to_device(self.device);
        let y = ho_labels.narrow(0, 0, n as i64).to_device(self.device);
        let bins = accuracy_bins(self.cfg.eps_or_default(), self.cfg.n_t_bins, self.cfg.clean);
        let backup: Vec<Tensor> = self.opt.params.iter().map(|p| p.detach().copy()).collect();
        tch::no_grad(|| {
            for (p, s) in self.opt.params.iter_mut().zip(&self.opt.ema.shadow) {
                p.copy_(s);
            }
        });
        let mut rows = Vec::with_capacity(bins.len());
        let chunk = 256i64;
        for (bi, &(lo, hi)) in bins.iter().enumerate() {
            let mut stream = Stream::new(self.cfg.seed, bi as u64, Purpose::Eval);
            let (xt, t) = self.perturb(&x0, &mut stream, lo, hi);
            let mut correct = 0i64;
            let mut start = 0i64;
            while start < n as i64 {
                let len = chunk.min(n as i64 - start);
                let logits = tch::no_grad(|| {
                    self.model.logits_train(
                        &xt.narrow(0, start, len),
                        &t.narrow(0, start, len),
                        false,
                    )
                });
                correct += n_correct(&logits, &y.narrow(0, start, len));
                start += len;
            }
            rows.push(AccuracyRow {
                t_lo: lo,
                t_hi: hi,
                accuracy: correct as f64 / n as f64,
                n,
            });
        }
        tch::no_grad(|| {
            for (p, b) in self.opt.params.iter_mut().zip(&backup) {
                p.copy_(b);
            }
        });
        self.last_accuracy = rows.clone();
        Ok(rows)
    }

    fn meta(&self) -> ClassifierCheckpointMeta {
        ClassifierCheckpointMeta {
            format: CLASSIFIER_CHECKPOINT_FORMAT.into(),
            step: self.step,
            seed: self.cfg.seed,
            ema_num_updates: self.opt.ema.num_updates,
            tensors: format!("classifier-ckpt-{:08}.safetensors", self.step),
            config: self.cfg.clone(),
            n_classes: self.n_classes,
            data: self.train.info.clone(),
            last_loss: self.last_loss,
        }
    }

    /// Writes the full training state into `run_dir` (tensor file, then the JSON that commits
    /// it, then removal of the previous tensor file). Returns the JSON path.
    pub fn save_checkpoint(&self, run_dir: &Path) -> Result<PathBuf> {
        let previous = std::fs::read_to_string(run_dir.join(CLASSIFIER_CHECKPOINT_JSON))
            .ok()
            .and_then(|t| serde_json::from_str::<ClassifierCheckpointMeta>(&t).ok());
        let meta = self.meta();
        let tensors = self.opt.checkpoint_tensors();
        let mut md = HashMap::new();
        md.insert("step".to_string(), meta.step.to_string());
        md.insert(
            "format".to_string(),
            CLASSIFIER_CHECKPOINT_FORMAT.to_string(),
        );
        write_tensors(&run_dir.join(&meta.tensors), &tensors, md)?;
        let json = run_dir.join(CLASSIFIER_CHECKPOINT_JSON);
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| Error::format(&json, format!("serialising checkpoint metadata: {e}")))?;
        write_atomic(&json, text.as_bytes())?;
        if let Some(prev) = previous {
            if prev.tensors != meta.tensors {
                let _ = std::fs::remove_file(run_dir.join(prev.tensors));
            }
        }
        Ok(json)
    }

    /// Writes the EMA weights and the last accuracy table as a classifier directory.
    pub fn export_classifier_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg = ClassifierDirConfig {
            format: CLASSIFIER_FORMAT.into(),
            model: self.cfg.model.clone(),
            sde: self.cfg.sde,
            n_classes: self.n_classes,
            data: self.train.info.clone(),
            clean: self.cfg.clean,
            step: self.step,
            accuracy: self.last_accuracy.clone(),
        };
        let mut md = HashMap::new();
        md.insert("format".to_string(), CLASSIFIER_FORMAT.to_string());
        write_tensors(&dir.join("model.safetensors"), &self.ema_weights(), md)?;
        let json = dir.join("config.json");
        let text = serde_json::to_string_pretty(&cfg)
            .map_err(|e| Error::format(&json, format!("serialising classifier config: {e}")))?;
        write_atomic(&json, text.as_bytes())
    }

    fn write_accuracy(&self, run_dir: &Path, step: u64, rows: &[AccuracyRow]) -> Result<()> {
        let mut csv = String::from("t_lo,t_hi,accuracy,n\n");
        for r in rows {
            csv.push_str(&format!("{},{},{},{}\n", r.t_lo, r.t_hi, r.accuracy, r.n));
        }
        write_atomic(&run_dir.join("accuracy.csv"), csv.as_bytes())?;
        let json = serde_json::json!({ "step": step, "rows": rows });
        write_atomic(
            &run_dir.join("accuracy.json"),
            serde_json::to_string_pretty(&json)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    /// Trains until `n_iters` steps, writing `loss.csv` (step, loss, batch_accuracy, lr),
    /// `heldout.csv` (step, accuracy_at_eps, mean_accuracy), `accuracy.csv/json`, checkpoints,
    /// and finally `classifier/`. Returns the classifier directory.
    pub fn run(
        &mut self,
        run_dir: &Path,
        on_event: &mut dyn FnMut(&ClassifierEvent),
    ) -> Result<PathBuf> {
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let mut loss_csv = CsvLog::open(
            &run_dir.join("loss.csv"),
            "step,loss,batch_accuracy,lr",
            self.step,
        )?;
        let mut eval_csv = CsvLog::open(
            &run_dir.join("heldout.csv"),
            "step,accuracy_at_eps,mean_accuracy",
            self.step,
        )?;
        let mut last_ckpt = if self.step > 0 && run_dir.join(CLASSIFIER_CHECKPOINT_JSON).exists() {
            (self.step, run_dir.join(CLASSIFIER_CHECKPOINT_JSON))
        } else {
            (self.step, self.save_checkpoint(run_dir)?)
        };
        let mut evaluated_at = None;
        while self.step < self.cfg.n_iters {
            let s = match self.train_step() {
                Ok(s) => s,
                Err(Error::Diverged(msg)) => {
                    loss_csv.flush()?;
                    return Err(Error::Diverged(format!(
                        "{msg}. The last good checkpoint is {} (step {}); lower the learning rate and continue with `--resume`",
                        last_ckpt.1.display(),
                        last_ckpt.0
                    )));
                }
                Err(e) => return Err(e),
            };
            on_event(&ClassifierEvent::Step(s));
            if self.cfg.log_freq > 0 && (s.step % self.cfg.log_freq == 0 || s.step == 1) {
                loss_csv.row(&format!(
                    "{},{},{},{}",
                    s.step, s.loss, s.batch_accuracy, s.lr
                ))?;
            }
            if self.cfg.eval_freq > 0 && s.step % self.cfg.eval_freq == 0 {
                self.evaluate(run_dir, &mut eval_csv, on_event)?;
                evaluated_at = Some(s.step);
            }
            let interrupted = crate::interrupt::requested();
            if interrupted
                || (self.cfg.checkpoint_freq > 0 && s.step % self.cfg.checkpoint_freq == 0)
            {
                loss_csv.flush()?;
                eval_csv.flush()?;
                let p = self.save_checkpoint(run_dir)?;
                last_ckpt = (s.step, p.clone());
                on_event(&ClassifierEvent::Checkpoint {
                    step: s.step,
                    path: p,
                });
            }
            if interrupted {
                return Err(Error::Interrupted(format!(
                    "interrupted at step {}: the checkpoint {} holds it; continue with `--resume`",
                    s.step,
                    last_ckpt.1.display()
                )));
            }
        }
        if evaluated_at != Some(self.step) {
            self.evaluate(run_dir, &mut eval_csv, on_event)?;
        }
        loss_csv.flush()?;
        eval_csv.flush()?;
        if last_ckpt.0 != self.step {
            let p = self.save_checkpoint(run_dir)?;
            on_event(&ClassifierEvent::Checkpoint {
                step: self.step,
                path: p,
            });
        }
        let dir = run_dir.join("classifier");
        self.export_classifier_dir(&dir)?;
        Ok(dir)
    }

    fn evaluate(
        &mut self,
        run_dir: &Path,
        eval_csv: &mut CsvLog,
        on_event: &mut dyn FnMut(&ClassifierEvent),
    ) -> Result<()> {
        let rows = self.heldout_accuracy()?;
        if rows.is_empty() {
            return Ok(());
        }
        self.write_accuracy(run_dir, self.step, &rows)?;
        let at_eps = rows[0].accuracy;
        let bins = if rows.len() > 1 {
            &rows[1..]
        } else {
            &rows[..]
        };
        let mean = bins.iter().map(|r| r.accuracy).sum::<f64>() / bins.len() as f64;
        eval_csv.row(&format!("{},{at_eps},{mean}", self.step))?;
        on_event(&ClassifierEvent::Accuracy {
            step: self.step,
            at_eps,
            mean,
            rows,
        });
        Ok(())
    }
}

/// `x_t = m(t) x₀ + s(t) z` with `t ~ U(lo, hi)` per sample and `z ~ N(0, I)`, both from
/// `stream` (the transition kernel of `sde`); returns `(x_t, t)`.
fn perturb_in_bin(
    sde: &dyn crate::sde::Sde,
    x0: &Tensor,
    stream: &mut Stream,
    lo: f64,
    hi: f64,
) -> (Tensor, Tensor) {
    let b = x0.size()[0];
    let u = stream.uniform(b as usize);
    let ts: Vec<f32> = u.iter().map(|&u| (lo + (hi - lo) * u) as f32).collect();
    let t = Tensor::from_slice(&ts).to_device(x0.device());
    let z = stream.normal(&x0.size(), Kind::Float, x0.device());
    let (mean, std) = sde.marginal_prob(x0, &t);
    (mean + bcast(&std.to_kind(Kind::Float), x0) * z, t)
}

/// How many rows of `logits` have their largest entry at their label in `y`.
fn n_correct(logits: &Tensor, y: &Tensor) -> i64 {
    logits
        .argmax(1, false)
        .eq_tensor(y)
        .sum(Kind::Int64)
        .int64_value(&[])
}

/// The time bins of an accuracy table: `t = ε`, then (time-dependent classifiers) `k` equal bins
/// of `[ε, 1]`.
fn accuracy_bins(eps: f64, k: usize, clean: bool) -> Vec<(f64, f64)> {
    let mut bins = vec![(eps, eps)];
    if !clean {
        bins.extend((0..k).map(|i| {
            (
                eps + (1.0 - eps) * i as f64 / k as f64,
                eps + (1.0 - eps) * (i + 1) as f64 / k as f64,
            )
        }));
    }
    bins
}

/// Accuracy of a saved classifier on a labelled dataset in its data space (e.g. the
/// Fashion-MNIST test set): the row `t = ε` (`ε` = the SDE's sampling ε), then, for a
/// time-dependent classifier, `n_t_bins` equal bins of `[ε, 1]` with `x_t = m(t) x₀ + s(t) z`
/// drawn from fixed streams (`seed`), as the held-out table of training (`n_t_bins = 0`: only
/// the row `t = ε`).
pub fn dataset_accuracy(
    net: &NetClassifier,
    cfg: &ClassifierDirConfig,
    data: &Dataset,
    n_t_bins: usize,
    seed: u64,
    device: Device,
) -> Result<Vec<AccuracyRow>> {
    let range = |centered: bool| if centered { "[-1, 1]" } else { "[0, 1]" };
    if data.info.shape != cfg.data.shape || data.info.centered != cfg.data.centered {
        return Err(Error::Invalid(format!(
            "the classifier was trained on {:?} images in {} but the data is {:?} in {}",
            cfg.data.shape,
            range(cfg.data.centered),
            data.info.shape,
            range(data.info.centered),
        )));
    }
    let labels = data.labels.as_ref().ok_or_else(|| {
        Error::Invalid(format!("{}: no labels to score against", data.info.source))
    })?;
    if let Some(&bad) = labels.iter().find(|&&l| l as i64 >= cfg.n_classes) {
        return Err(Error::Invalid(format!(
            "label {bad} in {} is outside the classifier's {} classes",
            data.info.source, cfg.n_classes
        )));
    }
    let sde = cfg.sde.build()?;
    let eps = sde.sampling_eps();
    let bins = accuracy_bins(eps, n_t_bins, cfg.clean);
    let n = data.len() as i64;
    let y_all = Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let chunk = 512i64;
    let mut rows = Vec::with_capacity(bins.len());
    for (bi, &(lo, hi)) in bins.iter().enumerate() {
        let mut stream = Stream::new(seed, bi as u64, Purpose::Eval);
        let mut correct = 0i64;
        let mut start = 0i64;
        while start < n {
            let len = chunk.min(n - start);
            let x0 = data.data.narrow(0, start, len).to_device(device);
            let logits = tch::no_grad(|| {
                if cfg.clean {
                    net.clean_logits(&x0)
                } else {
                    let (xt, t) = perturb_in_bin(sde.as_ref(), &x0, &mut stream, lo, hi);
                    net.logits_train(&xt, &t, false)
                }
            });
            let y = y_all.narrow(0, start, len).to_device(device);
            correct += n_correct(&logits, &y);
            start += len;
        }
        rows.push(AccuracyRow {
            t_lo: lo,
            t_hi: hi,
            accuracy: correct as f64 / n as f64,
            n: n as usize,
        });
    }
    Ok(rows)
}

/// Reads `run_dir/classifier-checkpoint.json` and opens (and checks) the tensor file it names.
pub fn read_classifier_checkpoint(
    run_dir: &Path,
) -> Result<(ClassifierCheckpointMeta, TensorFile)> {
    let json = run_dir.join(CLASSIFIER_CHECKPOINT_JSON);
    let text = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
    let meta: ClassifierCheckpointMeta =
        serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
            path: json.clone(),
            msg: format!("invalid classifier checkpoint JSON: {e}"),
        })?;
    if meta.format != CLASSIFIER_CHECKPOINT_FORMAT {
        return Err(Error::Checkpoint {
            path: json,
            msg: format!(
                "format '{}' is not the supported '{CLASSIFIER_CHECKPOINT_FORMAT}'",
                meta.format
            ),
        });
    }
    let tpath = run_dir.join(&meta.tensors);
    let file = TensorFile::read(&tpath)?;
    if file.metadata().get("step").map(String::as_str) != Some(meta.step.to_string().as_str()) {
        return Err(Error::Checkpoint {
            path: tpath,
            msg: format!(
                "tensor file does not record step {} named by {CLASSIFIER_CHECKPOINT_JSON}",
                meta.step
            ),
        });
    }
    Ok((meta, file))
}
