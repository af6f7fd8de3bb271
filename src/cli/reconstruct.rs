//! `scoreinv reconstruct TASK`: a reconstruction study on simulated measurements
//! (`--ground-truth`), or reconstructions of a real measurement (`--measurement`, no metrics).
//! One subcommand per registered task ([`scoreinv::inverse::tasks::TASKS`]): the study's flags
//! here, the task's own flags from its settings struct; the study itself is
//! [`scoreinv::inverse::study::run_study`].
use super::parse::hu_window;
use anyhow::{Context, Result};
use scoreinv::inverse::score_method::ScoreSettings;
use scoreinv::inverse::study::{self, Progress, ShardInfo, StudyConfig, StudyOutput};
use scoreinv::inverse::tasks::{self, Task};
use scoreinv::io::output::Reuse;
use std::path::PathBuf;
use tch::Device;

/// `reconstruct TASK`: the task chosen, the study's flags and the task's (parsed by the task).
pub type Args = super::task_command::TaskCommand<StudyArgs>;

impl super::task_command::SharedFlags for StudyArgs {
    const COMMAND: &'static str = "reconstruct";
    /// `--method` from the task's baselines and the registry of conditional samplers;
    /// `--noise` with the task's default.
    fn task_help(task: &dyn Task, sub: clap::Command) -> clap::Command {
        let baselines: Vec<&str> = task.baselines().iter().map(|(n, _)| *n).collect();
        let samplers: Vec<String> = scoreinv::inverse::conditional::CONDITIONAL_SAMPLERS
            .iter()
            .map(|e| format!("{} ({})", e.name, e.about))
            .collect();
        let method = format!(
            "Methods, comma-separated: the task's baselines ({}) and, with --model, {}. \
             Default: the baselines",
            baselines.join(", "),
            samplers.join(", ")
        );
        super::task_command::noise_help(task, sub.mut_arg("method", |a| a.help(method)))
    }
}

