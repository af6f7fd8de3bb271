//! Additive Gaussian measurement noise `y = A x + n`, `n ~ N(0, (σ · max|A x|)²)`.
//!
//! `σ` is relative to the peak magnitude of each clean measurement in the batch (per sample,
//! over all its channels and pixels), so one `σ` means the same noise level for CT sinograms,
//! k-space and images. For complex measurements (k-space) the noise is circular complex
//! Gaussian with total variance `(σ · peak)²`, split equally: real and imaginary parts each have
//! standard deviation `σ · peak / √2` (so `E|n|² = (σ · peak)²`), as in PyTorch's `randn` for
//! complex dtypes.
//!
//! Random numbers come from libtorch's CPU generator (seed it with `tch::manual_seed`) and are
//! then moved to the measurement's device, so a seeded simulation study sees the same noisy
//! measurements on the CPU and on a GPU (CUDA's generator draws other numbers for the same
//! seed) and GPU results can be compared case by case with CPU baselines.
//!
//! [`NoiseModel`] parses `none`, `gaussian:SIGMA` (e.g. `gaussian:0.005`) and
//! `poisson:I0[:MU]` (photon counts on CT sinograms, [`crate::noise::PoissonNoise`]: `I0`
//! incident photons per detector bin, `MU` attenuation per unit of line integral, default 1).
//! Poisson noise applies only to real line integrals (CT sinograms); complex measurements
//! (k-space) are refused.
use std::fmt;
use std::str::FromStr;

use tch::Tensor;

use crate::noise::PoissonNoise;
use crate::{OperatorError, Result};

/// Additive Gaussian noise with standard deviation `sigma · max|y|` per sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianNoise {
    sigma: f64,
}

impl GaussianNoise {
    /// `sigma` relative to the per-sample peak, finite and `>= 0`.
    pub fn new(sigma: f64) -> Result<Self> {
        if !sigma.is_finite() || sigma < 0.0 {
            return Err(OperatorError::Invalid(format!(
                "gaussian noise: sigma must be finite and >= 0, got {sigma}"
            )));
        }
        Ok(Self { sigma })
    }

    /// The relative noise level.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// Absolute noise standard deviation per sample, `σ · max|y_b|`, shape `[B]` (real kind).
    pub fn noise_std(&self, y: &Tensor) -> Result<Tensor> {
        check_measurement(y)?;
        let peak = y
            .f_abs()?
            .f_flatten(1, -1)?
            .f_amax([1i64].as_slice(), false)?;
        Ok(peak.f_mul_scalar(self.sigma)?)
    }

    /// `y + n`. Errors on non-floating or non-finite input, or a scalar/0-d tensor.
    pub fn apply(&self, y: &Tensor) -> Result<Tensor> {
        check_measurement(y)?;
        let finite = y.f_isfinite()?.f_all()?.f_int64_value(&[])? != 0;
        if !finite {
            return Err(OperatorError::NonFinite("clean measurement".into()));
        }
        if self.sigma == 0.0 {
            return Ok(y.copy());
        }
        let mut shape = vec![y.size()[0]];
        shape.extend(std::iter::repeat_n(1, y.dim() - 1));
        let std = self.noise_std(y)?.f_view(shape.as_slice())?;
        // randn on a complex kind has E|n|² = 1 (each part variance 1/2). Drawn on the CPU:
        // the same numbers on every device (see the module doc).
        let n = Tensor::f_randn(y.size().as_slice(), (y.kind(), tch::Device::Cpu))?
            .f_to_device(y.device())?;
        Ok(y.f_add(&n.f_mul(&std)?)?)
    }
}

fn check_measurement(y: &Tensor) -> Result<()> {
    if y.dim() < 1 {
        return Err(OperatorError::Invalid(
            "noise: measurement must have a batch dimension".into(),
        ));
    }
    crate::mri::complex_kind("noise", y.kind())?;
    Ok(())
}

