//! Benchmark harness of `scoreinv bench`: timing, reference runs and result records.
//!
//! Every figure is measured next to a reference implementation timed in the same run on the
//! same machine (scikit-image, NumPy, PyTorch eager, ASTRA Toolbox via
//! `scripts/bench/reference.py`), and reported as a ratio:
//!
//! ```text
//! times        (unit "s", lower is better):        speedup = t_reference / t_scoreinv
//! throughputs  (unit ".../s", higher is better):   speedup = r_scoreinv / r_reference
//! ```
//!
//! so `speedup > 1` always means scoreinv is faster. A timed figure is the median of
//! `repeats` runs after `warmup` untimed runs, with a device synchronisation
//! (`tch::Cuda::synchronize`) before the clock is read on CUDA.

pub mod deepinv;
pub mod fanbeam;
pub mod network;
pub mod operators;
#[cfg(test)]
mod tests;

use scoreinv::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tch::Device;

/// Environment variable naming the Python interpreter that runs the reference scripts.
pub const PYTHON_ENV: &str = "SCOREINV_PYTHON";

/// Environment variable naming a Python interpreter with `astra-toolbox` (the fan-beam
/// reference, kept out of the project's `.venv`).
pub const ASTRA_PYTHON_ENV: &str = "SCOREINV_ASTRA_PYTHON";

/// Whether a larger value of a unit is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Times (`s`) and counts of work (`NFE`, score evaluations): smaller is faster.
    LowerIsBetter,
    /// Throughputs (`images/s`, `steps/s`): larger is faster.
    HigherIsBetter,
}

impl Direction {
    /// Direction of a unit string: anything ending in `/s` is a throughput, `s` a time, `NFE`
    /// a number of score-network evaluations, `GB` host memory.
    pub fn of_unit(unit: &str) -> Result<Self> {
        if unit.ends_with("/s") {
            Ok(Direction::HigherIsBetter)
        } else if unit == "s" || unit == "NFE" || unit == "GB" {
            Ok(Direction::LowerIsBetter)
        } else {
            Err(Error::Invalid(format!(
                "bench unit '{unit}': expected 's' (a time), 'NFE' (score evaluations), 'GB' (host memory) or '<thing>/s' (a throughput)"
            )))
        }
    }
}

/// `speedup > 1` means scoreinv is faster: `reference/ours` for times, `ours/reference` for
/// throughputs. `None` when either value is not a positive finite number.
pub fn speedup(direction: Direction, ours: f64, reference: f64) -> Option<f64> {
    let ok = |v: f64| v.is_finite() && v > 0.0;
    if !ok(ours) || !ok(reference) {
        return None;
    }
    Some(match direction {
        Direction::LowerIsBetter => reference / ours,
        Direction::HigherIsBetter => ours / reference,
    })
}

/// One row of the results, as written by `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured, e.g. `radon forward 256x256 180 angles batch 8`.
    pub name: String,
    /// Device of the scoreinv figure (`cpu`, `cuda:0`); the reference ran on the same one.
    pub device: String,
    /// `s` (time per call) or a throughput (`images/s`, `steps/s`).
    pub unit: String,
    /// scoreinv's figure.
    pub value: f64,
    /// What the reference is (`scikit-image radon (per image)`, `PyTorch eager` …).
    pub reference: String,
    /// The reference's figure in the same unit; `None` when it could not be measured.
    pub reference_value: Option<f64>,
    /// See [`speedup`]; `None` without a reference value.
    pub speedup: Option<f64>,
    /// `‖ours − reference‖₂ / ‖reference‖₂` of the two outputs on the bench input, for rows
    /// whose reference computes the same quantity (absent from the JSON otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel_l2_diff: Option<f64>,
    /// Reconstruction quality of both sides, for rows that time whole reconstructions on the
    /// same measurements (the deepinv group; absent from the JSON otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
}

/// Mean PSNR (dB, data range 1) and SSIM of scoreinv's and the reference's reconstructions of
/// the same `cases` measurements, with the network evaluations (NFE) each spent per case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub cases: usize,
    pub nfe: f64,
    pub reference_nfe: f64,
    pub psnr_db: f64,
    pub ssim: f64,
    pub reference_psnr_db: f64,
    pub reference_ssim: f64,
}

