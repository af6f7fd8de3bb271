//! `scoreinv train-classifier`: fit a time-dependent classifier `p_t(y | x(t))` (or, with
//! `--clean`, an ordinary classifier) to labelled data, for classifier guidance.
use anyhow::{bail, Context, Result};
use scoreinv::device::{device_name, DeviceChoice};
use scoreinv::guidance::train::{
    classifier_preset, mixture_dataset, read_classifier_checkpoint, toy_mixture, AccuracyRow,
    AccuracyTable, ClassifierEvent, ClassifierTrainConfig, ClassifierTrainer,
    CLASSIFIER_CHECKPOINT_JSON, CLASSIFIER_PRESETS,
};
use scoreinv::sde::SdeConfig;
use scoreinv::train::data::{DataSource, Dataset};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Labelled training data: fashion-mnist, a folder with train-images/train-labels IDX
    /// files, or mixture2d[:N] (3-component 2-D Gaussian mixture, default 20000 samples).
    #[arg(long)]
    pub data: String,
    /// SDE whose perturbations the classifier learns: ve, vp or subvp (published defaults;
    /// ve uses the preset's σ range).
    #[arg(long)]
    pub sde: Option<String>,
    /// Run directory (checkpoints, loss.csv, heldout.csv, accuracy.csv/json, classifier/).
    #[arg(long)]
    pub out: PathBuf,
    /// Total number of steps.
    #[arg(long, value_parser = super::parse::positive_u64)]
    pub steps: Option<u64>,
    /// Continue from the checkpoint in --out, bit-exactly.
    #[arg(long)]
    pub resume: bool,
    /// Named configuration: tiny, toy2d, fashion-mnist (default: toy2d for mixture2d,
    /// fashion-mnist otherwise).
    #[arg(long, conflicts_with = "config")]
    pub preset: Option<String>,
    /// Configuration file (JSON or TOML by extension).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Train an ordinary classifier on clean data (the independent scorer of samples).
    #[arg(long)]
    pub clean: bool,
    /// Batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of all random streams.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Peak learning rate (allowed with --resume).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Images in [-1, 1] instead of [0, 1]: must match the score model a guidance classifier is
    /// used with (VP/sub-VP models are trained centred), since guidance feeds it the model's x(t).
    #[arg(long)]
    pub centered: bool,
}

/// Prints an accuracy table (one row per time bin).
pub(super) fn print_accuracy(rows: &[AccuracyRow]) {
    println!("  t_lo      t_hi      accuracy  n");
    for r in rows {
        println!(
            "  {:<9.5} {:<9.5} {:<9.4} {}",
            r.t_lo, r.t_hi, r.accuracy, r.n
        );
    }
}

pub(super) fn load_data(spec: &str, centered: bool) -> Result<Dataset> {
    if let Some(rest) = spec.strip_prefix("mixture2d") {
        let n = match rest.strip_prefix(':') {
            Some(n) => n
                .parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--data {spec}: '{n}' is not a sample count"))?,
            None if rest.is_empty() => 20_000,
            None => bail!("--data {spec}: expected mixture2d[:N]"),
        };
        return Ok(mixture_dataset(&toy_mixture(), n, 0)?);
    }
    let data = DataSource::parse(spec)?.load(centered)?;
    if data.labels.is_none() {
        bail!(
            "--data {spec}: no labels found ({}); a classifier needs labelled data (IDX images with train-labels-idx1-ubyte, or mixture2d)",
            data.info.source
        );
    }
    Ok(data)
}

fn parse_sde(name: &str, current: SdeConfig) -> Result<SdeConfig> {
    Ok(
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "ve" => match current {
                c @ SdeConfig::Ve { .. } => c,
                _ => SdeConfig::ve_default(),
            },
            "vp" => SdeConfig::vp_default(),
            "subvp" | "sub-vp" => SdeConfig::subvp_default(),
            other => bail!("--sde '{other}' is not one of ve, vp, subvp"),
        },
    )
}

