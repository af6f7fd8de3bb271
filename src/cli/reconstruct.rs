//! `scoreinv reconstruct {ct,mri,inpaint,colorize}`: a reconstruction study on simulated
//! measurements (`--ground-truth`), or reconstructions of real measurements (`--measurement`,
//! no metrics). Operators, noise and measurement files: `scoreinv::inverse::tasks`.
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use scoreinv::data::cases::{pending_cases, CaseOptions, PendingCase};
use scoreinv::data::ct_slices::HuWindow;
use scoreinv::inverse::baselines::{Baseline, TaskPreset};
use scoreinv::inverse::dps::DpsConfig;
use scoreinv::inverse::projection::ProjectionConfig;
use scoreinv::inverse::replacement::ReplacementConfig;
use scoreinv::inverse::score_method::{ScoreAlgorithm, ScoreMethod};
use scoreinv::inverse::study::{self, BaselineMethod, Method};
use scoreinv::inverse::tasks::{
    self, InpaintConfig, Measurement, MriConfig, TaskConfig, TaskKind, TaskNoise,
};
use scoreinv::inverse::volumes;
use scoreinv::operators::fbp::FbpFilter;
use scoreinv::operators::radon::ParallelBeamRadon;
use scoreinv::operators::Decomposed;
use scoreinv::operators::LinearOperator;
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
    /// Undersampled MRI (single coil or SENSE).
    Mri(MriArgs),
    /// Inpainting of gray or colour images.
    Inpaint(InpaintArgs),
    /// Colorization of gray images (RGB ground truth).
    Colorize(ColorizeArgs),
}

#[derive(Debug, clap::Args)]
pub struct CtArgs {
    /// Ground truth: a file (png, jpg, tif, npy, nii[.gz], dcm; `#z=K` picks a slice,
    /// `#z=A..B[:STEP]` several), a folder (its pictures in name order, or a DICOM series),
    /// `invesalius:z=A..B`, `phantom:shepp-logan`, `phantom:ellipses:A..B`.
    /// Repeat the flag or separate with commas.
    #[arg(
        long = "ground-truth",
        required_unless_present = "measurement",
        value_delimiter = ','
    )]
    pub ground_truth: Vec<String>,
    /// A real sinogram `[N, n_views]` (npy) instead of --ground-truth: reconstructions only,
    /// no metrics. Its angles: --angles-file, or --views of --angles.
    #[arg(long, conflicts_with = "ground_truth")]
    pub measurement: Option<PathBuf>,
    /// With --measurement: the kept angles in degrees (1-D npy, e.g. the `_angles.npy` of
    /// `scoreinv simulate ct`), instead of --views/--angles.
    #[arg(long = "angles-file", requires = "measurement")]
    pub angles_file: Option<PathBuf>,
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
    /// Process only part K of N (`K/N`, K = 0..N-1) of the cases: batch j (cases
    /// j·B … j·B + B − 1 for `--batch B`) belongs to part j mod N. Every case is seeded by its
    /// index, so `scoreinv merge` of the N parts equals the unsharded run with the same --batch.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Cases (slices) reconstructed together in one batched run of every method. Slices of a
    /// NIfTI volume or DICOM series are read from their files batch by batch, so memory does
    /// not grow with the number of slices.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args, device: Device) -> Result<()> {
    match args.task {
        Task::Ct(a) if a.measurement.is_some() => run_ct_measurement(a, device),
        Task::Ct(a) => run_ct(a, device),
        Task::Mri(a) => run_mri(a, device),
        Task::Inpaint(a) => run_inpaint(a, device),
        Task::Colorize(a) => run_colorize(a, device),
    }
}

