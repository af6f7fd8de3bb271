//! Score matching as an [`Objective`]: the network (any [`TimeConditionedNet`] built from a
//! [`ModelConfig`](crate::models::model_dir::ModelConfig)) wrapped as a [`NetScore`] for the
//! configured SDE, the loss of [`LossConfig`] (DSM, SSM, NCSN, DDPM), the held-out DSM loss,
//! sample grids, and a model directory (`RUN_DIR/model`, see [`crate::models::model_dir`]) at
//! the end.

use super::checkpoint::{self, Layout};
use super::config::TrainConfig;
use super::data::{self, Dataset};
use super::losses::{LossConfig, LossKind};
use super::objective::{Objective, RunConfig, Schedule, Setup, Snapshot};
use super::optim::OptimConfig;
use super::rng::{Purpose, Stream};
use super::Trainer;
use crate::models::model_dir::{
    read_model_config, read_weights, save_model_dir, DataInfo, ModelDirConfig, TrainingInfo,
    MODEL_FORMAT,
};
use crate::models::score_net::NetScore;
use crate::models::TimeConditionedNet;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Score matching of a network: the objective of `scoreinv train`.
pub struct ScoreMatching {
    model: NetScore<dyn TimeConditionedNet>,
    /// The patch side of a patch model (`data.patch_size`, [`super::patches`]).
    patch: Option<i64>,
}

impl RunConfig for TrainConfig {
    type Objective = ScoreMatching;
    const KEPT_ON_RESUME: &'static str = "model and SDE";

    fn schedule(&self) -> Schedule {
        let t = &self.training;
        Schedule {
            seed: t.seed,
            batch_size: t.batch_size,
            n_iters: t.n_iters,
            log_freq: t.log_freq,
            eval_freq: t.eval_freq,
            checkpoint_freq: t.checkpoint_freq,
            sample_freq: t.sample_freq,
            random_flip: self.data.random_flip,
            heldout_fraction: self.data.heldout_fraction,
        }
    }

    fn optim(&self) -> &OptimConfig {
        &self.optim
    }

    fn keeps_model_of(&self, saved: &Self) -> bool {
        self.model == saved.model && self.sde == saved.sde
    }
}

impl Objective for ScoreMatching {
    type Config = TrainConfig;
    /// The held-out DSM loss.
    type Eval = f64;
    const CHECKPOINT: Layout = checkpoint::SCORE;
    const WHAT: &'static str = "training";
    const LOSS_CSV: &'static str = "step,loss,lr";
    const HELDOUT_CSV: &'static str = "step,heldout_dsm_loss";
    const EXPORT_DIR: &'static str = "model";

    fn prepare(cfg: TrainConfig, data: &Dataset) -> Result<TrainConfig> {
        let cfg = cfg.fitted_to(&data.info);
        cfg.validate()?;
        cfg.model.check_data(&network_data(&cfg, &data.info)?)?;
        if cfg.data.random_contrast > 0.0 && data.info.shape.len() < 3 {
            return Err(Error::Config(format!(
                "data.random_contrast remaps image intensities, but {} holds vectors of shape {:?}",
                data.info.source, data.info.shape
            )));
        }
        Ok(cfg)
    }

    fn build(cfg: &TrainConfig, setup: Setup<'_, TrainConfig>) -> Result<Self> {
        let (vs, data) = (setup.vs, setup.data);
        let sde_kind = cfg.sde.build()?.kind();
        let net_data = network_data(cfg, &data.info)?;
        let net = cfg.model.build(&vs.root(), &net_data, sde_kind)?;
        let model = NetScore::new(net, cfg.sde, cfg.score)?.with_sample_shape(net_data.shape);
        Ok(Self {
            model,
            patch: cfg.data.patch_size,
        })
    }

    /// Random contrast: the draws follow the flip coins in the augmentation stream (so runs
    /// without it draw exactly what they always did).
    fn augment(&self, cfg: &TrainConfig, x0: Tensor, aug: &mut Stream) -> Tensor {
        let p = cfg.data.random_contrast;
        if p <= 0.0 {
            return x0;
        }
        let n = x0.size()[0] as usize;
        let apply: Vec<bool> = aug.uniform(n).iter().map(|&v| v < p).collect();
        let u = aug.uniform(n * data::CONTRAST_KNOTS);
        data::random_contrast(&x0, &apply, &u, cfg.data.centered)
    }

