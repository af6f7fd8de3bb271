//! `scoreinv reconstruct {ct,mri,inpaint,colorize}`: a reconstruction study on simulated
//! measurements (`--ground-truth`), or reconstructions of real measurements (`--measurement`,
//! no metrics). Operators, noise and measurement files: `scoreinv::inverse::tasks`.
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use scoreinv::data::cases::{pending_cases, CaseOptions, PendingCase};
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
use scoreinv::io::output::{OutputDir, Reuse};
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

#[derive(Debug, clap::Args, serde::Serialize)]
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
    #[arg(long, default_value_t = 23, value_parser = super::parse::positive_usize)]
    pub views: usize,
    /// Number of angles of the full-view grid over [0°, 180°).
    #[arg(long, default_value_t = 180, value_parser = super::parse::positive_usize)]
    pub angles: usize,
    /// Measurement noise: none, gaussian:SIGMA (relative to the sinogram's peak), poisson:I0.
    #[arg(long, default_value = "gaussian:0.005")]
    pub noise: String,
    /// FBP filter: ramp, shepp-logan, cosine, hamming, hann.
    #[arg(long, default_value = "ramp")]
    pub filter: String,
    /// Resample every case to SIZE×SIZE.
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
    /// TV weight relative to ‖A‖² (default: the CT preset).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub tv_lambda: Option<f64>,
    /// PDHG iterations of the TV baseline.
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub tv_iters: Option<usize>,
    /// Seed of the measurement noise.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Process only part K of N (`K/N`, K = 0..N-1) of the cases: batch j (cases
    /// j·B … j·B + B − 1 for `--batch B`) belongs to part j mod N. Every case is seeded by its
    /// index, so `scoreinv merge` of the N parts equals the unsharded run with the same --batch.
    #[arg(long)]
    #[serde(skip)]
    pub shard: Option<Shard>,
    /// Cases (slices) reconstructed together in one batched run of every method. Slices of a
    /// NIfTI volume or DICOM series are read from their files batch by batch, so memory does
    /// not grow with the number of slices.
    #[arg(long, default_value_t = 1, value_parser = super::parse::positive_usize)]
    pub batch: usize,
    #[command(flatten)]
    #[serde(skip)]
    pub output: OutputArgs,
}

/// Where a reconstruction is written, and what may happen to an earlier one there.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Output folder: new, empty, or written by an earlier `scoreinv reconstruct` of the same
    /// task (then --overwrite or --resume is needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output of an earlier run in --out: the files it wrote (listed in its
    /// .scoreinv-output.json) are removed first; nothing else in the folder is touched.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Continue an interrupted study in --out with the same settings: the cases it finished
    /// are kept, the others are reconstructed (results equal an uninterrupted run).
    #[arg(long)]
    pub resume: bool,
}

impl OutputArgs {
    fn reuse(&self) -> Reuse {
        if self.resume {
            Reuse::Resume
        } else if self.overwrite {
            Reuse::Overwrite
        } else {
            Reuse::Refuse
        }
    }
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
    out: &mut OutputDir,
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

/// What a simulation study records and where it writes, besides its operator and methods.
struct StudyPlan<'a> {
    /// `reconstruct ct`, …: the owner named in the output folder's manifest.
    command: String,
    /// Everything that determines the results ([`study_settings`]).
    settings: serde_json::Value,
    /// Files and folders the study reads (the output must stay apart from them).
    inputs: Vec<PathBuf>,
    output: &'a OutputArgs,
    shard: Option<Shard>,
    batch: usize,
    seed: u64,
    /// Printed above the table.
    header: String,
}

/// The settings recorded in `metrics.json`: the command, its flags (all but the output and
/// shard ones) and, when a model is used, the SHA-256 of its weights.
fn study_settings(
    command: &str,
    args: &impl serde::Serialize,
    model: Option<&std::path::Path>,
) -> Result<serde_json::Value> {
    let mut v = serde_json::json!({
        "command": command,
        "args": serde_json::to_value(args)?,
    });
    if let Some(dir) = model {
        let weights = dir.join("model.safetensors");
        v["model_sha256"] = serde_json::Value::String(
            scoreinv::io::sha256_file(&weights)
                .with_context(|| format!("--model {}", dir.display()))?,
        );
    }
    Ok(v)
}