/// `--shard K/N`: part K (0-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(v: &str) -> Result<Self> {
        let (k, n) = v
            .split_once('/')
            .with_context(|| format!("--shard {v}: expected K/N, e.g. 0/4"))?;
        let k: usize = k
            .trim()
            .parse()
            .with_context(|| format!("--shard {v}: K"))?;
        let n: usize = n
            .trim()
            .parse()
            .with_context(|| format!("--shard {v}: N"))?;
        anyhow::ensure!(n >= 1 && k < n, "--shard {v}: need 0 <= K < N");
        Ok(Shard { k, n })
    }
}

/// The batches of `batch` consecutive cases (the last may be shorter) that fall in `shard`
/// (batch `j` is in part `j mod N`), each case with its index in the whole study.
fn select_shard<T>(
    cases: Vec<T>,
    shard: Option<Shard>,
    batch: usize,
) -> Result<Vec<Vec<(usize, T)>>> {
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    let total = cases.len();
    let mut out: Vec<Vec<(usize, T)>> = Vec::new();
    for (i, c) in cases.into_iter().enumerate() {
        let j = i / batch;
        if shard.is_some_and(|s| j % s.n != s.k) {
            continue;
        }
        match out.last_mut() {
            Some(b) if b[0].0 / batch == j => b.push((i, c)),
            _ => out.push(vec![(i, c)]),
        }
    }
    if let Some(s) = shard {
        anyhow::ensure!(
            !out.is_empty(),
            "--shard {}/{}: no case falls in this part ({total} cases in batches of {batch})",
            s.k,
            s.n
        );
    }
    Ok(out)
}

/// The cases of every `--ground-truth` spec with the volumes among them and their common
/// `[C, H, W]`, checked before anything is written, so bad input leaves no output behind
/// (slices of a volume are checked by a streamed pass here and read again batch by batch):
/// at least one case, one size for all, and no case name twice (its outputs would overwrite
/// each other's, e.g. `x.png` and `x.npy` in one folder, or one file named twice).
fn ground_truth_cases(
    specs: &[String],
    opts: &CaseOptions,
) -> Result<(
    Vec<PendingCase>,
    Vec<scoreinv::data::cases::SourceVolume>,
    Vec<i64>,
)> {
    let mut cases = Vec::new();
    let mut volumes = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for spec in specs {
        let (c, v) = pending_cases(spec, opts).with_context(|| format!("--ground-truth {spec}"))?;
        for case in &c {
            if let Some(first) = seen.insert(case.name.clone(), spec.clone()) {
                anyhow::bail!(
                    "--ground-truth: two cases are named '{}' (from {first} and {spec}); their \
                     outputs would overwrite each other: rename one file",
                    case.name
                );
            }
        }
        cases.extend(c);
        volumes.extend(v);
    }
    anyhow::ensure!(!cases.is_empty(), "--ground-truth named no image");
    let size = cases[0].shape.clone();
    for c in &cases {
        anyhow::ensure!(
            c.shape == size,
            "case '{}' is {:?} but '{}' is {:?}: pass --size N to resample them all",
            c.name,
            c.shape,
            cases[0].name,
            size
        );
    }
    Ok((cases, volumes, size))
}

/// Records which reconstructed cases are slices of a ground-truth volume (`volumes.json`) and,
/// when this study holds every slice (no `--shard`, or after `scoreinv merge`), writes each
/// method's reconstruction as `{stem}_{method}.nii.gz`.
fn write_study_volumes(
    out: &std::path::Path,
    volumes: &[scoreinv::data::cases::SourceVolume],
    case_names: &[String],
    methods: &[&dyn Method],
) -> Result<()> {
    let names: std::collections::HashSet<&str> = case_names.iter().map(|n| n.as_str()).collect();
    let method_names: Vec<String> = methods.iter().map(|m| m.name()).collect();
    let manifest = volumes::study_manifest(volumes, &|n: &str| names.contains(n), &method_names);
    manifest.write(out)?;
    for p in volumes::write_volumes(out, &manifest)? {
        println!("volume: {}", p.display());
    }
    Ok(())
}

