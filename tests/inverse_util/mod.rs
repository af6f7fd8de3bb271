//! Shared helpers of the inverse-problem tests: tiny Gaussian priors on 3×3 images and a pixel
//! mask; correlated Gaussian priors on n×n images through sparse-view CT and undersampled MRI;
//! the exact Gaussian posteriors of both, computed with dense f64 linear algebra, and the
//! distances of samples from them.
#![allow(dead_code)]

use ndarray::Array2;
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::operators::{Decomposed, Masking, MriFourier, ParallelBeamRadon, SamplingMask};
use tch::{Device, Kind, Tensor};

pub const H: usize = 3;
pub const D: usize = H * H;
/// Observed pixels (checkerboard): 0, 2, 4, 6, 8.
pub const KEPT: [usize; 5] = [0, 2, 4, 6, 8];
pub const DROPPED: [usize; 4] = [1, 3, 5, 7];

pub fn kept(i: usize) -> bool {
    KEPT.contains(&i)
}

pub fn masking() -> Masking {
    let m = Array2::from_shape_fn((H, H), |(r, c)| if kept(r * H + c) { 1.0 } else { 0.0 });
    Masking::from_2d(m, 1).unwrap()
}

pub fn mean() -> Vec<f64> {
    (0..D).map(|i| 0.3 * (i as f64) - 1.0).collect()
}

/// `Σ_ij = s_i s_j ρ^{|r_i − r_j| + |c_i − c_j|}`; with `independent`, entries linking a kept
/// and a dropped pixel are zero (each block stays positive definite: principal submatrices).
pub fn covariance(independent: bool) -> Vec<Vec<f64>> {
    let rho: f64 = 0.6;
    let s = |i: usize| 0.5 + 0.1 * i as f64;
    (0..D)
        .map(|i| {
            (0..D)
                .map(|j| {
                    if independent && kept(i) != kept(j) {
                        return 0.0;
                    }
                    let (ri, ci) = ((i / H) as i32, (i % H) as i32);
                    let (rj, cj) = ((j / H) as i32, (j % H) as i32);
                    let dist = (ri - rj).abs() + (ci - cj).abs();
                    s(i) * s(j) * rho.powi(dist)
                })
                .collect()
        })
        .collect()
}

pub fn prior(independent: bool) -> GaussianMixture {
    GaussianMixture::gaussian(&mean(), &covariance(independent))
        .unwrap()
        .with_sample_shape(&[1, H as i64, H as i64])
        .unwrap()
}

pub fn mat(v: &[Vec<f64>]) -> Tensor {
    let flat: Vec<f64> = v.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).reshape([v.len() as i64, v[0].len() as i64])
}

/// The 0/1 selection matrix `A` (`[|KEPT|, D]`) of the mask.
pub fn selection() -> Tensor {
    let rows: Vec<Vec<f64>> = KEPT
        .iter()
        .map(|&k| (0..D).map(|j| if j == k { 1.0 } else { 0.0 }).collect())
        .collect();
    mat(&rows)
}

/// Exact posterior of `x ~ N(μ, Σ)` given `y = A x + N(0, σ² I)`:
/// `Σ_post = (AᵀA/σ² + Σ⁻¹)⁻¹`, `μ_post = Σ_post (Aᵀ y/σ² + Σ⁻¹ μ)`; `y` are the kept values.
pub fn posterior_noisy(independent: bool, y_kept: &Tensor, sigma: f64) -> (Tensor, Tensor) {
    let a = selection();
    let sig = mat(&covariance(independent));
    let mu = Tensor::from_slice(&mean());
    let sinv = Tensor::linalg_inv(&sig);
    let prec = a.tr().matmul(&a) / (sigma * sigma) + &sinv;
    let cov = Tensor::linalg_inv(&prec);
    let rhs = a.tr().mv(y_kept) / (sigma * sigma) + sinv.mv(&mu);
    (cov.mv(&rhs), cov)
}

