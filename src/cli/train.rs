//! `scoreinv train`: fit a score model to data by score matching.
use anyhow::{bail, Context, Result};
use scoreinv::device::{device_name, DeviceChoice};
use scoreinv::models::model_dir::read_model_config;
use scoreinv::train::checkpoint;
use scoreinv::train::config::{preset, TrainConfig, PRESETS};
use scoreinv::train::data::DataSource;
use scoreinv::train::{Event, ScoreMatching, Trainer};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training data: gaussian2d[:N], fashion-mnist, phantom:ellipses:N, invesalius[:FILE.inv3], photos:N:PATH[,PATH…] (random crops of photos),
    /// nifti:A.nii.gz[,B.nii.gz…], nifti-crop:A.nii.gz[,…] (each volume cropped to its
    /// foreground first), dicom:SERIES_DIR|FILE.dcm[,…], a folder with IDX files or images, an
    /// IDX file, or a .npy stack; A+B joins sources (samples concatenated).
    #[arg(long)]
    pub data: String,
    /// Run directory (checkpoints, loss.csv, heldout.csv, samples/step_N.png grids, model/).
    #[arg(long)]
    pub out: PathBuf,
    /// Named configuration (tiny, toy2d, ncsnpp-tiny, ncsnpp-64, ncsnpp-color-64, ddpmpp-fmnist); default tiny.
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Configuration file (TOML, or JSON by extension).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Total number of steps (overrides training.n_iters; with --resume, the step to train up
    /// to, beyond the checkpoint's).
    #[arg(long, value_parser = super::parse::positive_u64)]
    pub steps: Option<u64>,
    /// Continue from the checkpoint in --out, bit-exactly.
    #[arg(long)]
    pub resume: bool,
    /// Batch size (overrides training.batch_size).
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub batch_size: Option<usize>,
    /// Seed of all random streams (overrides training.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Resample image data to SIZE×SIZE (phantoms and CT slices are rendered at it; default 64
    /// for those).
    #[arg(long, value_parser = super::parse::image_size)]
    pub size: Option<i64>,
    /// Train a position-aware patch model (PaDIS) on random PxP patches of the images at their
    /// full resolution (no --size needed for CT volumes); the model then reconstructs images of
    /// any size. Sets data.patch_size.
    #[arg(long, value_name = "P", conflicts_with_all = ["resume", "init"])]
    pub patch: Option<i64>,
    /// Peak learning rate (overrides optim.lr; allowed with --resume, e.g. after a divergence).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Steps between sample grids of the EMA weights in OUT/samples/ (overrides
    /// training.sample_freq; 0: none; allowed with --resume).
    #[arg(long)]
    pub sample_freq: Option<u64>,
    /// PC sampler steps of those grids (overrides training.sample_steps; allowed with --resume).
    #[arg(long)]
    pub sample_steps: Option<usize>,
    /// Held-out data (same forms as --data, e.g. photos of other scenes) on which the held-out
    /// DSM loss is measured, instead of a split of --data: a fresh run then trains on all of
    /// --data (data.heldout_fraction = 0). Allowed with --resume (only evaluation changes).
    #[arg(long)]
    pub heldout_data: Option<String>,
    /// Probability of a random intensity remapping of each training image (overrides
    /// data.random_contrast; e.g. 0.5 so that an MRI prior learns anatomy, not one contrast).
    #[arg(long, value_name = "P", conflicts_with = "resume")]
    pub random_contrast: Option<f64>,
    /// Fine-tune a trained model: a model directory (e.g. data/models/ct-head) whose network,
    /// SDE and weights (and EMA) are the starting point of a new run on --data; --preset or
    /// --config (required with --init) give the optimiser and training settings (with the
    /// preset's warm-up). The data must have the model's sample shape and value range.
    #[arg(long, value_name = "MODEL_DIR", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
}

/// The files and folders a training run reads: the run folder must stay apart from them.
fn train_inputs(args: &Args, source: &DataSource) -> Result<Vec<PathBuf>> {
    let mut inputs = source.paths();
    if let Some(spec) = &args.heldout_data {
        inputs.extend(DataSource::parse(spec)?.paths());
    }
    inputs.extend(args.init.iter().cloned());
    inputs.extend(args.config.iter().cloned());
    Ok(inputs)
}

