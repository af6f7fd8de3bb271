//! Stochastic differential equations of score-based generative modelling.
//!
//! The forward SDE `dx = f(x,t) dt + g(t) dw` on `t ∈ [0, T]` (here `T = 1`) turns data into a
//! tractable prior; its reverse `dx = [f(x,t) − g(t)² ∇ₓ log pₜ(x)] dt + g(t) dw̄` (Anderson
//! 1982) generates data from the prior once the score `∇ₓ log pₜ` is learned. The deterministic
//! probability-flow ODE `dx = [f − ½ g² ∇ₓ log pₜ] dt` has the same marginals.
//!
//! Formulas and defaults follow Song et al. 2021, "Score-Based Generative Modeling through
//! Stochastic Differential Equations" (ICLR), and its reference code score_sde_pytorch:
//! [`VeSde`] (NCSN's σ schedule in continuous time), [`VpSde`] (DDPM's β schedule) and
//! [`SubVpSde`].
//!
//! Conventions: `x` is a batch `[B, ...]`, `t` a tensor `[B]` of times in `(0, 1]` with the
//! dtype and device of `x`; per-sample scalars are returned as `[B]` tensors.

mod subvp;
mod ve;
mod vp;

#[cfg(test)]
mod tests;

pub use subvp::SubVpSde;
pub use ve::VeSde;
pub use vp::VpSde;

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which family an SDE belongs to (samplers such as the ancestral predictor and the Langevin
/// corrector's step size need to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SdeKind {
    Ve,
    Vp,
    SubVp,
}

/// A forward SDE `dx = f(x,t) dt + g(t) dw` with a Gaussian transition kernel
/// `p₀ₜ(x(t) | x(0)) = N(m(t) x(0), s(t)² I)`.
pub trait Sde: Send + Sync {
    /// Which family this is.
    fn kind(&self) -> SdeKind;

    /// Number of discretisation steps `N` used by [`Sde::discretize`] and the samplers.
    fn n_steps(&self) -> usize;

    /// End time `T` (always 1 here).
    fn t_end(&self) -> f64 {
        1.0
    }

    /// Smallest time used when sampling (score_sde_pytorch: 1e-5 for VE, 1e-3 for VP/sub-VP).
    fn sampling_eps(&self) -> f64;

    /// Drift `f(x, t)`.
    fn drift(&self, x: &Tensor, t: &Tensor) -> Tensor;

    /// Diffusion coefficient `g(t)`, shape `[B]`.
    fn diffusion(&self, t: &Tensor) -> Tensor;

    /// Scalar transition coefficients `(m(t), s(t))`: `x(t) | x(0) ~ N(m(t) x(0), s(t)² I)`.
    fn mean_coeff_std(&self, t: f64) -> (f64, f64);

    /// Mean and standard deviation of `p₀ₜ(x(t) | x(0))`: `(m(t) x(0), s(t))`, std shape `[B]`.
    fn marginal_prob(&self, x0: &Tensor, t: &Tensor) -> (Tensor, Tensor);

    /// A sample of the prior `p_T` of shape `shape`, same options as `like`.
    fn prior_sampling(&self, shape: &[i64], like: (Kind, tch::Device)) -> Tensor;

    /// `log p_T(z)` per sample, shape `[B]`.
    fn prior_logp(&self, z: &Tensor) -> Tensor;

    /// Discretisation `x_{i+1} = x_i + f_i(x_i) + G_i z_i` of the forward SDE on `N` steps;
    /// returns `(f_i, G_i)` with `G_i` of shape `[B]`. The default is Euler–Maruyama with
    /// `Δt = T/N`; VE and VP override it with the NCSN and DDPM Markov chains.
    fn discretize(&self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let dt = self.t_end() / self.n_steps() as f64;
        let f = self.drift(x, t) * dt;
        let g = self.diffusion(t) * dt.sqrt();
        (f, g)
    }

    /// Drift and diffusion of the reverse-time SDE (or, with `probability_flow`, the ODE)
    /// given the score `s ≈ ∇ₓ log pₜ(x)`: `(f − c·g² s, g or 0)`, `c = ½` for the ODE, `1` else.
    fn reverse_sde(
        &self,
        x: &Tensor,
        t: &Tensor,
        score: &Tensor,
        probability_flow: bool,
    ) -> (Tensor, Tensor) {
        let g = self.diffusion(t);
        let c = if probability_flow { 0.5 } else { 1.0 };
        let g2 = bcast(&(&g * &g), x);
        let drift = self.drift(x, t) - g2 * score * c;
        let diff = if probability_flow { g.zeros_like() } else { g };
        (drift, diff)
    }

    /// The reverse of [`Sde::discretize`]: `(f_i − c·G_i² s, G_i or 0)`.
    fn reverse_discretize(
        &self,
        x: &Tensor,
        t: &Tensor,
        score: &Tensor,
        probability_flow: bool,
    ) -> (Tensor, Tensor) {
        let (f, g) = self.discretize(x, t);
        let c = if probability_flow { 0.5 } else { 1.0 };
        let g2 = bcast(&(&g * &g), x);
        let rev_f = f - g2 * score * c;
        let rev_g = if probability_flow { g.zeros_like() } else { g };
        (rev_f, rev_g)
    }
}

