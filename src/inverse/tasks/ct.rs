//! CT: sparse-view or limited-angle, parallel beam (the default) or fan beam (`geometry`).
//!
//! **Parallel beam.** `views` of `angles` uniformly spaced angles over `[0°, 180°)` (23 of 180
//! as in Song, Shen, Xing & Ermon 2022), `A` the Radon transform restricted to the kept views,
//! FBP (`filter`) as `A⁺`; pixel units (a line integral through one pixel of value 1 is 1).
//!
//! **Fan beam.** `geometry FILE.toml` describes a scanner (below); `A` is the fan-beam
//! transform [`FanBeam`] over `views` of the file's source angles, `A⁺` the weighted fan-beam
//! FBP (Parker weights for a short scan), and the score samplers decompose `A = Λ T` with `T`
//! the transform over all of the file's angles, exactly as for parallel beam. Images are the
//! file's `image_size × image_size` (a study's images must have that size); sinogram values
//! are line integrals of the image values over millimetres.
//!
//! **Limited angle.** `angles_range A:B` (degrees) keeps every angle of the full grid in
//! `[A, B)` instead of `views` of it: of the `angles` grid for parallel beam (compared modulo
//! 180°), of the file's angles for fan beam (modulo 360°, so `-30:30` wraps).
//!
//! **Sinogram layout.** Both geometries write and read sinograms `[N_det, n_views]`: one row
//! per detector bin, one column per view, views in the order of the kept angles.
//!
//! ## The geometry file
//!
//! TOML, every field required unless marked optional, unknown fields refused:
//!
//! | field | unit | meaning |
//! |---|---|---|
//! | `source_to_isocenter_mm` | mm | distance `D` from the X-ray source to the rotation centre; the source must lie outside the image (beyond its circumscribed radius `(⌊N/2⌋ + ½)·√2·pixel_spacing_mm`) |
//! | `source_to_detector_mm` | mm | distance from the source to the detector's centre, along the central ray; more than `source_to_isocenter_mm` |
//! | `n_detectors` | bins | number of detector bins `N_det` (the sinogram's rows), at least 2 |
//! | `detector` | — | `"curved"` (an arc about the source, bins equally spaced in fan angle: clinical CT) or `"flat"` (equispaced bins on a line: C-arm, dental, micro-CT) |
//! | `detector_pitch` | degrees (curved) or mm (flat) | spacing of the bins: fan angle per bin for a curved detector, bin width on the detector for a flat one |
//! | `detector_offset` | bins | optional, default 0: shift of the detector along its axis; the central ray meets bin `(N_det − 1)/2 − detector_offset` |
//! | `angles_deg` | degrees | source angles `β`, one per view, finite: a full scan (e.g. 360 angles over 360°), a short scan (180° + fan angle), or any list; the sinogram's columns in this order |
//! | `image_size` | pixels | image side `N`; must equal the images' |
//! | `pixel_spacing_mm` | mm | pixel side |
//!
//! Conventions ([`scoreinv_operators::geometry::fan`]): the isocentre is the centre of pixel
//! `(N/2, N/2)`; at `β = 0` the source is above the image (on the side of row 0) and it moves
//! counter-clockwise as `β` grows; bin indices grow along `(cos β, sin β)`. The fan must cover
//! the image's inscribed circle of radius `r = (N/2)·pixel_spacing_mm` from the centres of the
//! end bins: with `detector_offset` 0, a curved detector needs
//! `(N_det − 1)·pitch ≥ 2·asin(r / D)` (degrees), a flat one
//! `(N_det − 1)·pitch ≥ 2·source_to_detector_mm·tan(asin(r / D))`. A file that breaks any of this
//! is refused with its path and the field. Examples: `data/geometry/`.
//!
//! `simulate ct --geometry fan.toml --out Y.npy` writes `Y.npy` (`[N_det, n_views]` f32),
//! `Y_angles.npy` (the kept angles, degrees, f64), `Y_mask.npy` (`[n_angles]` 0/1 over the
//! file's angles) and `Y_geometry.toml`, the file with `angles_deg` the acquired views. A
//! measured sinogram is reconstructed with `reconstruct ct --measurement Y.npy --geometry
//! G.toml`: its columns are the angles of `G.toml` in order (or, with `angles_range`, those in
//! the range); `--geometry fan.toml --angles-file Y_angles.npy` names the measured views within
//! the full scan instead, so the projection sampler fills in the others.
//!
//! **Photon noise.** `poisson:I0` without `MU` takes images in `[0, 1]` as attenuation relative
//! to LoDoPaB-CT's `μ_max` ([`super::LODOPAB_MU_MAX`]): for parallel beam one unit of line
//! integral is one pixel of a 26 cm field of view, for fan beam one millimetre.
mod fan;
mod range;

