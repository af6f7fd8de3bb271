//! `scoreinv reconstruct {ct}`: a reconstruction study on simulated measurements.
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use scoreinv::data::cases::{load_cases, CaseOptions};
use scoreinv::data::ct_slices::HuWindow;
use scoreinv::inverse::baselines::{Baseline, TaskPreset};
use scoreinv::inverse::dps::DpsConfig;
use scoreinv::inverse::projection::ProjectionConfig;
use scoreinv::inverse::replacement::ReplacementConfig;
use scoreinv::inverse::score_method::{ScoreAlgorithm, ScoreMethod};
use scoreinv::inverse::study::{self, BaselineMethod, Method};
use scoreinv::operators::fbp::FbpFilter;
use scoreinv::operators::noise::PoissonNoise;
use scoreinv::operators::radon::ParallelBeamRadon;
use scoreinv::operators::Decomposed;
use scoreinv::operators::{LinearOperator, NoiseModel};
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Debug, clap::Subcommand)]
pub enum Task {
    /// Sparse-view parallel-beam CT.
    Ct(CtArgs),
}

#[derive(Debug, clap::Args)]
pub struct CtArgs {
    /// Ground truth: a file (png, tif, npy, nii[.gz], dcm, DICOM folder; `#z=K` picks a slice),
    /// `FILE.inv3#z=A..B`, `invesalius:z=A..B`, `phantom:shepp-logan`, `phantom:ellipses:A..B`.
    /// Repeat the flag or separate with commas.
    #[arg(long = "ground-truth", required = true, value_delimiter = ',')]
    pub ground_truth: Vec<String>,
    /// Methods, comma-separated: fbp, tv, and with --model: score (projection sampler of Song
    /// et al. 2022), score-sde (replacement sampler), dps.
    #[arg(long, default_value = "fbp,tv", value_delimiter = ',')]
    pub method: Vec<String>,
    #[command(flatten)]
    pub score: ScoreArgs,
    /// Number of kept views (uniformly spread over the full grid).
    #[arg(long, default_value_t = 23)]
    pub views: usize,
    /// Number of angles of the full-view grid over [0°, 180°).
    #[arg(long, default_value_t = 180)]
    pub angles: usize,
    /// Measurement noise: none, gaussian:SIGMA (relative to the sinogram's peak), poisson:I0.
    #[arg(long, default_value = "gaussian:0.005")]
    pub noise: String,
    /// FBP filter: ramp, shepp-logan, cosine, hamming, hann.
    #[arg(long, default_value = "ramp")]
    pub filter: String,
    /// Resample every case to SIZE×SIZE.
    #[arg(long)]
    pub size: Option<i64>,
    /// HU window lo,hi for CT data (DICOM, .inv3).
    #[arg(
        long,
        default_value = "-1000,1500",
        value_delimiter = ',',
        num_args = 2
    )]
    pub window: Vec<f32>,
    /// TV weight relative to ‖A‖² (default: the CT preset).
    #[arg(long)]
    pub tv_lambda: Option<f64>,
    /// PDHG iterations of the TV baseline.
    #[arg(long)]
    pub tv_iters: Option<usize>,
    /// Seed of the measurement noise.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    match args.task {
        Task::Ct(a) => run_ct(a, device),
    }
}

/// `none`, `gaussian:σ` or `poisson:I0` as a closure on clean measurements.
fn noise_fn(spec: &str) -> Result<Box<dyn Fn(&Tensor) -> scoreinv::Result<Tensor>>> {
    let t = spec.trim().to_ascii_lowercase();
    if let Some(i0) = t.strip_prefix("poisson:") {
        let i0: f64 = i0
            .parse()
            .with_context(|| format!("--noise {spec}: '{i0}' is not a number"))?;
        let p = PoissonNoise::new(i0)?;
        return Ok(Box::new(move |y: &Tensor| Ok(p.apply(y)?)));
    }
    let m: NoiseModel = t.parse()?;
    Ok(Box::new(move |y: &Tensor| Ok(m.apply(y)?)))
}

