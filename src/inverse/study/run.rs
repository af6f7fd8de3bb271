//! Running a reconstruction study of a [`Task`]: the cases of the ground-truth specs
//! ([`crate::data::cases`]) in batches, a shard of them (`shard` K/N: batch `j` belongs to part
//! `j mod N`), each case's measurement noise and posterior samples seeded by its index in the
//! whole study ([`case_seed`], so the merged shards equal the unsharded study), every method
//! (the task's baselines with their presets, then the score-based methods with the task's, the
//! model's and the user's settings in that order of precedence), each case's files written as
//! soon as its batch is done, and the report with the settings
//! ([`super::StudyReport`], `metrics.json/csv/txt`) and the volumes
//! ([`crate::inverse::volumes`]) at the end. Cases of CT in Hounsfield units are written in HU
//! (the window recorded under `output_units` in the settings; metrics stay on the window
//! scale), and with `output_dicom` also as DICOM series (`dicom/METHOD/CASE.dcm`,
//! [`crate::io::dicom_write`]).
//!
//! The output folder is claimed first ([`crate::io::output`]): new, empty, or the same
//! command's (then `Reuse::Overwrite` or `Reuse::Resume` is needed). With `Resume`, the cases
//! an earlier interrupted run finished (same settings) are kept and skipped. The first
//! SIGINT/SIGTERM ([`crate::interrupt`]) stops after the batch in flight, and so does an error:
//! the metrics of what is done are written, marked incomplete, either way.
use super::{
    write_case, write_metrics, write_sweep_figure, BaselineMethod, Case, Method, Record, ShardInfo,
    StudyReport,
};
use crate::data::cases::{pending_cases, CaseOptions, PendingCase, SourceVolume};
use crate::data::ct_slices::HuWindow;
use crate::inverse::baselines::{Baseline, TvConfig};
use crate::inverse::score_method::{is_score_method, score_methods, ScoreSettings};
use crate::inverse::tasks::{self, Task, TaskNoise, TaskOperator};
use crate::inverse::volumes;
use crate::io::dicom_write::{uid_from_name, write_ct_slice, CtSlice, SeriesInfo};
use crate::io::output::{check_disjoint, OutputDir, Reuse};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use tch::{Device, Tensor};

/// The settings of a study besides its task (the flags of `scoreinv reconstruct TASK`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StudyConfig {
    /// Ground-truth specs ([`crate::data::cases`]), for a simulation study with metrics.
    pub ground_truth: Vec<String>,
    /// A real measurement instead (reconstructions only; metrics only against `reference`).
    pub measurement: Option<PathBuf>,
    /// With `measurement`: a reference image (a ground-truth spec naming one image, in the
    /// measurement's image units) to score the reconstructions against.
    pub reference: Option<String>,
    /// Methods: the task's baselines and `score`, `score-sde`, `dps`; empty = the task's
    /// default baselines.
    pub methods: Vec<String>,
    /// Measurement noise of the simulation (default: the task's).
    pub noise: Option<String>,
    /// Resample every case to `size × size`.
    pub size: Option<i64>,
    /// HU window of CT data used as ground truth.
    pub window: HuWindow,
    /// TV weight relative to `‖A‖²` (default: the task's preset).
    pub tv_lambda: Option<f64>,
    /// PDHG iterations of TV (default: the preset's).
    pub tv_iters: Option<usize>,
    /// Seed of masks, coil maps, noise and samples.
    pub seed: i64,
    /// Cases reconstructed together in one batched run of every method.
    pub batch: usize,
    pub score: ScoreSettings,
    /// CT: also write each method's reconstructions as a DICOM series
    /// (`dicom/<method>/<case>.dcm`, [`crate::io::dicom_write`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub output_dicom: bool,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            ground_truth: Vec::new(),
            measurement: None,
            reference: None,
            methods: Vec::new(),
            noise: None,
            size: None,
            window: HuWindow::default(),
            tv_lambda: None,
            tv_iters: None,
            seed: 0,
            batch: 1,
            score: ScoreSettings::default(),
            output_dicom: false,
        }
    }
}

/// Where a study is written and which part of it runs.
#[derive(Debug, Clone)]
pub struct StudyOutput {
    pub out: PathBuf,
    pub reuse: Reuse,
    pub shard: Option<ShardInfo>,
    /// How the per-case figures are drawn (panel size, error gain, region of interest, window).
    pub figure: crate::io::figure::FigureConfig,
}

