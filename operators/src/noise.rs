//! Poisson (photon-count) noise for CT sinograms.
//!
//! Beer–Lambert: a ray with line integral `y` (in units of pixel lengths of an image of
//! attenuation values) reaches the detector with mean photon count `I0 · exp(-μ · y)`, where
//! `μ` ([`PoissonNoise::mu_scale`]) converts "image value × pixel length" into attenuation
//! (e.g. `μ_max · pixel size`). The noisy measurement is the log-transformed count
//!
//! ```text
//! N ~ Poisson(I0 · exp(-μ y)),   y_noisy = -log(max(N, 1) / I0) / μ
//! ```
//!
//! so that `y_noisy ≈ y` for large `I0`. Counts are clamped to at least 1 photon so the
//! logarithm stays finite (photon starvation). This is the model of the LoDoPaB-CT benchmark
//! (Leuschner et al. 2021, Scientific Data 8:109), whose default is `I0 = 4096`.
//!
//! Randomness: [`PoissonNoise::apply`] draws with `Tensor::poisson` from libtorch's CPU
//! generator whatever the device of `y` (seed it with `tch::manual_seed`; that state is global
//! and shared by every thread), so seeded studies see the same counts on CPU and GPU.
//! [`PoissonNoise::apply_seeded`] instead draws on the host from a ChaCha8 stream seeded with
//! `seed` (`rand_distr::Poisson`), so its result depends only on `seed` and `y`: identical
//! across devices, threads and libtorch versions (it copies `y` to the host and back, which is
//! fine for simulating a measurement once).
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::{OperatorError, Result};

fn default_i0() -> f64 {
    4096.0
}

fn default_mu_scale() -> f64 {
    1.0
}

/// Poisson photon-count noise on line integrals (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoissonNoise {
    /// Mean incident photon count per detector bin (`I0`, default 4096 as LoDoPaB-CT).
    #[serde(default = "default_i0")]
    pub i0: f64,
    /// Attenuation per unit of line integral (`μ`), default 1.
    #[serde(default = "default_mu_scale")]
    pub mu_scale: f64,
}

impl Default for PoissonNoise {
    fn default() -> Self {
        PoissonNoise {
            i0: default_i0(),
            mu_scale: default_mu_scale(),
        }
    }
}

impl PoissonNoise {
    /// `I0` photons, `μ = 1`.
    pub fn new(i0: f64) -> Result<Self> {
        let noise = PoissonNoise {
            i0,
            mu_scale: default_mu_scale(),
        };
        noise.validate()?;
        Ok(noise)
    }

    /// With attenuation scale `mu_scale` (e.g. `μ_max · field of view / N` for images in
    /// `[0, 1]` of a physical field of view).
    pub fn with_mu_scale(mut self, mu_scale: f64) -> Result<Self> {
        self.mu_scale = mu_scale;
        self.validate()?;
        Ok(self)
    }

    /// Checks `I0 > 0` and `μ > 0`, both finite.
    pub fn validate(&self) -> Result<()> {
        if !(self.i0.is_finite() && self.i0 > 0.0) {
            return Err(OperatorError::Invalid(format!(
                "poisson noise: i0 (incident photons) must be finite and > 0, got {}",
                self.i0
            )));
        }
        if !(self.mu_scale.is_finite() && self.mu_scale > 0.0) {
            return Err(OperatorError::Invalid(format!(
                "poisson noise: mu_scale must be finite and > 0, got {}",
                self.mu_scale
            )));
        }
        Ok(())
    }

    /// Mean photon counts `I0 · exp(-μ y)`.
    pub fn expected_counts(&self, y: &Tensor) -> Result<Tensor> {
        Ok(y.f_mul_scalar(-self.mu_scale)?
            .f_exp()?
            .f_mul_scalar(self.i0)?)
    }

    /// A noisy copy of the line integrals `y` (any shape, floating kind, any device), drawn
    /// from libtorch's CPU generator (the same counts on every device).
    pub fn apply(&self, y: &Tensor) -> Result<Tensor> {
        self.validate()?;
        if !matches!(y.kind(), tch::Kind::Float | tch::Kind::Double) {
            return Err(OperatorError::Invalid(format!(
                "poisson noise: line integrals must be Float or Double, got {:?}",
                y.kind()
            )));
        }
        let finite = y.f_isfinite()?.f_all()?.f_int64_value(&[])?;
        if finite == 0 {
            return Err(OperatorError::NonFinite(
                "poisson noise: line integrals".into(),
            ));
        }
        // Poisson sampling in f64: f32 rates lose integer precision above 2^24 photons.
        let rate = self.expected_counts(&y.f_to_kind(tch::Kind::Double)?)?;
        let counts = rate
            .f_to_device(tch::Device::Cpu)?
            .f_poisson()?
            .f_to_device(y.device())?
            .f_clamp_min(1.0)?;
        Ok(counts
            .f_div_scalar(self.i0)?
            .f_log()?
            .f_mul_scalar(-1.0 / self.mu_scale)?
            .f_to_kind(y.kind())?)
    }

    /// A noisy copy of `y` drawn from a ChaCha8 stream seeded with `seed` (row-major order of
    /// `y`): reproducible on any device and thread.
    pub fn apply_seeded(&self, y: &Tensor, seed: u64) -> Result<Tensor> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Poisson};
        self.check(y)?;
        let rate = self.expected_counts(&y.f_to_kind(tch::Kind::Double)?)?;
        let rate = rate.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
        let numel = rate.numel();
        let mut lambda = vec![0f64; numel];
        rate.f_copy_data(&mut lambda, numel)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let noisy: Vec<f64> = lambda
            .iter()
            .map(|&l| {
                // Poisson::new refuses λ = 0 (underflow of exp(-μy)): no photons then.
                let counts = match Poisson::new(l) {
                    Ok(p) => p.sample(&mut rng),
                    Err(_) => 0.0,
                };
                -(counts.max(1.0) / self.i0).ln() / self.mu_scale
            })
            .collect();
        Ok(Tensor::f_from_slice(&noisy)?
            .f_reshape(y.size())?
            .f_to_kind(y.kind())?
            .f_to_device(y.device())?)
    }

    fn check(&self, y: &Tensor) -> Result<()> {
        self.validate()?;
        if !matches!(y.kind(), tch::Kind::Float | tch::Kind::Double) {
            return Err(OperatorError::Invalid(format!(
                "poisson noise: line integrals must be Float or Double, got {:?}",
                y.kind()
            )));
        }
        let finite = y.f_isfinite()?.f_all()?.f_int64_value(&[])?;
        if finite == 0 {
            return Err(OperatorError::NonFinite(
                "poisson noise: line integrals".into(),
            ));
        }
        Ok(())
    }
}
