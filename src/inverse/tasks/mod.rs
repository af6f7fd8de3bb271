//! Tasks: a forward-operator family plus everything an inverse problem needs around it. A task
//! is its settings struct (serde, with the published defaults, and its command-line flags), and
//! implements [`Task`]: it checks ground-truth images, builds the operator `A` for an image size
//! ([`TaskOperator`]: describes it, writes measurements with their side files), reads real
//! measurements back, and names its baselines and their presets. The registry [`TASKS`]
//! generates `scoreinv simulate <task>` and `scoreinv reconstruct <task>`; adding a task is one
//! file here and one line in the `tasks!` registry below.
//!
//! | task | `A` | measurement file (`simulate --out Y.npy`) | side files |
//! |---|---|---|---|
//! | `ct` | sparse-view parallel-beam Radon, `n_views` of `n_angles` over `[0°, 180°)` (Song et al. 2022), or fan beam from a geometry file; limited angle with `angles_range` | sinogram `[N_det, n_views]` f32 | `Y_angles.npy` kept angles (degrees, f64), `Y_mask.npy` `[n_angles]` 0/1; fan beam: `Y_geometry.toml` the acquired views' geometry |
//! | `mri` | `M F` (single coil) or SENSE `M F S` (Pruessmann et al. 1999), fastMRI masks | k-space `[H, W]` / `[coils, H, W]` complex64, zero where not sampled | `Y_mask.npy` `[H, W]` 0/1, `Y_maps.npy` coil maps `[coils, H, W]` complex64 |
//! | `inpaint` | `Λ ⊙ x` (score_sde's inpainting) | masked image `[C, H, W]` f32 | `Y_mask.npy` `[H, W]` 0/1 |
//! | `colorize` | gray channel of score_sde's orthonormal colour decoupling | gray image `mean(R, G, B)` `[H, W]` f32 | — |
//! | `deblur` | `h ∗ x`, Gaussian or PSF blur, circular or zero boundary, by FFT | blurred image `[C, H, W]` f32 | — |
//!
//! Noise ([`TaskNoise`]): `none`, `gaussian:σ` (σ relative to the peak of `|A x|`) or, for CT
//! only, `poisson:I0[:MU]`. Without `MU`, Poisson noise uses the attenuation scale of the
//! LoDoPaB-CT benchmark (Leuschner et al. 2021): images in `[0, 1]` are attenuation relative to
//! `μ_max = 81.35858 m⁻¹` over a 26 cm field of view, so one unit of line integral (one pixel of
//! value 1) attenuates by `μ = μ_max · 0.26 m / N` for an `N`-pixel-wide image; an operator
//! whose line integrals have a physical length unit ([`TaskOperator::line_integral_unit_m`],
//! fan-beam CT: millimetres) uses `μ = μ_max · unit` instead.
//!
//! Real measurements have no known scale (fastMRI k-space, raw sinograms), while the TV preset
//! and score priors assume images in `[0, 1]`: [`reconstruct_measurement`] therefore divides the
//! measurements of tasks with [`Task::normalise_measurement`] (CT, MRI) by the peak `s` of
//! `|A⁺ y|` and multiplies the reconstructions by `s` (every baseline here is linear in `y`
//! apart from the `[0, 1]` box of TV, which then acts on the normalised image). Inpainting and
//! colorization measurements are images and kept as is.
//!
//! Messages name settings by their field (`` `views` ``); the command line shows the flag.
pub use mri::MriMaskKind;

use super::baselines::{Baseline, TvConfig};
use super::projection::ProjectionConfig;
use super::study::Method;
use crate::io;
use crate::{Error, Result};
use ndarray::{Array2, ArrayD, Axis};
use num_complex::Complex;
use scoreinv_operators::{LinearOperator, NoiseModel, PoissonNoise};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// LoDoPaB-CT's maximal attenuation coefficient `μ_max` in m⁻¹ (images in `[0, 1]` are `μ/μ_max`).
pub const LODOPAB_MU_MAX: f64 = 81.35858;
/// LoDoPaB-CT's field of view in metres.
pub const LODOPAB_FOV_M: f64 = 0.26;

