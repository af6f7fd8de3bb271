//! Warm starts of the conditional samplers: Come-Closer-Diffuse-Faster (CCDF; Chung, Sim & Ye,
//! "Come-Closer-Diffuse-Faster: Accelerating Conditional Diffusion Models for Inverse Problems
//! through Stochastic Contraction", CVPR 2022).
//!
//! Instead of starting the reverse SDE at `T` from the prior, an initial estimate `x̂` (a
//! classical reconstruction: FBP, TV, zero-filled, the gray image) is diffused forward to a
//! time `t₀ < T` by the SDE's own marginal,
//!
//! ```text
//! x(t₀) = m(t₀) x̂ + s(t₀) z,   z ~ N(0, I),
//! ```
//!
//! and the sampler runs from there: the steps of its full grid (`N` steps from `T` to `ε`) that
//! lie at or below `t₀`, so the discretisation is the same as a full run's and the number of
//! network evaluations drops by about `t₀/T`. The forward diffusion contracts the estimate's
//! error towards the posterior, so a good estimate needs only a short reverse run.
use crate::sampling::time_grid;
use crate::sde::Sde;
use crate::{Error, Result};
use tch::Tensor;

/// Checks `t₀ ∈ (ε, T]`.
pub fn check_t0(t0: Option<f64>, sde: &dyn Sde, eps: f64) -> Result<()> {
    match t0 {
        Some(t) if !(t.is_finite() && t > eps && t <= sde.t_end()) => Err(Error::Config(format!(
            "`t0` must lie in (eps, T] = ({eps}, {}], got {t}",
            sde.t_end()
        ))),
        _ => Ok(()),
    }
}

/// The times of the sampler's full grid (`sde.n_steps()` steps from `T` to `eps`) at or below
/// `t0` (all of them without `t0`).
pub fn grid(sde: &dyn Sde, eps: f64, t0: Option<f64>) -> Vec<f64> {
    let full = time_grid(sde.t_end(), eps, sde.n_steps());
    match t0 {
        // The grid is computed in f64 from T: keep a point that rounding put a hair above t0.
        Some(t0) => full.into_iter().filter(|&t| t <= t0 + 1e-12).collect(),
        None => full,
    }
}

/// The number of steps of [`grid`] (`eps`: the sampler's setting, `None` = the SDE's
/// `sampling_eps`): what a sampler reports as its length.
pub fn steps(sde: &dyn Sde, eps: Option<f64>, t0: Option<f64>) -> usize {
    let eps = eps.unwrap_or_else(|| sde.sampling_eps());
    grid(sde, eps, t0).len()
}

/// The time grid and the initial state of a conditional sampler for the measurement batch `y`
/// of `op` (one row per sample, in `y`'s real kind and device): [`grid`] and
/// [`initial_state`] with the batch shape `[B] ++ op.input_shape()`.
pub fn begin(
    sde: &dyn Sde,
    op: &dyn scoreinv_operators::LinearOperator,
    y: &Tensor,
    eps: f64,
    t0: Option<f64>,
    start: Option<&Tensor>,
) -> Result<(Vec<f64>, Tensor)> {
    let options = super::check_measurement(op, y)?;
    let mut shape = vec![y.size()[0]];
    shape.extend(op.input_shape());
    let grid = grid(sde, eps, t0);
    let x = initial_state(sde, &shape, options, start, t0, &grid)?;
    Ok((grid, x))
}

/// The initial state of a sampler whose first step is at `grid[0]`: a draw from the prior for
/// a cold start (`start` and `t0` both `None`), or `start` diffused to `grid[0]` (the first grid
/// time at or below `t0`) by the SDE's marginal. `shape` is the batch's `[B, C, H, W]`; the
/// draws come from libtorch's generator.
pub fn initial_state(
    sde: &dyn Sde,
    shape: &[i64],
    options: (tch::Kind, tch::Device),
    start: Option<&Tensor>,
    t0: Option<f64>,
    grid: &[f64],
) -> Result<Tensor> {
    match (start, t0) {
        (None, None) => Ok(sde.prior_sampling(shape, options)),
        (Some(x), Some(_)) => {
            if x.size() != shape {
                return Err(Error::Shape {
                    what: "warm-start estimate".into(),
                    expected: format!("{shape:?}"),
                    actual: format!("{:?}", x.size()),
                });
            }
            let Some(&t) = grid.first() else {
                return Err(Error::Config(
                    "`t0` lies below the sampler's first step: no step left to run".into(),
                ));
            };
            let x = x.to_kind(options.0).to_device(options.1);
            let (m, s) = sde.mean_coeff_std(t);
            Ok(&x * m + x.randn_like() * s)
        }
        (Some(_), None) => Err(Error::Config(
            "a warm `start` needs `t0`, the time it is diffused to (e.g. 0.3)".into(),
        )),
        (None, Some(_)) => Err(Error::Config(
            "`t0` needs a warm `start` estimate to diffuse (e.g. fbp, tv, zero-filled)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sde::SdeConfig;

    #[test]
    fn the_warm_grid_is_the_tail_of_the_full_grid() {
        let sde = SdeConfig::Ve {
            sigma_min: 0.01,
            sigma_max: 30.0,
            n: 100,
        }
        .build()
        .unwrap();
        let full = grid(sde.as_ref(), 1e-5, None);
        let tail = grid(sde.as_ref(), 1e-5, Some(0.3));
        assert_eq!(full.len(), 100);
        assert!(tail.len() == 30 || tail.len() == 31, "{}", tail.len());
        assert_eq!(full[full.len() - tail.len()..], tail[..]);
        assert!(check_t0(Some(0.0), sde.as_ref(), 1e-5).is_err());
        assert!(check_t0(Some(1.5), sde.as_ref(), 1e-5).is_err());
        assert!(check_t0(Some(0.5), sde.as_ref(), 1e-5).is_ok());
        let opts = (tch::Kind::Double, tch::Device::Cpu);
        assert!(initial_state(sde.as_ref(), &[1, 2], opts, None, Some(0.3), &tail).is_err());
        let x = Tensor::zeros([1, 2], opts);
        assert!(initial_state(sde.as_ref(), &[1, 2], opts, Some(&x), None, &tail).is_err());
        assert!(initial_state(sde.as_ref(), &[2, 2], opts, Some(&x), Some(0.3), &tail).is_err());
    }
}
