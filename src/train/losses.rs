//! Score-matching objectives (continuous time unless stated; `t ~ U(ε, 1)`, ε = 1e-5).
//!
//! * **DSM** (Song et al. 2021, eq. 7; score_sde `get_sde_loss_fn`): with
//!   `x_t = m(t) x₀ + σ(t) z`, `z ~ N(0, I)`,
//!   `λ(t) = σ(t)²`: `ℓ = R(‖σ(t) s_θ(x_t, t) + z‖²)`;
//!   likelihood weighting `λ(t) = g(t)²` (Song et al. 2021b): `ℓ = R(‖s_θ + z/σ‖²)·g(t)²`.
//!   `R` is `½ Σ` over dimensions by default and the mean over dimensions with `reduce_mean`,
//!   as upstream. The loss is the batch mean of `ℓ`.
//! * **NCSN** (discrete, VE; Song & Ermon 2019, score_sde `get_smld_loss_fn`): `i ~ U{0..N−1}`,
//!   `ℓ = R(‖σ_i s_θ(x₀ + σ_i z, σ_i) + z‖²)` over the geometric σ_i of [`VeSde`].
//! * **DDPM** (discrete, VP; Ho et al. 2020, score_sde `get_ddpm_loss_fn`): `i ~ U{0..N−1}`,
//!   `ℓ = R(‖ε_θ(√ᾱ_i x₀ + √(1−ᾱ_i) z, i) − z‖²)`. Upstream's DDPM default is `reduce_mean`.
//! * **SSM** (sliced score matching, Song et al. 2019 UAI, in its noise-conditional form of
//!   NCSN's `anneal_sliced_score_estimation_vr`): on `x_t ~ p_t`, with projections `v`
//!   (Rademacher or Gaussian), `ℓ = λ(t) [vᵀ∇ₓ(vᵀ s_θ) + ½ (vᵀ s_θ)²]`, or with variance
//!   reduction `½‖s_θ‖²` in place of `½ (vᵀ s_θ)²` (equal in expectation since `E[vvᵀ] = I`).
//!   The Hessian-vector term goes through autograd (double backward). Its minimiser is the score
//!   of `p_t`, like DSM's; `E[ℓ]` equals the `½Σ` DSM loss minus `λ(t)·d/(2σ²)`.
//!
//! [`VeSde`]: crate::sde::VeSde

use super::rng::Stream;
use crate::models::score_net::NetScore;
use crate::models::TimeConditionedNet;
use crate::sde::{bcast, per_sample_dim, Sde, SdeKind, VeSde, VpSde};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// Continuous-time denoising score matching.
    Dsm,
    /// Continuous-time sliced score matching.
    Ssm,
    /// Discrete NCSN (SMLD) loss; VE only.
    Ncsn,
    /// Discrete DDPM ε-prediction loss; VP only.
    Ddpm,
}

/// Distribution of the SSM projection vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Projection {
    Rademacher,
    Gaussian,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_particles() -> usize {
    1
}
fn default_kind() -> LossKind {
    LossKind::Dsm
}
fn default_projection() -> Projection {
    Projection::Rademacher
}

/// Loss settings; defaults are score_sde's (`continuous=True`, `reduce_mean=False`,
/// `likelihood_weighting=False`, ε = 1e-5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    #[serde(default = "default_kind")]
    pub kind: LossKind,
    /// Mean over dimensions instead of ½·sum.
    #[serde(default)]
    pub reduce_mean: bool,
    /// `λ(t) = g(t)²` instead of `σ(t)²` (DSM, SSM).
    #[serde(default)]
    pub likelihood_weighting: bool,
    /// Smallest training time ε.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// SSM projections.
    #[serde(default = "default_projection")]
    pub projection: Projection,
    /// SSM variance reduction (`½‖s‖²` computed exactly).
    #[serde(default = "default_true")]
    pub variance_reduction: bool,
    /// SSM projections per sample.
    #[serde(default = "default_particles")]
    pub n_particles: usize,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            kind: default_kind(),
            reduce_mean: false,
            likelihood_weighting: false,
            eps: default_eps(),
            projection: default_projection(),
            variance_reduction: true,
            n_particles: 1,
        }
    }
}

