//! [`FanBackend::Sparse`](super::FanBackend::Sparse): the fan-beam transform as CSR matrices
//! assembled by the shared builder ([`crate::csr::ray_matrix`], as the parallel-beam sparse
//! backend) from the samples of [`FanGeometry::ray_samples`], applied with one sparse × dense
//! product per call (any device; autograd records it).
//!
//! * Projection `R ∈ ℝ^{(n_det·A) × N²}`, row `k·A + a`, column `r·N + c`: the summed bilinear
//!   weights (times the step length) of the ray's samples on pixel `(r, c)`; and `Rᵀ` (CSR).
//! * FBP: the view weights and the filter are applied on tensors (`fft_rfft`/`fft_irfft`
//!   along the zero-padded detector), then the back-projection matrix
//!   `B ∈ ℝ^{N² × (A·n_det)}` (rows of pixels in the inscribed circle) holds the two linear
//!   interpolation weights times the distance weight of [`FanGeometry::pixel_projection`].
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use super::{FbpPlan, Kernels};
use crate::csr::{check_indexable, ray_matrix, sparse_apply, Csr};
use crate::geometry::{detector_interp, in_inscribed_circle, FanGeometry};
use crate::radon::{AngleSet, Shared};
use crate::Result;

/// The matrices of both angle sets (shared when every angle is measured).
pub(super) struct SparseMatrices {
    n: i64,
    n_det: i64,
    kind: Kind,
    full_fwd: Shared,
    full_adj: Shared,
    meas_fwd: Shared,
    meas_adj: Shared,
    full_bp: Shared,
    meas_bp: Shared,
}

impl SparseMatrices {
    pub fn new(full: &FanGeometry, meas: &FanGeometry, kind: Kind, device: Device) -> Result<Self> {
        let to = |m: &Csr| m.to_tensor(kind, device).map(Shared);
        let r = projection_matrix(full)?;
        let full_fwd = to(&r)?;
        let full_adj = to(&r.transpose())?;
        drop(r);
        let full_bp = to(&backprojection_matrix(full)?)?;
        let (meas_fwd, meas_adj, meas_bp) = if full.n_angles() == meas.n_angles() {
            (
                Shared(full_fwd.shallow_clone()),
                Shared(full_adj.shallow_clone()),
                Shared(full_bp.shallow_clone()),
            )
        } else {
            let r = projection_matrix(meas)?;
            (
                to(&r)?,
                to(&r.transpose())?,
                to(&backprojection_matrix(meas)?)?,
            )
        };
        Ok(SparseMatrices {
            n: full.n() as i64,
            n_det: full.n_detectors() as i64,
            kind,
            full_fwd,
            full_adj,
            meas_fwd,
            meas_adj,
            full_bp,
            meas_bp,
        })
    }
}

impl Kernels for SparseMatrices {
    fn project(&self, set: AngleSet, x: &Tensor) -> Result<Tensor> {
        let r = set.pick(&self.full_fwd, &self.meas_fwd);
        let m = x.size()[0];
        let y = sparse_apply(r, &x.f_reshape([m, self.n * self.n])?)?;
        Ok(y.f_reshape([m, self.n_det, -1])?)
    }

    fn backproject(&self, set: AngleSet, y: &Tensor) -> Result<Tensor> {
        let rt = set.pick(&self.full_adj, &self.meas_adj);
        let m = y.size()[0];
        let x = sparse_apply(rt, &y.f_reshape([m, -1])?)?;
        Ok(x.f_reshape([m, self.n, self.n])?)
    }

    fn fbp(&self, set: AngleSet, y: &Tensor, plan: &FbpPlan) -> Result<Tensor> {
        let bp = set.pick(&self.full_bp, &self.meas_bp);
        let m = y.size()[0];
        let p = plan.plan.fft_len() as i64;
        let q = y
            .f_mul(&plan.view_weights)? // [m, n_det, A]
            .f_permute([0, 2, 1])? // [m, A, n_det]
            .f_constant_pad_nd([0, p - self.n_det])?
            .f_fft_rfft(p, -1, "backward")?
            .f_mul(&plan.spectrum)?
            .f_fft_irfft(p, -1, "backward")?
            .f_narrow(2, 0, self.n_det)?
            .f_to_kind(self.kind)?
            .f_reshape([m, -1])?;
        Ok(sparse_apply(bp, &q)?.f_reshape([m, self.n, self.n])?)
    }

    fn records_autograd(&self) -> bool {
        true
    }
}

/// The projection matrix `R` (rows `k·A + a`, columns `r·N + c`) of `geom`.
fn projection_matrix(geom: &FanGeometry) -> Result<Csr> {
    let n = geom.n();
    ray_matrix(n, geom.n_detectors(), geom.n_angles(), |a, k, f| {
        geom.ray_samples(a, k).for_each(n, |b, w| f(b, w))
    })
}

/// The FBP back-projection matrix `B` (rows `r·N + c`, columns `a·n_det + i` of the filtered
/// projections `[A, n_det]`).
fn backprojection_matrix(geom: &FanGeometry) -> Result<Csr> {
    let (n, nd, na) = (geom.n(), geom.n_detectors(), geom.n_angles());
    check_indexable(na * nd, "the back-projection matrix")?;
    let rows: Vec<Vec<(u32, f64)>> = (0..n * n)
        .into_par_iter()
        .map(|p| {
            let (r, c) = (p / n, p % n);
            let mut e = Vec::new();
            if !in_inscribed_circle(n, r, c) {
                return e;
            }
            for a in 0..na {
                let (u, wd) = geom.pixel_projection(a, r as f64, c as f64);
                let Some((i0, t)) = detector_interp(u, nd) else {
                    continue;
                };
                let base = a * nd + i0;
                e.push((base as u32, (1.0 - t) * wd));
                if t != 0.0 {
                    e.push(((base + 1) as u32, t * wd));
                }
            }
            e
        })
        .collect();
    Ok(Csr::from_rows(rows, na * nd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{DetectorShape, FanGeometryConfig};

    /// The entry counts behind `fan_sparse_bytes_estimate`: `R` holds at most `2·N` entries
    /// per ray (measured 1.65–1.71·N for a fan 1.4 × as wide as the image) and `B` about
    /// `2·π/4·N²` per view.
    #[test]
    fn entry_counts_match_the_memory_estimate() {
        for detector in [DetectorShape::Curved, DetectorShape::Flat] {
            let (n, nd, na) = (64usize, 96usize, 30usize);
            let pitch = match detector {
                DetectorShape::Curved => 0.45,
                DetectorShape::Flat => 2.0,
            };
            let geom = FanGeometry::new(FanGeometryConfig {
                source_to_isocenter_mm: 120.0,
                source_to_detector_mm: 240.0,
                n_detectors: nd,
                detector,
                detector_pitch: pitch,
                detector_offset: 0.0,
                angles_deg: (0..na).map(|i| 12.0 * i as f64).collect(),
                image_size: n,
                pixel_spacing_mm: 1.0,
            })
            .unwrap();
            let r = projection_matrix(&geom).unwrap();
            let per_ray = r.nnz() as f64 / (nd * na * n) as f64;
            eprintln!("{detector:?}: R entries per ray / N = {per_ray:.3}");
            assert!((0.5..=2.0).contains(&per_ray), "{detector:?}: R {per_ray}");
            let b = backprojection_matrix(&geom).unwrap();
            let ratio = b.nnz() as f64 / (2.0 * std::f64::consts::FRAC_PI_4 * (n * n * na) as f64);
            assert!((0.9..1.1).contains(&ratio), "{detector:?}: B {ratio}");
        }
    }
}