impl Measurement {
    /// Builds a row and computes its speedup from the unit's [`Direction`].
    pub fn new(
        name: impl Into<String>,
        device: Device,
        unit: &str,
        value: f64,
        reference: impl Into<String>,
        reference_value: Option<f64>,
    ) -> Result<Self> {
        let dir = Direction::of_unit(unit)?;
        Ok(Self {
            name: name.into(),
            device: device_label(device),
            unit: unit.to_string(),
            value,
            reference: reference.into(),
            reference_value,
            speedup: reference_value.and_then(|r| speedup(dir, value, r)),
            rel_l2_diff: None,
            quality: None,
        })
    }

    /// The row with the reconstruction quality of both sides.
    pub fn with_quality(mut self, q: Quality) -> Self {
        self.quality = Some(q);
        self
    }

    /// The row with the relative L2 difference of its outputs from the reference's.
    pub fn with_rel_l2_diff(mut self, d: Option<f64>) -> Self {
        self.rel_l2_diff = d;
        self
    }
}

/// `cpu` or `cuda:N`.
pub fn device_label(d: Device) -> String {
    match d {
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".into(),
        Device::Vulkan => "vulkan".into(),
        _ => "cpu".into(),
    }
}

/// Median of a non-empty sample (mean of the two middle values for even sizes).
pub fn median(samples: &[f64]) -> Result<f64> {
    if samples.is_empty() {
        return Err(Error::Invalid("median of an empty sample".into()));
    }
    if samples.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite("timing sample".into()));
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Ok(if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    })
}

/// Waits for queued work on `device` (CUDA); a no-op on the CPU.
pub fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Warm-up and repeat counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeats {
    /// Untimed runs first (allocator, kernel selection, caches).
    pub warmup: usize,
    /// Timed runs; the median is reported.
    pub repeats: usize,
}

/// A timed workload: the median and every sample, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub median_s: f64,
    pub samples_s: Vec<f64>,
}

/// Times `f` with `clock` (seconds since an arbitrary origin): `warmup` untimed calls, then
/// `repeats` timed calls, each followed by `sync()` before the clock is read. The clock is a
/// parameter so that the harness can be tested with a fake clock.
pub fn time_with(
    r: Repeats,
    clock: &mut dyn FnMut() -> f64,
    sync: &mut dyn FnMut(),
    f: &mut dyn FnMut() -> Result<()>,
) -> Result<Timing> {
    if r.repeats == 0 {
        return Err(Error::Invalid("bench: repeats must be at least 1".into()));
    }
    for _ in 0..r.warmup {
        f()?;
    }
    sync();
    let mut samples = Vec::with_capacity(r.repeats);
    for _ in 0..r.repeats {
        let t0 = clock();
        f()?;
        sync();
        samples.push(clock() - t0);
    }
    Ok(Timing {
        median_s: median(&samples)?,
        samples_s: samples,
    })
}

/// [`time_with`] using the wall clock and [`synchronize`] on `device`.
pub fn time(r: Repeats, device: Device, f: &mut dyn FnMut() -> Result<()>) -> Result<Timing> {
    let start = Instant::now();
    let mut clock = move || start.elapsed().as_secs_f64();
    time_with(r, &mut clock, &mut || synchronize(device), f)
}

/// The interpreter for the reference scripts: `$SCOREINV_PYTHON`, else `.venv/bin/python`
/// under `dir`; `None` if neither exists.
pub fn find_python(dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(PYTHON_ENV) {
        let p = PathBuf::from(p);
        return p.exists().then_some(p);
    }
    let p = dir.join(".venv/bin/python");
    p.exists().then_some(p)
}

/// The interpreter with `astra-toolbox`: `$SCOREINV_ASTRA_PYTHON`, else `.venv-astra/bin/python`
/// under `dir`; `None` if neither exists.
pub fn find_astra_python(dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(ASTRA_PYTHON_ENV) {
        let p = PathBuf::from(p);
        return p.exists().then_some(p);
    }
    let p = dir.join(".venv-astra/bin/python");
    p.exists().then_some(p)
}