/// Reconstructs the batches of a study one after the other ([`study::run_batch`]; each case's
/// noise seeded by its index), writing each case's outputs as soon as its batch is done, with a
/// progress bar over cases. Returns every record and the names of the cases.
#[allow(clippy::too_many_arguments)]
fn run_batches(
    op: &dyn LinearOperator,
    noise: &dyn Fn(&Tensor) -> scoreinv::Result<Tensor>,
    batches: Vec<Vec<(usize, PendingCase)>>,
    seed: u64,
    methods: &[&dyn Method],
    out: &std::path::Path,
    device: Device,
    prefix: &str,
) -> Result<(Vec<study::Record>, Vec<String>)> {
    let n: usize = batches.iter().map(|b| b.len()).sum();
    let pb = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} cases {msg} ({elapsed})")?
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    let mut records = Vec::new();
    let mut names = Vec::with_capacity(n);
    let mut gpu = scoreinv::runtime::GpuMemoryPeak::new(device);
    for batch in batches {
        let seeds: Vec<i64> = batch.iter().map(|(i, _)| case_seed(seed, *i)).collect();
        let cases: Vec<study::Case> = batch
            .into_iter()
            .map(|(_, c)| {
                let c = c.load()?;
                Ok(study::Case {
                    name: c.name,
                    truth: c.truth.to_device(device),
                })
            })
            .collect::<Result<_>>()?;
        pb.set_message(match cases.len() {
            1 => cases[0].name.clone(),
            k => format!("{} (+{})", cases[0].name, k - 1),
        });
        for o in study::run_batch(op, noise, &cases, Some(&seeds), methods)? {
            study::write_case(out, &o)?;
            records.extend(o.records);
            names.push(o.name);
        }
        gpu.sample();
        pb.inc(cases.len() as u64);
    }
    pb.finish_and_clear();
    if let Some(line) = gpu.report() {
        println!("{line}");
    }
    Ok((records, names))
}

/// Seed of libtorch's generator for case `index`: a fixed function of (seed, index), so a
/// case's noise and samples do not depend on which other cases run (sharding).
fn case_seed(seed: u64, index: usize) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64) as i64 & i64::MAX
}

/// Measurement noise applied to a clean measurement batch.
type NoiseFn = Box<dyn Fn(&Tensor) -> scoreinv::Result<Tensor>>;

/// `none`, `gaussian:σ` or `poisson:I0[:MU]` ([`TaskNoise`]) as a closure on clean
/// measurements.
fn noise_fn(spec: &str) -> Result<NoiseFn> {
    let m = TaskNoise::parse(spec, TaskKind::Ct)?;
    Ok(Box::new(move |y: &Tensor| m.apply(y)))
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
    // One size for all cases: the first case speaks for them.
    let (cases, volumes, size) = ground_truth_cases(&a.ground_truth, &opts)?;
    let first = &cases[0].name;
    anyhow::ensure!(
        size[0] == 1,
        "CT needs gray images; '{first}' has {} channels",
        size[0]
    );
    anyhow::ensure!(
        size[1] == size[2],
        "CT needs square images; '{first}' is {}×{}",
        size[1],
        size[2]
    );
    let op = Arc::new(
        ParallelBeamRadon::sparse_view(size[1] as usize, a.views, a.angles, Kind::Float, device)?
            .with_filter(filter),
    );
    let mut methods = methods;
    methods.extend(score_methods(
        &a.method,
        &a.score,
        op.as_ref(),
        Some(op.clone()),
        TaskKind::Ct,
        ProjectionConfig::ct(),
        device,
    )?);
    let batches = select_shard(cases, a.shard, a.batch)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let noise_ref = |y: &Tensor| noise(y);
    let (records, names) = run_batches(
        op.as_ref() as &dyn LinearOperator,
        &noise_ref,
        batches,
        a.seed as u64,
        &refs,
        &a.out,
        device,
        "reconstruct ct",
    )?;
    study::write_metrics(&a.out, &records)?;
    write_study_volumes(&a.out, &volumes, &names, &refs)?;
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
    /// Conjugate-gradient iterations of the final least-squares data-consistency step of the
    /// score method (default: the task's; 0 = the reference's single projection; few with noisy
    /// measurements, which exact consistency would fit).
    #[arg(long = "consistency-iters")]
    pub consistency_iters: Option<usize>,
    /// Posterior samples per case; the reconstruction is their mean.
    #[arg(long, default_value_t = 1)]
    pub samples: i64,
    /// CUDA only: run the score method's steps as replays of one captured CUDA graph (one
    /// launch per step; the step is launch-bound at these image sizes).
    #[arg(long = "cuda-graph")]
    pub cuda_graph: bool,
}

