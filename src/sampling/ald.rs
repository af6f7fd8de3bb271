//! Annealed Langevin dynamics (NCSN; Song & Ermon 2019, Alg. 1) and plain Langevin dynamics.
//!
//! Noise levels `σ_1 > σ_2 > … > σ_L` form a geometric sequence; at each level `T` Langevin
//! steps with a step size that keeps the signal-to-noise ratio constant:
//!
//! ```text
//! α_i = ε σ_i² / σ_L²,   x ← x + (α_i / 2) s(x, σ_i) + √α_i z,   z ~ N(0, I)
//! ```
//! Defaults are the paper's: `σ_1 = 1`, `σ_L = 0.01`, `L = 10`, `T = 100`, `ε = 2·10⁻⁵`
//! (NFE = L·T = 1000). Optionally NCSNv2's final denoising step `x + σ_L² s(x, σ_L)`
//! (Song & Ermon 2020). The score model is time-conditioned, so `σ_i` is mapped to the time of
//! a VE SDE with `s(t_i) = σ_i` (found by bisection on [`Sde::mean_coeff_std`]); the levels must
//! lie within `[σ(0), σ(T)]` of that SDE.
//!
//! Plain Langevin dynamics ([`langevin`]) runs the same update with one fixed score and step
//! size: with the exact data score of a mixture of well-separated modes it does not recover the
//! mode weights in any reasonable time (NCSN's motivating example, §3.2.2), which annealing fixes.

use super::registry::{Configured, SamplerConfig, SamplerEntry};
use super::{check_batch, full_shape, vec_t, SampleOutput};
use crate::models::ScoreModel;
use crate::sde::{Sde, SdeConfig, SdeKind};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// NCSN annealed Langevin settings (Song & Ermon 2019 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AldConfig {
    /// Largest noise level σ_1.
    pub sigma_begin: f64,
    /// Smallest noise level σ_L.
    pub sigma_end: f64,
    /// Number of levels L.
    pub n_levels: usize,
    /// Langevin steps per level T.
    pub n_steps_each: usize,
    /// Base step size ε.
    pub step_lr: f64,
    /// NCSNv2's final denoising `x + σ_L² s(x, σ_L)`.
    pub denoise: bool,
}

impl Default for AldConfig {
    fn default() -> Self {
        Self {
            sigma_begin: 1.0,
            sigma_end: 0.01,
            n_levels: 10,
            n_steps_each: 100,
            step_lr: 2e-5,
            denoise: false,
        }
    }
}

impl AldConfig {
    /// The geometric noise levels `σ_1 > … > σ_L`.
    pub fn sigmas(&self) -> Vec<f64> {
        let l = self.n_levels;
        if l == 1 {
            return vec![self.sigma_begin];
        }
        let (a, b) = (self.sigma_begin.ln(), self.sigma_end.ln());
        (0..l)
            .map(|i| (a + (b - a) * i as f64 / (l - 1) as f64).exp())
            .collect()
    }

    fn check(&self) -> Result<()> {
        if !(self.sigma_end > 0.0
            && self.sigma_begin >= self.sigma_end
            && self.sigma_begin.is_finite())
        {
            return Err(Error::Config(format!(
                "annealed Langevin needs 0 < sigma_end <= sigma_begin, got sigma_begin={}, sigma_end={}",
                self.sigma_begin, self.sigma_end
            )));
        }
        if self.n_levels == 0 || self.n_steps_each == 0 {
            return Err(Error::Config(format!(
                "annealed Langevin needs n_levels >= 1 and n_steps_each >= 1, got {} and {}",
                self.n_levels, self.n_steps_each
            )));
        }
        if !(self.step_lr > 0.0 && self.step_lr.is_finite()) {
            return Err(Error::Config(format!(
                "annealed Langevin step_lr must be positive, got {}",
                self.step_lr
            )));
        }
        Ok(())
    }
}

