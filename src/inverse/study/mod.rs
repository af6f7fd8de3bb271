//! A reconstruction study: for every case, simulate the measurement `y = A x + n`, run every
//! method, score it against the ground truth (PSNR, SSIM, nRMSE; [`crate::metrics`]) and write
//! what a person looks at: a labelled figure per case ([`crate::io::figure`]), `metrics.json`,
//! `metrics.csv` with mean ± std per method, and the same table as text.
//!
//! Methods are anything implementing [`Method`]: the classical baselines
//! ([`super::baselines::Baseline`]) and, with a trained prior, the score-based samplers.

mod run;
pub use run::*;

use super::baselines::{Baseline, TvConfig};
use crate::io;
use crate::io::output::OutputDir;
use crate::metrics::{self, SsimOptions};
use crate::{Error, Result};
use scoreinv_operators::LinearOperator;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;
use tch::Tensor;

pub use crate::data::cases::{Case, CaseInfo};
use crate::data::ct_slices::HuWindow;
use crate::inverse::typicality::Typicality;

/// A reconstruction method: measurement batch `[B] ++ A.output_shape()` → images
/// `[B] ++ A.input_shape()`.
pub trait Method {
    /// The name used on the command line and in the tables.
    fn name(&self) -> String;
    fn reconstruct(&self, op: &dyn LinearOperator, y: &Tensor) -> Result<Tensor>;
    /// The reconstruction and, for methods that draw several posterior samples, the pixelwise
    /// standard deviation of the samples (an uncertainty map, same shape).
    fn reconstruct_with_std(
        &self,
        op: &dyn LinearOperator,
        y: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        Ok((self.reconstruct(op, y)?, None))
    }
    /// [`Method::reconstruct_with_std`], calling `progress(done, total)` as its steps are done
    /// (the score methods: once per sampler step).
    fn reconstruct_with_progress(
        &self,
        op: &dyn LinearOperator,
        y: &Tensor,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Tensor, Option<Tensor>)> {
        let _ = progress;
        self.reconstruct_with_std(op, y)
    }
    /// How typical the images `x` `[B, C, H, W]` in `[0, 1]` (the reconstructions of the
    /// baseline named `image`) are under the method's prior; `None` for methods without a
    /// prior, or a prior without a reference ([`crate::inverse::typicality`]).
    fn typicality(&self, x: &Tensor, image: &str) -> Result<Option<Vec<Typicality>>> {
        let _ = (x, image);
        Ok(None)
    }
    /// Score-network evaluations per posterior sample of its last reconstruction (the score
    /// methods); `None` for methods without a network.
    fn nfe(&self) -> Option<usize> {
        None
    }
    /// The settings that determine this method's result as it runs — after the model's
    /// validated record and the user's overrides — for `metrics.json` (`settings.methods`);
    /// `None` for a method that the study's own settings describe fully.
    fn settings(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A classical baseline with its TV settings.
pub struct BaselineMethod {
    pub baseline: Baseline,
    pub tv: TvConfig,
    /// The name in the tables when the task gives the baseline its own (`wiener` for the
    /// pseudo-inverse of a blur); `None`: the baseline's name.
    pub label: Option<&'static str>,
}

impl Method for BaselineMethod {
    fn name(&self) -> String {
        self.label.unwrap_or(self.baseline.name()).to_string()
    }
    /// TV stops when the duality gap of the whole batch is small, so a batch is solved one
    /// measurement at a time: a case's result does not depend on the batch it is in.
    fn reconstruct(&self, op: &dyn LinearOperator, y: &Tensor) -> Result<Tensor> {
        let b = y.size().first().copied().unwrap_or(1);
        if b > 1 && matches!(self.baseline, Baseline::Tv) {
            let rows = (0..b)
                .map(|i| self.baseline.reconstruct(op, &y.narrow(0, i, 1), &self.tv))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(&rows, 0));
        }
        self.baseline.reconstruct(op, y, &self.tv)
    }
    /// TV: its weight and iterations as run (the task's preset, the study's or the warm
    /// start's `start_iters`).
    fn settings(&self) -> Option<serde_json::Value> {
        matches!(self.baseline, Baseline::Tv).then(|| {
            serde_json::json!({
                "tv_lambda": self.tv.lambda,
                "lambda_scaling": self.tv.lambda_scaling,
                "tv_iters": self.tv.n_iter,
                "tol": self.tv.tol,
            })
        })
    }
}

/// One row of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub case: String,
    pub method: String,
    /// `+∞` for an exact reconstruction (written as `null` in JSON, which has no infinity).
    #[serde(with = "psnr_json")]
    pub psnr_db: f64,
    pub ssim: f64,
    /// None (`null`) when the truth is all zeros, e.g. an empty slice of a volume.
    pub nrmse: Option<f64>,
    pub seconds: f64,
    /// Score methods: the typicality ratio of the case under the prior
    /// ([`crate::inverse::typicality`]; above `typicality_threshold`: outside the prior's
    /// domain), when the prior records a reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typicality: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typicality_threshold: Option<f64>,
    /// Score methods: network evaluations per posterior sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfe: Option<usize>,
}

