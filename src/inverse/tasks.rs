//! The four inverse problems as configurations: a serde [`TaskConfig`] builds the forward
//! operator `A` ([`TaskOperator`]) for an image shape, [`TaskNoise`] the measurement noise, and
//! [`simulate`] makes `y = A x + n`. The same module reads *real* measurements back
//! ([`load_ct_measurement`], [`load_mri_measurement`], [`load_inpaint_measurement`],
//! [`load_colorize_measurement`]), checking every file (shape, NaN, 0/1 masks, angle counts)
//! before anything is written, so that the command line only maps flags onto these calls.
//!
//! | task | `A` | measurement file (`simulate --out Y.npy`) | side files |
//! |---|---|---|---|
//! | `ct` | sparse-view parallel-beam Radon, `n_views` of `n_angles` over `[0°, 180°)` (Song et al. 2022) | sinogram `[N, n_views]` f32 | `Y_angles.npy` kept angles (degrees, f64), `Y_mask.npy` `[n_angles]` 0/1 |
//! | `mri` | `M F` (single coil) or SENSE `M F S` (Pruessmann et al. 1999), fastMRI masks | k-space `[H, W]` / `[coils, H, W]` complex64, zero where not sampled | `Y_mask.npy` `[H, W]` 0/1, `Y_maps.npy` coil maps `[coils, H, W]` complex64 |
//! | `inpaint` | `Λ ⊙ x` (score_sde's inpainting) | masked image `[C, H, W]` f32 | `Y_mask.npy` `[H, W]` 0/1 |
//! | `colorize` | gray channel of score_sde's orthonormal colour decoupling | gray image `mean(R, G, B)` `[H, W]` f32 | — |
//!
//! Noise ([`TaskNoise`]): `none`, `gaussian:σ` (σ relative to the peak of `|A x|`) or, for CT
//! only, `poisson:I0[:MU]`. Without `MU`, Poisson noise uses the attenuation scale of the
//! LoDoPaB-CT benchmark (Leuschner et al. 2021): images in `[0, 1]` are attenuation relative to
//! `μ_max = 81.35858 m⁻¹` over a 26 cm field of view, so one unit of line integral (one pixel of
//! value 1) attenuates by `μ = μ_max · 0.26 m / N` for an `N`-pixel-wide image.
//!
//! Real measurements have no known scale (fastMRI k-space, raw sinograms), while the TV preset
//! and score priors assume images in `[0, 1]`: [`reconstruct_measurement`] therefore divides CT
//! and MRI measurements by the peak `s` of `|A⁺ y|` and multiplies the reconstructions by `s`
//! (every baseline here is linear in `y` apart from the `[0, 1]` box of TV, which then acts on
//! the normalised image). Inpainting and colorization measurements are images and kept as is.
use super::baselines::{Baseline, TaskPreset};
use super::study::Method;
use crate::io::{self, GridOptions};
use crate::{Error, Result};
use ndarray::{Array1, Array2, Array3, ArrayD, Axis};
use num_complex::Complex;
use scoreinv_operators::masks::MaskSpec;
use scoreinv_operators::mri::CoilMaps;
use scoreinv_operators::radon::ParallelBeamRadon;
use scoreinv_operators::{
    synthetic_coil_maps, FbpFilter, Grayscale, InpaintMask, LinearOperator, Masking, MriFourier,
    NoiseModel, PoissonNoise, SamplingMask, SenseMri,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// LoDoPaB-CT's maximal attenuation coefficient `μ_max` in m⁻¹ (images in `[0, 1]` are `μ/μ_max`).
pub const LODOPAB_MU_MAX: f64 = 81.35858;
/// LoDoPaB-CT's field of view in metres.
pub const LODOPAB_FOV_M: f64 = 0.26;

/// The four inverse problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    Ct,
    Mri,
    Inpaint,
    Colorize,
}

