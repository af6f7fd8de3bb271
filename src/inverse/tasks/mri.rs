//! Undersampled MRI: `A = M F` (single coil, orthonormal 2-D FFT, 0/1 sampling mask `M`) or
//! SENSE `A = M F S` with coil maps `S` (Pruessmann et al. 1999); fastMRI's 1-D Cartesian
//! masks (4× with an 8 % centre by default), and 2-D Gaussian, Poisson-disc and radial masks.
//!
//! **Raw k-space** (`measurement` a fastMRI file `FILE.h5[#z=K]`, [`crate::io::fastmri`]): the
//! mask is the file's `mask` (else its non-zero ky columns) and the coil maps are estimated from
//! the fully sampled k-space centre, by ESPIRiT (`coil_maps` `espirit`, the default; Uecker et
//! al. 2014, sigpy's `EspiritCalib` settings) or as low-resolution sum-of-squares maps (`sos`),
//! or read from a file. The calibration region is the largest centred square the mask samples
//! fully, at most 24 (`calib_width`).
//!
//! **Phase.** The priors are magnitude priors on real images in `[0, 1]`, while MR images are
//! complex, `x = ρ e^{iφ}`. The smooth image phase `φ` is absorbed into the coil maps, as
//! reference SENSE/ESPIRiT pipelines that reconstruct magnitude images do: ESPIRiT maps are
//! phase-normalised to coil 0, the remaining low-resolution phase of the coil-combined
//! calibration image is estimated (Hann-windowed centre) and multiplied into the maps
//! ([`scoreinv_operators::espirit::absorb_image_phase`]; sum-of-squares maps already carry
//! it). The image to reconstruct is then real and non-negative, `ρ`, and `A = M F S` acts on
//! real images as for simulated data: the same real-valued operator and the same prior serve
//! simulated and raw measurements. This holds because the phase of MR images is smooth (coil
//! phase, B0 and receiver phase vary slowly); what it misses (fast phase, e.g. flow) shows up
//! as signal loss rather than being modelled. The reconstructions are magnitude images `ρ` in
//! the k-space's scale. A single-coil file gets one "coil map" `e^{iφ}`.
use super::{
    check_chw, check_mask_dims, ensure_finite_complex, read_mask_file, stem, Measurement, Task,
    TaskConfig, TaskOperator,
};
use crate::inverse::baselines::{mri_tv_lambda, tv_preset, Baseline, TvConfig};
use crate::inverse::projection::ProjectionConfig;
use crate::io;
use crate::{Error, Result};
use ndarray::ArrayD;
use num_complex::Complex;
use scoreinv_operators::masks::MaskSpec;
use scoreinv_operators::mri::CoilMaps;
use crate::io::budget;
use scoreinv_operators::espirit::{self, EspiritConfig};
use scoreinv_operators::{synthetic_coil_maps, LinearOperator, MriFourier, SamplingMask, SenseMri};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

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

impl std::fmt::Display for MriMaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MriMaskKind::Random => "random",
            MriMaskKind::Equispaced => "equispaced",
            MriMaskKind::EquispacedFixed => "equispaced-fixed",
            MriMaskKind::Gaussian2d => "gaussian2d",
            MriMaskKind::Poisson => "poisson",
            MriMaskKind::Radial => "radial",
        })
    }
}

/// Undersampled MRI settings: fastMRI's 4× with 8 % centre by default; `coils > 1` is SENSE
/// with [`synthetic_coil_maps`]; `mask_file` replaces the generated mask.
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(default)]
pub struct MriConfig {
    /// Target acceleration R of a generated mask (the true one is printed).
    #[arg(long = "accel", default_value_t = 4.0)]
    pub acceleration: f64,
    /// Fully sampled centre fraction (default 0.32/R: 0.08 at R = 4, fastMRI).
    #[arg(long = "center-fraction")]
    pub center_fraction: Option<f64>,
    /// Generated mask: random, equispaced, equispaced-fixed, gaussian2d, poisson, radial.
    #[arg(long = "mask-kind", default_value = "random")]
    pub mask_kind: MriMaskKind,
    /// Radial lines (default: the count closest to the acceleration).
    #[arg(long)]
    pub lines: Option<usize>,
    /// Receive coils of a simulation: 1 = single coil, more = SENSE with synthetic maps.
    #[arg(long, default_value_t = 1, value_parser = crate::config::positive_usize)]
    pub coils: usize,
    /// A 0/1 [H, W] sampling mask file (npy, png). Required with a real k-space npy (a fastMRI
    /// .h5 file carries its own); in a simulation it replaces the generated mask.
    #[arg(long = "mask")]
    pub mask_file: Option<PathBuf>,
    /// Coil maps of a real measurement: `espirit` (ESPIRiT, the default for .h5 files), `sos`
    /// (low-resolution sum of squares) or a FILE [coils, H, W] (complex npy).
    #[arg(long = "coil-maps")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coil_maps: Option<PathBuf>,
    /// ESPIRiT's calibration region (default: 24, or the fully sampled k-space centre if
    /// smaller).
    #[arg(long = "calib-width")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calib_width: Option<usize>,
}

