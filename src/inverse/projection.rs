//! The projection predictor–corrector sampler of Song, Shen, Xing & Ermon 2022, "Solving
//! inverse problems in medical imaging with score-based generative models" (ICLR), after the
//! reference code `score_inverse_problems/cs.py` (`get_projection_sampler`).
//!
//! The operator is [`Decomposed`]: `A = P(Λ) T` with `T` invertible. Before every corrector and
//! every predictor step at time `t` (as the reference does), the sample is moved towards the
//! measurement, noised to the level of `t`:
//!
//! ```text
//! ŷ_t = m(t) · embed(y) + s(t) · T z,          z ~ N(0, I) in image space
//! x  ← T⁻¹[ λ Λ ŷ_t + (1 − λ) Λ T x + (I − Λ) T x ]
//!    = x + T⁻¹[ λ Λ (ŷ_t − T x) ]              (the form computed here)
//! x  ← Corrector(x, t);  (project again);  x ← Predictor(x, t)
//! ```
//!
//! (`ŷ_t` has the law of `Λ T x(t)` given `x(0)` with `A x(0) = y`: the reference noises with
//! `to_space(noise)`, i.e. `T z`.) The residual form equals the reference's for an exact
//! inverse `T⁻¹ T = I` (FFT, colour decoupling, identity) and, for CT where `T⁻¹` is FBP (an
//! approximate inverse), only the correction passes through FBP, so the unmeasured part is not
//! blurred again at every step. With `denoise` (the reference's `noise_removal`), the last
//! sample is denoised with Tweedie's formula at `eps` and projected once more with `λ = 1` onto
//! the noiseless measurement. For complex `T x` (MRI k-space) the operator's `T⁻¹` returns the
//! real part for real images.
//!
//! An optional exact least-squares consistency step ([`ProjectionConfig::consistency_iters`])
//! can follow; it is not in the reference.
//!
//! Published settings ([`ProjectionConfig`]): reverse-diffusion predictor, Langevin corrector,
//! one corrector step; CT (23 of 180 views, `ct2d_320`): `snr = 0.246`, `λ = 0.841`; MRI
//! (BraTS, 30 k-space lines): `snr = 0.517`, `λ = 1`; defaults of `default_cs_configs.py`:
//! `snr = 0.206`, `λ = 1`.
//!
//! **When it is exact.** For a Gaussian prior that is independent across the kept (`Λ`) and the
//! dropped (`I − Λ`) coordinates of an orthonormal `T`, noiseless `y` and `λ = 1`, the score of
//! `p_t` splits into the two blocks, so the dropped block runs the unconditional reverse SDE of
//! its own marginal and ends distributed as its prior, which is then also its posterior; the
//! final projection sets the kept block to `y`. The sampler then samples the posterior up to the
//! SDE discretisation. With a correlated prior it ignores `∇ log p(y | x_t)` through the
//! correlation (the kept block is replaced, never used to steer the dropped one except through
//! the score), so it is only approximate (`tests/inverse_gaussian.rs` measures both).

use super::{check_measurement, ConsistencyStep};
use crate::models::ScoreModel;
use crate::sampling::{
    check_batch, check_eps, tweedie_denoise, vec_t, CorrectorKind, PredictorKind, SampleOutput,
};
use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::Decomposed;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Settings of the projection sampler (serde; defaults = `default_cs_configs.py`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectionConfig {
    pub predictor: PredictorKind,
    pub corrector: CorrectorKind,
    /// Signal-to-noise ratio of the Langevin corrector.
    pub snr: f64,
    /// Corrector steps per predictor step (`n_steps_each`).
    pub n_steps: usize,
    /// Weight `λ ∈ [0, 1]` of the measurement in the projection (`coeff` in the reference);
    /// `λ = 1` replaces the measured part.
    pub lambda: f64,
    /// Run the predictor on the probability-flow ODE.
    pub probability_flow: bool,
    /// Tweedie denoising at `eps` followed by a hard (`λ = 1`) projection onto `y`
    /// (`noise_removal`).
    pub denoise: bool,
    /// Final time; `None` = `sde.sampling_eps()`.
    pub eps: Option<f64>,
    /// After the final projection, this many conjugate-gradient iterations of the exact
    /// least-squares consistency step `x + Aᴴ(A Aᴴ)⁻¹(y − A x)`
    /// ([`super::least_squares_consistency`]); `0` = the reference's single merge (all
    /// presets). For noiseless measurements it closes the residual that FBP as `T⁻¹` leaves
    /// (FBP weights each of the full grid's angles, so a sinogram with few measured columns is
    /// under-corrected); with noisy ones it fits the noise through the ill-conditioned `A Aᴴ`
    /// (measured on a held-out head-CT slice, 23 views, noise 0.5 %: 25.2 dB with 100
    /// iterations against 32.0 dB without).
    pub consistency_iters: usize,
    /// CUDA only: run steps 2…N as replays of one captured CUDA graph of the step
    /// ([`crate::cuda_graph`]): one launch per step instead of hundreds (the step is
    /// launch-bound at these sizes). Same algorithm; the random numbers differ from the eager
    /// loop's (they come from the graph's generator offsets).
    pub cuda_graph: bool,
    /// Warm start (CCDF, [`super::warm_start`]): the time `t₀` to which the start estimate is
    /// diffused; the sampler then runs only the steps of its grid at or below `t₀`. `None`: a
    /// cold start from the prior at `T`.
    pub t0: Option<f64>,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            predictor: PredictorKind::ReverseDiffusion,
            corrector: CorrectorKind::Langevin,
            snr: 0.206,
            n_steps: 1,
            lambda: 1.0,
            probability_flow: false,
            denoise: true,
            eps: None,
            consistency_iters: 0,
            cuda_graph: false,
            t0: None,
        }
    }
}