/// PSNR in JSON: a number, or `null` for `+∞` (zero error).
mod psnr_json {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// Everything produced for one case.
pub struct CaseOutput {
    pub name: String,
    pub truth: Tensor,
    /// `(method, reconstruction [C, H, W])` in the order the methods were given.
    pub recons: Vec<(String, Tensor)>,
    /// `(method, pixelwise posterior std [C, H, W])` for the methods that give one.
    pub stds: Vec<(String, Tensor)>,
    pub records: Vec<Record>,
    /// The case's provenance: its HU window (outputs are written in HU) and geometry.
    pub info: CaseInfo,
}

/// Values as written to files: in Hounsfield units for CT in HU (`HU = lo + x·(hi − lo)`, a
/// standard deviation `σ·(hi − lo)`), else as computed ([0, 1]).
pub fn output_values(x: &Tensor, units: Option<HuWindow>, is_std: bool) -> Tensor {
    match units {
        Some(w) if is_std => x * f64::from(w.hi - w.lo),
        Some(w) => x * f64::from(w.hi - w.lo) + f64::from(w.lo),
        None => x.shallow_clone(),
    }
}

/// Simulates the measurement of `case` with `noise` (applied to `A x`) and runs each method.
/// Reconstructions are clamped to [0, 1] before scoring (the data range of the truth).
pub fn run_case(
    op: &dyn LinearOperator,
    noise: &dyn Fn(&Tensor) -> Result<Tensor>,
    case: &Case,
    methods: &[&dyn Method],
) -> Result<CaseOutput> {
    let mut out = run_batch(
        op,
        noise,
        std::slice::from_ref(case),
        None,
        methods,
        &mut |_| {},
    )?;
    Ok(out.remove(0))
}

/// [`run_case`] for several cases at once: each case's measurement is simulated on its own
/// (after `tch::manual_seed(seeds[i])` when seeds are given, so its noise depends only on its
/// seed), then every method reconstructs the whole batch `[B, C, H, W]` in one call
/// ([`run_methods`], seeded by the first case's seed) — one batched reverse-SDE run for the
/// score methods instead of `B`. A method's `seconds` are the batch's wall time divided by `B`.
///
/// Baselines give the same result for a case in any batch; the samples of the score methods
/// depend on the batch they were drawn in (libtorch's generator runs over the whole batch), so
/// a study is reproducible for a given batch size.
pub fn run_batch(
    op: &dyn LinearOperator,
    noise: &dyn Fn(&Tensor) -> Result<Tensor>,
    cases: &[Case],
    seeds: Option<&[i64]>,
    methods: &[&dyn Method],
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<CaseOutput>> {
    if cases.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(s) = seeds {
        if s.len() != cases.len() {
            return Err(Error::Invalid(format!(
                "{} seeds for a batch of {} cases",
                s.len(),
                cases.len()
            )));
        }
    }
    let mut ys = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let x = case.truth.unsqueeze(0);
        op.check_input(&x).map_err(|e| {
            Error::Invalid(format!(
                "case '{}' does not fit the operator: {e} (use `size` to resample)",
                case.name
            ))
        })?;
        if let Some(s) = seeds {
            tch::manual_seed(s[i]);
        }
        ys.push(noise(&op.forward(&x)?)?);
    }
    let y = if ys.len() == 1 {
        ys.pop().expect("one measurement")
    } else {
        Tensor::cat(&ys, 0)
    };
    let runs = run_methods(op, &y, seeds.map(|s| s[0]), methods, &mut *progress)?;
    let mut outs: Vec<CaseOutput> = cases
        .iter()
        .map(|c| CaseOutput {
            name: c.name.clone(),
            truth: c.truth.shallow_clone(),
            recons: Vec::new(),
            stds: Vec::new(),
            records: Vec::new(),
            info: c.info.clone(),
        })
        .collect();
    let typical = runs.iter().find_map(|r| r.typicality.clone());
    for run in runs {
        for (i, out) in outs.iter_mut().enumerate() {
            let ri = run.recon.get(i as i64);
            if let Some(sd) = &run.std {
                out.stds.push((run.name.clone(), sd.get(i as i64)));
            }
            let mut rec = score_record(&out.name, &run.name, &out.truth, &ri, 1.0, run.seconds)?;
            rec.nfe = run.nfe;
            if let Some(t) = run.typicality.as_ref().and_then(|t| t.get(i)) {
                rec.typicality = Some(t.ratio);
                rec.typicality_threshold = Some(t.threshold);
            }
            out.records.push(rec);
            out.recons.push((run.name.clone(), ri));
        }
    }
    if let Some(t) = typical {
        for (c, out) in t.iter().zip(&outs) {
            if let Some(w) = c.warning(&out.name) {
                progress(Progress::Warning(w));
            }
        }
    }
    Ok(outs)
}

/// The scores of a reconstruction `r` of case `case` against `truth` with `data_range`; a
/// reconstruction with NaN or infinite values (a diverged sampler) is an error naming the case
/// and the method.
pub fn score_record(
    case: &str,
    method: &str,
    truth: &Tensor,
    r: &Tensor,
    data_range: f64,
    seconds: f64,
) -> Result<Record> {
    if !bool::try_from(r.isfinite().all()).unwrap_or(false) {
        return Err(Error::NonFinite(format!(
            "case {case}: the {method} reconstruction (the sampler diverged; for a patch prior, \
             images larger than it was trained on are a known cause)"
        )));
    }
    let s = metrics::scores_tensor(truth, r, data_range, &SsimOptions::default())?;
    Ok(Record {
        case: case.to_string(),
        method: method.to_string(),
        psnr_db: s.psnr,
        ssim: s.ssim,
        nrmse: s.nrmse,
        seconds,
        typicality: None,
        typicality_threshold: None,
        nfe: None,
    })
}

/// Where a method is in its run: `done` of `total` steps (sampler steps of a score method).
#[derive(Debug, Clone)]
pub struct StepProgress {
    pub method: String,
    pub done: usize,
    pub total: usize,
}

/// One method's reconstruction of a measurement batch.
pub struct MethodRun {
    pub name: String,
    /// `[B] ++ A.input_shape()`, clamped to `[0, 1]` (the range of the images).
    pub recon: Tensor,
    /// The pixelwise posterior standard deviation, for methods that draw several samples.
    pub std: Option<Tensor>,
    /// Wall time per measurement of the batch.
    pub seconds: f64,
    /// Score methods: how typical each case is under the prior (when it has a reference).
    pub typicality: Option<Vec<Typicality>>,
    /// Score methods: network evaluations per posterior sample ([`Method::nfe`]).
    pub nfe: Option<usize>,
}

/// The seed of the methods' random draws for a batch whose first case has seed `case_seed`:
/// a stream of its own (splitmix64 of the case seed), so that posterior samples depend only on
/// the case (not on the simulated noise drawn before them, or on whether the measurement was
/// simulated in the study or read from a file), and every method starts from it.
pub fn method_seed(case_seed: i64) -> i64 {
    let mut z = (case_seed as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) & i64::MAX as u64) as i64
}

