//! Exact scores of Gaussian and Gaussian-mixture data, perturbed by any [`Sde`].
//!
//! Data `p₀ = Σ_k w_k N(μ_k, Σ_k)` in `D` dimensions (full covariances, arbitrary weights).
//! Every SDE here has a Gaussian transition kernel `x(t) | x(0) ~ N(m(t) x(0), s(t)² I)`, so the
//! perturbed marginal is again a mixture,
//!
//! ```text
//! p_t(x) = Σ_k w_k N(x; m μ_k, C_k),   C_k = m² Σ_k + s² I,
//! ∇ₓ log p_t(x) = Σ_k p_t(k | x) · (−C_k⁻¹ (x − m μ_k)),
//! p_t(k | x) = softmax_k(log w_k + log N(x; m μ_k, C_k)).
//! ```
//!
//! With the eigendecomposition `Σ_k = U_k diag(λ_k) U_kᵀ` (computed once), `C_k` has the same
//! eigenvectors and eigenvalues `m² λ_k + s²`, so a batch with a different `t` per sample costs
//! two small matrix products per component and no inversion. `m(t), s(t)` are read from
//! [`Sde::marginal_prob`] on a tensor of ones (which returns `(m(t)·1, s(t))`), so the score
//! never leaves the device and never synchronises with the host.
//!
//! These are the exact scores the samplers are tested against (Song et al. 2021 use the same
//! construction for their toy experiments); [`PerturbedMixture::class_posterior`] gives the
//! exact time-dependent classifier `p_t(k | x)` for classifier-guidance tests.

use crate::models::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};
use std::f64::consts::PI;
use std::sync::{Arc, Mutex};
use tch::{Device, Kind, Tensor};

/// Device-resident copies of the mixture parameters, built lazily per (device, dtype).
struct Params {
    device: Device,
    kind: Kind,
    /// `log w_k`, `[K]`.
    log_w: Tensor,
    /// `μ_k`, `[K, D]`.
    means: Tensor,
    /// Eigenvalues `λ_k` of `Σ_k`, `[K, D]`.
    eigvals: Tensor,
    /// Eigenvectors (columns) `U_k` of `Σ_k`, `[K, D, D]`.
    eigvecs: Tensor,
}

impl Params {
    fn shallow(&self) -> Params {
        Params {
            device: self.device,
            kind: self.kind,
            log_w: self.log_w.shallow_clone(),
            means: self.means.shallow_clone(),
            eigvals: self.eigvals.shallow_clone(),
            eigvecs: self.eigvecs.shallow_clone(),
        }
    }
}

/// A Gaussian mixture `Σ_k w_k N(μ_k, Σ_k)` in `D` dimensions: the data distribution `p₀`.
///
/// As a [`ScoreModel`] it returns the *unperturbed* data score `∇ log p₀(x)` for every `t`
/// (used for plain, non-annealed Langevin dynamics). Use [`GaussianMixture::perturbed`] for
/// the exact time-dependent score of an SDE.
pub struct GaussianMixture {
    dim: usize,
    weights: Vec<f64>,
    means: Vec<f64>,
    covs: Vec<f64>,
    eigvals: Vec<f64>,
    eigvecs: Vec<f64>,
    sample_shape: Vec<i64>,
    cache: Mutex<Option<Params>>,
}