impl Default for MriConfig {
    fn default() -> Self {
        Self {
            acceleration: 4.0,
            center_fraction: None,
            mask_kind: MriMaskKind::default(),
            lines: None,
            coils: 1,
            mask_file: None,
            coil_maps: None,
            calib_width: None,
        }
    }
}

impl TaskConfig for MriConfig {
    const NAME: &'static str = "mri";
    const ABOUT: &'static str = "Undersampled MRI (single coil or SENSE).";
}

impl Task for MriConfig {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn baselines(&self) -> &'static [(&'static str, Baseline)] {
        &[("zero-filled", Baseline::ZeroFilled), ("tv", Baseline::Tv)]
    }
    fn check_image(&self, name: &str, shape: &[i64]) -> Result<()> {
        let (c, _, _) = check_chw("mri", name, shape)?;
        if c != 1 {
            return Err(Error::Config(format!(
                "MRI needs gray (magnitude) images; '{name}' has {c} channels"
            )));
        }
        Ok(())
    }
    fn operator(&self, shape: &[i64], seed: u64, device: Device) -> Result<Box<dyn TaskOperator>> {
        let _ = device;
        self.check_image("ground truth", shape)?;
        if self.coils == 0 {
            return Err(Error::Config("`coils` must be at least 1".into()));
        }
        let (c, h, w) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        let mask = match &self.mask_file {
            Some(p) => {
                let m = read_mask_file(p)?;
                check_mask_dims(p, m.dim(), (h, w), "the images")?;
                SamplingMask::from_array(m, format!("file {}", p.display()))?
            }
            None => mri_mask(self, h, w, seed)?,
        };
        Ok(if self.coils > 1 {
            let maps = synthetic_coil_maps(self.coils, h, w, seed)?;
            Box::new(MriOperator::Sense(
                Arc::new(SenseMri::new(maps, mask)?),
                "synthetic maps".into(),
            ))
        } else {
            Box::new(MriOperator::Single(Arc::new(MriFourier::new(mask, c)?)))
        })
    }
    fn measurement_files_given(&self) -> Vec<(&'static str, PathBuf)> {
        let mut v: Vec<(&'static str, PathBuf)> = self
            .coil_maps
            .iter()
            .map(|p| ("coil_maps", p.clone()))
            .collect();
        if self.calib_width.is_some() {
            v.push(("calib_width", PathBuf::new()));
        }
        v
    }
    fn input_files(&self) -> Vec<PathBuf> {
        self.mask_file.iter().cloned().collect()
    }
    fn normalise_measurement(&self) -> bool {
        true
    }
    fn projection_config(&self) -> ProjectionConfig {
        ProjectionConfig::mri()
    }
    /// Real k-space: a fastMRI file `FILE.h5[#z=K]` (see the module doc), or npy complex64/128,
    /// `[H, W]` single coil or `[coils, H, W]`, with its 0/1 sampling mask `[H, W]`
    /// (`mask_file`, required) and, for several coils, the coil maps (`coil_maps`: a complex npy
    /// `[coils, H, W]`, or `espirit` / `sos` to estimate them).
    fn read_measurement(&self, path: &Path, device: Device) -> Result<Measurement> {
        if io::fastmri::is_hdf5(path) {
            return self.read_fastmri(path, device);
        }
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
        let mask_path = self.mask_file.as_deref().ok_or_else(|| {
            Error::Config(format!(
                "{what}: k-space needs its sampling mask: pass `mask_file` (a 0/1 [H, W] array, \
                 e.g. the _mask.npy written by `scoreinv simulate mri`)"
            ))
        })?;
        let m = read_mask_file(mask_path)?;
        check_mask_dims(mask_path, m.dim(), (h, w), "the k-space")?;
        let mask = SamplingMask::from_array(m, format!("file {}", mask_path.display()))?;
        let k3 = k
            .into_shape_with_order(vec![coils, h, w])
            .map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
        let y = io::complex_array_to_tensor(&k3).to_device(device);
        let y = y.f_mul(&mask.to_tensor(Kind::Float, device)?)?;
        let op = match (coils, self.coil_map_source()) {
            (1, None) => MriOperator::Single(Arc::new(MriFourier::new(mask, 1)?)),
            // Maps given for simulated real images: used as they are.
            (_, Some(CoilMapSource::File(p))) => {
                let maps = read_maps_file(&p, coils, h, w)?;
                MriOperator::Sense(
                    Arc::new(SenseMri::new(maps, mask)?),
                    format!("maps {}", p.display()),
                )
            }
            (_, Some(source)) => self.estimated_sense(&y, mask, &source, &what)?,
            (c, None) => {
                return Err(Error::Config(format!(
                    "{what}: multi-coil k-space ({c} coils) needs `coil_maps`: espirit, sos or a \
                     file ([{c}, {h}, {w}] complex npy, e.g. the _maps.npy written by `scoreinv \
                     simulate mri` with `coils` {c})"
                )))
            }
        };
        Ok(Measurement {
            name: stem(path),
            op: Box::new(op),
            y: y.unsqueeze(0),
            normalise: self.normalise_measurement(),
        })
    }
}