/// An inverse problem: its settings build the operator for an image size and read its
/// measurement files (see the module doc).
pub trait Task: fmt::Debug + Send + Sync {
    /// The command-line name (`ct`, `mri`, …).
    fn name(&self) -> &'static str;
    /// The task's settings as recorded with every study (its config struct as JSON).
    fn settings(&self) -> serde_json::Value;
    /// The baselines that apply to the task with the names the task gives them (the
    /// pseudo-inverse `A⁺ y` is `fbp` for CT, `wiener` for deblurring); the first ones are the
    /// defaults.
    fn baselines(&self) -> &'static [(&'static str, Baseline)];
    /// The methods run when none is named: the task's baselines.
    fn default_methods(&self) -> Vec<(&'static str, Baseline)> {
        self.baselines().to_vec()
    }
    /// Refuses a ground-truth image `[C, H, W]` the task cannot take (e.g. RGB for CT).
    fn check_image(&self, name: &str, shape: &[i64]) -> Result<()>;
    /// The operator for ground-truth images of shape `[C, H, W]` (checked with
    /// [`Task::check_image`]); `seed` seeds random masks and coil maps.
    fn operator(&self, shape: &[i64], seed: u64, device: Device) -> Result<Box<dyn TaskOperator>>;
    /// The noise of a simulation when none is given.
    fn default_noise(&self) -> &'static str {
        "none"
    }
    /// Whether Poisson photon-count noise applies (CT sinograms).
    fn photon_noise(&self) -> bool {
        false
    }
    /// Reads a real measurement with the side files its settings name.
    fn read_measurement(&self, path: &Path, device: Device) -> Result<Measurement>;
    /// The side files named by the settings that only a real measurement uses (e.g. CT's
    /// `angles_file`), as `(field, path)`: a simulation refuses them, and they are inputs.
    fn measurement_files_given(&self) -> Vec<(&'static str, PathBuf)> {
        Vec::new()
    }
    /// Files the settings read in any mode (mask files), so outputs can be kept apart from them.
    fn input_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Whether real measurements are normalised by the peak of `|A⁺ y|` before reconstruction.
    fn normalise_measurement(&self) -> bool {
        false
    }
    /// The projection sampler's published settings for the task.
    fn projection_config(&self) -> ProjectionConfig {
        ProjectionConfig::default()
    }
}