impl TaskKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Ct => "ct",
            TaskKind::Mri => "mri",
            TaskKind::Inpaint => "inpaint",
            TaskKind::Colorize => "colorize",
        }
    }

    /// The baseline regularisation preset.
    pub fn preset(self) -> TaskPreset {
        match self {
            TaskKind::Ct => TaskPreset::Ct,
            TaskKind::Mri => TaskPreset::Mri,
            TaskKind::Inpaint => TaskPreset::Inpainting,
            TaskKind::Colorize => TaskPreset::Colorization,
        }
    }

    /// The baselines that make sense for the task (the first ones are the defaults).
    pub fn baselines(self) -> &'static [Baseline] {
        match self {
            TaskKind::Ct => &[Baseline::Fbp, Baseline::Tv],
            TaskKind::Mri => &[Baseline::ZeroFilled, Baseline::Tv],
            TaskKind::Inpaint => &[Baseline::ZeroFilled, Baseline::Tv],
            TaskKind::Colorize => &[Baseline::Gray, Baseline::Tv],
        }
    }

    /// The default methods: both baselines, except colorization (`gray`).
    pub fn default_methods(self) -> Vec<Baseline> {
        match self {
            TaskKind::Colorize => vec![Baseline::Gray],
            k => k.baselines().to_vec(),
        }
    }

    /// Parses a method name and checks that it belongs to the task.
    pub fn parse_method(self, name: &str) -> Result<Baseline> {
        let b: Baseline = name.parse()?;
        if !self.baselines().contains(&b) {
            return Err(Error::Config(format!(
                "--method {name}: {} reconstructs with {}",
                self.name(),
                self.baselines()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        Ok(b)
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which k-space mask generator of [`scoreinv_operators::masks`] an MRI task uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MriMaskKind {
    /// fastMRI `RandomMaskFunc` (Cartesian lines).
    #[default]
    Random,
    /// fastMRI `EquispacedMaskFractionFunc`.
    Equispaced,
    /// fastMRI `EquiSpacedMaskFunc` (integer acceleration).
    EquispacedFixed,
    /// 2-D variable-density Gaussian points.
    Gaussian2d,
    /// Variable-density Poisson disc.
    Poisson,
    /// Radial lines through the k-space centre.
    Radial,
}

impl MriMaskKind {
    const NAMES: &'static str = "random, equispaced, equispaced-fixed, gaussian2d, poisson, radial";
}

impl FromStr for MriMaskKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "random" => MriMaskKind::Random,
            "equispaced" => MriMaskKind::Equispaced,
            "equispaced-fixed" => MriMaskKind::EquispacedFixed,
            "gaussian2d" | "gaussian" => MriMaskKind::Gaussian2d,
            "poisson" => MriMaskKind::Poisson,
            "radial" => MriMaskKind::Radial,
            _ => {
                return Err(Error::Config(format!(
                    "unknown mask kind '{s}'; expected one of: {}",
                    Self::NAMES
                )))
            }
        })
    }
}

fn default_views() -> usize {
    23
}
fn default_angles() -> usize {
    180
}
fn default_acceleration() -> f64 {
    4.0
}
fn default_coils() -> usize {
    1
}
fn default_inpaint_mask() -> String {
    "box".into()
}

/// Sparse-view CT: `views` of `angles` uniformly spaced angles over `[0°, 180°)` (23 of 180 as
/// in Song et al. 2022).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtConfig {
    #[serde(default = "default_views")]
    pub views: usize,
    #[serde(default = "default_angles")]
    pub angles: usize,
    #[serde(default)]
    pub filter: FbpFilter,
}

impl Default for CtConfig {
    fn default() -> Self {
        Self {
            views: default_views(),
            angles: default_angles(),
            filter: FbpFilter::default(),
        }
    }
}

/// Undersampled MRI: fastMRI's 4× with 8 % centre by default; `coils > 1` is SENSE with
/// [`synthetic_coil_maps`]; `mask_file` replaces the generated mask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MriConfig {
    #[serde(default = "default_acceleration")]
    pub acceleration: f64,
    /// Fully sampled centre fraction (default fastMRI's `0.32 / R`: 0.08 at R = 4).
    #[serde(default)]
    pub center_fraction: Option<f64>,
    #[serde(default)]
    pub mask_kind: MriMaskKind,
    /// Radial lines (default: the count whose true acceleration is closest to `acceleration`).
    #[serde(default)]
    pub lines: Option<usize>,
    #[serde(default = "default_coils")]
    pub coils: usize,
    /// A 0/1 `[H, W]` mask file (npy, png, tif) instead of a generated mask.
    #[serde(default)]
    pub mask_file: Option<PathBuf>,
}

impl Default for MriConfig {
    fn default() -> Self {
        Self {
            acceleration: default_acceleration(),
            center_fraction: None,
            mask_kind: MriMaskKind::default(),
            lines: None,
            coils: default_coils(),
            mask_file: None,
        }
    }
}

/// Inpainting: `mask` is a recipe of [`InpaintMask`] (`box`, `random:0.5`, `half`, `strokes`)
/// or a 0/1 mask file (1 = observed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InpaintConfig {
    #[serde(default = "default_inpaint_mask")]
    pub mask: String,
}

impl Default for InpaintConfig {
    fn default() -> Self {
        Self {
            mask: default_inpaint_mask(),
        }
    }
}

/// A task and its operator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case")]
pub enum TaskConfig {
    Ct(CtConfig),
    Mri(MriConfig),
    Inpaint(InpaintConfig),
    Colorize,
}

