//! Diffusion posterior sampling (Chung, Kim, Mccann, Klasky & Ye 2023, "Diffusion posterior
//! sampling for general noisy inverse problems", ICLR, Alg. 1) for any [`LinearOperator`].
//!
//! Each reverse step at `t_i` evaluates the score once, with gradients, and uses it twice:
//!
//! ```text
//! x̂₀(x_i) = (x_i + s(t_i)² s_θ(x_i, t_i)) / m(t_i)          (Tweedie)
//! x'      = Predictor(x_i, t_i)                             (ancestral / reverse diffusion)
//! x_{i−1} = x' − ζ ∇_{x_i} ‖y − A x̂₀(x_i)‖₂                  (per sample)
//! ```
//!
//! The gradient is `−J_{x̂₀}ᵀ Aᴴ r / ‖r‖`, `r = y − A x̂₀`: the operator's exact adjoint gives
//! `Aᴴ r`, and one vector–Jacobian product through the score network gives the rest, so the
//! operator need not be differentiable (the CPU Radon backend is not), only the score model.
//! Stepping along the gradient of the norm `‖r‖` (as the official code does) is the paper's
//! `ζ_i = ζ' / ‖y − A x̂₀‖` on the squared norm with `ζ' = ζ/2`. Complex measurements (MRI) use
//! `‖r‖² = Σ |r|²` and the real-domain adjoint.
//!
//! **When it is exact.** Never in general: `p(y | x_t)` is replaced by `p(y | x̂₀(x_t))`, and
//! the step size is a heuristic, so even for a Gaussian prior and linear `A` the samples are
//! drawn from an approximation of the posterior; they are pulled towards measurement
//! consistency (`tests/inverse_dps.rs` states how close to the exact posterior mean it gets).

use crate::models::ScoreModel;
use crate::sampling::{check_batch, check_eps, vec_t, PredictorKind, SampleOutput};
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::LinearOperator;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// DPS settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DpsConfig {
    /// The unconditional step (the paper: ancestral sampling). Must not be `none`.
    pub predictor: PredictorKind,
    /// Step size `ζ` on `∇ ‖y − A x̂₀‖` (the paper tunes it per task; DPS's released configs use
    /// values between 0.3 and 1).
    pub zeta: f64,
    /// Return the last step without its fresh noise.
    pub noise_removal: bool,
    /// Final time; `None` = `sde.sampling_eps()`.
    pub eps: Option<f64>,
    /// Warm start (CCDF, [`super::warm_start`]): the time `t₀` the start estimate is diffused
    /// to; `None`: a cold start from the prior at `T`.
    pub t0: Option<f64>,
}

impl Default for DpsConfig {
    fn default() -> Self {
        Self {
            predictor: PredictorKind::Ancestral,
            zeta: 1.0,
            noise_removal: true,
            eps: None,
            t0: None,
        }
    }
}

impl DpsConfig {
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if !(self.zeta.is_finite() && self.zeta >= 0.0) {
            return Err(Error::Config(format!(
                "DPS: step size zeta must be finite and ≥ 0, got {}",
                self.zeta
            )));
        }
        if self.predictor == PredictorKind::None {
            return Err(Error::Config(
                "DPS needs a predictor (ancestral, reverse-diffusion or euler-maruyama)".into(),
            ));
        }
        let eps = self.eps.unwrap_or_else(|| sde.sampling_eps());
        check_eps(eps, sde.t_end())?;
        super::warm_start::check_t0(self.t0, sde, eps)?;
        let probe = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu));
        self.predictor.build(sde, false, &probe)?;
        Ok(())
    }
}

/// A score already computed, handed to a [`crate::sampling::Predictor`] so that the step reuses
/// the score evaluated (with gradients) for the DPS guidance.
struct FixedScore(Tensor);

// SAFETY: the tensor is only read (shallow clones) and never mutated; `ScoreModel` requires
// `Sync` but this value never leaves the thread that created it.
unsafe impl Sync for FixedScore {}