/// A task's operator for one image size, with what its measurement files need.
pub trait TaskOperator: Send + Sync {
    /// `A`, shared with the methods.
    fn op(&self) -> Arc<dyn LinearOperator>;
    /// One line for the terminal: geometry, mask and true acceleration.
    fn describe(&self) -> String;
    /// The TV baseline's settings for this operator (the task's preset; MRI adapts its weight
    /// to the mask's true acceleration).
    fn tv_config(&self) -> TvConfig;
    /// `Λ` as a 0/1 tensor broadcastable to the measurement `[B] ++ output_shape`, for tasks
    /// whose measurements are full grids times a mask (MRI, inpainting): simulated noise is
    /// masked too, so unmeasured entries stay exactly zero.
    fn measurement_mask(&self, _device: Device) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// The suffixes of the side files written next to a measurement `Y.npy`
    /// (`Y_{suffix}.npy`, or `Y_{suffix}` for a suffix with an extension: [`side_path`]).
    fn side_files(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Writes the measurement `y` (`A.output_shape()`, see the module table) to `out` and its
    /// side files beside it.
    fn write_measurement(&self, y: &Tensor, out: &Path) -> Result<()>;
    /// The k-space sampling mask of an MRI operator.
    fn sampling_mask(&self) -> Option<&scoreinv_operators::SamplingMask> {
        None
    }
    /// CT: the length in metres of one unit of the measurement's line integrals of images in
    /// `[0, 1]`, for photon noise with LoDoPaB's attenuation; `None`: one pixel of a 26 cm
    /// field of view (see the module doc).
    fn line_integral_unit_m(&self) -> Option<f64> {
        None
    }
}

/// A task's settings struct: its flags (clap) and serde form, registered in [`TASKS`] with
/// [`TaskEntry::of`].
pub trait TaskConfig:
    Task + clap::Args + clap::FromArgMatches + Serialize + DeserializeOwned + 'static
{
    /// The command-line name.
    const NAME: &'static str;
    /// One line of help.
    const ABOUT: &'static str;
}

/// A registered task: its name, help, flags and how its settings are read.
pub struct TaskEntry {
    pub name: &'static str,
    pub about: &'static str,
    /// Adds the task's flags to a subcommand.
    pub augment_args: fn(clap::Command) -> clap::Command,
    /// The task from parsed flags.
    pub from_arg_matches: fn(&clap::ArgMatches) -> Result<Box<dyn Task>>,
    /// The task from its settings as JSON (missing fields take the defaults).
    pub from_json: fn(serde_json::Value) -> Result<Box<dyn Task>>,
}

fn from_matches<C: TaskConfig>(m: &clap::ArgMatches) -> Result<Box<dyn Task>> {
    let c = C::from_arg_matches(m).map_err(|e| Error::Config(e.to_string()))?;
    Ok(Box::new(c))
}

fn config_from_json<C: TaskConfig>(v: serde_json::Value) -> Result<Box<dyn Task>> {
    let c: C = serde_json::from_value(v)
        .map_err(|e| Error::Config(format!("{} settings: {e}", C::NAME)))?;
    Ok(Box::new(c))
}

impl TaskEntry {
    /// The entry of a settings struct.
    pub const fn of<C: TaskConfig>() -> Self {
        TaskEntry {
            name: C::NAME,
            about: C::ABOUT,
            augment_args: <C as clap::Args>::augment_args,
            from_arg_matches: from_matches::<C>,
            from_json: config_from_json::<C>,
        }
    }
}

/// Declares each task's module, re-exports its settings struct and lists it in [`TASKS`].
macro_rules! tasks {
    ($($module:ident => $config:ident),* $(,)?) => {
        $(pub mod $module; pub use $module::$config;)*
        /// Every task, in the order of the command line's help.
        pub const TASKS: &[TaskEntry] = &[$(TaskEntry::of::<$config>()),*];
    };
}

// The registry: one line per task.
tasks! {
    ct => CtConfig,
    mri => MriConfig,
    inpaint => InpaintConfig,
    colorize => ColorizeConfig,
    deblur => DeblurConfig,
}

/// The registered task called `name`.
pub fn entry(name: &str) -> Result<&'static TaskEntry> {
    TASKS.iter().find(|t| t.name == name).ok_or_else(|| {
        Error::Config(format!(
            "unknown task '{name}'; tasks: {}",
            TASKS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// A task from JSON settings tagged with its name: `{"task": "ct", "views": 60}` (missing
/// fields take the published defaults).
pub fn from_json(mut v: serde_json::Value) -> Result<Box<dyn Task>> {
    let name = v
        .get("task")
        .and_then(|t| t.as_str())
        .ok_or_else(|| Error::Config("task settings need a \"task\" name".into()))?
        .to_string();
    if let Some(o) = v.as_object_mut() {
        o.remove("task");
    }
    (entry(&name)?.from_json)(v)
}

/// The task's baseline called `name` (any letter case, `_` for `-`), with the task's name for
/// it.
pub fn parse_method(task: &dyn Task, name: &str) -> Result<(&'static str, Baseline)> {
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    let n = if n == "zerofilled" {
        "zero-filled".into()
    } else {
        n
    };
    task.baselines()
        .iter()
        .find(|(label, _)| *label == n)
        .copied()
        .ok_or_else(|| {
            Error::Config(format!(
                "`method` {name}: {} reconstructs with {}",
                task.name(),
                task.baselines()
                    .iter()
                    .map(|(label, _)| *label)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ))
        })
}

/// The common shape check: `[C, H, W]` with every axis at least 1.
pub(crate) fn check_chw(task: &str, name: &str, shape: &[i64]) -> Result<(i64, i64, i64)> {
    if shape.len() != 3 || shape.iter().any(|&d| d < 1) {
        return Err(Error::Shape {
            what: format!("{task} image '{name}'"),
            expected: "[C, H, W]".into(),
            actual: format!("{shape:?}"),
        });
    }
    Ok((shape[0], shape[1], shape[2]))
}

/// Measurement noise of a task (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskNoise {
    /// The parsed model.
    pub model: NoiseModel,
    /// `poisson:I0` without `MU`: use LoDoPaB's `μ = μ_max · 0.26 m / N_det` at apply time,
    /// or `μ_max · unit_m` when set.
    pub lodopab_mu: bool,
    /// The length in metres of one unit of line integral ([`TaskNoise::for_operator`]).
    pub unit_m: Option<f64>,
}

impl TaskNoise {
    /// Parses `none`, `gaussian:σ`, `poisson:I0[:MU]` (only where `task` has
    /// [`Task::photon_noise`]).
    pub fn parse(spec: &str, task: &dyn Task) -> Result<Self> {
        let model: NoiseModel = spec
            .parse()
            .map_err(|e| Error::Config(format!("`noise`: {e}")))?;
        let lodopab_mu =
            matches!(model, NoiseModel::Poisson(_)) && spec.trim().split(':').count() == 2;
        if matches!(model, NoiseModel::Poisson(_)) && !task.photon_noise() {
            return Err(Error::Config(format!(
                "`noise` {spec}: Poisson photon-count noise applies only to CT sinograms; \
                 {} measurements take none or gaussian:SIGMA",
                task.name()
            )));
        }
        Ok(Self {
            model,
            lodopab_mu,
            unit_m: None,
        })
    }

    /// The noise for measurements of `op`: takes its line-integral unit
    /// ([`TaskOperator::line_integral_unit_m`]).
    pub fn for_operator(self, op: &dyn TaskOperator) -> Self {
        Self {
            unit_m: op.line_integral_unit_m(),
            ..self
        }
    }

    /// `y + n` for a clean measurement batch `y`.
    pub fn apply(&self, y: &Tensor) -> Result<Tensor> {
        match self.model {
            NoiseModel::Poisson(p) if self.lodopab_mu => {
                if y.dim() < 2 {
                    return Err(Error::Invalid(
                        "poisson noise: sinogram needs a detector axis".into(),
                    ));
                }
                let n_det = y.size()[y.dim() - 2] as f64;
                let unit_m = self.unit_m.unwrap_or(LODOPAB_FOV_M / n_det);
                let p = PoissonNoise::new(p.i0)?.with_mu_scale(LODOPAB_MU_MAX * unit_m)?;
                Ok(p.apply(y)?)
            }
            m => Ok(m.apply(y)?),
        }
    }
}

impl fmt::Display for TaskNoise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.model {
            NoiseModel::Poisson(p) if self.lodopab_mu => {
                write!(f, "poisson:{} (LoDoPaB attenuation)", p.i0)
            }
            m => write!(f, "{m}"),
        }
    }
}

/// `y = A x + n` for one image `[C, H, W]`, returned without batch axis (`A.output_shape()`).
/// For MRI and inpainting the noise is masked too, so unmeasured entries stay exactly zero.
pub fn simulate(op: &dyn TaskOperator, noise: &TaskNoise, truth: &Tensor) -> Result<Tensor> {
    let x = truth.unsqueeze(0);
    let a = op.op();
    a.check_input(&x)?;
    let mut y = noise.apply(&a.forward(&x)?)?;
    if let Some(m) = op.measurement_mask(y.device())? {
        y = y.f_mul(&m)?;
    }
    Ok(y.squeeze_dim(0))
}

/// The settings of `scoreinv simulate TASK` besides the task's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct SimulateConfig {
    /// One ground-truth image (a spec of [`crate::data::cases`] naming one case).
    pub ground_truth: String,
    /// Noise (default: the task's).
    pub noise: Option<String>,
    /// Seed of masks, coil maps and noise.
    pub seed: i64,
    /// Resample the image to `size × size`.
    pub size: Option<i64>,
    /// HU window of CT data.
    pub window: crate::data::ct_slices::HuWindow,
}

/// What [`simulate_to_file`] did.
pub struct Simulated {
    /// The operator, one line.
    pub description: String,
    pub noise: String,
    /// The true acceleration of an MRI mask.
    pub acceleration: Option<f64>,
    /// The files written: the measurement, then its side files.
    pub written: Vec<PathBuf>,
}

/// The measurement `y = A x + n` of one ground-truth image written to `out` (`.npy`) with its
/// side files. None of them may be an input, and none may exist unless `overwrite`; all is
/// checked before anything is written.
pub fn simulate_to_file(
    task: &dyn Task,
    cfg: &SimulateConfig,
    out: &Path,
    overwrite: bool,
    device: Device,
) -> Result<Simulated> {
    check_measurement_path(out)?;
    if let Some((field, _)) = task.measurement_files_given().first() {
        return Err(Error::Config(format!(
            "`{field}` applies to reconstructing a real measurement, not to a simulation"
        )));
    }
    let spec = cfg.noise.as_deref().unwrap_or(task.default_noise());
    let noise = TaskNoise::parse(spec, task)?;
    let opts = crate::data::cases::CaseOptions {
        size: cfg.size,
        window: cfg.window,
        ..Default::default()
    };
    let cases = crate::data::cases::load_cases(&cfg.ground_truth, &opts)
        .map_err(|e| Error::Config(format!("`ground_truth` {}: {e}", cfg.ground_truth)))?;
    if cases.len() != 1 {
        return Err(Error::Config(format!(
            "`ground_truth` {}: a simulation takes one image, this names {} (pick one, e.g. \
             #z=K)",
            cfg.ground_truth,
            cases.len()
        )));
    }
    let case = &cases[0];
    let shape = case.truth.size();
    task.check_image(&case.name, &shape)?;
    let op = task.operator(&shape, cfg.seed as u64, device)?;
    let noise = noise.for_operator(op.as_ref());
    let mut inputs = crate::data::cases::spec_paths(&cfg.ground_truth);
    inputs.extend(task.input_files());
    let files = measurement_files(op.as_ref(), out);
    crate::io::output::check_output_files(&files, &inputs, overwrite)
        .map_err(|e| Error::Invalid(format!("`out`: {e}")))?;
    // Seeded as a study seeds its first case, so a study of this ground truth simulates the
    // same measurement.
    tch::manual_seed(crate::inverse::study::case_seed(cfg.seed as u64, 0));
    let y = simulate(op.as_ref(), &noise, &case.truth.to_device(device))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut written = write_measurement(op.as_ref(), &y, out)?;
    let record = SimulationRecord {
        task: task.name().to_string(),
        task_settings: task.settings(),
        simulate: cfg.clone(),
        case: case.name.clone(),
        image_shape: shape.clone(),
        noise: noise.to_string(),
        units: case.info.units,
    };
    let path = record_path(out);
    let json = serde_json::to_string_pretty(&record)
        .map_err(|e| Error::Invalid(format!("simulation record to JSON: {e}")))?;
    crate::io::atomic::write_bytes(&path, json.as_bytes())?;
    written.push(path);
    Ok(Simulated {
        description: op.describe(),
        noise: noise.to_string(),
        acceleration: op.sampling_mask().map(|m| m.acceleration()),
        written,
    })
}

/// What `scoreinv simulate` records in `Y.json` beside a measurement `Y.npy`: the simulation's
/// settings. A measurement with this record is in the units of the images it was simulated
/// from (`[0, 1]`, CT windowed by `simulate.window`), so `reconstruct --measurement` does not
/// rescale it, and its reconstructions equal those of a study of the same ground truth with
/// the same seed.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SimulationRecord {
    pub task: String,
    pub task_settings: serde_json::Value,
    pub simulate: SimulateConfig,
    /// The ground truth's case name.
    pub case: String,
    /// `[C, H, W]` of the ground truth.
    pub image_shape: Vec<i64>,
    /// The noise as applied (e.g. `gaussian:0.005`).
    pub noise: String,
    /// The HU window of a ground truth in HU: its reconstructions are written in HU, as a
    /// study's are.
    #[serde(default)]
    pub units: Option<crate::data::ct_slices::HuWindow>,
}

