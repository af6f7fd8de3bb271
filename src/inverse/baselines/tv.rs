//! TV-regularised least squares by the primal-dual hybrid gradient method.
//!
//! Solves, for each sample of a batch `y` (`[B] ++ A.output_shape()`),
//!
//! ```text
//! min_x  ½‖A x − y‖² + λ TV(x) + ι_C(x),     TV(x) = Σ_{c,i,j} sqrt((∂₁x)² + (∂₂x)²)
//! ```
//!
//! with isotropic TV per channel (forward differences, Neumann boundary: the difference past the
//! last row/column is 0) and `C` = no constraint, `x ≥ 0` or a box `[lo, hi]`. The solver is
//! Algorithm 1 of Chambolle & Pock 2011 ("A first-order primal-dual algorithm for convex
//! problems with applications to imaging", JMIV 40:120) with `θ = 1` on
//! `K = [A/s; ∇]`, `F(v, w) = (s²/2)‖v − y/s‖² + λ‖w‖_{2,1}`, `G = ι_C`:
//!
//! ```text
//! p ← (p + σ(A x̄/s − y/s)) / (1 + σ/s²)            prox of σF₁*
//! q ← Π_{|q|≤λ}(q + σ∇x̄)                            prox of σF₂* (pointwise projection)
//! x⁺ ← Π_C(x − τ(Re(Aᴴp)/s + ∇ᵀq)),  x̄ ← 2x⁺ − x
//! ```
//!
//! The scale `s = ‖A‖/√8` balances the two blocks (`‖∇‖² ≤ 8`), so `‖K‖² ≤ 16` and
//! `τ = σ = 0.99/4` satisfy `τσ‖K‖² < 1`; `‖A‖` comes from power iteration
//! ([`super::operator_norm`], with a 1 % margin since power iteration underestimates).
//!
//! Images are real: for complex measurements (MRI k-space) the forward operator sees a real
//! image and the adjoint's real part is used (`Re(Aᴴ·)`), which is the exact adjoint of `A`
//! restricted to real images with the real inner product `Re⟨·,·⟩` on `ℂᵐ`.
//!
//! Convergence is monitored by the primal objective `P(x)` and the primal-dual gap
//! `P(x) − D(p, q)`, `D = −F*(p, q) − σ_B(−Kᵀ(p, q))`. With a box constraint `B = C` and this is
//! the exact duality gap; for unbounded `C` it is the partial gap of Chambolle & Pock (§3,
//! restricted to the box `C ∩ [−R, R]`, `R = 2 max|x| + 1`, which contains the solution once the
//! iterates are close to it). Both are computed every `check_every` iterations, as device
//! tensors: the loop synchronises with the host only when a tolerance is set, at those checks.
use super::{operator_norm, real_part, PowerIteration};
use crate::{Error, Result};
use scoreinv_operators::{format_shape, LinearOperator};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The convex set `C` the reconstruction is projected onto.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Constraint {
    /// `x ∈ ℝⁿ`.
    #[default]
    None,
    /// `x ≥ 0`.
    NonNegative,
    /// `lo ≤ x ≤ hi`.
    Box { lo: f64, hi: f64 },
}

impl Constraint {
    /// `(lo, hi)`, infinite where unconstrained.
    pub fn bounds(&self) -> (f64, f64) {
        match *self {
            Constraint::None => (f64::NEG_INFINITY, f64::INFINITY),
            Constraint::NonNegative => (0.0, f64::INFINITY),
            Constraint::Box { lo, hi } => (lo, hi),
        }
    }

    fn validate(&self) -> Result<()> {
        if let Constraint::Box { lo, hi } = *self {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(Error::Config(format!(
                    "tv: box constraint [{lo}, {hi}] needs finite lo <= hi"
                )));
            }
        }
        Ok(())
    }

    /// Euclidean projection onto `C`.
    pub fn project(&self, x: &Tensor) -> Tensor {
        match *self {
            Constraint::None => x.shallow_clone(),
            Constraint::NonNegative => x.clamp_min(0.0),
            Constraint::Box { lo, hi } => x.clamp(lo, hi),
        }
    }
}

