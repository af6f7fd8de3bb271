//! Samplers for score-based generative models and their likelihood.
//!
//! * [`pc`]: predictor–corrector sampling of the reverse SDE (Song et al. 2021, Alg. 1–3), with
//!   the [`Predictor`]s of [`predictors`] and the [`Corrector`]s of [`correctors`].
//! * [`ancestral`]: DDPM ancestral sampling (Ho et al. 2020, Alg. 2) on a VP SDE.
//! * [`ald`]: NCSN annealed Langevin dynamics (Song & Ermon 2019, Alg. 1) and plain Langevin.
//! * [`ode`]: the probability-flow ODE `dx = [f − ½ g² ∇ log pₜ] dt` with adaptive
//!   Dormand–Prince RK45 (score_sde's `solve_ivp(..., method='RK45')`) or fixed-step solvers;
//!   sampling, encoding to the latent, decoding, interpolation.
//! * [`likelihood`]: exact log-likelihood (nats, bits/dim) by the instantaneous change of
//!   variables along the probability-flow ODE.
//! * [`registry`]: the [`Sampler`] trait and the registry [`SAMPLERS`] by name (adding a sampler
//!   = one file with its `ENTRY` + one registry line).
//! * [`run`]: samplers, likelihoods and the latent ODE on a model directory (what the CLI's
//!   `sample`, `likelihood`, `encode`, `decode` and `interpolate` call).
//!
//! Conventions follow score_sde_pytorch: time runs from `T` down to `eps =
//! sde.sampling_eps()` on `linspace(T, eps, N)`, every step returns `(x, x_mean)` where `x_mean`
//! is the update without its fresh noise (returned at the end when `noise_removal` is set), and
//! samplers report the number of score evaluations (NFE). Loops never synchronise with the host:
//! everything stays on the device of the input, step sizes and norms are tensors.

pub mod ald;
pub mod ancestral;
pub mod correctors;
pub mod likelihood;
pub mod ode;
pub mod pc;
pub mod predictors;
pub mod registry;
pub mod run;

pub use correctors::{AnnealedLangevin, Corrector, LangevinCorrector, NoneCorrector};
pub use pc::{PcConfig, PcSampler};
pub use predictors::{
    AncestralSampling, EulerMaruyama, NonePredictor, Predictor, ReverseDiffusion,
};
pub use registry::{build_sampler, sampler_entry, Sampler, SamplerEntry, SamplerOptions, SAMPLERS};

use crate::models::ScoreModel;
use crate::sde::{bcast, timestep_index, Sde, SdeKind};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use tch::{Kind, Tensor};

/// A batch of samples and what it cost.
#[derive(Debug)]
pub struct SampleOutput {
    /// The samples, `[B, ...]`.
    pub x: Tensor,
    /// Number of score-model evaluations (each on the whole batch).
    pub nfe: usize,
}

/// Which predictor a PC sampler uses (`--predictor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PredictorKind {
    /// Euler–Maruyama on the reverse SDE.
    EulerMaruyama,
    /// The reverse of the SDE's own discretisation (score_sde's default).
    ReverseDiffusion,
    /// Ancestral sampling (NCSN / DDPM chains), VE and VP only.
    Ancestral,
    /// No predictor (corrector-only sampling).
    None,
}

impl FromStr for PredictorKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match norm_name(s).as_str() {
            "euler-maruyama" | "em" => Ok(Self::EulerMaruyama),
            "reverse-diffusion" | "rd" => Ok(Self::ReverseDiffusion),
            "ancestral" | "ancestral-sampling" => Ok(Self::Ancestral),
            "none" => Ok(Self::None),
            _ => Err(Error::Config(format!(
                "predictor '{s}' is not one of euler-maruyama, reverse-diffusion, ancestral, none"
            ))),
        }
    }
}