/// Refuses a method named twice (`--method fbp,fbp`), which would run twice and double its
/// rows.
fn check_distinct_methods(methods: &[String]) -> Result<()> {
    let norm = |m: &str| m.trim().to_ascii_lowercase().replace('_', "-");
    for (i, m) in methods.iter().enumerate() {
        if let Some(first) = methods[..i].iter().find(|o| norm(o) == norm(m)) {
            anyhow::bail!(
                "--method {}: '{m}' is named twice ('{first}' already); name each method once",
                methods.join(",")
            );
        }
    }
    Ok(())
}

/// The files and folders named by `--ground-truth` specs.
fn ground_truth_inputs(specs: &[String]) -> Vec<PathBuf> {
    specs
        .iter()
        .flat_map(|s| scoreinv::data::cases::spec_paths(s))
        .collect()
}

/// Runs a simulation study into the folder of `plan.output` (claimed first: see
/// [`scoreinv::io::output`]): the batches of `cases` in `plan.shard` one after the other
/// ([`study::run_batch`]; each case's noise and samples seeded by its index), each case's files
/// written as soon as its batch is done, with a progress bar over cases. With `--resume`, the
/// cases an earlier interrupted run finished (its `metrics.json`, same settings) are kept and
/// skipped. The first SIGINT/SIGTERM stops after the batch in flight; so does an error: the
/// metrics of what is done are written (marked incomplete) either way.
#[allow(clippy::too_many_arguments)]
fn run_study_plan(
    plan: StudyPlan,
    op: &dyn LinearOperator,
    noise: &dyn Fn(&Tensor) -> scoreinv::Result<Tensor>,
    cases: Vec<PendingCase>,
    source_volumes: &[scoreinv::data::cases::SourceVolume],
    methods: &[&dyn Method],
    device: Device,
) -> Result<()> {
    let total = cases.len();
    let batches = select_shard(cases, plan.shard, plan.batch)?;
    let shard = plan.shard.map(|s| study::ShardInfo { k: s.k, n: s.n });
    let mut out = OutputDir::claim(
        &plan.output.out,
        &plan.command,
        &plan.inputs,
        plan.output.reuse(),
    )
    .context("--out")?;
    let method_names: Vec<String> = methods.iter().map(|m| m.name()).collect();
    // Resume: the records of the cases an earlier run of the same study finished.
    let mut previous: std::collections::HashMap<String, Vec<study::Record>> =
        std::collections::HashMap::new();
    if plan.output.resume && out.owns("metrics.json") {
        let report = study::read_report(out.path())?;
        match &report.settings {
            Some(prev) => {
                if let Some((k, was, now)) = study::settings_difference(prev, &plan.settings) {
                    anyhow::bail!(
                        "--resume: the study in {} was run with {k} = {was}, this command has \
                         {now}: resume it with its own settings, or start anew with --overwrite",
                        plan.output.out.display()
                    );
                }
            }
            None => anyhow::bail!(
                "--resume: {} records no settings, so it cannot be continued safely; start \
                 anew with --overwrite",
                plan.output.out.display()
            ),
        }
        anyhow::ensure!(
            report.shard == shard,
            "--resume: the study in {} is {}, this command asks for {}",
            plan.output.out.display(),
            describe_shard(report.shard),
            describe_shard(shard)
        );
        for r in report.records {
            previous.entry(r.case.clone()).or_default().push(r);
        }
        previous.retain(|_, rs| {
            method_names
                .iter()
                .all(|m| rs.iter().any(|r| &r.method == m))
        });
    }
    let n: usize = batches.iter().map(|b| b.len()).sum();
    let done_before: usize = batches
        .iter()
        .filter(|b| b.iter().all(|(_, c)| previous.contains_key(&c.name)))
        .map(|b| b.len())
        .sum();
    if done_before > 0 {
        eprintln!(
            "resuming {}: {done_before} of {n} cases done, {} to go",
            plan.output.out.display(),
            n - done_before
        );
    }
    let pb = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} cases {msg} ({elapsed})")?
            .progress_chars("=> "),
    );
    pb.set_prefix(plan.command.clone());
    pb.set_position(done_before as u64);
    let mut records = Vec::new();
    let mut names = Vec::with_capacity(n);
    let mut gpu = scoreinv::runtime::GpuMemoryPeak::new(device);
    let mut stopped: Option<anyhow::Error> = None;
    let mut interrupted = false;
    for batch in batches {
        if batch.iter().all(|(_, c)| previous.contains_key(&c.name)) {
            for (_, c) in &batch {
                records.extend(previous.remove(&c.name).unwrap_or_default());
                names.push(c.name.clone());
            }
            continue;
        }
        if interrupted || stopped.is_some() {
            continue;
        }
        let res = (|| -> Result<Vec<study::CaseOutput>> {
            let seeds: Vec<i64> = batch
                .iter()
                .map(|(i, _)| case_seed(plan.seed, *i))
                .collect();
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
            let outs = study::run_batch(op, noise, &cases, Some(&seeds), methods)?;
            for o in &outs {
                study::write_case(&mut out, o)?;
            }
            Ok(outs)
        })();
        match res {
            Ok(outs) => {
                pb.inc(outs.len() as u64);
                for o in outs {
                    records.extend(o.records);
                    names.push(o.name);
                }
            }
            Err(e) => stopped = Some(e),
        }
        gpu.sample();
        interrupted = scoreinv::interrupt::requested();
    }
    pb.finish_and_clear();
    let done = names.len();
    let complete = done == n;
    if records.is_empty() && !complete {
        // Nothing finished: no metrics to write; a folder this run created is removed again.
        out.abandon();
        return Err(stopped.unwrap_or_else(|| {
            scoreinv::Error::Interrupted(format!(
                "interrupted before the first case of {} was done; nothing was kept",
                plan.command
            ))
            .into()
        }));
    }
    let report = study::StudyReport::new(
        Some(plan.settings.clone()),
        shard,
        Some(total),
        complete,
        records,
    );
    study::write_metrics(&mut out, &report)?;
    if complete {
        write_study_volumes(&mut out, source_volumes, &names, methods)?;
    }
    if let Some(line) = gpu.report() {
        println!("{line}");
    }
    println!("{}", plan.header);
    print!("{}", study::format_table(&report.records));
    let hint = format!(
        "{done} of {n} cases are done and their metrics are in {}; continue with the same \
         command and --resume",
        plan.output.out.display().to_string() + "/metrics.json"
    );
    if let Some(e) = stopped {
        return Err(e.context(hint));
    }
    if !complete {
        return Err(scoreinv::Error::Interrupted(format!("interrupted: {hint}")).into());
    }
    println!(
        "wrote {} (PNG per case, metrics.json, metrics.csv)",
        plan.output.out.display()
    );
    Ok(())
}