/// Exact conditional of the dropped block given noiseless kept values `y`:
/// `μ_d + Σ_dk Σ_kk⁻¹ (y − μ_k)`, `Σ_dd − Σ_dk Σ_kk⁻¹ Σ_kd`.
pub fn posterior_noiseless(independent: bool, y_kept: &Tensor) -> (Tensor, Tensor) {
    let sig = mat(&covariance(independent));
    let mu = Tensor::from_slice(&mean());
    let k = Tensor::from_slice(&KEPT.map(|v| v as i64));
    let d = Tensor::from_slice(&DROPPED.map(|v| v as i64));
    let skk = sig.index_select(0, &k).index_select(1, &k);
    let sdk = sig.index_select(0, &d).index_select(1, &k);
    let sdd = sig.index_select(0, &d).index_select(1, &d);
    let gain = sdk.matmul(&Tensor::linalg_inv(&skk));
    let m = mu.index_select(0, &d) + gain.mv(&(y_kept - mu.index_select(0, &k)));
    let c = sdd - gain.matmul(&sdk.tr());
    (m, c)
}

/// Samples `[n, 1, H, W]` → `[n, D]` f64.
pub fn flat(x: &Tensor) -> Tensor {
    x.to_kind(Kind::Double).reshape([-1, D as i64])
}

/// Sample mean `[D']` and covariance `[D', D']` of rows `[n, D']`.
/// How far the sample mean of the [`DROPPED`] pixels of `samples` is from `m`, beyond 5
/// Monte-Carlo standard errors `√(C_ii / n)`: the largest `|mean_i − m_i| − 5 √(C_ii / n)`
/// (≤ 0: every pixel within 5 standard errors).
pub fn dropped_mean_excess(samples: &Tensor, m: &Tensor, c: &Tensor) -> f64 {
    let idx = Tensor::from_slice(&DROPPED.map(|v| v as i64));
    let d = flat(samples).index_select(1, &idx);
    let (sm, _) = moments(&d);
    let se = (c.diag(0) / d.size()[0] as f64).sqrt();
    ((&sm - m).abs() - se * 5.0).max().double_value(&[])
}

pub fn moments(x: &Tensor) -> (Tensor, Tensor) {
    let n = x.size()[0] as f64;
    let m = x.mean_dim(0i64, false, Kind::Double);
    let c = (x - &m).tr().matmul(&(x - &m)) / (n - 1.0);
    (m, c)
}

pub fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// A draw of the prior as a measurement of the kept pixels: (`x_true [1, 1, H, W]`, `y_kept [5]`).
pub fn truth(independent: bool, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let x = prior(independent).sample(1, Kind::Double, Device::Cpu);
    let k = Tensor::from_slice(&KEPT.map(|v| v as i64));
    let yk = flat(&x).get(0).index_select(0, &k);
    (x, yk)
}

// ---------------------------------------------------------------------------------------------
// Correlated Gaussian priors on n×n images through sparse-view CT and undersampled MRI, with the
// exact posterior computed from the operators' dense real matrices.
// ---------------------------------------------------------------------------------------------

/// A correlated Gaussian prior on `n × n` images: mean `0.5 + 0.3 sin(πr/n) cos(πc/n)`,
/// `Σ_ij = s_i s_j exp(−‖p_i − p_j‖ / ℓ)` (exponential kernel of the Euclidean pixel distance:
/// long-range correlation, yet well conditioned) with `s_i = 0.5 + 0.01 i`.
pub fn smooth_gaussian(n: usize, ell: f64) -> (Vec<f64>, Vec<Vec<f64>>) {
    let d = n * n;
    let pi = std::f64::consts::PI;
    let mean = (0..d)
        .map(|i| {
            let (r, c) = ((i / n) as f64, (i % n) as f64);
            0.5 + 0.3 * (pi * r / n as f64).sin() * (pi * c / n as f64).cos()
        })
        .collect();
    let s = |i: usize| 0.5 + 0.01 * i as f64;
    let cov = (0..d)
        .map(|i| {
            (0..d)
                .map(|j| {
                    let dr = (i / n) as f64 - (j / n) as f64;
                    let dc = (i % n) as f64 - (j % n) as f64;
                    s(i) * s(j) * (-(dr * dr + dc * dc).sqrt() / ell).exp()
                })
                .collect()
        })
        .collect();
    (mean, cov)
}

