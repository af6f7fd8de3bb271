//! Solvers for `y = A x + n`.
//!
//! * [`baselines`]: the classical solvers (FBP, TV) every score-based method is compared against.
//! * [`projection`]: the projection PC sampler of Song et al. 2022 (ICLR) for [`Decomposed`]
//!   operators (sparse-view CT, MRI).
//! * [`replacement`]: score_sde's replacement sampler for inpainting and colorization.
//! * [`dps`]: diffusion posterior sampling (Chung et al. 2023, ICLR) for any linear operator.
//! * [`ddim`], [`diffpir`]: few-step samplers (20–50 network evaluations): DDIM with a
//!   data-consistency projection (Song et al. 2021; Wang et al. 2023) and DiffPIR (Zhu et al.
//!   2023), for any linear operator.
//! * [`warm_start`]: starting any of them from a classical reconstruction (CCDF).
//! * [`posterior`]: K posterior samples per measurement → mean and pixel-wise std.
//! * [`score_method`]: a trained model directory + sampler as a [`study::Method`].
//! * [`study`]: run methods on cases and tabulate PSNR/SSIM.
pub mod baselines;
pub mod conditional;
pub mod ddim;
pub mod diffpir;
pub mod dps;
pub mod posterior;
pub mod projection;
pub mod replacement;
pub mod score_method;
pub mod study;
pub mod typicality;
pub mod warm_start;

use crate::sde::Sde;
use crate::{Error, Result};
use scoreinv_operators::{Decomposed, LinearOperator};
use tch::{Device, Kind, Tensor};

/// Checks a measurement batch `[B] ++ op.output_shape()` (B ≥ 1, finite) and returns the real
/// kind and the device the samples will live on.
pub(crate) fn check_measurement(op: &dyn LinearOperator, y: &Tensor) -> Result<(Kind, Device)> {
    op.check_output(y)?;
    if y.size()[0] < 1 {
        return Err(Error::Invalid(format!(
            "{}: empty measurement batch {:?}",
            op.name(),
            y.size()
        )));
    }
    let kind = match y.kind() {
        Kind::Float | Kind::ComplexFloat => Kind::Float,
        Kind::Double | Kind::ComplexDouble => Kind::Double,
        k => {
            return Err(Error::Invalid(format!(
                "{}: measurement must be f32/f64 (or complex), got {k:?}",
                op.name()
            )))
        }
    };
    if y.isfinite().all().int64_value(&[]) == 0 {
        return Err(Error::NonFinite(format!(
            "{} measurement y ({})",
            op.name(),
            crate::io::nonfinite_summary(&if y.is_complex() {
                y.view_as_real()
            } else {
                y.shallow_clone()
            })
        )));
    }
    Ok((kind, y.device()))
}

/// The data-consistency step shared by the projection and replacement samplers, with `Λ` and
/// `embed(y)` computed once:
///
/// ```text
/// ŷ_t = m(t) embed(y) + s(t) T z,   x ← x + T⁻¹[λ Λ (ŷ_t − T x)]
/// ```
pub(crate) struct ConsistencyStep<'a> {
    op: &'a dyn Decomposed,
    mask: Tensor,
    known: Tensor,
}

impl<'a> ConsistencyStep<'a> {
    /// `like` gives the real dtype of the samples.
    pub fn new(op: &'a dyn Decomposed, y: &Tensor, like: &Tensor) -> Result<Self> {
        let mask = op.mask(like.device()).to_kind(like.kind());
        let known = op.embed(y)?;
        Ok(Self { op, mask, known })
    }

    /// `x + T⁻¹[λ Λ (target − T x)]` with `target = m(t) embed(y) + s(t) T z`.
    pub fn project_noisy(&self, sde: &dyn Sde, x: &Tensor, t: f64, lambda: f64) -> Result<Tensor> {
        self.project_noisy_with(sde, x, t, &x.randn_like(), lambda)
    }