/// What the caller is told while a study runs (for a progress bar).
#[derive(Debug, Clone)]
pub enum Progress {
    /// What is about to run (operator, noise, device, methods): shown before the work starts.
    Header(String),
    /// `total` cases in this part, `done` of them finished by an earlier run.
    Start { total: usize, done: usize },
    /// A batch of cases starts.
    Batch { names: Vec<String> },
    /// A batch of `cases` cases is done.
    Done { cases: usize },
    /// A method of the batch in flight is at this step.
    Step(super::StepProgress),
    /// Something the user should know before the results (e.g. a prior used outside its
    /// domain).
    Warning(String),
}

/// The result of [`run_study`].
pub struct StudyOutcome {
    /// The study's report (also written as metrics.json).
    pub report: StudyReport,
    /// One line on the operator, noise and device.
    pub header: String,
    /// Volumes written (`{stem}_{method}.nii.gz`).
    pub volumes: Vec<PathBuf>,
    /// Notes for the user (settings taken from the model, resumed cases).
    pub notes: Vec<String>,
    /// The peak GPU memory line, on CUDA.
    pub gpu: Option<String>,
    /// Why the study stopped early (an interrupt or an error after some cases were done): the
    /// report covers what is done.
    pub stopped: Option<Error>,
}

/// Seed of libtorch's generator for case `index`: a fixed function of (seed, index), so a
/// case's noise and samples do not depend on which other cases run (sharding).
pub fn case_seed(seed: u64, index: usize) -> i64 {
    (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index as u64) as i64 & i64::MAX
}

/// The batches of `batch` consecutive cases (the last may be shorter) that fall in `shard`
/// (batch `j` is in part `j mod N`), each case with its index in the whole study.
pub fn select_shard<T>(
    cases: Vec<T>,
    shard: Option<ShardInfo>,
    batch: usize,
) -> Result<Vec<Vec<(usize, T)>>> {
    if batch < 1 {
        return Err(Error::Config("`batch` must be at least 1".into()));
    }
    if let Some(s) = shard {
        if s.n < 1 || s.k >= s.n {
            return Err(Error::Config(format!(
                "`shard` {}/{}: need 0 <= K < N",
                s.k, s.n
            )));
        }
    }
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
        if out.is_empty() {
            return Err(Error::Config(format!(
                "`shard` {}/{}: no case falls in this part ({total} cases in batches of {batch})",
                s.k, s.n
            )));
        }
    }
    Ok(out)
}

/// Refuses a method named twice (`fbp,fbp`), which would run twice and double its rows.
pub fn check_distinct_methods(methods: &[String]) -> Result<()> {
    let norm = |m: &str| m.trim().to_ascii_lowercase().replace('_', "-");
    for (i, m) in methods.iter().enumerate() {
        if let Some(first) = methods[..i].iter().find(|o| norm(o) == norm(m)) {
            return Err(Error::Config(format!(
                "`method` {}: '{m}' is named twice ('{first}' already); name each method once",
                methods.join(",")
            )));
        }
    }
    Ok(())
}

/// The cases of every ground-truth spec with the volumes among them, their common
/// `[C, H, W]` and the notes on how they were prepared (a centre crop), checked before
/// anything is written, so bad input leaves no output behind (slices of a volume are checked
/// by a streamed pass here and read again batch by batch): at least one case, one size for
/// all, and no case name twice (its outputs would overwrite each other's, e.g. `x.png` and
/// `x.npy` in one folder, or one file named twice).
#[allow(clippy::type_complexity)]
pub fn ground_truth_cases(
    specs: &[String],
    opts: &CaseOptions,
) -> Result<(Vec<PendingCase>, Vec<SourceVolume>, Vec<i64>, Vec<String>)> {
    let mut cases = Vec::new();
    let mut volumes = Vec::new();
    let mut seen = HashMap::new();
    for spec in specs {
        let (c, v) = pending_cases(spec, opts)
            .map_err(|e| Error::Config(format!("`ground_truth` {spec}: {e}")))?;
        for case in &c {
            if let Some(first) = seen.insert(case.name.clone(), spec.clone()) {
                return Err(Error::Config(format!(
                    "`ground_truth`: two cases are named '{}' (from {first} and {spec}); their \
                     outputs would overwrite each other: rename one file",
                    case.name
                )));
            }
        }
        cases.extend(c);
        volumes.extend(v);
    }
    if cases.is_empty() {
        return Err(Error::Config("`ground_truth` named no image".into()));
    }
    let size = cases[0].shape.clone();
    for c in &cases {
        if c.shape != size {
            return Err(Error::Config(format!(
                "case '{}' is {:?} but '{}' is {:?}: resample them all with `size` N",
                c.name, c.shape, cases[0].name, size
            )));
        }
    }
    let mut notes: Vec<String> = Vec::new();
    for n in cases.iter().flat_map(|c| &c.notes) {
        if !notes.contains(n) {
            notes.push(n.clone());
        }
    }
    Ok((cases, volumes, size, notes))
}