/// Flattens a batch `[B, …]` into real rows `[B, K]` and keeps the columns `idx`: a complex
/// tensor becomes `[Re | Im]` (real parts first), so one complex measurement is two real ones.
pub fn real_rows(y: &Tensor, idx: &Tensor) -> Tensor {
    let f = y.flatten(1, -1);
    let f = if f.is_complex() {
        Tensor::cat(&[f.real(), f.imag()], 1)
    } else {
        f
    };
    f.to_kind(Kind::Double).index_select(1, idx)
}

/// The dense real matrix `[M, D]` of `forward` on images of shape `shape` (`[1, H, W]`,
/// `D = H W`), restricted to the real output entries `idx` of [`real_rows`].
pub fn dense_matrix(forward: impl Fn(&Tensor) -> Tensor, shape: &[i64], idx: &Tensor) -> Tensor {
    let d: i64 = shape.iter().product();
    let mut s = vec![d];
    s.extend_from_slice(shape);
    let basis = Tensor::eye(d, (Kind::Double, Device::Cpu)).reshape(s.as_slice());
    real_rows(&forward(&basis), idx).tr().contiguous()
}

/// `x ~ N(μ, Σ)` measured as `y = A x + n`, `n ~ N(0, diag(v))`, all real and dense.
pub struct LinearGaussian {
    pub mu: Tensor,
    pub sigma: Tensor,
    pub a: Tensor,
    pub noise_var: Tensor,
}

impl LinearGaussian {
    /// The exact posterior `N(m, C)`: with `K = Σ Aᵀ (A Σ Aᵀ + diag(v))⁻¹`,
    /// `m = μ + K (y − A μ)`, `C = Σ − K A Σ` (symmetrised). `y` is `[M]`.
    pub fn posterior(&self, y: &Tensor) -> (Tensor, Tensor) {
        let sat = self.sigma.matmul(&self.a.tr());
        let s = self.a.matmul(&sat) + self.noise_var.diag(0);
        // K = Σ Aᵀ S⁻¹ = (S⁻¹ A Σ)ᵀ for symmetric S.
        let k = Tensor::linalg_solve(&s, &sat.tr(), true).tr();
        let m = &self.mu + k.mv(&(y - self.a.mv(&self.mu)));
        let c = &self.sigma - k.matmul(&sat.tr());
        let c = (&c + c.tr()) * 0.5;
        (m, c)
    }
}

/// `n` exact draws `[n, D]` of `N(m, C)`.
pub fn gaussian_draws(n: i64, m: &Tensor, c: &Tensor) -> Tensor {
    let l = Tensor::linalg_cholesky(c, false);
    let z = Tensor::randn([n, m.size()[0]], (Kind::Double, Device::Cpu));
    z.matmul(&l.tr()) + m
}

