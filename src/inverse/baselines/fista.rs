//! TV-regularised least squares by FISTA with an inner TV proximal solver (Beck & Teboulle
//! 2009, "Fast gradient-based algorithms for constrained total variation image denoising and
//! deblurring problems", IEEE TIP 18:2419, the MFISTA/FISTA-TV scheme without monotone step).
//!
//! Same problem as [`super::tv`]: `min_x ½‖Ax − y‖² + λ TV(x) + ι_C(x)`. With `L = ‖A‖²`:
//!
//! ```text
//! x_k = prox_{(λ/L)TV + ι_C}(z_k − Re(Aᴴ(A z_k − y))/L)
//! t_{k+1} = (1 + sqrt(1 + 4 t_k²))/2,   z_{k+1} = x_k + ((t_k − 1)/t_{k+1})(x_k − x_{k−1})
//! ```
//!
//! The proximal map `argmin_x ½‖x − b‖² + μ TV(x) + ι_C(x)` is computed by the fast gradient
//! projection (FGP) on the dual: `x(w) = Π_C(b − μ∇ᵀw)`,
//! `w ← Π_{|w|≤1}(v + ∇x(v)/(8μ))` with FISTA momentum on `w` (`‖∇‖² ≤ 8`), warm-started from
//! the previous outer iteration's `w`. Objective values are recorded every `check_every`
//! iterations; FISTA has no dual certificate, so [`TvHistory::gap`] stays empty and the
//! optional tolerance applies to the relative step `‖x_k − x_{k−1}‖ / ‖x_k‖`.
use super::tv::{gradient, gradient_adjoint, total_variation, Constraint, Init, LambdaScaling};
use super::{operator_norm, real_part, PowerIteration, TvHistory, TvResult};
use crate::{Error, Result};
use scoreinv_operators::{format_shape, LinearOperator};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Settings of [`tv_fista`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FistaConfig {
    pub lambda: f64,
    pub lambda_scaling: LambdaScaling,
    /// Outer (FISTA) iterations.
    pub n_iter: usize,
    /// Inner FGP iterations per proximal map (Beck & Teboulle use 10–20 with warm starts).
    pub inner_iter: usize,
    /// Stop when `‖x_k − x_{k−1}‖ ≤ tol ‖x_k‖` at a check.
    pub tol: Option<f64>,
    pub check_every: usize,
    pub constraint: Constraint,
    pub init: Init,
    pub power: PowerIteration,
    /// `‖A‖` if known.
    pub op_norm: Option<f64>,
}

impl Default for FistaConfig {
    fn default() -> Self {
        FistaConfig {
            lambda: 0.01,
            lambda_scaling: LambdaScaling::Absolute,
            n_iter: 200,
            inner_iter: 20,
            tol: None,
            check_every: 25,
            constraint: Constraint::None,
            init: Init::PseudoInverse,
            power: PowerIteration::default(),
            op_norm: None,
        }
    }
}

/// Dual state of the FGP inner solver (kept between outer iterations as a warm start).
struct Fgp {
    wx: Tensor,
    wy: Tensor,
}

impl Fgp {
    /// `argmin_x ½‖x − b‖² + μ TV(x) + ι_C(x)` with `n` FGP iterations.
    fn prox(&mut self, b: &Tensor, mu: f64, c: &Constraint, n: usize) -> Tensor {
        if mu == 0.0 {
            return c.project(b);
        }
        let step = 1.0 / (8.0 * mu);
        let (mut vx, mut vy) = (self.wx.shallow_clone(), self.wy.shallow_clone());
        let mut t = 1.0f64;
        for _ in 0..n {
            let x = c.project(&(b - gradient_adjoint(&vx, &vy) * mu));
            let (gx, gy) = gradient(&x);
            let px = &vx + gx * step;
            let py = &vy + gy * step;
            let scale = (px.square() + py.square()).sqrt().clamp_min(1.0);
            let (nx, ny) = (px / &scale, py / scale);
            let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            let beta = (t - 1.0) / t_next;
            vx = &nx + (&nx - &self.wx) * beta;
            vy = &ny + (&ny - &self.wy) * beta;
            self.wx = nx;
            self.wy = ny;
            t = t_next;
        }
        c.project(&(b - gradient_adjoint(&self.wx, &self.wy) * mu))
    }
}

/// TV-regularised least squares by FISTA (see the module doc).
pub fn tv_fista(op: &dyn LinearOperator, y: &Tensor, cfg: &FistaConfig) -> Result<TvResult> {
    if !(cfg.lambda >= 0.0 && cfg.lambda.is_finite()) {
        return Err(Error::Config(format!(
            "tv_fista: lambda = {} must be finite and >= 0",
            cfg.lambda
        )));
    }
    if cfg.n_iter == 0 || cfg.inner_iter == 0 || cfg.check_every == 0 {
        return Err(Error::Config(format!(
            "tv_fista: n_iter = {}, inner_iter = {}, check_every = {} must be at least 1",
            cfg.n_iter, cfg.inner_iter, cfg.check_every
        )));
    }
    if let Some(tol) = cfg.tol {
        if !(tol > 0.0 && tol.is_finite()) {
            return Err(Error::Config(format!(
                "tv_fista: tol = {tol} must be positive"
            )));
        }
    }
    if let Constraint::Box { lo, hi } = cfg.constraint {
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(Error::Config(format!(
                "tv_fista: box constraint [{lo}, {hi}] needs finite lo <= hi"
            )));
        }
    }
    let in_shape = op.input_shape();
    if in_shape.len() < 2 {
        return Err(Error::Shape {
            what: format!("tv_fista: input of operator '{}'", op.name()),
            expected: "an image shape [..., H, W]".into(),
            actual: format_shape(&in_shape),
        });
    }
    op.check_output(y)?;
    if !bool::try_from(y.isfinite().all())? {
        return Err(Error::NonFinite("tv_fista: measurement y".into()));
    }
    let device = y.device();
    let kind = match y.kind() {
        Kind::ComplexFloat => Kind::Float,
        Kind::ComplexDouble => Kind::Double,
        Kind::ComplexHalf => Kind::Half,
        k => k,
    };
    let norm_a = match cfg.op_norm {
        Some(n) if n > 0.0 && n.is_finite() => n,
        Some(n) => {
            return Err(Error::Config(format!(
                "tv_fista: op_norm = {n} must be positive"
            )))
        }
        None => operator_norm(op, kind, device, &cfg.power)?,
    };
    let lambda = match cfg.lambda_scaling {
        LambdaScaling::Absolute => cfg.lambda,
        LambdaScaling::OperatorNormSquared => cfg.lambda * norm_a * norm_a,
    };
    // Lipschitz constant of the data-term gradient, with the 1 % power-iteration margin.
    let lip = (1.01 * norm_a).powi(2);
    let mut x = match cfg.init {
        Init::Zero => {
            let mut shape = vec![y.size()[0]];
            shape.extend(&in_shape);
            Tensor::zeros(shape.as_slice(), (kind, device))
        }
        Init::Adjoint => real_part(&op.adjoint(y)?).to_kind(kind),
        Init::PseudoInverse => real_part(&op.pseudo_inverse(y)?).to_kind(kind),
    };
    x = cfg.constraint.project(&x);
    let mut z = x.copy();
    let mut t = 1.0f64;
    let mut fgp = Fgp {
        wx: x.zeros_like(),
        wy: x.zeros_like(),
    };
    let mut history = TvHistory::default();
    let mut pending: Vec<(usize, Tensor)> = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    for k in 1..=cfg.n_iter {
        let grad = real_part(&op.adjoint(&(op.forward(&z)? - y))?);
        let v = &z - grad / lip;
        let x_new = fgp.prox(&v, lambda / lip, &cfg.constraint, cfg.inner_iter);
        let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
        z = &x_new + (&x_new - &x) * ((t - 1.0) / t_next);
        t = t_next;
        let step = (&x_new - &x).norm();
        x = x_new;
        iterations = k;
        if k % cfg.check_every == 0 || k == cfg.n_iter {
            let r = op.forward(&x)? - y;
            let r2 = if r.is_complex() {
                r.abs().square().sum(Kind::Double)
            } else {
                r.square().sum(Kind::Double)
            };
            let objective = r2 * 0.5 + total_variation(&x).sum(Kind::Double) * lambda;
            if let Some(tol) = cfg.tol {
                let p = objective.double_value(&[]);
                if !p.is_finite() {
                    return Err(Error::Diverged(format!(
                        "tv_fista: objective {p} at iteration {k} (operator '{}')",
                        op.name()
                    )));
                }
                history.iteration.push(k);
                history.objective.push(p);
                let rel =
                    step.double_value(&[]) / x.norm().double_value(&[]).max(f64::MIN_POSITIVE);
                if rel <= tol {
                    converged = true;
                    break;
                }
            } else {
                pending.push((k, objective));
            }
        }
    }
    if !pending.is_empty() {
        let obj = Tensor::stack(&pending.iter().map(|c| &c.1).collect::<Vec<_>>(), 0);
        history.iteration = pending.iter().map(|c| c.0).collect();
        history.objective = Vec::<f64>::try_from(&obj.to_device(tch::Device::Cpu))?;
    }
    Ok(TvResult {
        x,
        history,
        iterations,
        converged,
        op_norm: norm_a,
        lambda,
    })
}
