//! `scoreinv eval-classifier`: accuracy of a trained classifier on labelled data it never saw
//! (e.g. `--data fashion-mnist:test`), per noise level for a time-dependent classifier.
use anyhow::{Context, Result};
use scoreinv::guidance::train::{dataset_accuracy, load_classifier_dir};
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Classifier directory (`train-classifier`'s `RUN/classifier`, or a shipped one).
    #[arg(long)]
    pub classifier: PathBuf,
    /// Labelled data: fashion-mnist:test, fashion-mnist, a folder with IDX images and labels, an
    /// `X-images-idx3-ubyte[.gz]` file with `X-labels-idx1-ubyte[.gz]` beside it, or mixture2d[:N].
    #[arg(long)]
    pub data: String,
    /// Equal time bins of [ε, 1] after the row t = ε (time-dependent classifiers; 0: only t = ε).
    #[arg(long, default_value_t = 10)]
    pub n_t_bins: usize,
    /// Seed of the perturbation noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the table as JSON (written atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    let (net, cfg) = load_classifier_dir(&args.classifier, device)?;
    let data = super::train_classifier::load_data(&args.data, cfg.data.centered)?;
    let rows = dataset_accuracy(&net, &cfg, &data, args.n_t_bins, args.seed, device)?;
    println!(
        "{} classifier {} (step {}) on {}",
        if cfg.clean { "clean" } else { "time-dependent" },
        args.classifier.display(),
        cfg.step,
        data.info.source,
    );
    super::train_classifier::print_accuracy(&rows);
    if let Some(path) = &args.json {
        let v = serde_json::json!({
            "classifier": args.classifier.display().to_string(),
            "data": data.info.source,
            "clean": cfg.clean,
            "step": cfg.step,
            "rows": rows,
        });
        let dir = scoreinv::io::atomic::parent_dir(path);
        std::fs::create_dir_all(&dir).with_context(|| format!("--json {}", path.display()))?;
        scoreinv::io::atomic::write_bytes(path, serde_json::to_string_pretty(&v)?.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