/// How [`TvConfig::lambda`] is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LambdaScaling {
    /// `λ = lambda`.
    #[default]
    Absolute,
    /// `λ = lambda · ‖A‖²`: invariant to rescaling the operator (`A → cA, y → cy` leaves the
    /// minimiser unchanged), so one value carries over between operator normalisations.
    OperatorNormSquared,
}

/// The starting point `x⁰`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    Zero,
    /// `Re(Aᴴ y)`.
    Adjoint,
    /// `Re(A⁺ y)` (FBP for CT, zero-filled for MRI).
    #[default]
    PseudoInverse,
}

/// Settings of [`tv_pdhg`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TvConfig {
    /// Regularisation weight (see [`LambdaScaling`]); must be ≥ 0.
    pub lambda: f64,
    pub lambda_scaling: LambdaScaling,
    /// Maximum (and, without `tol`, exact) number of PDHG iterations.
    pub n_iter: usize,
    /// Stop when `gap ≤ tol · |P(x)|` (summed over the batch) at a check.
    pub tol: Option<f64>,
    /// Objective and gap are evaluated every `check_every` iterations (and at the last one).
    pub check_every: usize,
    pub constraint: Constraint,
    pub init: Init,
    /// Settings of the power iteration estimating `‖A‖`.
    pub power: PowerIteration,
    /// `‖A‖` if known (skips the power iteration).
    pub op_norm: Option<f64>,
}

impl Default for TvConfig {
    fn default() -> Self {
        TvConfig {
            lambda: 0.01,
            lambda_scaling: LambdaScaling::Absolute,
            n_iter: 500,
            tol: None,
            check_every: 25,
            constraint: Constraint::None,
            init: Init::PseudoInverse,
            power: PowerIteration::default(),
            op_norm: None,
        }
    }
}

/// Objective and gap at the checked iterations (sums over the batch).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TvHistory {
    /// Iteration numbers (1-based) of the checks.
    pub iteration: Vec<usize>,
    /// `P(x) = ½‖Ax − y‖² + λ TV(x)`.
    pub objective: Vec<f64>,
    /// `P(x) − D(p, q) ≥ 0` (see the module doc).
    pub gap: Vec<f64>,
}

/// What [`tv_pdhg`] returns.
#[derive(Debug)]
pub struct TvResult {
    /// The reconstruction, `[B] ++ A.input_shape()`, real, on `y`'s device.
    pub x: Tensor,
    pub history: TvHistory,
    /// Iterations run.
    pub iterations: usize,
    /// Whether `tol` was reached.
    pub converged: bool,
    /// The `‖A‖` used for the step sizes.
    pub op_norm: f64,
    /// The effective `λ`.
    pub lambda: f64,
}

/// Forward differences over the last two axes (Neumann boundary):
/// `(∂_W x, ∂_H x)`, each the shape of `x`.
pub fn gradient(x: &Tensor) -> (Tensor, Tensor) {
    let d = x.dim() as i64;
    let w = x.size()[(d - 1) as usize];
    let h = x.size()[(d - 2) as usize];
    let gx = (x.narrow(d - 1, 1, w - 1) - x.narrow(d - 1, 0, w - 1)).constant_pad_nd([0, 1]);
    let gy = (x.narrow(d - 2, 1, h - 1) - x.narrow(d - 2, 0, h - 1)).constant_pad_nd([0, 0, 0, 1]);
    (gx, gy)
}

/// `∇ᵀ(q_x, q_y)` (= −div), the exact adjoint of [`gradient`].
pub fn gradient_adjoint(qx: &Tensor, qy: &Tensor) -> Tensor {
    let d = qx.dim() as i64;
    let w = qx.size()[(d - 1) as usize];
    let h = qy.size()[(d - 2) as usize];
    let qxi = qx.narrow(d - 1, 0, w - 1);
    let qyi = qy.narrow(d - 2, 0, h - 1);
    qxi.constant_pad_nd([1, 0]) - qxi.constant_pad_nd([0, 1]) + qyi.constant_pad_nd([0, 0, 1, 0])
        - qyi.constant_pad_nd([0, 0, 0, 1])
}

