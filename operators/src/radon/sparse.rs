//! [`RadonBackend::Sparse`](super::RadonBackend::Sparse): the transform as explicit sparse
//! matrices (CSR), built once on the host from the shared geometry ([`crate::geometry`]) and
//! applied with one sparse × dense product per call (cuSPARSE `SpMM` on CUDA, MKL or the native
//! kernel on CPU) instead of gathers and scatters.
//!
//! * Projection `R ∈ ℝ^{(N·A) × N²}`, row `k·A + a` (detector bin `k`, angle `a`, so that
//!   `R x` reshapes to the `[N, A]` sinogram directly), column `r·N + c`: entry
//!   `Σ_j w_j` over the ray samples `j` whose bilinear corners include pixel `(r, c)` with
//!   weight `w_j` ([`BilinearSample`] of `ParallelGeometry::sample_coords`, the samples and
//!   weights of [`crate::reference::radon::forward`]), duplicates summed in f64.
//! * Its transpose `Rᵀ` (also stored in CSR), so that the adjoint is the exact transpose.
//! * FBP back-projection `B ∈ ℝ^{N² × (A·D)}`: row `r·N + c` for pixels inside the inscribed
//!   circle (other rows empty), the two linear-interpolation weights ([`detector_interp`]) into
//!   the filtered, diagonal-padded sinogram `[A, D]` (`numpy.interp` with zero outside, as
//!   scikit-image `iradon`), times the scale `π / (2A)`.
//!
//! Memory: about `nnz · (4 + s)` bytes per matrix (int32 column indices, element size `s`), with
//! `nnz ≈ 1.95 · A · N²` for `R` (bilinear corners shared by neighbouring samples are merged):
//! 184 MB each for `R` and `Rᵀ` at N = 256, A = 180, f32 (23.1 M entries).
use tch::{Device, Kind, Tensor};

use super::filtering::FilterBank;
use super::{AngleSet, Kernels, Shared};
use crate::csr::{check_indexable, ray_matrix, sparse_apply, Csr};
use crate::fbp::{fbp_scale, FbpFilter, FbpPadding};
use crate::geometry::{detector_interp, in_inscribed_circle, BilinearSample, ParallelGeometry};
use crate::Result;

/// The matrices of both angle sets (shared when every angle is measured) and the FBP filters.
pub(super) struct SparseMatrices {
    n: i64,
    kind: Kind,
    full_fwd: Shared, // [N·A, N²]
    full_adj: Shared, // [N², N·A]
    meas_fwd: Shared,
    meas_adj: Shared,
    full_bp: Shared, // [N², A·D]
    meas_bp: Shared,
    filters: FilterBank,
}

impl SparseMatrices {
    pub fn new(
        full: &ParallelGeometry,
        meas: &ParallelGeometry,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let to = |m: Csr| m.into_tensor(device).map(Shared);
        let r_full = projection_matrix(full, kind)?;
        let full_adj = to(r_full.transpose())?;
        let full_fwd = to(r_full)?;
        let full_bp = to(backprojection_matrix(
            full,
            fbp_scale(full.n_angles()),
            kind,
        )?)?;
        let (meas_fwd, meas_adj, meas_bp) = if full.n_angles() == meas.n_angles() {
            (
                Shared(full_fwd.shallow_clone()),
                Shared(full_adj.shallow_clone()),
                Shared(full_bp.shallow_clone()),
            )
        } else {
            let r = projection_matrix(meas, kind)?;
            let adj = to(r.transpose())?;
            (
                to(r)?,
                adj,
                to(backprojection_matrix(
                    meas,
                    fbp_scale(meas.n_angles()),
                    kind,
                )?)?,
            )
        };
        let n = full.n();
        Ok(SparseMatrices {
            n: n as i64,
            kind,
            full_fwd,
            full_adj,
            meas_fwd,
            meas_adj,
            full_bp,
            meas_bp,
            filters: FilterBank::new(n, kind, device)?,
        })
    }
}

impl Kernels for SparseMatrices {
    fn project(&self, set: AngleSet, x: &Tensor) -> Result<Tensor> {
        let r = set.pick(&self.full_fwd, &self.meas_fwd);
        let (m, n) = (x.size()[0], self.n);
        sparse_apply(r, &x.f_reshape([m, n * n])?)
    }

    fn backproject(&self, set: AngleSet, y: &Tensor) -> Result<Tensor> {
        let rt = set.pick(&self.full_adj, &self.meas_adj);
        sparse_apply(rt, &y.f_reshape([y.size()[0], -1])?)
    }

    fn fbp(&self, set: AngleSet, y: &Tensor, filter: FbpFilter) -> Result<Tensor> {
        let bp = set.pick(&self.full_bp, &self.meas_bp);
        let f = self
            .filters
            .filtered_sinogram(y, filter, self.n, self.kind)?; // [m, A, D]
        sparse_apply(bp, &f.f_reshape([y.size()[0], -1])?)
    }

    fn records_autograd(&self) -> bool {
        true
    }
}

/// The projection matrix `R` (rows `k·A + a`, columns `r·N + c`) of `geom`.
fn projection_matrix(geom: &ParallelGeometry, kind: Kind) -> Result<Csr> {
    let n = geom.n();
    ray_matrix(n, n, geom.n_angles(), kind, |a, k, f| {
        for j in 0..n {
            let (rr, cc) = geom.sample_coords(a, k, j);
            let b = BilinearSample::at(rr, cc);
            f(&b, b.weights());
        }
    })
}

/// The FBP back-projection matrix `B` (rows `r·N + c`, columns `a·D + i` of the filtered
/// diagonal-padded sinogram), scaled by `scale` (`π / (2A)`).
fn backprojection_matrix(geom: &ParallelGeometry, scale: f64, kind: Kind) -> Result<Csr> {
    let (n, na) = (geom.n(), geom.n_angles());
    let d = FbpPadding::new(n).diagonal;
    check_indexable(na * d, "the back-projection matrix")?;
    let half_d = (d / 2) as f64;
    Csr::build(n * n, na * d, kind, |p, e| {
        let (r, c) = (p / n, p % n);
        if !in_inscribed_circle(n, r, c) {
            return; // outside the reconstruction circle: zero
        }
        for a in 0..na {
            let u = geom.pixel_detector_coord(a, r, c) + half_d;
            let Some((i0, w)) = detector_interp(u, d) else {
                continue; // numpy.interp left = right = 0
            };
            let base = a * d + i0;
            e.push((base as u32, (1.0 - w) * scale)); // w < 1
            if w != 0.0 {
                e.push(((base + 1) as u32, w * scale));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry counts behind `radon::sparse_bytes_estimate`: ≈ 1.95·A·N² for `R` and
    /// ≈ 2·A·π/4·N² for `B` (within 10 %).
    #[test]
    fn entry_counts_match_the_memory_estimate() {
        let (n, a) = (64usize, 90usize);
        let geom = ParallelGeometry::new(n, crate::radon::full_view_angles(a)).unwrap();
        let n2a = (n * n * a) as f64;
        let r = projection_matrix(&geom, Kind::Float).unwrap();
        let ratio = r.nnz() as f64 / (1.95 * n2a);
        assert!((0.9..1.1).contains(&ratio), "R: {ratio}");
        assert_eq!(r.transpose().nnz(), r.nnz());
        let b = backprojection_matrix(&geom, 1.0, Kind::Float).unwrap();
        let ratio = b.nnz() as f64 / (2.0 * std::f64::consts::FRAC_PI_4 * n2a);
        assert!((0.9..1.1).contains(&ratio), "B: {ratio}");
    }
}