fn describe_shard(s: Option<study::ShardInfo>) -> String {
    match s {
        Some(s) => format!("part {}/{}", s.k, s.n),
        None => "the whole study".into(),
    }
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
    check_distinct_methods(&a.method)?;
    let opts = CaseOptions {
        size: a.size,
        window: super::parse::hu_window(&a.window)?,
        ..CaseOptions::default()
    };
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
    let mut inputs = ground_truth_inputs(&a.ground_truth);
    inputs.extend(a.score.model.iter().cloned());
    let plan = StudyPlan {
        command: "reconstruct ct".into(),
        settings: study_settings("reconstruct ct", &a, uses_model(&a.method, &a.score))?,
        inputs,
        output: &a.output,
        shard: a.shard,
        batch: a.batch,
        seed: a.seed as u64,
        header: format!(
            "sparse-view CT: {} of {} views, noise {}, {}×{} images, device {}",
            a.views,
            a.angles,
            a.noise,
            size[1],
            size[2],
            scoreinv::device::device_name(device)
        ),
    };
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let noise_ref = |y: &Tensor| noise(y);
    run_study_plan(
        plan,
        op.as_ref() as &dyn LinearOperator,
        &noise_ref,
        cases,
        &volumes,
        &refs,
        device,
    )
}

/// The model directory when a score method uses it.
fn uses_model<'a>(methods: &[String], s: &'a ScoreArgs) -> Option<&'a std::path::Path> {
    s.model
        .as_deref()
        .filter(|_| methods.iter().any(|m| is_score_method(m)))
}