/// Where the coil maps of a real measurement come from (`coil_maps`).
#[derive(Debug, Clone, PartialEq)]
pub enum CoilMapSource {
    /// ESPIRiT ([`scoreinv_operators::espirit`]).
    Espirit,
    /// Low-resolution sum-of-squares maps.
    Sos,
    /// A complex npy `[coils, H, W]`.
    File(PathBuf),
}

impl MriConfig {
    /// `coil_maps` read as a source: the words `espirit` and `sos` (a file of that name is
    /// `./espirit`), else a file.
    pub fn coil_map_source(&self) -> Option<CoilMapSource> {
        self.coil_maps.as_ref().map(|p| match p.to_str() {
            Some("espirit") => CoilMapSource::Espirit,
            Some("sos") => CoilMapSource::Sos,
            _ => CoilMapSource::File(p.clone()),
        })
    }

    /// The calibration width for a k-space whose mask samples a centred `acs`² block fully:
    /// `calib_width` (refused if larger than `acs`), else `min(24, acs)`.
    fn calibration_width(&self, acs: usize, what: &str) -> Result<usize> {
        if acs == 0 {
            return Err(Error::Config(format!(
                "{what}: the mask samples no k-space centre, so coil maps and the image phase \
                 cannot be estimated from the data"
            )));
        }
        match self.calib_width {
            Some(c) if c == 0 || c > acs => Err(Error::Config(format!(
                "`calib_width` {c}: {what} is fully sampled only in its central {acs}×{acs} \
                 block; choose 1 to {acs}"
            ))),
            Some(c) => Ok(c),
            None => Ok(EspiritConfig::default().calib_width.min(acs)),
        }
    }