/// Runs each method on the measurement batch `y` (after `tch::manual_seed(method_seed(seed))`
/// when a seed is given), clamps the reconstructions to `[0, 1]`, and times them (a value is
/// read so that asynchronous GPU work is included). This is what a study runs after simulating
/// its measurements, and what a measurement read from a file goes through.
pub fn run_methods(
    op: &dyn LinearOperator,
    y: &Tensor,
    seed: Option<i64>,
    methods: &[&dyn Method],
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<MethodRun>> {
    let b = y.size().first().copied().unwrap_or(1).max(1);
    let mut runs: Vec<MethodRun> = Vec::with_capacity(methods.len());
    // The typicality of the cases under the prior, measured once, before the first score
    // method runs (`None` until then), on TV's reconstruction if it ran, else on A⁺ y.
    let mut typical: Option<Option<Vec<Typicality>>> = None;
    for m in methods {
        let name = m.name();
        let is_score = crate::inverse::score_method::is_score_method(&name);
        if is_score && typical.is_none() {
            let (label, image) = match runs.iter().find(|r| r.name == "tv") {
                Some(r) => ("tv", r.recon.shallow_clone()),
                None => ("pseudo-inverse", op.pseudo_inverse(y)?.clamp(0.0, 1.0)),
            };
            typical = Some(m.typicality(&image, label)?);
        }
        if let Some(s) = seed {
            tch::manual_seed(method_seed(s));
        }
        let t0 = Instant::now();
        let mut report = |done: usize, total: usize| {
            progress(Progress::Step(StepProgress {
                method: name.clone(),
                done,
                total,
            }))
        };
        let (r, std) = m.reconstruct_with_progress(op, y, &mut report)?;
        let r = r.clamp(0.0, 1.0);
        let _ = r.sum(tch::Kind::Double).double_value(&[]);
        let seconds = t0.elapsed().as_secs_f64() / b as f64;
        if r.size().first() != Some(&b) {
            return Err(Error::Shape {
                what: format!("reconstruction of method '{name}'"),
                expected: format!("a batch of {b}"),
                actual: format!("{:?}", r.size()),
            });
        }
        let typicality = match &typical {
            Some(Some(t)) if is_score => Some(t.clone()),
            _ => None,
        };
        runs.push(MethodRun {
            name,
            recon: r,
            std,
            seconds,
            typicality,
            nfe: m.nfe(),
        });
    }
    Ok(runs)
}

/// Mean and sample standard deviation of one method's scores over the cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub method: String,
    pub n: usize,
    pub psnr_mean: f64,
    pub psnr_std: f64,
    pub ssim_mean: f64,
    pub ssim_std: f64,
    pub seconds_mean: f64,
    /// Network evaluations per posterior sample (score methods; the first case's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfe: Option<usize>,
}

