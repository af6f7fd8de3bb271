//! Deblurring: `A x = h ∗ x`, the convolution of every channel with a Gaussian of standard
//! deviation `sigma` pixels (scipy's `gaussian_filter` kernel, truncated at 4σ) or a user PSF,
//! with circular or zero boundary ([`scoreinv_operators::Blur`], by FFT). With circular
//! boundary `A = F⁻¹ diag(Ĥ) F` is [`scoreinv_operators::Decomposed`] with `T = F` and the
//! Wiener gain `Λ = |Ĥ|² / (|Ĥ|² + ε)`, so the projection and replacement samplers apply (a
//! soft projection, the spectral view of DDRM, Kawar et al. 2022); DPS applies to either
//! boundary. Baselines: the Wiener filter `Ĥ* / (|Ĥ|² + ε)` (the operator's pseudo-inverse)
//! and TV.
use super::{check_chw, stem, Measurement, Task, TaskConfig, TaskOperator};
use crate::inverse::baselines::{tv_preset, Baseline, TvConfig};
use crate::inverse::projection::ProjectionConfig;
use crate::io;
use crate::{Error, Result};
use scoreinv_operators::{Blur, Boundary, LinearOperator};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Tensor};

/// TV weight for deblurring (relative to `‖A‖² = 1`), chosen on validation images (Fashion-MNIST
/// test images 1000–1015, Gaussian σ = 2 px, circular, 1 % noise; the evaluation uses 0–15):
/// see `docs/results/deblur-validation.csv` (`scripts/eval/deblur_validation`).
pub const TV_LAMBDA_DEBLUR: f64 = 1e-4;

/// Default `ε` of the Wiener gain: the projection sampler's best on the validation images
/// (with λ = [`LAMBDA_DEBLUR`]); the Wiener filter alone does best there with 1e-3.
pub const EPSILON_DEBLUR: f64 = 3e-2;

/// The projection sampler's weight λ for deblurring, chosen on the same validation images.
pub const LAMBDA_DEBLUR: f64 = 0.6;

/// Deblurring settings (defaults: Gaussian blur of σ = 2 px, circular boundary, Wiener
/// `ε` = [`EPSILON_DEBLUR`] chosen on validation images with 1 % noise).
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(default)]
pub struct DeblurConfig {
    /// Standard deviation of the Gaussian blur in pixels (unless --psf is given).
    #[arg(long = "blur-sigma", default_value_t = 2.0)]
    pub sigma: f64,
    /// A point-spread function [k, k'] (npy, odd sides; normalised to sum 1) instead of the
    /// Gaussian.
    #[arg(long)]
    pub psf: Option<PathBuf>,
    /// Boundary: circular (the score samplers need it) or zero.
    #[arg(long, default_value = "circular")]
    pub boundary: Boundary,
    /// Regularisation ε of the Wiener filter Ĥ*/(|Ĥ|² + ε) (the baseline, and the score
    /// samplers' soft projection; the default is the projection sampler's validated value, the
    /// Wiener filter alone does best with about 1e-3).
    #[arg(long = "wiener-eps", default_value_t = EPSILON_DEBLUR)]
    pub epsilon: f64,
}

impl Default for DeblurConfig {
    fn default() -> Self {
        Self {
            sigma: 2.0,
            psf: None,
            boundary: Boundary::Circular,
            epsilon: EPSILON_DEBLUR,
        }
    }
}

impl DeblurConfig {
    /// The blur for images `[c, h, w]`.
    fn blur(&self, c: usize, h: usize, w: usize) -> Result<Blur> {
        let b = match &self.psf {
            Some(p) => {
                let a = io::npy::read_npy_f64(p)?;
                let a = a
                    .into_dimensionality::<ndarray::Ix2>()
                    .map_err(|_| Error::format(p, "a PSF must be a 2-D array [k, k']"))?;
                Blur::from_psf(a, self.boundary, c, h, w)
                    .map_err(|e| Error::format(p, e.to_string()))?
            }
            None => Blur::gaussian(self.sigma, self.boundary, c, h, w)?,
        };
        Ok(b.with_epsilon(self.epsilon)?)
    }
}

impl TaskConfig for DeblurConfig {
    const NAME: &'static str = "deblur";
    const ABOUT: &'static str = "Deblurring (Gaussian or PSF blur, circular or zero boundary).";
}

impl Task for DeblurConfig {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
    fn baselines(&self) -> &'static [(&'static str, Baseline)] {
        &[("wiener", Baseline::Fbp), ("tv", Baseline::Tv)]
    }
    fn check_image(&self, name: &str, shape: &[i64]) -> Result<()> {
        check_chw("deblur", name, shape).map(|_| ())
    }
    fn operator(
        &self,
        shape: &[i64],
        _seed: u64,
        _device: Device,
    ) -> Result<Box<dyn TaskOperator>> {
        self.check_image("ground truth", shape)?;
        let b = self.blur(shape[0] as usize, shape[1] as usize, shape[2] as usize)?;
        Ok(Box::new(DeblurOperator(Arc::new(b))))
    }
    fn default_noise(&self) -> &'static str {
        "gaussian:0.01"
    }
    fn projection_config(&self) -> ProjectionConfig {
        ProjectionConfig {
            lambda: LAMBDA_DEBLUR,
            ..ProjectionConfig::default()
        }
    }
    fn input_files(&self) -> Vec<PathBuf> {
        self.psf.iter().cloned().collect()
    }
    /// A blurred image `[C, H, W]` (png, tif, npy), blurred with this task's settings.
    fn read_measurement(&self, path: &Path, device: Device) -> Result<Measurement> {
        let what = format!("blurred image {}", path.display());
        let img = io::read_image(path)?;
        io::ensure_finite(&img.data, &what)?;
        let (c, h, w) = img.data.dim();
        let op = DeblurOperator(Arc::new(self.blur(c, h, w)?));
        let y = io::array_to_tensor(&img.data).unsqueeze(0).to_device(device);
        Ok(Measurement {
            name: stem(path),
            op: Box::new(op),
            y,
            normalise: false,
        })
    }
}

/// The blur of a deblurring task.
struct DeblurOperator(Arc<Blur>);

impl TaskOperator for DeblurOperator {
    fn op(&self) -> Arc<dyn LinearOperator> {
        self.0.clone()
    }
    fn describe(&self) -> String {
        let k = self.0.kernel();
        format!(
            "deblurring: {}×{} kernel, {} boundary, Wiener ε {}",
            k.nrows(),
            k.ncols(),
            self.0.boundary(),
            self.0.epsilon()
        )
    }
    fn tv_config(&self) -> TvConfig {
        tv_preset(TV_LAMBDA_DEBLUR)
    }
    fn write_measurement(&self, y: &Tensor, out: &Path) -> Result<()> {
        io::npy::write_npy(out, &io::tensor_to_array::<f32>(&y.squeeze_dim(0))?)
    }
}