impl Clone for GaussianMixture {
    fn clone(&self) -> Self {
        Self {
            dim: self.dim,
            weights: self.weights.clone(),
            means: self.means.clone(),
            covs: self.covs.clone(),
            eigvals: self.eigvals.clone(),
            eigvecs: self.eigvecs.clone(),
            sample_shape: self.sample_shape.clone(),
            cache: Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for GaussianMixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GaussianMixture")
            .field("dim", &self.dim)
            .field("weights", &self.weights)
            .field("means", &self.means)
            .field("covs", &self.covs)
            .finish()
    }
}

impl GaussianMixture {
    /// A mixture from weights `w` (`K` positive numbers, normalised here), means (`K` vectors of
    /// length `D`) and covariances (`K` symmetric positive-definite `D×D` matrices, row-major).
    pub fn new(weights: &[f64], means: &[Vec<f64>], covs: &[Vec<Vec<f64>>]) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(Error::Invalid(
                "Gaussian mixture needs at least one component".into(),
            ));
        }
        if means.len() != k || covs.len() != k {
            return Err(Error::Shape {
                what: "Gaussian mixture means/covariances".into(),
                expected: format!("{k} components (one per weight)"),
                actual: format!("{} means, {} covariances", means.len(), covs.len()),
            });
        }
        let d = means[0].len();
        if d == 0 {
            return Err(Error::Invalid(
                "Gaussian mixture: dimension D must be ≥ 1".into(),
            ));
        }
        let mut flat_means = Vec::with_capacity(k * d);
        let mut flat_covs = Vec::with_capacity(k * d * d);
        for (j, (m, c)) in means.iter().zip(covs).enumerate() {
            if m.len() != d {
                return Err(Error::Shape {
                    what: format!("mean of component {j}"),
                    expected: format!("[{d}]"),
                    actual: format!("[{}]", m.len()),
                });
            }
            flat_means.extend_from_slice(m);
            if c.len() != d || c.iter().any(|row| row.len() != d) {
                return Err(Error::Shape {
                    what: format!("covariance of component {j}"),
                    expected: format!("[{d}, {d}]"),
                    actual: format!(
                        "{} rows of lengths {:?}",
                        c.len(),
                        c.iter().map(|r| r.len()).collect::<Vec<_>>()
                    ),
                });
            }
            for row in c {
                flat_covs.extend_from_slice(row);
            }
        }
        Self::from_flat(weights, flat_means, flat_covs, d)
    }

    /// A single Gaussian `N(μ, Σ)`.
    pub fn gaussian(mean: &[f64], cov: &[Vec<f64>]) -> Result<Self> {
        Self::new(&[1.0], &[mean.to_vec()], &[cov.to_vec()])
    }

    /// A mixture of isotropic Gaussians `N(μ_k, std_k² I)`.
    pub fn isotropic(weights: &[f64], means: &[Vec<f64>], stds: &[f64]) -> Result<Self> {
        if stds.len() != weights.len() {
            return Err(Error::Shape {
                what: "isotropic mixture standard deviations".into(),
                expected: format!("{} (one per weight)", weights.len()),
                actual: format!("{}", stds.len()),
            });
        }
        let d = means.first().map(|m| m.len()).unwrap_or(0);
        let covs: Vec<Vec<Vec<f64>>> = stds
            .iter()
            .map(|s| {
                (0..d)
                    .map(|i| (0..d).map(|j| if i == j { s * s } else { 0.0 }).collect())
                    .collect()
            })
            .collect();
        Self::new(weights, means, &covs)
    }

    /// A mixture from tensors: weights `[K]`, means `[K, D]`, covariances `[K, D, D]`.
    pub fn from_tensors(weights: &Tensor, means: &Tensor, covs: &Tensor) -> Result<Self> {
        let (ws, ms, cs) = (weights.size(), means.size(), covs.size());
        if ws.len() != 1 || ms.len() != 2 || cs.len() != 3 {
            return Err(Error::Shape {
                what: "Gaussian mixture tensors (weights, means, covariances)".into(),
                expected: "[K], [K, D], [K, D, D]".into(),
                actual: format!("{ws:?}, {ms:?}, {cs:?}"),
            });
        }
        let (k, d) = (ws[0], ms[1]);
        if ms[0] != k || cs[0] != k || cs[1] != d || cs[2] != d {
            return Err(Error::Shape {
                what: "Gaussian mixture tensors (weights, means, covariances)".into(),
                expected: format!("[{k}], [{k}, {d}], [{k}, {d}, {d}]"),
                actual: format!("{ws:?}, {ms:?}, {cs:?}"),
            });
        }
        let to_vec = |t: &Tensor| -> Result<Vec<f64>> {
            Ok(Vec::<f64>::try_from(
                t.to_device(Device::Cpu)
                    .to_kind(Kind::Double)
                    .contiguous()
                    .flatten(0, -1),
            )?)
        };
        Self::from_flat(&to_vec(weights)?, to_vec(means)?, to_vec(covs)?, d as usize)
    }

    fn from_flat(weights: &[f64], means: Vec<f64>, covs: Vec<f64>, d: usize) -> Result<Self> {
        let k = weights.len();
        if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(Error::Invalid(format!(
                "Gaussian mixture weights must be positive and finite, got {weights:?}"
            )));
        }
        if means.iter().chain(covs.iter()).any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(
                "Gaussian mixture means or covariances".into(),
            ));
        }
        let total: f64 = weights.iter().sum();
        let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        // Symmetry check, relative to the largest entry of each covariance.
        for j in 0..k {
            let c = &covs[j * d * d..(j + 1) * d * d];
            let scale = c.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-300);
            for r in 0..d {
                for col in 0..r {
                    if (c[r * d + col] - c[col * d + r]).abs() > 1e-9 * scale {
                        return Err(Error::Invalid(format!(
                            "covariance of component {j} is not symmetric: entry ({r},{col}) = {} but ({col},{r}) = {}",
                            c[r * d + col],
                            c[col * d + r]
                        )));
                    }
                }
            }
        }
        let cov_t = Tensor::from_slice(&covs).reshape([k as i64, d as i64, d as i64]);
        let (lam, u) = cov_t.linalg_eigh("L");
        let eigvals = Vec::<f64>::try_from(lam.contiguous().flatten(0, -1))?;
        let eigvecs = Vec::<f64>::try_from(u.contiguous().flatten(0, -1))?;
        for j in 0..k {
            let lmin = eigvals[j * d..(j + 1) * d]
                .iter()
                .cloned()
                .fold(f64::INFINITY, f64::min);
            // (NaN-safe: a NaN eigenvalue is refused too.)
            if lmin.is_nan() || lmin <= 0.0 {
                return Err(Error::Invalid(format!(
                    "covariance of component {j} is not positive definite (smallest eigenvalue {lmin:e})"
                )));
            }
        }
        Ok(Self {
            dim: d,
            weights,
            means,
            covs,
            eigvals,
            eigvecs,
            sample_shape: vec![d as i64],
            cache: Mutex::new(None),
        })
    }

    /// The same mixture, with samples shaped `shape` (product must be `D`), e.g. `[1, 2, 2]`
    /// for 2×2 one-channel "images" with `D = 4`.
    pub fn with_sample_shape(mut self, shape: &[i64]) -> Result<Self> {
        let n: i64 = shape.iter().product();
        if n != self.dim as i64 || shape.iter().any(|&s| s < 1) {
            return Err(Error::Shape {
                what: "Gaussian mixture sample shape".into(),
                expected: format!("positive sizes with product D = {}", self.dim),
                actual: format!("{shape:?}"),
            });
        }
        self.sample_shape = shape.to_vec();
        Ok(self)
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of components `K`.
    pub fn n_components(&self) -> usize {
        self.weights.len()
    }
    /// Normalised weights `w_k`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// Mean `μ_k` of component `k`.
    pub fn component_mean(&self, k: usize) -> &[f64] {
        &self.means[k * self.dim..(k + 1) * self.dim]
    }
    /// Covariance `Σ_k` of component `k`, row-major `D×D`.
    pub fn component_cov(&self, k: usize) -> &[f64] {
        let dd = self.dim * self.dim;
        &self.covs[k * dd..(k + 1) * dd]
    }

    /// Mean of the mixture `Σ_k w_k μ_k`.
    pub fn mean(&self) -> Vec<f64> {
        let d = self.dim;
        let mut out = vec![0.0; d];
        for (k, w) in self.weights.iter().enumerate() {
            for (o, m) in out.iter_mut().zip(&self.means[k * d..(k + 1) * d]) {
                *o += w * m;
            }
        }
        out
    }

    /// Covariance of the mixture `Σ_k w_k (Σ_k + μ_k μ_kᵀ) − μ μᵀ`, row-major `D×D`.
    pub fn covariance(&self) -> Vec<f64> {
        let d = self.dim;
        let mu = self.mean();
        let mut out = vec![0.0; d * d];
        for (k, w) in self.weights.iter().enumerate() {
            let m = &self.means[k * d..(k + 1) * d];
            for i in 0..d {
                for j in 0..d {
                    out[i * d + j] += w * (self.covs[k * d * d + i * d + j] + m[i] * m[j]);
                }
            }
        }
        for i in 0..d {
            for j in 0..d {
                out[i * d + j] -= mu[i] * mu[j];
            }
        }
        out
    }

    fn params(&self, kind: Kind, device: Device) -> Params {
        let mut guard = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = guard.as_ref() {
            if p.device == device && p.kind == kind {
                return p.shallow();
            }
        }
        let (k, d) = (self.weights.len() as i64, self.dim as i64);
        let mk = |v: &[f64], shape: &[i64]| {
            Tensor::from_slice(v)
                .reshape(shape)
                .to_kind(kind)
                .to_device(device)
        };
        let log_w: Vec<f64> = self.weights.iter().map(|w| w.ln()).collect();
        let p = Params {
            device,
            kind,
            log_w: mk(&log_w, &[k]),
            means: mk(&self.means, &[k, d]),
            eigvals: mk(&self.eigvals, &[k, d]),
            eigvecs: mk(&self.eigvecs, &[k, d, d]),
        };
        let out = p.shallow();
        *guard = Some(p);
        out
    }

    fn flatten_batch(&self, x: &Tensor) -> Tensor {
        let b = x.size().first().copied().unwrap_or(0);
        let n: i64 = x.size().iter().skip(1).product();
        assert!(
            n == self.dim as i64,
            "Gaussian mixture of dimension {} got a batch of shape {:?}",
            self.dim,
            x.size()
        );
        x.reshape([b, n])
    }

    /// Per-component terms at scale `(m, s)` (both `[B]`): `log w_k + log N(x; m μ_k, C_k)`,
    /// `[B, K]`, and the component scores `−C_k⁻¹(x − m μ_k)`, `[B, K, D]` (if asked).
    fn component_terms(
        &self,
        x: &Tensor,
        m: &Tensor,
        s: &Tensor,
        want_grad: bool,
    ) -> (Tensor, Option<Tensor>) {
        let p = self.params(x.kind(), x.device());
        let xf = self.flatten_batch(x);
        let m3 = m.reshape([-1, 1, 1]);
        let s3 = s.reshape([-1, 1, 1]);
        // [B, K, D]
        let diff = xf.unsqueeze(1) - &m3 * p.means.unsqueeze(0);
        // y = Uᵀ diff (coordinates in the eigenbasis).
        let y = Tensor::einsum("kdj,bkd->bkj", &[&p.eigvecs, &diff], None::<i64>);
        let var = m3.square() * p.eigvals.unsqueeze(0) + s3.square();
        let v = &y / &var;
        let quad = (&y * &v).sum_dim_intlist(-1, false, x.kind());
        let logdet = var.log().sum_dim_intlist(-1, false, x.kind());
        let d = self.dim as f64;
        let log_terms =
            p.log_w.unsqueeze(0) - quad * 0.5 - logdet * 0.5 - 0.5 * d * (2.0 * PI).ln();
        let grad =
            want_grad.then(|| -Tensor::einsum("kdj,bkj->bkd", &[&p.eigvecs, &v], None::<i64>));
        (log_terms, grad)
    }

    /// `log p(x)` per sample, `[B]`, of the mixture with every component scaled to
    /// `N(m μ_k, m² Σ_k + s² I)`; `m, s` are `[B]`.
    pub fn log_prob_scaled(&self, x: &Tensor, m: &Tensor, s: &Tensor) -> Tensor {
        let (lt, _) = self.component_terms(x, m, s, false);
        lt.logsumexp(1, false)
    }

    /// `∇ₓ log p(x)` of the scaled mixture (see [`GaussianMixture::log_prob_scaled`]), shape of `x`.
    pub fn score_scaled(&self, x: &Tensor, m: &Tensor, s: &Tensor) -> Tensor {
        let (lt, grad) = self.component_terms(x, m, s, true);
        let r = lt.softmax(1, x.kind());
        let g =
            (r.unsqueeze(-1) * grad.expect("grad requested")).sum_dim_intlist(1, false, x.kind());
        g.reshape(x.size())
    }

    /// Posterior component probabilities `p(k | x)` of the scaled mixture, `[B, K]`.
    pub fn posterior_scaled(&self, x: &Tensor, m: &Tensor, s: &Tensor) -> Tensor {
        let (lt, _) = self.component_terms(x, m, s, false);
        lt.softmax(1, x.kind())
    }

    /// Score of component `labels[b]` alone, `∇ₓ log N(x; m μ_y, m² Σ_y + s² I)`.
    pub fn component_score_scaled(
        &self,
        x: &Tensor,
        m: &Tensor,
        s: &Tensor,
        labels: &Tensor,
    ) -> Tensor {
        let (_, grad) = self.component_terms(x, m, s, true);
        let grad = grad.expect("grad requested");
        let d = self.dim as i64;
        let idx = labels
            .to_kind(Kind::Int64)
            .reshape([-1, 1, 1])
            .expand([-1, 1, d], false);
        grad.gather(1, &idx, false).squeeze_dim(1).reshape(x.size())
    }

    fn unit_scale(&self, x: &Tensor) -> (Tensor, Tensor) {
        let b = x.size()[0];
        let m = Tensor::ones([b], (x.kind(), x.device()));
        let s = m.zeros_like();
        (m, s)
    }

    /// Exact `log p₀(x)` of the data, `[B]` (nats).
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        let (m, s) = self.unit_scale(x);
        self.log_prob_scaled(x, &m, &s)
    }

    /// Exact data score `∇ₓ log p₀(x)`.
    pub fn data_score(&self, x: &Tensor) -> Tensor {
        let (m, s) = self.unit_scale(x);
        self.score_scaled(x, &m, &s)
    }

    /// Posterior component probabilities of the data, `p₀(k | x)`, `[B, K]`.
    pub fn posterior(&self, x: &Tensor) -> Tensor {
        let (m, s) = self.unit_scale(x);
        self.posterior_scaled(x, &m, &s)
    }

    /// `n` samples of `p₀`, shape `[n] ++ sample_shape`, drawn with torch's generator (seed it
    /// with `tch::manual_seed`); also returns the component labels `[n]` (Int64).
    pub fn sample_with_labels(&self, n: i64, kind: Kind, device: Device) -> (Tensor, Tensor) {
        let p = self.params(kind, device);
        let d = self.dim as i64;
        let labels = p.log_w.exp().multinomial(n, true);
        let z = Tensor::randn([n, d], (kind, device));
        let scaled = z * p.eigvals.index_select(0, &labels).sqrt();
        let u = p.eigvecs.index_select(0, &labels);
        let x = Tensor::einsum("bdj,bj->bd", &[&u, &scaled], None::<i64>)
            + p.means.index_select(0, &labels);
        let mut shape = vec![n];
        shape.extend_from_slice(&self.sample_shape);
        (x.reshape(shape.as_slice()), labels)
    }

    /// `n` samples of `p₀`, shape `[n] ++ sample_shape`.
    pub fn sample(&self, n: i64, kind: Kind, device: Device) -> Tensor {
        self.sample_with_labels(n, kind, device).0
    }

    /// The exact perturbed family `p_t` of this mixture under `sde`.
    pub fn perturbed(&self, sde: Arc<dyn Sde>) -> PerturbedMixture {
        PerturbedMixture {
            mixture: self.clone(),
            sde,
        }
    }
}

