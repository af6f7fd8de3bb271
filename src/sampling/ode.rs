//! The probability-flow ODE (Song et al. 2021, §4.3 and App. D):
//!
//! ```text
//! dx/dt = f̃(x, t) = f(x, t) − ½ g(t)² ∇ₓ log pₜ(x)
//! ```
//! a deterministic flow with the marginals `pₜ` of the SDE. Integrating it from `T` to `eps`
//! maps prior samples to data ([`OdeSampler::sample`], [`OdeSampler::decode`]); from `eps` to
//! `T` it maps data to latents ([`OdeSampler::encode`]), a bijection that supports exact
//! likelihoods ([`super::likelihood`]) and latent interpolation ([`interpolate`]).
//!
//! Solvers ([`integrate`]):
//! * `rk45`: adaptive Dormand–Prince 5(4) (Dormand & Prince 1980) reproducing scipy's
//!   `solve_ivp(method='RK45')` that score_sde_pytorch calls: FSAL, error
//!   `‖h Σ E_i k_i / (atol + rtol max(|y|, |y_new|))‖_RMS` over the whole state (batch
//!   included, one step size for the batch), accept if `< 1`, step factor
//!   `clip(0.9 err^{−1/5}, 0.2, 10)` (no growth right after a rejection), Hairer's initial step
//!   selection; `rtol = atol = 1e-5`. The accept/reject decision reads one scalar per step
//!   from the device (unavoidable for an adaptive solver).
//! * fixed-step `euler`, `heun` (2nd order), `rk4` on a uniform grid, no synchronisation.
//!
//! NFE counts every drift evaluation (each one score evaluation on the whole batch).

use super::registry::{Configured, SamplerConfig, SamplerEntry};
use super::{check_batch, check_eps, full_shape, vec_t, SampleOutput};
use crate::models::ScoreModel;
use crate::sde::{bcast, Sde, SdeConfig};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use tch::{Device, Kind, Tensor};

/// ODE solver choice (`--ode-solver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OdeSolver {
    /// Adaptive Dormand–Prince 5(4).
    #[default]
    Rk45,
    /// Fixed-step explicit Euler (order 1).
    Euler,
    /// Fixed-step Heun / explicit trapezoid (order 2).
    Heun,
    /// Fixed-step classical Runge–Kutta (order 4).
    Rk4,
}

impl FromStr for OdeSolver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rk45" | "dopri5" => Ok(Self::Rk45),
            "euler" => Ok(Self::Euler),
            "heun" => Ok(Self::Heun),
            "rk4" => Ok(Self::Rk4),
            _ => Err(Error::Config(format!(
                "ODE solver '{s}' is not one of rk45, euler, heun, rk4"
            ))),
        }
    }
}

/// Integrator settings. Defaults: score_sde's RK45 with `rtol = atol = 1e-5`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IntegratorConfig {
    pub solver: OdeSolver,
    pub rtol: f64,
    pub atol: f64,
    /// Steps of the fixed-step solvers.
    pub n_steps: usize,
    /// Refuse to run more than this many RK45 steps (accepted + rejected).
    pub max_steps: usize,
}

impl Default for IntegratorConfig {
    fn default() -> Self {
        Self {
            solver: OdeSolver::Rk45,
            rtol: 1e-5,
            atol: 1e-5,
            n_steps: 1000,
            max_steps: 100_000,
        }
    }
}