/// `meas.npy` → `meas.json`, the [`SimulationRecord`] of a simulated measurement.
pub fn record_path(measurement: &Path) -> PathBuf {
    let name = measurement
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.split('#').next().unwrap_or(&name).to_string();
    let stem = name.strip_suffix(".npy").unwrap_or(&name);
    measurement.with_file_name(format!("{stem}.json"))
}

/// The [`SimulationRecord`] beside a measurement file, if there is one.
pub fn read_simulation_record(measurement: &Path) -> Result<Option<SimulationRecord>> {
    let path = record_path(measurement);
    if path == measurement || !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let r: SimulationRecord = serde_json::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a simulation record of scoreinv ({e}); move it away from the measurement",
            path.display()
        ))
    })?;
    Ok(Some(r))
}

/// `out` with `_suffix` before `.npy`: `meas.npy` → `meas_mask.npy`; a suffix with its own
/// extension keeps it: `geometry.toml` → `meas_geometry.toml`.
pub fn side_path(out: &Path, suffix: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".npy").unwrap_or(&name);
    if suffix.contains('.') {
        out.with_file_name(format!("{stem}_{suffix}"))
    } else {
        out.with_file_name(format!("{stem}_{suffix}.npy"))
    }
}

/// Checks an output path for a measurement: ends in `.npy`.
pub fn check_measurement_path(out: &Path) -> Result<()> {
    let ok = out
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(".npy"))
        .unwrap_or(false);
    if !ok {
        return Err(Error::Config(format!(
            "`out` {}: the measurement is written as NPY; name a FILE.npy",
            out.display()
        )));
    }
    Ok(())
}