fn is_score_method(m: &str) -> bool {
    matches!(
        m.trim().to_ascii_lowercase().as_str(),
        "score" | "score-sde" | "score_sde" | "dps"
    )
}

/// The score-based methods named in `methods`, loaded from `--model` onto `device`, checked
/// against `op`'s image shape before anything is written. `decomposed` is `op`'s `T`/`Λ`
/// decomposition, which `score` and `score-sde` need; without one (multi-coil SENSE) only `dps`
/// is accepted. `score` starts from `projection` (the task's published settings), then the
/// model's validated settings for `task` (`"sampler"` in its `config.json`), then the flags.
fn score_methods(
    methods: &[String],
    s: &ScoreArgs,
    op: &dyn LinearOperator,
    decomposed: Option<Arc<dyn Decomposed>>,
    task: TaskKind,
    projection: ProjectionConfig,
    device: Device,
) -> Result<Vec<Box<dyn Method>>> {
    let mut out: Vec<Box<dyn Method>> = Vec::new();
    anyhow::ensure!(
        !s.cuda_graph || device.is_cuda(),
        "--cuda-graph needs a CUDA device (--device cuda), the run is on {}",
        scoreinv::device::device_name(device)
    );
    for m in methods.iter().filter(|m| is_score_method(m)) {
        let dir = s
            .model
            .as_ref()
            .with_context(|| format!("--method {m} needs a trained model: pass --model RUN_DIR"))?;
        let name = m.trim().to_ascii_lowercase();
        anyhow::ensure!(
            decomposed.is_some() || name == "dps",
            "--method {m}: the {} operator has no T/Λ decomposition; use dps",
            op.name()
        );
        let algorithm = match name.as_str() {
            "score" => {
                let mut c = projection;
                let validated = scoreinv::models::model_dir::sampler_settings(dir, task.name())
                    .with_context(|| format!("--method {m} --model {}", dir.display()))?;
                if let Some(ms) = &validated {
                    c = c.with_model_settings(ms);
                    let flagged = |v: Option<f64>, f: Option<f64>| v.is_some() && f.is_none();
                    if flagged(ms.snr, s.snr) || flagged(ms.lambda, s.lambda) {
                        eprintln!(
                            "note: --method score: snr {}, λ {} validated for this model ({}, \
                             sampler.{}; --snr / --lambda override)",
                            s.snr.unwrap_or(c.snr),
                            s.lambda.unwrap_or(c.lambda),
                            dir.join("config.json").display(),
                            task.name()
                        );
                    }
                }
                c.snr = s.snr.unwrap_or(c.snr);
                c.lambda = s.lambda.unwrap_or(c.lambda);
                c.consistency_iters = s.consistency_iters.unwrap_or(c.consistency_iters);
                c.cuda_graph = s.cuda_graph;
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
            decomposed.clone(),
            s.samples,
        )
        .with_context(|| format!("--method {m} --model {}", dir.display()))?;
        method.check_operator(op)?;
        out.push(Box::new(method));
    }
    Ok(out)
}

/// `reconstruct ct --measurement`: FBP/TV of a real sinogram.
fn run_ct_measurement(a: CtArgs, device: Device) -> Result<()> {
    let Some(path) = a.measurement.clone() else {
        anyhow::bail!("reconstruct ct: --measurement FILE is needed here");
    };
    let filter: FbpFilter = a.filter.parse()?;
    let baselines = task_baselines(TaskKind::Ct, &a.method)?;
    let m = tasks::load_ct_measurement(
        &path,
        a.views,
        a.angles,
        a.angles_file.as_deref(),
        filter,
        device,
    )?;
    let methods = baseline_methods(baselines, m.op.tv_config(), a.tv_lambda, a.tv_iters);
    finish_measurement(m, &methods, &a.out)
}

/// Flags shared by `reconstruct mri|inpaint|colorize`.
#[derive(Debug, clap::Args)]
pub struct StudyArgs {
    /// Ground truth (simulation study with metrics), as for `reconstruct ct`. Repeat the flag
    /// or separate with commas.
    #[arg(
        long = "ground-truth",
        required_unless_present = "measurement",
        value_delimiter = ','
    )]
    pub ground_truth: Vec<String>,
    /// A real measurement instead of --ground-truth: reconstructions only, no metrics.
    #[arg(long, conflicts_with = "ground_truth")]
    pub measurement: Option<PathBuf>,
    /// Methods, comma-separated (mri, inpaint: zero-filled, tv; colorize: gray, tv).
    #[arg(long, value_delimiter = ',')]
    pub method: Vec<String>,
    /// Measurement noise of the simulation: none or gaussian:SIGMA (relative to the peak).
    #[arg(long, default_value = "none", conflicts_with = "measurement")]
    pub noise: String,
    /// Resample every case to SIZE×SIZE.
    #[arg(long, conflicts_with = "measurement")]
    pub size: Option<i64>,
    /// HU window lo,hi for CT data used as ground truth (DICOM, .inv3).
    #[arg(
        long,
        default_value = "-1000,1500",
        value_delimiter = ',',
        num_args = 2
    )]
    pub window: Vec<f32>,
    /// TV weight relative to ‖A‖² (default: the task preset; MRI: 5e-3, or 5e-2 when the mask's
    /// true acceleration is at least 7, e.g. fastMRI 8×).
    #[arg(long)]
    pub tv_lambda: Option<f64>,
    /// PDHG iterations of the TV baseline.
    #[arg(long)]
    pub tv_iters: Option<usize>,
    /// Seed of masks, coil maps and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Process only part K of N (`K/N`) of the cases, as for `reconstruct ct`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Cases (slices) reconstructed together in one batched run, as for `reconstruct ct`.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub score: ScoreArgs,
}

