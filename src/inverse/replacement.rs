//! score_sde's conditional PC samplers for inpainting and colorization (Song et al. 2021,
//! "Score-based generative modeling through stochastic differential equations", ICLR, App. I;
//! score_sde_pytorch `controllable_generation.py`: `get_pc_inpainter`, `get_pc_colorizer`),
//! for any [`Decomposed`] operator (`T = I` and a pixel mask for inpainting, the orthonormal
//! colour decoupling for colorization).
//!
//! ```text
//! x(T) = T⁻¹[Λ embed(y) + (I − Λ) T x_prior]
//! for t in linspace(T, eps, N):
//!     x, x_mean ← Corrector(x, t);  replace;   x, x_mean ← Predictor(x, t);  replace
//! replace:  x      ← T⁻¹[Λ (m(t) embed(y) + s(t) T z) + (I − Λ) T x]
//!           x_mean ← T⁻¹[Λ  m(t) embed(y)              + (I − Λ) T x_mean]
//! return x_mean (noise_removal) or x
//! ```
//!
//! Unlike the projection sampler ([`super::projection`]) the replacement follows each step and
//! is always hard (`λ = 1`). score_sde draws the measurement noise white in the transformed
//! domain; `T z` with image-space `z` has the same law for its orthonormal `T` and is the right
//! law for any other `T`. score_sde builds `x_mean` from the noisy `x` (so its returned "mean"
//! keeps the last step's noise in the unknown part); here `x_mean` is the predictor's own
//! noiseless update, as its name says.
//!
//! **When it is exact.** As for the projection sampler with `λ = 1`: a Gaussian prior independent
//! across the kept and dropped coordinates of an orthonormal `T` and noiseless `y` give the exact
//! posterior (up to discretisation); a correlated prior gives an approximation whose dropped
//! block is steered by `y` only through the prior score of the replaced state.

use super::ConsistencyStep;
use crate::models::ScoreModel;
use crate::sampling::{check_batch, check_eps, vec_t, CorrectorKind, PredictorKind, SampleOutput};
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::Decomposed;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Settings (defaults: score_sde's inpainting/colorization notebook with a VE model:
/// reverse-diffusion predictor, Langevin corrector, `snr = 0.16`, one corrector step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplacementConfig {
    pub predictor: PredictorKind,
    pub corrector: CorrectorKind,
    pub snr: f64,
    pub n_steps: usize,
    pub probability_flow: bool,
    /// Return the last `x_mean` (score_sde's `denoise`).
    pub noise_removal: bool,
    /// Final time; `None` = `sde.sampling_eps()`.
    pub eps: Option<f64>,
    /// Warm start (CCDF, [`super::warm_start`]): the time `t₀` the start estimate is diffused
    /// to; `None`: a cold start from the prior at `T`.
    pub t0: Option<f64>,
}

impl Default for ReplacementConfig {
    fn default() -> Self {
        Self {
            predictor: PredictorKind::ReverseDiffusion,
            corrector: CorrectorKind::Langevin,
            snr: 0.16,
            n_steps: 1,
            probability_flow: false,
            noise_removal: true,
            eps: None,
            t0: None,
        }
    }
}

impl ReplacementConfig {
    /// Checks the predictor/corrector combination and `eps` against `sde`.
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        let eps = self.eps.unwrap_or_else(|| sde.sampling_eps());
        check_eps(eps, sde.t_end())?;
        super::warm_start::check_t0(self.t0, sde, eps)?;
        if self.predictor == PredictorKind::None && self.corrector == CorrectorKind::None {
            return Err(Error::Config(
                "replacement sampler with predictor 'none' and corrector 'none' does nothing"
                    .into(),
            ));
        }
        let probe = Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        self.predictor.build(sde, self.probability_flow, &probe)?;
        if self.corrector != CorrectorKind::None {
            self.corrector.build(sde, self.snr, self.n_steps, &probe)?;
        }
        Ok(())
    }
}

/// One sample of `x | y` per measurement in `y` (`[B] ++ op.output_shape()`).
pub fn sample(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn Decomposed,
    y: &Tensor,
    config: &ReplacementConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    sample_warm(sde, model, op, y, config, None, progress)
}

/// [`sample`], from the warm-start estimate `start` (model space) diffused to `config.t0`
/// ([`super::warm_start`]).
pub fn sample_warm(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn Decomposed,
    y: &Tensor,
    config: &ReplacementConfig,
    start: Option<&Tensor>,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    config.validate(sde)?;
    let eps = config.eps.unwrap_or_else(|| sde.sampling_eps());
    let (grid, prior) = super::warm_start::begin(sde, op, y, eps, config.t0, start)?;
    check_batch(&prior, model, "replacement sampler initial state x(T)")?;
    let step = ConsistencyStep::new(op, y, &prior)?;
    // score_sde starts from the measurement in the known part and the prior elsewhere.
    let x = {
        let _g = tch::no_grad_guard();
        step.project_clean(&prior, 1.0)?
    };
    let cfg = config;
    let predictor = cfg.predictor.build(sde, cfg.probability_flow, &x)?;
    let corrector = cfg.corrector.build(sde, cfg.snr, cfg.n_steps, &x)?;
    let n = grid.len();
    let _guard = tch::no_grad_guard();
    let mut x = x;
    let mut x_mean = x.shallow_clone();
    let correct = cfg.corrector != CorrectorKind::None;
    let predict = cfg.predictor != PredictorKind::None;
    for (i, &ti) in grid.iter().enumerate() {
        let t = vec_t(&x, ti);
        if correct {
            let (xc, xm) = corrector.update(model, &x, &t);
            (x, x_mean) = step.replace(sde, &xc, &xm, ti)?;
        }
        if predict {
            let (xp, xm) = predictor.update(model, &x, &t);
            (x, x_mean) = step.replace(sde, &xp, &xm, ti)?;
        }
        progress(i + 1);
    }
    let nfe = n * (predictor.nfe_per_step() + corrector.nfe_per_step());
    let x = if cfg.noise_removal { x_mean } else { x };
    Ok(SampleOutput { x, nfe })
}

/// `score-sde` in [`super::conditional::CONDITIONAL_SAMPLERS`]: score_sde's defaults, then the
/// user's `snr`.
pub const ENTRY: super::conditional::ConditionalEntry = super::conditional::ConditionalEntry {
    name: "score-sde",
    aliases: &["score_sde"],
    about: "replacement sampler (score_sde)",
    build: |s| {
        Ok(Box::new(super::conditional::overlay(
            ReplacementConfig::default(),
            s.user,
        )?))
    },
};

impl super::conditional::ConditionalSampler for ReplacementConfig {
    fn name(&self) -> &'static str {
        ENTRY.name
    }
    fn needs_decomposition(&self) -> bool {
        true
    }
    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        ReplacementConfig::validate(self, sde)
    }
    fn sample(
        &self,
        sde: &dyn Sde,
        model: &dyn ScoreModel,
        op: &dyn scoreinv_operators::LinearOperator,
        y: &Tensor,
        start: Option<&Tensor>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<SampleOutput> {
        let d = op
            .as_decomposed()
            .ok_or_else(|| super::projection::no_decomposition(ENTRY.name, op.name()))?;
        sample_warm(sde, model, d, y, self, start, progress)
    }
    fn steps(&self, sde: &dyn Sde) -> usize {
        super::warm_start::steps(sde, self.eps, self.t0)
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