/// Where the reference scripts live: `scripts/bench/` under `dir`, else under the source tree
/// this binary was built from.
pub fn scripts_dir(dir: &Path) -> PathBuf {
    let local = dir.join("scripts/bench");
    if local.join("reference.py").exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench")
}

/// Runs `python scripts/bench/reference.py <args>` and parses the JSON object on the last line
/// of its standard output. Errors name the command and quote its standard error.
pub fn run_reference(python: &Path, scripts: &Path, args: &[String]) -> Result<serde_json::Value> {
    run_script(python, &scripts.join("reference.py"), args)
}

/// Runs `python <script> <args>` and parses the JSON object on the last line of its standard
/// output. Errors name the command and quote its standard error.
pub fn run_script(python: &Path, script: &Path, args: &[String]) -> Result<serde_json::Value> {
    let script = script.to_path_buf();
    // The reference runs with this process's heap set-up, so the two are timed alike.
    let out = Command::new(python)
        .envs(scoreinv::runtime::host_allocator_env())
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| Error::io(python, e))?;
    let cmd = format!(
        "{} {} {}",
        python.display(),
        script.display(),
        args.join(" ")
    );
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        return Err(Error::Invalid(format!(
            "reference `{cmd}` failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "reference `{cmd}` printed nothing on standard output"
            ))
        })?;
    let v: serde_json::Value = serde_json::from_str(last).map_err(|e| {
        Error::Invalid(format!(
            "reference `{cmd}`: last line is not JSON ({e}): {last}"
        ))
    })?;
    if !v.is_object() {
        return Err(Error::Invalid(format!(
            "reference `{cmd}`: expected a JSON object, got {last}"
        )));
    }
    Ok(v)
}

/// A positive finite number `key` of a reference result.
pub fn field(v: &serde_json::Value, key: &str) -> Result<f64> {
    match v.get(key).and_then(|x| x.as_f64()) {
        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(Error::Invalid(format!(
            "reference result has no positive number '{key}': {v}"
        ))),
    }
}

/// The benchmark groups of `scoreinv bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suite {
    Operators,
    FanBeam,
    Network,
    Sampler,
    Train,
    /// deepinv's DPS / DiffPIR against scoreinv's few-step samplers (not in `all`: a study of
    /// tens of minutes on a CPU).
    Deepinv,
}

impl Suite {
    pub const ALL: [Suite; 5] = [
        Suite::Operators,
        Suite::FanBeam,
        Suite::Network,
        Suite::Sampler,
        Suite::Train,
    ];