/// The files [`write_measurement`] writes for `op` at `out`: the measurement, then its side
/// files.
pub fn measurement_files(op: &dyn TaskOperator, out: &Path) -> Vec<PathBuf> {
    let mut files = vec![out.to_path_buf()];
    files.extend(op.side_files().iter().map(|s| side_path(out, s)));
    files.push(record_path(out));
    files
}

/// Writes the measurement `y` and its side files ([`measurement_files`]); returns every path
/// written.
pub fn write_measurement(op: &dyn TaskOperator, y: &Tensor, out: &Path) -> Result<Vec<PathBuf>> {
    check_measurement_path(out)?;
    op.write_measurement(&y.to_device(Device::Cpu), out)?;
    let mut files = vec![out.to_path_buf()];
    files.extend(op.side_files().iter().map(|s| side_path(out, s)));
    Ok(files)
}

/// A real measurement with its operator: `y` is `[1] ++ A.output_shape()`.
pub struct Measurement {
    /// Case name (the file stem).
    pub name: String,
    pub op: Box<dyn TaskOperator>,
    pub y: Tensor,
    /// Normalise by the peak of `|A⁺ y|` before reconstructing ([`Task::normalise_measurement`]).
    pub normalise: bool,
}

/// The case name of a measurement file: its name without image extensions and selector.
pub(crate) fn stem(path: &Path) -> String {
    let n = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "measurement".into());
    let n = n.split('#').next().unwrap_or(&n).to_string();
    for ext in [".nii.gz", ".npy", ".png", ".tif", ".tiff", ".nii", ".dcm"] {
        if let Some(s) = n.strip_suffix(ext) {
            return s.to_string();
        }
    }
    n
}