/// A fresh run needs a new or empty run folder: anything else there (an earlier run without
/// --resume, unrelated files) is refused before training starts.
pub(crate) fn check_fresh_run_dir(out: &std::path::Path, what: &str) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if let Some(e) = entries.next() {
                let name = e?.file_name().to_string_lossy().into_owned();
                bail!(
                    "--out {}: the folder is not empty (it holds '{name}'): a new {what} run                      needs a new or empty folder",
                    out.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            bail!("--out {}: exists and is not a folder", out.display())
        }
        Err(e) => Err(e).with_context(|| format!("--out {}", out.display())),
    }
}

/// The image size to load the data at: `--size`, or for a patch model the source's native size.
fn data_size(args: &Args, source: &DataSource, patch: bool) -> Result<Option<i64>> {
    match (args.size, patch) {
        (Some(s), _) => Ok(Some(s)),
        (None, true) => source
            .native_side()
            .context("--data of a patch model (pass --size to resample)"),
        (None, false) => Ok(None),
    }
}

pub fn run(args: Args, choice: DeviceChoice) -> Result<()> {
    let device = choice.resolve()?;
    let source = DataSource::parse(&args.data)?;
    scoreinv::io::output::check_disjoint(&args.out, &train_inputs(&args, &source)?)
        .context("--out")?;
    let mut trainer = if args.resume {
        if args.preset.is_some() || args.config.is_some() {
            bail!("--resume takes the configuration from the checkpoint; drop --preset/--config");
        }
        let Some(_) = checkpoint::latest(&args.out) else {
            bail!(
                "--resume: {} has no {} to resume from",
                args.out.display(),
                checkpoint::CHECKPOINT_JSON
            );
        };
        let (meta, _) = checkpoint::read_checkpoint(&args.out)?;
        if args
            .batch_size
            .is_some_and(|b| b != meta.config.training.batch_size)
            || args.seed.is_some_and(|s| s != meta.seed)
        {
            bail!("--resume keeps the checkpoint's batch size and seed (they determine the data order and noise)");
        }
        let target = args.steps.unwrap_or(meta.config.training.n_iters);
        if target <= meta.step {
            bail!(
                "--resume: the run in {} is already at step {}{}; pass --steps N with N > {} \
                 to train further",
                args.out.display(),
                meta.step,
                match args.steps {
                    Some(s) => format!(", so --steps {s} trains nothing"),
                    None => " = its training.n_iters".to_string(),
                },
                meta.step
            );
        }
        let size = data_size(&args, &source, meta.config.data.patch_size.is_some())?;
        let data = source.load_sized(meta.config.data.centered, size)?;
        Trainer::<ScoreMatching>::resume(&args.out, &data, device, |c| {
            if let Some(n) = args.steps {
                c.training.n_iters = n;
            }
            if let Some(lr) = args.lr {
                c.optim.lr = lr;
            }
            if let Some(f) = args.sample_freq {
                c.training.sample_freq = f;
            }
            if args.sample_steps.is_some() {
                c.training.sample_steps = args.sample_steps;
            }
        })?
    } else {
        if checkpoint::latest(&args.out).is_some() {
            bail!(
                "{} already holds a run; pass --resume to continue it or choose another --out",
                args.out.display()
            );
        }
        check_fresh_run_dir(&args.out, "training")?;
        let mut cfg: TrainConfig = match (&args.preset, &args.config) {
            (_, Some(path)) => TrainConfig::from_file(path)?,
            (Some(name), None) => preset(name)?,
            (None, None) if args.init.is_some() => bail!(
                "--init takes the network and weights from the model directory, but the optimiser \
                 and schedule from --preset or --config: pass the model's preset (its MODEL_CARD.md \
                 names it, e.g. --preset ncsnpp-64), or a config file"
            ),
            (None, None) => preset("tiny")?,
        };
        if let Some(n) = args.steps {
            cfg.training.n_iters = n;
        }
        if let Some(b) = args.batch_size {
            cfg.training.batch_size = b;
        }
        if let Some(s) = args.seed {
            cfg.training.seed = s;
        }
        if let Some(lr) = args.lr {
            cfg.optim.lr = lr;
        }
        if let Some(f) = args.sample_freq {
            cfg.training.sample_freq = f;
        }
        if args.sample_steps.is_some() {
            cfg.training.sample_steps = args.sample_steps;
        }
        if args.heldout_data.is_some() {
            cfg.data.heldout_fraction = 0.0;
        }
        if let Some(p) = args.random_contrast {
            cfg.data.random_contrast = p;
        }
        if let Some(p) = args.patch {
            cfg.data.patch_size = Some(p);
        }
        match &args.init {
            Some(init) => {
                let mcfg = read_model_config(init)
                    .with_context(|| format!("--init {}", init.display()))?;
                cfg.data.centered = mcfg.data.centered;
                cfg.validate()?;
                let size = data_size(&args, &source, mcfg.patch.is_some())?;
                let data = source.load_sized(cfg.data.centered, size)?;
                let tr = Trainer::fine_tune(init, cfg, &data, device)
                    .with_context(|| format!("--init {}", init.display()))?;
                eprintln!(
                    "fine-tuning {} (trained {} steps on {}): its network, SDE and weights are the start",
                    init.display(),
                    mcfg.training.map(|t| t.step).unwrap_or(0),
                    mcfg.data.source
                );
                tr
            }
            None => {
                cfg.validate()?;
                let size = data_size(&args, &source, cfg.data.patch_size.is_some())?;
                let data = source.load_sized(cfg.data.centered, size)?;
                Trainer::new(cfg, &data, device).with_context(|| {
                    format!("setting up training (presets: {})", PRESETS.join(", "))
                })?
            }
        }
    };
    if let Some(spec) = &args.heldout_data {
        let held_source = DataSource::parse(spec)?;
        let size = data_size(
            &args,
            &held_source,
            trainer.config().data.patch_size.is_some(),
        )?;
        let held = held_source
            .load_sized(trainer.config().data.centered, size)
            .with_context(|| format!("--heldout-data {spec}"))?;
        trainer
            .set_heldout(held)
            .with_context(|| format!("--heldout-data {spec}"))?;
    }
    let cfg = trainer.config().clone();
    eprintln!(
        "training {}{} on {} (shape {:?}) with {:?}, loss {}, {} steps of batch {} on {}",
        cfg.model.name(),
        match cfg.data.patch_size {
            Some(p) => format!(" on {p}x{p} patches with position channels"),
            None => String::new(),
        },
        trainer.data_info().source,
        trainer.data_info().shape,
        cfg.sde,
        cfg.loss.name(),
        cfg.training.n_iters,
        cfg.training.batch_size,
        device_name(device)
    );
    let mut bar = super::progress::Bar::new("train", cfg.training.n_iters, "steps");
    bar.stage("", trainer.step_count(), cfg.training.n_iters);
    let mut heldout = String::new();
    let mut message = String::new();
    // Without a terminal (a background run writing to a log) the bar prints a line every few
    // seconds; a line per checkpoint too.
    let quiet_bar = bar.is_plain();
    let started = std::time::Instant::now();
    let summary = trainer.run(&args.out, &mut |ev| match ev {
        Event::Step(s) => {
            bar.set_position(s.step);
            message = format!("loss {:.4} lr {:.2e}{heldout}", s.loss, s.lr);
            bar.set_message(message.clone());
        }
        Event::HeldOut { result: loss, .. } => heldout = format!(" held-out {loss:.4}"),
        Event::SamplesFailed { step, error } => {
            let line = format!("step {step}: no sample grid ({error}); training goes on");
            bar.println(line);
        }
        Event::Samples { step, path } => {
            let line = format!("step {step}: samples {}", path.display());
            bar.println(line);
        }
        Event::Checkpoint { step, .. } => {
            if quiet_bar {
                eprintln!(
                    "step {step}/{}  {message}  checkpoint written ({:.0} s)",
                    cfg.training.n_iters,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    });
    bar.finish_and_clear();
    let summary = summary?;
    println!(
        "trained {} steps (now at step {}) in {:.1} s: {:.1} samples/s",
        summary.steps_taken, summary.final_step, summary.elapsed_s, summary.samples_per_s
    );
    if let Some(l) = summary.last_loss {
        println!("last training loss  {l:.5}");
    }
    if let Some(l) = summary.heldout {
        println!("held-out DSM loss   {l:.5} (EMA weights)");
    }
    println!("model directory     {}", summary.model_dir.display());
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Run directory of `scoreinv train` (holding checkpoint.json).
    pub run: PathBuf,
    /// Model directory to write (config.json + model.safetensors): new, empty, or an earlier
    /// export (with --overwrite); never inside the run.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier export in --out.
    #[arg(long)]
    pub overwrite: bool,
}

/// `scoreinv export RUN --out MODEL_DIR`.
pub fn export(args: ExportArgs) -> Result<()> {
    let step = checkpoint::export_model(&args.run, &args.out, args.overwrite)
        .with_context(|| format!("export {} --out {}", args.run.display(), args.out.display()))?;
    println!("wrote {} (EMA weights at step {step})", args.out.display());
    Ok(())
}