impl ProjectionConfig {
    /// Sparse-view CT (`configs/ve/ct2d_320_ncsnpp_continuous.py`): `snr 0.246`, `λ 0.841`.
    pub fn ct() -> Self {
        Self {
            snr: 0.246,
            lambda: 0.841,
            ..Self::default()
        }
    }

    /// Undersampled MRI (`configs/ve/brats_ncsnpp_continuous.py`): `snr 0.517`, `λ 1`.
    pub fn mri() -> Self {
        Self {
            snr: 0.517,
            lambda: 1.0,
            ..Self::default()
        }
    }

    /// These settings with a model's validated `snr` / `λ` for the task
    /// ([`crate::models::model_dir::SamplerSettings`]) in place of the published ones.
    pub fn with_model_settings(self, s: &crate::models::model_dir::SamplerSettings) -> Self {
        Self {
            snr: s.snr.unwrap_or(self.snr),
            lambda: s.lambda.unwrap_or(self.lambda),
            ..self
        }
    }

    /// These settings with the validated ones that the model in `dir` records for `task`
    /// ([`crate::models::model_dir::sampler_settings`]), or unchanged when it records none.
    pub fn for_model(self, dir: &std::path::Path, task: &str) -> Result<Self> {
        let validated = crate::models::model_dir::sampler_settings(dir, task)?;
        Ok(validated.map_or(self, |s| self.with_model_settings(&s)))
    }

    /// Checks `λ ∈ [0, 1]`, the corrector settings and `eps` against `sde`.
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(Error::Config(format!(
                "projection sampler: lambda must lie in [0, 1], got {}",
                self.lambda
            )));
        }
        let eps = self.eps.unwrap_or_else(|| sde.sampling_eps());
        check_eps(eps, sde.t_end())?;
        super::warm_start::check_t0(self.t0, sde, eps)?;
        if self.predictor == PredictorKind::None && self.corrector == CorrectorKind::None {
            return Err(Error::Config(
                "projection sampler with predictor 'none' and corrector 'none' does nothing".into(),
            ));
        }
        let probe = Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
        self.predictor.build(sde, self.probability_flow, &probe)?;
        if self.corrector != CorrectorKind::None {
            self.corrector.build(sde, self.snr, self.n_steps, &probe)?;
        }
        Ok(())
    }
}

/// Samples `x | y` for a batch of measurements `y` (`[B] ++ op.output_shape()`), one sample per
/// measurement, starting from the prior `p_T` in the dtype/device of `y`'s real kind. Returns
/// the samples `[B] ++ op.input_shape()` and the NFE.
pub fn sample(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn Decomposed,
    y: &Tensor,
    config: &ProjectionConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    sample_warm(sde, model, op, y, config, None, progress)
}

/// [`sample`], from the warm-start estimate `start` (model space, `[B] ++ op.input_shape()`)
/// diffused to `config.t0` when given ([`super::warm_start`]).
pub fn sample_warm(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn Decomposed,
    y: &Tensor,
    config: &ProjectionConfig,
    start: Option<&Tensor>,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    config.validate(sde)?;
    let eps = config.eps.unwrap_or_else(|| sde.sampling_eps());
    let (_, x) = super::warm_start::begin(sde, op, y, eps, config.t0, start)?;
    sample_from(sde, model, op, y, config, x, progress)
}

