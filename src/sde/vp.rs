//! Variance-preserving SDE (Song et al. 2021, eq. 11; DDPM of Ho et al. 2020 in continuous time).
//!
//! `dx = −½ β(t) x dt + √β(t) dw`, `β(t) = β_min + t (β_max − β_min)`, so that
//! `x(t) | x(0) ~ N(e^{L(t)} x(0), (1 − e^{2L(t)}) I)` with
//! `L(t) = −¼ t² (β_max − β_min) − ½ t β_min`; prior `N(0, I)`. Its discretisation is the DDPM
//! chain with `β_i = linspace(β_min/N, β_max/N, N)`: `x_i = √(1−β_i) x_{i−1} + √β_i z`.

use super::{bcast, check_n, sum_sq, timestep_index, Sde, SdeKind};
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Variance-preserving SDE.
#[derive(Debug, Clone)]
pub struct VpSde {
    pub beta_min: f64,
    pub beta_max: f64,
    pub n: usize,
}

pub(crate) fn check_betas(name: &str, beta_min: f64, beta_max: f64) -> Result<()> {
    if !(beta_min > 0.0 && beta_max >= beta_min && beta_max.is_finite()) {
        return Err(Error::Config(format!(
            "{name} SDE needs 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}"
        )));
    }
    Ok(())
}

impl VpSde {
    /// Checks `0 < β_min ≤ β_max` and `n ≥ 1`.
    pub fn new(beta_min: f64, beta_max: f64, n: usize) -> Result<Self> {
        check_betas("VP", beta_min, beta_max)?;
        check_n(n)?;
        Ok(Self {
            beta_min,
            beta_max,
            n,
        })
    }

    /// β(t) elementwise.
    pub fn beta_t(&self, t: &Tensor) -> Tensor {
        t * (self.beta_max - self.beta_min) + self.beta_min
    }

    /// `L(t) = log m(t)`.
    pub fn log_mean_coeff(&self, t: f64) -> f64 {
        -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
    }

    fn log_mean_coeff_t(&self, t: &Tensor) -> Tensor {
        t.square() * (-0.25 * (self.beta_max - self.beta_min)) - t * (0.5 * self.beta_min)
    }

    /// `β_i` of [`Self::discrete_betas`] for a tensor of indices `i` (int64), on their device
    /// in f64 by the same formula (no table upload inside sampling loops).
    pub fn discrete_beta_at(&self, idx: &Tensor) -> Tensor {
        let n = self.n as f64;
        let (a, b) = (self.beta_min / n, self.beta_max / n);
        let i = idx.to_kind(Kind::Double);
        if self.n == 1 {
            return i.zeros_like() + a;
        }
        i * (b - a) / (n - 1.0) + a
    }

    /// DDPM's discrete `β_i = linspace(β_min/N, β_max/N, N)`.
    pub fn discrete_betas(&self) -> Vec<f64> {
        let n = self.n as f64;
        let (a, b) = (self.beta_min / n, self.beta_max / n);
        (0..self.n)
            .map(|i| {
                if self.n == 1 {
                    a
                } else {
                    a + (b - a) * i as f64 / (n - 1.0)
                }
            })
            .collect()
    }

    /// `ᾱ_i = Π_{j≤i} (1 − β_j)`.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let mut acc = 1.0;
        self.discrete_betas()
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect()
    }
}

impl Sde for VpSde {
    fn kind(&self) -> SdeKind {
        SdeKind::Vp
    }
    fn n_steps(&self) -> usize {
        self.n
    }
    fn sampling_eps(&self) -> f64 {
        1e-3
    }
    fn drift(&self, x: &Tensor, t: &Tensor) -> Tensor {
        bcast(&self.beta_t(t), x) * x * -0.5
    }
    fn diffusion(&self, t: &Tensor) -> Tensor {
        self.beta_t(t).sqrt()
    }
    fn mean_coeff_std(&self, t: f64) -> (f64, f64) {
        let l = self.log_mean_coeff(t);
        (l.exp(), (1.0 - (2.0 * l).exp()).sqrt())
    }
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let l = self.log_mean_coeff_t(t);
        let mean = bcast(&l.exp(), x0) * x0;
        let std = (-(&l * 2.0).exp() + 1.0).sqrt();
        (mean, std)
    }
    fn prior_sampling(&self, shape: &[i64], like: (Kind, tch::Device)) -> Tensor {
        Tensor::randn(shape, like)
    }
    fn prior_logp(&self, z: &Tensor) -> Tensor {
        let n = super::per_sample_dim(z) as f64;
        sum_sq(z) * -0.5 - 0.5 * n * (2.0 * std::f64::consts::PI).ln()
    }
    fn discretize(&self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let idx = timestep_index(t, self.n, self.t_end());
        let beta = self.discrete_beta_at(&idx).to_kind(x.kind());
        let sqrt_alpha = (-&beta + 1.0).sqrt();
        let f = bcast(&sqrt_alpha, x) * x - x;
        (f, beta.sqrt())
    }
}
