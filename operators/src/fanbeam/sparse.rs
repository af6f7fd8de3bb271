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
use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};

use super::{FbpPlan, Kernels};
use crate::csr::{check_indexable, ray_matrix, sparse_apply, Csr};
use crate::geometry::{detector_interp, in_inscribed_circle, FanGeometry};
use crate::radon::{AngleSet, Shared};
use crate::Result;

/// The matrices of both angle sets (shared when every angle is measured). The FBP
/// back-projection matrices are built on the first FBP of their angle set: projections and
/// their adjoint (all that DPS-style guidance and the bench use) never pay for them.
pub(super) struct SparseMatrices {
    n: i64,
    n_det: i64,
    kind: Kind,
    device: Device,
    full: FanGeometry,
    /// The measured geometry, `None` when every angle is measured.
    meas: Option<FanGeometry>,
    full_fwd: Shared,
    full_adj: Shared,
    meas_fwd: Shared,
    meas_adj: Shared,
    full_bp: OnceLock<Shared>,
    meas_bp: OnceLock<Shared>,
}

/// `R` and `Rᵀ` of `geom` as tensors: `Rᵀ` is transposed on the host before `R` is copied, so
/// the host holds at most `R`, `Rᵀ` and one of their tensors at once.
fn projection_pair(geom: &FanGeometry, kind: Kind, device: Device) -> Result<(Shared, Shared)> {
    let r = projection_matrix(geom, kind)?;
    let rt = r.transpose();
    let adj = Shared(rt.into_tensor(device)?);
    let fwd = Shared(r.into_tensor(device)?);
    Ok((fwd, adj))
}

impl SparseMatrices {
    pub fn new(full: &FanGeometry, meas: &FanGeometry, kind: Kind, device: Device) -> Result<Self> {
        let (full_fwd, full_adj) = projection_pair(full, kind, device)?;
        let (meas_fwd, meas_adj, meas) = if full.n_angles() == meas.n_angles() {
            (
                Shared(full_fwd.shallow_clone()),
                Shared(full_adj.shallow_clone()),
                None,
            )
        } else {
            let (f, a) = projection_pair(meas, kind, device)?;
            (f, a, Some(meas.clone()))
        };
        Ok(SparseMatrices {
            n: full.n() as i64,
            n_det: full.n_detectors() as i64,
            kind,
            device,
            full: full.clone(),
            meas,
            full_fwd,
            full_adj,
            meas_fwd,
            meas_adj,
            full_bp: OnceLock::new(),
            meas_bp: OnceLock::new(),
        })
    }

    /// The FBP back-projection matrix of `set`, built on first use.
    fn backprojection(&self, set: AngleSet) -> Result<&Shared> {
        let (cell, geom) = match (set, &self.meas) {
            (AngleSet::Measured, Some(meas)) => (&self.meas_bp, meas),
            _ => (&self.full_bp, &self.full),
        };
        if let Some(b) = cell.get() {
            return Ok(b);
        }
        let b = Shared(backprojection_matrix(geom, self.kind)?.into_tensor(self.device)?);
        // Two threads may race to build it; one result is kept.
        Ok(cell.get_or_init(|| b))
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
        let bp = self.backprojection(set)?;
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
fn projection_matrix(geom: &FanGeometry, kind: Kind) -> Result<Csr> {
    let n = geom.n();
    ray_matrix(n, geom.n_detectors(), geom.n_angles(), kind, |a, k, f| {
        geom.ray_samples(a, k).for_each(n, |b, w| f(b, w))
    })
}

/// The FBP back-projection matrix `B` (rows `r·N + c`, columns `a·n_det + i` of the filtered
/// projections `[A, n_det]`).
fn backprojection_matrix(geom: &FanGeometry, kind: Kind) -> Result<Csr> {
    let (n, nd, na) = (geom.n(), geom.n_detectors(), geom.n_angles());
    check_indexable(na * nd, "the back-projection matrix")?;
    Csr::build(n * n, na * nd, kind, |p, e| {
        let (r, c) = (p / n, p % n);
        if !in_inscribed_circle(n, r, c) {
            return;
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{DetectorShape, FanGeometryConfig};

    /// The entry counts behind [`super::fan_sparse_memory`]: `R` holds
    /// [`super::super::FAN_ENTRIES_PER_SAMPLE`] entries per ray sample and `B` `2·A·π/4·N²` (each within
    /// 10 %), for curved and flat detectors, fans narrower and wider than the image, and a
    /// measured subset; the estimate's bytes are those entries at 8 bytes (f32). Control: a
    /// fixed number of entries per ray (`c·N`, `c` fitted on the first geometry) is more than
    /// 10 % off for the wide fan, whose outer rays miss the image.
    #[test]
    fn entry_counts_match_the_memory_estimate() {
        use super::super::fan_sparse_memory;
        let mut per_ray_fit = None;
        for (detector, pitch, sid) in [
            (DetectorShape::Curved, 0.45, 120.0),
            (DetectorShape::Flat, 2.0, 120.0),
            (DetectorShape::Curved, 0.8, 90.0),
            (DetectorShape::Flat, 1.5, 200.0),
        ] {
            let (n, nd, na) = (64usize, 96usize, 30usize);
            let geom = FanGeometry::new(FanGeometryConfig {
                source_to_isocenter_mm: sid,
                source_to_detector_mm: 2.0 * sid,
                n_detectors: nd,
                detector,
                detector_pitch: pitch,
                detector_offset: 0.0,
                angles_deg: (0..na).map(|i| 12.0 * i as f64).collect(),
                image_size: n,
                pixel_spacing_mm: 1.0,
            })
            .unwrap();
            let meas = geom.with_angles(vec![0.0, 90.0, 200.0]).unwrap();
            let est = fan_sparse_memory(&geom, &meas, Kind::Float);
            let (mut r_nnz, mut b_nnz) = (0usize, 0usize);
            for g in [&geom, &meas] {
                let r = projection_matrix(g, Kind::Float).unwrap();
                assert_eq!(r.transpose().nnz(), r.nnz());
                r_nnz += r.nnz();
                b_nnz += backprojection_matrix(g, Kind::Float).unwrap().nnz();
            }
            let r_ratio = est.projection / (2.0 * 8.0 * r_nnz as f64);
            let b_ratio = est.fbp / (8.0 * b_nnz as f64);
            let per_ray = r_nnz as f64 / (n * nd * (na + 3)) as f64;
            let c = *per_ray_fit.get_or_insert(per_ray);
            eprintln!(
                "{detector:?} pitch {pitch}: R estimate / count {r_ratio:.3}, B {b_ratio:.3}, \
                 entries per ray {per_ray:.3}·N"
            );
            assert!((0.9..1.1).contains(&r_ratio), "{detector:?}: R {r_ratio}");
            assert!((0.9..1.1).contains(&b_ratio), "{detector:?}: B {b_ratio}");
            if pitch == 0.8 {
                let off = c / per_ray;
                assert!(
                    !(0.9..1.1).contains(&off),
                    "control: {c}·N per ray is {off}"
                );
            }
        }
    }
}
