//! Sub-variance-preserving SDE (Song et al. 2021, eq. 12).
//!
//! `dx = −½ β(t) x dt + √(β(t) (1 − e^{−2∫₀ᵗβ})) dw`, whose transition kernel is
//! `N(e^{L(t)} x(0), (1 − e^{2L(t)})² I)` with the same `L(t)` as VP: its variance is bounded
//! by the VP one at every t. Prior `N(0, I)`; discretised by Euler–Maruyama.

use super::vp::check_betas;
use super::{bcast, check_n, sum_sq, Sde, SdeKind};
use crate::Result;
use tch::{Kind, Tensor};

/// Sub-VP SDE.
#[derive(Debug, Clone)]
pub struct SubVpSde {
    pub beta_min: f64,
    pub beta_max: f64,
    pub n: usize,
}

impl SubVpSde {
    /// Checks `0 < β_min ≤ β_max` and `n ≥ 1`.
    pub fn new(beta_min: f64, beta_max: f64, n: usize) -> Result<Self> {
        check_betas("sub-VP", beta_min, beta_max)?;
        check_n(n)?;
        Ok(Self {
            beta_min,
            beta_max,
            n,
        })
    }

    fn beta_t(&self, t: &Tensor) -> Tensor {
        t * (self.beta_max - self.beta_min) + self.beta_min
    }

    fn log_mean_coeff_t(&self, t: &Tensor) -> Tensor {
        t.square() * (-0.25 * (self.beta_max - self.beta_min)) - t * (0.5 * self.beta_min)
    }
}

impl Sde for SubVpSde {
    fn kind(&self) -> SdeKind {
        SdeKind::SubVp
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
        // 1 − exp(−2 β_min t − (β_max − β_min) t²)
        let discount =
            -((t * (-2.0 * self.beta_min)) - t.square() * (self.beta_max - self.beta_min)).exp()
                + 1.0;
        (self.beta_t(t) * discount).sqrt()
    }
    fn mean_coeff_std(&self, t: f64) -> (f64, f64) {
        let l = -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min;
        (l.exp(), 1.0 - (2.0 * l).exp())
    }
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let l = self.log_mean_coeff_t(t);
        let mean = bcast(&l.exp(), x0) * x0;
        let std = -(&l * 2.0).exp() + 1.0;
        (mean, std)
    }
    fn prior_sampling(&self, shape: &[i64], like: (Kind, tch::Device)) -> Tensor {
        Tensor::randn(shape, like)
    }
    fn prior_logp(&self, z: &Tensor) -> Tensor {
        let n = super::per_sample_dim(z) as f64;
        sum_sq(z) * -0.5 - 0.5 * n * (2.0 * std::f64::consts::PI).ln()
    }
}