    fn batch_loss(
        &self,
        cfg: &TrainConfig,
        _train: &Dataset,
        _idx: &[i64],
        x0: &Tensor,
        noise: &mut Stream,
    ) -> Result<(Tensor, Option<f64>)> {
        let device = x0.device();
        let use_autocast = cfg.training.autocast && device.is_cuda();
        let loss = crate::autocast::with_autocast(
            device,
            use_autocast,
            cfg.training.autocast_dtype,
            || match self.patch {
                Some(p) => self.patch_loss(&cfg.loss, x0, p, noise, true),
                None => cfg.loss.loss(&self.model, x0, noise, true),
            },
        )?;
        Ok((loss.to_kind(Kind::Float), None))
    }

    /// The DSM loss (the configured reduction and weighting) on up to `eval_batch_size`
    /// held-out samples.
    fn evaluate(&self, cfg: &TrainConfig, heldout: &Dataset, device: Device) -> Result<f64> {
        let t = &cfg.training;
        let b = t.eval_batch_size.unwrap_or(t.batch_size).min(heldout.len());
        let x0 = heldout
            .gather(&(0..b as i64).collect::<Vec<_>>())
            .to_device(device);
        let loss_cfg = LossConfig {
            kind: LossKind::Dsm,
            ..cfg.loss.clone()
        };
        let mut noise = Stream::new(t.seed, 0, Purpose::Eval);
        let loss = tch::no_grad(|| match self.patch {
            Some(p) => self.patch_loss(&loss_cfg, &x0, p, &mut noise, false),
            None => loss_cfg.loss(&self.model, &x0, &mut noise, false),
        })?;
        Ok(loss.double_value(&[]))
    }

    fn heldout_csv_row(eval: &f64) -> String {
        eval.to_string()
    }

    /// `training.sample_n` samples with `scoreinv sample`'s default PC sampler
    /// (`training.sample_steps` steps) into `run_dir/samples/` as `step_NNNNNNN.npy` (raw
    /// data range) and, for images, `step_NNNNNNN.png` (a grid); returns the PNG (or NPY) path.
    /// libtorch's generator is seeded from the run's seed, so every grid starts from the same
    /// prior noise (grids of a run are comparable); the training streams are keyed by
    /// `(seed, step)` and libtorch is reseeded every step, so sampling does not change the
    /// training trajectory (resume stays bit-exact).
    fn write_samples(
        &self,
        cfg: &TrainConfig,
        info: &DataInfo,
        step: u64,
        run_dir: &Path,
        device: Device,
    ) -> Result<PathBuf> {
        use crate::sampling::run::{build_sampler, sample_model, SampleWriter};
        let tcfg = &cfg.training;
        let n = tcfg.sample_n.max(1);
        let sampler = build_sampler(&cfg.grid_sampler_flags(), &cfg.sde)?;
        let seed = Stream::new(tcfg.seed, 0, Purpose::Sample).seed_u64();
        let patch_model;
        let model: &dyn crate::models::ScoreModel = match self.patch {
            Some(p) => {
                let net =
                    |x: &Tensor, t: &Tensor| crate::models::ScoreModel::score(&self.model, x, t);
                patch_model = crate::models::patch::PatchScore::new(
                    net,
                    p,
                    info.shape[0],
                    crate::models::model_dir::MAX_PATCHES,
                )?;
                &patch_model
            }
            None => &self.model,
        };
        let run = sample_model(
            model,
            sampler.as_ref(),
            &info.shape,
            n,
            n,
            seed,
            device,
            &mut |_, _| {},
        )?;
        let dir = run_dir.join("samples");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let stem = format!("step_{step:07}");
        let mut w = SampleWriter::new();
        let npy = dir.join(format!("{stem}.npy"));
        w.npy(npy.clone(), &run.x, info)?;
        let png = dir.join(format!("{stem}.png"));
        let nrow = (n as f64).sqrt().ceil() as usize;
        Ok(if w.grid(png.clone(), &run.x, info, nrow)? {
            png
        } else {
            npy
        })
    }

    fn export(&self, snapshot: Snapshot<'_, Self>, dir: &Path) -> Result<()> {
        let cfg = model_dir_config(snapshot.cfg, snapshot.data, snapshot.step);
        save_model_dir(dir, &cfg, &snapshot.ema)
    }
}

/// The data the network sees: the images, or for a patch model `[C, P, P]` patches of them.
fn network_data(cfg: &TrainConfig, info: &DataInfo) -> Result<DataInfo> {
    match cfg.data.patch_size {
        None => Ok(info.clone()),
        Some(p) => match info.shape[..] {
            [_, h, w] if p <= h.min(w) => {
                Ok(crate::models::model_dir::PatchInfo::new(p, None).network_data(info))
            }
            _ => Err(Error::Config(format!(
                "data.patch_size {p} needs images [C, H, W] of at least {p}×{p} pixels; {} \
                 holds samples of shape {:?}",
                info.source, info.shape
            ))),
        },
    }
}