/// The flags every task's study shares.
#[derive(Debug, clap::Args)]
pub struct StudyArgs {
    /// Ground truth (simulation study with metrics): a file (png, jpg, tif, npy, nii[.gz],
    /// dcm; `#z=K` picks a slice, `#z=A..B[:STEP]` several; `#t=K` a time point of a 4-D
    /// NIfTI, before any `#z=`: `fmri.nii.gz#t=2#z=10`), a folder (its pictures in name
    /// order, or a DICOM series), `invesalius:z=A..B`, `phantom:shepp-logan`,
    /// `phantom:ellipses:A..B`, `fashion-mnist:A..B`; `hu:FILE` reads a NIfTI/NPY CT in HU
    /// (DICOM CT is HU anyway; outputs of CT in HU are written in HU). A non-square image is
    /// centre-cropped to a square before --size resamples it. Repeat the flag or separate with
    /// commas.
    #[arg(
        long = "ground-truth",
        required_unless_present = "measurement",
        value_delimiter = ','
    )]
    pub ground_truth: Vec<String>,
    /// A real measurement instead of --ground-truth (CT: sinogram [N, n_views] npy with
    /// --angles-file; MRI: k-space npy with --mask, or a fastMRI FILE.h5[#z=K]; inpaint: image
    /// with --mask FILE; colorize: gray image; deblur: blurred image): every method, score
    /// methods included; no metrics unless --reference is given. A measurement written by
    /// `scoreinv simulate` (with its FILE.json record) is not rescaled and reconstructs exactly
    /// as --ground-truth does.
    #[arg(long, conflicts_with = "ground_truth")]
    pub measurement: Option<PathBuf>,
    /// With --measurement: a reference image (same forms as --ground-truth, one image, in the
    /// measurement's image units) to score the reconstructions against (metrics.json).
    #[arg(long, requires = "measurement")]
    pub reference: Option<String>,
    /// Methods, comma-separated: the task's baselines (ct: fbp, tv; mri, inpaint:
    /// zero-filled, tv; colorize: gray, tv) and, with --model, score (projection sampler of
    /// Song et al. 2022), score-sde (replacement sampler), dps. Default: the task's baselines.
    #[arg(long, value_delimiter = ',')]
    pub method: Vec<String>,
    /// Measurement noise of the simulation: none, gaussian:SIGMA (relative to the peak),
    /// poisson:I0[:MU] (CT). Default: gaussian:0.005 for CT, none otherwise.
    #[arg(long)]
    pub noise: Option<String>,
    /// Resample every case to SIZE×SIZE.
    #[arg(long, value_parser = super::parse::image_size)]
    pub size: Option<i64>,
    /// HU window lo,hi for CT data used as ground truth (DICOM, .inv3); also `lo hi`.
    #[arg(
        long,
        default_value = "-1000,1500",
        value_delimiter = ',',
        num_args = 1..=2,
    )]
    pub window: Vec<f32>,
    /// TV weight relative to ‖A‖² (default: the task preset; MRI: 5e-3, or 5e-2 when the mask's
    /// true acceleration is at least 7, e.g. fastMRI 8×).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub tv_lambda: Option<f64>,
    /// PDHG iterations of the TV baseline.
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub tv_iters: Option<usize>,
    /// Seed of masks, coil maps, noise and posterior samples.
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
    #[arg(long, default_value_t = 1, value_parser = super::parse::positive_usize)]
    pub batch: usize,
    /// CT: also write each method's reconstructions as a DICOM series in HU
    /// (OUT/dicom/METHOD/CASE.dcm): the input's geometry and patient/study tags (fresh ones for
    /// a phantom or NPY), a new SeriesInstanceUID per method, int16 with RescaleSlope =
    /// (hi − lo)/65534 of the --window (precision ±slope/2, 0.019 HU for the default).
    #[arg(long = "output-dicom")]
    pub output_dicom: bool,
    /// A region of interest X,Y,WIDTH,HEIGHT (pixels of the images, not of the figure): boxed on
    /// every panel of the figures and shown enlarged in a second row.
    #[arg(long, value_parser = parse_roi)]
    pub roi: Option<scoreinv::io::figure::Roi>,
    /// For CT in HU: the HU range the figures show, e.g. a brain window -160,240 (default: the
    /// data window --window). Only the PNGs change; the prior sees --window.
    #[arg(long = "display-window", value_delimiter = ',', num_args = 1..=2)]
    pub display_window: Vec<f64>,
    /// Gain k of the figures' |error| × k and posterior std × k panels.
    #[arg(long = "error-gain", default_value_t = 4.0, value_parser = super::parse::finite_f64)]
    pub error_gain: f64,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub score: ScoreArgs,
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

/// Flags of the score-based methods (`--method score,score-sde,dps,ddim,diffpir`).
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// Trained model directory (config.json + model.safetensors) for the score-based methods.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Number of reverse-SDE steps N (default: the model's SDE, usually 1000). Several,
    /// comma-separated (10,20,50,100): a quality-vs-cost sweep, each score method once per N on
    /// the same measurements, plotted against NFE and seconds (sweep.png, sweep.svg).
    #[arg(long, value_delimiter = ',', value_parser = super::parse::positive_usize)]
    pub steps: Option<Vec<usize>>,
    /// Langevin corrector signal-to-noise ratio (default: the task's published value).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub snr: Option<f64>,
    /// Projection weight λ in [0, 1] of the score method (default: the task's published value).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub lambda: Option<f64>,
    /// DPS step size ζ.
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub zeta: Option<f64>,
    /// DDIM's η in [0, 1] (0: deterministic, 1: ancestral noise; default 0).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub eta: Option<f64>,
    /// DiffPIR's λ, the prior's weight against the measurement (default 7, as deepinv).
    #[arg(long = "diffpir-lambda", value_parser = super::parse::finite_f64)]
    pub diffpir_lambda: Option<f64>,
    /// DiffPIR's ζ in [0, 1], the share of fresh noise per step (default 0.1, as deepinv).
    #[arg(long = "diffpir-zeta", value_parser = super::parse::finite_f64)]
    pub diffpir_zeta: Option<f64>,
    /// DiffPIR's measurement noise, relative to the peak of |y| like --noise gaussian:σ
    /// (default 0.01).
    #[arg(long = "sigma-y", value_parser = super::parse::finite_f64)]
    pub sigma_y: Option<f64>,
    /// Conjugate-gradient iterations of the data step of ddim (operators without a T/Λ
    /// decomposition) and diffpir (default 10).
    #[arg(long = "cg-iters")]
    pub cg_iters: Option<usize>,
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
    /// Warm start of the score methods (Come-Closer-Diffuse-Faster): a baseline of the task
    /// (fbp, tv, zero-filled, gray, masked, wiener) whose reconstruction is diffused to --t0 and
    /// the reverse SDE run from there, about t0·N steps; noise: from the prior. Default: the
    /// start (and t0, and N unless --steps is given) that the model's config.json records as
    /// validated for the task and method, else noise.
    #[arg(long, value_name = "BASELINE")]
    pub start: Option<String>,
    /// Time t0 in (eps, 1] to which the --start estimate is diffused (e.g. 0.3).
    #[arg(long, value_parser = super::parse::finite_f64)]
    pub t0: Option<f64>,
    /// PDHG iterations of a --start tv warm start (default: the TV baseline's, --tv-iters or
    /// the task's 3000; the model's config.json may record a validated number).
    #[arg(long, value_parser = super::parse::positive_usize)]
    pub start_iters: Option<usize>,
}