impl LossConfig {
    /// Checks the settings against the SDE.
    pub fn validate(&self, sde: SdeKind) -> Result<()> {
        if !(self.eps > 0.0 && self.eps < 1.0) {
            return Err(Error::Config(format!(
                "loss.eps must lie in (0, 1), got {}",
                self.eps
            )));
        }
        if self.n_particles < 1 {
            return Err(Error::Config("loss.n_particles must be at least 1".into()));
        }
        match (self.kind, sde) {
            (LossKind::Ncsn, k) if k != SdeKind::Ve => Err(Error::Config(format!(
                "the NCSN loss needs a VE SDE, the config has {k:?}"
            ))),
            (LossKind::Ddpm, k) if k != SdeKind::Vp => Err(Error::Config(format!(
                "the DDPM loss needs a VP SDE, the config has {k:?}"
            ))),
            _ => Ok(()),
        }
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self.kind {
            LossKind::Dsm => "dsm",
            LossKind::Ssm => "ssm",
            LossKind::Ncsn => "ncsn",
            LossKind::Ddpm => "ddpm",
        }
    }

    /// The batch loss (scalar) of `model` on `x0`, all random draws from `rng`.
    pub fn loss<N: TimeConditionedNet + ?Sized>(
        &self,
        model: &NetScore<N>,
        x0: &Tensor,
        rng: &mut Stream,
        train: bool,
    ) -> Result<Tensor> {
        let sde = model.sde();
        self.validate(sde.kind())?;
        let (kind, dev) = (x0.kind(), x0.device());
        let b = x0.size()[0];
        let per_sample = match self.kind {
            LossKind::Dsm | LossKind::Ssm => {
                let t = sample_times(rng, b as usize, self.eps, x0);
                let z = rng.normal(&x0.size(), kind, dev);
                if self.kind == LossKind::Dsm {
                    let f = |x: &Tensor, t: &Tensor| model.score_train(x, t, train);
                    dsm_per_sample(
                        &f,
                        sde,
                        x0,
                        &t,
                        &z,
                        self.reduce_mean,
                        self.likelihood_weighting,
                    )
                } else {
                    let p = self.n_particles as i64;
                    let mut shape = x0.size();
                    shape[0] *= p;
                    let v = match self.projection {
                        Projection::Rademacher => rng.rademacher(&shape, kind, dev),
                        Projection::Gaussian => rng.normal(&shape, kind, dev),
                    };
                    let f = |x: &Tensor, t: &Tensor| model.score_train(x, t, train);
                    ssm_per_sample(
                        &f,
                        sde,
                        x0,
                        &t,
                        &z,
                        &v,
                        self.variance_reduction,
                        self.reduce_mean,
                        self.likelihood_weighting,
                    )
                }
            }
            LossKind::Ncsn => {
                let ve = ve_of(model)?;
                let labels = Tensor::from_slice(&rng.below(b as usize, ve.n as u64)).to_device(dev);
                let z = rng.normal(&x0.size(), kind, dev);
                let f = |x: &Tensor, s: &Tensor| model.ve_score_at_sigma(x, s, train);
                ncsn_per_sample(&f, &ve, x0, &labels, &z, self.reduce_mean)
            }
            LossKind::Ddpm => {
                let vp = vp_of(model)?;
                let labels = Tensor::from_slice(&rng.below(b as usize, vp.n as u64)).to_device(dev);
                let z = rng.normal(&x0.size(), kind, dev);
                let f = |x: &Tensor, c: &Tensor| model.raw(x, c, train);
                ddpm_per_sample(&f, &vp, x0, &labels, &z, self.reduce_mean)
            }
        };
        Ok(per_sample.mean(Kind::Float))
    }
}

fn ve_of<N: TimeConditionedNet + ?Sized>(model: &NetScore<N>) -> Result<VeSde> {
    match model.sde_config() {
        crate::sde::SdeConfig::Ve {
            sigma_min,
            sigma_max,
            n,
        } => VeSde::new(sigma_min, sigma_max, n),
        other => Err(Error::Config(format!(
            "the NCSN loss needs a VE SDE, got {other:?}"
        ))),
    }
}

fn vp_of<N: TimeConditionedNet + ?Sized>(model: &NetScore<N>) -> Result<VpSde> {
    match model.sde_config() {
        crate::sde::SdeConfig::Vp {
            beta_min,
            beta_max,
            n,
        } => VpSde::new(beta_min, beta_max, n),
        other => Err(Error::Config(format!(
            "the DDPM loss needs a VP SDE, got {other:?}"
        ))),
    }
}

/// `t = ε + (1 − ε) u`, `u ~ U[0, 1)`, shape `[B]`, dtype/device of `like`.
pub fn sample_times(rng: &mut Stream, b: usize, eps: f64, like: &Tensor) -> Tensor {
    let u = rng.uniform(b);
    Tensor::from_slice(&u)
        .to_kind(like.kind())
        .to_device(like.device())
        * (1.0 - eps)
        + eps
}