/// The time `t ∈ [0, T]` at which a VE SDE's `s(t) = σ` (bisection; `s` is increasing).
pub fn ve_time_of_sigma(sde: &dyn Sde, sigma: f64) -> Result<f64> {
    if sde.kind() != SdeKind::Ve {
        return Err(Error::Config(format!(
            "annealed Langevin indexes the score by noise level σ and needs a VE SDE, got {:?}",
            sde.kind()
        )));
    }
    let (lo_s, hi_s) = (sde.mean_coeff_std(0.0).1, sde.mean_coeff_std(sde.t_end()).1);
    let tol = 1e-9 * hi_s;
    if sigma < lo_s - tol || sigma > hi_s + tol {
        return Err(Error::Config(format!(
            "noise level σ = {sigma} lies outside the VE SDE's range [{lo_s}, {hi_s}]"
        )));
    }
    let (mut lo, mut hi) = (0.0, sde.t_end());
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if sde.mean_coeff_std(mid).1 < sigma {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// NCSN annealed Langevin dynamics from `N(0, σ_1² I)` (NCSN itself starts from U[0, 1]; pass
/// such a start to [`sample_from`]).
pub fn sample(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    config: &AldConfig,
    batch: i64,
    sample_shape: Option<&[i64]>,
    options: (Kind, Device),
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    let shape = full_shape(model, batch, sample_shape)?;
    let x = Tensor::randn(shape.as_slice(), options) * config.sigma_begin;
    sample_from(sde, model, config, x, progress)
}

/// Annealed Langevin dynamics from `x_init`; `progress(k)` after Langevin step `k` of `L·T`.
pub fn sample_from(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    config: &AldConfig,
    x_init: Tensor,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    config.check()?;
    check_batch(&x_init, model, "annealed Langevin initial state")?;
    let sigmas = config.sigmas();
    let times = sigmas
        .iter()
        .map(|&s| ve_time_of_sigma(sde, s))
        .collect::<Result<Vec<_>>>()?;
    let sigma_l = *sigmas.last().expect("n_levels >= 1");
    let _guard = tch::no_grad_guard();
    let mut x = x_init;
    let mut k = 0;
    for (&sigma, &ti) in sigmas.iter().zip(&times) {
        let t = vec_t(&x, ti);
        let alpha = config.step_lr * (sigma / sigma_l).powi(2);
        for _ in 0..config.n_steps_each {
            let score = model.score(&x, &t);
            x = &x + score * (0.5 * alpha) + x.randn_like() * alpha.sqrt();
            k += 1;
            progress(k);
        }
    }
    let mut nfe = k;
    if config.denoise {
        let t = vec_t(&x, *times.last().expect("n_levels >= 1"));
        x = &x + model.score(&x, &t) * (sigma_l * sigma_l);
        nfe += 1;
    }
    Ok(SampleOutput { x, nfe })
}

/// Plain Langevin dynamics with one fixed score `s(·, t)` and step size `ε`:
/// `x ← x + (ε/2) s(x, t) + √ε z`, `n_steps` times. NFE = `n_steps`.
pub fn langevin(
    model: &dyn ScoreModel,
    t: f64,
    step_size: f64,
    n_steps: usize,
    x_init: Tensor,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    if !(step_size > 0.0 && step_size.is_finite()) {
        return Err(Error::Config(format!(
            "Langevin step size must be positive, got {step_size}"
        )));
    }
    check_batch(&x_init, model, "Langevin initial state")?;
    let _guard = tch::no_grad_guard();
    let mut x = x_init;
    let tt = vec_t(&x, t);
    for k in 0..n_steps {
        let score = model.score(&x, &tt);
        x = &x + score * (0.5 * step_size) + x.randn_like() * step_size.sqrt();
        progress(k + 1);
    }
    Ok(SampleOutput { x, nfe: n_steps })
}

/// NCSN annealed Langevin dynamics in the registry ([`super::registry::SAMPLERS`]).
pub const ENTRY: SamplerEntry = SamplerEntry {
    name: AldConfig::NAME,
    aliases: &[],
    about: "NCSN annealed Langevin dynamics on a VE model (Song & Ermon 2019)",
    options: &["steps", "n_corrector_steps", "step_lr", "no_denoise"],
    build: |o, sde| {
        let built = sde.build()?;
        if built.kind() != SdeKind::Ve {
            return Err(Error::Config(format!(
                "`sampler` ald indexes the score by noise level σ and needs a VE model; this \
                 model uses a {:?} SDE (use `sampler` pc, ode or ancestral)",
                built.kind()
            )));
        }
        // The noise levels span the model's VE range σ(T) → σ(0), as score_sde's VE SDE
        // (NCSN's own geometric sequence with σ_1 = σ_max, σ_L = σ_min).
        let mut c = AldConfig {
            sigma_begin: built.mean_coeff_std(built.t_end()).1,
            sigma_end: built.mean_coeff_std(0.0).1,
            denoise: !o.no_denoise,
            ..AldConfig::default()
        };
        if let Some(l) = o.steps {
            c.n_levels = l;
        }
        if let Some(k) = o.n_corrector_steps {
            c.n_steps_each = k;
        }
        if let Some(e) = o.step_lr {
            c.step_lr = e;
        }
        ve_time_of_sigma(built.as_ref(), c.sigma_end)?;
        Ok(Configured::boxed(c, *sde))
    },
};

impl SamplerConfig for AldConfig {
    const NAME: &'static str = "ald";
    fn describe(&self, _sde: &SdeConfig) -> String {
        let c = self;
        format!(
            "annealed Langevin: {} levels σ {:.4} → {:.4}, {} steps each, ε = {:e}",
            c.n_levels, c.sigma_begin, c.sigma_end, c.n_steps_each, c.step_lr
        )
    }
    fn progress_units(&self, _sde: &SdeConfig) -> u64 {
        (self.n_levels * self.n_steps_each) as u64
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