impl From<ScoreArgs> for ScoreSettings {
    fn from(a: ScoreArgs) -> Self {
        ScoreSettings {
            model: a.model,
            steps: match a.steps.as_deref() {
                Some([n]) => Some(*n),
                _ => None,
            },
            steps_sweep: a.steps.filter(|v| v.len() > 1),
            snr: a.snr,
            lambda: a.lambda,
            zeta: a.zeta,
            eta: a.eta,
            diffpir_lambda: a.diffpir_lambda,
            diffpir_zeta: a.diffpir_zeta,
            sigma_y: a.sigma_y,
            cg_iters: a.cg_iters,
            consistency_iters: a.consistency_iters,
            samples: a.samples,
            cuda_graph: a.cuda_graph,
            start: a.start,
            t0: a.t0,
            start_iters: a.start_iters,
        }
    }
}

/// `--roi X,Y,WIDTH,HEIGHT`.
fn parse_roi(v: &str) -> Result<scoreinv::io::figure::Roi> {
    let n: Vec<u32> = v
        .split(',')
        .map(|p| p.trim().parse::<u32>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--roi {v}: expected X,Y,WIDTH,HEIGHT in pixels ({e})"))?;
    anyhow::ensure!(
        n.len() == 4,
        "--roi {v}: expected four numbers X,Y,WIDTH,HEIGHT, got {}",
        n.len()
    );
    Ok(scoreinv::io::figure::Roi {
        x: n[0],
        y: n[1],
        width: n[2],
        height: n[3],
    })
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

impl StudyArgs {
    /// The study's settings and where it is written.
    fn split(self) -> Result<(StudyConfig, StudyOutput)> {
        let cfg = StudyConfig {
            ground_truth: self.ground_truth,
            measurement: self.measurement,
            reference: self.reference,
            methods: self.method,
            noise: self.noise,
            size: self.size,
            window: hu_window(&self.window)?,
            tv_lambda: self.tv_lambda,
            tv_iters: self.tv_iters,
            seed: self.seed,
            batch: self.batch,
            score: self.score.into(),
            output_dicom: self.output_dicom,
        };
        let output = StudyOutput {
            reuse: self.output.reuse(),
            out: self.output.out,
            shard: self.shard.map(|s| ShardInfo { k: s.k, n: s.n }),
            figure: scoreinv::io::figure::FigureConfig {
                display_window: match self.display_window[..] {
                    [] => None,
                    [lo, hi] => Some([lo, hi]),
                    _ => anyhow::bail!(
                        "--display-window takes two values LO,HI (e.g. --display-window=-160,240)"
                    ),
                },
                roi: self.roi,
                error_gain: self.error_gain as f32,
                ..Default::default()
            },
        };
        Ok((cfg, output))
    }
}

pub fn run(args: Args, device: Device) -> Result<()> {
    let entry = tasks::entry(&args.task)?;
    let task: Box<dyn Task> = (entry.from_arg_matches)(&args.matches)?;
    let (cfg, output) = args.flags.split()?;
    let mut view = StudyView::new(task.name());
    if cfg.measurement.is_some() {
        let m = study::reconstruct_measured(task.as_ref(), &cfg, &output, device, &mut |p| {
            view.update(p)
        });
        view.bar.finish_and_clear();
        return report_measured(m?, &output);
    }
    let outcome = study::run_study(task.as_ref(), &cfg, &output, device, &mut |p| {
        view.update(p)
    });
    view.bar.finish_and_clear();
    let outcome = outcome?;
    for n in &outcome.notes {
        eprintln!("note: {}", super::flagify(n));
    }
    if let Some(line) = &outcome.gpu {
        println!("{line}");
    }
    if let Some(line) = scoreinv::runtime::peak_host_memory_line() {
        println!("{line}");
    }
    for p in &outcome.volumes {
        println!("volume: {}", p.display());
    }
    println!("{}", outcome.header);
    print!("{}", study::format_table(&outcome.report.records));
    if let Some(e) = outcome.stopped {
        return Err(e.into());
    }
    println!(
        "wrote {} (PNG per case, metrics.json, metrics.csv)",
        output.out.display()
    );
    if cfg.output_dicom {
        println!(
            "DICOM series: {} (one folder per method)",
            output.out.join("dicom").display()
        );
    }
    Ok(())
}

/// What the terminal shows while a study runs: the header first, then one bar over the steps
/// of the method running, with the case and method in its message.
struct StudyView {
    bar: super::progress::Bar,
    cases: (usize, usize),
    batch: String,
    method: String,
}

impl StudyView {
    fn new(task: &str) -> Self {
        Self {
            bar: super::progress::Bar::new(format!("reconstruct {task}"), 0, "steps"),
            cases: (0, 0),
            batch: String::new(),
            method: String::new(),
        }
    }

    fn update(&mut self, p: Progress) {
        match p {
            Progress::Header(h) => eprintln!("{}", super::flagify(&h)),
            Progress::Warning(w) => self.bar.println(format!("warning: {}", super::flagify(&w))),
            Progress::Start { total, done } => {
                self.cases = (done, total);
                if done > 0 {
                    eprintln!("{done} of {total} cases already done");
                }
            }
            Progress::Batch { names } => {
                self.batch = match names.len() {
                    1 => names[0].clone(),
                    k => format!("{} (+{})", names[0], k - 1),
                };
                self.method.clear();
                let (done, total) = self.cases;
                self.bar
                    .stage(format!("case {}/{total} {}", done + 1, self.batch), 0, 0);
            }
            Progress::Step(s) => {
                let (done, total) = self.cases;
                if s.method != self.method {
                    self.method = s.method.clone();
                    self.bar.stage(
                        format!("case {}/{total} {} · {}", done + 1, self.batch, s.method),
                        0,
                        s.total as u64,
                    );
                }
                self.bar.set_position(s.done as u64);
            }
            Progress::Done { cases } => {
                self.cases.0 += cases;
                let (done, total) = self.cases;
                if self.bar.is_plain() {
                    eprintln!("{done}/{total} cases done");
                }
            }
        }
    }
}

/// `reconstruct TASK --measurement FILE`: what was written, and the scores with --reference.
fn report_measured(m: study::MeasuredOutcome, output: &StudyOutput) -> Result<()> {
    for n in &m.notes {
        eprintln!("note: {}", super::flagify(n));
    }
    if let Some(line) = scoreinv::runtime::peak_host_memory_line() {
        println!("{line}");
    }
    if m.records.is_empty() {
        println!("{} (measurement: no reference, no metrics)", m.description);
        println!("{:<12} {:>9}  file", "method", "seconds");
        for r in &m.recons {
            println!(
                "{:<12} {:>9.3}  {}_{}.npy",
                r.method, r.seconds, m.name, r.method
            );
        }
    } else {
        println!("{} (scored against --reference)", m.description);
        print!("{}", study::format_table(&m.records));
    }
    println!(
        "wrote {} ({}.png, reconstructions.json{})",
        output.out.display(),
        m.name,
        if m.records.is_empty() {
            ""
        } else {
            ", metrics.json, metrics.csv"
        }
    );
    Ok(())
}