/// The operator of a task, concrete so that its masks and angles can be written out.
pub enum TaskOperator {
    Ct(ParallelBeamRadon),
    Mri(MriFourier),
    Sense(SenseMri),
    Inpaint(Masking),
    Colorize(Grayscale),
}

impl TaskConfig {
    /// The task.
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskConfig::Ct(_) => TaskKind::Ct,
            TaskConfig::Mri(_) => TaskKind::Mri,
            TaskConfig::Inpaint(_) => TaskKind::Inpaint,
            TaskConfig::Colorize => TaskKind::Colorize,
        }
    }

    /// Builds `A` for ground-truth images of shape `[C, H, W]` (checked with
    /// [`check_image_shape`]); `seed` seeds random masks and coil maps.
    pub fn build(&self, shape: &[i64], seed: u64, device: Device) -> Result<TaskOperator> {
        check_image_shape(self.kind(), "ground truth", shape)?;
        let (c, h, w) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        Ok(match self {
            TaskConfig::Ct(cfg) => TaskOperator::Ct(
                ParallelBeamRadon::sparse_view(h, cfg.views, cfg.angles, Kind::Float, device)?
                    .with_filter(cfg.filter),
            ),
            TaskConfig::Mri(cfg) => {
                let mask = match &cfg.mask_file {
                    Some(p) => {
                        let m = read_mask_file(p)?;
                        check_mask_dims(p, m.dim(), (h, w), "the images")?;
                        SamplingMask::from_array(m, format!("file {}", p.display()))?
                    }
                    None => mri_mask(cfg, h, w, seed)?,
                };
                if cfg.coils == 0 {
                    return Err(Error::Config("--coils must be at least 1".into()));
                }
                if cfg.coils > 1 {
                    let maps = synthetic_coil_maps(cfg.coils, h, w, seed)?;
                    TaskOperator::Sense(SenseMri::new(maps, mask)?)
                } else {
                    TaskOperator::Mri(MriFourier::new(mask, c)?)
                }
            }
            TaskConfig::Inpaint(cfg) => {
                let m = inpaint_mask(&cfg.mask, h, w, seed)?;
                TaskOperator::Inpaint(Masking::from_2d(m, c)?)
            }
            TaskConfig::Colorize => TaskOperator::Colorize(Grayscale::new(h, w)?),
        })
    }
}

/// Builds a generated MRI mask (see [`MriConfig`]).
pub fn mri_mask(cfg: &MriConfig, h: usize, w: usize, seed: u64) -> Result<SamplingMask> {
    let r = cfg.acceleration;
    if !(r.is_finite() && r >= 1.0) {
        return Err(Error::Config(format!(
            "--accel must be a number >= 1, got {r}"
        )));
    }
    let centre = cfg
        .center_fraction
        .unwrap_or_else(|| scoreinv_operators::masks::default_centre_fraction(r));
    let spec = match cfg.mask_kind {
        MriMaskKind::Random => MaskSpec::Random {
            acceleration: r,
            centre_fraction: centre,
        },
        MriMaskKind::Equispaced => MaskSpec::Equispaced {
            acceleration: r,
            centre_fraction: centre,
        },
        MriMaskKind::EquispacedFixed => {
            if r.fract() != 0.0 {
                return Err(Error::Config(format!(
                    "mask kind equispaced-fixed needs an integer --accel, got {r}"
                )));
            }
            MaskSpec::EquispacedFixed {
                acceleration: r as usize,
                centre_fraction: centre,
            }
        }
        MriMaskKind::Gaussian2d => MaskSpec::Gaussian {
            acceleration: r,
            centre_fraction: centre,
        },
        MriMaskKind::Poisson => MaskSpec::Poisson {
            acceleration: r,
            centre_fraction: centre,
        },
        MriMaskKind::Radial => match cfg.lines {
            Some(n) => MaskSpec::Radial { n_lines: n },
            None => return radial_for_acceleration(h, w, r, seed),
        },
    };
    Ok(spec.build(h, w, seed)?)
}

/// The radial mask whose true acceleration is closest to `r`: lines are added one by one
/// (they overlap near the centre, so the acceleration is not `max(H, W) / n_lines`) until the
/// acceleration drops to `r` or below.
fn radial_for_acceleration(h: usize, w: usize, r: f64, seed: u64) -> Result<SamplingMask> {
    let mut best = MaskSpec::Radial { n_lines: 1 }.build(h, w, seed)?;
    let mut n = 1;
    while best.acceleration() > r && n < 4 * h.max(w) {
        n += 1;
        let next = MaskSpec::Radial { n_lines: n }.build(h, w, seed)?;
        let done = next.acceleration() <= r;
        if (next.acceleration() - r).abs() <= (best.acceleration() - r).abs() {
            best = next;
        }
        if done {
            break;
        }
    }
    Ok(best)
}