/// Serializable choice of SDE with the published defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SdeConfig {
    /// Variance exploding: σ(t) = σ_min (σ_max/σ_min)^t.
    Ve {
        #[serde(default = "ve_sigma_min")]
        sigma_min: f64,
        #[serde(default = "ve_sigma_max")]
        sigma_max: f64,
        #[serde(default = "default_n")]
        n: usize,
    },
    /// Variance preserving: β(t) = β_min + t (β_max − β_min).
    Vp {
        #[serde(default = "vp_beta_min")]
        beta_min: f64,
        #[serde(default = "vp_beta_max")]
        beta_max: f64,
        #[serde(default = "default_n")]
        n: usize,
    },
    /// Sub-variance preserving.
    SubVp {
        #[serde(default = "vp_beta_min")]
        beta_min: f64,
        #[serde(default = "vp_beta_max")]
        beta_max: f64,
        #[serde(default = "default_n")]
        n: usize,
    },
}

fn ve_sigma_min() -> f64 {
    0.01
}
fn ve_sigma_max() -> f64 {
    50.0
}
fn vp_beta_min() -> f64 {
    0.1
}
fn vp_beta_max() -> f64 {
    20.0
}
fn default_n() -> usize {
    1000
}

impl SdeConfig {
    /// VE with the CIFAR-10 defaults of score_sde_pytorch (σ_min 0.01, σ_max 50, N 1000).
    pub fn ve_default() -> Self {
        SdeConfig::Ve {
            sigma_min: ve_sigma_min(),
            sigma_max: ve_sigma_max(),
            n: default_n(),
        }
    }
    /// VP with β_min 0.1, β_max 20, N 1000.
    pub fn vp_default() -> Self {
        SdeConfig::Vp {
            beta_min: vp_beta_min(),
            beta_max: vp_beta_max(),
            n: default_n(),
        }
    }
    /// sub-VP with β_min 0.1, β_max 20, N 1000.
    pub fn subvp_default() -> Self {
        SdeConfig::SubVp {
            beta_min: vp_beta_min(),
            beta_max: vp_beta_max(),
            n: default_n(),
        }
    }

    /// Its number of discretisation steps `N`.
    pub fn n_steps(&self) -> usize {
        match *self {
            SdeConfig::Ve { n, .. } | SdeConfig::Vp { n, .. } | SdeConfig::SubVp { n, .. } => n,
        }
    }

    /// The same SDE with `n` discretisation steps.
    pub fn with_n(self, n_new: usize) -> Self {
        match self {
            SdeConfig::Ve {
                sigma_min,
                sigma_max,
                ..
            } => SdeConfig::Ve {
                sigma_min,
                sigma_max,
                n: n_new,
            },
            SdeConfig::Vp {
                beta_min, beta_max, ..
            } => SdeConfig::Vp {
                beta_min,
                beta_max,
                n: n_new,
            },
            SdeConfig::SubVp {
                beta_min, beta_max, ..
            } => SdeConfig::SubVp {
                beta_min,
                beta_max,
                n: n_new,
            },
        }
    }

    /// Builds the SDE, checking the parameters.
    pub fn build(&self) -> crate::Result<Box<dyn Sde>> {
        Ok(match *self {
            SdeConfig::Ve {
                sigma_min,
                sigma_max,
                n,
            } => Box::new(VeSde::new(sigma_min, sigma_max, n)?),
            SdeConfig::Vp {
                beta_min,
                beta_max,
                n,
            } => Box::new(VpSde::new(beta_min, beta_max, n)?),
            SdeConfig::SubVp {
                beta_min,
                beta_max,
                n,
            } => Box::new(SubVpSde::new(beta_min, beta_max, n)?),
        })
    }
}

/// Reshapes a per-sample `[B]` tensor to `[B, 1, ..., 1]` so that it broadcasts against `x`.
pub fn bcast(v: &Tensor, x: &Tensor) -> Tensor {
    let mut shape = vec![-1i64];
    shape.extend(std::iter::repeat_n(1, x.dim().saturating_sub(1)));
    v.reshape(shape.as_slice())
}

/// Number of elements per sample of a batch `[B, ...]`.
pub(crate) fn per_sample_dim(x: &Tensor) -> i64 {
    x.size()[1..].iter().product()
}

/// Σ over all but the batch dimension of `x²`, shape `[B]`.
pub(crate) fn sum_sq(x: &Tensor) -> Tensor {
    x.square()
        .flatten(1, -1)
        .sum_dim_intlist(1i64, false, x.kind())
}

/// Index `i = round_down(t (N−1) / T)` of the discrete step that a continuous `t` falls on,
/// as score_sde_pytorch does (`(t * (N - 1) / T).long()`).
pub(crate) fn timestep_index(t: &Tensor, n: usize, t_end: f64) -> Tensor {
    (t * ((n as f64 - 1.0) / t_end)).to_kind(Kind::Int64)
}

pub(crate) fn check_n(n: usize) -> crate::Result<()> {
    if n < 1 {
        return Err(crate::Error::Config(
            "SDE needs at least one discretisation step (n >= 1)".into(),
        ));
    }
    Ok(())
}