pub(crate) fn ensure_finite_complex(a: &ArrayD<Complex<f32>>, what: &str) -> Result<()> {
    let bad = a
        .iter()
        .filter(|z| !(z.re.is_finite() && z.im.is_finite()))
        .count();
    if bad > 0 {
        return Err(Error::NonFinite(format!(
            "{what} ({bad} of {} values are not finite)",
            a.len()
        )));
    }
    Ok(())
}

/// Reads a 0/1 `[H, W]` mask (npy `[H, W]` or `[1, H, W]`, png, tif: 8-/16-bit 0 and max
/// become 0 and 1). Refuses NaN, several channels and values other than 0 and 1.
pub fn read_mask_file(path: &Path) -> Result<Array2<f32>> {
    let img = io::read_image(path)?;
    let what = format!("mask {}", path.display());
    io::ensure_finite(&img.data, &what)?;
    let (c, h, w) = img.data.dim();
    if c != 1 {
        return Err(Error::Shape {
            what,
            expected: "a single-channel 0/1 mask [H, W]".into(),
            actual: format!("{c} channels [{c}, {h}, {w}]"),
        });
    }
    if let Some(v) = img.data.iter().find(|&&v| v != 0.0 && v != 1.0) {
        return Err(Error::Invalid(format!(
            "{what}: a mask must contain only 0 and 1, found {v}"
        )));
    }
    Ok(img.data.index_axis_move(Axis(0), 0))
}