/// The `[H, W]` inpainting mask (1 = observed) of a recipe or a file.
pub fn inpaint_mask(spec: &str, h: usize, w: usize, seed: u64) -> Result<Array2<f32>> {
    match spec.parse::<InpaintMask>() {
        Ok(recipe) => Ok(recipe.build(h, w, seed)?),
        Err(recipe_err) => {
            let path = Path::new(spec);
            let (file, _) = io::split_selector(path)?;
            if !file.exists() {
                return Err(Error::Config(format!(
                    "--mask {spec}: unknown mask kind and no such file ({recipe_err})"
                )));
            }
            let m = read_mask_file(path)?;
            check_mask_dims(path, m.dim(), (h, w), "the images")?;
            Ok(m)
        }
    }
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

fn check_mask_dims(path: &Path, got: (usize, usize), want: (usize, usize), of: &str) -> Result<()> {
    if got != want {
        return Err(Error::Shape {
            what: format!("mask {}", path.display()),
            expected: format!("[{}, {}] (the size of {of})", want.0, want.1),
            actual: format!("[{}, {}]", got.0, got.1),
        });
    }
    Ok(())
}

/// Checks that an image `[C, H, W]` suits the task: CT square and gray, MRI gray,
/// colorization RGB.
pub fn check_image_shape(kind: TaskKind, name: &str, shape: &[i64]) -> Result<()> {
    if shape.len() != 3 || shape.iter().any(|&d| d < 1) {
        return Err(Error::Shape {
            what: format!("{} image '{name}'", kind.name()),
            expected: "[C, H, W]".into(),
            actual: format!("{shape:?}"),
        });
    }
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    match kind {
        TaskKind::Ct if c != 1 => Err(Error::Config(format!(
            "CT needs gray images; '{name}' has {c} channels"
        ))),
        TaskKind::Ct if h != w => Err(Error::Config(format!(
            "CT needs square images; '{name}' is {h}×{w} (use --size N)"
        ))),
        TaskKind::Mri if c != 1 => Err(Error::Config(format!(
            "MRI needs gray (magnitude) images; '{name}' has {c} channels"
        ))),
        TaskKind::Colorize if c != 3 => Err(Error::Config(format!(
            "colorize needs RGB ground truth (3 channels); '{name}' has {c}"
        ))),
        _ => Ok(()),
    }
}

impl TaskOperator {
    /// The task preset's TV settings for this operator: [`TaskPreset::tv_config`], with the MRI
    /// weight chosen by the mask's true acceleration
    /// ([`crate::inverse::baselines::mri_tv_lambda`]).
    pub fn tv_config(&self) -> crate::inverse::baselines::TvConfig {
        let mut tv = self.kind().preset().tv_config();
        if let Some(r) = self.mri_acceleration() {
            tv.lambda = crate::inverse::baselines::mri_tv_lambda(r);
        }
        tv
    }

    /// The true acceleration `H·W / n_sampled` of an MRI operator's sampling mask (`None` for
    /// the other tasks).
    pub fn mri_acceleration(&self) -> Option<f64> {
        match self {
            TaskOperator::Mri(op) => Some(op.sampling_mask().acceleration()),
            TaskOperator::Sense(op) => Some(op.sampling_mask().acceleration()),
            _ => None,
        }
    }

    /// The operator shared (one object): as a [`LinearOperator`], and as a
    /// [`Decomposed`](scoreinv_operators::Decomposed) for the score samplers, which is `None`
    /// for multi-coil SENSE (no `T`/`Λ` decomposition; its score-based reconstruction is `dps`).
    #[allow(clippy::type_complexity)]
    pub fn into_shared(
        self,
    ) -> (
        std::sync::Arc<dyn LinearOperator>,
        Option<std::sync::Arc<dyn scoreinv_operators::Decomposed>>,
    ) {
        use std::sync::Arc;
        fn both<T: scoreinv_operators::Decomposed + 'static>(
            a: T,
        ) -> (
            Arc<dyn LinearOperator>,
            Option<Arc<dyn scoreinv_operators::Decomposed>>,
        ) {
            let a = Arc::new(a);
            (a.clone(), Some(a))
        }
        match self {
            TaskOperator::Ct(a) => both(a),
            TaskOperator::Mri(a) => both(a),
            TaskOperator::Sense(a) => (Arc::new(a), None),
            TaskOperator::Inpaint(a) => both(a),
            TaskOperator::Colorize(a) => both(a),
        }
    }

    /// As a [`LinearOperator`].
    pub fn op(&self) -> &dyn LinearOperator {
        match self {
            TaskOperator::Ct(a) => a,
            TaskOperator::Mri(a) => a,
            TaskOperator::Sense(a) => a,
            TaskOperator::Inpaint(a) => a,
            TaskOperator::Colorize(a) => a,
        }
    }

    /// The task.
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskOperator::Ct(_) => TaskKind::Ct,
            TaskOperator::Mri(_) | TaskOperator::Sense(_) => TaskKind::Mri,
            TaskOperator::Inpaint(_) => TaskKind::Inpaint,
            TaskOperator::Colorize(_) => TaskKind::Colorize,
        }
    }

    /// The MRI sampling mask.
    pub fn sampling_mask(&self) -> Option<&SamplingMask> {
        match self {
            TaskOperator::Mri(a) => Some(a.sampling_mask()),
            TaskOperator::Sense(a) => Some(a.sampling_mask()),
            _ => None,
        }
    }

    /// One line for the terminal: geometry, mask and true acceleration.
    pub fn describe(&self) -> String {
        match self {
            TaskOperator::Ct(a) => format!(
                "sparse-view CT: {} of {} views, {}×{} images",
                a.angles_deg().len(),
                a.full_angles_deg().len(),
                a.n(),
                a.n()
            ),
            TaskOperator::Mri(_) | TaskOperator::Sense(_) => {
                let m = self.sampling_mask().expect("mri has a mask");
                let coils = match self {
                    TaskOperator::Sense(s) => format!("SENSE, {} coils", s.coil_maps().dim().0),
                    _ => "single coil".into(),
                };
                format!(
                    "MRI ({coils}): mask {} on {}×{}, true acceleration {:.3} ({} of {} k-space \
                     points)",
                    m.description(),
                    m.dim().0,
                    m.dim().1,
                    m.acceleration(),
                    m.n_sampled(),
                    m.dim().0 * m.dim().1
                )
            }
            TaskOperator::Inpaint(a) => format!(
                "inpainting: {:.1}% of pixels observed",
                100.0 * a.observed_fraction()
            ),
            TaskOperator::Colorize(_) => "colorization: gray = mean(R, G, B)".into(),
        }
    }

    /// `Λ` as a 0/1 tensor broadcastable to the measurement `[B] ++ output_shape`, for the
    /// tasks whose measurements are full grids times a mask (MRI, inpainting).
    fn measurement_mask(&self, device: Device) -> Result<Option<Tensor>> {
        Ok(match self {
            TaskOperator::Mri(a) => Some(a.sampling_mask().to_tensor(Kind::Float, device)?),
            TaskOperator::Sense(a) => Some(a.sampling_mask().to_tensor(Kind::Float, device)?),
            TaskOperator::Inpaint(a) => {
                let m = a.mask_array();
                Some(io::array_to_tensor(m).to_device(device))
            }
            _ => None,
        })
    }
}

