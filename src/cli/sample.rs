//! `scoreinv sample`: unconditional samples from a trained model (PC, probability-flow ODE,
//! annealed Langevin or DDPM ancestral sampling), written as `samples.npy` (the data's raw
//! range) and `grid.png`. With `--classifier`, class-conditional samples by classifier
//! guidance (`s_θ + w ∇ₓ log p_t(y | x)`, [`scoreinv::guidance`]), any sampler.
use anyhow::{Context, Result};
use scoreinv::device::device_name;
use scoreinv::guidance::{
    check_guidance_pair, cycled_labels, load_classifier_dir, ClassGuided, TimeDependentClassifier,
};
use scoreinv::io::output::{OutputDir, Reuse};
use scoreinv::models::ScoreModel;
use scoreinv::sampling::ode::OdeSolver;
use scoreinv::sampling::run::{
    build_sampler, ensure_finite_tensor, load, sample_model, SampleWriter, SamplerOptions,
};
use scoreinv::sampling::{CorrectorKind, PredictorKind, SAMPLERS};
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model directory (config.json + model.safetensors) or a training run folder with model/.
    #[arg(long)]
    pub model: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 64, value_parser = super::parse::positive_usize)]
    pub n: usize,
    /// Sampler: pc, ode, ald, ancestral (the registry `scoreinv::sampling::SAMPLERS`).
    #[arg(long, default_value = "pc", value_parser = sampler_name)]
    pub sampler: String,
    /// PC predictor: reverse-diffusion, euler-maruyama, ancestral, none.
    #[arg(long)]
    pub predictor: Option<PredictorKind>,
    /// PC corrector: langevin, ald, none.
    #[arg(long)]
    pub corrector: Option<CorrectorKind>,
    /// PC/ancestral: SDE steps N (default: the model's); ALD: noise levels; ODE: steps of a
    /// fixed-step --ode-solver.
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub steps: Option<usize>,
    /// Signal-to-noise ratio of the corrector step (PC; default 0.16).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub snr: Option<f64>,
    /// Corrector steps per predictor step (PC, default 1) or Langevin steps per noise level
    /// (ALD, default 100).
    #[arg(long)]
    pub n_corrector_steps: Option<usize>,
    /// ODE: prior samples are scaled by this temperature (default 1).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub temperature: Option<f64>,
    /// ODE solver: rk45 (adaptive, default), euler, heun, rk4.
    #[arg(long)]
    pub ode_solver: Option<OdeSolver>,
    /// RK45 relative tolerance (default 1e-5).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub rtol: Option<f64>,
    /// RK45 absolute tolerance (default 1e-5).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub atol: Option<f64>,
    /// ALD base step size ε (default 2e-5).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub step_lr: Option<f64>,
    /// Keep the last step's noise (no final denoising step).
    #[arg(long)]
    pub no_denoise: bool,
    /// Samples per batch (default: all at once, at most 64).
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub batch: Option<usize>,
    /// Images per grid row.
    #[arg(long, default_value_t = 8, value_parser = super::parse::positive_usize)]
    pub nrow: usize,
    /// Seed of libtorch's generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder: samples.npy, grid.png; new, empty, or an earlier `sample` output (with
    /// --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an earlier `scoreinv sample` output in --out (only the files it wrote).
    #[arg(long)]
    pub overwrite: bool,
    /// Time-dependent classifier directory (`scoreinv train-classifier`, same SDE as the
    /// model): class-conditional sampling by classifier guidance.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
    /// Classes to sample with --classifier, cycled over the --n samples (default: all classes
    /// in turn, so a grid with --nrow = the class count has one class per column).
    #[arg(long = "class", value_delimiter = ',', requires = "classifier")]
    pub classes: Vec<i64>,
    /// Guidance scale w (1 = Bayes' rule; larger = sharper classes).
    #[arg(
        long = "guidance-scale",
        default_value_t = 1.0,
        requires = "classifier"
    )]
    pub guidance_scale: f64,
    /// A clean classifier (`train-classifier --clean`) that scores the guided samples: prints
    /// the fraction classified as their requested class and writes it to classes.json.
    #[arg(long = "eval-classifier", requires = "classifier")]
    pub eval_classifier: Option<PathBuf>,
}