/// Which corrector a PC sampler uses (`--corrector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorrectorKind {
    /// Langevin MCMC with a signal-to-noise-ratio step size (score_sde's default).
    Langevin,
    /// NCSN's annealed Langevin step `ε = 2 α (snr σ)²`.
    Ald,
    /// No corrector (predictor-only sampling).
    None,
}

impl FromStr for CorrectorKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match norm_name(s).as_str() {
            "langevin" => Ok(Self::Langevin),
            "ald" | "annealed-langevin" => Ok(Self::Ald),
            "none" => Ok(Self::None),
            _ => Err(Error::Config(format!(
                "corrector '{s}' is not one of langevin, ald, none"
            ))),
        }
    }
}

/// Lower case, `_` → `-` (score_sde spells `reverse_diffusion`).
fn norm_name(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('_', "-")
}

/// The discrete noise schedule of an SDE's `N`-step chain, on a device, read through the
/// [`Sde`] trait only:
///
/// ```text
/// t_i = i T / (N − 1),  i = 0 … N−1     (score_sde: timestep = (t (N−1)/T).long())
/// VE:        σ_i = s(t_i)              (= exp(linspace(ln σ_min, ln σ_max, N)))
/// VP/sub-VP: β_i = β(t_i) / N,  β(t) = −2 f(1, t)   (= linspace(β_min/N, β_max/N, N)),  α_i = 1 − β_i
/// ```
pub(crate) struct Schedule {
    pub kind: SdeKind,
    pub n: usize,
    pub t_end: f64,
    /// VE: σ_i. VP/sub-VP: β_i. `[N]` in the working dtype.
    pub table: Tensor,
}

impl Schedule {
    pub fn new(sde: &dyn Sde, kind: Kind, device: tch::Device) -> Result<Self> {
        let n = sde.n_steps();
        if n < 2 {
            return Err(Error::Config(format!(
                "samplers need an SDE with at least 2 discretisation steps, got N = {n}"
            )));
        }
        let t_end = sde.t_end();
        let ts: Vec<f64> = (0..n).map(|i| i as f64 * t_end / (n - 1) as f64).collect();
        let table: Vec<f64> = match sde.kind() {
            SdeKind::Ve => ts.iter().map(|&t| sde.mean_coeff_std(t).1).collect(),
            SdeKind::Vp | SdeKind::SubVp => {
                let tt = Tensor::from_slice(&ts);
                let ones = Tensor::ones([n as i64, 1], (Kind::Double, tch::Device::Cpu));
                let f = sde.drift(&ones, &tt).reshape([n as i64]);
                Vec::<f64>::try_from(f * (-2.0 / n as f64))?
            }
        };
        Ok(Self {
            kind: sde.kind(),
            n,
            t_end,
            table: Tensor::from_slice(&table).to_kind(kind).to_device(device),
        })
    }

    fn index(&self, t: &Tensor) -> Tensor {
        timestep_index(t, self.n, self.t_end).clamp(0, self.n as i64 - 1)
    }

    /// `(σ_i, σ_{i−1})` with `σ_{−1} = 0` (VE only), `[B]` each.
    pub fn sigma_pair(&self, t: &Tensor) -> (Tensor, Tensor) {
        let idx = self.index(t);
        let sigma = self.table.index_select(0, &idx);
        let prev = self.table.index_select(0, &(&idx - 1).clamp_min(0));
        let prev = prev.zeros_like().where_self(&idx.eq(0), &prev);
        (sigma, prev)
    }

    /// `β_i` (VP/sub-VP only), `[B]`.
    pub fn beta(&self, t: &Tensor) -> Tensor {
        self.table.index_select(0, &self.index(t))
    }

    /// The Langevin `α_i`: `1 − β_i` for VP and sub-VP, `1` for VE; `[B]`.
    pub fn alpha(&self, t: &Tensor) -> Tensor {
        match self.kind {
            SdeKind::Ve => t.ones_like(),
            SdeKind::Vp | SdeKind::SubVp => -self.beta(t) + 1.0,
        }
    }
}