/// Measurement noise of a task (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskNoise {
    /// The parsed model.
    pub model: NoiseModel,
    /// `poisson:I0` without `MU`: use LoDoPaB's `μ = μ_max · 0.26 m / N_det` at apply time.
    pub lodopab_mu: bool,
}

impl TaskNoise {
    /// Parses `none`, `gaussian:σ`, `poisson:I0[:MU]` (CT only).
    pub fn parse(spec: &str, kind: TaskKind) -> Result<Self> {
        let model: NoiseModel = spec
            .parse()
            .map_err(|e| Error::Config(format!("--noise: {e}")))?;
        let lodopab_mu =
            matches!(model, NoiseModel::Poisson(_)) && spec.trim().split(':').count() == 2;
        if matches!(model, NoiseModel::Poisson(_)) && kind != TaskKind::Ct {
            return Err(Error::Config(format!(
                "--noise {spec}: Poisson photon-count noise applies only to CT sinograms; \
                 {kind} measurements take none or gaussian:SIGMA"
            )));
        }
        Ok(Self { model, lodopab_mu })
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
                let p = PoissonNoise::new(p.i0)?
                    .with_mu_scale(LODOPAB_MU_MAX * LODOPAB_FOV_M / n_det)?;
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
pub fn simulate(op: &TaskOperator, noise: &TaskNoise, truth: &Tensor) -> Result<Tensor> {
    let x = truth.unsqueeze(0);
    op.op().check_input(&x)?;
    let mut y = noise.apply(&op.op().forward(&x)?)?;
    if let Some(m) = op.measurement_mask(y.device())? {
        y = y.f_mul(&m)?;
    }
    Ok(y.squeeze_dim(0))
}

/// `out` with `_suffix` before `.npy`: `meas.npy` → `meas_mask.npy`.
pub fn side_path(out: &Path, suffix: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".npy").unwrap_or(&name);
    out.with_file_name(format!("{stem}_{suffix}.npy"))
}

/// Checks an output path for [`write_measurement`]: ends in `.npy`.
pub fn check_measurement_path(out: &Path) -> Result<()> {
    let ok = out
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(".npy"))
        .unwrap_or(false);
    if !ok {
        return Err(Error::Config(format!(
            "--out {}: the measurement is written as NPY; name a FILE.npy",
            out.display()
        )));
    }
    Ok(())
}

