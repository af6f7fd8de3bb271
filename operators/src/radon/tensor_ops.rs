//! [`RadonBackend::TensorOps`](super::RadonBackend::TensorOps): interpolation tables built once
//! at construction from the shared geometry ([`crate::geometry`]) and applied with libtorch ops
//! on any device: batched `index_select` for the projection, `index_add_` for its adjoint and
//! `index_select` into the filtered sinogram for the FBP back-projection, processed in angle
//! chunks so that temporaries stay under `CHUNK_ELEMENTS`.
use tch::{Device, Kind, Tensor};

use super::filtering::FilterBank;
use super::{AngleSet, Kernels, Shared};
use crate::fbp::{fbp_scale, FbpFilter, FbpPadding};
use crate::geometry::{detector_interp, inscribed_circle_pixels, BilinearSample, ParallelGeometry};
use crate::Result;

/// Largest number of elements a chunked temporary of the tensor backend may hold.
const CHUNK_ELEMENTS: i64 = 1 << 24;

/// Forward-projection tables for one angle set: corner index into the `(N+2)²` zero-padded
/// image and the four bilinear weights (00, 01, 10, 11) of every sample `(angle, k, j)`.
struct ProjTables {
    idx: Shared, // [A, N·N] i64
    w4: Shared,  // [A, N·N, 4]
}

/// Back-projection tables of FBP for one angle set: index into the flattened filtered
/// sinogram `[A·D]` and the two linear-interpolation weights, per (angle, pixel in circle).
struct BpTables {
    idx: Shared, // [A, n_pix] i64
    w2: Shared,  // [A, n_pix, 2]
}

/// The tables of both angle sets (shared when every angle is measured) and the FBP filters.
pub(super) struct TensorOps {
    n: i64,
    kind: Kind,
    full_proj: ProjTables,
    meas_proj: ProjTables,
    full_bp: BpTables,
    meas_bp: BpTables,
    /// Flat indices of the pixels inside the inscribed circle.
    pix: Shared,
    filters: FilterBank,
}

impl TensorOps {
    pub fn new(
        full: &ParallelGeometry,
        meas: &ParallelGeometry,
        kept_index: &Tensor,
        kind: Kind,
        device: Device,
    ) -> Result<Self> {
        let full_proj = proj_tables(full, kind, device)?;
        let same = full.n_angles() == meas.n_angles();
        let meas_proj = if same {
            ProjTables {
                idx: Shared(full_proj.idx.shallow_clone()),
                w4: Shared(full_proj.w4.shallow_clone()),
            }
        } else {
            ProjTables {
                idx: Shared(full_proj.idx.f_index_select(0, kept_index)?),
                w4: Shared(full_proj.w4.f_index_select(0, kept_index)?),
            }
        };
        let full_bp = bp_tables(full, kind, device)?;
        let meas_bp = if same {
            BpTables {
                idx: Shared(full_bp.idx.shallow_clone()),
                w2: Shared(full_bp.w2.shallow_clone()),
            }
        } else {
            bp_tables(meas, kind, device)?
        };
        let n = full.n();
        let pix: Vec<i64> = inscribed_circle_pixels(n)
            .iter()
            .map(|&(r, c)| (r * n + c) as i64)
            .collect();
        Ok(TensorOps {
            n: n as i64,
            kind,
            full_proj,
            meas_proj,
            full_bp,
            meas_bp,
            pix: Shared(Tensor::f_from_slice(&pix)?.f_to_device(device)?),
            filters: FilterBank::new(n, kind, device)?,
        })
    }

    fn proj(&self, set: AngleSet) -> &ProjTables {
        set.pick(&self.full_proj, &self.meas_proj)
    }
}

impl Kernels for TensorOps {
    fn project(&self, set: AngleSet, x: &Tensor) -> Result<Tensor> {
        project_ops(self.proj(set), x, self.n, self.kind)
    }

    fn backproject(&self, set: AngleSet, y: &Tensor) -> Result<Tensor> {
        backproject_ops(self.proj(set), y, self.n, self.kind)
    }

    fn fbp(&self, set: AngleSet, y: &Tensor, filter: FbpFilter) -> Result<Tensor> {
        let bp = set.pick(&self.full_bp, &self.meas_bp);
        let filtered = self
            .filters
            .filtered_sinogram(y, filter, self.n, self.kind)?;
        let na = y.size()[2];
        fbp_ops(bp, &self.pix, &filtered, self.n, na, self.kind)
    }

