//! `scoreinv sample`: unconditional samples from a trained model (PC, probability-flow ODE,
//! annealed Langevin or DDPM ancestral sampling), written as `samples.npy` (the data's raw
//! range) and `grid.png`.
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use scoreinv::device::device_name;
use scoreinv::sampling::ode::OdeSolver;
use scoreinv::sampling::run::{
    build_sampler, ensure_finite_tensor, load, sample_model, OutDir, SampleWriter, SamplerFlags,
};
use scoreinv::sampling::{CorrectorKind, PredictorKind, SamplerKind};
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (config.json + model.safetensors) or a training run folder with model/.
    #[arg(long)]
    pub model: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    pub n: usize,
    /// Sampler: pc, ode, ald, ancestral.
    #[arg(long, default_value = "pc")]
    pub sampler: SamplerKind,
    /// PC predictor: reverse-diffusion, euler-maruyama, ancestral, none.
    #[arg(long)]
    pub predictor: Option<PredictorKind>,
    /// PC corrector: langevin, ald, none.
    #[arg(long)]
    pub corrector: Option<CorrectorKind>,
    /// PC/ancestral: SDE steps N (default: the model's); ALD: noise levels; ODE: steps of a
    /// fixed-step --ode-solver.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Signal-to-noise ratio of the corrector step (PC; default 0.16).
    #[arg(long)]
    pub snr: Option<f64>,
    /// Corrector steps per predictor step (PC, default 1) or Langevin steps per noise level
    /// (ALD, default 100).
    #[arg(long)]
    pub n_corrector_steps: Option<usize>,
    /// ODE: prior samples are scaled by this temperature (default 1).
    #[arg(long)]
    pub temperature: Option<f64>,
    /// ODE solver: rk45 (adaptive, default), euler, heun, rk4.
    #[arg(long)]
    pub ode_solver: Option<OdeSolver>,
    /// RK45 relative tolerance (default 1e-5).
    #[arg(long)]
    pub rtol: Option<f64>,
    /// RK45 absolute tolerance (default 1e-5).
    #[arg(long)]
    pub atol: Option<f64>,
    /// ALD base step size ε (default 2e-5).
    #[arg(long)]
    pub step_lr: Option<f64>,
    /// Keep the last step's noise (no final denoising step).
    #[arg(long)]
    pub no_denoise: bool,
    /// Samples per batch (default: all at once, at most 64).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Images per grid row.
    #[arg(long, default_value_t = 8)]
    pub nrow: usize,
    /// Seed of libtorch's generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created): samples.npy, grid.png.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    let m = load(&args.model, device)?;
    let info = m.data().clone();
    let flags = SamplerFlags {
        sampler: args.sampler,
        steps: args.steps,
        predictor: args.predictor,
        corrector: args.corrector,
        snr: args.snr,
        n_corrector_steps: args.n_corrector_steps,
        temperature: args.temperature,
        step_lr: args.step_lr,
        ode_solver: args.ode_solver,
        rtol: args.rtol,
        atol: args.atol,
        no_denoise: args.no_denoise,
    };
    let opts = build_sampler(&flags, &m.sde)?;
    anyhow::ensure!(args.n >= 1, "--n must be at least 1");
    let batch = args.batch.unwrap_or(args.n.min(64));
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    let out = OutDir::prepare(&args.out)?;
    eprintln!(
        "sampling {} × {:?} from {} ({}) with {} on {}",
        args.n,
        info.shape,
        m.dir.display(),
        info.source,
        opts.describe(),
        device_name(device)
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = sample_model(
        m.model.as_ref(),
        &opts,
        &info.shape,
        args.n,
        batch,
        args.seed,
        device,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .and_then(|run| {
        ensure_finite_tensor(&run.x, "samples")?;
        Ok(run)
    });
    bar.finish_and_clear();
    let run = match result {
        Ok(r) => r,
        Err(e) => {
            out.abandon();
            return Err(e.into());
        }
    };
    let mut w = SampleWriter::new();
    let written = w
        .npy(out.path.join("samples.npy"), &run.x, &info)
        .and_then(|_| w.grid(out.path.join("grid.png"), &run.x, &info, args.nrow));
    let grid = match written {
        Ok(g) => g,
        Err(e) => {
            out.abandon();
            return Err(e).context("writing the samples");
        }
    };
    println!(
        "{} samples in {:.2} s, NFE {} ({} per batch over {} batch(es))",
        args.n,
        run.seconds,
        run.nfe,
        run.nfe / run.batches,
        run.batches
    );
    println!(
        "samples     {} (f32 {:?} ++ {:?}, raw data range {:?})",
        out.path.join("samples.npy").display(),
        [args.n],
        info.shape,
        info.data_range
    );
    if grid {
        println!("grid        {}", out.path.join("grid.png").display());
    } else {
        println!(
            "grid        skipped: the model's samples are {:?} vectors, not images",
            info.shape
        );
    }
    Ok(())
}
