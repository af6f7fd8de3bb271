//! Running a reconstruction study of a [`Task`]: the cases of the ground-truth specs
//! ([`crate::data::cases`]) in batches, a shard of them (`shard` K/N: batch `j` belongs to part
//! `j mod N`), each case's measurement noise and posterior samples seeded by its index in the
//! whole study ([`case_seed`], so the merged shards equal the unsharded study), every method
//! (the task's baselines with their presets, then the score-based methods with the task's, the
//! model's and the user's settings in that order of precedence), each case's files written as
//! soon as its batch is done, and the report with the settings
//! ([`super::StudyReport`], `metrics.json/csv/txt`) and the volumes
//! ([`crate::inverse::volumes`]) at the end.
//!
//! The output folder is claimed first ([`crate::io::output`]): new, empty, or the same
//! command's (then `Reuse::Overwrite` or `Reuse::Resume` is needed). With `Resume`, the cases
//! an earlier interrupted run finished (same settings) are kept and skipped. The first
//! SIGINT/SIGTERM ([`crate::interrupt`]) stops after the batch in flight, and so does an error:
//! the metrics of what is done are written, marked incomplete, either way.
use super::{
    write_case, write_metrics, BaselineMethod, Case, Method, Record, ShardInfo, StudyReport,
};
use crate::data::cases::{pending_cases, CaseOptions, PendingCase, SourceVolume};
use crate::data::ct_slices::HuWindow;
use crate::inverse::baselines::{Baseline, TvConfig};
use crate::inverse::score_method::{is_score_method, score_methods, ScoreSettings};
use crate::inverse::tasks::{self, Task, TaskNoise, TaskOperator};
use crate::inverse::volumes;
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
    /// A real measurement instead (reconstructions only, no metrics).
    pub measurement: Option<PathBuf>,
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
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            ground_truth: Vec::new(),
            measurement: None,
            methods: Vec::new(),
            noise: None,
            size: None,
            window: HuWindow::default(),
            tv_lambda: None,
            tv_iters: None,
            seed: 0,
            batch: 1,
            score: ScoreSettings::default(),
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
    /// `total` cases in this part, `done` of them finished by an earlier run.
    Start { total: usize, done: usize },
    /// A batch of cases starts.
    Batch { names: Vec<String> },
    /// A batch of `cases` cases is done.
    Done { cases: usize },
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

/// The cases of every ground-truth spec with the volumes among them and their common
/// `[C, H, W]`, checked before anything is written, so bad input leaves no output behind
/// (slices of a volume are checked by a streamed pass here and read again batch by batch):
/// at least one case, one size for all, and no case name twice (its outputs would overwrite
/// each other's, e.g. `x.png` and `x.npy` in one folder, or one file named twice).
pub fn ground_truth_cases(
    specs: &[String],
    opts: &CaseOptions,
) -> Result<(Vec<PendingCase>, Vec<SourceVolume>, Vec<i64>)> {
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
    Ok((cases, volumes, size))
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
    mut tv: TvConfig,
    cfg: &StudyConfig,
) -> Vec<Box<dyn Method>> {
    if let Some(l) = cfg.tv_lambda {
        tv.lambda = l;
    }
    if let Some(n) = cfg.tv_iters {
        tv.n_iter = n;
    }
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
    let (cases, source_volumes, size) = ground_truth_cases(&cfg.ground_truth, &opts)?;
    task.check_image(&cases[0].name, &size)?;
    // A figure that cannot be drawn (a region outside the image) is refused before any work.
    if let [.., h, w] = size[..] {
        output.figure.check(h as usize, w as usize)?;
    }
    let op = task.operator(&size, cfg.seed as u64, device)?;
    let mut methods = baseline_methods(&baselines, op.tv_config(), cfg);
    let (score, notes) = score_methods(&cfg.methods, &cfg.score, op.as_ref(), task, device)?;
    methods.extend(score);
    let settings = study_settings(task, cfg)?;
    let header = format!(
        "{}, noise {}, device {}",
        op.describe(),
        noise,
        crate::device::device_name(device)
    );
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
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
        progress,
    )?;
    outcome.header = header;
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
            let cases: Vec<Case> = batch
                .into_iter()
                .map(|(_, c)| {
                    let c = c.load()?;
                    Ok(Case {
                        name: c.name,
                        truth: c.truth.to_device(device),
                    })
                })
                .collect::<Result<_>>()?;
            let outs = super::run_batch(op.op().as_ref(), noise, &cases, Some(&seeds), methods)?;
            for o in &outs {
                write_case(&mut out, o, &output.figure)?;
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
    pub notes: Vec<String>,
}

/// Reconstructs a real measurement (`cfg.measurement`, with the task's side files) with every
/// method and writes `<name>.png`, `<name>_<method>.npy` and `reconstructions.json` into the
/// output folder (claimed after the reconstructions are done; no ground truth, so no metrics).
pub fn reconstruct_measured(
    task: &dyn Task,
    cfg: &StudyConfig,
    output: &StudyOutput,
    device: Device,
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
    let inputs = study_inputs(task, cfg);
    check_disjoint(&output.out, &inputs).map_err(out_err)?;
    let baselines = task_baselines(task, &cfg.methods)?;
    let m = task.read_measurement(path, device)?;
    if let [.., h, w] = m.op.op().input_shape()[..] {
        output.figure.check(h as usize, w as usize)?;
    }
    let mut methods = baseline_methods(&baselines, m.op.tv_config(), cfg);
    let (score, notes) = score_methods(&cfg.methods, &cfg.score, m.op.as_ref(), task, device)?;
    methods.extend(score);
    let refs: Vec<&dyn Method> = methods.iter().map(|m| m.as_ref()).collect();
    let recons = tasks::reconstruct_measurement(&m, &refs)?;
    let mut out = OutputDir::claim(
        &output.out,
        &format!("reconstruct {}", task.name()),
        &inputs,
        output.reuse,
    )
    .map_err(out_err)?;
    tasks::write_reconstructions(&mut out, &m.name, &recons, &output.figure)?;
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
    let json = serde_json::to_string_pretty(&rows)
        .map_err(|e| Error::Invalid(format!("reconstructions to JSON: {e}")))?;
    let path = out.file("reconstructions.json")?;
    crate::io::atomic::write_bytes(&path, json.as_bytes())?;
    Ok(MeasuredOutcome {
        description: m.op.describe(),
        name: m.name,
        recons,
        notes,
    })
}
