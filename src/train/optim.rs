//! Adam with linear warm-up, global-norm gradient clipping, and an exponential moving average of
//! the weights, as score_sde_pytorch's `optimization_manager` and `ExponentialMovingAverage`.
//!
//! * Warm-up: the learning rate of the step taken when `k` steps are done is
//!   `lr · min(k / warmup, 1)` (upstream passes the step counter before incrementing it, so the
//!   very first step has learning rate 0 and only fills Adam's moments).
//! * Clipping: `g ← g · min(1, c / (‖g‖₂ + 1e-6))` over all parameters jointly
//!   (`torch.nn.utils.clip_grad_norm_`).
//! * Adam (Kingma & Ba 2015, `torch.optim.Adam` with L2 `weight_decay`):
//!   `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//!   `p ← p − lr/(1−β₁ᵏ) · m / (√v/√(1−β₂ᵏ) + ε)`.
//! * EMA: `decay = min(rate, (1 + n)/(10 + n))` with `n` the number of updates so far
//!   (after incrementing), `p̄ ← p̄ − (1 − decay)(p̄ − p)`.
//!
//! Adam is written on tensors rather than taken from `tch::nn::Optimizer` because tch gives no
//! access to that optimizer's moment buffers: they could not be saved, and a resumed run would
//! restart from zero moments instead of continuing bit-exactly.

use serde::{Deserialize, Serialize};
use tch::Tensor;

fn d_lr() -> f64 {
    2e-4
}
fn d_b1() -> f64 {
    0.9
}
fn d_b2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_warmup() -> u64 {
    5000
}
fn d_clip() -> f64 {
    1.0
}
fn d_ema() -> f64 {
    0.999
}

/// Optimiser settings; defaults are score_sde_pytorch's `configs/default_*_configs.py`
/// (`optim.*`) and the NCSN++ continuous configs' `model.ema_rate = 0.999` (DDPM configs use
/// 0.9999).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    #[serde(default = "d_lr")]
    pub lr: f64,
    #[serde(default = "d_b1")]
    pub beta1: f64,
    #[serde(default = "d_b2")]
    pub beta2: f64,
    #[serde(default = "d_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// Warm-up steps (0 disables warm-up).
    #[serde(default = "d_warmup")]
    pub warmup: u64,
    /// Maximal global gradient norm (negative disables clipping).
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    /// EMA rate of the weights.
    #[serde(default = "d_ema")]
    pub ema_rate: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: d_lr(),
            beta1: d_b1(),
            beta2: d_b2(),
            eps: d_eps(),
            weight_decay: 0.0,
            warmup: d_warmup(),
            grad_clip: d_clip(),
            ema_rate: d_ema(),
        }
    }
}

impl OptimConfig {
    /// Checks ranges.
    pub fn validate(&self) -> crate::Result<()> {
        let ok = self.lr >= 0.0
            && self.lr.is_finite()
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay >= 0.0
            && (0.0..1.0).contains(&self.ema_rate);
        if ok {
            Ok(())
        } else {
            Err(crate::Error::Config(format!(
                "invalid optimiser settings (need lr >= 0, 0 <= beta1, beta2, ema_rate < 1, eps > 0, weight_decay >= 0): {self:?}"
            )))
        }
    }

    /// Learning rate of the step taken after `step` completed steps.
    pub fn lr_at(&self, step: u64) -> f64 {
        if self.warmup > 0 {
            self.lr * (step as f64 / self.warmup as f64).min(1.0)
        } else {
            self.lr
        }
    }
}

/// Clips the gradients of `params` to global norm `max_norm` (if ≥ 0) and returns the norm
/// before clipping. Parameters without a gradient are skipped.
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params
            .iter()
            .map(|p| p.grad())
            .filter(|g| g.defined())
            .collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads
            .iter()
            .map(|g| g.square().sum(tch::Kind::Float))
            .collect();
        let total = Tensor::stack(&norms, 0).sum(tch::Kind::Float).sqrt();
        let total_v = total.double_value(&[]);
        if max_norm >= 0.0 {
            let coef = ((&total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
            for mut g in grads {
                let _ = g.g_mul_(&coef);
            }
        }
        total_v
    })
}