impl ScoreModel for GaussianMixture {
    /// The unperturbed data score `∇ log p₀(x)`, whatever `t`.
    fn score(&self, x: &Tensor, _t: &Tensor) -> Tensor {
        self.data_score(x)
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        Some(self.sample_shape.clone())
    }
}

/// The mixture `p₀` pushed through the forward SDE: `p_t = Σ_k w_k N(m(t) μ_k, m(t)² Σ_k +
/// s(t)² I)`. Its [`ScoreModel::score`] is the exact `∇ₓ log p_t(x)`.
pub struct PerturbedMixture {
    /// The data distribution `p₀`.
    pub mixture: GaussianMixture,
    /// The forward SDE whose transition kernel perturbs it.
    pub sde: Arc<dyn Sde>,
}

impl PerturbedMixture {
    /// `(m(t), s(t))` as `[B]` tensors in the dtype/device of `x`, without leaving the device.
    pub fn scales(&self, x: &Tensor, t: &Tensor) -> (Tensor, Tensor) {
        let b = x.size()[0];
        let t = t.to_kind(x.kind()).reshape([b]);
        let ones = Tensor::ones([b, 1], (x.kind(), x.device()));
        let (mean, std) = self.sde.marginal_prob(&ones, &t);
        (mean.reshape([b]), std.reshape([b]).to_kind(x.kind()))
    }