/// The files [`write_measurement`] writes for `op` at `out`: the measurement, then its side
/// files.
pub fn measurement_files(op: &TaskOperator, out: &Path) -> Vec<PathBuf> {
    let mut files = vec![out.to_path_buf()];
    let sides: &[&str] = match op {
        TaskOperator::Ct(_) => &["angles", "mask"],
        TaskOperator::Mri(_) => &["mask"],
        TaskOperator::Sense(_) => &["mask", "maps"],
        TaskOperator::Inpaint(_) => &["mask"],
        TaskOperator::Colorize(_) => &[],
    };
    files.extend(sides.iter().map(|s| side_path(out, s)));
    files
}

/// Writes the measurement `y` (`A.output_shape()`, see the module table) and its side files
/// ([`measurement_files`]); returns every path written.
pub fn write_measurement(op: &TaskOperator, y: &Tensor, out: &Path) -> Result<Vec<PathBuf>> {
    check_measurement_path(out)?;
    let y = y.to_device(Device::Cpu);
    let mut written = vec![out.to_path_buf()];
    match op {
        TaskOperator::Ct(a) => {
            let sino = io::tensor_to_array::<f32>(&y.squeeze_dim(0))?;
            io::npy::write_npy(out, &sino)?;
            let angles = Array1::from(a.angles_deg().to_vec());
            let p = side_path(out, "angles");
            io::npy::write_npy(&p, &angles)?;
            written.push(p);
            let mut mask = Array1::<f32>::zeros(a.full_angles_deg().len());
            for &i in a.kept_indices() {
                mask[i] = 1.0;
            }
            let p = side_path(out, "mask");
            io::npy::write_npy(&p, &mask)?;
            written.push(p);
        }
        TaskOperator::Mri(_) | TaskOperator::Sense(_) => {
            let k = if matches!(op, TaskOperator::Mri(_)) {
                y.squeeze_dim(0)
            } else {
                y
            };
            io::npy::write_npy(out, &io::tensor_to_complex_array(&k)?)?;
            let m = op.sampling_mask().expect("mri has a mask");
            let p = side_path(out, "mask");
            io::npy::write_npy(&p, m.array())?;
            written.push(p);
            if let TaskOperator::Sense(s) = op {
                let maps = s.coil_maps();
                let z: ArrayD<Complex<f32>> = ndarray::Zip::from(maps.re())
                    .and(maps.im())
                    .map_collect(|&re, &im| Complex::new(re as f32, im as f32))
                    .into_dyn();
                let p = side_path(out, "maps");
                io::npy::write_npy(&p, &z)?;
                written.push(p);
            }
        }
        TaskOperator::Inpaint(a) => {
            io::npy::write_npy(out, &io::tensor_to_array::<f32>(&y)?)?;
            let m = a.mask_array().index_axis(Axis(0), 0).to_owned();
            let p = side_path(out, "mask");
            io::npy::write_npy(&p, &m)?;
            written.push(p);
        }
        TaskOperator::Colorize(g) => {
            let gray = g.gray_from_measurement(&y.unsqueeze(0))?.squeeze_dim(0);
            io::npy::write_npy(out, &io::tensor_to_array::<f32>(&gray.squeeze_dim(0))?)?;
        }
    }
    Ok(written)
}

/// A real measurement with its operator: `y` is `[1] ++ A.output_shape()`.
pub struct Measurement {
    /// Case name (the file stem).
    pub name: String,
    pub op: TaskOperator,
    pub y: Tensor,
}

fn stem(path: &Path) -> String {
    let n = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "measurement".into());
    let n = n.split('#').next().unwrap_or(&n).to_string();
    for ext in [".nii.gz", ".npy", ".png", ".tif", ".tiff", ".nii", ".dcm"] {
        if let Some(s) = n.strip_suffix(ext) {
            return s.to_string();
        }
    }
    n
}