/// `R(v)` per sample: `½ Σ` or the mean over all but the batch dimension.
fn reduce(v: &Tensor, reduce_mean: bool) -> Tensor {
    let flat = v.flatten(1, -1);
    if reduce_mean {
        flat.mean_dim(1i64, false, v.kind())
    } else {
        flat.sum_dim_intlist(1i64, false, v.kind()) * 0.5
    }
}

/// Per-sample continuous DSM loss `[B]` of the score function `score(x, t)` at given times `t`
/// and noise `z` (the formula of the module docs).
pub fn dsm_per_sample(
    score: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    sde: &dyn Sde,
    x0: &Tensor,
    t: &Tensor,
    z: &Tensor,
    reduce_mean: bool,
    likelihood_weighting: bool,
) -> Tensor {
    let (mean, std) = sde.marginal_prob(x0, t);
    let stdb = bcast(&std, x0);
    let xt = mean + &stdb * z;
    let s = score(&xt, t);
    if likelihood_weighting {
        let g = sde.diffusion(t);
        reduce(&(s + z / &stdb).square(), reduce_mean) * g.square()
    } else {
        reduce(&(s * &stdb + z).square(), reduce_mean)
    }
}

/// Per-sample sliced score matching loss `[B]` on `x_t = m x₀ + σ z` with projections `v` of
/// shape `[P·B, ...]` (P particles per sample; the loss averages over them).
#[allow(clippy::too_many_arguments)]
pub fn ssm_per_sample(
    score: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    sde: &dyn Sde,
    x0: &Tensor,
    t: &Tensor,
    z: &Tensor,
    v: &Tensor,
    variance_reduction: bool,
    reduce_mean: bool,
    likelihood_weighting: bool,
) -> Tensor {
    let b = x0.size()[0];
    let p = v.size()[0] / b;
    let (mean, std) = sde.marginal_prob(x0, t);
    let xt = (mean + bcast(&std, x0) * z).detach();
    // Duplicate each sample for its P projections: [P·B, ...] (particle-major).
    let rep: Vec<i64> = std::iter::once(p)
        .chain(std::iter::repeat_n(1, x0.dim() - 1))
        .collect();
    let xd = xt.repeat(rep.as_slice()).set_requires_grad(true);
    let td = t.repeat([p]);
    let s = score(&xd, &td);
    let vs = (&s * v)
        .flatten(1, -1)
        .sum_dim_intlist(1i64, false, s.kind());
    let grads = Tensor::run_backward(&[vs.sum(s.kind())], &[&xd], true, true);
    let hvp = (&grads[0] * v)
        .flatten(1, -1)
        .sum_dim_intlist(1i64, false, s.kind());
    let half_sq = if variance_reduction {
        s.square()
            .flatten(1, -1)
            .sum_dim_intlist(1i64, false, s.kind())
            * 0.5
    } else {
        vs.square() * 0.5
    };
    let mut per = hvp + half_sq;
    if reduce_mean {
        per /= per_sample_dim(x0) as f64;
    }
    let std_d = std.repeat([p]);
    let weight = if likelihood_weighting {
        sde.diffusion(&td).square()
    } else {
        std_d.square()
    };
    (per * weight)
        .reshape([p, b])
        .mean_dim(0i64, false, x0.kind())
}

/// Per-sample discrete NCSN loss `[B]`: labels index the geometric σ_i of `ve`;
/// `score(x, σ)` takes per-sample σ `[B]`.
pub fn ncsn_per_sample(
    score: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    ve: &VeSde,
    x0: &Tensor,
    labels: &Tensor,
    z: &Tensor,
    reduce_mean: bool,
) -> Tensor {
    let sig = Tensor::from_slice(&ve.discrete_sigmas())
        .to_kind(x0.kind())
        .to_device(x0.device());
    let sigma = sig.index_select(0, labels);
    let sb = bcast(&sigma, x0);
    let s = score(&(x0 + &sb * z), &sigma);
    reduce(&(s * &sb + z).square(), reduce_mean)
}

/// Per-sample DDPM loss `[B]`: `eps(x, i)` predicts the noise from the integer timestep `i`
/// (passed as a float tensor `[B]`).
pub fn ddpm_per_sample(
    eps: &dyn Fn(&Tensor, &Tensor) -> Tensor,
    vp: &VpSde,
    x0: &Tensor,
    labels: &Tensor,
    z: &Tensor,
    reduce_mean: bool,
) -> Tensor {
    let abar = Tensor::from_slice(&vp.alphas_cumprod())
        .to_kind(x0.kind())
        .to_device(x0.device())
        .index_select(0, labels);
    let xt = bcast(&abar.sqrt(), x0) * x0 + bcast(&(-&abar + 1.0).sqrt(), x0) * z;
    let e = eps(&xt, &labels.to_kind(x0.kind()));
    reduce(&(e - z).square(), reduce_mean)
}