/// [`sample`] from a given state at the first time of the grid (`x(T)`, or `x(t₀)` with
/// `config.t0`).
pub fn sample_from(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    op: &dyn Decomposed,
    y: &Tensor,
    config: &ProjectionConfig,
    x_init: Tensor,
    progress: &mut dyn FnMut(usize),
) -> Result<SampleOutput> {
    config.validate(sde)?;
    check_measurement(op, y)?;
    check_batch(&x_init, model, "projection sampler initial state x(T)")?;
    op.check_input(&x_init)?;
    if x_init.size()[0] != y.size()[0] {
        return Err(Error::Shape {
            what: "projection sampler: initial state vs measurement batch".into(),
            expected: format!("batch {}", y.size()[0]),
            actual: format!("batch {}", x_init.size()[0]),
        });
    }
    let step = ConsistencyStep::new(op, y, &x_init)?;
    let cfg = config;
    let predictor = cfg.predictor.build(sde, cfg.probability_flow, &x_init)?;
    let corrector = cfg.corrector.build(sde, cfg.snr, cfg.n_steps, &x_init)?;
    let eps = cfg.eps.unwrap_or_else(|| sde.sampling_eps());
    let grid = super::warm_start::grid(sde, eps, cfg.t0);
    let n = grid.len();
    let _guard = tch::no_grad_guard();
    let mut x = x_init;
    let correct = cfg.corrector != CorrectorKind::None;
    let predict = cfg.predictor != PredictorKind::None;
    if cfg.cuda_graph {
        // One step of the loop below with `t` read from a device tensor, so that a captured
        // graph of it can be replayed for every step.
        let one_step = |x: &Tensor, t: &Tensor| -> Result<Tensor> {
            let mut x = x.shallow_clone();
            if correct {
                x = step.project_noisy_t(sde, &x, t, cfg.lambda)?;
                x = corrector.update(model, &x, t).0;
            }
            if predict {
                x = step.project_noisy_t(sde, &x, t, cfg.lambda)?;
                x = predictor.update(model, &x, t).0;
            }
            Ok(x)
        };
        x = graphed_loop(&grid, x, &one_step, progress)?;
    } else {
        for (i, &ti) in grid.iter().enumerate() {
            let t = vec_t(&x, ti);
            if correct {
                x = step.project_noisy(sde, &x, ti, cfg.lambda)?;
                x = corrector.update(model, &x, &t).0;
            }
            if predict {
                x = step.project_noisy(sde, &x, ti, cfg.lambda)?;
                x = predictor.update(model, &x, &t).0;
            }
            progress(i + 1);
        }
    }
    let mut nfe = n * (predictor.nfe_per_step() + corrector.nfe_per_step());
    if cfg.denoise {
        x = tweedie_denoise(sde, model, &x, eps);
        nfe += 1;
        x = step.project_clean(&x, 1.0)?;
    }
    if cfg.consistency_iters > 0 {
        x = super::least_squares_consistency(op, &x, y, cfg.consistency_iters)?;
    }
    Ok(SampleOutput { x, nfe })
}

/// Runs `step` for every time of `grid` with CUDA-graph replays: the first step eagerly (warm-up:
/// cuDNN algorithm choice, allocations), then one capture of `step` on static `x` and `t`
/// tensors, then a `t.fill_` and one replay per remaining step. Errors on a non-CUDA device.
fn graphed_loop(
    grid: &[f64],
    x: Tensor,
    step: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>,
    progress: &mut dyn FnMut(usize),
) -> Result<Tensor> {
    let device = x.device();
    if !device.is_cuda() {
        return Err(Error::Config(format!(
            "projection sampler: cuda_graph needs a CUDA device, the samples are on {device:?}"
        )));
    }
    let Some((&t0, rest)) = grid.split_first() else {
        return Ok(x);
    };
    let mut t = crate::sampling::vec_t(&x, t0);
    let mut x_static = step(&x, &t)?;
    progress(1);
    if rest.is_empty() {
        return Ok(x_static);
    }
    let graph = crate::cuda_graph::CudaGraph::capture(device, &mut || {
        let next = step(&x_static, &t)?;
        x_static.f_copy_(&next)?;
        Ok(())
    })?;
    for (i, &ti) in rest.iter().enumerate() {
        let _ = t.f_fill_(ti)?;
        graph.replay()?;
        progress(i + 2);
    }
    Ok(x_static)
}