/// Isotropic TV of each sample of a batch: a `[B]` tensor.
pub fn total_variation(x: &Tensor) -> Tensor {
    let (gx, gy) = gradient(x);
    (gx.square() + gy.square())
        .sqrt()
        .flatten(1, -1)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
}

/// `Re⟨a, b⟩` summed over everything, as a 0-d f64 tensor (complex tensors as pairs of reals).
fn real_inner(a: &Tensor, b: &Tensor) -> Tensor {
    if a.is_complex() || b.is_complex() {
        let ar = a.resolve_conj().contiguous().view_as_real();
        let br = b.resolve_conj().contiguous().view_as_real();
        (ar * br).sum(Kind::Double)
    } else {
        (a * b).sum(Kind::Double)
    }
}

fn real_kind(k: Kind) -> Kind {
    match k {
        Kind::ComplexFloat => Kind::Float,
        Kind::ComplexDouble => Kind::Double,
        Kind::ComplexHalf => Kind::Half,
        other => other,
    }
}

/// TV-regularised least squares by PDHG, started from `cfg.init` (see the module doc).
pub fn tv_pdhg(op: &dyn LinearOperator, y: &Tensor, cfg: &TvConfig) -> Result<TvResult> {
    tv_pdhg_from(op, y, None, cfg)
}