/// Flags of the score-based methods (`--method score,score-sde,dps`).
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct ScoreArgs {
    /// Trained model directory (config.json + model.safetensors) for score, score-sde, dps.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number of reverse-SDE steps N (default: the model's SDE, usually 1000).
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub steps: Option<usize>,
    /// Langevin corrector signal-to-noise ratio (default: the task's published value).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub snr: Option<f64>,
    /// Projection weight λ in [0, 1] of the score method (default: the task's published value).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub lambda: Option<f64>,
    /// DPS step size ζ.
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub zeta: Option<f64>,
    /// Conjugate-gradient iterations of the final least-squares data-consistency step of the
    /// score method (default: the task's; 0 = the reference's single projection; few with noisy
    /// measurements, which exact consistency would fit).
    #[arg(long = "consistency-iters")]
    pub consistency_iters: Option<usize>,
    /// Posterior samples per case; the reconstruction is their mean.
    #[arg(long, default_value_t = 1, value_parser = super::parse::positive_i64)]
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
    check_distinct_methods(&a.method)?;
    let filter: FbpFilter = a.filter.parse()?;
    let baselines = task_baselines(TaskKind::Ct, &a.method)?;
    let inputs: Vec<PathBuf> = [Some(path.clone()), a.angles_file.clone()]
        .into_iter()
        .flatten()
        .collect();
    let m = tasks::load_ct_measurement(
        &path,
        a.views,
        a.angles,
        a.angles_file.as_deref(),
        filter,
        device,
    )?;
    let methods = baseline_methods(baselines, m.op.tv_config(), a.tv_lambda, a.tv_iters);
    finish_measurement(m, &methods, "reconstruct ct", &inputs, &a.output)
}

/// Flags shared by `reconstruct mri|inpaint|colorize`.
#[derive(Debug, clap::Args, serde::Serialize)]
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
    #[arg(long, conflicts_with = "measurement", value_parser = super::parse::image_size)]
    pub size: Option<i64>,
    /// HU window lo,hi for CT data used as ground truth (DICOM, .inv3).
    #[arg(
        long,
        default_value = "-1000,1500",
        value_delimiter = ',',
        num_args = 1..=2,
        allow_hyphen_values = true
    )]
    pub window: Vec<f32>,
    /// TV weight relative to ‖A‖² (default: the task preset; MRI: 5e-3, or 5e-2 when the mask's
    /// true acceleration is at least 7, e.g. fastMRI 8×).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub tv_lambda: Option<f64>,
    /// PDHG iterations of the TV baseline.
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub tv_iters: Option<usize>,
    /// Seed of masks, coil maps and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Process only part K of N (`K/N`) of the cases, as for `reconstruct ct`.
    #[arg(long)]
    #[serde(skip)]
    pub shard: Option<Shard>,
    /// Cases (slices) reconstructed together in one batched run, as for `reconstruct ct`.
    #[arg(long, default_value_t = 1, value_parser = super::parse::positive_usize)]
    pub batch: usize,
    #[command(flatten)]
    #[serde(skip)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub score: ScoreArgs,
}

#[derive(Debug, clap::Args, serde::Serialize)]
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
    #[arg(long, default_value_t = 1, value_parser = super::parse::positive_usize)]
    pub coils: usize,
    /// A 0/1 [H, W] sampling mask file (npy, png). Required with --measurement; with
    /// --ground-truth it replaces the generated mask.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Coil maps [coils, H, W] (complex npy) of a multi-coil --measurement.
    #[arg(long = "coil-maps", requires = "measurement")]
    pub coil_maps: Option<PathBuf>,
}

#[derive(Debug, clap::Args, serde::Serialize)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub study: StudyArgs,
    /// Mask (1 = observed): box[:S], random:P, half[:SIDE], strokes[:SEED] or a 0/1 FILE
    /// (default box). With --measurement: a FILE, required.
    #[arg(long)]
    pub mask: Option<String>,
}

#[derive(Debug, clap::Args, serde::Serialize)]
pub struct ColorizeArgs {
    #[command(flatten)]
    pub study: StudyArgs,
}

fn run_mri(a: MriArgs, device: Device) -> Result<()> {
    check_distinct_methods(&a.study.method)?;
    if let Some(path) = &a.study.measurement {
        let baselines = task_baselines(TaskKind::Mri, &a.study.method)?;
        let inputs: Vec<PathBuf> = [Some(path.clone()), a.mask.clone(), a.coil_maps.clone()]
            .into_iter()
            .flatten()
            .collect();
        let m =
            tasks::load_mri_measurement(path, a.mask.as_deref(), a.coil_maps.as_deref(), device)?;
        let methods = baseline_methods(
            baselines,
            m.op.tv_config(),
            a.study.tv_lambda,
            a.study.tv_iters,
        );
        return finish_measurement(m, &methods, "reconstruct mri", &inputs, &a.study.output);
    }
    let extra: Vec<PathBuf> = a.mask.iter().cloned().collect();
    let args_json = serde_json::to_value(&a)?;
    let cfg = TaskConfig::Mri(MriConfig {
        acceleration: a.accel,
        center_fraction: a.center_fraction,
        mask_kind: a.mask_kind.parse()?,
        lines: a.lines,
        coils: a.coils,
        mask_file: a.mask.clone(),
    });
    run_study(cfg, a.study, args_json, extra, device)
}