#[derive(Debug, clap::Args)]
pub struct MriArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Target acceleration R of a generated mask (the true one is printed).
    #[arg(long, default_value_t = 4.0)]
    pub accel: f64,
    /// Fully sampled centre fraction (default 0.32/R: 0.08 at R = 4, fastMRI).
    #[arg(long = "center-fraction")]
    pub center_fraction: Option<f64>,
    /// Generated mask: random, equispaced, equispaced-fixed, gaussian2d, poisson, radial.
    #[arg(long = "mask-kind", default_value = "random")]
    pub mask_kind: String,
    /// Radial lines (default: the count closest to --accel).
    #[arg(long)]
    pub lines: Option<usize>,
    /// Receive coils of the simulation: 1 = single coil, more = SENSE with synthetic maps.
    #[arg(long, default_value_t = 1)]
    pub coils: usize,
    /// A 0/1 [H, W] sampling mask file (npy, png). Required with --measurement; with
    /// --ground-truth it replaces the generated mask.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Coil maps [coils, H, W] (complex npy) of a multi-coil --measurement.
    #[arg(long = "coil-maps", requires = "measurement")]
    pub coil_maps: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Mask (1 = observed): box[:S], random:P, half[:SIDE], strokes[:SEED] or a 0/1 FILE
    /// (default box). With --measurement: a FILE, required.
    #[arg(long)]
    pub mask: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ColorizeArgs {
    #[command(flatten)]
    pub study: StudyArgs,
}

