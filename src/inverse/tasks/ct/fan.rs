//! Fan-beam CT from a geometry file (`geometry`, a [`FanGeometryConfig`] in TOML, documented
//! field by field in the CT task's module doc): the operator [`FanBeam`] of the file's source
//! angles, its measurement files, and measured sinograms.
use super::range::AnglesRange;
use super::{CtConfig, ANGLE_MATCH_DEG};
use crate::inverse::baselines::{tv_preset, TvConfig, TV_LAMBDA_CT};
use crate::inverse::tasks::{side_path, TaskOperator};
use crate::io;
use crate::{Error, Result};
use ndarray::Array1;
use scoreinv_operators::{FanBeam, FanGeometry, FanGeometryConfig, LinearOperator};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// The side file of a measurement `Y.npy` holding its geometry: `Y_geometry.toml`.
pub const GEOMETRY_SIDE_FILE: &str = "geometry.toml";

/// Reads and validates a geometry file: TOML syntax, no unknown or missing field, and the
/// checks of [`FanGeometry::new`] (source outside the image, detector beyond the isocentre and
/// wide enough for the field of view, finite angles). Errors name the file and the field.
pub fn read_geometry_file(path: &Path) -> Result<FanGeometryConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "`geometry` {}: cannot read the fan-beam geometry file: {e}",
            path.display()
        ))
    })?;
    let cfg: FanGeometryConfig = toml::from_str(&text).map_err(|e| {
        Error::Config(format!(
            "`geometry` {}: not a valid fan-beam geometry file: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    FanGeometry::new(cfg.clone()).map_err(|e| {
        Error::Config(format!(
            "`geometry` {}: invalid geometry: {e}",
            path.display()
        ))
    })?;
    Ok(cfg)
}

/// The geometry file's image size must be the images': the operator maps `N × N` images of
/// `pixel_spacing_mm` pixels.
fn check_image_size(cfg: &FanGeometryConfig, path: &Path, n: usize) -> Result<()> {
    if cfg.image_size != n {
        return Err(Error::Config(format!(
            "`geometry` {}: image_size = {} but the images are {n}×{n}; set image_size = {n} \
             (with the pixel_spacing_mm of those pixels) or resample the images with `size` {}",
            path.display(),
            cfg.image_size,
            cfg.image_size
        )));
    }
    Ok(())
}

/// The fan-beam operator of a simulation or study on `n × n` images: `views` of the file's
/// angles (spread as [`FanBeam::sparse_view`] spreads them), or with `angles_range` every
/// angle of the file in the range.
pub(super) fn operator(
    ct: &CtConfig,
    path: &Path,
    n: usize,
    device: Device,
) -> Result<Box<dyn TaskOperator>> {
    let cfg = read_geometry_file(path)?;
    check_image_size(&cfg, path, n)?;
    let op = match &ct.angles_range {
        Some(r) => {
            let kept = r.select(&cfg.angles_deg, 360.0, &angles_of(path))?;
            FanBeam::subset(cfg, kept, Kind::Float, device)?
        }
        None => {
            let total = cfg.angles_deg.len();
            if ct.views > total {
                return Err(Error::Config(format!(
                    "`views` {} exceeds the {total} source angles (angles_deg) of `geometry` {}",
                    ct.views,
                    path.display()
                )));
            }
            FanBeam::sparse_view(cfg, ct.views, Kind::Float, device)?
        }
    }
    .with_filter(ct.filter)?;
    Ok(Box::new(FanCtOperator::new(op, path, ct.angles_range)))
}

fn angles_of(path: &Path) -> String {
    format!("the angles_deg of {}", path.display())
}

/// The operator of a measured fan-beam sinogram with `n_det × n_views` entries: its columns
/// are the file's angles, in the file's order; with `angles_file` they are those angles of the
/// file (which then is the scan's full angle list, as `simulate` read it: the projection
/// sampler works on all of it), with `angles_range` the file's angles in the range.
pub(super) fn measured_operator(
    ct: &CtConfig,
    path: &Path,
    n_det: usize,
    n_views: usize,
    what: &str,
    device: Device,
) -> Result<FanBeam> {
    let cfg = read_geometry_file(path)?;
    if n_det != cfg.n_detectors {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: format!(
                "{} rows (n_detectors of `geometry` {})",
                cfg.n_detectors,
                path.display()
            ),
            actual: format!("{n_det} rows [{n_det}, {n_views}]"),
        });
    }
    let (kept, from) = match (&ct.angles_file, &ct.angles_range) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "`angles_file` lists the measured angles; `angles_range` cannot select others"
                    .into(),
            ))
        }
        (Some(p), None) => (
            kept_from_angles_file(p, &cfg.angles_deg, path, n_views)?,
            format!("the angles of `angles_file` {}", p.display()),
        ),
        (None, Some(r)) => (
            r.select(&cfg.angles_deg, 360.0, &angles_of(path))?,
            format!("the angles_deg of `geometry` {} in [{r})", path.display()),
        ),
        (None, None) => (
            (0..cfg.angles_deg.len()).collect(),
            format!("the angles_deg of `geometry` {}", path.display()),
        ),
    };
    if kept.len() != n_views {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: format!("{} columns ({from})", kept.len()),
            actual: format!("{n_views} columns [{n_det}, {n_views}]"),
        });
    }
    Ok(FanBeam::subset(cfg, kept, Kind::Float, device)?.with_filter(ct.filter)?)
}