pub use fan::{read_geometry_file, GEOMETRY_SIDE_FILE};
pub use range::AnglesRange;

use super::{check_chw, stem, Measurement, Task, TaskConfig, TaskOperator};
use crate::inverse::baselines::{tv_preset, Baseline, TvConfig, TV_LAMBDA_CT};
use crate::inverse::projection::ProjectionConfig;
use crate::io;
use crate::{Error, Result};
use ndarray::Array1;
use scoreinv_operators::radon::{full_view_angles, ParallelBeamRadon};
use scoreinv_operators::{FanBeam, FbpFilter, LinearOperator};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Measured angles match grid or file angles within this many degrees.
const ANGLE_MATCH_DEG: f64 = 1e-6;

/// CT settings (defaults: parallel beam, Song et al. 2022's 23 of 180 views, ramp filter).
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(default)]
pub struct CtConfig {
    /// Number of kept views (uniformly spread over the full grid: the `angles` grid, or the
    /// angles of the --geometry file).
    #[arg(long, default_value_t = 23, value_parser = crate::config::positive_usize)]
    pub views: usize,
    /// Number of angles of the parallel-beam full-view grid over [0°, 180°).
    #[arg(long, default_value_t = 180, value_parser = crate::config::positive_usize)]
    pub angles: usize,
    /// FBP filter: ramp, shepp-logan, cosine, hamming, hann.
    #[arg(long, default_value = "ramp")]
    pub filter: FbpFilter,
    /// With a real measurement: the kept angles in degrees (1-D npy, e.g. the `_angles.npy` of
    /// `scoreinv simulate ct`), instead of `views` of `angles` (parallel beam) or all of the
    /// --geometry file's angles (fan beam: then they must be angles of the file).
    #[arg(long = "angles-file")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub angles_file: Option<PathBuf>,
    /// Fan-beam CT: the scanner's geometry file (TOML: source_to_isocenter_mm,
    /// source_to_detector_mm, n_detectors, detector = "curved"|"flat", detector_pitch,
    /// detector_offset, angles_deg, image_size, pixel_spacing_mm; see the guide). Default:
    /// parallel beam.
    #[arg(long, value_name = "FILE.toml")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geometry: Option<PathBuf>,
    /// Limited angle: keep every angle of the full grid in [A, B) degrees (the --angles grid,
    /// or the --geometry file's angles) instead of --views of them, e.g. 0:120.
    #[arg(
        long = "angles-range",
        value_name = "A:B",
        allow_hyphen_values = true,
        conflicts_with_all = ["views", "angles_file"]
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub angles_range: Option<AnglesRange>,
}

impl Default for CtConfig {
    fn default() -> Self {
        Self {
            views: 23,
            angles: 180,
            filter: FbpFilter::default(),
            angles_file: None,
            geometry: None,
            angles_range: None,
        }
    }
}

impl TaskConfig for CtConfig {
    const NAME: &'static str = "ct";
    const ABOUT: &'static str =
        "CT: sparse-view or limited-angle, parallel beam or fan beam (--geometry).";
}