/// Refuses a mask whose `[H, W]` is not `want` (the size `of` what).
pub(crate) fn check_mask_dims(
    path: &Path,
    got: (usize, usize),
    want: (usize, usize),
    of: &str,
) -> Result<()> {
    if got != want {
        return Err(Error::Shape {
            what: format!("mask {}", path.display()),
            expected: format!("[{}, {}] (the size of {of})", want.0, want.1),
            actual: format!("[{}, {}]", got.0, got.1),
        });
    }
    Ok(())
}

/// One reconstruction of a real measurement.
pub struct Reconstruction {
    pub method: String,
    /// `[C, H, W]`, on the CPU, in the measurement's units (clipped to `[0, s]` for the scale `s`
    /// of [`reconstruct_measurement`]).
    pub image: Tensor,
    /// The pixelwise posterior standard deviation (same units), with several samples.
    pub std: Option<Tensor>,
    pub seconds: f64,
    /// Score methods: how typical the measurement's baseline reconstruction is under the prior.
    pub typicality: Option<crate::inverse::typicality::Typicality>,
}

/// The scale `s` by which a real measurement is divided before reconstruction: the peak of
/// `|A⁺ y|` where `normalise` (see the module doc), else 1.
pub fn measurement_scale(m: &Measurement, normalise: bool) -> Result<f64> {
    if !normalise {
        return Ok(1.0);
    }
    let p =
        m.op.op()
            .pseudo_inverse(&m.y)?
            .abs()
            .max()
            .double_value(&[]);
    Ok(if p.is_finite() && p > 0.0 { p } else { 1.0 })
}

/// Runs each method on a real measurement divided by `scale` ([`measurement_scale`]), with its
/// random draws seeded by `seed` as a study seeds a case ([`crate::inverse::study::run_methods`]),
/// and returns the reconstructions times `scale`.
pub fn reconstruct_measurement(
    m: &Measurement,
    scale: f64,
    seed: i64,
    methods: &[&dyn Method],
    progress: &mut dyn FnMut(crate::inverse::study::Progress),
) -> Result<Vec<Reconstruction>> {
    let op = m.op.op();
    op.check_output(&m.y)?;
    let y = if scale == 1.0 {
        m.y.shallow_clone()
    } else {
        &m.y / scale
    };
    let runs = crate::inverse::study::run_methods(op.as_ref(), &y, Some(seed), methods, progress)?;
    Ok(runs
        .into_iter()
        .map(|r| {
            let unscale = |t: Tensor| {
                let t = t.get(0).to_device(Device::Cpu);
                if scale == 1.0 {
                    t
                } else {
                    t * scale
                }
            };
            Reconstruction {
                method: r.name,
                image: unscale(r.recon),
                std: r.std.map(unscale),
                seconds: r.seconds,
                typicality: r.typicality.and_then(|t| t.into_iter().next()),
            }
        })
        .collect())
}