    /// SENSE with estimated maps (`source` ESPIRiT or sum of squares) for measured k-space
    /// `y` `[coils, H, W]`, the image phase absorbed into the maps (see the module doc).
    fn estimated_sense(
        &self,
        y: &Tensor,
        mask: SamplingMask,
        source: &CoilMapSource,
        what: &str,
    ) -> Result<MriOperator> {
        let size = y.size();
        let (coils, h, w) = (size[0], size[1], size[2]);
        let acs = centre_block(mask.array());
        let cw = self.calibration_width(acs, what)?;
        let (maps, how) = match source {
            CoilMapSource::Espirit if coils == 1 => (
                Tensor::f_ones([1, h, w], (Kind::ComplexFloat, y.device()))?,
                "unit map (one coil)".to_string(),
            ),
            CoilMapSource::Espirit => {
                let cfg = EspiritConfig {
                    calib_width: cw,
                    ..EspiritConfig::default()
                };
                if cfg.kernel_width > cw {
                    return Err(Error::Config(format!(
                        "{what}: ESPIRiT needs a fully sampled centre of at least {k}×{k} (its \
                         kernel); this mask samples {acs}×{acs}: use `coil_maps` sos or a file",
                        k = cfg.kernel_width
                    )));
                }
                // The per-pixel C × C matrices and the work arrays beside them.
                let bytes = budget::bytes_for(&[h as usize, w as usize, coils as usize, coils as usize], 8 * 3)
                    .unwrap_or(u128::MAX);
                budget::check_alloc(bytes, &format!("ESPIRiT for {coils} coils on {h}×{w}"))?;
                let maps = espirit::espirit_maps(y, &cfg)?;
                if maps.f_abs()?.f_max()?.f_double_value(&[])? == 0.0 {
                    return Err(Error::Config(format!(
                        "{what}: ESPIRiT kept no pixel (every eigenvalue is at most its crop \
                         {}; calibration {cw}×{cw}): use `coil_maps` sos or a file",
                        cfg.crop
                    )));
                }
                (maps, format!("ESPIRiT maps (calibration {cw}×{cw})"))
            }
            CoilMapSource::Sos => (
                espirit::sos_maps(y, cw, true)?,
                format!("sum-of-squares maps (calibration {cw}×{cw})"),
            ),
            CoilMapSource::File(p) => (
                read_maps_file(p, coils as usize, h as usize, w as usize)?
                    .to_tensor(Kind::ComplexFloat, y.device())?,
                format!("maps {}", p.display()),
            ),
        };
        let maps = espirit::absorb_image_phase(&maps, y, cw)?;
        Ok(MriOperator::Sense(
            Arc::new(SenseMri::new(CoilMaps::from_tensor(&maps)?, mask)?),
            format!("{how}, image phase absorbed"),
        ))
    }

    /// A fastMRI file: mask from the file, maps estimated (ESPIRiT by default) or read.
    fn read_fastmri(&self, path: &Path, device: Device) -> Result<Measurement> {
        if let Some(p) = &self.mask_file {
            return Err(Error::Config(format!(
                "`mask_file` {}: a fastMRI file carries its sampling (its `mask`, else its \
                 non-zero ky columns)",
                p.display()
            )));
        }
        let slice = io::fastmri::read_slice(path)?;
        let (_, h, w) = slice.kspace.dim();
        let what = format!("k-space {}", path.display());
        let cols = slice.column_mask();
        let n = cols.iter().filter(|&&v| v == 1.0).count();
        let origin = if slice.mask.is_some() {
            "the file's mask"
        } else {
            "its non-zero columns"
        };
        let m2 = ndarray::Array2::from_shape_fn((h, w), |(_, j)| cols[j]);
        let mask = SamplingMask::from_array(m2, format!("{n} of {w} ky columns ({origin})"))?;
        let y = io::complex_array_to_tensor(&slice.kspace).to_device(device);
        let y = y.f_mul(&mask.to_tensor(Kind::Float, device)?)?;
        let source = self.coil_map_source().unwrap_or(CoilMapSource::Espirit);
        let op = self.estimated_sense(&y, mask, &source, &what)?;
        Ok(Measurement {
            name: slice.name(),
            op: Box::new(op),
            y: y.unsqueeze(0),
            normalise: self.normalise_measurement(),
        })
    }
}

/// The side of the largest centred square (`[H/2 − n/2, H/2 − n/2 + n)`, likewise in W) that
/// a mask samples fully; these squares are nested, so the search stops at the first gap.
pub fn centre_block(mask: &ndarray::Array2<f32>) -> usize {
    let (h, w) = mask.dim();
    let mut best = 0;
    for n in 1..=h.min(w) {
        let (r, c) = (h / 2 - n / 2, w / 2 - n / 2);
        if mask
            .slice(ndarray::s![r..r + n, c..c + n])
            .iter()
            .all(|&v| v == 1.0)
        {
            best = n;
        } else {
            break;
        }
    }
    best
}