impl CtConfig {
    /// The parallel-beam full grid `angles` over `[0°, 180°)` and the kept indices: `views`
    /// spread over it, or those in `angles_range`.
    fn parallel_kept(&self) -> Result<(Vec<f64>, Vec<usize>)> {
        let full = full_view_angles(self.angles);
        let kept = match &self.angles_range {
            Some(r) => r.select(
                &full,
                180.0,
                &format!("the `angles` grid of {} over [0°, 180°)", self.angles),
            )?,
            None => {
                if self.views > self.angles {
                    return Err(Error::Config(format!(
                        "`views` {} exceeds `angles` {}: n_views must be in 1..={}",
                        self.views, self.angles, self.angles
                    )));
                }
                scoreinv_operators::geometry::sparse_view_indices(self.views, self.angles)?
            }
        };
        Ok((full, kept))
    }
}

impl Task for CtConfig {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// The settings, and with a geometry file its contents (`geometry_config`), so that a
    /// study records the scanner it simulated even if the file changes later.
    fn settings(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(g) = self.geometry.as_deref().and_then(|p| read_geometry_file(p).ok()) {
            if let (Some(o), Ok(g)) = (v.as_object_mut(), serde_json::to_value(g)) {
                o.insert("geometry_config".into(), g);
            }
        }
        v
    }
    fn baselines(&self) -> &'static [(&'static str, Baseline)] {
        &[("fbp", Baseline::Fbp), ("tv", Baseline::Tv)]
    }
    fn check_image(&self, name: &str, shape: &[i64]) -> Result<()> {
        let (c, h, w) = check_chw("ct", name, shape)?;
        if c != 1 {
            return Err(Error::Config(format!(
                "CT needs gray images; '{name}' has {c} channels"
            )));
        }
        if h != w {
            return Err(Error::Config(format!(
                "CT needs square images; '{name}' is {h}×{w} (resample with `size` N)"
            )));
        }
        Ok(())
    }
    fn operator(&self, shape: &[i64], _seed: u64, device: Device) -> Result<Box<dyn TaskOperator>> {
        self.check_image("ground truth", shape)?;
        let n = shape[1] as usize;
        if let Some(path) = &self.geometry {
            return fan::operator(self, path, n, device);
        }
        let (full, kept) = self.parallel_kept()?;
        let op = ParallelBeamRadon::subset(n, full, kept, Kind::Float, device)?
            .with_filter(self.filter);
        Ok(Box::new(CtOperator {
            op: Arc::new(op),
            range: self.angles_range,
        }))
    }
    fn default_noise(&self) -> &'static str {
        "gaussian:0.005"
    }
    fn photon_noise(&self) -> bool {
        true
    }
    fn measurement_files_given(&self) -> Vec<(&'static str, PathBuf)> {
        self.angles_file
            .iter()
            .map(|p| ("angles_file", p.clone()))
            .collect()
    }
    fn input_files(&self) -> Vec<PathBuf> {
        self.geometry.iter().cloned().collect()
    }
    fn normalise_measurement(&self) -> bool {
        true
    }
    fn projection_config(&self) -> ProjectionConfig {
        ProjectionConfig::ct()
    }
    /// A real sinogram `[N_det, n_views]` (or `[1, N_det, n_views]`, npy) with its angles.
    /// Parallel beam: the kept angles in degrees from `angles_file` (1-D npy), or `views` (or
    /// `angles_range`) of a grid of `angles`. Fan beam: the angles of the `geometry` file (see
    /// the module doc).
    fn read_measurement(&self, path: &Path, device: Device) -> Result<Measurement> {
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
        let op: Box<dyn TaskOperator> = match &self.geometry {
            Some(g) => {
                let op: FanBeam = fan::measured_operator(self, g, n_det, n_ang, &what, device)?;
                Box::new(fan::FanCtOperator::new(op, g, self.angles_range))
            }
            None => Box::new(CtOperator {
                op: Arc::new(self.parallel_measured(n_det, n_ang, &what, device)?),
                range: self.angles_range,
            }),
        };
        let y = io::array_to_tensor(&a).unsqueeze(0).to_device(device);
        Ok(Measurement {
            name: stem(path),
            op,
            y,
            normalise: self.normalise_measurement(),
        })
    }
}

