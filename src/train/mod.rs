//! Training score models by score matching (Song et al. 2021; score_sde_pytorch `run_lib.train`).
//!
//! A [`Trainer`] owns a network (any [`TimeConditionedNet`] built from a
//! [`ModelConfig`](crate::models::model_dir::ModelConfig) into a `tch::nn::VarStore`) wrapped as
//! a [`NetScore`] for the configured SDE, the optimiser state ([`optim::Adam`] moments,
//! [`optim::Ema`] weights), the step counter and the data. One step: take the next batch of the
//! epoch's permutation, flip images at random, draw the loss's times and noise, back-propagate,
//! clip, update with warm-up, update the EMA. All randomness is a function of
//! `(seed, step)` ([`rng`]), so [`Trainer::save_checkpoint`] + [`Trainer::resume`] continue a run
//! bit-exactly on the CPU.
//!
//! [`Trainer::run`] is the loop of `scoreinv train`: a loss CSV, periodic held-out DSM loss of
//! the EMA weights, periodic checkpoints, divergence detection (a non-finite loss or gradient
//! stops the run before the update, leaving the last good checkpoint in place), and the final
//! model directory (`RUN_DIR/model`, see [`crate::models::model_dir`]).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod losses;
pub mod optim;
pub mod rng;

use crate::models::model_dir::{
    read_model_config, read_weights, save_model_dir, DataInfo, ModelDirConfig, TrainingInfo,
    MODEL_FORMAT,
};
use crate::models::score_net::NetScore;
use crate::models::TimeConditionedNet;
use crate::{Error, Result};
use checkpoint::{CheckpointMeta, CHECKPOINT_FORMAT};
use config::TrainConfig;
use data::Dataset;
use losses::LossConfig;
use optim::{guarded_update, zero_grads, OptimState};
use rng::{Purpose, Stream};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Steps completed after this one.
    pub step: u64,
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Events of [`Trainer::run`] for progress reporting.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Step(StepStats),
    HeldOut {
        step: u64,
        loss: f64,
    },
    Checkpoint {
        step: u64,
        path: PathBuf,
    },
    /// A sample grid was written (`path`: the PNG, or the NPY for non-image data).
    Samples {
        step: u64,
        path: PathBuf,
    },
    /// The sample grid of `step` could not be made (e.g. non-finite samples from a young
    /// network); training goes on.
    SamplesFailed {
        step: u64,
        error: String,
    },
}

/// Result of [`Trainer::run`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub steps_taken: u64,
    pub final_step: u64,
    pub last_loss: Option<f64>,
    pub heldout_loss: Option<f64>,
    pub elapsed_s: f64,
    /// Training samples processed per second.
    pub samples_per_s: f64,
    pub model_dir: PathBuf,
}

/// The training state and loop.
pub struct Trainer {
    cfg: TrainConfig,
    device: Device,
    _vs: nn::VarStore,
    model: NetScore<dyn TimeConditionedNet>,
    /// Sorted variables, trainable indices, Adam, EMA and (with `optim.flat_buffers`) the
    /// contiguous buffers.
    opt: OptimState,
    step: u64,
    train: Dataset,
    heldout: Option<Dataset>,
    epoch_perm: Option<(u64, Vec<i64>)>,
    last_loss: Option<f64>,
}

impl Trainer {
    /// A fresh run on `data` (split into train and held-out by `cfg.data.heldout_fraction`).
    /// The network is initialised by libtorch's generator seeded from `training.seed`.
    pub fn new(cfg: TrainConfig, data: &Dataset, device: Device) -> Result<Self> {
        let cfg = cfg.fitted_to(&data.info);
        cfg.validate()?;
        let sde_kind = cfg.sde.build()?.kind();
        cfg.model.check_data(&data.info)?;
        if cfg.data.random_contrast > 0.0 && data.info.shape.len() < 3 {
            return Err(Error::Config(format!(
                "data.random_contrast remaps image intensities, but {} holds vectors of shape {:?}",
                data.info.source, data.info.shape
            )));
        }
        let (train, heldout) = data.split(cfg.data.heldout_fraction)?;
        tch::manual_seed(Stream::new(cfg.training.seed, 0, Purpose::Torch).seed_u64() as i64);
        let vs = nn::VarStore::new(device);
        let net = cfg.model.build(&vs.root(), &data.info, sde_kind)?;
        let model =
            NetScore::new(net, cfg.sde, cfg.score)?.with_sample_shape(data.info.shape.clone());
        let opt = OptimState::new(&vs, &cfg.optim);
        Ok(Self {
            cfg,
            device,
            _vs: vs,
            model,
            opt,
            step: 0,
            train,
            heldout,
            epoch_perm: None,
            last_loss: None,
        })
    }