fn run_mri(a: MriArgs, device: Device) -> Result<()> {
    if let Some(path) = &a.study.measurement {
        let baselines = task_baselines(TaskKind::Mri, &a.study.method)?;
        let m =
            tasks::load_mri_measurement(path, a.mask.as_deref(), a.coil_maps.as_deref(), device)?;
        let methods = baseline_methods(
            baselines,
            m.op.tv_config(),
            a.study.tv_lambda,
            a.study.tv_iters,
        );
        return finish_measurement(m, &methods, &a.study.out);
    }
    let cfg = TaskConfig::Mri(MriConfig {
        acceleration: a.accel,
        center_fraction: a.center_fraction,
        mask_kind: a.mask_kind.parse()?,
        lines: a.lines,
        coils: a.coils,
        mask_file: a.mask.clone(),
    });
    run_study(cfg, a.study, device)
}

fn run_inpaint(a: InpaintArgs, device: Device) -> Result<()> {
    if let Some(path) = &a.study.measurement {
        let baselines = task_baselines(TaskKind::Inpaint, &a.study.method)?;
        let mask = a.mask.as_deref().map(std::path::Path::new);
        let m = tasks::load_inpaint_measurement(path, mask, device)?;
        let methods = baseline_methods(
            baselines,
            m.op.tv_config(),
            a.study.tv_lambda,
            a.study.tv_iters,
        );
        return finish_measurement(m, &methods, &a.study.out);
    }
    let cfg = TaskConfig::Inpaint(InpaintConfig {
        mask: a.mask.clone().unwrap_or_else(|| "box".into()),
    });
    run_study(cfg, a.study, device)
}

fn run_colorize(a: ColorizeArgs, device: Device) -> Result<()> {
    if let Some(path) = &a.study.measurement {
        let baselines = task_baselines(TaskKind::Colorize, &a.study.method)?;
        let m = tasks::load_colorize_measurement(path, device)?;
        let methods = baseline_methods(
            baselines,
            m.op.tv_config(),
            a.study.tv_lambda,
            a.study.tv_iters,
        );
        return finish_measurement(m, &methods, &a.study.out);
    }
    run_study(TaskConfig::Colorize, a.study, device)
}

/// The task's baselines named by `--method` (its defaults when empty), checked before anything
/// is loaded.
fn task_baselines(kind: TaskKind, names: &[String]) -> Result<Vec<Baseline>> {
    Ok(if names.is_empty() {
        kind.default_methods()
    } else {
        names
            .iter()
            .map(|n| kind.parse_method(n))
            .collect::<scoreinv::Result<Vec<_>>>()?
    })
}

/// `baselines` as methods with the TV settings `tv` (the operator's preset,
/// [`tasks::TaskOperator::tv_config`]) overridden by `--tv-lambda` / `--tv-iters`.
fn baseline_methods(
    baselines: Vec<Baseline>,
    mut tv: scoreinv::inverse::baselines::TvConfig,
    tv_lambda: Option<f64>,
    tv_iters: Option<usize>,
) -> Vec<Box<dyn Method>> {
    if let Some(l) = tv_lambda {
        tv.lambda = l;
    }
    if let Some(n) = tv_iters {
        tv.n_iter = n;
    }
    baselines
        .into_iter()
        .map(|baseline| Box::new(BaselineMethod { baseline, tv }) as Box<dyn Method>)
        .collect()
}

/// Refuses an --out that exists and is not a folder (checked before anything is written).
fn check_out_folder(out: &std::path::Path) -> Result<()> {
    anyhow::ensure!(
        !out.exists() || out.is_dir(),
        "--out {}: exists and is not a folder",
        out.display()
    );
    Ok(())
}

