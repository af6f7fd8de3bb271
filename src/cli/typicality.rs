//! `scoreinv typicality`: records a prior's typicality reference (`typicality.json` in its model
//! directory; [`scoreinv::inverse::typicality`]) from images like its training data, or reports
//! how typical other images are under it.
use anyhow::{Context, Result};
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::inverse::typicality::{self, Reference};
use scoreinv::models::model_dir::load_model_dir;
use std::path::PathBuf;
use tch::{Device, Tensor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Images (same forms as `reconstruct --ground-truth`), resampled to the model's size: with
    /// --record, validation images of the prior's own domain; without, the images to assess.
    #[arg(long, required = true, value_delimiter = ',')]
    pub data: Vec<String>,
    /// Write the reference to MODEL/typicality.json (a new file; --overwrite replaces it).
    #[arg(long)]
    pub record: bool,
    /// With --record: replace an existing typicality.json.
    #[arg(long, requires = "record")]
    pub overwrite: bool,
    /// HU window lo,hi for CT data; also `lo hi`.
    #[arg(
        long,
        default_value = "-1000,1500",
        value_delimiter = ',',
        num_args = 1..=2,
    )]
    pub window: Vec<f32>,
    /// Seed of the noise draws of a new reference.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    let (model, sde_cfg, cfg) = load_model_dir(&args.model, device)
        .with_context(|| format!("--model {}", args.model.display()))?;
    let sde = sde_cfg.build()?;
    let size = cfg.data.shape.last().copied();
    let opts = CaseOptions {
        size,
        window: super::parse::hu_window(&args.window)?,
        ..CaseOptions::default()
    };
    let mut names = Vec::new();
    let mut images = Vec::new();
    for spec in &args.data {
        let cases = load_cases(spec, &opts).with_context(|| format!("--data {spec}"))?;
        for c in cases {
            names.push(c.name);
            images.push(c.truth);
        }
    }
    anyhow::ensure!(!images.is_empty(), "--data named no image");
    let x = Tensor::stack(&images, 0).to_device(device);
    anyhow::ensure!(
        x.size()[1..] == cfg.data.shape[..],
        "--data: images are {:?}, the model takes {:?}",
        &x.size()[1..],
        cfg.data.shape
    );
    let path = args.model.join(typicality::FILE);
    if args.record {
        anyhow::ensure!(
            args.overwrite || !path.exists(),
            "{} exists: --overwrite replaces it",
            path.display()
        );
        let r = typicality::reference(
            model.as_ref(),
            sde.as_ref(),
            &cfg.data,
            &x,
            &args.data.join(","),
            args.seed,
        )?;
        let json = serde_json::to_string_pretty(&r)?;
        scoreinv::io::atomic::write_bytes(&path, json.as_bytes())?;
        println!(
            "{} images: DSM loss per dimension {:?} at noise levels {:?} (t = {:?}); ratios {:.3}…{:.3}; warning \
             threshold {:.3}",
            r.images,
            r.dsm_loss
                .iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>(),
            r.levels,
            r.times.iter().map(|t| format!("{t:.4}")).collect::<Vec<_>>(),
            r.ratios.iter().copied().fold(f64::INFINITY, f64::min),
            r.ratios.iter().copied().fold(0.0, f64::max),
            r.threshold()
        );
        println!("wrote {}", path.display());
        return Ok(());
    }
    let r = Reference::read(&args.model)?.with_context(|| {
        format!(
            "{} has no {}: record one with --record on validation images",
            args.model.display(),
            typicality::FILE
        )
    })?;
    let prior = format!("{} (trained on {})", args.model.display(), cfg.data.source);
    let t = typicality::assess(
        &prior,
        model.as_ref(),
        sde.as_ref(),
        &cfg.data,
        &r,
        &x,
        "image",
    )?;
    println!(
        "{:<28} {:>8}  {:>9}  in domain",
        "image", "ratio", "threshold"
    );
    for (n, c) in names.iter().zip(&t) {
        println!(
            "{n:<28} {:>8.3}  {:>9.3}  {}",
            c.ratio,
            c.threshold,
            if c.out_of_domain { "no" } else { "yes" }
        );
    }
    Ok(())
}