    /// Exact `log p_t(x)`, `[B]` (nats).
    pub fn log_prob(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let (m, s) = self.scales(x, t);
        self.mixture.log_prob_scaled(x, &m, &s)
    }

    /// Exact time-dependent classifier `p_t(k | x)`, `[B, K]`.
    pub fn class_posterior(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let (m, s) = self.scales(x, t);
        self.mixture.posterior_scaled(x, &m, &s)
    }

    /// `log p_t(k | x)`, `[B, K]`.
    pub fn class_log_posterior(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let (m, s) = self.scales(x, t);
        let (lt, _) = self.mixture.component_terms(x, &m, &s, false);
        lt.log_softmax(1, x.kind())
    }

    /// Exact conditional score `∇ₓ log p_t(x | y)` for labels `y` (`[B]`, Int64).
    pub fn conditional_score(&self, x: &Tensor, t: &Tensor, labels: &Tensor) -> Tensor {
        let (m, s) = self.scales(x, t);
        self.mixture.component_score_scaled(x, &m, &s, labels)
    }

    /// Exact classifier gradient `∇ₓ log p_t(y | x) = ∇ₓ log p_t(x | y) − ∇ₓ log p_t(x)`.
    pub fn class_log_posterior_grad(&self, x: &Tensor, t: &Tensor, labels: &Tensor) -> Tensor {
        let (m, s) = self.scales(x, t);
        self.mixture.component_score_scaled(x, &m, &s, labels)
            - self.mixture.score_scaled(x, &m, &s)
    }
}

impl ScoreModel for PerturbedMixture {
    fn score(&self, x: &Tensor, t: &Tensor) -> Tensor {
        let (m, s) = self.scales(x, t);
        self.mixture.score_scaled(x, &m, &s)
    }
    fn sample_shape(&self) -> Option<Vec<i64>> {
        Some(self.mixture.sample_shape.clone())
    }
}