/// Mean and sample standard deviation; identical values (every PSNR `+∞` for exact
/// reconstructions included) have standard deviation 0, not `∞ − ∞ = NaN`.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.iter().all(|&x| x == v[0]) {
        0.0
    } else if v.len() > 1 {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

/// Per-method summaries, methods in order of first appearance.
pub fn summarize(records: &[Record]) -> Vec<Summary> {
    let mut methods: Vec<String> = Vec::new();
    for r in records {
        if !methods.contains(&r.method) {
            methods.push(r.method.clone());
        }
    }
    methods
        .into_iter()
        .map(|m| {
            let rs: Vec<&Record> = records.iter().filter(|r| r.method == m).collect();
            let (pm, ps) = mean_std(&rs.iter().map(|r| r.psnr_db).collect::<Vec<_>>());
            let (sm, ss) = mean_std(&rs.iter().map(|r| r.ssim).collect::<Vec<_>>());
            let (tm, _) = mean_std(&rs.iter().map(|r| r.seconds).collect::<Vec<_>>());
            Summary {
                method: m,
                n: rs.len(),
                psnr_mean: pm,
                psnr_std: ps,
                ssim_mean: sm,
                ssim_std: ss,
                seconds_mean: tm,
                nfe: rs.iter().find_map(|r| r.nfe),
            }
        })
        .collect()
}

/// The per-case and per-method table as aligned text.
pub fn format_table(records: &[Record]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<28} {:<12} {:>9} {:>7} {:>9}",
        "case", "method", "PSNR dB", "SSIM", "seconds"
    );
    for r in records {
        let _ = writeln!(
            s,
            "{:<28} {:<12} {:>9.2} {:>7.4} {:>9.3}",
            r.case, r.method, r.psnr_db, r.ssim, r.seconds
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<12} {:>4} {:>18} {:>18} {:>9}",
        "method", "n", "PSNR dB (mean±std)", "SSIM (mean±std)", "seconds"
    );
    for m in summarize(records) {
        let _ = writeln!(
            s,
            "{:<12} {:>4} {:>11.2} ± {:<5.2} {:>9.4} ± {:<6.4} {:>9.3}",
            m.method, m.n, m.psnr_mean, m.psnr_std, m.ssim_mean, m.ssim_std, m.seconds_mean
        );
    }
    s
}

/// A `[C, H, W]` tensor (any device) as an array.
fn to_array3(t: &Tensor, what: &str) -> Result<ndarray::Array3<f32>> {
    io::tensor_to_array3(
        &t.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float),
        what,
    )
}

/// The files [`write_case`] writes for `out`, relative to the study folder.
pub fn case_files(out: &CaseOutput) -> Vec<String> {
    let mut names = vec![
        format!("{}.png", out.name),
        format!("{}_truth.npy", out.name),
    ];
    for (m, _) in &out.recons {
        names.push(format!("{}_{}.npy", out.name, m));
    }
    for (m, _) in &out.stds {
        if out.recons.iter().any(|(n, _)| n == m) {
            names.push(format!("{}_{}_std.png", out.name, m));
            names.push(format!("{}_{}_std.npy", out.name, m));
        }
    }
    names
}

