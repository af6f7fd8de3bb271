//! What a [`Trainer`](super::Trainer) optimises: the [`Objective`] (the network, the loss of a
//! batch, the held-out evaluation, the export at the end) and its [`RunConfig`] (the serde
//! configuration, which names the objective and gives the loop its [`Schedule`]).
//!
//! The loop itself (data order, flips, random streams, Adam with warm-up and clipping, EMA,
//! logs, evaluation and checkpoint cadence, divergence, interrupts, resume) is the trainer's and
//! the same for every objective, as in score_sde_pytorch's `run_lib.train` with its
//! `losses.get_step_fn`. Two objectives exist: score matching ([`super::ScoreMatching`]: DSM,
//! SSM, NCSN, DDPM) and the time-dependent classifier's cross-entropy
//! ([`crate::guidance::train::Classification`]).

use super::checkpoint::{CheckpointMeta, Layout};
use super::data::Dataset;
use super::optim::OptimConfig;
use super::rng::Stream;
use crate::models::model_dir::DataInfo;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Tensor};

/// The loop's settings, the same for every objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Seed of every random stream (data order, flips, noise, initialisation).
    pub seed: u64,
    pub batch_size: usize,
    /// Total number of optimisation steps.
    pub n_iters: u64,
    /// Steps between `loss.csv` rows (0: none).
    pub log_freq: u64,
    /// Steps between held-out evaluations (0: only at the end).
    pub eval_freq: u64,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_freq: u64,
    /// Steps between sample grids (0: never).
    pub sample_freq: u64,
    /// Random horizontal flips of images.
    pub random_flip: bool,
    /// Fraction of the data held out for evaluation.
    pub heldout_fraction: f64,
}

/// What [`Objective::build`] builds from.
pub struct Setup<'a, C> {
    /// Where the network's variables go (libtorch's generator is seeded from the run's seed).
    pub vs: &'a nn::VarStore,
    /// All the data (before the held-out split).
    pub data: &'a Dataset,
    /// The checkpoint of a resumed run.
    pub saved: Option<&'a CheckpointMeta<C>>,
}

/// The configuration of a run: serialised into every checkpoint, it names its objective (so
/// that [`Trainer::new`](super::Trainer::new) knows which one to build) and gives the loop its
/// settings.
pub trait RunConfig: Clone + Serialize + DeserializeOwned {
    /// The objective this configuration trains.
    type Objective: Objective<Config = Self>;
    /// What, besides the seed and the batch size, a resumed run must keep (for messages).
    const KEPT_ON_RESUME: &'static str;
    /// The loop's settings.
    fn schedule(&self) -> Schedule;
    /// The optimiser's settings.
    fn optim(&self) -> &OptimConfig;
    /// Whether a run with this configuration trains the network of a checkpoint written with
    /// `saved` (what [`Self::KEPT_ON_RESUME`] names is unchanged).
    fn keeps_model_of(&self, saved: &Self) -> bool;
}

/// What differs between training a score model and training a classifier: the network, the
/// loss of a batch, the held-out evaluation and what the run exports.
pub trait Objective: Sized {
    /// The run's configuration.
    type Config: RunConfig<Objective = Self>;
    /// Result of a held-out evaluation of the EMA weights.
    type Eval: Clone + std::fmt::Debug + PartialEq;
    /// The run's checkpoint files.
    const CHECKPOINT: Layout;
    /// What the run is called in messages ("training", "classifier training").
    const WHAT: &'static str;
    /// Header of `loss.csv` (rows: [`super::StepStats::csv_row`]).
    const LOSS_CSV: &'static str;
    /// Header of `heldout.csv` (rows: the step, then [`Self::heldout_csv_row`]).
    const HELDOUT_CSV: &'static str;
    /// The folder of the run directory the final EMA weights are exported to.
    const EXPORT_DIR: &'static str;

    /// Checks `cfg` against the data (all of it, before the held-out split) and completes it
    /// (e.g. the image geometry of the network).
    fn prepare(cfg: Self::Config, data: &Dataset) -> Result<Self::Config>;

    /// The objective, with its network's variables in `setup.vs`.
    fn build(cfg: &Self::Config, setup: Setup<'_, Self::Config>) -> Result<Self>;

    /// What the checkpoint records as [`CheckpointMeta::n_classes`].
    fn n_classes(&self) -> Option<i64> {
        None
    }

    /// Augments a training batch after the random flips, with draws from `aug` (the step's
    /// augmentation stream, after the flip coins).
    fn augment(&self, _cfg: &Self::Config, x0: Tensor, _aug: &mut Stream) -> Tensor {
        x0
    }

    /// The loss (a scalar to minimise) of the training batch `x0` (samples `idx` of `train`, on
    /// the training device), every random draw from `noise`; and the accuracy on the batch
    /// where that means something.
    fn batch_loss(
        &self,
        cfg: &Self::Config,
        train: &Dataset,
        idx: &[i64],
        x0: &Tensor,
        noise: &mut Stream,
    ) -> Result<(Tensor, Option<f64>)>;

    /// Evaluates the network (which holds the EMA weights meanwhile) on `heldout`, with fixed
    /// random draws so that values are comparable across the run.
    fn evaluate(&self, cfg: &Self::Config, heldout: &Dataset, device: Device)
        -> Result<Self::Eval>;

    /// The `heldout.csv` columns after the step.
    fn heldout_csv_row(eval: &Self::Eval) -> String;

    /// Writes what an evaluation adds to the run directory besides its `heldout.csv` row.
    fn write_evaluation(&self, _run_dir: &Path, _step: u64, _eval: &Self::Eval) -> Result<()> {
        Ok(())
    }

    /// Draws samples from the network (which holds the EMA weights meanwhile) into `run_dir`
    /// after `step` steps; returns the file to show. Only called when the schedule's
    /// `sample_freq` is set.
    fn write_samples(
        &self,
        _cfg: &Self::Config,
        _info: &DataInfo,
        _step: u64,
        _run_dir: &Path,
        _device: Device,
    ) -> Result<PathBuf> {
        Err(Error::Invalid(format!("{} draws no samples", Self::WHAT)))
    }

    /// Writes the EMA weights of `snapshot` with everything needed to load them into the
    /// folder `dir`.
    fn export(&self, snapshot: Snapshot<'_, Self>, dir: &Path) -> Result<()>;
}

/// What [`Objective::export`] writes: the state of a run at a step.
pub struct Snapshot<'a, O: Objective> {
    pub cfg: &'a O::Config,
    /// The training data's description.
    pub data: &'a DataInfo,
    /// Steps completed.
    pub step: u64,
    /// `(name, tensor)` of the EMA weights, sorted by name.
    pub ema: Vec<(String, Tensor)>,
    /// The latest held-out evaluation.
    pub last_eval: Option<&'a O::Eval>,
}
