//! Correctors: score-based MCMC steps that move `x` towards `pₜ` at a fixed `t`
//! (Song et al. 2021, Alg. 4–5; score_sde_pytorch `sampling.py`).
//!
//! Each runs `n_steps` Langevin updates
//! ```text
//! x_mean = x + ε s(x, t),   x = x_mean + √(2ε) z
//! ```
//! and returns `(x, x_mean)` of the last one; they differ in the step size `ε`.

use super::Schedule;
use crate::models::ScoreModel;
use crate::sde::{bcast, Sde};
use crate::{Error, Result};
use tch::Tensor;

/// One corrector update (its `n_steps` inner steps) at time `t` (a `[B]` tensor).
pub trait Corrector {
    /// `(x, x_mean)` after the update.
    fn update(&self, model: &dyn ScoreModel, x: &Tensor, t: &Tensor) -> (Tensor, Tensor);
    /// Score evaluations per update.
    fn nfe_per_step(&self) -> usize;
}

fn check_snr_steps(name: &str, snr: f64, n_steps: usize) -> Result<()> {
    if !(snr.is_finite() && snr > 0.0) {
        return Err(Error::Config(format!(
            "{name} corrector: snr must be positive and finite, got {snr}"
        )));
    }
    if n_steps == 0 {
        return Err(Error::Config(format!(
            "{name} corrector: n_steps must be ≥ 1 (use corrector 'none' to disable it)"
        )));
    }
    Ok(())
}

/// Per-sample Euclidean norms of a batch, averaged over the batch: a 0-dim tensor.
fn mean_norm(v: &Tensor) -> Tensor {
    v.flatten(1, -1)
        .square()
        .sum_dim_intlist(1, false, v.kind())
        .sqrt()
        .mean(v.kind())
}

/// Langevin corrector with the signal-to-noise step size (Song et al. 2021, Alg. 4):
///
/// ```text
/// ε = 2 α_i (snr · ‖z‖ / ‖s(x, t)‖)²,   α_i = 1 − β_i (VP, sub-VP),  α_i = 1 (VE)
/// ```
/// As in score_sde_pytorch, `‖z‖` and `‖s‖` are the batch means of the per-sample Euclidean
/// norms (one step size per batch and time, scaled per sample only through `α_i`). For sub-VP,
/// `α_i` uses the VP schedule `β_i = β(t_i)/N` of the same `β(t)` (score_sde would fail there:
/// its subVPSDE has no `alphas`). Published default: `snr = 0.16`, `n_steps = 1` (CIFAR-10 VE).
pub struct LangevinCorrector {
    schedule: Schedule,
    pub snr: f64,
    pub n_steps: usize,
}

impl LangevinCorrector {
    pub fn new(sde: &dyn Sde, snr: f64, n_steps: usize, like: &Tensor) -> Result<Self> {
        check_snr_steps("Langevin", snr, n_steps)?;
        Ok(Self {
            schedule: Schedule::new(sde, like.kind(), like.device())?,
            snr,
            n_steps,
        })
    }
}

impl Corrector for LangevinCorrector {
    fn update(&self, model: &dyn ScoreModel, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let alpha = self.schedule.alpha(t);
        let mut x = x.shallow_clone();
        let mut x_mean = x.shallow_clone();
        for _ in 0..self.n_steps {
            let grad = model.score(&x, t);
            let noise = x.randn_like();
            let ratio = mean_norm(&noise) / mean_norm(&grad) * self.snr;
            let step = ratio.square() * 2.0 * &alpha;
            x_mean = &x + bcast(&step, &x) * &grad;
            x = &x_mean + bcast(&(step * 2.0).sqrt(), &x) * noise;
        }
        (x, x_mean)
    }
    fn nfe_per_step(&self) -> usize {
        self.n_steps
    }
}

/// NCSN's annealed Langevin step as a corrector (Song & Ermon 2019 via score_sde's `ald`):
///
/// ```text
/// ε = 2 α_i (snr · s(t))²,   s(t) the std of p₀ₜ,   α_i as for Langevin
/// ```
pub struct AnnealedLangevin<'a> {
    sde: &'a dyn Sde,
    schedule: Schedule,
    pub snr: f64,
    pub n_steps: usize,
}

impl<'a> AnnealedLangevin<'a> {
    pub fn new(sde: &'a dyn Sde, snr: f64, n_steps: usize, like: &Tensor) -> Result<Self> {
        check_snr_steps("annealed Langevin", snr, n_steps)?;
        Ok(Self {
            sde,
            schedule: Schedule::new(sde, like.kind(), like.device())?,
            snr,
            n_steps,
        })
    }
}

impl Corrector for AnnealedLangevin<'_> {
    fn update(&self, model: &dyn ScoreModel, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let alpha = self.schedule.alpha(t);
        let b = x.size()[0];
        let ones = Tensor::ones([b, 1], (x.kind(), x.device()));
        let std = self.sde.marginal_prob(&ones, t).1.to_kind(x.kind());
        let step = (std * self.snr).square() * 2.0 * alpha;
        let step_b = bcast(&step, x);
        let noise_scale = bcast(&(&step * 2.0).sqrt(), x);
        let mut x = x.shallow_clone();
        let mut x_mean = x.shallow_clone();
        for _ in 0..self.n_steps {
            let grad = model.score(&x, t);
            let noise = x.randn_like();
            x_mean = &x + &step_b * grad;
            x = &x_mean + &noise_scale * noise;
        }
        (x, x_mean)
    }
    fn nfe_per_step(&self) -> usize {
        self.n_steps
    }
}

/// No corrector: `(x, x)`.
pub struct NoneCorrector;

impl Corrector for NoneCorrector {
    fn update(&self, _model: &dyn ScoreModel, x: &Tensor, _t: &Tensor) -> (Tensor, Tensor) {
        (x.shallow_clone(), x.shallow_clone())
    }
    fn nfe_per_step(&self) -> usize {
        0
    }
}

impl super::CorrectorKind {
    /// Builds this corrector for `sde`; `like` gives the dtype and device of the tables.
    pub fn build<'a>(
        self,
        sde: &'a dyn Sde,
        snr: f64,
        n_steps: usize,
        like: &Tensor,
    ) -> Result<Box<dyn Corrector + 'a>> {
        use super::CorrectorKind as C;
        Ok(match self {
            C::Langevin => Box::new(LangevinCorrector::new(sde, snr, n_steps, like)?),
            C::Ald => Box::new(AnnealedLangevin::new(sde, snr, n_steps, like)?),
            C::None => Box::new(NoneCorrector),
        })
    }
}