    fn records_autograd(&self) -> bool {
        true
    }
}

fn proj_tables(geom: &ParallelGeometry, kind: Kind, device: Device) -> Result<ProjTables> {
    let n = geom.n();
    let w = (n + 2) as i64;
    let na = geom.n_angles();
    let mut idx = vec![0i64; na * n * n];
    let mut w4 = vec![0f64; na * n * n * 4];
    for a in 0..na {
        for k in 0..n {
            for j in 0..n {
                let s = (a * n + k) * n + j;
                let (row, col) = geom.sample_coords(a, k, j);
                let b = BilinearSample::at(row, col);
                if !b.touches_grid(n) {
                    continue; // all four corners outside the image: contributes nothing
                }
                idx[s] = (b.r0 as i64 + 1) * w + (b.c0 as i64 + 1);
                w4[4 * s..4 * s + 4].copy_from_slice(&b.weights());
            }
        }
    }
    let (idx, w4) = table_tensors(&idx, &w4, [na as i64, (n * n) as i64, 4], kind, device)?;
    Ok(ProjTables { idx, w4 })
}

fn bp_tables(geom: &ParallelGeometry, kind: Kind, device: Device) -> Result<BpTables> {
    let n = geom.n();
    let pad = FbpPadding::new(n);
    let d = pad.diagonal;
    let half_d = (d / 2) as f64;
    let pix = inscribed_circle_pixels(n);
    let na = geom.n_angles();
    let mut idx = vec![0i64; na * pix.len()];
    let mut w2 = vec![0f64; na * pix.len() * 2];
    for a in 0..na {
        for (q, &(r, c)) in pix.iter().enumerate() {
            let s = a * pix.len() + q;
            let u = geom.pixel_detector_coord(a, r, c) + half_d;
            let Some((i0, w)) = detector_interp(u, d) else {
                continue; // numpy.interp left = right = 0
            };
            idx[s] = (a * d + i0) as i64;
            w2[2 * s] = 1.0 - w;
            w2[2 * s + 1] = w;
        }
    }
    let (idx, w2) = table_tensors(&idx, &w2, [na as i64, pix.len() as i64, 2], kind, device)?;
    Ok(BpTables { idx, w2 })
}

/// The index table `[A, S]` and the weight table `[A, S, Q]` (weights in `kind`) of
/// `shape = [A, S, Q]`, on `device`.
fn table_tensors(
    idx: &[i64],
    weights: &[f64],
    shape: [i64; 3],
    kind: Kind,
    device: Device,
) -> Result<(Shared, Shared)> {
    let idx = Tensor::f_from_slice(idx)?
        .f_reshape(&shape[..2])?
        .f_to_device(device)?;
    let weights = Tensor::f_from_slice(weights)?
        .f_reshape(shape)?
        .f_to_kind(kind)?
        .f_to_device(device)?;
    Ok((Shared(idx), Shared(weights)))
}

/// Angles per chunk so that a `[m, chunk · per_angle]` temporary stays under CHUNK_ELEMENTS.
fn chunk_angles(m: i64, per_angle: i64, na: i64) -> i64 {
    (CHUNK_ELEMENTS / (m * per_angle).max(1)).clamp(1, na)
}

/// Stack of the four bilinear neighbours of every padded pixel: `[m, W², 4]` with
/// `[..., q] = xp[p + off_q]`, `off = (0, 1, W, W + 1)` (zero beyond the end).
fn neighbour_stack(xp: &Tensor, w: i64) -> Result<Tensor> {
    let ww = w * w;
    let xe = xp.f_constant_pad_nd([0, w + 1])?;
    let parts = [
        xe.f_narrow(1, 0, ww)?,
        xe.f_narrow(1, 1, ww)?,
        xe.f_narrow(1, w, ww)?,
        xe.f_narrow(1, w + 1, ww)?,
    ];
    Ok(Tensor::f_stack(&parts, 2)?)
}