/// `torch.linspace(T, eps, N)` on the host (the loop turns each entry into a `[B]` tensor with
/// a fill kernel, which needs no synchronisation).
pub(crate) fn time_grid(t_end: f64, eps: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![t_end];
    }
    (0..n)
        .map(|i| t_end + (eps - t_end) * i as f64 / (n - 1) as f64)
        .collect()
}

/// `[B]` tensor filled with `t`, dtype/device of `x`.
pub(crate) fn vec_t(x: &Tensor, t: f64) -> Tensor {
    Tensor::full([x.size()[0]], t, (x.kind(), x.device()))
}

/// Checks a sampler's input batch once, at entry: floating point, `[B, ...]` with `B ≥ 1`,
/// the model's sample shape if it declares one, finite values.
pub(crate) fn check_batch(x: &Tensor, model: &dyn ScoreModel, what: &str) -> Result<()> {
    let size = x.size();
    if size.len() < 2 || size[0] < 1 {
        return Err(Error::Shape {
            what: what.into(),
            expected: "[B, ...] with B ≥ 1 and at least one sample dimension".into(),
            actual: format!("{size:?}"),
        });
    }
    if !matches!(
        x.kind(),
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(Error::Invalid(format!(
            "{what}: expected a floating-point tensor, got {:?}",
            x.kind()
        )));
    }
    // A patch model takes images of any size with its channel count.
    if let Some(shape) = model.sample_shape() {
        let fits = if model.any_size() {
            size.len() == shape.len() + 1 && size.get(1) == shape.first()
        } else {
            size[1..] == shape[..]
        };
        if !fits {
            return Err(Error::Shape {
                what: format!("{what} (per-sample shape the score model accepts)"),
                expected: format!("[B] ++ {shape:?}"),
                actual: format!("{size:?}"),
            });
        }
    }
    if x.isfinite().all().int64_value(&[]) == 0 {
        return Err(Error::NonFinite(format!(
            "{what} ({})",
            crate::io::nonfinite_summary(x)
        )));
    }
    Ok(())
}

/// Checks `0 < eps < T`.
pub(crate) fn check_eps(eps: f64, t_end: f64) -> Result<()> {
    if !(eps > 0.0 && eps < t_end) {
        return Err(Error::Config(format!(
            "eps (smallest sampling time) must satisfy 0 < eps < T = {t_end}, got {eps}"
        )));
    }
    Ok(())
}

/// Tweedie's formula for the posterior mean of the clean data given `x(t)`:
/// `x̂₀ = E[x(0) | x(t)] = (x + s(t)² ∇ log pₜ(x)) / m(t)` (Efron 2011; exact for the Gaussian
/// kernels of VE/VP/sub-VP). One score evaluation.
pub fn tweedie_denoise(sde: &dyn Sde, model: &dyn ScoreModel, x: &Tensor, t: f64) -> Tensor {
    let t = vec_t(x, t);
    let ones = x.ones_like();
    let (m, s) = sde.marginal_prob(&ones, &t);
    let s = bcast(&s.to_kind(x.kind()), x);
    let score = model.score(x, &t);
    (x + s.square() * score) / m
}

/// Reads a sample's per-sample shape from a model (for samplers given only a batch size).
pub(crate) fn full_shape(
    model: &dyn ScoreModel,
    batch: i64,
    sample_shape: Option<&[i64]>,
) -> Result<Vec<i64>> {
    let shape = match (sample_shape, model.sample_shape()) {
        (Some(s), _) => s.to_vec(),
        (None, Some(s)) => s,
        (None, None) => {
            return Err(Error::Config(
                "the score model does not declare a sample shape; pass one explicitly".into(),
            ))
        }
    };
    if batch < 1 {
        return Err(Error::Config(format!(
            "batch size must be ≥ 1, got {batch}"
        )));
    }
    let mut full = vec![batch];
    full.extend(shape);
    Ok(full)
}