    /// [`Self::project_noisy`] with the noise `z` given.
    pub fn project_noisy_with(
        &self,
        sde: &dyn Sde,
        x: &Tensor,
        t: f64,
        z: &Tensor,
        lambda: f64,
    ) -> Result<Tensor> {
        let (m, s) = sde.mean_coeff_std(t);
        let b = x.size()[0];
        // One transform call for T x and T z.
        let both = self.op.transform(&Tensor::cat(&[x, z], 0))?;
        let tx = both.narrow(0, 0, b);
        let tz = both.narrow(0, b, b);
        let target = &self.known * m + tz * s;
        self.correct(x, &tx, &target, lambda)
    }

    /// [`Self::project_noisy`] with the time as a `[B]` device tensor: `m(t)` and `s(t)` come
    /// from `sde.marginal_prob` on the device (no host scalars), so a CUDA graph of a step that
    /// calls it can be replayed at every time.
    pub fn project_noisy_t(
        &self,
        sde: &dyn Sde,
        x: &Tensor,
        t: &Tensor,
        lambda: f64,
    ) -> Result<Tensor> {
        self.project_noisy_t_with(sde, x, t, &x.randn_like(), lambda)
    }

    /// [`Self::project_noisy_t`] with the noise `z` given.
    pub fn project_noisy_t_with(
        &self,
        sde: &dyn Sde,
        x: &Tensor,
        t: &Tensor,
        z: &Tensor,
        lambda: f64,
    ) -> Result<Tensor> {
        let b = x.size()[0];
        let mut shape = vec![b];
        shape.extend(std::iter::repeat_n(1, self.known.dim() - 1));
        let ones = Tensor::ones(shape.as_slice(), (t.kind(), t.device()));
        let (m, s) = sde.marginal_prob(&ones, t);
        let both = self.op.transform(&Tensor::cat(&[x, z], 0))?;
        let tx = both.narrow(0, 0, b);
        let tz = both.narrow(0, b, b);
        let target =
            &self.known * m.to_kind(x.kind()) + tz * s.to_kind(x.kind()).reshape(shape.as_slice());
        self.correct(x, &tx, &target, lambda)
    }

    /// `x + T⁻¹[λ Λ (embed(y) − T x)]` (the noiseless projection).
    pub fn project_clean(&self, x: &Tensor, lambda: f64) -> Result<Tensor> {
        let tx = self.op.transform(x)?;
        self.correct(x, &tx, &self.known, lambda)
    }

    /// `x` with its measured part replaced by `m(t) embed(y) + s(t) T z` (`λ = 1`), and the same
    /// without noise for `x_mean`.
    pub fn replace(
        &self,
        sde: &dyn Sde,
        x: &Tensor,
        x_mean: &Tensor,
        t: f64,
    ) -> Result<(Tensor, Tensor)> {
        let (m, s) = sde.mean_coeff_std(t);
        let b = x.size()[0];
        let z = x.randn_like();
        let all = self.op.transform(&Tensor::cat(&[x, x_mean, &z], 0))?;
        let (tx, txm, tz) = (
            all.narrow(0, 0, b),
            all.narrow(0, b, b),
            all.narrow(0, 2 * b, b),
        );
        let mean_target = &self.known * m;
        let target = &mean_target + tz * s;
        Ok((
            self.correct(x, &tx, &target, 1.0)?,
            self.correct(x_mean, &txm, &mean_target, 1.0)?,
        ))
    }

    fn correct(&self, x: &Tensor, tx: &Tensor, target: &Tensor, lambda: f64) -> Result<Tensor> {
        let delta = (target - tx) * (&self.mask * lambda);
        let back = self.op.inverse_transform(&delta)?;
        Ok(x + back.to_kind(x.kind()))
    }
}

/// `Re Σ conj(a) b` per sample, `[B]`, in the real kind `kind`.
fn batch_dot(a: &Tensor, b: &Tensor, kind: Kind) -> Tensor {
    let prod = a.conj() * b;
    let prod = if prod.is_complex() { prod.real() } else { prod };
    prod.flatten(1, -1).sum_dim_intlist(1i64, false, kind)
}