/// How far samples `[n, D]` are from a Gaussian `N(m, C)`, in four numbers.
///
/// * `white_mean = ‖L⁻¹(m̂ − m)‖` (`C = L Lᵀ`): the Mahalanobis distance of the sample mean, in
///   posterior standard deviations; `n` exact samples give `E white_mean² = D/n`.
/// * `white_cov = ‖L⁻¹ Ĉ L⁻ᵀ − I‖_F / √D`: the relative Frobenius error of the whitened sample
///   covariance (`‖I‖_F = √D`); `n` exact samples give `E white_cov² ≈ (D + 1)/n`. A sampler
///   whose variance collapses in `k` directions scores at least `√(k/D)`.
/// * `rel_mean = ‖m̂ − m‖ / ‖μ − m‖`, `rel_cov = ‖Ĉ − C‖_F / ‖Σ − C‖_F`: the plain errors as a
///   fraction of what the conditioning changes (prior samples score ≈ 1 on both); they weigh
///   the large-variance (unmeasured) directions that the whitened errors weigh least.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PosteriorErrors {
    pub white_mean: f64,
    pub white_cov: f64,
    pub rel_mean: f64,
    pub rel_cov: f64,
}

impl PosteriorErrors {
    pub fn of(samples: &Tensor, lg: &LinearGaussian, m: &Tensor, c: &Tensor) -> Self {
        let d = m.size()[0];
        let samples = samples.reshape([-1, d]).to_kind(Kind::Double);
        let (sm, sc) = moments(&samples);
        let l = Tensor::linalg_cholesky(c, false);
        let e = Tensor::linalg_solve_triangular(&l, &(&sm - m).unsqueeze(1), false, true, false);
        let w = Tensor::linalg_solve_triangular(&l, &sc, false, true, false);
        let w = Tensor::linalg_solve_triangular(&l, &w.tr(), false, true, false);
        let eye = Tensor::eye(d, (Kind::Double, Device::Cpu));
        let nm = |t: &Tensor| t.norm().double_value(&[]);
        Self {
            white_mean: nm(&e),
            white_cov: nm(&(w - eye)) / (d as f64).sqrt(),
            rel_mean: nm(&(&sm - m)) / nm(&(&lg.mu - m)),
            rel_cov: nm(&(&sc - c)) / nm(&(&lg.sigma - c)),
        }
    }

    /// The largest ratio error / tolerance over the four numbers: `≤ 1` passes the check.
    pub fn ratio(&self, tol: &PosteriorErrors) -> f64 {
        [
            self.white_mean / tol.white_mean,
            self.white_cov / tol.white_cov,
            self.rel_mean / tol.rel_mean,
            self.rel_cov / tol.rel_cov,
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }
}

impl std::fmt::Display for PosteriorErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "whitened mean {:8.3} cov {:8.3} | relative mean {:.3} cov {:.3}",
            self.white_mean, self.white_cov, self.rel_mean, self.rel_cov
        )
    }
}

/// A linear-Gaussian imaging problem on `n × n` images: the [`smooth_gaussian`] prior, a
/// [`Decomposed`] operator with Gaussian noise of standard deviation `sigma_y` per real
/// measurement (per complex k-space sample: `σ_y/√2` on each of the real and imaginary parts, as
/// [`scoreinv::operators::GaussianNoise`] splits it) and its exact posterior.
pub struct Problem {
    pub n: usize,
    pub prior: GaussianMixture,
    pub op: Box<dyn Decomposed>,
    /// The measured real entries of [`real_rows`] of a measurement.
    pub idx: Tensor,
    pub sigma_y: f64,
    pub lg: LinearGaussian,
}

/// A measurement of a prior draw: the operator's tensor `[1, …]` and its real entries `[M]`.
pub struct Measured {
    pub y: Tensor,
    pub y_real: Tensor,
    /// The exact posterior `N(m, C)` of `y_real`.
    pub m: Tensor,
    pub c: Tensor,
}

/// The CT problem of the correlated-prior posterior tests: 8×8 images, 4 of 16 views (a
/// `[1, 8, 4]` sinogram, 32 measurements), σ_y = 0.3 (≈ 5 % of the sinogram's rms 6.3).
pub fn ct_problem() -> Problem {
    Problem::radon(8, 4, 16, 0.3)
}