/// A measurement noise model, parsed from `none`, `gaussian:SIGMA` or `poisson:I0[:MU]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NoiseModel {
    /// Noiseless measurements.
    None,
    /// [`GaussianNoise`].
    Gaussian(GaussianNoise),
    /// [`PoissonNoise`] on real line integrals (CT sinograms only).
    Poisson(PoissonNoise),
}

impl NoiseModel {
    /// Adds the noise to a clean measurement batch (a copy for `None`).
    pub fn apply(&self, y: &Tensor) -> Result<Tensor> {
        match self {
            NoiseModel::None => {
                check_measurement(y)?;
                Ok(y.copy())
            }
            NoiseModel::Gaussian(g) => g.apply(y),
            NoiseModel::Poisson(p) => {
                check_measurement(y)?;
                if y.is_complex() {
                    return Err(OperatorError::Invalid(format!(
                        "poisson noise models photon counts on real line integrals (CT \
                         sinograms); the measurement is complex ({:?}): use gaussian:SIGMA",
                        y.kind()
                    )));
                }
                p.apply(y)
            }
        }
    }
}

impl FromStr for NoiseModel {
    type Err = OperatorError;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "none" {
            return Ok(NoiseModel::None);
        }
        if let Some(arg) = t.strip_prefix("gaussian:") {
            let sigma: f64 = arg.parse().map_err(|_| {
                OperatorError::Invalid(format!(
                    "bad noise spec '{s}': '{arg}' is not a number (expected gaussian:SIGMA, \
                     e.g. gaussian:0.005)"
                ))
            })?;
            return Ok(NoiseModel::Gaussian(GaussianNoise::new(sigma)?));
        }
        if let Some(arg) = t.strip_prefix("poisson:") {
            let parts: Vec<&str> = arg.split(':').collect();
            let num = |v: &str, what: &str| -> Result<f64> {
                v.parse().map_err(|_| {
                    OperatorError::Invalid(format!(
                        "bad noise spec '{s}': '{v}' is not a number ({what}; expected \
                         poisson:I0 or poisson:I0:MU, e.g. poisson:4096)"
                    ))
                })
            };
            if parts.len() > 2 {
                return Err(OperatorError::Invalid(format!(
                    "bad noise spec '{s}': expected poisson:I0 or poisson:I0:MU"
                )));
            }
            let mut p = PoissonNoise::new(num(parts[0], "incident photons I0")?)?;
            if let Some(mu) = parts.get(1) {
                p = p.with_mu_scale(num(mu, "attenuation scale MU")?)?;
            }
            return Ok(NoiseModel::Poisson(p));
        }
        Err(OperatorError::Invalid(format!(
            "bad noise spec '{s}': expected none, gaussian:SIGMA (e.g. gaussian:0.005) or \
             poisson:I0[:MU] (e.g. poisson:4096)"
        )))
    }
}