/// Writes `<name>.png` (labelled panels, [`io::figure::comparison`]: truth | each method with
/// its PSNR/SSIM | |error| × k of the last method, the display window stated, upscaled to
/// `fig.min_panel_px`, the region of interest `fig.roi` enlarged below),
/// `<name>_<method>.npy` for every reconstruction and `<name>_truth.npy` for the ground truth as
/// the methods were scored against it (resampled, windowed; in HU for CT in HU, see
/// [`output_values`]) and, for methods with posterior samples,
/// `<name>_<method>_std.png` (|error| × k beside posterior std × k on one viridis colour bar, so
/// a calibrated std map looks like the error map; [`io::figure::uncertainty`]) and
/// `<name>_<method>_std.npy`, into the study folder `dir` (listed in its manifest before they
/// are written).
pub fn write_case(
    dir: &mut OutputDir,
    out: &CaseOutput,
    fig: &io::figure::FigureConfig,
) -> Result<()> {
    dir.register(&case_files(out))?;
    let dir = dir.path();
    // A case in HU is shown with its HU window stated (unless the figure settings name one),
    // through `display_window` when one is given: `x ↦ (lo + x (hi − lo) − d_lo) / (d_hi − d_lo)`.
    let with_units;
    let mut shown = (1.0f64, 0.0f64);
    let fig = match (&fig.window, out.info.units) {
        (None, Some(w)) => {
            let (lo, hi) = (f64::from(w.lo), f64::from(w.hi));
            let (dlo, dhi) = fig.display_window.map_or((lo, hi), |[a, b]| (a, b));
            shown = ((hi - lo) / (dhi - dlo), (lo - dlo) / (dhi - dlo));
            with_units = io::figure::FigureConfig {
                window: Some(io::figure::DisplayWindow {
                    lo: dlo,
                    hi: dhi,
                    units: "HU".into(),
                }),
                ..fig.clone()
            };
            &with_units
        }
        _ => fig,
    };
    let (a, b) = shown;
    let display = |t: &Tensor, what: &str| -> Result<ndarray::Array3<f32>> {
        let x = to_array3(t, what)?;
        Ok(if (a, b) == (1.0, 0.0) {
            x
        } else {
            x.mapv(|v| (a as f32 * v + b as f32).clamp(0.0, 1.0))
        })
    };
    let truth = display(&out.truth, "ground truth")?;
    let mut panels = Vec::with_capacity(out.recons.len());
    for (m, r) in &out.recons {
        let caption = out
            .records
            .iter()
            .find(|rec| &rec.method == m)
            .map(|rec| io::figure::metrics_caption(rec.psnr_db, rec.ssim));
        panels.push((m.clone(), display(r, m)?, caption));
    }
    let figure = io::figure::comparison(Some(&truth), &panels, fig)?;
    io::figure::save_png(&dir.join(format!("{}.png", out.name)), &figure)?;
    let t = output_values(&out.truth, out.info.units, false);
    let t = io::tensor_to_array::<f32>(&t.to_device(tch::Device::Cpu))?;
    io::npy::write_npy(&dir.join(format!("{}_truth.npy", out.name)), &t)?;
    for (m, r) in &out.recons {
        let r = output_values(r, out.info.units, false);
        let a = io::tensor_to_array::<f32>(&r.to_device(tch::Device::Cpu))?;
        io::npy::write_npy(&dir.join(format!("{}_{}.npy", out.name, m)), &a)?;
    }
    for (m, sd) in &out.stds {
        let Some((_, r)) = out.recons.iter().find(|(n, _)| n == m) else {
            continue;
        };
        let err = display(r, m)? - &truth;
        let sd_shown = to_array3(sd, m)?.mapv(|v| v * a as f32);
        let figure = io::figure::uncertainty(m, Some(&err), &sd_shown, fig)?;
        io::figure::save_png(&dir.join(format!("{}_{}_std.png", out.name, m)), &figure)?;
        let sd = output_values(sd, out.info.units, true);
        let a = io::tensor_to_array::<f32>(&sd.to_device(tch::Device::Cpu))?;
        io::npy::write_npy(&dir.join(format!("{}_{}_std.npy", out.name, m)), &a)?;
    }
    Ok(())
}

/// Runs every case with [`run_case`], writes each into `dir` ([`write_case`], figures with the
/// default [`io::figure::FigureConfig`]) as soon as it is done, and returns all their records.
pub fn run_and_write_cases(
    op: &dyn LinearOperator,
    noise: &dyn Fn(&Tensor) -> Result<Tensor>,
    cases: impl IntoIterator<Item = Case>,
    methods: &[&dyn Method],
    dir: &mut OutputDir,
) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for case in cases {
        let out = run_case(op, noise, &case, methods)?;
        write_case(dir, &out, &io::figure::FigureConfig::default())?;
        records.extend(out.records);
    }
    Ok(records)
}

