//! [`NetScore`]: a time-conditioned network plus its SDE as a [`ScoreModel`], following
//! score_sde_pytorch's `get_score_fn` for continuous-time training.
//!
//! * VE: the network is conditioned on `c = σ(t)` (the std of `marginal_prob`) and its output is
//!   the score: `s(x, t) = F(x, σ(t))`. NCSN++ with `scale_by_sigma` divides by σ itself; for a
//!   network that does not, [`NetScoreOptions::scale_by_sigma`] makes the wrapper do it:
//!   `s = F(x, σ) / σ` (the network then predicts `σ·s ≈ −z`, an O(1) target).
//! * VP / sub-VP: `c = 999·t` (`(N−1)·t` with score_sde's fixed N = 1000 for continuous
//!   training), the network predicts the noise `ε` and `s(x, t) = −F(x, 999 t) / std(t)` with
//!   `std(t)` the std of `marginal_prob`.
//!
//! The discrete losses (NCSN, DDPM) condition on the grid values instead: σ_i for VE, the
//! integer timestep i for VP, which coincide with the continuous conditioning on the grid.

use super::{ScoreModel, TimeConditionedNet};
use crate::sde::{bcast, Sde, SdeConfig, SdeKind};
use crate::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The VP/sub-VP time scaling of score_sde's continuous models (`labels = t * 999`).
pub const VP_TIME_SCALE: f64 = 999.0;

/// Options of the wrapper that do not belong to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetScoreOptions {
    /// VE only: divide the network output by σ(t) (for networks without their own
    /// `scale_by_sigma`, such as [`crate::models::mlp::Mlp`]).
    #[serde(default)]
    pub scale_by_sigma: bool,
}

/// A network `F_θ(x, c)` turned into a score model for one SDE.
pub struct NetScore<N: TimeConditionedNet + ?Sized> {
    net: Box<N>,
    sde: Box<dyn Sde>,
    sde_config: SdeConfig,
    options: NetScoreOptions,
    sample_shape: Option<Vec<i64>>,
    /// Run the network's inference forward under autocast in this dtype (output cast back to
    /// the input's kind); training passes (`train = true`) are never affected here.
    autocast: Option<crate::autocast::AutocastDtype>,
}

// SAFETY: `ScoreModel` requires `Sync`. The wrapper's only shared state is the network's
// parameter tensors, which `forward_t(&self, ..)` reads without mutating; libtorch supports
// concurrent reads of a tensor from several threads.
unsafe impl<N: TimeConditionedNet + ?Sized> Sync for NetScore<N> {}

impl<N: TimeConditionedNet + ?Sized> NetScore<N> {
    /// Wraps `net` for `sde`.
    pub fn new(net: Box<N>, sde: SdeConfig, options: NetScoreOptions) -> Result<Self> {
        Ok(Self {
            net,
            sde: sde.build()?,
            sde_config: sde,
            options,
            sample_shape: None,
            autocast: None,
        })
    }

    /// Runs inference forwards under autocast at `dtype` (`None`: float32). On CUDA this is
    /// mixed precision (convolutions and matmuls in bf16/f16, the rest in f32); the score is
    /// returned in the input's kind.
    pub fn with_autocast(mut self, dtype: Option<crate::autocast::AutocastDtype>) -> Self {
        self.autocast = dtype;
        self
    }

    /// Sets the inference autocast dtype in place (see [`Self::with_autocast`]).
    pub fn set_autocast(&mut self, dtype: Option<crate::autocast::AutocastDtype>) {
        self.autocast = dtype;
    }

    /// The inference autocast dtype, if any.
    pub fn autocast(&self) -> Option<crate::autocast::AutocastDtype> {
        self.autocast
    }

    /// `F(x, c)`, under autocast when set and not training.
    fn forward(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        match self.autocast {
            Some(dtype) if !train => {
                crate::autocast::with_autocast(x.device(), true, dtype, || {
                    self.net.forward_t(x, cond, false)
                })
                .to_kind(x.kind())
            }
            _ => self.net.forward_t(x, cond, train),
        }
    }

    /// Records the per-sample shape reported by [`ScoreModel::sample_shape`].
    pub fn with_sample_shape(mut self, shape: Vec<i64>) -> Self {
        self.sample_shape = Some(shape);
        self
    }

    /// The wrapped network.
    pub fn net(&self) -> &N {
        &self.net
    }

    /// The SDE.
    pub fn sde(&self) -> &dyn Sde {
        self.sde.as_ref()
    }

    /// The SDE's configuration.
    pub fn sde_config(&self) -> SdeConfig {
        self.sde_config
    }

    /// The wrapper options.
    pub fn options(&self) -> NetScoreOptions {
        self.options
    }

    /// Conditioning `c(t)`: σ(t) for VE, 999·t for VP/sub-VP; shape `[B]`.
    pub fn cond(&self, x: &Tensor, t: &Tensor) -> Tensor {
        match self.sde.kind() {
            SdeKind::Ve => self.sde.marginal_prob(x, t).1,
            SdeKind::Vp | SdeKind::SubVp => t * VP_TIME_SCALE,
        }
    }

    /// `s(x, t)` with dropout on when `train` (the function the continuous losses train).
    pub fn score_train(&self, x: &Tensor, t: &Tensor, train: bool) -> Tensor {
        let (_, std) = self.sde.marginal_prob(x, t);
        match self.sde.kind() {
            SdeKind::Ve => self.ve_score_at_sigma(x, &std, train),
            SdeKind::Vp | SdeKind::SubVp => {
                let eps = self.forward(x, &(t * VP_TIME_SCALE), train);
                -eps / bcast(&std, x)
            }
        }
    }

    /// VE: `s = F(x, σ)` (divided by σ with `scale_by_sigma`), for per-sample σ `[B]`.
    pub fn ve_score_at_sigma(&self, x: &Tensor, sigma: &Tensor, train: bool) -> Tensor {
        let out = self.forward(x, sigma, train);
        if self.options.scale_by_sigma {
            out / bcast(sigma, x)
        } else {
            out
        }
    }

    /// The raw network output `F(x, c)`.
    pub fn raw(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor {
        self.forward(x, cond, train)
    }
}

impl<N: TimeConditionedNet + ?Sized> ScoreModel for NetScore<N> {
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        self.score_train(x, t, false)
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        self.sample_shape.clone()
    }
}