pub fn run(args: Args, choice: DeviceChoice) -> Result<()> {
    let device = choice.resolve()?;
    // (`mixture2d` is synthetic: no files.)
    let mut inputs = DataSource::parse(&args.data)
        .map(|s| s.paths())
        .unwrap_or_default();
    inputs.extend(args.config.iter().cloned());
    scoreinv::io::output::check_disjoint(&args.out, &inputs).context("--out")?;
    let mut trainer = if args.resume {
        if args.preset.is_some() || args.config.is_some() || args.sde.is_some() || args.clean {
            bail!("--resume takes the configuration from the checkpoint; drop --preset/--config/--sde/--clean");
        }
        if !args.out.join(CLASSIFIER_CHECKPOINT_JSON).exists() {
            bail!(
                "--resume: {} has no {CLASSIFIER_CHECKPOINT_JSON} to resume from",
                args.out.display()
            );
        }
        let (meta, _) = read_classifier_checkpoint(&args.out)?;
        if args.batch_size.is_some_and(|b| b != meta.config.batch_size)
            || args.seed.is_some_and(|s| s != meta.seed)
        {
            bail!("--resume keeps the checkpoint's batch size and seed (they determine the data order and noise)");
        }
        let target = args.steps.unwrap_or(meta.config.n_iters);
        if target <= meta.step {
            bail!(
                "--resume: the run in {} is already at step {}; pass --steps N with N > {} to \
                 train further",
                args.out.display(),
                meta.step,
                meta.step
            );
        }
        let data = load_data(&args.data, meta.config.centered)?;
        ClassifierTrainer::resume(&args.out, &data, device, |c| {
            if let Some(n) = args.steps {
                c.n_iters = n;
            }
            if let Some(lr) = args.lr {
                c.optim.lr = lr;
            }
        })?
    } else {
        if args.out.join(CLASSIFIER_CHECKPOINT_JSON).exists() {
            bail!(
                "{} already holds a classifier run; pass --resume to continue it or choose another --out",
                args.out.display()
            );
        }
        super::train::check_fresh_run_dir(&args.out, "classifier training")?;
        let mut cfg: ClassifierTrainConfig = match (&args.preset, &args.config) {
            (_, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                if path.extension().is_some_and(|e| e == "json") {
                    serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                } else {
                    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
            }
            (Some(name), None) => classifier_preset(name)?,
            (None, None) => classifier_preset(if args.data.starts_with("mixture2d") {
                "toy2d"
            } else {
                "fashion-mnist"
            })?,
        };
        if let Some(s) = &args.sde {
            cfg.sde = parse_sde(s, cfg.sde)?;
        }
        if let Some(n) = args.steps {
            cfg.n_iters = n;
        }
        if let Some(b) = args.batch_size {
            cfg.batch_size = b;
        }
        if let Some(s) = args.seed {
            cfg.seed = s;
        }
        if let Some(lr) = args.lr {
            cfg.optim.lr = lr;
        }
        cfg.clean |= args.clean;
        cfg.centered |= args.centered;
        cfg.validate()?;
        let data = load_data(&args.data, cfg.centered)?;
        ClassifierTrainer::new(cfg, &data, device).map_err(|e| {
            anyhow::anyhow!(
                "{e} (classifier presets: {})",
                CLASSIFIER_PRESETS.join(", ")
            )
        })?
    };
    let cfg = trainer.config().clone();
    eprintln!(
        "training a {}{} classifier ({} classes) on {} (shape {:?}) with {:?}, {} steps of batch {} on {}",
        if cfg.clean { "clean " } else { "time-dependent " },
        cfg.model.name(),
        trainer.n_classes(),
        trainer.data_info().source,
        trainer.data_info().shape,
        cfg.sde,
        cfg.n_iters,
        cfg.batch_size,
        device_name(device)
    );
    let mut bar = super::progress::Bar::new("train-classifier", cfg.n_iters, "steps");
    bar.stage("", trainer.step_count(), cfg.n_iters);
    let mut heldout = String::new();
    let mut last_rows: Vec<AccuracyRow> = Vec::new();
    let res = trainer.run(&args.out, &mut |ev| match ev {
        ClassifierEvent::Step(s) => {
            bar.set_position(s.step);
            bar.set_message(format!(
                "loss {:.4} acc {:.3} lr {:.2e}{heldout}",
                s.loss,
                s.batch_accuracy.unwrap_or(f64::NAN),
                s.lr
            ));
        }
        ClassifierEvent::HeldOut {
            result: AccuracyTable { at_eps, mean, rows },
            ..
        } => {
            heldout = format!(" held-out acc@eps {at_eps:.3} mean {mean:.3}");
            last_rows = rows.clone();
        }
        _ => {}
    });
    bar.finish_and_clear();
    let dir = res?.model_dir;
    println!("trained to step {}", trainer.step_count());
    println!("held-out accuracy (EMA weights), per time bin:");
    print_accuracy(&last_rows);
    println!("classifier directory {}", dir.display());
    Ok(())
}