/// Version of the `metrics.json` format.
pub const REPORT_FORMAT: &str = "scoreinv-study/1";

/// Part `k` of `n` of a study (`--shard K/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub k: usize,
    pub n: usize,
}

/// The settings of one part of a merged study whose parts differ (`merge --allow-mixed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartSettings {
    /// The part's folder as given to `merge`.
    pub folder: String,
    pub shard: Option<ShardInfo>,
    pub settings: Option<serde_json::Value>,
}

/// `metrics.json`: the records of a study with everything needed to tell whether two studies
/// (or shards) belong together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyReport {
    /// Always [`REPORT_FORMAT`].
    pub format: String,
    /// The scoreinv version that wrote it.
    pub scoreinv_version: String,
    /// Everything that determines the results (task, geometry, mask, noise, seed, batch,
    /// methods, model and its hash, sampler settings); `None` for a report without them (one
    /// written before settings were recorded, or a merge of parts whose settings differ: then
    /// [`Self::parts`] holds each part's).
    pub settings: Option<serde_json::Value>,
    /// The parts of a merged study whose settings differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartSettings>,
    /// Which part of a sharded study this is (`None`: the whole study, or a merge).
    pub shard: Option<ShardInfo>,
    /// Cases in the whole study (all shards), when known.
    pub cases_total: Option<usize>,
    /// False when the run was interrupted (or a merge lacks parts): the records cover only
    /// what was done.
    pub complete: bool,
    pub records: Vec<Record>,
}

impl StudyReport {
    /// A report of this scoreinv version.
    pub fn new(
        settings: Option<serde_json::Value>,
        shard: Option<ShardInfo>,
        cases_total: Option<usize>,
        complete: bool,
        records: Vec<Record>,
    ) -> Self {
        StudyReport {
            format: REPORT_FORMAT.into(),
            scoreinv_version: env!("CARGO_PKG_VERSION").into(),
            settings,
            parts: Vec::new(),
            shard,
            cases_total,
            complete,
            records,
        }
    }
}

/// Reads the `metrics.json` of a study folder: a [`StudyReport`], or the bare list of records
/// written before settings were recorded (then `settings` is `None` and the study counts as
/// complete).
pub fn read_report(dir: &Path) -> Result<StudyReport> {
    let path = dir.join("metrics.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::format(&path, format!("not a metrics table: {e}")))?;
    let report = if value.is_array() {
        let records: Vec<Record> = serde_json::from_value(value)
            .map_err(|e| Error::format(&path, format!("not a metrics table: {e}")))?;
        StudyReport::new(None, None, None, true, records)
    } else {
        let r: StudyReport = serde_json::from_value(value)
            .map_err(|e| Error::format(&path, format!("not a metrics table: {e}")))?;
        if r.format != REPORT_FORMAT {
            return Err(Error::format(
                &path,
                format!(
                    "metrics format '{}' is not the supported '{REPORT_FORMAT}'",
                    r.format
                ),
            ));
        }
        r
    };
    Ok(report)
}

/// The records of a study folder's `metrics.json` ([`read_report`]).
pub fn read_metrics(dir: &Path) -> Result<Vec<Record>> {
    Ok(read_report(dir)?.records)
}

/// Where two settings objects first differ: `(key path, left value, right value)`.
pub fn settings_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    fn walk(a: &Value, b: &Value, path: &str) -> Option<(String, String, String)> {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let (va, vb) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    if let Some(d) = walk(va, vb, &p) {
                        return Some(d);
                    }
                }
                None
            }
            _ if a == b => None,
            _ => Some((path.to_string(), a.to_string(), b.to_string())),
        }
    }
    walk(a, b, "")
}

/// What [`merge_reports`] lets through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergePolicy {
    /// Merge an incomplete set of shards, or interrupted parts (`--allow-partial`).
    pub allow_partial: bool,
    /// Merge parts whose settings differ or are unknown (`--allow-mixed`), e.g. one study per
    /// model; each part's settings are kept in the result's [`StudyReport::parts`].
    pub allow_mixed: bool,
}

