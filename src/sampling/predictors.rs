//! Predictors: one step of a numerical solver of the reverse-time SDE
//! `dx = [f(x,t) − g(t)² ∇ log pₜ(x)] dt + g(t) dw̄`, from `t` to `t − Δt`
//! (Song et al. 2021, §4.2 and App. F; score_sde_pytorch `sampling.py`).
//!
//! Every predictor returns `(x, x_mean)`: the new state and the same state without the noise
//! added in this step. Each evaluates the score once (except [`NonePredictor`]).

use super::Schedule;
use crate::models::ScoreModel;
use crate::sde::{bcast, Sde, SdeKind};
use crate::{Error, Result};
use tch::Tensor;

/// One predictor step at time `t` (a `[B]` tensor).
pub trait Predictor {
    /// `(x, x_mean)` after one step from `t` towards `t − T/N`.
    fn update(&self, model: &dyn ScoreModel, x: &Tensor, t: &Tensor) -> (Tensor, Tensor);
    /// Score evaluations per step.
    fn nfe_per_step(&self) -> usize {
        1
    }
}

/// Euler–Maruyama on the reverse SDE with `Δt = −T/N`:
///
/// ```text
/// x_mean = x − [f(x,t) − g² s(x,t)] Δt̄,   x = x_mean + g √Δt̄ z,   Δt̄ = T/N
/// ```
/// With `probability_flow` it is Euler on the ODE (`½ g²`, no noise).
pub struct EulerMaruyama<'a> {
    pub sde: &'a dyn Sde,
    pub probability_flow: bool,
}

impl Predictor for EulerMaruyama<'_> {
    fn update(&self, model: &dyn ScoreModel, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let dt = -self.sde.t_end() / self.sde.n_steps() as f64;
        let score = model.score(x, t);
        let (drift, diffusion) = self.sde.reverse_sde(x, t, &score, self.probability_flow);
        let x_mean = x + drift * dt;
        if self.probability_flow {
            return (x_mean.shallow_clone(), x_mean);
        }
        let z = x.randn_like();
        let x_new = &x_mean + bcast(&diffusion, x) * (-dt).sqrt() * z;
        (x_new, x_mean)
    }
}

/// Reverse diffusion: the reverse of the SDE's own discretisation
/// `x_{i+1} = x_i + f_i + G_i z` ([`Sde::discretize`]):
///
/// ```text
/// x_mean = x − f_i + G_i² s(x, t_i),   x = x_mean + G_i z
/// ```
/// (score_sde's default predictor; `½ G_i²` and no noise with `probability_flow`).
pub struct ReverseDiffusion<'a> {
    pub sde: &'a dyn Sde,
    pub probability_flow: bool,
}

impl Predictor for ReverseDiffusion<'_> {
    fn update(&self, model: &dyn ScoreModel, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let score = model.score(x, t);
        let (f, g) = self
            .sde
            .reverse_discretize(x, t, &score, self.probability_flow);
        let x_mean = x - f;
        if self.probability_flow {
            return (x_mean.shallow_clone(), x_mean);
        }
        let z = x.randn_like();
        let x_new = &x_mean + bcast(&g, x) * z;
        (x_new, x_mean)
    }
}

/// Ancestral sampling of the discrete chains (Song et al. 2021, eqs. 46–47):
///
/// ```text
/// VE (NCSN chain, σ_{−1} = 0):
///   x_mean = x + (σ_i² − σ_{i−1}²) s(x, t_i)
///   x      = x_mean + √(σ_{i−1}² (σ_i² − σ_{i−1}²) / σ_i²) z
/// VP (DDPM posterior step, Ho et al. 2020):
///   x_mean = (x + β_i s(x, t_i)) / √(1 − β_i),   x = x_mean + √β_i z
/// ```
/// Sub-VP has no discrete Markov chain whose posterior this could invert: refused.
pub struct AncestralSampling {
    schedule: Schedule,
}

impl AncestralSampling {
    /// Refuses sub-VP SDEs and `probability_flow` (ancestral sampling is stochastic).
    pub fn new(sde: &dyn Sde, probability_flow: bool, like: &Tensor) -> Result<Self> {
        if probability_flow {
            return Err(Error::Config(
                "the ancestral-sampling predictor has no probability-flow version; use \
                 reverse-diffusion or euler-maruyama with probability_flow"
                    .into(),
            ));
        }
        if sde.kind() == SdeKind::SubVp {
            return Err(Error::Config(
                "the ancestral-sampling predictor supports VE and VP SDEs only (sub-VP has no \
                 discrete ancestral chain); use reverse-diffusion or euler-maruyama"
                    .into(),
            ));
        }
        Ok(Self {
            schedule: Schedule::new(sde, like.kind(), like.device())?,
        })
    }
}

impl Predictor for AncestralSampling {
    fn update(&self, model: &dyn ScoreModel, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let score = model.score(x, t);
        let z = x.randn_like();
        match self.schedule.kind {
            SdeKind::Ve => {
                let (sigma, prev) = self.schedule.sigma_pair(t);
                let (s2, p2) = (sigma.square(), prev.square());
                let jump = &s2 - &p2;
                let x_mean = x + bcast(&jump, x) * score;
                let std = (&p2 * &jump / &s2).sqrt();
                let x_new = &x_mean + bcast(&std, x) * z;
                (x_new, x_mean)
            }
            _ => {
                let beta = self.schedule.beta(t);
                let x_mean = (x + bcast(&beta, x) * score) / bcast(&(-&beta + 1.0).sqrt(), x);
                let x_new = &x_mean + bcast(&beta.sqrt(), x) * z;
                (x_new, x_mean)
            }
        }
    }
}

/// No predictor: `(x, x)`, no score evaluation (corrector-only sampling).
pub struct NonePredictor;

impl Predictor for NonePredictor {
    fn update(&self, _model: &dyn ScoreModel, x: &Tensor, _t: &Tensor) -> (Tensor, Tensor) {
        (x.shallow_clone(), x.shallow_clone())
    }
    fn nfe_per_step(&self) -> usize {
        0
    }
}

impl super::PredictorKind {
    /// Builds this predictor for `sde`; `like` gives the dtype and device of the tables.
    pub fn build<'a>(
        self,
        sde: &'a dyn Sde,
        probability_flow: bool,
        like: &Tensor,
    ) -> Result<Box<dyn Predictor + 'a>> {
        use super::PredictorKind as P;
        Ok(match self {
            P::EulerMaruyama => Box::new(EulerMaruyama {
                sde,
                probability_flow,
            }),
            P::ReverseDiffusion => Box::new(ReverseDiffusion {
                sde,
                probability_flow,
            }),
            P::Ancestral => Box::new(AncestralSampling::new(sde, probability_flow, like)?),
            P::None => Box::new(NonePredictor),
        })
    }
}
