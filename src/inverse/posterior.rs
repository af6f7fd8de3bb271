//! Posterior uncertainty from `K` samples per measurement.
//!
//! The `K` copies of every measurement are stacked along the batch dimension and sampled in one
//! batched run; the summary is the sample mean (the MMSE estimate) and the pixel-wise sample
//! standard deviation (unbiased, `1/(K−1)`):
//!
//! ```text
//! x̄ = (1/K) Σ_k x_k,    σ̂ = √( Σ_k (x_k − x̄)² / (K − 1) )
//! ```

use crate::{Error, Result};
use tch::Tensor;

/// `K` posterior samples per measurement and their mean and std.
#[derive(Debug)]
pub struct PosteriorSummary {
    /// `[B, K, ...]`.
    pub samples: Tensor,
    /// `[B, ...]`.
    pub mean: Tensor,
    /// `[B, ...]` (zeros when `K = 1`).
    pub std: Tensor,
}

/// `y` repeated `k` times per measurement along the batch: `[B·K, ...]` with the copies of
/// measurement `b` at rows `b·K … b·K + K − 1`.
pub fn repeat_measurements(y: &Tensor, k: i64) -> Result<Tensor> {
    if k < 1 {
        return Err(Error::Config(format!(
            "number of posterior samples must be ≥ 1, got {k}"
        )));
    }
    Ok(y.repeat_interleave_self_int(k, Some(0), None))
}

/// Summarises samples `[B·K, ...]` (ordered as [`repeat_measurements`]).
pub fn summarize(samples: &Tensor, k: i64) -> Result<PosteriorSummary> {
    let size = samples.size();
    if k < 1 || size.is_empty() || size[0] % k != 0 {
        return Err(Error::Shape {
            what: "posterior samples".into(),
            expected: format!("[B·{k}, ...]"),
            actual: format!("{size:?}"),
        });
    }
    let mut shape = vec![size[0] / k, k];
    shape.extend_from_slice(&size[1..]);
    let s = samples.reshape(shape.as_slice());
    let mean = s.mean_dim(1i64, false, samples.kind());
    let std = if k > 1 {
        s.std_correction(1i64, 1, false)
    } else {
        mean.zeros_like()
    };
    Ok(PosteriorSummary {
        samples: s,
        mean,
        std,
    })
}

/// Runs `sampler` (one sample per measurement row) on `k` copies of each measurement in one
/// batch and summarises.
pub fn posterior(
    y: &Tensor,
    k: i64,
    sampler: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<PosteriorSummary> {
    let yy = repeat_measurements(y, k)?;
    let x = sampler(&yy)?;
    if x.size().first() != yy.size().first() {
        return Err(Error::Shape {
            what: "posterior sampler output".into(),
            expected: format!("batch {}", yy.size()[0]),
            actual: format!("{:?}", x.size()),
        });
    }
    summarize(&x, k)
}