/// [`tv_pdhg`] started from `x0` (`[B] ++ A.input_shape()`, real) when given.
pub fn tv_pdhg_from(
    op: &dyn LinearOperator,
    y: &Tensor,
    x0: Option<&Tensor>,
    cfg: &TvConfig,
) -> Result<TvResult> {
    // ---- validation -------------------------------------------------------------------
    if !(cfg.lambda >= 0.0 && cfg.lambda.is_finite()) {
        return Err(Error::Config(format!(
            "tv: lambda = {} must be finite and >= 0",
            cfg.lambda
        )));
    }
    if cfg.n_iter == 0 || cfg.check_every == 0 {
        return Err(Error::Config(format!(
            "tv: n_iter = {} and check_every = {} must be at least 1",
            cfg.n_iter, cfg.check_every
        )));
    }
    if let Some(tol) = cfg.tol {
        if !(tol > 0.0 && tol.is_finite()) {
            return Err(Error::Config(format!("tv: tol = {tol} must be positive")));
        }
    }
    cfg.constraint.validate()?;
    let in_shape = op.input_shape();
    if in_shape.len() < 2 {
        return Err(Error::Shape {
            what: format!("tv: input of operator '{}'", op.name()),
            expected: "an image shape [..., H, W]".into(),
            actual: format_shape(&in_shape),
        });
    }
    op.check_output(y)?;
    if !bool::try_from(y.isfinite().all())? {
        return Err(Error::NonFinite("tv: measurement y".into()));
    }
    let device = y.device();
    let kind = real_kind(y.kind());
    if !matches!(
        kind,
        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
    ) {
        return Err(Error::Invalid(format!(
            "tv: measurement y has dtype {:?}; expected a floating-point or complex tensor",
            y.kind()
        )));
    }

    // ---- step sizes -------------------------------------------------------------------
    let norm_a = match cfg.op_norm {
        Some(n) if n > 0.0 && n.is_finite() => n,
        Some(n) => return Err(Error::Config(format!("tv: op_norm = {n} must be positive"))),
        None => operator_norm(op, kind, device, &cfg.power)?,
    };
    let lambda = match cfg.lambda_scaling {
        LambdaScaling::Absolute => cfg.lambda,
        LambdaScaling::OperatorNormSquared => cfg.lambda * norm_a * norm_a,
    };
    // 1 % margin on the (under-)estimated norm; then ‖A/s‖ ≤ √8 and ‖K‖ ≤ 4.
    let s = 1.01 * norm_a / 8f64.sqrt();
    let tau = 0.99 / 4.0;
    let sigma = 0.99 / 4.0;
    let b = (y / s).contiguous();

    // ---- initialisation ---------------------------------------------------------------
    let mut x = match x0 {
        Some(x0) => {
            op.check_input(x0)?;
            if x0.is_complex() {
                return Err(Error::Invalid("tv: x0 must be real".into()));
            }
            x0.to_kind(kind).to_device(device)
        }
        None => match cfg.init {
            Init::Zero => {
                let mut shape = vec![y.size()[0]];
                shape.extend(&in_shape);
                Tensor::zeros(shape.as_slice(), (kind, device))
            }
            Init::Adjoint => real_part(&op.adjoint(y)?).to_kind(kind),
            Init::PseudoInverse => real_part(&op.pseudo_inverse(y)?).to_kind(kind),
        },
    };
    x = cfg.constraint.project(&x);
    let mut xbar = x.copy();
    let mut p = y.zeros_like();
    let mut qx = x.zeros_like();
    let mut qy = x.zeros_like();
    let (lo, hi) = cfg.constraint.bounds();

    let mut checks: Vec<(usize, Tensor, Tensor)> = Vec::new();
    let mut history = TvHistory::default();
    let mut converged = false;
    let mut iterations = 0;
    for k in 1..=cfg.n_iter {
        // Dual ascent on the data block and the gradient block.
        let ax = op.forward(&xbar)? / s;
        p = (&p + (ax - &b) * sigma) / (1.0 + sigma / (s * s));
        let (gx, gy) = gradient(&xbar);
        if lambda > 0.0 {
            let qx1 = &qx + gx * sigma;
            let qy1 = &qy + gy * sigma;
            let scale = ((qx1.square() + qy1.square()).sqrt() / lambda).clamp_min(1.0);
            qx = qx1 / &scale;
            qy = qy1 / scale;
        }
        // Primal descent and extrapolation (θ = 1).
        let kt = real_part(&op.adjoint(&p)?) / s + gradient_adjoint(&qx, &qy);
        let x_new = cfg.constraint.project(&(&x - &kt * tau));
        xbar = &x_new * 2.0 - &x;
        x = x_new;
        iterations = k;

        if k % cfg.check_every == 0 || k == cfg.n_iter {
            // Primal objective at x; dual objective at (p, q) (q is feasible by projection).
            let r = op.forward(&x)? - y;
            let primal = real_inner(&r, &r) * 0.5 + total_variation(&x).sum(Kind::Double) * lambda;
            let fstar = real_inner(&p, &p) * (0.5 / (s * s)) + real_inner(&p, &b);
            let g = kt.to_kind(Kind::Double);
            let radius = x.abs().max().to_kind(Kind::Double) * 2.0 + 1.0;
            let lo_t = if lo.is_finite() {
                radius.full_like(lo)
            } else {
                -&radius
            };
            let hi_t = if hi.is_finite() {
                radius.full_like(hi)
            } else {
                radius.shallow_clone()
            };
            let support = (-&g * &lo_t).maximum(&(-&g * &hi_t)).sum(Kind::Double);
            let dual = -fstar - support;
            let gap = &primal - dual;
            if let Some(tol) = cfg.tol {
                let pv = primal.double_value(&[]);
                let gv = gap.double_value(&[]);
                if !pv.is_finite() || !gv.is_finite() {
                    return Err(Error::Diverged(format!(
                        "tv: objective {pv} / gap {gv} at iteration {k} (operator '{}')",
                        op.name()
                    )));
                }
                history.iteration.push(k);
                history.objective.push(pv);
                history.gap.push(gv);
                if gv <= tol * pv.abs().max(f64::MIN_POSITIVE) {
                    converged = true;
                    break;
                }
            } else {
                checks.push((k, primal, gap));
            }
        }
    }
    if !checks.is_empty() {
        let prim = Tensor::stack(&checks.iter().map(|c| &c.1).collect::<Vec<_>>(), 0);
        let gaps = Tensor::stack(&checks.iter().map(|c| &c.2).collect::<Vec<_>>(), 0);
        history.iteration = checks.iter().map(|c| c.0).collect();
        history.objective = Vec::<f64>::try_from(&prim.to_device(tch::Device::Cpu))?;
        history.gap = Vec::<f64>::try_from(&gaps.to_device(tch::Device::Cpu))?;
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