/// Adam's state: first and second moments per trainable parameter.
pub struct Adam {
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Number of Adam updates taken (the `k` of the bias corrections).
    pub t: u64,
}

impl Adam {
    /// Zero moments for `params`.
    pub fn new(params: &[Tensor]) -> Self {
        Self {
            m: params.iter().map(|p| p.zeros_like().detach()).collect(),
            v: params.iter().map(|p| p.zeros_like().detach()).collect(),
            t: 0,
        }
    }

    /// One update with learning rate `lr` using the parameters' current gradients.
    pub fn step(&mut self, params: &[Tensor], cfg: &OptimConfig, lr: f64) {
        self.t += 1;
        let k = self.t as i32;
        let bc1 = 1.0 - cfg.beta1.powi(k);
        let bc2 = 1.0 - cfg.beta2.powi(k);
        tch::no_grad(|| {
            for ((p, m), v) in params.iter().zip(self.m.iter_mut()).zip(self.v.iter_mut()) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = if cfg.weight_decay > 0.0 {
                    g + p * cfg.weight_decay
                } else {
                    g
                };
                let _ = m.g_mul_scalar_(cfg.beta1);
                let _ = m.g_add_(&(&g * (1.0 - cfg.beta1)));
                let _ = v.g_mul_scalar_(cfg.beta2);
                let _ = v.g_add_(&(g.square() * (1.0 - cfg.beta2)));
                let denom = v.sqrt() / bc2.sqrt() + cfg.eps;
                let update = (&*m / denom) * (lr / bc1);
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&update);
            }
        });
    }
}

/// Exponential moving average of the weights.
pub struct Ema {
    pub shadow: Vec<Tensor>,
    pub rate: f64,
    pub num_updates: u64,
}

impl Ema {
    /// Starts the average at the current weights.
    pub fn new(params: &[Tensor], rate: f64) -> Self {
        Self {
            shadow: params.iter().map(|p| p.detach().copy()).collect(),
            rate,
            num_updates: 0,
        }
    }

    /// One update towards `params`.
    pub fn update(&mut self, params: &[Tensor]) {
        self.num_updates += 1;
        let n = self.num_updates as f64;
        let decay = self.rate.min((1.0 + n) / (10.0 + n));
        tch::no_grad(|| {
            for (s, p) in self.shadow.iter_mut().zip(params) {
                let diff = (&*s - p.detach()) * (1.0 - decay);
                let _ = s.g_sub_(&diff);
            }
        });
    }
}

/// One guarded optimiser update from a scalar `loss` whose value is `loss_value`, at 0-based
/// `step` with learning rate `lr`: a non-finite loss or gradient norm is refused with
/// [`crate::Error::Diverged`] (`"{what} diverged at step …; no update was applied"`), otherwise
/// backward, clip the global gradient norm, Adam on `trainable`, EMA over `params`. Returns the
/// gradient norm before clipping.
#[allow(clippy::too_many_arguments)]
pub fn guarded_update(
    what: &str,
    step: u64,
    loss: &Tensor,
    loss_value: f64,
    lr: f64,
    trainable: &[Tensor],
    params: &[Tensor],
    adam: &mut Adam,
    ema: &mut Ema,
    cfg: &OptimConfig,
) -> crate::Result<f64> {
    let diverged = |why: String| {
        crate::Error::Diverged(format!(
            "{what} diverged at step {}: {why} (learning rate {lr:e}); no update was applied",
            step + 1
        ))
    };
    if !loss_value.is_finite() {
        return Err(diverged(format!("loss is {loss_value}")));
    }
    loss.backward();
    let gn = clip_grad_norm(trainable, cfg.grad_clip);
    if !gn.is_finite() {
        return Err(diverged(format!(
            "gradient norm is {gn} (loss {loss_value})"
        )));
    }
    adam.step(trainable, cfg, lr);
    ema.update(params);
    Ok(gn)
}