fn project_ops(t: &ProjTables, x: &Tensor, n: i64, kind: Kind) -> Result<Tensor> {
    let m = x.size()[0];
    let w = n + 2;
    let na = t.idx.size()[0];
    let xp = x.f_constant_pad_nd([1, 1, 1, 1])?.f_reshape([m, w * w])?;
    let x4 = neighbour_stack(&xp, w)?;
    let chunk = chunk_angles(m, n * n * 4, na);
    let mut outs = Vec::new();
    let mut a0 = 0;
    while a0 < na {
        let len = chunk.min(na - a0);
        let idx = t.idx.f_narrow(0, a0, len)?.f_reshape([-1])?;
        let w4 = t.w4.f_narrow(0, a0, len)?.f_reshape([1, -1, 4])?;
        let g = x4.f_index_select(1, &idx)?.f_mul(&w4)?; // [m, len·N·N, 4]
        outs.push(g.f_reshape([m, len, n, n * 4])?.f_sum_dim_intlist(
            [-1i64].as_slice(),
            false,
            kind,
        )?);
        a0 += len;
    }
    // [m, A, N_det] → [m, N_det, A]
    Ok(Tensor::f_cat(&outs, 1)?
        .f_permute([0, 2, 1])?
        .f_contiguous()?)
}

fn backproject_ops(t: &ProjTables, y: &Tensor, n: i64, kind: Kind) -> Result<Tensor> {
    let m = y.size()[0];
    let w = n + 2;
    let ww = w * w;
    let na = t.idx.size()[0];
    let yt = y.f_permute([0, 2, 1])?; // [m, A, N_det]
    let mut grad4 = Tensor::f_zeros([m, ww, 4], (kind, y.device()))?;
    let chunk = chunk_angles(m, n * n * 4, na);
    let mut a0 = 0;
    while a0 < na {
        let len = chunk.min(na - a0);
        let idx = t.idx.f_narrow(0, a0, len)?.f_reshape([-1])?;
        let w4 = t.w4.f_narrow(0, a0, len)?.f_reshape([1, len, n, n, 4])?;
        let ys = yt.f_narrow(1, a0, len)?.f_unsqueeze(-1)?.f_unsqueeze(-1)?; // [m, len, N_det, 1, 1]
        let contrib = ys.f_mul(&w4)?.f_reshape([m, -1, 4])?;
        let _ = grad4.f_index_add_(1, &idx, &contrib)?;
        a0 += len;
    }
    // Transpose of neighbour_stack: add each neighbour slot back at its offset.
    let ge = Tensor::f_zeros([m, ww + w + 1], (kind, y.device()))?;
    for (q, off) in [0, 1, w, w + 1].into_iter().enumerate() {
        let mut dst = ge.f_narrow(1, off, ww)?;
        let _ = dst.f_add_(&grad4.f_select(2, q as i64)?)?;
    }
    Ok(ge
        .f_narrow(1, 0, ww)?
        .f_reshape([m, w, w])?
        .f_narrow(1, 1, n)?
        .f_narrow(2, 1, n)?
        .f_contiguous()?)
}

/// The back-projection of FBP from the filtered projections `filtered` `[m, A, D]`.
fn fbp_ops(
    bp: &BpTables,
    pix: &Tensor,
    filtered: &Tensor,
    n: i64,
    na: i64,
    kind: Kind,
) -> Result<Tensor> {
    let m = filtered.size()[0];
    let d = FbpPadding::new(n as usize).diagonal as i64;
    let ad = na * d;
    let fe = filtered.f_reshape([m, ad])?.f_constant_pad_nd([0, 1])?;
    let f2 = Tensor::f_stack(&[fe.f_narrow(1, 0, ad)?, fe.f_narrow(1, 1, ad)?], 2)?; // [m, A·D, 2]
    let npix = pix.size()[0];
    let mut acc = Tensor::f_zeros([m, npix], (kind, filtered.device()))?;
    let chunk = chunk_angles(m, npix * 2, na);
    let mut a0 = 0;
    while a0 < na {
        let len = chunk.min(na - a0);
        let idx = bp.idx.f_narrow(0, a0, len)?.f_reshape([-1])?;
        let w2 = bp.w2.f_narrow(0, a0, len)?.f_reshape([1, -1, 2])?;
        let g = f2.f_index_select(1, &idx)?.f_mul(&w2)?; // [m, len·npix, 2]
        let part =
            g.f_reshape([m, len, npix, 2])?
                .f_sum_dim_intlist([1i64, 3].as_slice(), false, kind)?;
        let _ = acc.f_add_(&part)?;
        a0 += len;
    }
    let acc = acc.f_mul_scalar(fbp_scale(na as usize))?;
    Ok(Tensor::f_zeros([m, n * n], (kind, filtered.device()))?
        .f_index_copy(1, pix, &acc)?
        .f_reshape([m, n, n])?)
}
