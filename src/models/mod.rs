//! Score models `s_θ(x, t) ≈ ∇ₓ log pₜ(x)`.
//!
//! A [`ScoreModel`] is anything that maps a batch `x` and times `t ∈ (0, 1]` to the score of the
//! perturbed data distribution at `t`: a trained network wrapped with the time conditioning and
//! output scaling its SDE needs, or an exact analytic score (Gaussian, Gaussian mixture) used to
//! test samplers against known truths.

pub mod analytic;
pub mod config;
pub mod layers;
pub mod mlp;
pub mod model_dir;
pub mod ncsnpp;
pub mod patch;
pub mod score_net;

use tch::Tensor;

/// The variables of a var store sorted by name: the fixed order of checkpoints, model
/// directories and the optimiser state.
pub fn sorted_variables(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// `s(x, t) ≈ ∇ₓ log pₜ(x)`.
///
/// `x` has shape `[B] ++ sample_shape()`, `t` has shape `[B]` (same dtype and device as `x`);
/// the result has the shape of `x`. Implementations must not synchronise with the host: the
/// samplers call this inside their step loops.
pub trait ScoreModel: Send + Sync {
    /// `s(x, t)`.
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor;

    /// Per-sample shape this model accepts (e.g. `[1, 64, 64]`), if fixed.
    fn sample_shape(&self) -> Option<Vec<i64>> {
        None
    }

    /// Whether images of any size are scored (a patch model), not only `sample_shape`.
    fn any_size(&self) -> bool {
        false
    }
}

impl<T: ScoreModel + ?Sized> ScoreModel for &T {
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        (**self).score(x, t)
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        (**self).sample_shape()
    }
    fn any_size(&self) -> bool {
        (**self).any_size()
    }
}

impl<T: ScoreModel + ?Sized> ScoreModel for std::sync::Arc<T> {
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        (**self).score(x, t)
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        (**self).sample_shape()
    }
    fn any_size(&self) -> bool {
        (**self).any_size()
    }
}

impl<T: ScoreModel + ?Sized> ScoreModel for Box<T> {
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        (**self).score(x, t)
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        (**self).sample_shape()
    }
    fn any_size(&self) -> bool {
        (**self).any_size()
    }
}

/// A network `F_θ(x, c)` conditioned on one scalar per sample, as in score_sde_pytorch:
/// `c = σ(t)` for VE models (NCSN++ takes log σ for its Fourier features and, with
/// `scale_by_sigma`, divides its output by σ), `c = 999·t` for VP/sub-VP models (DDPM++'s
/// sinusoidal embedding). A wrapper that knows the SDE turns it into a [`ScoreModel`].
pub trait TimeConditionedNet: Send {
    /// `F_θ(x, c)` with `x: [B, ...]`, `c: [B]`; `train` enables dropout.
    fn forward_t(&self, x: &Tensor, cond: &Tensor, train: bool) -> Tensor;
}
