//! Training by stochastic gradient descent on an [`Objective`] (Song et al. 2021;
//! score_sde_pytorch `run_lib.train` with `losses.get_step_fn`): score matching
//! ([`ScoreMatching`]: DSM, SSM, NCSN, DDPM) or a time-dependent classifier's cross-entropy
//! ([`crate::guidance::train::Classification`]).
//!
//! A [`Trainer`] owns the objective (its network's variables live in the trainer's
//! `tch::nn::VarStore`), the optimiser state ([`optim::Adam`] moments, [`optim::Ema`] weights),
//! the step counter and the data. One step: take the next batch of the epoch's permutation,
//! flip images at random (and whatever else the objective augments), let the objective draw its
//! times and noise and compute the loss, back-propagate, clip, update with warm-up, update the
//! EMA. All randomness is a function of `(seed, step)` ([`rng`]), so
//! [`Trainer::save_checkpoint`] + [`Trainer::resume`] continue a run bit-exactly on the CPU,
//! whatever the objective.
//!
//! [`Trainer::run`] is the loop of `scoreinv train` and `scoreinv train-classifier`: a loss
//! CSV, periodic held-out evaluation of the EMA weights, periodic sample grids, periodic
//! checkpoints ([`checkpoint`]), divergence detection (a non-finite loss or gradient stops the
//! run before the update, leaving the last good checkpoint in place), a checkpoint and
//! [`Error::Interrupted`] at the end of the step during which SIGINT arrived, and the final
//! export of the EMA weights (`RUN_DIR/model` for score models, see
//! [`crate::models::model_dir`]; `RUN_DIR/classifier` for classifiers).

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod losses;
pub mod objective;
pub mod optim;
pub mod patches;
pub mod rng;
pub mod score;

pub use objective::{Objective, RunConfig, Schedule, Setup, Snapshot};
pub use score::{model_dir_config, ScoreMatching};

use crate::models::model_dir::DataInfo;
use crate::{Error, Result};
use checkpoint::CheckpointMeta;
use data::Dataset;
use optim::{guarded_update, zero_grads, OptimState};
use rng::{Purpose, Stream};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn, Device, Tensor};

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
    /// Accuracy on the training batch (classifiers; `None` for score matching).
    pub batch_accuracy: Option<f64>,
}

impl StepStats {
    /// The `loss.csv` row: step, loss, [batch accuracy,] learning rate.
    pub fn csv_row(&self) -> String {
        match self.batch_accuracy {
            Some(a) => format!("{},{},{a},{}", self.step, self.loss, self.lr),
            None => format!("{},{},{}", self.step, self.loss, self.lr),
        }
    }
}