/// The indices in `grid` (a geometry file's angles) of the angles of `angles_file`, in
/// increasing order; each must be one of the file's (within [`ANGLE_MATCH_DEG`]).
fn kept_from_angles_file(
    p: &Path,
    grid: &[f64],
    geometry: &Path,
    n_views: usize,
) -> Result<Vec<usize>> {
    let deg: Vec<f64> = io::npy::read_npy_f64(p)?.iter().copied().collect();
    if deg.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!("angles {}", p.display())));
    }
    if deg.len() != n_views {
        return Err(Error::Shape {
            what: format!("`angles_file` {}", p.display()),
            expected: format!("{n_views} angles (the sinogram's columns)"),
            actual: format!("{} angles", deg.len()),
        });
    }
    let mut kept: Vec<usize> = Vec::with_capacity(deg.len());
    for (i, &d) in deg.iter().enumerate() {
        let k = grid
            .iter()
            .position(|&g| (g - d).abs() <= ANGLE_MATCH_DEG)
            .ok_or_else(|| {
                Error::Config(format!(
                    "`angles_file` {}: angle {i} ({d}°) is none of the angles_deg of \
                     `geometry` {}",
                    p.display(),
                    geometry.display()
                ))
            })?;
        if let Some(&prev) = kept.last() {
            if k <= prev {
                return Err(Error::Config(format!(
                    "`angles_file` {}: angle {i} ({d}°) comes before angle {} ({}°) in the \
                     angles_deg of `geometry` {}; list the measured angles in the file's order",
                    p.display(),
                    i - 1,
                    deg[i - 1],
                    geometry.display()
                )));
            }
        }
        kept.push(k);
    }
    Ok(kept)
}

/// A fan-beam CT operator with what its measurement files need.
pub(super) struct FanCtOperator {
    op: Arc<FanBeam>,
    /// The geometry file it was read from.
    source: PathBuf,
    range: Option<AnglesRange>,
}

impl FanCtOperator {
    pub(super) fn new(op: FanBeam, source: &Path, range: Option<AnglesRange>) -> Self {
        FanCtOperator {
            op: Arc::new(op),
            source: source.to_path_buf(),
            range,
        }
    }

    /// `Y_geometry.toml`: the file's geometry with `angles_deg` the measured views, in the
    /// sinogram's column order, so that it alone reconstructs `Y.npy`.
    fn geometry_toml(&self, out: &Path) -> Result<String> {
        let meas = self.op.measured_geometry().config();
        let body = toml::to_string(meas)
            .map_err(|e| Error::Invalid(format!("fan geometry to TOML: {e}")))?;
        let file_name = |p: &Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().replace(|c: char| c.is_control(), "?"))
                .unwrap_or_default()
        };
        let kept: Vec<String> = self
            .op
            .kept_indices()
            .iter()
            .map(|i| i.to_string())
            .collect();
        let kept: Vec<String> = kept
            .chunks(20)
            .map(|c| format!("#   {}", c.join(", ")))
            .collect();
        Ok(format!(
            "# Fan-beam geometry of the sinogram {} (written by `scoreinv simulate ct`): its \
             columns are the\n# source angles angles_deg below, in this order. Of the {} \
             angles_deg of {}, they are angles\n{}\n# Units: mm, degrees (detector_pitch: \
             degrees for a curved detector, mm for a flat one), detector_offset in bins.\n{body}",
            file_name(out),
            self.op.geometry().n_angles(),
            file_name(&self.source),
            kept.join("\n"),
        ))
    }
}

impl TaskOperator for FanCtOperator {
    fn op(&self) -> Arc<dyn LinearOperator> {
        self.op.clone()
    }
    fn describe(&self) -> String {
        let g = self.op.geometry();
        let c = g.config();
        let pitch = match c.detector {
            scoreinv_operators::DetectorShape::Curved => format!("{}°", c.detector_pitch),
            scoreinv_operators::DetectorShape::Flat => format!("{} mm", c.detector_pitch),
        };
        let views = match &self.range {
            Some(r) => format!("limited angle [{r}): "),
            None => String::new(),
        };
        format!(
            "fan-beam CT ({} detector, {} bins of {pitch}, source–isocentre {} mm, \
             source–detector {} mm): {views}{} of {} views, {}×{} images of {} mm",
            c.detector.name(),
            c.n_detectors,
            c.source_to_isocenter_mm,
            c.source_to_detector_mm,
            self.op.kept_indices().len(),
            g.n_angles(),
            g.n(),
            g.n(),
            c.pixel_spacing_mm
        )
    }
    fn tv_config(&self) -> TvConfig {
        tv_preset(TV_LAMBDA_CT)
    }
    fn side_files(&self) -> Vec<&'static str> {
        vec!["angles", "mask", GEOMETRY_SIDE_FILE]
    }
    fn line_integral_unit_m(&self) -> Option<f64> {
        // Image values times millimetres: one unit of line integral is 1 mm of value 1.
        Some(1e-3)
    }
    fn write_measurement(&self, y: &Tensor, out: &Path) -> Result<()> {
        let sino = io::tensor_to_array::<f32>(&y.squeeze_dim(0))?;
        io::npy::write_npy(out, &sino)?;
        let angles = Array1::from(self.op.measured_geometry().angles_deg().to_vec());
        io::npy::write_npy(&side_path(out, "angles"), &angles)?;
        let mut mask = Array1::<f32>::zeros(self.op.geometry().n_angles());
        for &i in self.op.kept_indices() {
            mask[i] = 1.0;
        }
        io::npy::write_npy(&side_path(out, "mask"), &mask)?;
        let toml = self.geometry_toml(out)?;
        io::atomic::write_bytes(&side_path(out, GEOMETRY_SIDE_FILE), toml.as_bytes())
    }
}