/// The MRI problem of the correlated-prior posterior tests: 8×8 images, k-space columns
/// {1, 3, 4, 5} of the centred grid (the DC column 4 is its own mirror, 3 and 5 are each
/// other's, 1 is unpaired; 32 complex = 64 real measurements), σ_y = 0.1 (σ_y/√2 = 0.07 per
/// real part, ≈ 6 % of their rms 1.15).
pub fn mri_problem() -> Problem {
    Problem::mri(8, &[1, 3, 4, 5], 0.1)
}

impl Problem {
    /// Sparse-view CT: `n_views` of `n_full` angles, all detector bins of a view measured.
    pub fn radon(n: usize, n_views: usize, n_full: usize, sigma_y: f64) -> Self {
        let op =
            ParallelBeamRadon::sparse_view(n, n_views, n_full, Kind::Double, Device::Cpu).unwrap();
        let idx = Tensor::arange((n * n_views) as i64, (Kind::Int64, Device::Cpu));
        Self::new(n, Box::new(op), idx, sigma_y, sigma_y * sigma_y)
    }

    /// Single-coil MRI with the k-space columns `cols` of the centred `n × n` grid: the real
    /// and imaginary parts of every sampled entry are two real measurements.
    pub fn mri(n: usize, cols: &[usize], sigma_y: f64) -> Self {
        let mask = Array2::from_shape_fn(
            (n, n),
            |(_, c)| if cols.contains(&c) { 1.0f32 } else { 0.0 },
        );
        let d = (n * n) as i64;
        let pos: Vec<i64> = (0..d)
            .filter(|&i| cols.contains(&(i as usize % n)))
            .collect();
        let pos = Tensor::from_slice(&pos);
        let idx = Tensor::cat(&[&pos, &(&pos + d)], 0);
        let mask = SamplingMask::from_array(mask, format!("columns {cols:?}")).unwrap();
        let op = MriFourier::new(mask, 1).unwrap();
        Self::new(n, Box::new(op), idx, sigma_y, sigma_y * sigma_y / 2.0)
    }

    fn new(n: usize, op: Box<dyn Decomposed>, idx: Tensor, sigma_y: f64, var: f64) -> Self {
        let (mean, cov) = smooth_gaussian(n, 2.0);
        let shape = [1, n as i64, n as i64];
        let prior = GaussianMixture::gaussian(&mean, &cov)
            .unwrap()
            .with_sample_shape(&shape)
            .unwrap();
        let a = dense_matrix(|x| op.forward(x).unwrap(), &shape, &idx);
        let m = a.size()[0];
        let lg = LinearGaussian {
            mu: Tensor::from_slice(&mean),
            sigma: mat(&cov),
            a,
            noise_var: Tensor::full([m], var, (Kind::Double, Device::Cpu)),
        };
        Self {
            n,
            prior,
            op,
            idx,
            sigma_y,
            lg,
        }
    }

    /// `y = A x + noise` for `x` drawn from the prior with `seed`, and its exact posterior.
    pub fn measure(&self, seed: i64) -> Measured {
        tch::manual_seed(seed);
        let x = self.prior.sample(1, Kind::Double, Device::Cpu);
        let clean = self.op.forward(&x).unwrap();
        // The dense matrix is the operator.
        let ax = self.lg.a.mv(&x.reshape([-1]));
        assert!(max_abs(&(ax - real_rows(&clean, &self.idx).get(0))) < 1e-10);
        // Complex randn has E|z|² = 1 (σ_y/√2 per part); k-space noise only where sampled
        // (MRI's `embed` is the mask on the full grid).
        let noise =
            Tensor::randn(clean.size().as_slice(), (clean.kind(), Device::Cpu)) * self.sigma_y;
        let noise = if clean.is_complex() {
            self.op.embed(&noise).unwrap()
        } else {
            noise
        };
        let y = clean + noise;
        let y_real = real_rows(&y, &self.idx).get(0);
        let (m, c) = self.lg.posterior(&y_real);
        Measured { y, y_real, m, c }
    }
}