/// Coil maps from a complex npy `[coils, H, W]`.
fn read_maps_file(p: &Path, coils: usize, h: usize, w: usize) -> Result<CoilMaps> {
    let s = io::npy::read_npy_complex(p)?;
    ensure_finite_complex(&s, &format!("coil maps {}", p.display()))?;
    if s.shape() != [coils, h, w] {
        return Err(Error::Shape {
            what: format!("coil maps {}", p.display()),
            expected: format!("[{coils}, {h}, {w}] (the k-space's coils and size)"),
            actual: format!("{:?}", s.shape()),
        });
    }
    let to3 = |a: ArrayD<f64>| {
        a.into_dimensionality::<ndarray::Ix3>()
            .map_err(|e| Error::format(p, format!("coil maps: {e}")))
    };
    let re = to3(s.mapv(|z| z.re as f64))?;
    let im = to3(s.mapv(|z| z.im as f64))?;
    Ok(CoilMaps::from_parts(re, im)?)
}

/// Builds a generated MRI mask (see [`MriConfig`]).
pub fn mri_mask(cfg: &MriConfig, h: usize, w: usize, seed: u64) -> Result<SamplingMask> {
    let r = cfg.acceleration;
    if !(r.is_finite() && r >= 1.0) {
        return Err(Error::Config(format!(
            "`acceleration` must be a number >= 1, got {r}"
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
                    "mask kind equispaced-fixed needs an integer `acceleration`, got {r}"
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

/// The operator of an MRI task: single coil or SENSE (with where its maps come from).
enum MriOperator {
    Single(Arc<MriFourier>),
    Sense(Arc<SenseMri>, String),
}

impl MriOperator {
    fn mask(&self) -> &SamplingMask {
        match self {
            MriOperator::Single(a) => a.sampling_mask(),
            MriOperator::Sense(a, _) => a.sampling_mask(),
        }
    }
}

impl TaskOperator for MriOperator {
    fn op(&self) -> Arc<dyn LinearOperator> {
        match self {
            MriOperator::Single(a) => a.clone(),
            MriOperator::Sense(a, _) => a.clone(),
        }
    }
    fn describe(&self) -> String {
        let m = self.mask();
        let coils = match self {
            MriOperator::Sense(s, how) => {
                let c = s.coil_maps().dim().0;
                format!("SENSE, {c} coil{}, {how}", if c == 1 { "" } else { "s" })
            }
            MriOperator::Single(_) => "single coil".into(),
        };
        format!(
            "MRI ({coils}): mask {} on {}×{}, true acceleration {:.3} ({} of {} k-space points)",
            m.description(),
            m.dim().0,
            m.dim().1,
            m.acceleration(),
            m.n_sampled(),
            m.dim().0 * m.dim().1
        )
    }
    /// The MRI preset with its weight chosen by the mask's true acceleration
    /// ([`mri_tv_lambda`]).
    fn tv_config(&self) -> TvConfig {
        tv_preset(mri_tv_lambda(self.mask().acceleration()))
    }
    fn measurement_mask(&self, device: Device) -> Result<Option<Tensor>> {
        Ok(Some(self.mask().to_tensor(Kind::Float, device)?))
    }
    fn side_files(&self) -> Vec<&'static str> {
        match self {
            MriOperator::Single(_) => vec!["mask"],
            MriOperator::Sense(..) => vec!["mask", "maps"],
        }
    }
    fn write_measurement(&self, y: &Tensor, out: &Path) -> Result<()> {
        let k = match self {
            MriOperator::Single(_) => y.squeeze_dim(0),
            MriOperator::Sense(..) => y.shallow_clone(),
        };
        io::npy::write_npy(out, &io::tensor_to_complex_array(&k)?)?;
        io::npy::write_npy(&super::side_path(out, "mask"), self.mask().array())?;
        if let MriOperator::Sense(s, _) = self {
            let maps = s.coil_maps();
            let z: ArrayD<Complex<f32>> = ndarray::Zip::from(maps.re())
                .and(maps.im())
                .map_collect(|&re, &im| Complex::new(re as f32, im as f32))
                .into_dyn();
            io::npy::write_npy(&super::side_path(out, "maps"), &z)?;
        }
        Ok(())
    }
    fn sampling_mask(&self) -> Option<&SamplingMask> {
        Some(self.mask())
    }
}