/// Writes `<name>.png` (every reconstruction side by side, labelled with its method, no metrics,
/// [`io::figure::comparison`]; jointly scaled by the brightest panel's peak, negatives clipped,
/// the displayed range stated), `<name>_<method>.npy` (raw values; HU when `units` gives the HU
/// window of images in `[0, 1]`) and, with several posterior
/// samples, `<name>_<method>_std.npy` and `<name>_<method>_std.png` (the std map on a colour
/// bar).
pub fn write_reconstructions(
    out: &mut crate::io::output::OutputDir,
    name: &str,
    recons: &[Reconstruction],
    fig: &io::figure::FigureConfig,
    units: Option<crate::data::ct_slices::HuWindow>,
) -> Result<()> {
    if recons.is_empty() {
        return Ok(());
    }
    let mut names = vec![format!("{name}.png")];
    names.extend(recons.iter().map(|r| format!("{name}_{}.npy", r.method)));
    for r in recons.iter().filter(|r| r.std.is_some()) {
        names.push(format!("{name}_{}_std.npy", r.method));
        names.push(format!("{name}_{}_std.png", r.method));
    }
    out.register(&names)?;
    let dir = out.path();
    // Shown on [0, peak] of all reconstructions (a raw measurement's units can be far from 1).
    let peak = recons
        .iter()
        .map(|r| r.image.max().double_value(&[]))
        .fold(0.0f64, f64::max);
    let peak = if units.is_some() || !(peak.is_finite() && peak > 0.0) {
        1.0
    } else {
        peak
    };
    let mut panels = Vec::with_capacity(recons.len());
    for r in recons {
        let img = (r.image.to_kind(Kind::Float) / peak).clamp(0.0, 1.0);
        let a = io::tensor_to_array3(&img, &format!("reconstruction {}", r.method))?;
        panels.push((r.method.clone(), a, None));
    }
    let mut fig = fig.clone();
    if let (Some(w), None) = (units, &fig.window) {
        fig.window = Some(io::figure::DisplayWindow {
            lo: f64::from(w.lo),
            hi: f64::from(w.hi),
            units: "HU".into(),
        });
    }
    if peak != 1.0 {
        // The shown range in the measurement's units, scaled by the given window if any.
        let (lo, span, units) = fig.window.as_ref().map_or((0.0, 1.0, String::new()), |w| {
            (w.lo, w.hi - w.lo, w.units.clone())
        });
        fig.window = Some(io::figure::DisplayWindow {
            lo,
            hi: lo + peak * span,
            units,
        });
    }
    let figure = io::figure::comparison(None, &panels, &fig)?;
    io::figure::save_png(&dir.join(format!("{name}.png")), &figure)?;
    for r in recons {
        let image = crate::inverse::study::output_values(&r.image, units, false);
        let a = io::tensor_to_array::<f32>(&image)?;
        io::npy::write_npy(&dir.join(format!("{name}_{}.npy", r.method)), &a)?;
        if let Some(sd) = &r.std {
            let a =
                io::tensor_to_array::<f32>(&crate::inverse::study::output_values(sd, units, true))?;
            io::npy::write_npy(&dir.join(format!("{name}_{}_std.npy", r.method)), &a)?;
            let shown = io::tensor_to_array3(
                &(sd.to_kind(Kind::Float) / peak),
                &format!("posterior std {}", r.method),
            )?;
            let figure = io::figure::uncertainty(&r.method, None, &shown, &fig)?;
            io::figure::save_png(&dir.join(format!("{name}_{}_std.png", r.method)), &figure)?;
        }
    }
    Ok(())
}