fn run_ct(a: CtArgs, device: Device) -> Result<()> {
    let opts = CaseOptions {
        size: a.size,
        window: HuWindow {
            lo: a.window[0],
            hi: a.window[1],
        },
        ..CaseOptions::default()
    };
    anyhow::ensure!(
        opts.window.hi > opts.window.lo,
        "--window: lo {} must be below hi {}",
        opts.window.lo,
        opts.window.hi
    );
    let filter: FbpFilter = a.filter.parse()?;
    let noise = noise_fn(&a.noise)?;
    let mut tv = TaskPreset::Ct.tv_config();
    if let Some(l) = a.tv_lambda {
        tv.lambda = l;
    }
    if let Some(n) = a.tv_iters {
        tv.n_iter = n;
    }
    let methods: Vec<Box<dyn Method>> = a
        .method
        .iter()
        .filter(|m| !is_score_method(m))
        .map(|m| -> Result<Box<dyn Method>> {
            let b: Baseline = m.parse()?;
            anyhow::ensure!(
                matches!(b, Baseline::Fbp | Baseline::Tv),
                "--method {m}: CT reconstructs with fbp or tv (score methods need --model)"
            );
            Ok(Box::new(BaselineMethod { baseline: b, tv }))
        })
        .collect::<Result<_>>()?;
    // Load every case before writing anything, so bad input leaves no output behind.
    let mut cases = Vec::new();
    for spec in &a.ground_truth {
        cases.extend(load_cases(spec, &opts).with_context(|| format!("--ground-truth {spec}"))?);
    }
    anyhow::ensure!(!cases.is_empty(), "--ground-truth named no image");
    let size = cases[0].truth.size();
    for c in &cases {
        anyhow::ensure!(
            c.truth.size() == size,
            "case '{}' is {:?} but '{}' is {:?}: pass --size N to resample them all",
            c.name,
            c.truth.size(),
            cases[0].name,
            size
        );
        anyhow::ensure!(
            size[0] == 1,
            "CT needs gray images; '{}' has {} channels",
            c.name,
            size[0]
        );
        anyhow::ensure!(
            size[1] == size[2],
            "CT needs square images; '{}' is {}×{}",
            c.name,
            size[1],
            size[2]
        );
    }
    let op = Arc::new(
        ParallelBeamRadon::sparse_view(size[1] as usize, a.views, a.angles, Kind::Float, device)?
            .with_filter(filter),
    );
    let mut methods = methods;
    methods.extend(score_methods(
        &a.method,
        &a.score,
        op.clone(),
        ProjectionConfig::ct(),
        device,
    )?);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    tch::manual_seed(a.seed);
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let pb = ProgressBar::new(cases.len() as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} cases {msg} ({elapsed})")?
            .progress_chars("=> "),
    );
    pb.set_prefix("reconstruct ct");
    let mut records = Vec::new();
    for case in &cases {
        pb.set_message(case.name.clone());
        let case = study::Case {
            name: case.name.clone(),
            truth: case.truth.to_device(device),
        };
        let out = study::run_case(
            op.as_ref() as &dyn LinearOperator,
            noise.as_ref(),
            &case,
            &refs,
        )?;
        study::write_case(&a.out, &out)?;
        records.extend(out.records);
        pb.inc(1);
    }
    pb.finish_and_clear();
    study::write_metrics(&a.out, &records)?;
    println!(
        "sparse-view CT: {} of {} views, noise {}, {}×{} images, device {}",
        a.views,
        a.angles,
        a.noise,
        size[1],
        size[2],
        scoreinv::device::device_name(device)
    );
    print!("{}", study::format_table(&records));
    println!(
        "wrote {} (PNG per case, metrics.json, metrics.csv)",
        a.out.display()
    );
    Ok(())
}

/// Flags of the score-based methods (`--method score,score-sde,dps`).
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Trained model directory (config.json + model.safetensors) for score, score-sde, dps.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number of reverse-SDE steps N (default: the model's SDE, usually 1000).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Langevin corrector signal-to-noise ratio (default: the task's published value).
    #[arg(long)]
    pub snr: Option<f64>,
    /// Projection weight λ in [0, 1] of the score method (default: the task's published value).
    #[arg(long)]
    pub lambda: Option<f64>,
    /// DPS step size ζ.
    #[arg(long)]
    pub zeta: Option<f64>,
    /// Posterior samples per case; the reconstruction is their mean.
    #[arg(long, default_value_t = 1)]
    pub samples: i64,
}

fn is_score_method(m: &str) -> bool {
    matches!(
        m.trim().to_ascii_lowercase().as_str(),
        "score" | "score-sde" | "score_sde" | "dps"
    )
}

/// The score-based methods named in `methods`, loaded from `--model` onto `device`, checked
/// against the operator's image shape before anything is written.
fn score_methods(
    methods: &[String],
    s: &ScoreArgs,
    op: Arc<dyn Decomposed>,
    projection: ProjectionConfig,
    device: Device,
) -> Result<Vec<Box<dyn Method>>> {
    let mut out: Vec<Box<dyn Method>> = Vec::new();
    for m in methods.iter().filter(|m| is_score_method(m)) {
        let dir = s
            .model
            .as_ref()
            .with_context(|| format!("--method {m} needs a trained model: pass --model RUN_DIR"))?;
        let algorithm = match m.trim().to_ascii_lowercase().as_str() {
            "score" => {
                let mut c = projection;
                c.snr = s.snr.unwrap_or(c.snr);
                c.lambda = s.lambda.unwrap_or(c.lambda);
                ScoreAlgorithm::Projection(c)
            }
            "dps" => {
                let mut c = DpsConfig::default();
                c.zeta = s.zeta.unwrap_or(c.zeta);
                ScoreAlgorithm::Dps(c)
            }
            _ => {
                let mut c = ReplacementConfig::default();
                c.snr = s.snr.unwrap_or(c.snr);
                ScoreAlgorithm::Replacement(c)
            }
        };
        let method = ScoreMethod::from_model_dir(
            dir,
            device,
            s.steps,
            algorithm,
            Some(op.clone()),
            s.samples,
        )
        .with_context(|| format!("--method {m} --model {}", dir.display()))?;
        method.check_operator(op.as_ref())?;
        out.push(Box::new(method));
    }
    Ok(out)
}