/// The least-squares data-consistency projection `x + Aᴴ (A Aᴴ)⁻¹ (y − A x)` (the point of
/// `{A x = y}` nearest to `x`; for noisy `y` outside the range of `A`, CG's least-squares
/// iterate), with `iters` batched conjugate-gradient iterations on `A Aᴴ u = y − A x` (Hestenes
/// & Stiefel 1952) using only the operator's forward and exact adjoint. Step sizes are `[B]`
/// tensors: no host synchronisation.
pub fn least_squares_consistency(
    op: &dyn LinearOperator,
    x: &Tensor,
    y: &Tensor,
    iters: usize,
) -> Result<Tensor> {
    let kind = x.kind();
    let tiny = if kind == Kind::Double { 1e-300 } else { 1e-30 };
    let mut r = y - op.forward(x)?;
    let mut u = r.zeros_like();
    let mut p = r.shallow_clone();
    let mut rs = batch_dot(&r, &r, kind);
    for _ in 0..iters {
        let ap = op.forward(&op.adjoint(&p)?)?;
        let alpha = &rs / batch_dot(&p, &ap, kind).clamp_min(tiny);
        let a = crate::sde::bcast(&alpha, &p);
        // Out of place: `+=` on a tch tensor is in-place and `p` starts as an alias of `r`.
        u = u.f_add(&(&p * &a))?;
        r = r.f_sub(&(ap * &a))?;
        let rs_new = batch_dot(&r, &r, kind);
        let beta = &rs_new / rs.clamp_min(tiny);
        p = &r + p * crate::sde::bcast(&beta, &r);
        rs = rs_new;
    }
    Ok(x + op.adjoint(&u)?.to_kind(kind))
}
/// Tweedie's estimate and the predicted noise at time `t`: `x̂₀ = (x + s² s_θ(x, t)) / m` and
/// `ε̂ = (x − m x̂₀) / s = −s s_θ(x, t)` (one score evaluation).
pub(crate) fn tweedie(
    sde: &dyn Sde,
    model: &dyn crate::models::ScoreModel,
    x: &Tensor,
    t: f64,
) -> (Tensor, Tensor) {
    let (m, s) = sde.mean_coeff_std(t);
    let score = model.score(x, &crate::sampling::vec_t(x, t));
    let eps = &score * (-s);
    ((x - &eps * s) / m, eps)
}

/// The real part of `t` (itself when real): adjoints of complex measurements into real images.
fn real_part(t: Tensor) -> Tensor {
    if t.is_complex() {
        t.real()
    } else {
        t
    }
}

/// The regularised least-squares data step `argmin_z ‖y − A z‖² + ρ ‖z − x‖²` per sample (`ρ`:
/// `[B]`, ≥ 0), as `x + u` with `iters` batched conjugate-gradient iterations on the normal
/// equations `(AᴴA + ρ I) u = Aᴴ(y − A x)` from `u = 0` (for `ρ = 0` the least-squares point
/// nearest `x` in the Krylov space). Uses only the operator's forward and exact adjoint; no host
/// synchronisation.
pub fn regularised_least_squares(
    op: &dyn LinearOperator,
    x: &Tensor,
    y: &Tensor,
    rho: &Tensor,
    iters: usize,
) -> Result<Tensor> {
    let kind = x.kind();
    let tiny = if kind == Kind::Double { 1e-300 } else { 1e-30 };
    let rho = crate::sde::bcast(&rho.to_kind(kind), x);
    let normal = |p: &Tensor| -> Result<Tensor> {
        Ok(real_part(op.adjoint(&op.forward(p)?)?).to_kind(kind) + p * &rho)
    };
    let mut r = real_part(op.adjoint(&(y - op.forward(x)?))?).to_kind(kind);
    let mut u = r.zeros_like();
    let mut p = r.shallow_clone();
    let mut rs = batch_dot(&r, &r, kind);
    for _ in 0..iters {
        let ap = normal(&p)?;
        let alpha = &rs / batch_dot(&p, &ap, kind).clamp_min(tiny);
        let a = crate::sde::bcast(&alpha, &p);
        u = u.f_add(&(&p * &a))?;
        r = r.f_sub(&(ap * &a))?;
        let rs_new = batch_dot(&r, &r, kind);
        let beta = &rs_new / rs.clamp_min(tiny);
        p = &r + p * crate::sde::bcast(&beta, &r);
        rs = rs_new;
    }
    Ok(x + u)
}

pub mod tasks;
pub mod volumes;