/// A sampler name or alias of the registry, as its canonical name.
fn sampler_name(s: &str) -> std::result::Result<String, String> {
    scoreinv::sampling::sampler_entry(s)
        .map(|e| e.name.to_string())
        .map_err(|_| {
            format!(
                "not one of {}",
                SAMPLERS
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

pub fn run(args: Args, device: Device) -> Result<()> {
    let m = load(&args.model, device)?;
    let info = m.data().clone();
    let flags = SamplerOptions {
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
    let mut batch = args.batch.unwrap_or(args.n.min(64));
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    // Classifier guidance: the guided score holds one label per sample of its batch, so all
    // --n samples are drawn in one batch.
    let guidance = match &args.classifier {
        Some(dir) => {
            let (clf, ccfg) = load_classifier_dir(dir, device)?;
            check_guidance_pair(&m.config, &ccfg, dir)?;
            let labels = cycled_labels(&args.classes, clf.n_classes(), args.n)?;
            anyhow::ensure!(
                args.batch.is_none_or(|b| b >= args.n),
                "guided sampling draws all --n samples in one batch; drop --batch or raise it to {}",
                args.n
            );
            batch = args.n;
            let eval = match &args.eval_classifier {
                Some(d) => Some(load_classifier_dir(d, device)?),
                None => None,
            };
            Some((clf, labels, eval))
        }
        None => None,
    };
    let inputs: Vec<PathBuf> = std::iter::once(args.model.clone())
        .chain(args.classifier.iter().cloned())
        .chain(args.eval_classifier.iter().cloned())
        .collect();
    let mut out = OutputDir::claim(
        &args.out,
        "sample",
        &inputs,
        Reuse::from_flag(args.overwrite),
    )
    .context("--out")?;
    eprintln!(
        "sampling {} × {:?} from {} ({}) with {} on {}",
        args.n,
        info.shape,
        m.dir.display(),
        info.source,
        opts.describe(),
        device_name(device)
    );
    let mut bar = super::progress::Bar::new("sample", 0, "steps");
    let guided = match &guidance {
        Some((clf, labels, _)) => Some(ClassGuided::new(
            m.model.as_ref(),
            clf,
            &Tensor::from_slice(labels).to_device(device),
            args.guidance_scale,
        )?),
        None => None,
    };
    let model: &dyn ScoreModel = match &guided {
        Some(g) => g,
        None => m.model.as_ref(),
    };
    let result = sample_model(
        model,
        opts.as_ref(),
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
    let mut gpu = scoreinv::runtime::GpuMemoryPeak::new(device);
    gpu.sample();
    let run = match result {
        Ok(r) => r,
        Err(e) => {
            out.abandon();
            return Err(e.into());
        }
    };
    let mut w = SampleWriter::new();
    let written = out.register(&["samples.npy", "grid.png"]).and_then(|p| {
        w.npy(p[0].clone(), &run.x, &info)?;
        w.grid(p[1].clone(), &run.x, &info, args.nrow)
    });
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
    if let Some(line) = gpu.report() {
        println!("{line}");
    }
    println!(
        "samples     {} (f32 {:?} ++ {:?}, raw data range {:?})",
        out.path().join("samples.npy").display(),
        [args.n],
        info.shape,
        info.data_range
    );
    if let Some((_, labels, Some((eval, ecfg)))) = &guidance {
        // Samples (model space) → raw values → the scoring classifier's own data space.
        let x = ecfg
            .data
            .normalize(&info.denormalize(&run.x.to_device(device)));
        let pred = tch::no_grad(|| eval.clean_logits(&x)).argmax(1, false);
        let want = Tensor::from_slice(labels).to_device(device);
        let hit = pred.eq_tensor(&want).to_kind(Kind::Double);
        let acc = hit.mean(Kind::Double).double_value(&[]);
        let json = serde_json::json!({
            "guidance_scale": args.guidance_scale,
            "requested": labels,
            "predicted": Vec::<i64>::try_from(pred.to_device(Device::Cpu))?,
            "accuracy": acc,
        });
        let path = out.file("classes.json")?;
        let text = serde_json::to_string_pretty(&json)?;
        scoreinv::io::atomic::write_bytes(&path, text.as_bytes())?;
        println!(
            "classes     {:.1} % of the samples are classified as their requested class by {} ({})",
            100.0 * acc,
            args.eval_classifier
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            path.display()
        );
    }
    if grid {
        println!("grid        {}", out.path().join("grid.png").display());
    } else {
        println!(
            "grid        skipped: the model's samples are {:?} vectors, not images",
            info.shape
        );
    }
    Ok(())
}
