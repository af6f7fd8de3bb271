//! Training a time-dependent classifier `p_t(y | x(t))` (Song et al. 2021, App. I.4): the
//! [`Classification`] objective of the one [`Trainer`].
//!
//! Each step draws a batch `(x₀, y)` of labelled data, times `t ~ U(ε, 1)` (ε =
//! `sde.sampling_eps()` unless set), noise `z ~ N(0, I)`, perturbs with the SDE's transition
//! kernel `x_t = m(t) x₀ + s(t) z` ([`Sde::marginal_prob`](crate::sde::Sde::marginal_prob)) and
//! minimises the cross-entropy `−log softmax(f_φ(x_t, c(t)))_y`. The loop is the score
//! trainer's ([`crate::train`]: Adam with linear warm-up, global-norm clipping, EMA of the
//! weights, every random draw a function of `(seed, step)`), and so is the checkpoint
//! ([`crate::train::checkpoint`], in `classifier-checkpoint.json` + `classifier-ckpt-…`), which
//! resumes bit-exactly. With `clean = true` the same network is trained on unperturbed data at
//! the fixed time ε: an ordinary classifier, used to score generated samples independently.
//!
//! Held-out accuracy of the EMA weights is tabulated per noise level: the row `t = ε` and
//! `n_t_bins` equal bins of `[ε, 1]` (`t` uniform within each bin), written to
//! `RUN_DIR/accuracy.csv` and `accuracy.json` (latest evaluation) and appended to
//! `RUN_DIR/heldout.csv` (step, accuracy at ε, mean over bins). The final EMA weights go to
//! `RUN_DIR/classifier/` (`config.json` + `model.safetensors`, read by [`load_classifier_dir`]).

use super::classifier::{
    ClassifierConfig, ConvClassifierConfig, MlpClassifierConfig, NetClassifier,
};
use crate::io::atomic::write_bytes;
use crate::models::analytic::GaussianMixture;
use crate::models::model_dir::DataInfo;
use crate::models::TimeConditionedNet;
use crate::sde::{bcast, SdeConfig};
use crate::train::checkpoint::{write_tensors, CheckpointMeta, Layout, TensorFile};
use crate::train::data::Dataset;
use crate::train::optim::OptimConfig;
use crate::train::rng::{Purpose, Stream};
use crate::train::{Event, Objective, RunConfig, Schedule, Setup, Snapshot, Trainer};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Format tag of a classifier directory's `config.json`.
pub const CLASSIFIER_FORMAT: &str = "scoreinv-classifier/1";
/// Format tag of a classifier training checkpoint.
pub const CLASSIFIER_CHECKPOINT_FORMAT: &str = "scoreinv-classifier-checkpoint/1";
/// Commit file of a classifier checkpoint in the run directory.
pub const CLASSIFIER_CHECKPOINT_JSON: &str = "classifier-checkpoint.json";

/// A serde default given by value where the field is declared.
fn u64_default<const V: u64>() -> u64 {
    V
}
fn usize_default<const V: usize>() -> usize {
    V
}
fn d_heldout() -> f64 {
    0.1
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
    #[serde(default = "usize_default::<128>")]
    pub batch_size: usize,
    #[serde(default = "u64_default::<20_000>")]
    pub n_iters: u64,
    #[serde(default = "u64_default::<42>")]
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
    #[serde(default = "crate::train::config::d_true")]
    pub random_flip: bool,
    #[serde(default = "d_heldout")]
    pub heldout_fraction: f64,
    /// Loss CSV every this many steps (0 = never).
    #[serde(default = "u64_default::<50>")]
    pub log_freq: u64,
    /// Held-out accuracy table every this many steps (0 = only at the end).
    #[serde(default = "u64_default::<1000>")]
    pub eval_freq: u64,
    /// Checkpoint every this many steps (0 = only at the end).
    #[serde(default = "u64_default::<1000>")]
    pub checkpoint_freq: u64,
    /// Number of equal time bins of `[ε, 1]` in the accuracy table.
    #[serde(default = "usize_default::<10>")]
    pub n_t_bins: usize,
    /// Held-out samples evaluated per bin (at most the held-out set).
    #[serde(default = "usize_default::<1000>")]
    pub eval_samples: usize,
}

/// Names accepted by [`classifier_preset`].
pub const CLASSIFIER_PRESETS: &[&str] = &["tiny", "toy2d", "fashion-mnist"];