fn ensure_finite_complex(a: &ArrayD<Complex<f32>>, what: &str) -> Result<()> {
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

/// A real sinogram `[N, n_views]` (or `[1, N, n_views]`, npy) with its angles: the kept
/// angles in degrees from `angles_file` (1-D npy), or `views` of a grid of `angles`.
pub fn load_ct_measurement(
    path: &Path,
    views: usize,
    angles: usize,
    angles_file: Option<&Path>,
    filter: FbpFilter,
    device: Device,
) -> Result<Measurement> {
    let what = format!("sinogram {}", path.display());
    let a = io::ensure_3d(io::npy::read_npy_f32(path)?, &what)?;
    io::ensure_finite(&a, &what)?;
    let (c, n_det, n_ang) = a.dim();
    if c != 1 {
        return Err(Error::Shape {
            what,
            expected: "[N, n_views] (one sinogram: detector bins × angles)".into(),
            actual: format!("[{c}, {n_det}, {n_ang}]"),
        });
    }
    let op = match angles_file {
        Some(p) => {
            let deg = io::npy::read_npy_f64(p)?;
            let deg: Vec<f64> = deg.iter().copied().collect();
            if deg.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite(format!("angles {}", p.display())));
            }
            if deg.len() != n_ang {
                return Err(Error::Shape {
                    what: format!("angles {} for {what}", p.display()),
                    expected: format!("{n_ang} angles (the sinogram's columns)"),
                    actual: format!("{} angles", deg.len()),
                });
            }
            ParallelBeamRadon::new(n_det, deg, Kind::Float, device)?
        }
        None => {
            if n_ang != views {
                return Err(Error::Shape {
                    what,
                    expected: format!("{views} angles (columns) for --views {views}"),
                    actual: format!("{n_ang} angles [{n_det}, {n_ang}]"),
                });
            }
            ParallelBeamRadon::sparse_view(n_det, views, angles, Kind::Float, device)?
        }
    }
    .with_filter(filter);
    let y = io::array_to_tensor(&a).unsqueeze(0).to_device(device);
    Ok(Measurement {
        name: stem(path),
        op: TaskOperator::Ct(op),
        y,
    })
}

/// Real k-space (npy complex64/128, `[H, W]` single coil or `[coils, H, W]`), its 0/1 sampling
/// mask `[H, W]` (required) and, for several coils, the coil maps `[coils, H, W]` (complex npy).
pub fn load_mri_measurement(
    path: &Path,
    mask: Option<&Path>,
    coil_maps: Option<&Path>,
    device: Device,
) -> Result<Measurement> {
    let what = format!("k-space {}", path.display());
    let k = io::npy::read_npy_complex(path)?;
    ensure_finite_complex(&k, &what)?;
    let shape = k.shape().to_vec();
    let (coils, h, w) = match shape.len() {
        2 => (1, shape[0], shape[1]),
        3 => (shape[0], shape[1], shape[2]),
        _ => {
            return Err(Error::Shape {
                what,
                expected: "[H, W] (single coil) or [coils, H, W]".into(),
                actual: format!("{shape:?}"),
            })
        }
    };
    let mask_path = mask.ok_or_else(|| {
        Error::Config(format!(
            "{what}: k-space needs its sampling mask: pass --mask FILE (a 0/1 [H, W] array, \
             e.g. the _mask.npy written by `scoreinv simulate mri`)"
        ))
    })?;
    let m = read_mask_file(mask_path)?;
    check_mask_dims(mask_path, m.dim(), (h, w), "the k-space")?;
    let mask = SamplingMask::from_array(m, format!("file {}", mask_path.display()))?;
    let op = match (coils, coil_maps) {
        (1, None) => TaskOperator::Mri(MriFourier::new(mask, 1)?),
        (_, Some(p)) => {
            let s = io::npy::read_npy_complex(p)?;
            ensure_finite_complex(&s, &format!("coil maps {}", p.display()))?;
            if s.shape() != [coils, h, w] {
                return Err(Error::Shape {
                    what: format!("coil maps {}", p.display()),
                    expected: format!("[{coils}, {h}, {w}] (the k-space's coils and size)"),
                    actual: format!("{:?}", s.shape()),
                });
            }
            let re = s.mapv(|z| z.re as f64).into_dimensionality().expect("3-D");
            let im = s.mapv(|z| z.im as f64).into_dimensionality().expect("3-D");
            TaskOperator::Sense(SenseMri::new(CoilMaps::from_parts(re, im)?, mask)?)
        }
        (c, None) => {
            return Err(Error::Config(format!(
                "{what}: multi-coil k-space ({c} coils) needs --coil-maps FILE ([{c}, {h}, {w}] \
                 complex npy, e.g. the _maps.npy written by `scoreinv simulate mri --coils {c}`)"
            )))
        }
    };
    let k3 = k
        .into_shape_with_order(vec![op.op().output_shape()[0] as usize, h, w])
        .map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    let y = io::complex_array_to_tensor(&k3)
        .unsqueeze(0)
        .to_device(device);
    // Measured entries only: what lies outside the mask is not a measurement.
    let y = match op.measurement_mask(device)? {
        Some(m) => y.f_mul(&m)?,
        None => y,
    };
    Ok(Measurement {
        name: stem(path),
        op,
        y,
    })
}