    /// Parses `all` or a comma-separated list of suite names (duplicates collapse).
    pub fn parse_list(spec: &str) -> Result<Vec<Suite>> {
        let mut out = Vec::new();
        for part in spec.split(',').map(str::trim) {
            let s: &[Suite] = match part.to_ascii_lowercase().as_str() {
                "all" => &Suite::ALL,
                "operators" => &[Suite::Operators],
                "fanbeam" => &[Suite::FanBeam],
                "network" => &[Suite::Network],
                "sampler" => &[Suite::Sampler],
                "train" => &[Suite::Train],
                "deepinv" => &[Suite::Deepinv],
                other => {
                    return Err(Error::Invalid(format!(
                        "unknown bench '{other}'; expected all, operators, fanbeam, network, \
                         sampler, train, deepinv or a comma-separated list"
                    )))
                }
            };
            out.extend_from_slice(s);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Settings shared by every suite.
#[derive(Debug, Clone)]
pub struct BenchContext {
    pub device: Device,
    pub quick: bool,
    /// Interpreter for the references; `None`: "reference unavailable".
    pub python: Option<PathBuf>,
    /// Interpreter with `astra-toolbox` for the fan-beam reference; `None`: unavailable.
    pub astra_python: Option<PathBuf>,
    pub scripts: PathBuf,
    /// Passed to the references' `torch.set_num_threads` (libtorch's count here).
    pub threads: usize,
    /// Scratch directory for configs and weights shared with the references.
    pub work_dir: PathBuf,
}

impl BenchContext {
    /// The tests' context: quick sizes on the CPU, one thread, no reference interpreters.
    #[cfg(test)]
    pub fn quick_cpu() -> Self {
        Self {
            device: Device::Cpu,
            quick: true,
            python: None,
            astra_python: None,
            scripts: PathBuf::new(),
            threads: 1,
            work_dir: std::env::temp_dir(),
        }
    }

    pub fn repeats(&self) -> Repeats {
        if self.quick {
            Repeats {
                warmup: 1,
                repeats: 3,
            }
        } else {
            Repeats {
                warmup: 2,
                repeats: 5,
            }
        }
    }

    /// Runs a reference with the context's repeats and threads appended; `Ok(None)` (and a
    /// note on stderr) without an interpreter; errors of the script are reported, not fatal.
    pub fn reference(&self, args: &[String]) -> Option<serde_json::Value> {
        self.reference_with(self.python.as_deref()?, args)
    }

    /// [`BenchContext::reference`] run by `python` (e.g. [`BenchContext::astra_python`]).
    pub fn reference_with(&self, python: &Path, args: &[String]) -> Option<serde_json::Value> {
        let r = self.repeats();
        let mut all = args.to_vec();
        all.extend([
            "--warmup".into(),
            r.warmup.to_string(),
            "--repeats".into(),
            r.repeats.to_string(),
            "--threads".into(),
            self.threads.to_string(),
        ]);
        match run_reference(python, &self.scripts, &all) {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("warning: {e}");
                None
            }
        }
    }
}

/// Prints rows as an aligned table.
pub fn print_table(rows: &[Measurement]) {
    println!(
        "{:<52} {:>12} {:<9} {:>12}  {:>8}  reference",
        "benchmark", "scoreinv", "unit", "reference", "speedup"
    );
    for m in rows {
        let r = m
            .reference_value
            .map(|v| format!("{v:>12.4e}"))
            .unwrap_or_else(|| format!("{:>12}", "-"));
        let s = m
            .speedup
            .map(|v| format!("{v:>7.2}x"))
            .unwrap_or_else(|| format!("{:>8}", "-"));
        let mut refname = if m.reference_value.is_some() {
            m.reference.clone()
        } else {
            format!("{} (reference unavailable)", m.reference)
        };
        if let Some(d) = m.rel_l2_diff {
            refname.push_str(&format!(" [rel. L2 diff {d:.2e}]"));
        }
        if let Some(q) = &m.quality {
            refname.push_str(&format!(
                " [PSNR {:.2} vs {:.2} dB ({:+.2}), SSIM {:.4} vs {:.4}, NFE {:.0} vs {:.0}]",
                q.psnr_db,
                q.reference_psnr_db,
                q.psnr_db - q.reference_psnr_db,
                q.ssim,
                q.reference_ssim,
                q.nfe,
                q.reference_nfe
            ));
        }
        println!(
            "{:<52} {:>12.4e} {:<9} {}  {}  {}",
            m.name, m.value, m.unit, r, s, refname
        );
    }
}

/// Writes rows as a JSON list.
pub fn write_json(rows: &[Measurement], path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(rows)
        .map_err(|e| Error::Invalid(format!("bench results to JSON: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Runs the suites in order, returning every row.
pub fn run_suites(
    ctx: &BenchContext,
    suites: &[Suite],
    progress: &dyn Fn(&str),
) -> Result<Vec<Measurement>> {
    let mut rows = Vec::new();
    for s in suites {
        match s {
            Suite::Operators => rows.extend(operators::run(ctx, progress)?),
            Suite::FanBeam => rows.extend(fanbeam::run(ctx, progress)?),
            Suite::Network => rows.extend(network::run_network(ctx, progress)?),
            Suite::Sampler => rows.extend(network::run_sampler(ctx, progress)?),
            Suite::Train => rows.extend(network::run_train(ctx, progress)?),
            Suite::Deepinv => rows.extend(deepinv::run(ctx, progress)?),
        }
    }
    Ok(rows)
}