/// Named configurations: `toy2d` (MLP for 2-D mixtures, VE σ ∈ [0.01, 10]), `tiny` (a small
/// conv net for quick image runs), `fashion-mnist` (conv net nf = 32, ch_mult 1,2,2, two blocks
/// per level, batch 128, 20 000 steps, VE σ ∈ [0.01, 50] as the Fashion-MNIST score presets).
pub fn classifier_preset(name: &str) -> Result<ClassifierTrainConfig> {
    let base = ClassifierTrainConfig::with_model;
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
    /// `model` with the default of every other field (those of the serde attributes).
    pub fn with_model(model: ClassifierConfig) -> Self {
        serde_json::from_value(serde_json::json!({ "model": model }))
            .expect("a model alone is a complete classifier configuration")
    }

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

/// Checks that the classifier of `dir` (config `clf`) can guide the score model of config
/// `model`: a time-dependent classifier (not `clean`) trained for the model's SDE on the model's
/// data space, since guidance feeds the model's `x(t)` to it.
pub fn check_guidance_pair(
    model: &crate::models::model_dir::ModelDirConfig,
    clf: &ClassifierDirConfig,
    dir: &Path,
) -> Result<()> {
    if clf.sde != model.sde {
        return Err(Error::Config(format!(
            "classifier {} was trained for {:?}, the model for {:?}: guidance needs one SDE",
            dir.display(),
            clf.sde,
            model.sde
        )));
    }
    let (md, cd) = (&model.data, &clf.data);
    if md.shape != cd.shape || md.centered != cd.centered || md.data_range != cd.data_range {
        return Err(Error::Config(format!(
            "classifier {} sees images {:?} (centred {}, range {:?}) but the model's x(t) are {:?} \
             (centred {}, range {:?}): guidance feeds the model's x(t) to the classifier, so \
             train it on the same data space (train-classifier --centered for a centred model)",
            dir.display(),
            cd.shape,
            cd.centered,
            cd.data_range,
            md.shape,
            md.centered,
            md.data_range
        )));
    }
    if clf.clean {
        return Err(Error::Config(format!(
            "{} is a clean classifier (`clean`): guidance needs a time-dependent one (a clean \
             classifier scores the samples: `eval_classifier`)",
            dir.display()
        )));
    }
    Ok(())
}

/// The class of each of `n` guided samples: `classes` (every class of an `n_classes`-class
/// classifier when empty) cycled over the samples.
pub fn cycled_labels(classes: &[i64], n_classes: i64, n: usize) -> Result<Vec<i64>> {
    let classes: Vec<i64> = if classes.is_empty() {
        (0..n_classes).collect()
    } else {
        classes.to_vec()
    };
    if let Some(c) = classes.iter().find(|&&c| c < 0 || c >= n_classes) {
        return Err(Error::Config(format!(
            "`class` {c}: the classifier has classes 0..{}",
            n_classes - 1
        )));
    }
    if classes.is_empty() {
        return Err(Error::Config("the classifier has no classes".into()));
    }
    Ok((0..n).map(|i| classes[i % classes.len()]).collect())
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

/// The checkpoint files of a classifier run.
pub const CLASSIFIER_CHECKPOINT: Layout = Layout {
    json: CLASSIFIER_CHECKPOINT_JSON,
    format: CLASSIFIER_CHECKPOINT_FORMAT,
    tensor_prefix: "classifier-ckpt-",
};

/// The non-tensor half of a classifier checkpoint.
pub type ClassifierCheckpointMeta = CheckpointMeta<ClassifierTrainConfig>;

/// The state and loop of classifier training.
pub type ClassifierTrainer = Trainer<Classification>;

/// Events of [`ClassifierTrainer::run`].
pub type ClassifierEvent = Event<AccuracyTable>;

/// A held-out evaluation of a classifier: the accuracy table and its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyTable {
    /// Accuracy at `t = ε` (the first row).
    pub at_eps: f64,
    /// Mean accuracy over the time bins (over the one row in clean mode).
    pub mean: f64,
    pub rows: Vec<AccuracyRow>,
}

impl AccuracyTable {
    fn new(rows: Vec<AccuracyRow>) -> Self {
        let bins = if rows.len() > 1 {
            &rows[1..]
        } else {
            &rows[..]
        };
        Self {
            at_eps: rows.first().map_or(0.0, |r| r.accuracy),
            mean: bins.iter().map(|r| r.accuracy).sum::<f64>() / bins.len().max(1) as f64,
            rows,
        }
    }
}

/// The cross-entropy of a time-dependent (or, `clean`, an ordinary) classifier on perturbed
/// labelled data: the objective of `scoreinv train-classifier`.
pub struct Classification {
    model: NetClassifier,
    n_classes: i64,
}

/// The labels of `d`, which a classifier needs.
fn labels(d: &Dataset) -> Result<&[u8]> {
    d.labels.as_deref().ok_or_else(|| {
        Error::Invalid(format!(
            "classifier training needs labelled data; '{}' has no labels (for IDX data, put train-labels-idx1-ubyte next to the images)",
            d.info.source
        ))
    })
}

/// The labels of samples `idx` of `d` as an Int64 tensor.
fn labels_tensor(d: &Dataset, idx: &[i64]) -> Result<Tensor> {
    let l = labels(d)?;
    let v: Vec<i64> = idx.iter().map(|&i| l[i as usize] as i64).collect();
    Ok(Tensor::from_slice(&v))
}

impl RunConfig for ClassifierTrainConfig {
    type Objective = Classification;
    const KEPT_ON_RESUME: &'static str = "model, SDE, eps and clean mode";

    fn schedule(&self) -> Schedule {
        Schedule {
            seed: self.seed,
            batch_size: self.batch_size,
            n_iters: self.n_iters,
            log_freq: self.log_freq,
            eval_freq: self.eval_freq,
            checkpoint_freq: self.checkpoint_freq,
            sample_freq: 0,
            random_flip: self.random_flip,
            heldout_fraction: self.heldout_fraction,
        }
    }

    fn optim(&self) -> &OptimConfig {
        &self.optim
    }

    fn keeps_model_of(&self, saved: &Self) -> bool {
        self.model == saved.model
            && self.sde == saved.sde
            && self.clean == saved.clean
            && self.eps == saved.eps
    }
}

impl Classification {
    /// Perturbs `x0` at times drawn from `stream`: `t ~ U(lo, hi)` per sample (clean mode:
    /// `x0` itself at `t = ε`). Returns `(x_t, t)`.
    fn perturb(
        cfg: &ClassifierTrainConfig,
        x0: &Tensor,
        stream: &mut Stream,
        lo: f64,
        hi: f64,
    ) -> (Tensor, Tensor) {
        let b = x0.size()[0];
        if cfg.clean {
            let t = Tensor::full([b], cfg.eps_or_default(), (Kind::Float, x0.device()));
            return (x0.shallow_clone(), t);
        }
        // The SDE config was validated at construction.
        let sde = cfg.sde.build().expect("validated SDE");
        perturb_in_bin(sde.as_ref(), x0, stream, lo, hi)
    }
}

impl Objective for Classification {
    type Config = ClassifierTrainConfig;
    type Eval = AccuracyTable;
    const CHECKPOINT: Layout = CLASSIFIER_CHECKPOINT;
    const WHAT: &'static str = "classifier training";
    const LOSS_CSV: &'static str = "step,loss,batch_accuracy,lr";
    const HELDOUT_CSV: &'static str = "step,accuracy_at_eps,mean_accuracy";
    const EXPORT_DIR: &'static str = "classifier";

    fn prepare(cfg: ClassifierTrainConfig, data: &Dataset) -> Result<ClassifierTrainConfig> {
        labels(data)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// `K` = the checkpoint's for a resumed run, else the largest label + 1.
    fn build(cfg: &ClassifierTrainConfig, setup: Setup<'_, Self::Config>) -> Result<Self> {
        let (vs, data) = (setup.vs, setup.data);
        let max_label = labels(data)?.iter().max().map_or(0, |&l| l as i64);
        let n_classes = setup
            .saved
            .and_then(|m| m.n_classes)
            .unwrap_or(max_label + 1);
        if n_classes < 2 || max_label >= n_classes {
            return Err(Error::Invalid(format!(
                "classifier training needs labels in [0, K) with K >= 2; data '{}' has largest label {max_label}, K = {n_classes}",
                data.info.source
            )));
        }
        let sde_kind = cfg.sde.build()?.kind();
        let net: Box<dyn TimeConditionedNet> =
            cfg.model
                .build(&vs.root(), &data.info.shape, n_classes, sde_kind)?;
        let model = NetClassifier::new(net, cfg.sde, n_classes, data.info.shape.clone())?;
        Ok(Self { model, n_classes })
    }

    fn n_classes(&self) -> Option<i64> {
        Some(self.n_classes)
    }

    fn batch_loss(
        &self,
        cfg: &ClassifierTrainConfig,
        train: &Dataset,
        idx: &[i64],
        x0: &Tensor,
        noise: &mut Stream,
    ) -> Result<(Tensor, Option<f64>)> {
        let y = labels_tensor(train, idx)?.to_device(x0.device());
        let (xt, t) = Self::perturb(cfg, x0, noise, cfg.eps_or_default(), 1.0);
        let logits = self.model.logits_train(&xt, &t, true);
        let loss = logits.cross_entropy_for_logits(&y);
        let accuracy = tch::no_grad(|| n_correct(&logits, &y) as f64 / idx.len() as f64);
        Ok((loss, Some(accuracy)))
    }

    /// The row `t = ε`, then `n_t_bins` bins of `[ε, 1]` (clean mode: only the `t = ε` row, on
    /// unperturbed data), on up to `eval_samples` held-out samples; the evaluation noise is
    /// keyed by the bin (`Purpose::Eval`).
    fn evaluate(
        &self,
        cfg: &ClassifierTrainConfig,
        heldout: &Dataset,
        device: Device,
    ) -> Result<AccuracyTable> {
        let n = cfg.eval_samples.min(heldout.len());
        let idx: Vec<i64> = (0..n as i64).collect();
        let x0 = heldout.gather(&idx).to_device(device);
        let y = labels_tensor(heldout, &idx)?.to_device(device);
        let bins = accuracy_bins(cfg.eps_or_default(), cfg.n_t_bins, cfg.clean);
        let mut rows = Vec::with_capacity(bins.len());
        let chunk = 256i64;
        for (bi, &(lo, hi)) in bins.iter().enumerate() {
            let mut stream = Stream::new(cfg.seed, bi as u64, Purpose::Eval);
            let (xt, t) = Self::perturb(cfg, &x0, &mut stream, lo, hi);
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
        Ok(AccuracyTable::new(rows))
    }

    fn heldout_csv_row(eval: &AccuracyTable) -> String {
        format!("{},{}", eval.at_eps, eval.mean)
    }

    /// `accuracy.csv` and `accuracy.json`: the latest table.
    fn write_evaluation(&self, run_dir: &Path, step: u64, eval: &AccuracyTable) -> Result<()> {
        let mut csv = String::from("t_lo,t_hi,accuracy,n\n");
        for r in &eval.rows {
            csv.push_str(&format!("{},{},{},{}\n", r.t_lo, r.t_hi, r.accuracy, r.n));
        }
        write_bytes(&run_dir.join("accuracy.csv"), csv.as_bytes())?;
        let json = serde_json::json!({ "step": step, "rows": eval.rows });
        write_bytes(
            &run_dir.join("accuracy.json"),
            serde_json::to_string_pretty(&json)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    /// A classifier directory (`config.json` + `model.safetensors`, read by
    /// [`load_classifier_dir`]) with the latest accuracy table.
    fn export(&self, snapshot: Snapshot<'_, Self>, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let cfg = snapshot.cfg;
        let dir_cfg = ClassifierDirConfig {
            format: CLASSIFIER_FORMAT.into(),
            model: cfg.model.clone(),
            sde: cfg.sde,
            n_classes: self.n_classes,
            data: snapshot.data.clone(),
            clean: cfg.clean,
            step: snapshot.step,
            accuracy: snapshot
                .last_eval
                .map(|e| e.rows.clone())
                .unwrap_or_default(),
        };
        let mut md = HashMap::new();
        md.insert("format".to_string(), CLASSIFIER_FORMAT.to_string());
        write_tensors(&dir.join("model.safetensors"), &snapshot.ema, md)?;
        let json = dir.join("config.json");
        let text = serde_json::to_string_pretty(&dir_cfg)
            .map_err(|e| Error::format(&json, format!("serialising classifier config: {e}")))?;
        write_bytes(&json, text.as_bytes())
    }
}

impl Trainer<Classification> {
    /// Number of classes.
    pub fn n_classes(&self) -> i64 {
        self.objective().n_classes
    }

    /// The classifier being trained (current weights).
    pub fn classifier(&self) -> &NetClassifier {
        &self.objective().model
    }

    /// Held-out accuracy of the EMA weights, per noise level ([`Classification::evaluate`]);
    /// empty without a held-out set.
    pub fn heldout_accuracy(&mut self) -> Result<Vec<AccuracyRow>> {
        Ok(self.evaluate()?.map(|e| e.rows).unwrap_or_default())
    }

    /// Writes the EMA weights and the last accuracy table as a classifier directory.
    pub fn export_classifier_dir(&self, dir: &Path) -> Result<()> {
        self.export(dir)
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
    CLASSIFIER_CHECKPOINT.read(run_dir)
}