/// The files and folders named by ground-truth specs.
pub fn ground_truth_inputs(specs: &[String]) -> Vec<PathBuf> {
    specs
        .iter()
        .flat_map(|s| crate::data::cases::spec_paths(s))
        .collect()
}

/// The task's baselines named in `methods` (its defaults when `methods` is empty), checked
/// before anything is loaded; score-based names are skipped here.
pub fn task_baselines(
    task: &dyn Task,
    methods: &[String],
) -> Result<Vec<(&'static str, Baseline)>> {
    let names: Vec<&String> = methods.iter().filter(|m| !is_score_method(m)).collect();
    if names.is_empty() {
        return Ok(if methods.is_empty() {
            task.default_methods()
        } else {
            Vec::new()
        });
    }
    names.iter().map(|n| tasks::parse_method(task, n)).collect()
}

/// `baselines` as methods with the TV settings `tv` (the operator's preset) overridden by the
/// study's `tv_lambda` / `tv_iters`.
pub fn baseline_methods(
    baselines: &[(&'static str, Baseline)],
    tv: TvConfig,
    cfg: &StudyConfig,
) -> Vec<Box<dyn Method>> {
    let tv = study_tv(tv, cfg);
    baselines
        .iter()
        .map(|&(label, baseline)| {
            Box::new(BaselineMethod {
                baseline,
                tv,
                label: Some(label),
            }) as Box<dyn Method>
        })
        .collect()
}

/// The TV settings `tv` (the operator's preset) with the study's `tv_lambda` / `tv_iters`.
pub fn study_tv(mut tv: TvConfig, cfg: &StudyConfig) -> TvConfig {
    if let Some(l) = cfg.tv_lambda {
        tv.lambda = l;
    }
    if let Some(n) = cfg.tv_iters {
        tv.n_iter = n;
    }
    tv
}

/// Each method's settings as it runs ([`Method::settings`]; e.g. the warm start and sampler
/// settings a model's validated record supplied), by method name; methods without any are left
/// out.
pub fn method_settings(methods: &[Box<dyn Method>]) -> serde_json::Map<String, serde_json::Value> {
    methods
        .iter()
        .filter_map(|m| m.settings().map(|s| (m.name(), s)))
        .collect()
}

/// Adds `methods`: [`method_settings`], so that `metrics.json` says what ran, and `resume`
/// refuses to mix runs whose effective settings differ.
pub fn add_method_settings(settings: &mut serde_json::Value, methods: &[Box<dyn Method>]) {
    let by_name = method_settings(methods);
    if !by_name.is_empty() {
        settings["methods"] = serde_json::Value::Object(by_name);
    }
}

/// The settings recorded in `metrics.json`: the task and its settings, the study's settings
/// and, when a model is used, the SHA-256 of its weights.
pub fn study_settings(task: &dyn Task, cfg: &StudyConfig) -> Result<serde_json::Value> {
    let mut v = serde_json::json!({
        "task": task.name(),
        "task_settings": task.settings(),
        "study": serde_json::to_value(cfg)
            .map_err(|e| Error::Invalid(format!("settings to JSON: {e}")))?,
    });
    if let Some(dir) = cfg
        .score
        .model
        .as_deref()
        .filter(|_| cfg.methods.iter().any(|m| is_score_method(m)))
    {
        v["model_sha256"] =
            serde_json::Value::String(crate::io::sha256_file(&dir.join("model.safetensors"))?);
    }
    Ok(v)
}

/// Every file and folder a study reads: ground truth or measurement, the task's files, the
/// model.
pub fn study_inputs(task: &dyn Task, cfg: &StudyConfig) -> Vec<PathBuf> {
    let mut inputs = ground_truth_inputs(&cfg.ground_truth);
    inputs.extend(cfg.measurement.iter().cloned());
    inputs.extend(task.input_files());
    inputs.extend(task.measurement_files_given().into_iter().map(|(_, p)| p));
    inputs.extend(cfg.score.model.iter().cloned());
    inputs
}

/// Runs a simulation study of `task` (see the module doc).
pub fn run_study(
    task: &dyn Task,
    cfg: &StudyConfig,
    output: &StudyOutput,
    device: Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<StudyOutcome> {
    check_distinct_methods(&cfg.methods)?;
    if cfg.reference.is_some() {
        return Err(Error::Config(
            "`reference` scores the reconstructions of a `measurement`; a simulation study \
             scores against its `ground_truth`"
                .into(),
        ));
    }
    if let Some((field, _)) = task.measurement_files_given().first() {
        return Err(Error::Config(format!(
            "`{field}` applies to a real measurement (`measurement`), not to a simulation study"
        )));
    }
    let inputs = study_inputs(task, cfg);
    check_disjoint(&output.out, &inputs).map_err(out_err)?;
    let baselines = task_baselines(task, &cfg.methods)?;
    let noise = TaskNoise::parse(cfg.noise.as_deref().unwrap_or(task.default_noise()), task)?;
    let opts = CaseOptions {
        size: cfg.size,
        window: cfg.window,
        ..CaseOptions::default()
    };
    if cfg.output_dicom && task.name() != "ct" {
        return Err(Error::Config(format!(
            "`output_dicom` writes CT images in Hounsfield units; task {} is not CT",
            task.name()
        )));
    }
    let (cases, source_volumes, size, case_notes) = ground_truth_cases(&cfg.ground_truth, &opts)?;
    task.check_image(&cases[0].name, &size)?;
    // A figure that cannot be drawn (a region outside the image) is refused before any work.
    if let [.., h, w] = size[..] {
        output.figure.check(h as usize, w as usize)?;
    }
    let op = task.operator(&size, cfg.seed as u64, device)?;
    let noise = noise.for_operator(op.as_ref());
    let mut methods = baseline_methods(&baselines, op.tv_config(), cfg);
    let (score, mut notes) = score_methods(
        &cfg.methods,
        &cfg.score,
        op.as_ref(),
        study_tv(op.tv_config(), cfg),
        task,
        device,
    )?;
    notes.extend(case_notes);
    methods.extend(score);
    let mut settings = study_settings(task, cfg)?;
    add_method_settings(&mut settings, &methods);
    // Cases in HU are written back in HU: the window is part of what the files mean.
    let hu_cases = cases.iter().filter(|c| c.units.is_some()).count();
    if hu_cases > 0 {
        settings["output_units"] = serde_json::json!({
            "values": "HU",
            "window_hu": [cfg.window.lo, cfg.window.hi],
            "cases_in_hu": hu_cases,
            "formula": "HU = lo + x * (hi - lo), std_HU = std * (hi - lo)",
            "metrics": "PSNR, SSIM and nRMSE are computed on the window scale x in [0, 1]",
        });
    }
    let dicom = cfg.output_dicom.then(|| DicomOutput {
        key: settings.to_string(),
        window: cfg.window,
        methods: methods.iter().map(|m| m.name()).collect(),
        fresh: std::cell::Cell::new(0),
    });
    if dicom.is_some() && hu_cases < cases.len() {
        notes.push(format!(
            "{} of {} cases are not CT in HU (not DICOM CT, .inv3 or `hu:`): their DICOM series \
             map the window scale [0, 1] to {}..{} HU",
            cases.len() - hu_cases,
            cases.len(),
            cfg.window.lo,
            cfg.window.hi
        ));
    }
    let header = format!(
        "{}, noise {}, device {}",
        op.describe(),
        noise,
        crate::device::device_name(device)
    );
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    progress(Progress::Header(format!(
        "{header}; methods {}",
        method_list(&refs)
    )));
    // As in a simulated measurement file ([`tasks::simulate`]): noise only where measured.
    let mask = op.measurement_mask(device)?;
    let noise_fn = move |y: &Tensor| -> Result<Tensor> {
        let y = noise.apply(y)?;
        Ok(match &mask {
            Some(m) => y.f_mul(m)?,
            None => y,
        })
    };
    let mut outcome = run_cases(
        &format!("reconstruct {}", task.name()),
        settings,
        &inputs,
        output,
        op.as_ref(),
        &noise_fn,
        cases,
        &source_volumes,
        &refs,
        cfg.seed as u64,
        cfg.batch,
        device,
        dicom.as_ref(),
        progress,
    )?;
    outcome.header = header;
    if let Some(n) = dicom.as_ref().map(|d| d.fresh.get()).filter(|&n| n > 0) {
        notes.push(format!(
            "{n} case(s) have no DICOM source: their DICOM series carry fresh patient and study \
             UIDs (PatientID {}), not a real patient's",
            dicom
                .as_ref()
                .map(|d| d.fresh_patient_id())
                .unwrap_or_default()
        ));
    }
    outcome.notes.splice(0..0, notes);
    Ok(outcome)
}

/// The batches of a study, written into the claimed output folder (see the module doc).
#[allow(clippy::too_many_arguments)]
fn run_cases(
    command: &str,
    settings: serde_json::Value,
    inputs: &[PathBuf],
    output: &StudyOutput,
    op: &dyn TaskOperator,
    noise: &dyn Fn(&Tensor) -> Result<Tensor>,
    cases: Vec<PendingCase>,
    source_volumes: &[SourceVolume],
    methods: &[&dyn Method],
    seed: u64,
    batch: usize,
    device: Device,
    dicom: Option<&DicomOutput>,
    progress: &mut dyn FnMut(Progress),
) -> Result<StudyOutcome> {
    let total = cases.len();
    let batches = select_shard(cases, output.shard, batch)?;
    let mut out = OutputDir::claim(&output.out, command, inputs, output.reuse).map_err(out_err)?;
    let method_names: Vec<String> = methods.iter().map(|m| m.name()).collect();
    let mut notes = Vec::new();
    // Resume: the records of the cases an earlier run of the same study finished.
    let mut previous: HashMap<String, Vec<Record>> = HashMap::new();
    if output.reuse == Reuse::Resume && out.owns("metrics.json") {
        let report = super::read_report(out.path())?;
        match &report.settings {
            Some(prev) => {
                if let Some((k, was, now)) = super::settings_difference(prev, &settings) {
                    return Err(Error::Config(format!(
                        "`resume`: the study in {} was run with {k} = {was}, this one has {now}: \
                         resume it with its own settings, or start anew with `overwrite`",
                        output.out.display()
                    )));
                }
            }
            None => {
                return Err(Error::Config(format!(
                    "`resume`: {} records no settings, so it cannot be continued safely; start \
                     anew with `overwrite`",
                    output.out.display()
                )))
            }
        }
        if report.shard != output.shard {
            return Err(Error::Config(format!(
                "`resume`: the study in {} is {}, this one asks for {}",
                output.out.display(),
                describe_shard(report.shard),
                describe_shard(output.shard)
            )));
        }
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
        notes.push(format!(
            "resuming {}: {done_before} of {n} cases done, {} to go",
            output.out.display(),
            n - done_before
        ));
    }
    progress(Progress::Start {
        total: n,
        done: done_before,
    });
    let mut records = Vec::new();
    let mut names = Vec::with_capacity(n);
    let mut gpu = crate::runtime::GpuMemoryPeak::new(device);
    let mut stopped: Option<Error> = None;
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
        progress(Progress::Batch {
            names: batch.iter().map(|(_, c)| c.name.clone()).collect(),
        });
        let res = (|| -> Result<Vec<super::CaseOutput>> {
            let seeds: Vec<i64> = batch.iter().map(|(i, _)| case_seed(seed, *i)).collect();
            let index: Vec<usize> = batch.iter().map(|(i, _)| *i).collect();
            let cases: Vec<Case> = batch
                .into_iter()
                .map(|(_, c)| {
                    let c = c.load()?;
                    Ok(Case {
                        truth: c.truth.to_device(device),
                        ..c
                    })
                })
                .collect::<Result<_>>()?;
            let outs = super::run_batch(
                op.op().as_ref(),
                noise,
                &cases,
                Some(&seeds),
                methods,
                &mut *progress,
            )?;
            for (o, i) in outs.iter().zip(index) {
                write_case(&mut out, o, &output.figure)?;
                if let Some(d) = dicom {
                    d.write_case(&mut out, o, i)?;
                }
            }
            Ok(outs)
        })();
        match res {
            Ok(outs) => {
                progress(Progress::Done { cases: outs.len() });
                for o in outs {
                    records.extend(o.records);
                    names.push(o.name);
                }
            }
            Err(e) => stopped = Some(e),
        }
        gpu.sample();
        interrupted = crate::interrupt::requested();
    }
    let done = names.len();
    let complete = done == n;
    if records.is_empty() && !complete {
        // Nothing finished: no metrics to write; a folder this run created is removed again.
        out.abandon();
        return Err(stopped.unwrap_or_else(|| {
            Error::Interrupted(format!(
                "interrupted before the first case of {command} was done; nothing was kept"
            ))
        }));
    }
    let report = StudyReport::new(Some(settings), output.shard, Some(total), complete, records);
    write_metrics(&mut out, &report)?;
    let title = format!(
        "{command}: quality against cost ({} cases)",
        report
            .records
            .iter()
            .map(|r| &r.case)
            .collect::<HashSet<_>>()
            .len()
    );
    write_sweep_figure(&mut out, &report, &title)?;
    let mut written = Vec::new();
    if complete {
        let in_study: HashSet<&str> = names.iter().map(|n| n.as_str()).collect();
        let manifest = volumes::study_manifest(
            source_volumes,
            &|n: &str| in_study.contains(n),
            &method_names,
        );
        manifest.write(&mut out)?;
        written = volumes::write_volumes(&mut out, &manifest)?;
    }
    let hint = format!(
        "{done} of {n} cases are done and their metrics are in {}; continue with the same \
         settings and `resume`",
        output.out.join("metrics.json").display()
    );
    let stopped = match stopped {
        Some(e) => Some(Error::Invalid(format!("{e} ({hint})"))),
        None if !complete => Some(Error::Interrupted(format!("interrupted: {hint}"))),
        None => None,
    };
    Ok(StudyOutcome {
        report,
        header: String::new(),
        volumes: written,
        notes,
        gpu: gpu.report(),
        stopped,
    })
}

/// `fbp, tv, score`.
fn method_list(methods: &[&dyn Method]) -> String {
    methods
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `output_dicom`: each method's reconstructions as DICOM series (one folder per method, one
/// file per case) with the source's geometry and patient/study attributes
/// ([`crate::io::dicom_write`]).
struct DicomOutput {
    /// Names the study (its settings): UIDs are derived from it, so a resumed study and the
    /// shards of one study (`merge`) continue the same series.
    key: String,
    /// Cases without HU values are mapped through it.
    window: HuWindow,
    methods: Vec<String>,
    /// Cases written without a DICOM source (fresh patient and study).
    fresh: std::cell::Cell<usize>,
}

impl DicomOutput {
    /// The PatientID of series without a DICOM source.
    fn fresh_patient_id(&self) -> String {
        format!(
            "SCOREINV-{}",
            &uid_from_name(&format!("patient|{}", self.key))[5..17]
        )
    }

    /// The files of case `index` of the study: `dicom/<method>/<case>.dcm`.
    fn write_case(&self, out: &mut OutputDir, o: &super::CaseOutput, index: usize) -> Result<()> {
        let window = o.info.units.unwrap_or(self.window);
        // One series per method and source series (a study may read several patients).
        let source_series = match &o.info.dicom_file {
            Some(f) => crate::io::dicom::series_uid(f)?,
            None => {
                self.fresh.set(self.fresh.get() + 1);
                "no DICOM source".to_string()
            }
        };
        for (m, r) in &o.recons {
            let shape = r.size();
            if shape.len() != 3 || shape[0] != 1 {
                return Err(Error::Invalid(format!(
                    "`output_dicom`: case '{}' ({m}) is {shape:?}, not one gray slice",
                    o.name
                )));
            }
            let series_key = format!("{}|{source_series}|{m}", self.key);
            let k = self.methods.iter().position(|n| n == m).unwrap_or(0) as i64;
            let series = SeriesInfo {
                series_uid: uid_from_name(&format!("series|{series_key}")),
                series_number: 9001 + k,
                description: format!("scoreinv {m} reconstruction"),
                fresh_patient_id: self.fresh_patient_id(),
                fresh_study_uid: uid_from_name(&format!("study|{}", self.key)),
                fresh_frame_uid: uid_from_name(&format!("frame|{}", self.key)),
            };
            let hu = super::output_values(r, Some(window), false).to_device(Device::Cpu);
            let hu = crate::io::tensor_to_array::<f32>(&hu)?;
            let hu = hu
                .into_dimensionality::<ndarray::Ix3>()
                .map_err(|e| Error::Invalid(format!("reconstruction of '{}': {e}", o.name)))?;
            let name = format!("dicom/{m}/{}.dcm", o.name);
            let path = out.file(&name)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            let slice = CtSlice {
                hu: hu.index_axis(ndarray::Axis(0), 0),
                range: (f64::from(window.lo), f64::from(window.hi)),
                source: o.info.dicom_file.as_deref(),
                affine: o.info.affine,
                spacing: o.info.spacing,
                instance: index as i64 + 1,
                sop_uid: uid_from_name(&format!("instance|{series_key}|{}", o.name)),
            };
            write_ct_slice(&path, &slice, &series)?;
        }
        Ok(())
    }
}

/// An error about the output folder, naming the setting.
fn out_err(e: Error) -> Error {
    Error::Invalid(format!("`out`: {e}"))
}

fn describe_shard(s: Option<ShardInfo>) -> String {
    match s {
        Some(s) => format!("part {}/{}", s.k, s.n),
        None => "the whole study".into(),
    }
}

/// The result of [`reconstruct_measured`].
pub struct MeasuredOutcome {
    pub description: String,
    pub name: String,
    pub recons: Vec<tasks::Reconstruction>,
    /// The scores against `reference`, when one was given.
    pub records: Vec<Record>,
    pub notes: Vec<String>,
}

/// Reconstructs a real measurement (`cfg.measurement`, with the task's side files) with every
/// method, seeded as a study seeds its first case ([`case_seed`] of `cfg.seed` and index 0), and
/// writes `<name>.png`, `<name>_<method>.npy` (`_std.npy` with several samples) and
/// `reconstructions.json` into the output folder (claimed after the reconstructions are done).
///
/// A measurement written by `scoreinv simulate` (with its [`tasks::SimulationRecord`]) is in
/// image units and is not rescaled, so its reconstructions equal those of
/// `reconstruct --ground-truth` of the same image with the same seed. Others of tasks that
/// normalise are divided by the peak of `|A⁺ y|` and the reconstructions multiplied back.
/// With `cfg.reference` the reconstructions are scored against it and `metrics.json`,
/// `metrics.csv` are written as by a study.
pub fn reconstruct_measured(
    task: &dyn Task,
    cfg: &StudyConfig,
    output: &StudyOutput,
    device: Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<MeasuredOutcome> {
    check_distinct_methods(&cfg.methods)?;
    let path = cfg
        .measurement
        .as_deref()
        .ok_or_else(|| Error::Config("`measurement` names no file".into()))?;
    if output.reuse == Reuse::Resume {
        return Err(Error::Config(
            "`resume` continues a simulation study; a measurement is reconstructed in one go \
             (use `overwrite` to replace an earlier result)"
                .into(),
        ));
    }
    if cfg.output_dicom {
        return Err(Error::Config(
            "`output_dicom` writes the reconstructions of CT ground truth in HU (DICOM, .inv3, \
             NIfTI or NPY in HU) with its geometry; a measurement has neither"
                .into(),
        ));
    }
    if output.shard.is_some() {
        return Err(Error::Config(
            "`shard` splits the cases of a simulation study; a measurement is one case".into(),
        ));
    }
    let mut inputs = study_inputs(task, cfg);
    let record = tasks::read_simulation_record(path)?;
    if record.is_some() {
        inputs.push(tasks::record_path(path));
    }
    if let Some(r) = &cfg.reference {
        inputs.extend(crate::data::cases::spec_paths(r));
    }
    check_disjoint(&output.out, &inputs).map_err(out_err)?;
    let baselines = task_baselines(task, &cfg.methods)?;
    let m = task.read_measurement(path, device)?;
    if let [.., h, w] = m.op.op().input_shape()[..] {
        output.figure.check(h as usize, w as usize)?;
    }
    let mut notes = Vec::new();
    if let Some(r) = &record {
        if r.task != task.name() {
            return Err(Error::Config(format!(
                "`measurement` {}: simulated for the {} task (see {}), not {}",
                path.display(),
                r.task,
                tasks::record_path(path).display(),
                task.name()
            )));
        }
        notes.push(format!(
            "{} was simulated by scoreinv from {} ({}, noise {}): in image units, not rescaled",
            path.display(),
            r.simulate.ground_truth,
            r.case,
            r.noise
        ));
    }
    let normalise = m.normalise && record.is_none();
    let scale = tasks::measurement_scale(&m, normalise)?;
    if normalise {
        notes.push(format!(
            "measurement scaled by 1/{scale:.6e} (the peak of the pseudo-inverse) for the \
             methods; reconstructions are in the measurement's units"
        ));
    }
    let reference = match &cfg.reference {
        Some(spec) => Some(load_reference(spec, cfg, &m)?),
        None => None,
    };
    let mut methods = baseline_methods(&baselines, m.op.tv_config(), cfg);
    let (score, score_notes) = score_methods(
        &cfg.methods,
        &cfg.score,
        m.op.as_ref(),
        study_tv(m.op.tv_config(), cfg),
        task,
        device,
    )?;
    notes.extend(score_notes);
    methods.extend(score);
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    progress(Progress::Header(format!(
        "{} ({}), device {}; methods {}",
        m.op.describe(),
        path.display(),
        crate::device::device_name(device),
        method_list(&refs)
    )));
    progress(Progress::Start { total: 1, done: 0 });
    progress(Progress::Batch {
        names: vec![m.name.clone()],
    });
    let seed = case_seed(cfg.seed as u64, 0);
    let recons = tasks::reconstruct_measurement(&m, scale, seed, &refs, &mut *progress)?;
    progress(Progress::Done { cases: 1 });
    for r in &recons {
        if let Some(w) = r.typicality.as_ref().and_then(|t| t.warning(&m.name)) {
            progress(Progress::Warning(w));
            break;
        }
    }
    let mut records = Vec::new();
    if let Some(truth) = &reference {
        // Scored in the methods' units ([0, 1] where the measurement was not rescaled).
        let range = if normalise {
            (truth / scale)
                .max()
                .double_value(&[])
                .max(f64::MIN_POSITIVE)
        } else {
            1.0
        };
        for r in &recons {
            let mut rec = super::score_record(
                &m.name,
                &r.method,
                &(truth / scale),
                &(&r.image / scale),
                range,
                r.seconds,
            )?;
            if let Some(t) = &r.typicality {
                rec.typicality = Some(t.ratio);
                rec.typicality_threshold = Some(t.threshold);
            }
            records.push(rec);
        }
    }
    let mut out = OutputDir::claim(
        &output.out,
        &format!("reconstruct {}", task.name()),
        &inputs,
        output.reuse,
    )
    .map_err(out_err)?;
    let units = record.as_ref().and_then(|r| r.units);
    tasks::write_reconstructions(&mut out, &m.name, &recons, &output.figure, units)?;
    let rows: Vec<serde_json::Value> = recons
        .iter()
        .map(|r| {
            serde_json::json!({
                "case": m.name,
                "method": r.method,
                "seconds": r.seconds,
                "file": format!("{}_{}.npy", m.name, r.method),
                "std_file": r.std.as_ref().map(|_| format!("{}_{}_std.npy", m.name, r.method)),
                "typicality": r.typicality,
            })
        })
        .collect();
    let mut settings = study_settings(task, cfg)?;
    add_method_settings(&mut settings, &methods);
    let doc = serde_json::json!({
        "settings": settings.clone(),
        "measurement": path.display().to_string(),
        "simulated": record,
        "scale": scale,
        "seed": seed,
        "reconstructions": rows,
    });
    let json = serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::Invalid(format!("reconstructions to JSON: {e}")))?;
    let file = out.file("reconstructions.json")?;
    crate::io::atomic::write_bytes(&file, json.as_bytes())?;
    if !records.is_empty() {
        let report = StudyReport::new(Some(settings), None, Some(1), true, records.clone());
        write_metrics(&mut out, &report)?;
    }
    Ok(MeasuredOutcome {
        description: m.op.describe(),
        name: m.name,
        recons,
        records,
        notes,
    })
}

/// The reference image of a measurement (`cfg.reference`: one image, read as a ground truth
/// with the study's `size` and `window`), checked against the operator's image shape.
fn load_reference(spec: &str, cfg: &StudyConfig, m: &tasks::Measurement) -> Result<Tensor> {
    let opts = CaseOptions {
        size: cfg.size,
        window: cfg.window,
        ..CaseOptions::default()
    };
    let cases = crate::data::cases::load_cases(spec, &opts)
        .map_err(|e| Error::Config(format!("`reference` {spec}: {e}")))?;
    if cases.len() != 1 {
        return Err(Error::Config(format!(
            "`reference` {spec}: names {} images; a measurement has one reference (pick one, \
             e.g. #z=K)",
            cases.len()
        )));
    }
    let truth = cases[0].truth.shallow_clone();
    let want = m.op.op().input_shape();
    if truth.size() != want {
        return Err(Error::Shape {
            what: format!("`reference` {spec}"),
            expected: format!("{want:?} (the measurement's images)"),
            actual: format!("{:?}", truth.size()),
        });
    }
    Ok(truth)
}
