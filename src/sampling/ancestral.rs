//! DDPM ancestral sampling (Ho et al. 2020, Alg. 2) with a score model on a VP SDE.
//!
//! With `β_i = linspace(β_min/N, β_max/N, N)`, `α_i = 1 − β_i`, `ᾱ_i = Π_{j≤i} α_j` and
//! `ε_θ = −√(1 − ᾱ_i) s_θ`, the posterior mean of `q(x_{i−1} | x_i, x_0)` becomes
//!
//! ```text
//! μ_i(x) = (x + β_i s(x, t_i)) / √α_i
//! x_{i−1} = μ_i(x_i) + σ_i z,   σ_i² = β_i                              ("fixedlarge")
//!                            or σ_i² = β̃_i = β_i (1 − ᾱ_{i−1}) / (1 − ᾱ_i)    ("fixedsmall")
//! ```
//! for `i = N−1 … 0`, with no noise at the last step (`i = 0`, Ho et al.'s `z = 0` for `t = 1`).
//! The score is queried at `t_i` on score_sde's grid `linspace(T, eps, N)` (so the index
//! `⌊t_i (N−1)/T⌋` equals `i`). NFE = N.

use super::registry::{rediscretise, Configured, SamplerConfig, SamplerEntry};
use super::{check_batch, check_eps, full_shape, time_grid, vec_t, SampleOutput, Schedule};
use crate::models::ScoreModel;
use crate::sde::{Sde, SdeConfig, SdeKind};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Variance of the reverse DDPM step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DdpmVariance {
    /// `σ_i² = β_i` (DDPM's CIFAR-10 choice, and score_sde's ancestral predictor).
    #[default]
    FixedLarge,
    /// `σ_i² = β̃_i`, the variance of the true posterior `q(x_{i−1} | x_i, x_0)`.
    FixedSmall,
}

/// DDPM sampler settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AncestralConfig {
    pub variance: DdpmVariance,
    /// Final time; `None` = `sde.sampling_eps()`.
    pub eps: Option<f64>,
}

impl Default for AncestralConfig {
    fn default() -> Self {
        Self {
            variance: DdpmVariance::FixedLarge,
            eps: None,
        }
    }
}

/// Samples `[batch] ++ sample_shape` from the VP prior `N(0, I)` by DDPM ancestral sampling.
pub fn sample(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    config: &AncestralConfig,
    batch: i64,
    sample_shape: Option<&[i64]>,
    options: (Kind, Device),
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    let shape = full_shape(model, batch, sample_shape)?;
    let x = sde.prior_sampling(&shape, options);
    sample_from(sde, model, config, x, progress)
}

/// DDPM ancestral sampling from a given `x_N`; `progress(i)` after step `i` of `N`.
pub fn sample_from(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    config: &AncestralConfig,
    x_init: Tensor,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    if sde.kind() != SdeKind::Vp {
        return Err(Error::Config(format!(
            "DDPM ancestral sampling needs a VP SDE (the DDPM chain), got {:?}; use the PC \
             sampler for VE/sub-VP",
            sde.kind()
        )));
    }
    check_batch(&x_init, model, "DDPM initial state x_N")?;
    let eps = config.eps.unwrap_or_else(|| sde.sampling_eps());
    check_eps(eps, sde.t_end())?;
    let n = sde.n_steps();
    let schedule = Schedule::new(sde, x_init.kind(), x_init.device())?;
    // β_i, ᾱ_i, ᾱ_{i−1} on the device (ᾱ_{−1} = 1).
    let betas = &schedule.table;
    let alphas_cumprod = (-betas + 1.0).cumprod(0, x_init.kind());
    let prev_cumprod = Tensor::cat(
        &[
            Tensor::ones([1], (x_init.kind(), x_init.device())),
            alphas_cumprod.narrow(0, 0, n as i64 - 1),
        ],
        0,
    );
    let posterior_var = betas * (-&prev_cumprod + 1.0) / (-&alphas_cumprod + 1.0);
    let var_table = match config.variance {
        DdpmVariance::FixedLarge => betas.shallow_clone(),
        DdpmVariance::FixedSmall => posterior_var,
    };
    let grid = time_grid(sde.t_end(), eps, n);
    let _guard = tch::no_grad_guard();
    let mut x = x_init;
    for (k, &ti) in grid.iter().enumerate() {
        let i = (n - 1 - k) as i64;
        let t = vec_t(&x, ti);
        let beta = betas.get(i);
        let score = model.score(&x, &t);
        let mean = (&x + &score * &beta) / (-&beta + 1.0).sqrt();
        x = if i > 0 {
            let std = var_table.get(i).sqrt();
            &mean + x.randn_like() * std
        } else {
            mean
        };
        progress(k + 1);
    }
    Ok(SampleOutput { x, nfe: n })
}

/// DDPM ancestral sampling in the registry ([`super::registry::SAMPLERS`]).
pub const ENTRY: SamplerEntry = SamplerEntry {
    name: AncestralConfig::NAME,
    aliases: &["ddpm"],
    about: "DDPM ancestral sampling on a VP model (Ho et al. 2020)",
    options: &["steps"],
    build: |o, sde| {
        let kind = sde.build()?.kind();
        if kind != SdeKind::Vp {
            return Err(Error::Config(format!(
                "`sampler` ancestral is DDPM's chain and needs a VP model; this model uses a \
                 {kind:?} SDE (use `sampler` pc with `predictor` ancestral for VE)"
            )));
        }
        let sde = rediscretise(sde, o.steps, 2, "ancestral sampling")?;
        Ok(Configured::boxed(AncestralConfig::default(), sde))
    },
};

impl SamplerConfig for AncestralConfig {
    const NAME: &'static str = "ancestral";
    fn describe(&self, sde: &SdeConfig) -> String {
        format!("DDPM ancestral sampling, N = {}", sde.n_steps())
    }
    fn progress_units(&self, sde: &SdeConfig) -> u64 {
        sde.n_steps() as u64
    }
    fn sample(
        &self,
        model: &dyn ScoreModel,
        sde: &dyn Sde,
        batch: i64,
        shape: &[i64],
        options: (Kind, Device),
        progress: &mut dyn FnMut(u64),
    ) -> Result<SampleOutput> {
        sample(sde, model, self, batch, Some(shape), options, &mut |i| {
            progress(i as u64)
        })
    }
}