/// Events of [`Trainer::run`] for progress reporting; `E` is the objective's held-out
/// evaluation ([`Objective::Eval`]: the DSM loss for score matching).
#[derive(Debug, Clone, PartialEq)]
pub enum Event<E = f64> {
    Step(StepStats),
    /// A held-out evaluation of the EMA weights.
    HeldOut {
        step: u64,
        result: E,
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
pub struct RunSummary<E = f64> {
    pub steps_taken: u64,
    pub final_step: u64,
    pub last_loss: Option<f64>,
    /// The last held-out evaluation of the EMA weights (at the final step).
    pub heldout: Option<E>,
    pub elapsed_s: f64,
    /// Training samples processed per second.
    pub samples_per_s: f64,
    /// The exported folder (`RUN_DIR/model`, or `RUN_DIR/classifier` for classifiers).
    pub model_dir: PathBuf,
}

/// The training state and loop, for the objective `O` (score matching unless said otherwise).
pub struct Trainer<O: Objective = ScoreMatching> {
    cfg: O::Config,
    device: Device,
    _vs: nn::VarStore,
    objective: O,
    /// Sorted variables, trainable indices, Adam, EMA and (with `optim.flat_buffers`) the
    /// contiguous buffers.
    opt: OptimState,
    step: u64,
    train: Dataset,
    heldout: Option<Dataset>,
    epoch_perm: Option<(u64, Vec<i64>)>,
    last_loss: Option<f64>,
    last_eval: Option<O::Eval>,
}

impl<O: Objective> Trainer<O> {
    /// A fresh run of the objective `cfg` configures (a [`config::TrainConfig`]: score
    /// matching; a [`crate::guidance::train::ClassifierTrainConfig`]: a classifier) on `data`,
    /// split into train and held-out by the configured fraction. The network is initialised by
    /// libtorch's generator seeded from the run's seed.
    pub fn new<C>(cfg: C, data: &Dataset, device: Device) -> Result<Self>
    where
        C: RunConfig<Objective = O>,
        O: Objective<Config = C>,
    {
        Self::build(cfg, data, device, None)
    }

    fn build(
        cfg: O::Config,
        data: &Dataset,
        device: Device,
        saved: Option<&CheckpointMeta<O::Config>>,
    ) -> Result<Self> {
        let cfg = O::prepare(cfg, data)?;
        let schedule = cfg.schedule();
        let (train, heldout) = data.split(schedule.heldout_fraction)?;
        tch::manual_seed(Stream::new(schedule.seed, 0, Purpose::Torch).seed_u64() as i64);
        let vs = nn::VarStore::new(device);
        let objective = O::build(
            &cfg,
            Setup {
                vs: &vs,
                data,
                saved,
            },
        )?;
        let opt = OptimState::new(&vs, cfg.optim());
        Ok(Self {
            cfg,
            device,
            _vs: vs,
            objective,
            opt,
            step: 0,
            train,
            heldout,
            epoch_perm: None,
            last_loss: None,
            last_eval: None,
        })
    }

    /// Continues the run saved in `run_dir` on `data` (which must have the shape the run was
    /// trained on). `adjust` may change settings that do not alter the random streams or the
    /// model (e.g. the number of steps, frequencies, the learning rate).
    pub fn resume(
        run_dir: &Path,
        data: &Dataset,
        device: Device,
        adjust: impl FnOnce(&mut O::Config),
    ) -> Result<Self> {
        let (meta, file) = O::CHECKPOINT.read::<O::Config>(run_dir)?;
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
        let (now, saved) = (cfg.schedule(), meta.config.schedule());
        if now.seed != meta.seed
            || now.batch_size != saved.batch_size
            || !cfg.keeps_model_of(&meta.config)
        {
            return Err(Error::Config(format!(
                "a resumed run must keep the seed, batch size, {} of its checkpoint",
                <O::Config as RunConfig>::KEPT_ON_RESUME
            )));
        }
        let mut tr = Self::build(cfg, data, device, Some(&meta))?;
        tr.opt
            .load_checkpoint(&file, device, meta.step, meta.ema_num_updates)?;
        tr.step = meta.step;
        tr.last_loss = meta.last_loss;
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

    /// The configuration.
    pub fn config(&self) -> &O::Config {
        &self.cfg
    }

    /// The objective (with its network, holding the current weights).
    pub fn objective(&self) -> &O {
        &self.objective
    }

    /// Data description.
    pub fn data_info(&self) -> &DataInfo {
        &self.train.info
    }

    /// Evaluates on `data` (e.g. other scenes) instead of the split of the training data;
    /// training is unchanged. `data` must have the training data's sample shape.
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

    /// `(name, tensor)` of the current weights, sorted by name.
    pub fn weights(&self) -> Vec<(String, Tensor)> {
        self.opt.weights()
    }

    /// `(name, tensor)` of the EMA weights.
    pub fn ema_weights(&self) -> Vec<(String, Tensor)> {
        self.opt.ema_weights()
    }

    /// Replaces the current weights with the EMA weights (e.g. to evaluate them).
    pub fn load_ema_into_model(&mut self) {
        self.opt.load_ema();
    }

    fn batch_indices(&mut self) -> Vec<i64> {
        let s = self.cfg.schedule();
        let n = self.train.len() as u64;
        let b = s.batch_size as u64;
        let mut out = Vec::with_capacity(b as usize);
        for pos in self.step * b..(self.step + 1) * b {
            let epoch = pos / n;
            if self.epoch_perm.as_ref().map(|(e, _)| *e) != Some(epoch) {
                let perm = Stream::new(s.seed, epoch, Purpose::DataOrder).permutation(n as usize);
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

    /// One optimisation step. A non-finite loss or gradient returns [`Error::Diverged`] before
    /// any parameter changes.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let seed = self.cfg.schedule().seed;
        let idx = self.batch_indices();
        let mut x0 = self.train.gather(&idx);
        // One augmentation stream per step: the flip coins first, then the objective's draws.
        let mut aug = Stream::new(seed, self.step, Purpose::Augment);
        if self.cfg.schedule().random_flip {
            let coins = aug.coins(idx.len());
            x0 = data::random_flip(&x0, &coins);
        }
        let x0 = self
            .objective
            .augment(&self.cfg, x0, &mut aug)
            .to_device(self.device);
        let mut noise = Stream::new(seed, self.step, Purpose::Loss);
        tch::manual_seed(Stream::new(seed, self.step, Purpose::Torch).seed_u64() as i64);
        let tp = self.opt.trainable_params();
        zero_grads(&tp, self.opt.flat.as_ref());
        let (loss, batch_accuracy) =
            self.objective
                .batch_loss(&self.cfg, &self.train, &idx, &x0, &mut noise)?;
        let lv = loss.double_value(&[]);
        let lr = self.cfg.optim().lr_at(self.step);
        let gn = guarded_update(
            O::WHAT,
            self.step,
            &loss,
            lv,
            lr,
            &tp,
            &self.opt.params,
            &mut self.opt.adam,
            &mut self.opt.ema,
            self.opt.flat.as_mut(),
            self.cfg.optim(),
        )?;
        self.step += 1;
        self.last_loss = Some(lv);
        Ok(StepStats {
            step: self.step,
            loss: lv,
            lr,
            grad_norm: gn,
            batch_accuracy,
        })
    }

    /// The objective's held-out evaluation of the EMA weights (the trained weights are restored
    /// afterwards); `None` without a held-out set.
    pub fn evaluate(&mut self) -> Result<Option<O::Eval>> {
        let Some(heldout) = &self.heldout else {
            return Ok(None);
        };
        let (objective, cfg, device) = (&self.objective, &self.cfg, self.device);
        let eval = self
            .opt
            .with_ema(|| objective.evaluate(cfg, heldout, device))?;
        self.last_eval = Some(eval.clone());
        Ok(Some(eval))
    }

    /// Draws samples from the EMA weights into `run_dir/samples/` (score_sde's snapshot
    /// sampling: the EMA weights are copied in and the training weights restored afterwards);
    /// returns the file written (see [`Objective::write_samples`]).
    pub fn write_samples(&mut self, run_dir: &Path) -> Result<PathBuf> {
        let (objective, cfg) = (&self.objective, &self.cfg);
        let (info, step, device) = (&self.train.info, self.step, self.device);
        self.opt
            .with_ema(|| objective.write_samples(cfg, info, step, run_dir, device))
    }

    fn meta(&self) -> CheckpointMeta<O::Config> {
        CheckpointMeta {
            format: O::CHECKPOINT.format.into(),
            step: self.step,
            seed: self.cfg.schedule().seed,
            ema_num_updates: self.opt.ema.num_updates,
            tensors: O::CHECKPOINT.tensors_name(self.step),
            config: self.cfg.clone(),
            n_classes: self.objective.n_classes(),
            data: self.train.info.clone(),
            last_loss: self.last_loss,
        }
    }

    /// Writes a checkpoint of the full training state into `run_dir`; returns the JSON that
    /// commits it.
    pub fn save_checkpoint(&self, run_dir: &Path) -> Result<PathBuf> {
        let tensors = self.opt.checkpoint_tensors();
        O::CHECKPOINT.write(run_dir, &self.meta(), &tensors)
    }

    /// Writes the EMA weights (with the latest held-out evaluation) into the folder `dir`, in
    /// the form the objective's loader reads.
    pub fn export(&self, dir: &Path) -> Result<()> {
        let snapshot = Snapshot {
            cfg: &self.cfg,
            data: &self.train.info,
            step: self.step,
            ema: self.ema_weights(),
            last_eval: self.last_eval.as_ref(),
        };
        self.objective.export(snapshot, dir)
    }

    /// Evaluates, and records a result in `heldout.csv`, the run directory and an event.
    fn record_evaluation(
        &mut self,
        run_dir: &Path,
        csv: &mut CsvLog,
        on_event: &mut dyn FnMut(&Event<O::Eval>),
    ) -> Result<()> {
        if let Some(result) = self.evaluate()? {
            self.objective
                .write_evaluation(run_dir, self.step, &result)?;
            csv.row(&format!("{},{}", self.step, O::heldout_csv_row(&result)))?;
            on_event(&Event::HeldOut {
                step: self.step,
                result,
            });
        }
        Ok(())
    }

    /// Trains until the schedule's `n_iters` steps, writing into `run_dir`: `loss.csv`
    /// ([`Objective::LOSS_CSV`]), `heldout.csv` (a held-out evaluation every `eval_freq` steps
    /// and at the end), sample grids every `sample_freq` steps ([`Self::write_samples`]),
    /// checkpoints, and finally the export ([`Objective::EXPORT_DIR`]).
    pub fn run(
        &mut self,
        run_dir: &Path,
        on_event: &mut dyn FnMut(&Event<O::Eval>),
    ) -> Result<RunSummary<O::Eval>> {
        std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
        let mut loss_csv = CsvLog::open(&run_dir.join("loss.csv"), O::LOSS_CSV, self.step)?;
        let mut eval_csv = CsvLog::open(&run_dir.join("heldout.csv"), O::HELDOUT_CSV, self.step)?;
        let s = self.cfg.schedule();
        let mut last_ckpt = match O::CHECKPOINT.latest(run_dir) {
            Some(p) if self.step > 0 => (self.step, p),
            _ => (self.step, self.save_checkpoint(run_dir)?),
        };
        let start_step = self.step;
        let t0 = Instant::now();
        let mut evaluated_at = None;
        while self.step < s.n_iters {
            let stats = match self.train_step() {
                Ok(s) => s,
                Err(Error::Diverged(msg)) => {
                    loss_csv.flush()?;
                    return Err(Error::Diverged(format!(
                        "{msg}. The last good checkpoint is {} (step {}); lower the learning rate (optim.lr, `lr`) or check the data, then continue with `resume`",
                        last_ckpt.1.display(),
                        last_ckpt.0
                    )));
                }
                Err(e) => return Err(e),
            };
            on_event(&Event::Step(stats));
            if s.log_freq > 0 && (stats.step % s.log_freq == 0 || stats.step == 1) {
                loss_csv.row(&stats.csv_row())?;
            }
            if s.eval_freq > 0 && stats.step % s.eval_freq == 0 {
                self.record_evaluation(run_dir, &mut eval_csv, on_event)?;
                evaluated_at = Some(stats.step);
            }
            if s.sample_freq > 0 && stats.step % s.sample_freq == 0 {
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
            if interrupted || (s.checkpoint_freq > 0 && stats.step % s.checkpoint_freq == 0) {
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
                    "interrupted at step {}: the checkpoint {} holds it; continue with `resume`",
                    stats.step,
                    last_ckpt.1.display()
                )));
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        if evaluated_at != Some(self.step) {
            self.record_evaluation(run_dir, &mut eval_csv, on_event)?;
        }
        loss_csv.flush()?;
        eval_csv.flush()?;
        if last_ckpt.0 != self.step {
            let p = self.save_checkpoint(run_dir)?;
            on_event(&Event::Checkpoint {
                step: self.step,
                path: p,
            });
        }
        let model_dir = run_dir.join(O::EXPORT_DIR);
        self.export(&model_dir)?;
        let taken = self.step - start_step;
        Ok(RunSummary {
            steps_taken: taken,
            final_step: self.step,
            last_loss: self.last_loss,
            heldout: self.last_eval.clone(),
            elapsed_s: elapsed,
            samples_per_s: if elapsed > 0.0 {
                (taken * s.batch_size as u64) as f64 / elapsed
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
        crate::io::atomic::write_bytes(path, text.as_bytes())?;
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