/// Simulation study for mri/inpaint/colorize: every case is loaded and checked, the operator
/// built, before the output folder is created.
fn run_study(cfg: TaskConfig, s: StudyArgs, device: Device) -> Result<()> {
    let kind = cfg.kind();
    let baseline_names: Vec<String> = s
        .method
        .iter()
        .filter(|m| !is_score_method(m))
        .cloned()
        .collect();
    // Checked now, built with the operator (the MRI TV weight depends on its mask).
    let baselines = if baseline_names.is_empty() && !s.method.is_empty() {
        Vec::new()
    } else {
        task_baselines(kind, &baseline_names)?
    };
    let noise = TaskNoise::parse(&s.noise, kind)?;
    anyhow::ensure!(
        s.window[1] > s.window[0],
        "--window: lo {} must be below hi {}",
        s.window[0],
        s.window[1]
    );
    let opts = CaseOptions {
        size: s.size,
        window: HuWindow {
            lo: s.window[0],
            hi: s.window[1],
        },
        ..CaseOptions::default()
    };
    let (cases, volumes, size) = ground_truth_cases(&s.ground_truth, &opts)?;
    tasks::check_image_shape(kind, &cases[0].name, &size)?;
    let op = cfg.build(&size, s.seed, device)?;
    let mut methods = baseline_methods(baselines, op.tv_config(), s.tv_lambda, s.tv_iters);
    let description = op.describe();
    let (op, decomposed) = op.into_shared();
    let projection = match kind {
        TaskKind::Mri => ProjectionConfig::mri(),
        _ => ProjectionConfig::default(),
    };
    methods.extend(score_methods(
        &s.method,
        &s.score,
        op.as_ref(),
        decomposed,
        kind,
        projection,
        device,
    )?);
    check_out_folder(&s.out)?;
    let batches = select_shard(cases, s.shard, s.batch)?;
    std::fs::create_dir_all(&s.out).with_context(|| format!("creating {}", s.out.display()))?;
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let noise_fn = move |y: &Tensor| noise.apply(y);
    let (records, names) = run_batches(
        op.as_ref(),
        &noise_fn,
        batches,
        s.seed,
        &refs,
        &s.out,
        device,
        &format!("reconstruct {kind}"),
    )?;
    study::write_metrics(&s.out, &records)?;
    write_study_volumes(&s.out, &volumes, &names, &refs)?;
    println!(
        "{}, noise {}, device {}",
        description,
        noise,
        scoreinv::device::device_name(device)
    );
    print!("{}", study::format_table(&records));
    println!(
        "wrote {} (PNG per case, metrics.json, metrics.csv)",
        s.out.display()
    );
    Ok(())
}

/// Reconstructs a real measurement with every method and writes `<name>.png`,
/// `<name>_<method>.npy` and `reconstructions.json` (no ground truth, so no metrics).
fn finish_measurement(
    m: Measurement,
    methods: &[Box<dyn Method>],
    out: &std::path::Path,
) -> Result<()> {
    check_out_folder(out)?;
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let recons = tasks::reconstruct_measurement(&m, &refs)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    tasks::write_reconstructions(out, &m.name, &recons)?;
    let rows: Vec<serde_json::Value> = recons
        .iter()
        .map(|r| {
            serde_json::json!({
                "case": m.name,
                "method": r.method,
                "seconds": r.seconds,
                "file": format!("{}_{}.npy", m.name, r.method),
            })
        })
        .collect();
    let json = serde_json::to_string_pretty(&rows)?;
    let path = out.join("reconstructions.json");
    scoreinv::io::atomic::write_bytes(&path, json.as_bytes())?;
    println!(
        "{} (real measurement: no ground truth, no metrics)",
        m.op.describe()
    );
    println!("{:<12} {:>9}  file", "method", "seconds");
    for r in &recons {
        println!(
            "{:<12} {:>9.3}  {}_{}.npy",
            r.method, r.seconds, m.name, r.method
        );
    }
    println!(
        "wrote {} ({}.png, reconstructions.json)",
        out.display(),
        m.name
    );
    Ok(())
}