/// Joins the reports of several study folders (in order) into one:
/// * parts whose settings differ, or that record none, are refused unless
///   [`MergePolicy::allow_mixed`], naming the first differing setting;
/// * the shards of one study (`--shard K/N`) must all be there, each once and complete, unless
///   [`MergePolicy::allow_partial`]; the missing parts are named;
/// * a case name that appears twice with the same method is an error (parts must not overlap).
pub fn merge_reports(parts: &[(String, StudyReport)], policy: MergePolicy) -> Result<StudyReport> {
    if parts.is_empty() {
        return Err(Error::Invalid("no studies to merge".into()));
    }
    let (first_name, first) = &parts[0];
    let mut mixed = false;
    for (name, p) in parts {
        let diff =
            match (&first.settings, &p.settings) {
                (Some(a), Some(b)) => settings_difference(a, b).map(|(k, va, vb)| {
                    format!("setting '{k}' is {va} in {first_name} but {vb} in {name}")
                }),
                _ => {
                    Some(format!(
                "{} records no settings (written by an older scoreinv, or a mixed merge), so \
                 nothing shows that the parts belong together",
                if p.settings.is_none() { name } else { first_name }
            ))
                }
            };
        if let Some(d) = diff {
            if !policy.allow_mixed {
                return Err(Error::Invalid(format!(
                    "the studies differ: {d}; merge only parts of one study, or pass \
                     `allow_mixed` to join different studies into one table"
                )));
            }
            mixed = true;
        }
    }
    let mut complete = true;
    let sharded: Vec<(&String, ShardInfo)> = parts
        .iter()
        .filter_map(|(n, p)| p.shard.map(|s| (n, s)))
        .collect();
    if !sharded.is_empty() && !mixed {
        let n = sharded[0].1.n;
        if let Some((name, s)) = sharded.iter().find(|(_, s)| s.n != n) {
            return Err(Error::Invalid(format!(
                "{name} is part {}/{} but {} is part {}/{n}: parts of different splits",
                s.k, s.n, sharded[0].0, sharded[0].1.k
            )));
        }
        if let Some((name, _)) = parts.iter().find(|(_, p)| p.shard.is_none()) {
            return Err(Error::Invalid(format!(
                "{name} is a whole study but {} is part {}/{n} of one: merge the parts of one \
                 study",
                sharded[0].0, sharded[0].1.k
            )));
        }
        let mut seen = vec![None; n];
        for (name, s) in &sharded {
            if let Some(prev) = seen[s.k].replace(*name) {
                return Err(Error::Invalid(format!(
                    "part {}/{n} is given twice: {prev} and {name}",
                    s.k
                )));
            }
        }
        let missing: Vec<String> = (0..n)
            .filter(|&k| seen[k].is_none())
            .map(|k| format!("{k}/{n}"))
            .collect();
        if !missing.is_empty() {
            if !policy.allow_partial {
                return Err(Error::Invalid(format!(
                    "the set of parts is incomplete: part{} {} missing; run {} and merge again, \
                     or pass `allow_partial` to merge what is there",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    if missing.len() == 1 { "it" } else { "them" }
                )));
            }
            complete = false;
        }
    }
    for (name, p) in parts {
        if !p.complete {
            if !policy.allow_partial {
                return Err(Error::Invalid(format!(
                    "{name} is incomplete (interrupted after {} of its cases): finish it with \
                     `resume`, or pass `allow_partial` to merge what is there",
                    p.records
                        .iter()
                        .map(|r| &r.case)
                        .collect::<std::collections::HashSet<_>>()
                        .len()
                )));
            }
            complete = false;
        }
    }
    let mut records: Vec<Record> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, p) in parts {
        for r in &p.records {
            if !seen.insert((r.case.clone(), r.method.clone())) {
                return Err(Error::Invalid(format!(
                    "case '{}' with method '{}' appears twice (again in {name})",
                    r.case, r.method
                )));
            }
            records.push(r.clone());
        }
    }
    if records.is_empty() {
        return Err(Error::Invalid("no records to merge".into()));
    }
    let cases_total = if mixed || sharded.is_empty() {
        parts
            .iter()
            .map(|(_, p)| p.cases_total)
            .sum::<Option<usize>>()
    } else {
        first.cases_total
    };
    let mut report = StudyReport::new(
        if mixed { None } else { first.settings.clone() },
        None,
        cases_total,
        complete,
        records,
    );
    if mixed {
        report.parts = parts
            .iter()
            .map(|(n, p)| PartSettings {
                folder: n.clone(),
                shard: p.shard,
                settings: p.settings.clone(),
            })
            .collect();
    }
    Ok(report)
}

/// The files [`write_metrics`] writes.
pub const METRICS_FILES: [&str; 3] = ["metrics.json", "metrics.csv", "metrics.txt"];