fn run_inpaint(a: InpaintArgs, device: Device) -> Result<()> {
    check_distinct_methods(&a.study.method)?;
    let mask_file: Vec<PathBuf> = a
        .mask
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    if let Some(path) = &a.study.measurement {
        let baselines = task_baselines(TaskKind::Inpaint, &a.study.method)?;
        let mut inputs = vec![path.clone()];
        inputs.extend(mask_file.iter().cloned());
        let mask = a.mask.as_deref().map(std::path::Path::new);
        let m = tasks::load_inpaint_measurement(path, mask, device)?;
        let methods = baseline_methods(
            baselines,
            m.op.tv_config(),
            a.study.tv_lambda,
            a.study.tv_iters,
        );
        return finish_measurement(m, &methods, "reconstruct inpaint", &inputs, &a.study.output);
    }
    let args_json = serde_json::to_value(&a)?;
    let cfg = TaskConfig::Inpaint(InpaintConfig {
        mask: a.mask.clone().unwrap_or_else(|| "box".into()),
    });
    run_study(cfg, a.study, args_json, mask_file, device)
}

fn run_colorize(a: ColorizeArgs, device: Device) -> Result<()> {
    check_distinct_methods(&a.study.method)?;
    if let Some(path) = &a.study.measurement {
        let inputs = vec![path.clone()];
        let baselines = task_baselines(TaskKind::Colorize, &a.study.method)?;
        let m = tasks::load_colorize_measurement(path, device)?;
        let methods = baseline_methods(
            baselines,
            m.op.tv_config(),
            a.study.tv_lambda,
            a.study.tv_iters,
        );
        return finish_measurement(
            m,
            &methods,
            "reconstruct colorize",
            &inputs,
            &a.study.output,
        );
    }
    let args_json = serde_json::to_value(&a)?;
    run_study(TaskConfig::Colorize, a.study, args_json, Vec::new(), device)
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

/// Simulation study for mri/inpaint/colorize: every case is loaded and checked, the operator
/// built, before the output folder is claimed. `args` are the task's flags as recorded in the
/// settings; `extra_inputs` the task's input files (mask files).
fn run_study(
    cfg: TaskConfig,
    s: StudyArgs,
    args: serde_json::Value,
    extra_inputs: Vec<PathBuf>,
    device: Device,
) -> Result<()> {
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
    let opts = CaseOptions {
        size: s.size,
        window: super::parse::hu_window(&s.window)?,
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
    let command = format!("reconstruct {kind}");
    let mut inputs = ground_truth_inputs(&s.ground_truth);
    inputs.extend(extra_inputs);
    inputs.extend(s.score.model.iter().cloned());
    let plan = StudyPlan {
        settings: study_settings(&command, &args, uses_model(&s.method, &s.score))?,
        command,
        inputs,
        output: &s.output,
        shard: s.shard,
        batch: s.batch,
        seed: s.seed,
        header: format!(
            "{}, noise {}, device {}",
            description,
            noise,
            scoreinv::device::device_name(device)
        ),
    };
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let noise_fn = move |y: &Tensor| noise.apply(y);
    run_study_plan(plan, op.as_ref(), &noise_fn, cases, &volumes, &refs, device)
}

/// Reconstructs a real measurement with every method and writes `<name>.png`,
/// `<name>_<method>.npy` and `reconstructions.json` into the output folder (claimed after the
/// reconstructions are done; no ground truth, so no metrics).
fn finish_measurement(
    m: Measurement,
    methods: &[Box<dyn Method>],
    command: &str,
    inputs: &[PathBuf],
    output: &OutputArgs,
) -> Result<()> {
    anyhow::ensure!(
        !output.resume,
        "--resume continues a simulation study; a measurement is reconstructed in one go \
         (use --overwrite to replace an earlier result)"
    );
    scoreinv::io::output::check_disjoint(&output.out, inputs).context("--out")?;
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let recons = tasks::reconstruct_measurement(&m, &refs)?;
    let mut out =
        OutputDir::claim(&output.out, command, inputs, output.reuse()).context("--out")?;
    tasks::write_reconstructions(&mut out, &m.name, &recons)?;
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
    let path = out.file("reconstructions.json")?;
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
        output.out.display(),
        m.name
    );
    Ok(())
}
