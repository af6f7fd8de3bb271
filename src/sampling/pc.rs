//! Predictor–corrector sampling (Song et al. 2021, Alg. 1; score_sde_pytorch `get_pc_sampler`).
//!
//! ```text
//! x ~ p_T;  for t in linspace(T, eps, N):  x ← Corrector(x, t);  x ← Predictor(x, t)
//! return x_mean (noise_removal) or x          [optionally Tweedie: (x + s² ∇log p)/m at eps]
//! ```
//! `N = sde.n_steps()` (change it with [`crate::sde::SdeConfig::with_n`]). NFE =
//! `N (predictor + corrector evaluations per step)` (+1 with Tweedie). The step loop stays on
//! the device: no host synchronisation, only the progress hook is called between steps.

use super::registry::{rediscretise, Configured, SamplerConfig, SamplerEntry};
use super::{
    check_batch, check_eps, full_shape, time_grid, tweedie_denoise, vec_t, CorrectorKind,
    PredictorKind, SampleOutput,
};
use crate::models::ScoreModel;
use crate::sde::{Sde, SdeConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Settings of a PC sampler. Defaults are score_sde's CIFAR-10 VE ones: reverse-diffusion
/// predictor, Langevin corrector, `snr = 0.16`, one corrector step, noise removal on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PcConfig {
    pub predictor: PredictorKind,
    pub corrector: CorrectorKind,
    /// Signal-to-noise ratio of the corrector step size.
    pub snr: f64,
    /// Corrector steps per predictor step (score_sde's `n_steps_each`).
    pub n_steps: usize,
    /// Run the predictor on the probability-flow ODE instead of the reverse SDE.
    pub probability_flow: bool,
    /// Return the last `x_mean` (the last step without its noise).
    pub noise_removal: bool,
    /// After the loop, apply Tweedie's denoiser `x̂₀ = (x + s² ∇ log p)/m` at `eps`.
    pub tweedie: bool,
    /// Final time; `None` = `sde.sampling_eps()` (1e-5 VE, 1e-3 VP/sub-VP).
    pub eps: Option<f64>,
}

impl Default for PcConfig {
    fn default() -> Self {
        Self {
            predictor: PredictorKind::ReverseDiffusion,
            corrector: CorrectorKind::Langevin,
            snr: 0.16,
            n_steps: 1,
            probability_flow: false,
            noise_removal: true,
            tweedie: false,
            eps: None,
        }
    }
}

/// A PC sampler for one SDE.
pub struct PcSampler<'a> {
    pub sde: &'a dyn Sde,
    pub config: PcConfig,
}

impl<'a> PcSampler<'a> {
    /// Checks the configuration against the SDE (e.g. ancestral + sub-VP is refused here).
    pub fn new(sde: &'a dyn Sde, config: PcConfig) -> Result<Self> {
        let eps = config.eps.unwrap_or_else(|| sde.sampling_eps());
        check_eps(eps, sde.t_end())?;
        if config.predictor == PredictorKind::None && config.corrector == CorrectorKind::None {
            return Err(Error::Config(
                "PC sampler with predictor 'none' and corrector 'none' would return the prior"
                    .into(),
            ));
        }
        // Build once on the CPU to surface configuration errors early.
        let probe = Tensor::zeros([1], (Kind::Float, Device::Cpu));
        config
            .predictor
            .build(sde, config.probability_flow, &probe)?;
        if config.corrector != CorrectorKind::None {
            config
                .corrector
                .build(sde, config.snr, config.n_steps, &probe)?;
        }
        Ok(Self { sde, config })
    }

    /// Number of steps the progress hook counts (`N`).
    pub fn total_steps(&self) -> usize {
        self.sde.n_steps()
    }

