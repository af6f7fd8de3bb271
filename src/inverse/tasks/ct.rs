//! Sparse-view parallel-beam CT: `views` of `angles` uniformly spaced angles over `[0°, 180°)`
//! (23 of 180 as in Song, Shen, Xing & Ermon 2022), `A` the Radon transform restricted to the
//! kept views, FBP (`filter`) as `A⁺`.
use super::{check_chw, stem, Measurement, Task, TaskConfig, TaskOperator};
use crate::inverse::baselines::{tv_preset, Baseline, TvConfig, TV_LAMBDA_CT};
use crate::inverse::projection::ProjectionConfig;
use crate::io;
use crate::{Error, Result};
use ndarray::Array1;
use scoreinv_operators::radon::ParallelBeamRadon;
use scoreinv_operators::{FbpFilter, LinearOperator};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Sparse-view CT settings (defaults: Song et al. 2022's 23 of 180 views, ramp filter).
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(default)]
pub struct CtConfig {
    /// Number of kept views (uniformly spread over the full grid).
    #[arg(long, default_value_t = 23, value_parser = crate::config::positive_usize)]
    pub views: usize,
    /// Number of angles of the full-view grid over [0°, 180°).
    #[arg(long, default_value_t = 180, value_parser = crate::config::positive_usize)]
    pub angles: usize,
    /// FBP filter: ramp, shepp-logan, cosine, hamming, hann.
    #[arg(long, default_value = "ramp")]
    pub filter: FbpFilter,
    /// With a real measurement: the kept angles in degrees (1-D npy, e.g. the `_angles.npy` of
    /// `scoreinv simulate ct`), instead of `views` of `angles`.
    #[arg(long = "angles-file")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub angles_file: Option<PathBuf>,
}

impl Default for CtConfig {
    fn default() -> Self {
        Self {
            views: 23,
            angles: 180,
            filter: FbpFilter::default(),
            angles_file: None,
        }
    }
}

impl TaskConfig for CtConfig {
    const NAME: &'static str = "ct";
    const ABOUT: &'static str = "Sparse-view parallel-beam CT.";
}

impl Task for CtConfig {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
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
        let op = ParallelBeamRadon::sparse_view(
            shape[1] as usize,
            self.views,
            self.angles,
            Kind::Float,
            device,
        )?
        .with_filter(self.filter);
        Ok(Box::new(CtOperator(Arc::new(op))))
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
    fn normalise_measurement(&self) -> bool {
        true
    }
    fn projection_config(&self) -> ProjectionConfig {
        ProjectionConfig::ct()
    }
    /// A real sinogram `[N, n_views]` (or `[1, N, n_views]`, npy) with its angles: the kept
    /// angles in degrees from `angles_file` (1-D npy), or `views` of a grid of `angles`.
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
        let op = match &self.angles_file {
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
                match on_grid(&deg, self.angles) {
                    // Views of the task's grid (as `simulate` writes them): the same operator
                    // as a study's, whose projection sampler works on the whole grid.
                    Some(kept) => ParallelBeamRadon::subset(
                        n_det,
                        scoreinv_operators::radon::full_view_angles(self.angles),
                        kept,
                        Kind::Float,
                        device,
                    )?,
                    None => ParallelBeamRadon::new(n_det, deg, Kind::Float, device)?,
                }
            }
            None => {
                if n_ang != self.views {
                    return Err(Error::Shape {
                        what,
                        expected: format!(
                            "{} angles (columns) for `views` {}",
                            self.views, self.views
                        ),
                        actual: format!("{n_ang} angles [{n_det}, {n_ang}]"),
                    });
                }
                ParallelBeamRadon::sparse_view(n_det, self.views, self.angles, Kind::Float, device)?
            }
        }
        .with_filter(self.filter);
        let y = io::array_to_tensor(&a).unsqueeze(0).to_device(device);
        Ok(Measurement {
            name: stem(path),
            op: Box::new(CtOperator(Arc::new(op))),
            y,
            normalise: self.normalise_measurement(),
        })
    }
}

/// The indices of `deg` in the grid of `n_angles` uniform angles over `[0°, 180°)`, when every
/// angle lies on it (within 1e-6°) in increasing order.
fn on_grid(deg: &[f64], n_angles: usize) -> Option<Vec<usize>> {
    let step = 180.0 / n_angles as f64;
    let mut kept = Vec::with_capacity(deg.len());
    for &d in deg {
        let k = (d / step).round();
        if k < 0.0 || k >= n_angles as f64 || (d - k * step).abs() > 1e-6 {
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

/// The Radon operator of a CT task.
struct CtOperator(Arc<ParallelBeamRadon>);

impl TaskOperator for CtOperator {
    fn op(&self) -> Arc<dyn LinearOperator> {
        self.0.clone()
    }
    fn describe(&self) -> String {
        let a = &self.0;
        format!(
            "sparse-view CT: {} of {} views, {}×{} images",
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
        let a = &self.0;
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