impl IntegratorConfig {
    fn check(&self) -> Result<()> {
        match self.solver {
            OdeSolver::Rk45 => {
                if !(self.rtol > 0.0 && self.atol > 0.0 && self.rtol.is_finite()) {
                    return Err(Error::Config(format!(
                        "RK45 needs rtol > 0 and atol > 0, got rtol={}, atol={}",
                        self.rtol, self.atol
                    )));
                }
                if self.max_steps == 0 {
                    return Err(Error::Config("RK45 max_steps must be ≥ 1".into()));
                }
            }
            _ => {
                if self.n_steps == 0 {
                    return Err(Error::Config(format!(
                        "fixed-step ODE solver {:?} needs n_steps ≥ 1",
                        self.solver
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The end state of an integration and its cost.
#[derive(Debug)]
pub struct OdeSolution {
    pub y: Tensor,
    /// Number of right-hand-side evaluations.
    pub nfe: usize,
    /// Accepted steps.
    pub n_accepted: usize,
    /// Rejected RK45 steps.
    pub n_rejected: usize,
}

/// `‖v‖_RMS = ‖v‖₂ / √(numel)` as a host f64 (one synchronisation).
fn rms(v: &Tensor) -> f64 {
    v.to_kind(Kind::Double)
        .square()
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[])
}

// Dormand–Prince 5(4) tableau (scipy.integrate._ivp.rk.RK45).
const C: [f64; 6] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0];
const A: [[f64; 5]; 6] = [
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0],
    [
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
        0.0,
    ],
    [
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
];
const B: [f64; 6] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
];
const E: [f64; 7] = [
    -71.0 / 57600.0,
    0.0,
    71.0 / 16695.0,
    -71.0 / 1920.0,
    17253.0 / 339200.0,
    -22.0 / 525.0,
    1.0 / 40.0,
];

fn lincomb(ks: &[Tensor], coeffs: &[f64]) -> Tensor {
    let mut acc: Option<Tensor> = None;
    for (k, &c) in ks.iter().zip(coeffs) {
        if c == 0.0 {
            continue;
        }
        let term = k * c;
        acc = Some(match acc {
            None => term,
            Some(a) => a + term,
        });
    }
    acc.unwrap_or_else(|| ks[0].zeros_like())
}

/// Integrates `dy/dt = f(t, y)` from `t0` to `t1` (either direction); `progress(fraction)` is
/// called after every accepted step with the fraction of `|t1 − t0|` covered.
pub fn integrate(
    f: &mut dyn FnMut(f64, &Tensor) -> Tensor,
    y0: &Tensor,
    t0: f64,
    t1: f64,
    config: &IntegratorConfig,
    progress: &mut dyn FnMut(f64),
) -> Result<OdeSolution> {
    config.check()?;
    if !(t0.is_finite() && t1.is_finite()) {
        return Err(Error::Config(format!(
            "ODE time interval must be finite, got [{t0}, {t1}]"
        )));
    }
    match config.solver {
        OdeSolver::Rk45 => rk45(f, y0, t0, t1, config, progress),
        solver => {
            let n = config.n_steps;
            let h = (t1 - t0) / n as f64;
            let mut y = y0.shallow_clone();
            let mut nfe = 0;
            for i in 0..n {
                let t = t0 + h * i as f64;
                y = match solver {
                    OdeSolver::Euler => {
                        nfe += 1;
                        &y + f(t, &y) * h
                    }
                    OdeSolver::Heun => {
                        let k1 = f(t, &y);
                        let k2 = f(t + h, &(&y + &k1 * h));
                        nfe += 2;
                        &y + (k1 + k2) * (0.5 * h)
                    }
                    _ => {
                        let k1 = f(t, &y);
                        let k2 = f(t + 0.5 * h, &(&y + &k1 * (0.5 * h)));
                        let k3 = f(t + 0.5 * h, &(&y + &k2 * (0.5 * h)));
                        let k4 = f(t + h, &(&y + &k3 * h));
                        nfe += 4;
                        &y + (k1 + k2 * 2.0 + k3 * 2.0 + k4) * (h / 6.0)
                    }
                };
                progress((i + 1) as f64 / n as f64);
            }
            Ok(OdeSolution {
                y,
                nfe,
                n_accepted: n,
                n_rejected: 0,
            })
        }
    }
}

fn rk45(
    f: &mut dyn FnMut(f64, &Tensor) -> Tensor,
    y0: &Tensor,
    t0: f64,
    t1: f64,
    cfg: &IntegratorConfig,
    progress: &mut dyn FnMut(f64),
) -> Result<OdeSolution> {
    const SAFETY: f64 = 0.9;
    const MIN_FACTOR: f64 = 0.2;
    const MAX_FACTOR: f64 = 10.0;
    const ERR_EXP: f64 = -1.0 / 5.0;
    let (rtol, atol) = (cfg.rtol, cfg.atol);
    let interval = (t1 - t0).abs();
    let mut y = y0.shallow_clone();
    if interval == 0.0 {
        return Ok(OdeSolution {
            y,
            nfe: 0,
            n_accepted: 0,
            n_rejected: 0,
        });
    }
    let dir = (t1 - t0).signum();
    let mut t = t0;
    let mut fy = f(t, &y);
    let mut nfe = 1;

    // Initial step (Hairer, Nørsett & Wanner, II.4; scipy select_initial_step, order 4).
    let mut h_abs = {
        let scale = y.abs() * rtol + atol;
        let d0 = rms(&(&y / &scale));
        let d1 = rms(&(&fy / &scale));
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(interval);
        let y1 = &y + &fy * (h0 * dir);
        let f1 = f(t + h0 * dir, &y1);
        nfe += 1;
        let d2 = rms(&((f1 - &fy) / &scale)) / h0;
        let h1 = if d1 <= 1e-15 && d2 <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).powf(1.0 / 5.0)
        };
        (100.0 * h0).min(h1).min(interval)
    };

    let (mut n_accepted, mut n_rejected) = (0usize, 0usize);
    while dir * (t - t1) < 0.0 {
        let min_step = 10.0 * (t.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
        if h_abs < min_step {
            h_abs = min_step;
        }
        let mut rejected = false;
        loop {
            if n_accepted + n_rejected >= cfg.max_steps {
                return Err(Error::Invalid(format!(
                    "RK45 exceeded max_steps = {} at t = {t} (interval [{t0}, {t1}]); the ODE \
                     may be stiff or the score non-finite",
                    cfg.max_steps
                )));
            }
            if h_abs < min_step {
                return Err(Error::Invalid(format!(
                    "RK45 step size fell below {min_step:e} at t = {t}; the drift may be \
                     non-finite or discontinuous"
                )));
            }
            let mut t_new = t + h_abs * dir;
            if dir * (t_new - t1) > 0.0 {
                t_new = t1;
            }
            let h = t_new - t;
            h_abs = h.abs();
            let mut ks: Vec<Tensor> = Vec::with_capacity(7);
            ks.push(fy.shallow_clone());
            for s in 1..6 {
                let dy = lincomb(&ks[..s], &A[s][..s]) * h;
                ks.push(f(t + C[s] * h, &(&y + dy)));
            }
            let y_new = &y + lincomb(&ks[..6], &B) * h;
            let f_new = f(t + h, &y_new);
            nfe += 6;
            ks.push(f_new.shallow_clone());
            let err = lincomb(&ks, &E) * h;
            let scale = y.abs().maximum(&y_new.abs()) * rtol + atol;
            let err_norm = rms(&(err / scale));
            if !err_norm.is_finite() {
                return Err(Error::NonFinite(format!(
                    "RK45 error estimate at t = {t} (the ODE drift)"
                )));
            }
            if err_norm < 1.0 {
                let mut factor = if err_norm == 0.0 {
                    MAX_FACTOR
                } else {
                    (SAFETY * err_norm.powf(ERR_EXP)).min(MAX_FACTOR)
                };
                if rejected {
                    factor = factor.min(1.0);
                }
                h_abs *= factor;
                t = t_new;
                y = y_new;
                fy = f_new;
                n_accepted += 1;
                break;
            }
            h_abs *= (SAFETY * err_norm.powf(ERR_EXP)).max(MIN_FACTOR);
            rejected = true;
            n_rejected += 1;
        }
        progress(((t - t0).abs() / interval).min(1.0));
    }
    Ok(OdeSolution {
        y,
        nfe,
        n_accepted,
        n_rejected,
    })
}

/// The probability-flow drift `f(x, t) − ½ g(t)² s(x, t)`.
pub fn probability_flow_drift(
    sde: &dyn Sde,
    model: &dyn ScoreModel,
    x: &Tensor,
    t: &Tensor,
) -> Tensor {
    let score = model.score(x, t);
    sde.reverse_sde(x, t, &score, true).0
}

/// Probability-flow ODE sampler settings (score_sde `get_ode_sampler` defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OdeConfig {
    pub integrator: IntegratorConfig,
    /// Final time of sampling / start time of encoding; `None` = `sde.sampling_eps()`.
    pub eps: Option<f64>,
    /// After decoding, one reverse-diffusion step at `eps` without noise (score_sde's
    /// `denoise`, which its pipeline sets from `noise_removal = True`).
    pub noise_removal: bool,
    /// Prior samples are `τ · z`, `z ~ p_T` (τ < 1 trades diversity for fidelity).
    pub temperature: f64,
}

impl Default for OdeConfig {
    fn default() -> Self {
        Self {
            integrator: IntegratorConfig::default(),
            eps: None,
            noise_removal: true,
            temperature: 1.0,
        }
    }
}

/// Result of a probability-flow ODE run.
#[derive(Debug)]
pub struct OdeOutput {
    /// Samples (decode) or latents (encode), shape of the input.
    pub x: Tensor,
    /// Score evaluations.
    pub nfe: usize,
    /// Accepted / rejected solver steps.
    pub n_accepted: usize,
    pub n_rejected: usize,
}

/// Probability-flow ODE sampler, encoder and decoder for one SDE.
pub struct OdeSampler<'a> {
    pub sde: &'a dyn Sde,
    pub config: OdeConfig,
}

impl<'a> OdeSampler<'a> {
    pub fn new(sde: &'a dyn Sde, config: OdeConfig) -> Result<Self> {
        check_eps(
            config.eps.unwrap_or_else(|| sde.sampling_eps()),
            sde.t_end(),
        )?;
        config.integrator.check()?;
        if !(config.temperature > 0.0 && config.temperature.is_finite()) {
            return Err(Error::Config(format!(
                "ODE sampler temperature must be positive, got {}",
                config.temperature
            )));
        }
        Ok(Self { sde, config })
    }

    fn eps(&self) -> f64 {
        self.config.eps.unwrap_or_else(|| self.sde.sampling_eps())
    }

    fn run(
        &self,
        model: &dyn ScoreModel,
        x: &Tensor,
        t0: f64,
        t1: f64,
        progress: &mut dyn FnMut(f64),
    ) -> Result<OdeSolution> {
        let sde = self.sde;
        let _guard = tch::no_grad_guard();
        let mut rhs = |t: f64, y: &Tensor| probability_flow_drift(sde, model, y, &vec_t(y, t));
        integrate(&mut rhs, x, t0, t1, &self.config.integrator, progress)
    }

    /// Samples `[batch] ++ sample_shape` from `τ · z`, `z ~ p_T`, by integrating `T → eps`.
    pub fn sample(
        &self,
        model: &dyn ScoreModel,
        batch: i64,
        sample_shape: Option<&[i64]>,
        options: (Kind, Device),
        progress: &mut dyn FnMut(f64),
    ) -> Result<OdeOutput> {
        let shape = full_shape(model, batch, sample_shape)?;
        let z = self.sde.prior_sampling(&shape, options) * self.config.temperature;
        self.decode(model, &z, progress)
    }

    /// Latent `z = x(T)` → data `x(eps)` (then the noise-removal step if configured).
    pub fn decode(
        &self,
        model: &dyn ScoreModel,
        z: &Tensor,
        progress: &mut dyn FnMut(f64),
    ) -> Result<OdeOutput> {
        check_batch(z, model, "ODE decoder latent z")?;
        let eps = self.eps();
        let sol = self.run(model, z, self.sde.t_end(), eps, progress)?;
        let mut x = sol.y;
        let mut nfe = sol.nfe;
        if self.config.noise_removal {
            let _guard = tch::no_grad_guard();
            let t = vec_t(&x, eps);
            let score = model.score(&x, &t);
            let (f, _g) = self.sde.reverse_discretize(&x, &t, &score, false);
            x = &x - f;
            nfe += 1;
        }
        Ok(OdeOutput {
            x,
            nfe,
            n_accepted: sol.n_accepted,
            n_rejected: sol.n_rejected,
        })
    }

    /// Data `x(eps)` → latent `z = x(T)`.
    pub fn encode(
        &self,
        model: &dyn ScoreModel,
        x: &Tensor,
        progress: &mut dyn FnMut(f64),
    ) -> Result<OdeOutput> {
        check_batch(x, model, "ODE encoder input x")?;
        let sol = self.run(model, x, self.eps(), self.sde.t_end(), progress)?;
        Ok(OdeOutput {
            x: sol.y,
            nfe: sol.nfe,
            n_accepted: sol.n_accepted,
            n_rejected: sol.n_rejected,
        })
    }
}

/// Spherical interpolation per sample between latents `z0` and `z1` (same shape `[B, ...]`):
///
/// ```text
/// slerp(α) = sin((1−α) θ)/sin θ · z0 + sin(α θ)/sin θ · z1,   cos θ = ⟨z0, z1⟩ / (‖z0‖ ‖z1‖)
/// ```
/// which keeps interpolants at the typical norm of a Gaussian latent (linear interpolation
/// shrinks them towards the mode). Falls back to linear interpolation when `θ ≈ 0`.
pub fn slerp(z0: &Tensor, z1: &Tensor, alpha: f64) -> Result<Tensor> {
    if z0.size() != z1.size() || z0.dim() < 2 {
        return Err(Error::Shape {
            what: "latents to interpolate".into(),
            expected: format!(
                "two batches [B, ...] of equal shape, first is {:?}",
                z0.size()
            ),
            actual: format!("{:?}", z1.size()),
        });
    }
    let a = z0.flatten(1, -1);
    let b = z1.flatten(1, -1);
    let kind = z0.kind();
    let na = a.square().sum_dim_intlist(1, false, kind).sqrt();
    let nb = b.square().sum_dim_intlist(1, false, kind).sqrt();
    let cos =
        ((&a * &b).sum_dim_intlist(1, false, kind) / (&na * &nb).clamp_min(1e-30)).clamp(-1.0, 1.0);
    let theta = cos.acos();
    let sin = theta.sin();
    let small = sin.abs().lt(1e-6);
    let w0 = (theta.ones_like() * (1.0 - alpha))
        .where_self(&small, &((&theta * (1.0 - alpha)).sin() / &sin));
    let w1 = (theta.ones_like() * alpha).where_self(&small, &((&theta * alpha).sin() / &sin));
    Ok(bcast(&w0, z0) * z0 + bcast(&w1, z1) * z1)
}

/// `n ≥ 2` latents from `z0` to `z1` by [`slerp`] at `α = k/(n−1)`.
pub fn interpolate(z0: &Tensor, z1: &Tensor, n: usize) -> Result<Vec<Tensor>> {
    if n < 2 {
        return Err(Error::Config(format!(
            "interpolation needs at least 2 points, got {n}"
        )));
    }
    (0..n)
        .map(|k| slerp(z0, z1, k as f64 / (n - 1) as f64))
        .collect()
}

/// Progress units of one ODE batch: thousandths of the time interval.
pub const ODE_TICKS: u64 = 1000;

/// The probability-flow ODE sampler in the registry ([`super::registry::SAMPLERS`]).
pub const ENTRY: SamplerEntry = SamplerEntry {
    name: OdeConfig::NAME,
    aliases: &[],
    about: "probability-flow ODE, adaptive RK45 or a fixed-step solver (Song et al. 2021)",
    options: &[
        "steps",
        "temperature",
        "ode_solver",
        "rtol",
        "atol",
        "no_denoise",
    ],
    build: |o, sde| {
        let mut integ = IntegratorConfig::default();
        if let Some(s) = o.ode_solver {
            integ.solver = s;
        }
        match (integ.solver, o.steps) {
            (OdeSolver::Rk45, Some(_)) => {
                return Err(Error::Config(
                    "`steps` sets the steps of a fixed-step ODE solver; RK45 chooses its own \
                     (tune it with `rtol`/`atol`, or pass `ode_solver` euler|heun|rk4)"
                        .into(),
                ))
            }
            (_, Some(n)) => integ.n_steps = n,
            (_, None) => {}
        }
        if o.rtol.is_some() || o.atol.is_some() {
            if integ.solver != OdeSolver::Rk45 {
                return Err(Error::Config(
                    "`rtol`/`atol` apply to the adaptive rk45 solver only".into(),
                ));
            }
            integ.rtol = o.rtol.unwrap_or(integ.rtol);
            integ.atol = o.atol.unwrap_or(integ.atol);
        }
        let c = OdeConfig {
            integrator: integ,
            eps: None,
            noise_removal: !o.no_denoise,
            temperature: o.temperature.unwrap_or(1.0),
        };
        OdeSampler::new(sde.build()?.as_ref(), c)?;
        Ok(Configured::boxed(c, *sde))
    },
};

impl SamplerConfig for OdeConfig {
    const NAME: &'static str = "ode";
    fn describe(&self, _sde: &SdeConfig) -> String {
        let c = self;
        format!(
            "probability-flow ODE: {:?} (rtol {}, atol {}), temperature {}",
            c.integrator.solver, c.integrator.rtol, c.integrator.atol, c.temperature
        )
    }
    fn progress_units(&self, _sde: &SdeConfig) -> u64 {
        ODE_TICKS
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
        let out =
            OdeSampler::new(sde, *self)?.sample(model, batch, Some(shape), options, &mut |f| {
                progress((f * ODE_TICKS as f64) as u64)
            })?;
        Ok(SampleOutput {
            x: out.x,
            nfe: out.nfe,
        })
    }
}