    /// Continues the run saved in `run_dir` on `data` (which must have the shape the run was
    /// trained on). `adjust` may change settings that do not alter the random streams or the
    /// model (e.g. `training.n_iters`, frequencies).
    pub fn resume(
        run_dir: &Path,
        data: &Dataset,
        device: Device,
        adjust: impl FnOnce(&mut TrainConfig),
    ) -> Result<Self> {
        let (meta, file) = checkpoint::read_checkpoint(run_dir)?;
        if meta.data.shape != data.info.shape {
            return Err(Error::Config(format!(
                "the checkpoint in {} was trained on samples of shape {:?} ({}), the data given has shape {:?} ({})",
                run_dir.display(),
                meta.data.shape,
                meta.data.source,
                data.info.shape,
                data.info.source
            )));
        }
        let mut cfg = meta.config.clone();
        adjust(&mut cfg);
        cfg.validate()?;
        if cfg.training.seed != meta.seed
            || cfg.model != meta.config.model
            || cfg.sde != meta.config.sde
            || cfg.training.batch_size != meta.config.training.batch_size
        {
            return Err(Error::Config(
                "a resumed run must keep the seed, model, SDE and batch size of its checkpoint"
                    .into(),
            ));
        }
        let mut tr = Trainer::new(cfg, data, device)?;
        tr.opt
            .load_checkpoint(&file, device, meta.step, meta.ema_num_updates)?;
        tr.step = meta.step;
        tr.last_loss = meta.last_loss;
        Ok(tr)
    }

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
        if data.info.shape != mcfg.data.shape {
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
        cfg.training.init = Some(init.display().to_string());
        let mut tr = Trainer::new(cfg, data, device)?;
        let vars: Vec<(String, Tensor)> = tr
            .opt
            .names
            .iter()
            .cloned()
            .zip(tr.opt.params.iter().map(|p| p.shallow_clone()))
            .collect();
        let weights = read_weights(init, &tr.cfg.model, &vars, device)?;
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

    /// Whether the optimiser runs on the flat buffers (`optim.flat_buffers`, from the first
    /// backward pass on, once every trainable parameter has a gradient).
    pub fn flat_buffers_active(&self) -> bool {
        self.opt.flat.as_ref().is_some_and(|f| f.grads().is_some())
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Measures the held-out DSM loss on `data` (e.g. other scenes) instead of the split of the
    /// training data; training is unchanged. `data` must have the training data's sample shape.
    pub fn set_heldout(&mut self, data: Dataset) -> Result<()> {
        if data.info.shape != self.train.info.shape {
            return Err(Error::Shape {
                what: format!("held-out data '{}'", data.info.source),
                expected: format!(
                    "{:?} (the training data's sample shape)",
                    self.train.info.shape
                ),
                actual: format!("{:?}", data.info.shape),
            });
        }
        if data.is_empty() {
            return Err(Error::Invalid(format!(
                "held-out data '{}' is empty",
                data.info.source
            )));
        }
        self.heldout = Some(data);
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The score model being trained (current, not EMA, weights).
    pub fn model(&self) -> &NetScore<dyn TimeConditionedNet> {
        &self.model
    }

    /// Data description.
    pub fn data_info(&self) -> &DataInfo {
        &self.train.info
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
        let b = self.cfg.training.batch_size as u64;
        let mut out = Vec::with_capacity(b as usize);
        for pos in self.step * b..(self.step + 1) * b {
            let epoch = pos / n;
            if self.epoch_perm.as_ref().map(|(e, _)| *e) != Some(epoch) {
                let perm = Stream::new(self.cfg.training.seed, epoch, Purpose::DataOrder)
                    .permutation(n as usize);
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

    fn trainable_params(&self) -> Vec<Tensor> {
        self.opt
            .trainable
            .iter()
            .map(|&i| self.opt.params[i].shallow_clone())
            .collect()
    }

    /// One optimisation step. A non-finite loss or gradient returns [`Error::Diverged`] before
    /// any parameter changes.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let seed = self.cfg.training.seed;
        let idx = self.batch_indices();
        let mut x0 = self.train.gather(&idx);
        // One augmentation stream per step: the flip coins first (so runs without contrast
        // augmentation draw exactly what they always did), then the contrast draws.
        let mut aug = Stream::new(seed, self.step, Purpose::Augment);
        if self.cfg.data.random_flip {
            let coins = aug.coins(idx.len());
            x0 = data::random_flip(&x0, &coins);
        }
        let p = self.cfg.data.random_contrast;
        if p > 0.0 {
            let apply: Vec<bool> = aug.uniform(idx.len()).iter().map(|&v| v < p).collect();
            let u = aug.uniform(idx.len() * data::CONTRAST_KNOTS);
            x0 = data::random_contrast(&x0, &apply, &u, self.cfg.data.centered);
        }
        let x0 = x0.to_device(self.device);
        let mut noise = Stream::new(seed, self.step, Purpose::Loss);
        tch::manual_seed(Stream::new(seed, self.step, Purpose::Torch).seed_u64() as i64);
        let tp = self.trainable_params();
        zero_grads(&tp, self.opt.flat.as_ref());
        let use_autocast = self.cfg.training.autocast && self.device.is_cuda();
        let loss = crate::autocast::with_autocast(
            self.device,
            use_autocast,
            self.cfg.training.autocast_dtype,
            || self.cfg.loss.loss(&self.model, &x0, &mut noise, true),
        )?
        .to_kind(Kind::Float);
        let lv = loss.double_value(&[]);
        let lr = self.cfg.optim.lr_at(self.step);
        let gn = guarded_update(
            "training",
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
        Ok(StepStats {
            step: self.step,
            loss: lv,
            lr,
            grad_norm: gn,
        })
    }

    /// Held-out DSM loss (the configured reduction and weighting) of the EMA weights on up to
    /// `eval_batch_size` held-out samples, with fixed noise so that values are comparable
    /// across the run. `None` without a held-out set.
    pub fn heldout_loss(&mut self) -> Result<Option<f64>> {
        let Some(ho) = &self.heldout else {
            return Ok(None);
        };
        let b = self
            .cfg
            .training
            .eval_batch_size
            .unwrap_or(self.cfg.training.batch_size)
            .min(ho.len());
        let x0 = ho
            .gather(&(0..b as i64).collect::<Vec<_>>())
            .to_device(self.device);
        let loss_cfg = LossConfig {
            kind: losses::LossKind::Dsm,
            ..self.cfg.loss.clone()
        };
        let backup: Vec<Tensor> = self.opt.params.iter().map(|p| p.detach().copy()).collect();
        self.load_ema_into_model();
        let mut noise = Stream::new(self.cfg.training.seed, 0, Purpose::Eval);
        let res = tch::no_grad(|| loss_cfg.loss(&self.model, &x0, &mut noise, false));
        tch::no_grad(|| {
            for (p, b) in self.opt.params.iter_mut().zip(&backup) {
                p.copy_(b);
            }
        });
        Ok(Some(res?.double_value(&[])))
    }

    /// Draws `training.sample_n` samples from the EMA weights with `scoreinv sample`'s default
    /// PC sampler (`training.sample_steps` steps) and writes them into `run_dir/samples/` as
    /// `step_NNNNNNN.npy` (raw data range) and, for images, `step_NNNNNNN.png` (a grid);
    /// returns the PNG (or NPY) path. As score_sde_pytorch's snapshot sampling: the EMA weights
    /// are copied in and the training weights restored afterwards. libtorch's generator is
    /// seeded from the run's seed, so every grid starts from the same prior noise (grids of a
    /// run are comparable); the training streams are keyed by `(seed, step)` and libtorch is
    /// reseeded every step, so sampling does not change the training trajectory (resume stays
    /// bit-exact).
    pub fn write_samples(&mut self, run_dir: &Path) -> Result<PathBuf> {
        use crate::sampling::run::{build_sampler, sample_model, SampleWriter};
        let tcfg = &self.cfg.training;
        let n = tcfg.sample_n.max(1);
        let opts = build_sampler(&self.cfg.grid_sampler_flags(), &self.cfg.sde)?;
        let seed = Stream::new(tcfg.seed, 0, Purpose::Sample).seed_u64();
        let shape = self.train.info.shape.clone();
        let backup: Vec<Tensor> = self.opt.params.iter().map(|p| p.detach().copy()).collect();
        self.load_ema_into_model();
        let run = sample_model(
            &self.model,
            &opts,
            &shape,
            n,
            n,
            seed,
            self.device,
            &mut |_, _| {},
        );
        tch::no_grad(|| {
            for (p, b) in self.opt.params.iter_mut().zip(&backup) {
                p.copy_(b);
            }
        });
        let run = run?;
        let dir = run_dir.join("samples");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let stem = format!("step_{:07}", self.step);
        let mut w = SampleWriter::new();
        let npy = dir.join(format!("{stem}.npy"));
        w.npy(npy.clone(), &run.x, &self.train.info)?;
        let png = dir.join(format!("{stem}.png"));
        let nrow = (n as f64).sqrt().ceil() as usize;
        Ok(if w.grid(png.clone(), &run.x, &self.train.info, nrow)? {
            png
        } else {
            npy
        })
    }

    fn meta(&self) -> CheckpointMeta {
        CheckpointMeta {
            format: CHECKPOINT_FORMAT.into(),
            step: self.step,
            seed: self.cfg.training.seed,
            ema_num_updates: self.opt.ema.num_updates,
            tensors: checkpoint::tensors_name(self.step),
            config: self.cfg.clone(),
            data: self.train.info.clone(),
            last_loss: self.last_loss,
        }
    }

    /// Writes a checkpoint of the full training state into `run_dir`.
    pub fn save_checkpoint(&self, run_dir: &Path) -> Result<PathBuf> {
        let tensors = self.opt.checkpoint_tensors();
        checkpoint::write_checkpoint(run_dir, &self.meta(), &tensors)
    }

    /// Writes the EMA weights as a model directory (see [`crate::models::model_dir`]).
    pub fn export_model_dir(&self, dir: &Path) -> Result<()> {
        let cfg = model_dir_config(&self.cfg, &self.train.info, self.step);
        save_model_dir(dir, &cfg, &self.ema_weights())
    }

    /// Trains until `training.n_iters` steps, writing into `run_dir`: `loss.csv` (step, loss,
    /// lr), `heldout.csv` (step, heldout_dsm_loss), sample grids every `training.sample_freq`
    /// steps ([`Self::write_samples`]), checkpoints, and finally `model/`.
    pub fn run(&mut self, run_dir: &Path, on_event: &mut dyn FnMut(&Event)) -> Result<RunSummary> {
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let mut loss_csv = CsvLog::open(&run_dir.join("loss.csv"), "step,loss,lr", self.step)?;
        let mut eval_csv = CsvLog::open(
            &run_dir.join("heldout.csv"),
            "step,heldout_dsm_loss",
            self.step,
        )?;
        let tcfg = self.cfg.training.clone();
        let mut last_ckpt = match checkpoint::latest(run_dir) {
            Some(p) if self.step > 0 => (self.step, p),
            _ => (self.step, self.save_checkpoint(run_dir)?),
        };
        let start_step = self.step;
        let t0 = Instant::now();
        let mut heldout = None;
        while self.step < tcfg.n_iters {
            let stats = match self.train_step() {
                Ok(s) => s,
                Err(Error::Diverged(msg)) => {
                    loss_csv.flush()?;
                    return Err(Error::Diverged(format!(
                        "{msg}. The last good checkpoint is {} (step {}); lower the learning rate (optim.lr, `--lr`) or check the data, then continue with `--resume`",
                        last_ckpt.1.display(),
                        last_ckpt.0
                    )));
                }
                Err(e) => return Err(e),
            };
            on_event(&Event::Step(stats));
            if tcfg.log_freq > 0 && (stats.step % tcfg.log_freq == 0 || stats.step == 1) {
                loss_csv.row(&format!("{},{},{}", stats.step, stats.loss, stats.lr))?;
            }
            if tcfg.eval_freq > 0 && stats.step % tcfg.eval_freq == 0 {
                if let Some(l) = self.heldout_loss()? {
                    heldout = Some(l);
                    eval_csv.row(&format!("{},{l}", stats.step))?;
                    on_event(&Event::HeldOut {
                        step: stats.step,
                        loss: l,
                    });
                }
            }
            if tcfg.sample_freq > 0 && stats.step % tcfg.sample_freq == 0 {
                // A preview must not end a run: a failure is reported and training goes on
                // (the weights are restored before any error is returned).
                on_event(&match self.write_samples(run_dir) {
                    Ok(path) => Event::Samples {
                        step: stats.step,
                        path,
                    },
                    Err(e) => Event::SamplesFailed {
                        step: stats.step,
                        error: e.to_string(),
                    },
                });
            }
            let interrupted = crate::interrupt::requested();
            if interrupted || (tcfg.checkpoint_freq > 0 && stats.step % tcfg.checkpoint_freq == 0) {
                loss_csv.flush()?;
                eval_csv.flush()?;
                let p = self.save_checkpoint(run_dir)?;
                last_ckpt = (stats.step, p.clone());
                on_event(&Event::Checkpoint {
                    step: stats.step,
                    path: p,
                });
            }
            if interrupted {
                return Err(Error::Interrupted(format!(
                    "interrupted at step {}: the checkpoint {} holds it; continue with `--resume`",
                    stats.step,
                    last_ckpt.1.display()
                )));
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        loss_csv.flush()?;
        eval_csv.flush()?;
        if last_ckpt.0 != self.step {
            let p = self.save_checkpoint(run_dir)?;
            on_event(&Event::Checkpoint {
                step: self.step,
                path: p,
            });
        }
        if heldout.is_none() {
            heldout = self.heldout_loss()?;
        }
        let model_dir = run_dir.join("model");
        self.export_model_dir(&model_dir)?;
        let taken = self.step - start_step;
        Ok(RunSummary {
            steps_taken: taken,
            final_step: self.step,
            last_loss: self.last_loss,
            heldout_loss: heldout,
            elapsed_s: elapsed,
            samples_per_s: if elapsed > 0.0 {
                (taken * tcfg.batch_size as u64) as f64 / elapsed
            } else {
                0.0
            },
            model_dir,
        })
    }
}

/// An append-only CSV whose rows after `resume_step` are dropped on open (a resumed run rewrites
/// them).
pub(crate) struct CsvLog {
    path: PathBuf,
    w: std::io::BufWriter<std::fs::File>,
}

impl CsvLog {
    pub(crate) fn open(path: &Path, header: &str, resume_step: u64) -> Result<Self> {
        let mut kept = vec![header.to_string()];
        if resume_step > 0 {
            if let Ok(text) = std::fs::read_to_string(path) {
                kept.extend(
                    text.lines()
                        .skip(1)
                        .filter(|l| {
                            l.split(',')
                                .next()
                                .and_then(|s| s.parse::<u64>().ok())
                                .is_some_and(|s| s <= resume_step)
                        })
                        .map(String::from),
                );
            }
        }
        // The kept rows replace the file atomically before anything is appended: a run killed
        // right after resuming must not lose the log of the steps before it (they were once
        // rewritten through the buffered writer, and a kill before its first flush left the
        // file empty).
        let mut text = kept.join("\n");
        text.push('\n');
        checkpoint::write_atomic(path, text.as_bytes())?;
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.into(),
            w: std::io::BufWriter::new(f),
        })
    }
    pub(crate) fn row(&mut self, line: &str) -> Result<()> {
        writeln!(self.w, "{line}").map_err(|e| Error::io(&self.path, e))
    }
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(&self.path, e))
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
    }
}

#[cfg(test)]
mod tests {
    use super::CsvLog;

    /// Resuming rewrites a log to the rows up to the resumed step; that rewrite is on disk
    /// before anything is appended, so a process killed before its first flush (modelled by
    /// leaking the writer) keeps the earlier rows, and new rows follow them.
    #[test]
    fn resumed_log_survives_a_kill_before_the_first_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.csv");
        std::fs::write(&path, "step,loss\n1,0.5\n2,0.4\n3,0.3\n4,0.2\n").unwrap();
        std::mem::forget(CsvLog::open(&path, "step,loss", 2).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "step,loss\n1,0.5\n2,0.4\n"
        );
        let mut log = CsvLog::open(&path, "step,loss", 2).unwrap();
        log.row("3,0.25").unwrap();
        log.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "step,loss\n1,0.5\n2,0.4\n3,0.25\n"
        );
        // A fresh run starts the log anew.
        drop(CsvLog::open(&path, "step,loss", 0).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "step,loss\n");
    }
}