impl CtConfig {
    /// The parallel-beam operator of a measured sinogram `[n_det, n_ang]`.
    fn parallel_measured(
        &self,
        n_det: usize,
        n_ang: usize,
        what: &str,
        device: Device,
    ) -> Result<ParallelBeamRadon> {
        let op = match &self.angles_file {
            Some(p) => {
                if self.angles_range.is_some() {
                    return Err(Error::Config(
                        "`angles_file` lists the measured angles; `angles_range` cannot select \
                         others"
                            .into(),
                    ));
                }
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
                match on_grid(&deg, self.angles) {
                    // Views of the task's grid (as `simulate` writes them): the same operator
                    // as a study's, whose projection sampler works on the whole grid.
                    Some(kept) => ParallelBeamRadon::subset(
                        n_det,
                        full_view_angles(self.angles),
                        kept,
                        Kind::Float,
                        device,
                    )?,
                    None => ParallelBeamRadon::new(n_det, deg, Kind::Float, device)?,
                }
            }
            None => {
                let (full, kept) = self.parallel_kept()?;
                if n_ang != kept.len() {
                    let by = match &self.angles_range {
                        Some(r) => format!(
                            "the angles of the `angles` grid of {} in `angles_range` {r}",
                            self.angles
                        ),
                        None => format!("`views` {}", self.views),
                    };
                    return Err(Error::Shape {
                        what: what.to_string(),
                        expected: format!("{} angles (columns) for {by}", kept.len()),
                        actual: format!("{n_ang} angles [{n_det}, {n_ang}]"),
                    });
                }
                ParallelBeamRadon::subset(n_det, full, kept, Kind::Float, device)?
            }
        };
        Ok(op.with_filter(self.filter))
    }
}

/// The indices of `deg` in the grid of `n_angles` uniform angles over `[0°, 180°)`, when every
/// angle lies on it (within 1e-6°) in increasing order.
fn on_grid(deg: &[f64], n_angles: usize) -> Option<Vec<usize>> {
    let step = 180.0 / n_angles as f64;
    let mut kept = Vec::with_capacity(deg.len());
    for &d in deg {
        let k = (d / step).round();
        if k < 0.0 || k >= n_angles as f64 || (d - k * step).abs() > ANGLE_MATCH_DEG {
            return None;
        }
        let k = k as usize;
        if kept.last().is_some_and(|&p| p >= k) {
            return None;
        }
        kept.push(k);
    }
    Some(kept)
}

/// The parallel-beam Radon operator of a CT task.
struct CtOperator {
    op: Arc<ParallelBeamRadon>,
    /// The limited-angle range it keeps, if any.
    range: Option<AnglesRange>,
}

impl TaskOperator for CtOperator {
    fn op(&self) -> Arc<dyn LinearOperator> {
        self.op.clone()
    }
    fn describe(&self) -> String {
        let a = &self.op;
        let kind = match &self.range {
            Some(r) => format!("limited-angle CT [{r})"),
            None => "sparse-view CT".into(),
        };
        format!(
            "{kind}: {} of {} views, {}×{} images",
            a.angles_deg().len(),
            a.full_angles_deg().len(),
            a.n(),
            a.n()
        )
    }
    fn tv_config(&self) -> TvConfig {
        tv_preset(TV_LAMBDA_CT)
    }
    fn side_files(&self) -> Vec<&'static str> {
        vec!["angles", "mask"]
    }
    fn write_measurement(&self, y: &Tensor, out: &Path) -> Result<()> {
        let a = &self.op;
        let sino = io::tensor_to_array::<f32>(&y.squeeze_dim(0))?;
        io::npy::write_npy(out, &sino)?;
        let angles = Array1::from(a.angles_deg().to_vec());
        io::npy::write_npy(&super::side_path(out, "angles"), &angles)?;
        let mut mask = Array1::<f32>::zeros(a.full_angles_deg().len());
        for &i in a.kept_indices() {
            mask[i] = 1.0;
        }
        io::npy::write_npy(&super::side_path(out, "mask"), &mask)
    }
}
