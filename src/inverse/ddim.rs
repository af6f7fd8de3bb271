//! Few-step conditional sampling by DDIM with a data-consistency step on the denoised estimate:
//! DDIM (Song, Meng & Ermon 2021, "Denoising diffusion implicit models", ICLR) with the
//! range–null-space projection of DDNM (Wang, Yu & Zhang 2023, "Zero-shot image restoration
//! using denoising diffusion null-space model", ICLR), for any SDE with a Gaussian transition
//! kernel `x(t) = m(t) x(0) + s(t) z` (VE, VP, sub-VP).
//!
//! On a grid `t₁ > … > t_K = ε` of `K` = the SDE's `N` steps (`--steps`, e.g. 20–50), each step
//! evaluates the score once:
//!
//! ```text
//! x̂₀  = (x + s² s_θ(x, t)) / m                          (Tweedie)
//! ε̂   = (x − m x̂₀) / s = −s s_θ(x, t)                   (the predicted noise)
//! x̂₀' = x̂₀ + λ T⁻¹ Λ (embed(y) − T x̂₀)                  (A = P(Λ) T: projection)
//!     = x̂₀ + λ (LS_k(x̂₀) − x̂₀)                          (any A: k CG steps of x + Aᴴ(AAᴴ)⁻¹(y − Ax))
//! x'  = m' x̂₀' + √(s'² − c²) ε̂ + c z,   c = η m' (σ'/σ) √(σ² − σ'²),   σ = s/m
//! ```
//!
//! `c` is DDIM's noise (its `σ_t(η)` written with the VE-equivalent noise levels `σ = s/m`, so
//! the same formula serves VE and VP; `η = 0`: deterministic, `η = 1`: the ancestral step of
//! the posterior `q(x_{t'} | x_t, x̂₀)`), and the update keeps the marginal `x(t') | x̂₀'` at
//! `N(m' x̂₀', s'²)`. The last step returns `x̂₀'`. With noisy measurements `λ < 1` blends the
//! projection (DDNM+ scales it by the noise level in the same spirit).
//!
//! **When it is exact.** Not in general: the projection of `x̂₀` is not a draw from
//! `p(x₀ | x_t, y)`. For a prior independent across the measured and unmeasured blocks and
//! noiseless `y` it is exact up to the DDIM discretisation, as the projection sampler is;
//! `tests/inverse_fewstep.rs` measures how close to the exact posterior of a correlated
//! Gaussian prior it gets.

use crate::models::ScoreModel;
use crate::sampling::{check_batch, check_eps, SampleOutput};
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::LinearOperator;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Settings of the DDIM sampler (serde; defaults: deterministic DDIM with a hard projection).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DdimConfig {
    /// DDIM's `η ∈ [0, 1]`: 0 deterministic, 1 the ancestral (DDPM posterior) noise.
    pub eta: f64,
    /// Weight `λ ∈ [0, 1]` of the data-consistency step (1: `x̂₀` is moved onto the measurement).
    pub lambda: f64,
    /// Conjugate-gradient iterations of the least-squares consistency step for operators without
    /// a `T`/`Λ` decomposition (multi-coil SENSE, blur); unused with one.
    pub cg_iters: usize,
    /// Final time; `None` = `sde.sampling_eps()`.
    pub eps: Option<f64>,
    /// Warm start (CCDF, [`super::warm_start`]): the time `t₀` the start estimate is diffused
    /// to; `None`: a cold start from the prior at `T`.
    pub t0: Option<f64>,
}

impl Default for DdimConfig {
    fn default() -> Self {
        Self {
            eta: 0.0,
            lambda: 1.0,
            cg_iters: 10,
            eps: None,
            t0: None,
        }
    }
}

impl DdimConfig {
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if !(self.eta.is_finite() && (0.0..=1.0).contains(&self.eta)) {
            return Err(Error::Config(format!(
                "DDIM: eta must lie in [0, 1], got {}",
                self.eta
            )));
        }
        if !(self.lambda.is_finite() && (0.0..=1.0).contains(&self.lambda)) {
            return Err(Error::Config(format!(
                "DDIM: the consistency weight lambda must lie in [0, 1], got {}",
                self.lambda
            )));
        }
        let eps = self.eps.unwrap_or_else(|| sde.sampling_eps());
        check_eps(eps, sde.t_end())?;
        super::warm_start::check_t0(self.t0, sde, eps)
    }
}

/// The DDIM noise split of a step from `(m, s)` to `(m', s')` with DDIM's `η`: the weights
/// `(a, c)` of `x' = m' x̂₀ + a ε̂ + c z` (see the module doc).
pub fn ddim_coefficients(ms: (f64, f64), ms_next: (f64, f64), eta: f64) -> (f64, f64) {
    let (m, s) = ms;
    let (m1, s1) = ms_next;
    let (sig, sig1) = (s / m, s1 / m1);
    let c = if sig > 0.0 {
        eta * m1 * (sig1 / sig) * (sig * sig - sig1 * sig1).max(0.0).sqrt()
    } else {
        0.0
    };
    let a = (s1 * s1 - c * c).max(0.0).sqrt();
    (a, c)
}

