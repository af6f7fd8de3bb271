//! Variance-exploding SDE (Song et al. 2021, eq. 9; NCSN of Song & Ermon 2019 in continuous time).
//!
//! `dx = σ(t) √(2 ln(σ_max/σ_min)) dw`, `σ(t) = σ_min (σ_max/σ_min)^t`, so that
//! `x(t) | x(0) ~ N(x(0), σ(t)² I)` (up to the negligible σ_min² term, as in score_sde_pytorch),
//! prior `N(0, σ_max² I)`. Its discretisation is the NCSN chain over the geometric sequence
//! `σ_i = exp(linspace(ln σ_min, ln σ_max, N))`:
//! `x_{i} = x_{i-1} + √(σ_i² − σ_{i−1}²) z`.
//!
//! σ_max should be about the largest pairwise Euclidean distance between training images
//! (Technique 1 of Song & Ermon 2020, "Improved techniques for training score-based generative
//! models"); 50 is the CIFAR-10 value.

use super::{check_n, sum_sq, timestep_index, Sde, SdeKind};
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Variance-exploding SDE.
#[derive(Debug, Clone)]
pub struct VeSde {
    pub sigma_min: f64,
    pub sigma_max: f64,
    pub n: usize,
}

impl VeSde {
    /// Checks `0 < σ_min < σ_max` and `n ≥ 1`.
    pub fn new(sigma_min: f64, sigma_max: f64, n: usize) -> Result<Self> {
        if !(sigma_min > 0.0 && sigma_max > sigma_min && sigma_max.is_finite()) {
            return Err(Error::Config(format!(
                "VE SDE needs 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}"
            )));
        }
        check_n(n)?;
        Ok(Self {
            sigma_min,
            sigma_max,
            n,
        })
    }

    /// σ(t) for a scalar t.
    pub fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(t)
    }

    /// σ(t) elementwise.
    pub fn sigma_t(&self, t: &Tensor) -> Tensor {
        (t * (self.sigma_max / self.sigma_min).ln()).exp() * self.sigma_min
    }

    /// `σ_i` of [`Self::discrete_sigmas`] for a tensor of indices `i` (int64), computed on the
    /// indices' device in f64 by the same formula, so that discretising inside a sampling loop
    /// uploads no table (a host-to-device copy from pageable memory synchronises the stream).
    pub fn discrete_sigma_at(&self, idx: &Tensor) -> Tensor {
        let (a, b) = (self.sigma_min.ln(), self.sigma_max.ln());
        let i = idx.to_kind(Kind::Double);
        if self.n == 1 {
            return i.zeros_like() + b.exp();
        }
        (i * (b - a) / (self.n - 1) as f64 + a).exp()
    }

    /// The discrete noise levels `σ_i = exp(linspace(ln σ_min, ln σ_max, N))`, as f64.
    pub fn discrete_sigmas(&self) -> Vec<f64> {
        let (a, b) = (self.sigma_min.ln(), self.sigma_max.ln());
        let n = self.n;
        (0..n)
            .map(|i| {
                if n == 1 {
                    b.exp()
                } else {
                    (a + (b - a) * i as f64 / (n - 1) as f64).exp()
                }
            })
            .collect()
    }
}

impl Sde for VeSde {
    fn kind(&self) -> SdeKind {
        SdeKind::Ve
    }
    fn n_steps(&self) -> usize {
        self.n
    }
    fn sampling_eps(&self) -> f64 {
        1e-5
    }
    fn drift(&self, x: &Tensor, _t: &Tensor) -> Tensor {
        x.zeros_like()
    }
    fn diffusion(&self, t: &Tensor) -> Tensor {
        self.sigma_t(t) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt()
    }
    fn mean_coeff_std(&self, t: f64) -> (f64, f64) {
        (1.0, self.sigma(t))
    }
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        (x0.shallow_clone(), self.sigma_t(t))
    }
    fn prior_sampling(&self, shape: &[i64], like: (Kind, tch::Device)) -> Tensor {
        Tensor::randn(shape, like) * self.sigma_max
    }
    fn prior_logp(&self, z: &Tensor) -> Tensor {
        let n = super::per_sample_dim(z) as f64;
        let s2 = self.sigma_max * self.sigma_max;
        sum_sq(z) / (-2.0 * s2) - 0.5 * n * (2.0 * std::f64::consts::PI * s2).ln()
    }
    fn discretize(&self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let idx = timestep_index(t, self.n, self.t_end());
        let sigma = self.discrete_sigma_at(&idx);
        let prev = self.discrete_sigma_at(&(&idx - 1).clamp_min(0));
        // tch: `a.where_self(cond, b)` = where(cond, a, b).
        let adjacent = sigma.zeros_like().where_self(&idx.eq(0), &prev);
        let g = (sigma.square() - adjacent.square())
            .sqrt()
            .to_kind(x.kind());
        (x.zeros_like(), g)
    }
}