/// `score` in [`super::conditional::CONDITIONAL_SAMPLERS`]: the task's published settings, then
/// the model's validated `snr`/`λ`, then the user's.
pub const ENTRY: super::conditional::ConditionalEntry = super::conditional::ConditionalEntry {
    name: "score",
    aliases: &[],
    about: "projection predictor–corrector sampler (Song et al. 2022)",
    build: |s| {
        let mut c = s.task.projection_config();
        if let Some(v) = s.validated {
            c = c.with_model_settings(v);
        }
        Ok(Box::new(super::conditional::overlay(c, s.user)?))
    },
};

impl super::conditional::ConditionalSampler for ProjectionConfig {
    fn name(&self) -> &'static str {
        ENTRY.name
    }
    fn needs_decomposition(&self) -> bool {
        true
    }
    fn validate(&self, sde: &dyn Sde) -> Result<()> {
        ProjectionConfig::validate(self, sde)
    }
    fn sample(
        &self,
        sde: &dyn Sde,
        model: &dyn ScoreModel,
        op: &dyn scoreinv_operators::LinearOperator,
        y: &Tensor,
        start: Option<&Tensor>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<SampleOutput> {
        let d = op
            .as_decomposed()
            .ok_or_else(|| no_decomposition(ENTRY.name, op.name()))?;
        sample_warm(sde, model, d, y, self, start, progress)
    }
    fn steps(&self, sde: &dyn Sde) -> usize {
        super::warm_start::steps(sde, self.eps, self.t0)
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The refusal of a sampler that needs `A = P(Λ) T` for an operator without one.
pub(crate) fn no_decomposition(method: &str, op: &str) -> Error {
    Error::Config(format!(
        "`method` {method}: the {op} operator has no T/Λ decomposition; use dps"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::SdeConfig;
    use scoreinv_operators::{LinearOperator, ParallelBeamRadon};
    use tch::{Device, Kind};

    /// Score of N(0, I) perturbed by the VE SDE: `−x / (1 + σ(t)²)`.
    struct StdNormal(Box<dyn Sde>);
    impl ScoreModel for StdNormal {
        fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
            let (_, s) = self.0.marginal_prob(x, t);
            let v = (s.square() + 1.0).reshape([-1, 1, 1, 1]);
            -x / v
        }
    }

    /// The graph path's tensor-time projection equals the host-scalar one (same noise), and the
    /// graph path refuses a CPU device with an error naming it.
    #[test]
    fn tensor_time_projection_and_cpu_refusal() {
        let sde = SdeConfig::Ve {
            sigma_min: 0.01,
            sigma_max: 20.0,
            n: 8,
        }
        .build()
        .unwrap();
        let op = ParallelBeamRadon::sparse_view(16, 5, 20, Kind::Float, Device::Cpu).unwrap();
        tch::manual_seed(1);
        let x = Tensor::randn([2, 1, 16, 16], (Kind::Float, Device::Cpu));
        let y = op
            .forward(&Tensor::rand([2, 1, 16, 16], (Kind::Float, Device::Cpu)))
            .unwrap();
        let step = ConsistencyStep::new(&op, &y, &x).unwrap();
        // The same noise for both (the global generator is shared with tests running beside).
        let z = Tensor::randn([2, 1, 16, 16], (Kind::Float, Device::Cpu));
        for t in [0.05, 0.5, 1.0] {
            let a = step
                .project_noisy_with(sde.as_ref(), &x, t, &z, 0.841)
                .unwrap();
            let tt = crate::sampling::vec_t(&x, t);
            let b = step
                .project_noisy_t_with(sde.as_ref(), &x, &tt, &z, 0.841)
                .unwrap();
            let e = (&a - &b).norm().double_value(&[]) / a.norm().double_value(&[]);
            assert!(e < 1e-6, "t = {t}: {e}");
        }
        let model = StdNormal(
            SdeConfig::Ve {
                sigma_min: 0.01,
                sigma_max: 20.0,
                n: 8,
            }
            .build()
            .unwrap(),
        );
        let cfg = ProjectionConfig {
            cuda_graph: true,
            ..ProjectionConfig::ct()
        };
        let e = sample(sde.as_ref(), &model, &op, &y, &cfg, &mut |_| {})
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("CUDA device"), "{e}");
        // The eager loop still runs.
        let ok = sample(
            sde.as_ref(),
            &model,
            &op,
            &y,
            &ProjectionConfig::ct(),
            &mut |_| {},
        );
        assert!(ok.is_ok());
    }
}