/// One DDIM sample per measurement in `y` (`[B] ++ op.output_shape()`), from the warm-start
/// estimate `start` (model space) diffused to `config.t0` when given.
pub fn sample_warm(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn LinearOperator,
    y: &Tensor,
    config: &DdimConfig,
    start: Option<&Tensor>,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    config.validate(sde)?;
    let eps = config.eps.unwrap_or_else(|| sde.sampling_eps());
    let (grid, mut x) = super::warm_start::begin(sde, op, y, eps, config.t0, start)?;
    check_batch(&x, model, "DDIM initial state")?;
    let _g = tch::no_grad_guard();
    let consistency = DataConsistency::new(op, y, &x, config.cg_iters)?;
    for (i, &ti) in grid.iter().enumerate() {
        let (x0, eps_hat) = super::tweedie(sde, model, &x, ti);
        let x0 = consistency.apply(&x0, config.lambda)?;
        x = match grid.get(i + 1) {
            None => x0,
            Some(&tn) => {
                let (mn, sn) = sde.mean_coeff_std(tn);
                let (a, c) = ddim_coefficients(sde.mean_coeff_std(ti), (mn, sn), config.eta);
                let mut next = x0 * mn + eps_hat * a;
                if c > 0.0 {
                    next += next.randn_like() * c;
                }
                next
            }
        };
        progress(i + 1);
    }
    Ok(SampleOutput { x, nfe: grid.len() })
}

/// The data-consistency step on `x̂₀`: the operator's projection when it has a `T`/`Λ`
/// decomposition, else `cg_iters` steps of [`super::least_squares_consistency`].
pub(crate) struct DataConsistency<'a> {
    op: &'a dyn LinearOperator,
    y: Tensor,
    projection: Option<super::ConsistencyStep<'a>>,
    cg_iters: usize,
}

impl<'a> DataConsistency<'a> {
    pub fn new(
        op: &'a dyn LinearOperator,
        y: &Tensor,
        like: &Tensor,
        cg_iters: usize,
    ) -> Result<Self> {
        let projection = match op.as_decomposed() {
            Some(d) => Some(super::ConsistencyStep::new(d, y, like)?),
            None => None,
        };
        Ok(Self {
            op,
            y: y.shallow_clone(),
            projection,
            cg_iters,
        })
    }

    /// `x + λ (P(x) − x)` with `P` the projection onto the measurement.
    pub fn apply(&self, x: &Tensor, lambda: f64) -> Result<Tensor> {
        if lambda == 0.0 {
            return Ok(x.shallow_clone());
        }
        match &self.projection {
            Some(p) => p.project_clean(x, lambda),
            None => {
                let ls = super::least_squares_consistency(self.op, x, &self.y, self.cg_iters)?;
                Ok(if lambda == 1.0 {
                    ls
                } else {
                    x + (ls - x) * lambda
                })
            }
        }
    }
}

/// `ddim` in [`super::conditional::CONDITIONAL_SAMPLERS`]: the defaults, then the user's `eta`,
/// `lambda`, `cg_iters`.
pub const ENTRY: super::conditional::ConditionalEntry = super::conditional::ConditionalEntry {
    name: "ddim",
    aliases: &["ddnm"],
    about: "few-step DDIM with a data-consistency projection (Song et al. 2021; Wang et al. 2023), any operator",
    build: |s| {
        Ok(Box::new(super::conditional::overlay(
            DdimConfig::default(),
            s.user,
        )?))
    },
};

impl super::conditional::ConditionalSampler for DdimConfig {
    fn name(&self) -> &'static str {
        ENTRY.name
    }
    fn needs_decomposition(&self) -> bool {
        false
    }
    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        DdimConfig::validate(self, sde)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// η = 1 gives the variance of the Gaussian bridge `q(x_{t'} | x_t, x₀)`: for VE
    /// (`m = 1`) `σ'²(σ² − σ'²)/σ²`; η = 0 puts all of `s'` on `ε̂`.
    #[test]
    fn ddim_noise_is_the_bridge_variance_at_eta_one() {
        let (a, c) = ddim_coefficients((1.0, 2.0), (1.0, 1.0), 1.0);
        assert!((c * c - 1.0 * (4.0 - 1.0) / 4.0).abs() < 1e-12);
        assert!((a * a + c * c - 1.0).abs() < 1e-12);
        let (a, c) = ddim_coefficients((0.6, 0.8), (0.8, 0.6), 0.0);
        assert_eq!(c, 0.0);
        assert!((a - 0.6).abs() < 1e-12);
        // VP: DDIM's σ_t(1)² = (1 − ᾱ')/(1 − ᾱ) · (1 − ᾱ/ᾱ').
        let (ab, ab1) = (0.36f64, 0.64f64);
        let (_, c) = ddim_coefficients(
            (ab.sqrt(), (1.0 - ab).sqrt()),
            (ab1.sqrt(), (1.0 - ab1).sqrt()),
            1.0,
        );
        let want = (1.0 - ab1) / (1.0 - ab) * (1.0 - ab / ab1);
        assert!((c * c - want).abs() < 1e-12, "{} vs {want}", c * c);
    }
}