/// A real inpainting measurement: an image `[C, H, W]` (png, tif, npy) whose missing pixels are
/// anything, and its 0/1 mask `[H, W]` (1 = observed; required).
pub fn load_inpaint_measurement(
    path: &Path,
    mask: Option<&Path>,
    device: Device,
) -> Result<Measurement> {
    let what = format!("image {}", path.display());
    let img = io::read_image(path)?;
    io::ensure_finite(&img.data, &what)?;
    let (c, h, w) = img.data.dim();
    let mask_path = mask.ok_or_else(|| {
        Error::Config(format!(
            "{what}: inpainting needs the mask of observed pixels: pass --mask FILE (0/1 \
             [H, W], 1 = observed, e.g. the _mask.npy written by `scoreinv simulate inpaint`)"
        ))
    })?;
    let m = read_mask_file(mask_path)?;
    check_mask_dims(mask_path, m.dim(), (h, w), "the image")?;
    let op = TaskOperator::Inpaint(Masking::from_2d(m, c)?);
    let x: Array3<f32> = img.data;
    let y = op
        .op()
        .forward(&io::array_to_tensor(&x).unsqueeze(0))?
        .to_device(device);
    Ok(Measurement {
        name: stem(path),
        op,
        y,
    })
}

/// A real colorization measurement: a gray image `[H, W]` (png, tif, npy; `mean(R, G, B)` in
/// `[0, 1]`), turned into the operator's measurement `√3 · gray`.
pub fn load_colorize_measurement(path: &Path, device: Device) -> Result<Measurement> {
    let what = format!("gray image {}", path.display());
    let img = io::read_image(path)?;
    io::ensure_finite(&img.data, &what)?;
    let (c, h, w) = img.data.dim();
    if c != 1 {
        return Err(Error::Shape {
            what,
            expected: "a gray image [H, W] (colorize reconstructs RGB from one channel)".into(),
            actual: format!("{c} channels [{c}, {h}, {w}]"),
        });
    }
    let g = Grayscale::new(h, w)?;
    let y = g
        .measurement_from_gray(&io::array_to_tensor(&img.data).unsqueeze(0))?
        .to_device(device);
    Ok(Measurement {
        name: stem(path),
        op: TaskOperator::Colorize(g),
        y,
    })
}

/// One reconstruction of a real measurement.
pub struct Reconstruction {
    pub method: String,
    /// `[C, H, W]`, on the CPU, in the measurement's units (not clamped).
    pub image: Tensor,
    pub seconds: f64,
}

/// Runs each method on a real measurement (CT/MRI normalised by the peak of `|A⁺ y|`, see the
/// module docs).
pub fn reconstruct_measurement(
    m: &Measurement,
    methods: &[&dyn Method],
) -> Result<Vec<Reconstruction>> {
    let op = m.op.op();
    op.check_output(&m.y)?;
    let scale = match m.op.kind() {
        TaskKind::Ct | TaskKind::Mri => {
            let p = op.pseudo_inverse(&m.y)?.abs().max().double_value(&[]);
            if p.is_finite() && p > 0.0 {
                p
            } else {
                1.0
            }
        }
        _ => 1.0,
    };
    let y = &m.y / scale;
    let mut out = Vec::new();
    for method in methods {
        let t0 = Instant::now();
        let r = method.reconstruct(op, &y)?.get(0) * scale;
        let r = r.to_device(Device::Cpu);
        out.push(Reconstruction {
            method: method.name(),
            image: r,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    Ok(out)
}

/// Writes `<name>.png` (every reconstruction side by side, jointly scaled so the brightest
/// panel peaks at 1 if any exceeds 1, negatives clipped) and `<name>_<method>.npy` (raw values).
pub fn write_reconstructions(
    out: &mut crate::io::output::OutputDir,
    name: &str,
    recons: &[Reconstruction],
) -> Result<()> {
    if recons.is_empty() {
        return Ok(());
    }
    let mut names = vec![format!("{name}.png")];
    names.extend(recons.iter().map(|r| format!("{name}_{}.npy", r.method)));
    out.register(&names)?;
    let dir = out.path();
    let panels: Vec<Tensor> = recons.iter().map(|r| r.image.shallow_clone()).collect();
    let stack = Tensor::stack(&panels, 0).to_kind(Kind::Float);
    let peak = stack.max().double_value(&[]).max(1.0);
    let stack = (stack / peak).clamp(0.0, 1.0);
    let opts = GridOptions {
        nrow: panels.len(),
        padding: 2,
        pad_value: 1.0,
        ..GridOptions::default()
    };
    io::save_grid_png(dir.join(format!("{name}.png")), &stack, &opts)?;
    for r in recons {
        let a = io::tensor_to_array::<f32>(&r.image)?;
        io::npy::write_npy(&dir.join(format!("{name}_{}.npy", r.method)), &a)?;
    }
    Ok(())
}