impl ScoreMatching {
    /// The masked patch DSM loss ([`super::patches::patch_dsm_loss`]) of one random patch per
    /// image of `x0`.
    fn patch_loss(
        &self,
        loss: &LossConfig,
        x0: &Tensor,
        p: i64,
        rng: &mut Stream,
        train: bool,
    ) -> Result<Tensor> {
        let f = |x: &Tensor, t: &Tensor| self.model.score_train(x, t, train);
        super::patches::patch_dsm_loss(&f, self.model.sde(), x0, p, loss, rng)
    }
}

impl Trainer<ScoreMatching> {
    /// A fresh run that fine-tunes the trained model in the model directory `init` on `data`:
    /// the network, SDE and score options are the model's (those of `cfg` are replaced), its
    /// weights are the starting point of both the trained and the EMA weights, and the rest of
    /// `cfg` (optimiser with its warm-up, batch size, steps, seed, data split) applies as for a
    /// new run. The data must be what the model was trained for: same sample shape, same
    /// `centered` flag, same raw-value range. `training.init` records `init`; a fine-tuning run
    /// resumes like any other (its first checkpoint holds the starting weights).
    pub fn fine_tune(
        init: &Path,
        mut cfg: TrainConfig,
        data: &Dataset,
        device: Device,
    ) -> Result<Self> {
        let mcfg = read_model_config(init)?;
        let what =
            |field: &str| format!("{field} of the data given to fine-tune {}", init.display());
        // A patch model takes images of any size with its channel count.
        let same = match &mcfg.patch {
            Some(_) => data.info.shape.len() == 3 && data.info.shape[0] == mcfg.data.shape[0],
            None => data.info.shape == mcfg.data.shape,
        };
        if !same {
            return Err(Error::Shape {
                what: what("sample shape"),
                expected: format!(
                    "{:?} (the model's, from {})",
                    mcfg.data.shape, mcfg.data.source
                ),
                actual: format!("{:?} ({})", data.info.shape, data.info.source),
            });
        }
        if data.info.centered != mcfg.data.centered || data.info.data_range != mcfg.data.data_range
        {
            let space = |centered: bool| if centered { "[-1, 1]" } else { "[0, 1]" };
            return Err(Error::Config(format!(
                "{}: the model maps raw values {:?} to {} but the data was loaded as {:?} → {}",
                what("value range"),
                mcfg.data.data_range,
                space(mcfg.data.centered),
                data.info.data_range,
                space(data.info.centered),
            )));
        }
        cfg.model = mcfg.model;
        cfg.sde = mcfg.sde;
        cfg.score = mcfg.score;
        cfg.data.centered = mcfg.data.centered;
        cfg.data.patch_size = mcfg.patch.as_ref().map(|p| p.size);
        cfg.training.init = Some(init.display().to_string());
        let mut tr = Trainer::new(cfg, data, device)?;
        let weights = read_weights(init, &tr.cfg.model, &tr.weights(), device)?;
        tch::no_grad(|| {
            for ((p, e), t) in tr
                .opt
                .params
                .iter_mut()
                .zip(tr.opt.ema.shadow.iter_mut())
                .zip(&weights)
            {
                p.copy_(t);
                e.copy_(t);
            }
        });
        Ok(tr)
    }

    /// The score model being trained (current, not EMA, weights).
    pub fn model(&self) -> &NetScore<dyn TimeConditionedNet> {
        &self.objective.model
    }

    /// Held-out DSM loss (the configured reduction and weighting) of the EMA weights on up to
    /// `eval_batch_size` held-out samples, with fixed noise so that values are comparable
    /// across the run. `None` without a held-out set.
    pub fn heldout_loss(&mut self) -> Result<Option<f64>> {
        self.evaluate()
    }

    /// Writes the EMA weights as a model directory (see [`crate::models::model_dir`]).
    pub fn export_model_dir(&self, dir: &Path) -> Result<()> {
        self.export(dir)
    }
}

/// The `config.json` of the model directory exported from a run with configuration `cfg` on
/// data `data` after `step` steps.
pub fn model_dir_config(cfg: &TrainConfig, data: &DataInfo, step: u64) -> ModelDirConfig {
    ModelDirConfig {
        format: MODEL_FORMAT.into(),
        model: cfg.model.clone(),
        sde: cfg.sde,
        score: cfg.score,
        data: data.clone(),
        training: Some(TrainingInfo {
            step,
            ema_rate: cfg.optim.ema_rate,
            loss: cfg.loss.name().into(),
            init: cfg.training.init.clone(),
            random_contrast: (cfg.data.random_contrast > 0.0).then_some(cfg.data.random_contrast),
        }),
        sampler: Default::default(),
        patch: cfg
            .data
            .patch_size
            .map(|p| crate::models::model_dir::PatchInfo::new(p, data.spacing_mm)),
    }
}