    /// Samples a batch of shape `[batch] ++ sample_shape` (the model's if `None`) from the prior.
    pub fn sample(
        &self,
        model: &dyn ScoreModel,
        batch: i64,
        sample_shape: Option<&[i64]>,
        options: (Kind, Device),
        progress: &mut dyn FnMut(usize),
    ) -> Result<SampleOutput> {
        let shape = full_shape(model, batch, sample_shape)?;
        let x = self.sde.prior_sampling(&shape, options);
        self.sample_from(model, x, progress)
    }

    /// Runs the sampler from a given `x(T)`; `progress(i)` is called after step `i + 1` of `N`.
    pub fn sample_from(
        &self,
        model: &dyn ScoreModel,
        x_init: Tensor,
        progress: &mut dyn FnMut(usize),
    ) -> Result<SampleOutput> {
        check_batch(&x_init, model, "PC sampler initial state x(T)")?;
        let cfg = &self.config;
        let sde = self.sde;
        let predictor = cfg.predictor.build(sde, cfg.probability_flow, &x_init)?;
        let corrector = cfg.corrector.build(sde, cfg.snr, cfg.n_steps, &x_init)?;
        let eps = cfg.eps.unwrap_or_else(|| sde.sampling_eps());
        let n = sde.n_steps();
        let grid = time_grid(sde.t_end(), eps, n);
        let _guard = tch::no_grad_guard();
        let mut x = x_init;
        let mut x_mean = x.shallow_clone();
        for (i, &ti) in grid.iter().enumerate() {
            let t = vec_t(&x, ti);
            let (xc, _) = corrector.update(model, &x, &t);
            x = xc;
            let (xp, xm) = predictor.update(model, &x, &t);
            x = xp;
            // As score_sde: a 'none' predictor returns (x, x), so corrector-only sampling ends
            // on x (a Langevin step's x_mean would drop 2ε of variance, a large bias at eps).
            x_mean = xm;
            progress(i + 1);
        }
        let mut nfe = n * (predictor.nfe_per_step() + corrector.nfe_per_step());
        let mut out = if cfg.noise_removal { x_mean } else { x };
        if cfg.tweedie {
            out = tweedie_denoise(sde, model, &out, eps);
            nfe += 1;
        }
        Ok(SampleOutput { x: out, nfe })
    }
}

/// The PC sampler in the registry ([`super::registry::SAMPLERS`]).
pub const ENTRY: SamplerEntry = SamplerEntry {
    name: PcConfig::NAME,
    aliases: &[],
    about: "predictor–corrector sampling of the reverse SDE (Song et al. 2021)",
    options: &[
        "steps",
        "predictor",
        "corrector",
        "snr",
        "n_corrector_steps",
        "no_denoise",
    ],
    build: |o, sde| {
        let mut c = PcConfig::default();
        if let Some(p) = o.predictor {
            c.predictor = p;
        }
        if let Some(k) = o.corrector {
            c.corrector = k;
        }
        if let Some(s) = o.snr {
            if !(s > 0.0 && s.is_finite()) {
                return Err(Error::Config(format!("`snr` must be positive, got {s}")));
            }
            c.snr = s;
        }
        if let Some(k) = o.n_corrector_steps {
            c.n_steps = k;
        }
        c.noise_removal = !o.no_denoise;
        let sde = rediscretise(sde, o.steps, 2, "the PC sampler")?;
        PcSampler::new(sde.build()?.as_ref(), c)?;
        Ok(Configured::boxed(c, sde))
    },
};

impl SamplerConfig for PcConfig {
    const NAME: &'static str = "pc";
    fn describe(&self, sde: &SdeConfig) -> String {
        let c = self;
        format!(
            "PC: predictor {:?}, corrector {:?}, snr {}, {} corrector step(s), N = {}",
            c.predictor,
            c.corrector,
            c.snr,
            c.n_steps,
            sde.n_steps()
        )
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
        PcSampler::new(sde, *self)?.sample(model, batch, Some(shape), options, &mut |i| {
            progress(i as u64)
        })
    }
}
