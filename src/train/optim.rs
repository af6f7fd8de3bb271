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
fn d_flat() -> bool {
    true
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
    /// Keep parameters, gradients, Adam's moments and the EMA in one contiguous buffer each
    /// ([`FlatParams`]): a fixed number of kernels per step instead of ~10 per tensor.
    #[serde(default = "d_flat")]
    pub flat_buffers: bool,
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
            flat_buffers: d_flat(),
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
        clip_to(&total, max_norm, grads)
    })
}

/// Scales `grads` by `min(1, c / (‖g‖₂ + 1e-6))` given their joint norm `total`; returns it.
fn clip_to(total: &Tensor, max_norm: f64, grads: Vec<Tensor>) -> f64 {
    let total_v = total.double_value(&[]);
    if max_norm >= 0.0 {
        let coef = ((total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
        for mut g in grads {
            let _ = g.g_mul_(&coef);
        }
    }
    total_v
}

/// A network's parameters re-homed into one contiguous buffer (`set_data`: every parameter stays
/// a tensor of its own shape, viewing its segment; segments start at multiples of 16 elements,
/// the gaps stay zero), and, once the first backward pass has made them, their gradients into a
/// second one. Adam, the global-norm clip, zeroing and the EMA then run a fixed handful of
/// kernels on the buffers instead of ~10 per tensor: what PyTorch's `foreach`/fused Adam buys
/// on a GPU, where a small network's step is bound by kernel launches. Element by element the
/// arithmetic is the per-tensor one, so the trajectory is the same (the gradient norm is summed
/// in another order: equal up to rounding).
pub struct FlatParams {
    /// `[n]`, all parameters.
    pub data: Tensor,
    /// `[n]`, all gradients (zero where a parameter has none), once homed.
    grads: Option<Tensor>,
    /// `(offset, numel, shape)` of each parameter.
    segments: Vec<(i64, i64, Vec<i64>)>,
}

impl FlatParams {
    /// Moves `params` into one buffer (values kept). None when there are none, or they differ
    /// in dtype or device.
    pub fn rehome(params: &[Tensor]) -> Option<Self> {
        let first = params.first()?;
        let (kind, device) = (first.kind(), first.device());
        if params
            .iter()
            .any(|p| p.kind() != kind || p.device() != device)
        {
            return None;
        }
        let mut segments = Vec::with_capacity(params.len());
        let mut n = 0i64;
        for p in params {
            let numel = p.numel() as i64;
            segments.push((n, numel, p.size()));
            n += (numel + 15) / 16 * 16;
        }
        let flat = Self {
            data: Tensor::zeros([n], (kind, device)),
            grads: None,
            segments,
        };
        tch::no_grad(|| {
            for (k, p) in params.iter().enumerate() {
                let view = flat.view(&flat.data, k);
                view.shallow_clone().copy_(p);
                let mut p = p.shallow_clone();
                p.set_data(&view);
            }
        });
        Some(flat)
    }

    /// Number of parameters (segments).
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Segment `k` of a buffer laid out like the parameters, in the parameter's shape.
    pub fn view(&self, buf: &Tensor, k: usize) -> Tensor {
        let (off, numel, shape) = &self.segments[k];
        buf.narrow(0, *off, *numel).view(shape.as_slice())
    }

    /// Moves the gradients of `params` (the parameters this buffer was made from, in order)
    /// into the gradient buffer once every parameter that requires a gradient has one; later
    /// backward passes accumulate into it in place. Returns whether the gradients are homed.
    pub fn home_grads(&mut self, params: &[Tensor]) -> bool {
        if self.grads.is_some() {
            return true;
        }
        if params.len() != self.segments.len() {
            return false;
        }
        let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).collect();
        if params
            .iter()
            .zip(&grads)
            .any(|(p, g)| p.requires_grad() && !g.defined())
        {
            return false;
        }
        let buf = self.data.zeros_like();
        tch::no_grad(|| {
            for (k, g) in grads.iter().enumerate() {
                if g.defined() {
                    let view = self.view(&buf, k);
                    view.shallow_clone().copy_(g);
                    let mut g = g.shallow_clone();
                    g.set_data(&view);
                }
            }
        });
        self.grads = Some(buf);
        true
    }

    /// The gradient buffer, once homed.
    pub fn grads(&self) -> Option<&Tensor> {
        self.grads.as_ref()
    }
}

/// Zeroes the gradients of `params` (one kernel when they live in `flat`'s buffer).
pub fn zero_grads(params: &[Tensor], flat: Option<&FlatParams>) {
    if let Some(g) = flat.and_then(|f| f.grads()) {
        let _ = g.shallow_clone().zero_();
        return;
    }
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// [`clip_grad_norm`] on `flat`'s gradient buffer when its gradients are homed (a few kernels
/// whatever the number of tensors), else per tensor on `params`.
pub fn clip_grad_norm_flat(params: &[Tensor], flat: Option<&FlatParams>, max_norm: f64) -> f64 {
    let Some(g) = flat.and_then(|f| f.grads()) else {
        return clip_grad_norm(params, max_norm);
    };
    tch::no_grad(|| {
        let total = g.square().sum(tch::Kind::Float).sqrt();
        clip_to(&total, max_norm, vec![g.shallow_clone()])
    })
}

/// Adam's moments in buffers laid out like a [`FlatParams`].
struct FlatMoments {
    m: Tensor,
    v: Tensor,
}

/// One Adam update of `p` with gradient `g` (weight decay already added) and moments `m`, `v`,
/// in place: the same kernels for one tensor or a whole flat buffer.
#[allow(clippy::too_many_arguments)]
fn adam_update(
    p: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    cfg: &OptimConfig,
    lr: f64,
    bc1: f64,
    bc2: f64,
) {
    let (mut p, mut m, mut v) = (p.shallow_clone(), m.shallow_clone(), v.shallow_clone());
    let _ = m.g_mul_scalar_(cfg.beta1);
    let _ = m.g_add_(&(g * (1.0 - cfg.beta1)));
    let _ = v.g_mul_scalar_(cfg.beta2);
    let _ = v.g_add_(&(g.square() * (1.0 - cfg.beta2)));
    let denom = v.sqrt() / bc2.sqrt() + cfg.eps;
    let update = (&m / denom) * (lr / bc1);
    let _ = p.g_sub_(&update);
}

/// Adam's state: first and second moments per trainable parameter.
pub struct Adam {
    /// First moments (views into one buffer when made by [`Adam::with_flat`]).
    pub m: Vec<Tensor>,
    /// Second moments (likewise).
    pub v: Vec<Tensor>,
    /// Number of Adam updates taken (the `k` of the bias corrections).
    pub t: u64,
    flat: Option<FlatMoments>,
}

impl Adam {
    /// Zero moments for `params`.
    pub fn new(params: &[Tensor]) -> Self {
        Self {
            m: params.iter().map(|p| p.zeros_like().detach()).collect(),
            v: params.iter().map(|p| p.zeros_like().detach()).collect(),
            t: 0,
            flat: None,
        }
    }

    /// Zero moments in buffers laid out like `flat`, for its parameters whose indices are
    /// `trainable` (`m`/`v` are their views; the others never get a gradient, so their
    /// moments stay zero and they are not moved).
    pub fn with_flat(flat: &FlatParams, trainable: &[usize]) -> Self {
        let m_buf = flat.data.zeros_like();
        let v_buf = flat.data.zeros_like();
        Self {
            m: trainable.iter().map(|&k| flat.view(&m_buf, k)).collect(),
            v: trainable.iter().map(|&k| flat.view(&v_buf, k)).collect(),
            t: 0,
            flat: Some(FlatMoments { m: m_buf, v: v_buf }),
        }
    }

    /// [`Self::step`] on the whole buffers when this state was made by [`Self::with_flat`] from
    /// `flat`, its gradients are homed and there is no weight decay (which would move the
    /// parameters without a gradient); per tensor otherwise.
    pub fn step_flat(
        &mut self,
        params: &[Tensor],
        flat: Option<&FlatParams>,
        cfg: &OptimConfig,
        lr: f64,
    ) {
        let grads = flat.and_then(|f| f.grads().map(|g| (f, g)));
        let (true, Some((f, g)), true) = (self.flat.is_some(), grads, cfg.weight_decay == 0.0)
        else {
            return self.step(params, cfg, lr);
        };
        let (bc1, bc2) = self.advance(cfg);
        let mom = self.flat.as_ref().expect("checked above");
        tch::no_grad(|| adam_update(&f.data, &mom.m, &mom.v, g, cfg, lr, bc1, bc2));
    }

    /// Counts the update and returns its bias corrections `(1 − β₁ᵏ, 1 − β₂ᵏ)`.
    fn advance(&mut self, cfg: &OptimConfig) -> (f64, f64) {
        self.t += 1;
        let k = self.t as i32;
        (1.0 - cfg.beta1.powi(k), 1.0 - cfg.beta2.powi(k))
    }

    /// One update with learning rate `lr` using the parameters' current gradients.
    pub fn step(&mut self, params: &[Tensor], cfg: &OptimConfig, lr: f64) {
        let (bc1, bc2) = self.advance(cfg);
        tch::no_grad(|| {
            for ((p, m), v) in params.iter().zip(&self.m).zip(&self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = if cfg.weight_decay > 0.0 {
                    g + p * cfg.weight_decay
                } else {
                    g
                };
                adam_update(p, m, v, &g, cfg, lr, bc1, bc2);
            }
        });
    }
}

/// Exponential moving average of the weights.
pub struct Ema {
    /// Shadow of every parameter (views into one buffer when made by [`Ema::with_flat`]).
    pub shadow: Vec<Tensor>,
    pub rate: f64,
    pub num_updates: u64,
    /// The shadow buffer, when made by [`Ema::with_flat`].
    flat: Option<Tensor>,
}

impl Ema {
    /// Starts the average at the current weights.
    pub fn new(params: &[Tensor], rate: f64) -> Self {
        Self {
            shadow: params.iter().map(|p| p.detach().copy()).collect(),
            rate,
            num_updates: 0,
            flat: None,
        }
    }

    /// Starts the average at the current weights of `flat`, kept in a buffer laid out like it
    /// (one update = two kernels).
    pub fn with_flat(flat: &FlatParams, rate: f64) -> Self {
        let buf = flat.data.detach().copy();
        Self {
            shadow: (0..flat.len()).map(|k| flat.view(&buf, k)).collect(),
            rate,
            num_updates: 0,
            flat: Some(buf),
        }
    }

    /// One update towards `params`.
    pub fn update(&mut self, params: &[Tensor]) {
        self.update_flat(params, None);
    }

    /// [`Self::update`], on the whole buffers when this average was made by
    /// [`Self::with_flat`] from `flat`.
    pub fn update_flat(&mut self, params: &[Tensor], flat: Option<&FlatParams>) {
        self.num_updates += 1;
        let n = self.num_updates as f64;
        let decay = self.rate.min((1.0 + n) / (10.0 + n));
        // p̄ ← p̄ − (1 − decay)(p̄ − p), in place.
        let step = |s: &Tensor, p: &Tensor| {
            let diff = (s - p.detach()) * (1.0 - decay);
            let _ = s.shallow_clone().g_sub_(&diff);
        };
        tch::no_grad(|| match (&self.flat, flat) {
            (Some(s), Some(f)) => step(s, &f.data),
            _ => {
                for (s, p) in self.shadow.iter().zip(params) {
                    step(s, p);
                }
            }
        });
    }
}

/// A network's variables (sorted by name), the indices of the trainable ones, Adam over those
/// and the EMA over all of them: on flat buffers when `cfg.flat_buffers` ([`FlatParams`]).
pub struct OptimState {
    pub names: Vec<String>,
    pub params: Vec<Tensor>,
    pub trainable: Vec<usize>,
    pub adam: Adam,
    pub ema: Ema,
    pub flat: Option<FlatParams>,
}

impl OptimState {
    /// Fresh state (zero moments, the EMA at the current weights) for the variables of `vs`.
    pub fn new(vs: &tch::nn::VarStore, cfg: &OptimConfig) -> Self {
        let vars = crate::models::sorted_variables(vs);
        let names: Vec<String> = vars.iter().map(|(n, _)| n.clone()).collect();
        let params: Vec<Tensor> = vars.into_iter().map(|(_, t)| t).collect();
        let trainable: Vec<usize> = (0..params.len())
            .filter(|&i| params[i].requires_grad())
            .collect();
        let flat = if cfg.flat_buffers {
            FlatParams::rehome(&params)
        } else {
            None
        };
        let (adam, ema) = match &flat {
            Some(f) => (
                Adam::with_flat(f, &trainable),
                Ema::with_flat(f, cfg.ema_rate),
            ),
            None => {
                let tp: Vec<Tensor> = trainable
                    .iter()
                    .map(|&i| params[i].shallow_clone())
                    .collect();
                (Adam::new(&tp), Ema::new(&params, cfg.ema_rate))
            }
        };
        Self {
            names,
            params,
            trainable,
            adam,
            ema,
            flat,
        }
    }

    /// `(name, tensor)` of the current weights, sorted by name.
    pub fn weights(&self) -> Vec<(String, Tensor)> {
        self.named(self.params.iter().map(|p| p.detach().copy()))
    }

    /// `(name, tensor)` of the EMA weights.
    pub fn ema_weights(&self) -> Vec<(String, Tensor)> {
        self.named(self.ema.shadow.iter().map(|p| p.copy()))
    }

    fn named(&self, tensors: impl Iterator<Item = Tensor>) -> Vec<(String, Tensor)> {
        self.names.iter().cloned().zip(tensors).collect()
    }

    /// Replaces the current weights with the EMA weights (in place: flat buffers stay homed).
    pub fn load_ema(&mut self) {
        tch::no_grad(|| {
            for (p, s) in self.params.iter_mut().zip(&self.ema.shadow) {
                p.copy_(s);
            }
        });
    }

    /// Runs `f` on the EMA weights (score_sde's `ema.store` / `ema.copy_to` / `ema.restore`
    /// around an evaluation): they are copied into the parameters, and the trained weights
    /// copied back afterwards, whatever `f` returns, so the training trajectory is untouched.
    pub fn with_ema<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let backup: Vec<Tensor> = self.params.iter().map(|p| p.detach().copy()).collect();
        self.load_ema();
        let out = f();
        tch::no_grad(|| {
            for (p, b) in self.params.iter_mut().zip(&backup) {
                p.copy_(b);
            }
        });
        out
    }

    /// The trainable parameters (shallow clones), in order.
    pub fn trainable_params(&self) -> Vec<Tensor> {
        self.trainable
            .iter()
            .map(|&i| self.params[i].shallow_clone())
            .collect()
    }

    /// The tensors of a checkpoint: `model/<var>` and `ema/<var>` for every variable,
    /// `adam_m/<var>` and `adam_v/<var>` for the trainable ones (the layout of
    /// [`crate::train::checkpoint`]).
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        let mut tensors = Vec::with_capacity(4 * self.params.len());
        for (i, name) in self.names.iter().enumerate() {
            tensors.push((format!("model/{name}"), self.params[i].detach()));
            tensors.push((format!("ema/{name}"), self.ema.shadow[i].shallow_clone()));
        }
        for (k, &i) in self.trainable.iter().enumerate() {
            let name = &self.names[i];
            tensors.push((format!("adam_m/{name}"), self.adam.m[k].shallow_clone()));
            tensors.push((format!("adam_v/{name}"), self.adam.v[k].shallow_clone()));
        }
        tensors
    }

    /// Restores the state [`Self::checkpoint_tensors`] wrote (in place, so flat buffers stay
    /// homed), at optimiser step `step` with `ema_num_updates` EMA updates.
    pub fn load_checkpoint(
        &mut self,
        file: &crate::train::checkpoint::TensorFile,
        device: tch::Device,
        step: u64,
        ema_num_updates: u64,
    ) -> crate::Result<()> {
        tch::no_grad(|| -> crate::Result<()> {
            for (i, name) in self.names.iter().enumerate() {
                let shape = self.params[i].size();
                let t = file.tensor(&format!("model/{name}"), Some(&shape), device)?;
                self.params[i].copy_(&t);
                let e = file.tensor(&format!("ema/{name}"), Some(&shape), device)?;
                self.ema.shadow[i].copy_(&e);
            }
            for (k, &i) in self.trainable.iter().enumerate() {
                let shape = self.params[i].size();
                let name = &self.names[i];
                let m = file.tensor(&format!("adam_m/{name}"), Some(&shape), device)?;
                self.adam.m[k].copy_(&m);
                let v = file.tensor(&format!("adam_v/{name}"), Some(&shape), device)?;
                self.adam.v[k].copy_(&v);
            }
            Ok(())
        })?;
        self.adam.t = step;
        self.ema.num_updates = ema_num_updates;
        Ok(())
    }
}

/// One guarded optimiser update from a scalar `loss` whose value is `loss_value`, at 0-based
/// `step` with learning rate `lr`: a non-finite loss or gradient norm is refused with
/// [`crate::Error::Diverged`] (`"{what} diverged at step …; no update was applied"`), otherwise
/// backward, clip the global gradient norm, Adam on `trainable`, EMA over `params`; with `flat`
/// (made from `params`), on its buffers once the gradients are homed there. Returns the
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
    flat: Option<&mut FlatParams>,
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
    let mut flat = flat;
    if let Some(f) = flat.as_mut() {
        f.home_grads(params);
    }
    let flat = flat.as_deref();
    let gn = clip_grad_norm_flat(trainable, flat, cfg.grad_clip);
    if !gn.is_finite() {
        return Err(diverged(format!(
            "gradient norm is {gn} (loss {loss_value})"
        )));
    }
    adam.step_flat(trainable, flat, cfg, lr);
    ema.update_flat(params, flat);
    Ok(gn)
}
