//! Operator norm `‖A‖ = sqrt(λ_max(AᴴA))` by power iteration (von Mises), used for PDHG step
//! sizes (Chambolle & Pock 2011 need `τ σ ‖K‖² < 1`).
//!
//! Inputs are real images: when `A` maps real images to complex measurements (MRI k-space), the
//! iteration runs on `Re(AᴴA)`, the normal operator of `A` seen as a map from real images to
//! `ℂᵐ ≅ ℝ²ᵐ`, so the result is the norm relevant to real-valued solvers.
use super::real_part;
use crate::{Error, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scoreinv_operators::LinearOperator;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Power-iteration settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PowerIteration {
    /// Maximum number of `AᴴA` applications.
    pub n_iter: usize,
    /// Stop when the estimate of `‖A‖²` changes by less than `rtol` (relative).
    pub rtol: f64,
    /// Seed of the random start vector.
    pub seed: u64,
}

impl Default for PowerIteration {
    fn default() -> Self {
        PowerIteration {
            n_iter: 100,
            rtol: 1e-7,
            seed: 0,
        }
    }
}

/// `‖A‖` (largest singular value) of `op` on real inputs of `kind` on `device`.
///
/// Power iteration converges from below at a rate `(σ₂/σ₁)²` per step; callers that need an
/// upper bound (step sizes) add a safety margin.
pub fn operator_norm(
    op: &dyn LinearOperator,
    kind: Kind,
    device: Device,
    cfg: &PowerIteration,
) -> Result<f64> {
    if cfg.n_iter == 0 {
        return Err(Error::Config(
            "operator_norm: n_iter must be at least 1".into(),
        ));
    }
    let mut shape = vec![1i64];
    shape.extend(op.input_shape());
    let numel: i64 = shape.iter().product();
    if numel <= 0 {
        return Err(Error::Invalid(format!(
            "operator_norm: operator '{}' has an empty input shape {:?}",
            op.name(),
            op.input_shape()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let start: Vec<f64> = (0..numel)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let mut x = Tensor::from_slice(&start)
        .view(shape.as_slice())
        .to_kind(kind)
        .to_device(device);
    x = &x / x.norm();
    let mut estimate = 0.0f64;
    for k in 0..cfg.n_iter {
        let ax = op.forward(&x)?;
        let z = real_part(&op.adjoint(&ax)?);
        // ‖AᴴA x‖ with ‖x‖ = 1 is at most λ_max and converges to it.
        let nz = z.norm().double_value(&[]);
        if !nz.is_finite() {
            return Err(Error::NonFinite(format!(
                "operator_norm: AᴴA x of operator '{}'",
                op.name()
            )));
        }
        if nz == 0.0 {
            if k == 0 {
                return Err(Error::Invalid(format!(
                    "operator_norm: operator '{}' maps a random input to zero",
                    op.name()
                )));
            }
            break;
        }
        let new = nz;
        x = &z / nz;
        let done = (new - estimate).abs() <= cfg.rtol * new;
        estimate = new;
        if done {
            break;
        }
    }
    Ok(estimate.sqrt())
}
