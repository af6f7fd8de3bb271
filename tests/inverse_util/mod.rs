//! Shared helpers of the inverse-problem tests: tiny Gaussian priors on 3×3 images, a pixel
//! mask, and the exact Gaussian posterior computed with dense f64 linear algebra.
#![allow(dead_code)]

use ndarray::Array2;
use scoreinv::models::analytic::GaussianMixture;
use scoreinv::operators::Masking;
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
