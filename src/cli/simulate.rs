//! `scoreinv simulate {ct,mri,inpaint,colorize}`: the measurement `y = A x + n` of one ground
//! truth image, written as NPY with the mask/angles needed to reconstruct it
//! (`scoreinv reconstruct TASK --measurement`). See `scoreinv::inverse::tasks`.
use anyhow::{Context, Result};
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::inverse::tasks::{
    self, CtConfig, InpaintConfig, MriConfig, TaskConfig, TaskKind, TaskNoise,
};
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Debug, clap::Subcommand)]
pub enum Task {
    /// Sparse-view CT sinogram (+ `_angles.npy`, `_mask.npy`).
    Ct(CtArgs),
    /// Undersampled k-space, complex64 (+ `_mask.npy`, and `_maps.npy` with --coils > 1).
    Mri(MriArgs),
    /// Masked image (+ `_mask.npy`, 1 = observed).
    Inpaint(InpaintArgs),
    /// Gray image mean(R, G, B) of an RGB image.
    Colorize(Common),
}

/// Flags every task shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Ground truth: one image (png, tif, npy, nii[.gz], dcm; `#z=K` picks a slice),
    /// `phantom:shepp-logan`, `phantom:ellipses:S`, `invesalius:z=K`.
    #[arg(long = "ground-truth")]
    pub ground_truth: String,
    /// Output measurement FILE.npy (side files are written next to it); none of them may exist
    /// (unless --overwrite) or be an input.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace existing output files (never an input).
    #[arg(long)]
    pub overwrite: bool,
    /// Noise: none, gaussian:SIGMA (relative to the measurement's peak), poisson:I0[:MU] (CT).
    /// Default: gaussian:0.005 for CT, none otherwise.
    #[arg(long)]
    pub noise: Option<String>,
    /// Seed of masks, coil maps and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Resample the image to SIZE×SIZE.
    #[arg(long, value_parser = super::parse::image_size)]
    pub size: Option<i64>,
    /// HU window lo,hi for CT data (DICOM, .inv3).
    #[arg(
        long,
        default_value = "-1000,1500",
        value_delimiter = ',',
        num_args = 1..=2,
        allow_hyphen_values = true
    )]
    pub window: Vec<f32>,
}

#[derive(Debug, clap::Args)]
pub struct CtArgs {
    #[command(flatten)]
    pub common: Common,
    /// Number of kept views (uniformly spread over the full grid).
    #[arg(long, default_value_t = 23, value_parser = super::parse::positive_usize)]
    pub views: usize,
    /// Number of angles of the full-view grid over [0°, 180°).
    #[arg(long, default_value_t = 180, value_parser = super::parse::positive_usize)]
    pub angles: usize,
}

#[derive(Debug, clap::Args)]
pub struct MriArgs {
    #[command(flatten)]
    pub common: Common,
    /// Target acceleration R (the true one is printed).
    #[arg(long, default_value_t = 4.0)]
    pub accel: f64,
    /// Fully sampled centre fraction (default 0.32/R: 0.08 at R = 4, fastMRI).
    #[arg(long = "center-fraction")]
    pub center_fraction: Option<f64>,
    /// Mask: random, equispaced, equispaced-fixed, gaussian2d, poisson, radial.
    #[arg(long = "mask-kind", default_value = "random")]
    pub mask_kind: String,
    /// Radial lines (default: the count closest to --accel).
    #[arg(long)]
    pub lines: Option<usize>,
    /// Number of receive coils: 1 = single coil, more = SENSE with synthetic maps.
    #[arg(long, default_value_t = 1, value_parser = super::parse::positive_usize)]
    pub coils: usize,
}

#[derive(Debug, clap::Args)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub common: Common,
    /// Mask: box[:S], random:P (observed fraction), half[:SIDE], strokes[:SEED], or a 0/1 FILE.
    #[arg(long, default_value = "box")]
    pub mask: String,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    let (cfg, common) = match args.task {
        Task::Ct(a) => (
            TaskConfig::Ct(CtConfig {
                views: a.views,
                angles: a.angles,
                ..CtConfig::default()
            }),
            a.common,
        ),
        Task::Mri(a) => (
            TaskConfig::Mri(MriConfig {
                acceleration: a.accel,
                center_fraction: a.center_fraction,
                mask_kind: a.mask_kind.parse()?,
                lines: a.lines,
                coils: a.coils,
                mask_file: None,
            }),
            a.common,
        ),
        Task::Inpaint(a) => (
            TaskConfig::Inpaint(InpaintConfig { mask: a.mask }),
            a.common,
        ),
        Task::Colorize(c) => (TaskConfig::Colorize, c),
    };
    simulate(cfg, common, device)
}

fn simulate(cfg: TaskConfig, c: Common, device: Device) -> Result<()> {
    let kind = cfg.kind();
    tasks::check_measurement_path(&c.out)?;
    let spec = c.noise.clone().unwrap_or_else(|| {
        if kind == TaskKind::Ct {
            "gaussian:0.005".into()
        } else {
            "none".into()
        }
    });
    let noise = TaskNoise::parse(&spec, kind)?;
    let opts = CaseOptions {
        size: c.size,
        window: super::parse::hu_window(&c.window)?,
        ..CaseOptions::default()
    };
    let cases = load_cases(&c.ground_truth, &opts)
        .with_context(|| format!("--ground-truth {}", c.ground_truth))?;
    anyhow::ensure!(
        cases.len() == 1,
        "--ground-truth {}: simulate takes one image, this names {} (pick one, e.g. #z=K)",
        c.ground_truth,
        cases.len()
    );
    let case = &cases[0];
    let shape = case.truth.size();
    tasks::check_image_shape(kind, &case.name, &shape)?;
    let op = cfg.build(&shape, c.seed, device)?;
    let mut inputs = scoreinv::data::cases::spec_paths(&c.ground_truth);
    if let TaskConfig::Inpaint(InpaintConfig { mask }) = &cfg {
        inputs.push(PathBuf::from(mask));
    }
    let files = tasks::measurement_files(&op, &c.out);
    scoreinv::io::output::check_output_files(&files, &inputs, c.overwrite).context("--out")?;
    tch::manual_seed(c.seed as i64);
    let y = tasks::simulate(&op, &noise, &case.truth.to_device(device))?;
    if let Some(dir) = c.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let written = tasks::write_measurement(&op, &y, &c.out)?;
    println!("{}, noise {}", op.describe(), noise);
    if let Some(m) = op.sampling_mask() {
        println!("true acceleration: {:.4}", m.acceleration());
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