/// Writes `metrics.json` (the [`StudyReport`]), `metrics.csv` (records, then `mean`/`std` rows
/// per method) and `metrics.txt` (the printed table) atomically into `dir`.
pub fn write_metrics(dir: &mut OutputDir, report: &StudyReport) -> Result<()> {
    dir.register(&METRICS_FILES)?;
    let dir = dir.path();
    let records = &report.records;
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| Error::Invalid(format!("metrics to JSON: {e}")))?;
    let path = dir.join("metrics.json");
    io::atomic::write_bytes(&path, json.as_bytes())?;
    let mut csv = String::from("case,method,psnr_db,ssim,nrmse,seconds,nfe\n");
    let nfe = |n: Option<usize>| n.map(|v| v.to_string()).unwrap_or_default();
    for r in records {
        let _ = writeln!(
            csv,
            "{},{},{:.4},{:.5},{},{:.4},{}",
            r.case,
            r.method,
            r.psnr_db,
            r.ssim,
            r.nrmse.map(|v| format!("{v:.5}")).unwrap_or_default(),
            r.seconds,
            nfe(r.nfe)
        );
    }
    for m in summarize(records) {
        let _ = writeln!(
            csv,
            "mean,{},{:.4},{:.5},,{:.4},{}",
            m.method,
            m.psnr_mean,
            m.ssim_mean,
            m.seconds_mean,
            nfe(m.nfe)
        );
        let _ = writeln!(
            csv,
            "std,{},{:.4},{:.5},,,",
            m.method, m.psnr_std, m.ssim_std
        );
    }
    let path = dir.join("metrics.csv");
    io::atomic::write_bytes(&path, csv.as_bytes())?;
    let table = format_table(records);
    let path = dir.join("metrics.txt");
    io::atomic::write_bytes(&path, table.as_bytes())
}

/// The files [`write_sweep_figure`] writes.
pub const SWEEP_FILES: [&str; 2] = ["sweep.png", "sweep.svg"];

/// For a steps sweep (`--steps 10,20,50`): `sweep.png` and `sweep.svg`, PSNR and SSIM against
/// NFE and seconds ([`io::curves`]), written atomically into `dir`; nothing otherwise.
pub fn write_sweep_figure(dir: &mut OutputDir, report: &StudyReport, title: &str) -> Result<()> {
    let summaries = summarize(&report.records);
    if !io::curves::is_sweep(&summaries) {
        return Ok(());
    }
    let paths = dir.register(&SWEEP_FILES)?;
    let (png, svg) = io::curves::sweep_figure(title, &summaries)?;
    io::atomic::write_bytes(&paths[0], &png)?;
    io::atomic::write_bytes(&paths[1], svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(method: &str, psnr_db: f64) -> Record {
        Record {
            case: "c".into(),
            method: method.into(),
            psnr_db,
            ssim: 1.0,
            nrmse: Some(0.0),
            seconds: 0.0,
            typicality: None,
            typicality_threshold: None,
            nfe: None,
        }
    }

    /// A diverged reconstruction is an error naming its case and method; a finite one of the
    /// same case scores (the control).
    #[test]
    fn non_finite_reconstructions_name_case_and_method() {
        let truth = Tensor::ones([1, 8, 8], (tch::Kind::Float, tch::Device::Cpu)) * 0.5;
        let bad = truth.copy();
        let _ = bad.get(0).get(3).get(4).fill_(f64::NAN);
        let e = score_record("z70", "score", &truth, &bad, 1.0, 0.0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("case z70") && e.contains("score reconstruction"),
            "{e}"
        );
        assert!(e.contains("NaN or infinite"), "{e}");
        let ok = score_record("z70", "score", &truth, &(&truth * 0.9), 1.0, 0.0).unwrap();
        assert!(ok.psnr_db.is_finite());
    }

    /// Exact reconstructions: a method whose every PSNR is +∞ summarises as `inf ± 0`, and a
    /// method with ordinary values keeps its sample standard deviation.
    #[test]
    fn all_infinite_psnr_has_zero_spread() {
        let r = [
            rec("exact", f64::INFINITY),
            rec("exact", f64::INFINITY),
            rec("fbp", 20.0),
            rec("fbp", 22.0),
        ];
        let s = summarize(&r);
        assert_eq!((s[0].psnr_mean, s[0].psnr_std), (f64::INFINITY, 0.0));
        assert_eq!(s[0].ssim_std, 0.0);
        assert_eq!(s[1].psnr_mean, 21.0);
        assert!((s[1].psnr_std - 2f64.sqrt()).abs() < 1e-12);
        assert!(!format_table(&r).contains("NaN"));
    }
}