impl fmt::Display for NoiseModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoiseModel::None => write!(f, "none"),
            NoiseModel::Gaussian(g) => write!(f, "gaussian:{}", g.sigma),
            NoiseModel::Poisson(p) if p.mu_scale == 1.0 => write!(f, "poisson:{}", p.i0),
            NoiseModel::Poisson(p) => write!(f, "poisson:{}:{}", p.i0, p.mu_scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn parses_specs_and_rejects_bad_ones() {
        assert_eq!("none".parse::<NoiseModel>().unwrap(), NoiseModel::None);
        let g: NoiseModel = "gaussian:0.005".parse().unwrap();
        assert_eq!(g, NoiseModel::Gaussian(GaussianNoise::new(0.005).unwrap()));
        assert_eq!(g.to_string().parse::<NoiseModel>().unwrap(), g);
        for bad in [
            "gaussian",
            "gaussian:x",
            "gaussian:-1",
            "gaussian:nan",
            "poisson",
            "poisson:0",
            "poisson:x",
            "poisson:100:-1",
            "poisson:1:2:3",
        ] {
            assert!(bad.parse::<NoiseModel>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn parses_poisson_and_round_trips_display() {
        let p: NoiseModel = "poisson:4096".parse().unwrap();
        assert_eq!(p, NoiseModel::Poisson(PoissonNoise::new(4096.0).unwrap()));
        assert_eq!(p.to_string(), "poisson:4096");
        let q: NoiseModel = "Poisson:1000:0.05".parse().unwrap();
        let want = PoissonNoise::new(1000.0)
            .unwrap()
            .with_mu_scale(0.05)
            .unwrap();
        assert_eq!(q, NoiseModel::Poisson(want));
        assert_eq!(q.to_string().parse::<NoiseModel>().unwrap(), q);
    }

    #[test]
    fn poisson_refuses_complex_and_perturbs_real_sinograms() {
        let p: NoiseModel = "poisson:1000".parse().unwrap();
        let k = Tensor::zeros([1, 1, 4, 4], (Kind::ComplexFloat, Device::Cpu));
        let err = p.apply(&k).unwrap_err().to_string();
        assert!(err.contains("real line integrals"), "{err}");
        // y = 0.5 everywhere: mean count 1000·e^-0.5 ≈ 607, so the log-count has std
        // ≈ 1/√607 ≈ 0.04 per entry; the mean over 4096 entries is within 0.005 of 0.5
        // (≈ 8 standard errors), and the entries are not all equal to 0.5.
        tch::manual_seed(3);
        let y = Tensor::full([1, 1, 64, 64], 0.5, (Kind::Double, Device::Cpu));
        let n = p.apply(&y).unwrap();
        let mean = n.mean(None).double_value(&[]);
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
        let std = n.std(true).double_value(&[]);
        assert!((std / 0.0406 - 1.0).abs() < 0.1, "std {std}");
    }

    #[test]
    fn real_noise_std_is_sigma_times_per_sample_peak() {
        tch::manual_seed(0);
        // Two samples with peaks 2 and 10; 200k entries each so the sample std is within
        // ~0.3% (std of a sample std ≈ 1/√(2n)); assert 2%.
        let n = 200_000;
        let y = Tensor::zeros([2, 1, n], (Kind::Double, Device::Cpu));
        let _ = y.get(0).get(0).get(0).fill_(2.0);
        let _ = y.get(1).get(0).get(0).fill_(-10.0);
        let noisy = GaussianNoise::new(0.1).unwrap().apply(&y).unwrap();
        let diff = (&noisy - &y).narrow(2, 1, n - 1);
        for (b, peak) in [(0, 2.0), (1, 10.0)] {
            let s = diff.get(b).std(true).double_value(&[]);
            assert!((s / (0.1 * peak) - 1.0).abs() < 0.02, "sample {b}: std {s}");
            let m = diff.get(b).mean(None).double_value(&[]);
            assert!(m.abs() < 0.02 * 0.1 * peak, "sample {b}: mean {m}");
        }
    }

    #[test]
    fn complex_noise_splits_variance_over_real_and_imaginary_parts() {
        tch::manual_seed(1);
        let n = 200_000;
        let y = Tensor::zeros([1, 1, n], (Kind::ComplexFloat, Device::Cpu));
        let _ = y.get(0).get(0).get(0).fill_(4.0);
        let noisy = GaussianNoise::new(0.05).unwrap().apply(&y).unwrap();
        assert_eq!(noisy.kind(), Kind::ComplexFloat);
        let d = (&noisy - &y).narrow(2, 1, n - 1);
        let target = 0.05 * 4.0 / 2f64.sqrt();
        for part in [d.real(), d.imag()] {
            let s = part.to_kind(Kind::Double).std(true).double_value(&[]);
            assert!((s / target - 1.0).abs() < 0.02, "std {s} vs {target}");
        }
    }

    #[test]
    fn rejects_nan_and_integer_measurements() {
        let g = GaussianNoise::new(0.01).unwrap();
        let y = Tensor::from_slice(&[1.0f32, f32::NAN]).view([1, 2]);
        assert!(matches!(g.apply(&y), Err(OperatorError::NonFinite(_))));
        let yi = Tensor::from_slice(&[1i64, 2]).view([1, 2]);
        assert!(g.apply(&yi).is_err());
    }
}
