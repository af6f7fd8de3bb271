//! Helpers shared by the sampler tests: Monte-Carlo moments and standard errors.
#![allow(dead_code)]

use tch::{Kind, Tensor};

/// Sample mean `[D]` and covariance `[D×D]` (row-major, 1/(n−1)) of a batch `[n, ...]`.
pub fn moments(x: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let n = x.size()[0];
    let xf = x.to_kind(Kind::Double).reshape([n, -1]);
    let mean = xf.mean_dim(0, false, Kind::Double);
    let c = &xf - &mean;
    let cov = c.transpose(0, 1).matmul(&c) / (n as f64 - 1.0);
    (
        Vec::<f64>::try_from(mean).unwrap(),
        Vec::<f64>::try_from(cov.flatten(0, -1)).unwrap(),
    )
}

/// Asserts that the sample mean and covariance of `x` (n samples) match `(mu, sigma)`:
/// mean entry i within 4 standard errors √(Σ_ii/n), covariance entry (i,j) within 4 standard
/// errors √((Σ_ii Σ_jj + Σ_ij²)/n) (Gaussian sampling variance of a covariance estimate), each
/// plus an allowance `bias` for the sampler's discretisation error (stated by the caller).
pub fn assert_moments(label: &str, x: &Tensor, mu: &[f64], sigma: &[f64], bias: f64) {
    let n = x.size()[0] as f64;
    let d = mu.len();
    let (m, c) = moments(x);
    assert!(
        m.iter().chain(c.iter()).all(|v| v.is_finite()),
        "{label}: non-finite samples"
    );
    for i in 0..d {
        let se = (sigma[i * d + i] / n).sqrt();
        let err = (m[i] - mu[i]).abs();
        assert!(
            err <= 4.0 * se + bias,
            "{label}: mean[{i}] = {:.4}, expected {:.4} (|err| {:.4} > 4 SE {:.4} + bias {bias})",
            m[i],
            mu[i],
            err,
            4.0 * se
        );
    }
    for i in 0..d {
        for j in 0..d {
            let s = &sigma;
            let se = ((s[i * d + i] * s[j * d + j] + s[i * d + j].powi(2)) / n).sqrt();
            let err = (c[i * d + j] - s[i * d + j]).abs();
            assert!(
                err <= 4.0 * se + bias,
                "{label}: cov[{i},{j}] = {:.4}, expected {:.4} (|err| {:.4} > 4 SE {:.4} + bias {bias})",
                c[i * d + j],
                s[i * d + j],
                err,
                4.0 * se
            );
        }
    }
}

/// Largest deviation of mean/cov from truth in units that show the observed error (for logs).
pub fn describe(x: &Tensor, mu: &[f64], sigma: &[f64]) -> String {
    let (m, c) = moments(x);
    let dm = m
        .iter()
        .zip(mu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let dc = c
        .iter()
        .zip(sigma)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    format!("max |Δmean| = {dm:.4}, max |Δcov| = {dc:.4}")
}