impl ScoreModel for FixedScore {
    fn score(&self, _x: &Tensor, _t: &Tensor) -> Tensor {
        self.0.shallow_clone()
    }
}

/// One DPS sample per measurement in `y` (`[B] ++ op.output_shape()`).
pub fn sample(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn LinearOperator,
    y: &Tensor,
    config: &DpsConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    sample_warm(sde, model, op, y, config, None, progress)
}

/// [`sample`], from the warm-start estimate `start` (model space) diffused to `config.t0`
/// ([`super::warm_start`]).
pub fn sample_warm(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn LinearOperator,
    y: &Tensor,
    config: &DpsConfig,
    start: Option<&Tensor>,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    config.validate(sde)?;
    let eps = config.eps.unwrap_or_else(|| sde.sampling_eps());
    let (grid, x) = super::warm_start::begin(sde, op, y, eps, config.t0, start)?;
    let kind = x.kind();
    check_batch(&x, model, "DPS initial state x(T)")?;
    let predictor = config.predictor.build(sde, false, &x)?;
    let n = grid.len();
    let y = y.detach();
    let mut x = x;
    let mut x_mean = x.shallow_clone();
    for (i, &ti) in grid.iter().enumerate() {
        let t = vec_t(&x, ti);
        let (m, s) = sde.mean_coeff_std(ti);
        let (score, guide) = tch::with_grad(|| -> Result<(Tensor, Tensor)> {
            let xg = x.detach().set_requires_grad(true);
            let score = model.score(&xg, &t);
            let x0 = (&xg + &score * (s * s)) / m;
            // Gradient of Σ_b ‖r_b‖ with respect to x̂₀ is −Aᴴ r_b / ‖r_b‖.
            let r = &y - op.forward(&x0.detach())?;
            let norms = r
                .abs()
                .square()
                .flatten(1, -1)
                .sum_dim_intlist(1i64, false, kind)
                .sqrt()
                .clamp_min(1e-12);
            let back = op.adjoint(&r)?.to_kind(kind);
            let v = back / crate::sde::bcast(&norms, &x0);
            // ∂/∂x ⟨x̂₀(x), v⟩ = J_{x̂₀}ᵀ v = −∇ₓ Σ‖r‖.
            let l = (&x0 * &v).sum(kind);
            let g = Tensor::f_run_backward(&[&l], &[&xg], false, false)?
                .pop()
                .ok_or_else(|| Error::Invalid("DPS: no gradient through the score".into()))?;
            Ok((score.detach(), g))
        })?;
        let _g = tch::no_grad_guard();
        let (xp, xm) = predictor.update(&FixedScore(score), &x.detach(), &t);
        let step = &guide * config.zeta;
        x = xp + &step;
        x_mean = xm + step;
        progress(i + 1);
    }
    let x = if config.noise_removal { x_mean } else { x };
    Ok(SampleOutput {
        x: x.detach(),
        nfe: n,
    })
}

/// `dps` in [`super::conditional::CONDITIONAL_SAMPLERS`]: the defaults, then the user's `zeta`.
pub const ENTRY: super::conditional::ConditionalEntry = super::conditional::ConditionalEntry {
    name: "dps",
    aliases: &[],
    about: "diffusion posterior sampling (Chung et al. 2023), any operator",
    build: |s| {
        Ok(Box::new(super::conditional::overlay(
            DpsConfig::default(),
            s.user,
        )?))
    },
};

impl super::conditional::ConditionalSampler for DpsConfig {
    fn name(&self) -> &'static str {
        ENTRY.name
    }
    fn needs_decomposition(&self) -> bool {
        false
    }
    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        DpsConfig::validate(self, sde)
    }
    fn sample(
        &self,
        sde: &dyn Sde,
        model: &dyn ScoreModel,
        op: &dyn LinearOperator,
        y: &Tensor,
        start: Option<&Tensor>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<SampleOutput> {
        sample_warm(sde, model, op, y, self, start, progress)
    }
    fn steps(&self, sde: &dyn Sde) -> usize {
        super::warm_start::steps(sde, self.eps, self.t0)
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
