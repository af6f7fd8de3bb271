//! DiffPIR: denoising diffusion models for plug-and-play image restoration (Zhu, Zhang, Liang,
//! Cao, Wen, Timofte & Van Gool 2023, CVPR, Alg. 1), for any linear operator and any SDE with a
//! Gaussian transition kernel `x(t) = m(t) x(0) + s(t) z` (VE, VP, sub-VP).
//!
//! Half-quadratic splitting: on a grid `t₁ > … > t_K = ε` of `K` = the SDE's `N` steps, each step
//! evaluates the score once,
//!
//! ```text
//! x̂₀  = (x + s² s_θ(x, t)) / m                                  (denoiser, Tweedie)
//! x̂₀' = argmin_z ‖y − A z‖² + ρ_t ‖z − x̂₀‖²,   ρ_t = λ σ_y² / σ_t²,   σ_t = s/m
//! ε̂   = (x − m x̂₀') / s                                          (the effective noise)
//! x'  = m' x̂₀' + s' (√(1 − ζ) ε̂ + √ζ z)
//! ```
//!
//! The data step is solved by `cg_iters` conjugate-gradient iterations on the normal equations
//! `(AᴴA + ρ_t I) u = Aᴴ(y − A x̂₀)`, `x̂₀' = x̂₀ + u` (exact for any operator with its adjoint;
//! the paper's closed forms are the same minimiser). `σ_y` is the measurement noise, given
//! relative to the peak of `|y|` per sample like the simulation's `gaussian:σ`; `σ_y = 0` fits
//! the measurement exactly (least squares). The last step returns `x̂₀'`. Defaults: deepinv's
//! (`lambda_ = 7`, `zeta = 0.1`).
//!
//! **When it is exact.** Not in general (the data step is a proximal step on a point estimate,
//! and the re-noising mixes ε̂ with fresh noise by a heuristic ζ); `tests/inverse_fewstep.rs`
//! measures how close to the exact posterior of a correlated Gaussian prior it gets.

use crate::models::ScoreModel;
use crate::sampling::{check_batch, check_eps, SampleOutput};
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::LinearOperator;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Settings of DiffPIR (serde; defaults: deepinv 0.5's `DiffPIR`). The field names carry the
/// method's name on the command line and in the study settings (`--diffpir-lambda`,
/// `--diffpir-zeta`): DPS's `ζ` and the projection sampler's `λ` mean other things.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffPirConfig {
    /// `λ > 0` of `ρ_t = λ σ_y² / σ_t²`: the prior's weight against the measurement.
    #[serde(rename = "diffpir_lambda")]
    pub lambda: f64,
    /// `ζ ∈ [0, 1]`: the share of fresh noise in the re-noising (0: deterministic).
    #[serde(rename = "diffpir_zeta")]
    pub zeta: f64,
    /// Measurement noise standard deviation relative to the peak of `|y|` (per sample).
    pub sigma_y: f64,
    /// Conjugate-gradient iterations of the data step.
    pub cg_iters: usize,
    /// Final time; `None` = `sde.sampling_eps()`.
    pub eps: Option<f64>,
    /// Warm start (CCDF, [`super::warm_start`]): the time `t₀` the start estimate is diffused
    /// to; `None`: a cold start from the prior at `T`.
    pub t0: Option<f64>,
}

impl Default for DiffPirConfig {
    fn default() -> Self {
        Self {
            lambda: 7.0,
            zeta: 0.1,
            sigma_y: 0.01,
            cg_iters: 10,
            eps: None,
            t0: None,
        }
    }
}

impl DiffPirConfig {
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return Err(Error::Config(format!(
                "DiffPIR: diffpir_lambda must be finite and > 0, got {}",
                self.lambda
            )));
        }
        if !(self.zeta.is_finite() && (0.0..=1.0).contains(&self.zeta)) {
            return Err(Error::Config(format!(
                "DiffPIR: diffpir_zeta must lie in [0, 1], got {}",
                self.zeta
            )));
        }
        if !(self.sigma_y.is_finite() && self.sigma_y >= 0.0) {
            return Err(Error::Config(format!(
                "DiffPIR: sigma_y must be finite and ≥ 0, got {}",
                self.sigma_y
            )));
        }
        if self.cg_iters == 0 {
            return Err(Error::Config(
                "DiffPIR: cg_iters must be at least 1 (the data step)".into(),
            ));
        }
        let eps = self.eps.unwrap_or_else(|| sde.sampling_eps());
        check_eps(eps, sde.t_end())?;
        super::warm_start::check_t0(self.t0, sde, eps)
    }
}

/// One DiffPIR sample per measurement in `y` (`[B] ++ op.output_shape()`), from the warm-start
/// estimate `start` (model space) diffused to `config.t0` when given.
pub fn sample_warm(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn LinearOperator,
    y: &Tensor,
    config: &DiffPirConfig,
    start: Option<&Tensor>,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    config.validate(sde)?;
    let eps = config.eps.unwrap_or_else(|| sde.sampling_eps());
    let (grid, mut x) = super::warm_start::begin(sde, op, y, eps, config.t0, start)?;
    check_batch(&x, model, "DiffPIR initial state")?;
    let _g = tch::no_grad_guard();
    let kind = x.kind();
    // σ_y² per sample: (σ_rel · max |y_b|)².
    let peak = y
        .abs()
        .flatten(1, -1)
        .amax(1, false)
        .to_kind(if kind == Kind::Double {
            Kind::Double
        } else {
            Kind::Float
        });
    let sigma_y2 = (peak * config.sigma_y).square();
    let (keep, fresh) = ((1.0 - config.zeta).sqrt(), config.zeta.sqrt());
    for (i, &ti) in grid.iter().enumerate() {
        let (m, s) = sde.mean_coeff_std(ti);
        let (x0, _) = super::tweedie(sde, model, &x, ti);
        let rho = &sigma_y2 * (config.lambda * (m / s).powi(2));
        let x0 = super::regularised_least_squares(op, &x0, y, &rho, config.cg_iters)?;
        x = match grid.get(i + 1) {
            None => x0,
            Some(&tn) => {
                let (mn, sn) = sde.mean_coeff_std(tn);
                let eps_hat = (&x - &x0 * m) / s;
                let noise = if fresh > 0.0 {
                    eps_hat * keep + x.randn_like() * fresh
                } else {
                    eps_hat
                };
                x0 * mn + noise * sn
            }
        };
        progress(i + 1);
    }
    Ok(SampleOutput { x, nfe: grid.len() })
}

/// `diffpir` in [`super::conditional::CONDITIONAL_SAMPLERS`]: the defaults, then the user's
/// `diffpir_lambda`, `diffpir_zeta`, `sigma_y`, `cg_iters`.
pub const ENTRY: super::conditional::ConditionalEntry = super::conditional::ConditionalEntry {
    name: "diffpir",
    aliases: &[],
    about: "DiffPIR half-quadratic splitting (Zhu et al. 2023), few steps, any operator",
    build: |s| {
        Ok(Box::new(super::conditional::overlay(
            DiffPirConfig::default(),
            s.user,
        )?))
    },
};

impl super::conditional::ConditionalSampler for DiffPirConfig {
    fn name(&self) -> &'static str {
        ENTRY.name
    }
    fn needs_decomposition(&self) -> bool {
        false
    }
    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        DiffPirConfig::validate(self, sde)
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
