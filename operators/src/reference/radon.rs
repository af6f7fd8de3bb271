//! ndarray + rayon reference implementation of the parallel-beam Radon transform, its exact
//! adjoint and filtered back-projection, for CPU-only callers and as an independent check of
//! the tensor implementation in [`crate::radon`].
//!
//! Discretisation (identical to scikit-image `radon(image, theta, circle=True)`, which rotates
//! the image with bilinear interpolation about pixel `(N/2, N/2)` and sums its rows): with
//! `c = N/2` (integer division), detector bin `k` (offset `s = k - c`), ray sample `j`
//! (offset `t = j - c`) and angle `θ`,
//!
//! ```text
//! row = c - s sin θ + t cos θ,   col = c + s cos θ + t sin θ
//! R[k, θ] = Σ_j  bilinear(x, row, col)          (x = 0 outside the N×N grid)
//! ```
//!
//! The adjoint scatters each `R[k, θ]` back onto the four pixels of every sample with the same
//! bilinear weights, so it is the exact transpose of the forward. [`fbp`] follows
//! [`crate::fbp`]. Images are batches `[M, N, N]`, sinograms `[M, N, n_angles]`.
//!
//! The geometry ([`ParallelGeometry`], re-exported here from [`crate::geometry`]) and the
//! bilinear footprint of a sample are shared with the tensor backends; what is particular to
//! these kernels is walking each ray incrementally, splitting it into a branch-free interior
//! and edge samples, and computing the weights in the element type `T`.
use ndarray::{Array2, Array3, ArrayView3, Axis};
use ndrustfft::{ndfft_r2c, ndifft_r2c, Complex, R2cFftHandler};
use rayon::prelude::*;

use crate::fbp::{fbp_scale, half_spectrum_filter, FbpFilter, FbpPadding};
pub use crate::geometry::ParallelGeometry;
use crate::geometry::{floor_split, in_inscribed_circle, BilinearSample};
use crate::{OperatorError, Result};

/// Floating-point element types of the reference path (`f32`, `f64`).
pub trait Real: ndarray::NdFloat + tch::kind::Element + Default {
    /// The tch kind of this type.
    const KIND: tch::Kind;
    /// Conversion from `f64` (rounding for `f32`).
    fn from_f64(v: f64) -> Self;
    /// Conversion to `f64`.
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    const KIND: tch::Kind = tch::Kind::Float;
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const KIND: tch::Kind = tch::Kind::Double;
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
}

fn check_images<T>(geom: &ParallelGeometry, x: &ArrayView3<T>, what: &str) -> Result<()> {
    let s = x.shape();
    if s[1] != geom.n() || s[2] != geom.n() {
        return Err(OperatorError::Shape {
            op: "radon (reference)".into(),
            what: what.into(),
            expected: format!("[M, {}, {}]", geom.n(), geom.n()),
            actual: format!("{s:?}"),
        });
    }
    Ok(())
}

fn check_sinograms<T>(geom: &ParallelGeometry, y: &ArrayView3<T>, what: &str) -> Result<()> {
    let s = y.shape();
    if s[1] != geom.n() || s[2] != geom.n_angles() {
        return Err(OperatorError::Shape {
            op: "radon (reference)".into(),
            what: what.into(),
            expected: format!("[M, {}, {}]", geom.n(), geom.n_angles()),
            actual: format!("{s:?}"),
        });
    }
    Ok(())
}

/// Real-valued range of `j` for which `start + j·step` lies in `[v_lo, v_hi)`: all of ℝ or
/// `None` (empty) when `step ≈ 0`.
#[inline]
fn j_interval(start: f64, step: f64, v_lo: f64, v_hi: f64) -> Option<(f64, f64)> {
    if step.abs() < 1e-12 {
        return (start >= v_lo && start < v_hi).then_some((f64::NEG_INFINITY, f64::INFINITY));
    }
    let (a, b) = ((v_lo - start) / step, (v_hi - start) / step);
    Some(if a < b { (a, b) } else { (b, a) })
}

/// Range `lo..hi` of ray samples `j` (out of `0..n`) for which `start + j·step` may lie in
/// `[-1, n)`, widened by one sample on each side; callers still check every sample exactly.
#[inline]
fn sample_range(start: f64, step: f64, n: usize) -> (usize, usize) {
    let nf = n as f64;
    match j_interval(start, step, -1.0 - 1e-9, nf + 1e-9) {
        None => (0, 0),
        Some((lo, hi)) => {
            let lo = (lo.floor() - 1.0).clamp(0.0, nf) as usize;
            let hi = (hi.ceil() + 2.0).clamp(0.0, nf) as usize;
            (lo, hi.max(lo))
        }
    }
}

/// Bilinear weights (00, 01, 10, 11) for fractional offsets `(fr, fc)`, computed in `T`.
#[inline(always)]
fn weights<T: Real>(fr: f64, fc: f64) -> [T; 4] {
    let (fr, fc) = (T::from_f64(fr), T::from_f64(fc));
    let one = T::one();
    [
        (one - fr) * (one - fc),
        (one - fr) * fc,
        fr * (one - fc),
        fr * fc,
    ]
}

/// One ray `(a, k)`: its sample coordinates `(row₀ + j·cos θ, col₀ + j·sin θ)`, the samples
/// `lo..hi` with non-zero support and the interior ones `ilo..ihi` (all four corners inside;
/// see [`Ray::interior_range`]). The kernels loop over the three parts themselves, so the interior
/// loop is branch-free and fully inlined.
struct Ray {
    row0: f64,
    col0: f64,
    step_r: f64,
    step_c: f64,
    lo: usize,
    ilo: usize,
    ihi: usize,
    hi: usize,
}

impl Ray {
    #[inline(always)]
    fn new(geom: &ParallelGeometry, a: usize, k: usize) -> Ray {
        let n = geom.n();
        let (row0, col0) = geom.sample_coords(a, k, 0);
        let (step_r, step_c) = geom.cos_sin(a);
        let (r_lo, r_hi) = sample_range(row0, step_r, n);
        let (c_lo, c_hi) = sample_range(col0, step_c, n);
        let lo = r_lo.max(c_lo);
        let mut ray = Ray {
            row0,
            col0,
            step_r,
            step_c,
            lo,
            ilo: lo,
            ihi: lo,
            hi: r_hi.min(c_hi).max(lo),
        };
        (ray.ilo, ray.ihi) = ray.interior_range(n);
        ray
    }

    /// Image coordinates `(row, col)` of sample `j`.
    #[inline(always)]
    fn coords(&self, j: usize) -> (f64, f64) {
        let jf = j as f64;
        (self.row0 + jf * self.step_r, self.col0 + jf * self.step_c)
    }

    /// The samples `j` in `lo..hi` whose four bilinear corners all lie inside the grid
    /// (`0 ≤ ⌊row⌋, ⌊col⌋ ≤ N − 2`), as a sub-range `ilo..ihi`. The coordinates are monotone
    /// in `j`, so these samples form one interval; it is first estimated by solving the
    /// linear bounds and then trimmed with the exact test on the same floating-point
    /// expression the kernels evaluate, so every sample in it is interior (an estimate that is
    /// too narrow only sends a few interior samples down the general edge path).
    #[inline]
    fn interior_range(&self, n: usize) -> (usize, usize) {
        let (lo, hi) = (self.lo, self.hi);
        let inside = |j: usize| {
            let (row, col) = self.coords(j);
            let b = BilinearSample::at(row, col);
            b.r0 >= 0 && b.c0 >= 0 && b.r0 < n as isize - 1 && b.c0 < n as isize - 1
        };
        let top = (n - 1) as f64;
        let (Some((ra, rb)), Some((ca, cb))) = (
            j_interval(self.row0, self.step_r, 0.0, top),
            j_interval(self.col0, self.step_c, 0.0, top),
        ) else {
            return (lo, lo);
        };
        let (jl, jh) = (ra.max(ca), rb.min(cb));
        if jl.partial_cmp(&jh) != Some(std::cmp::Ordering::Less) {
            return (lo, lo);
        }
        let mut ilo = (jl.ceil().max(lo as f64) as usize).min(hi);
        let mut ihi = ((jh.floor() + 1.0).min(hi as f64).max(0.0) as usize).max(ilo);
        while ilo < ihi && !inside(ilo) {
            ilo += 1;
        }
        while ihi > ilo && !inside(ihi - 1) {
            ihi -= 1;
        }
        (ilo, ihi)
    }

    /// Samples outside the interior range (they may have corners outside the grid).
    #[inline(always)]
    fn edge_samples(&self) -> impl Iterator<Item = usize> {
        (self.lo..self.ilo).chain(self.ihi..self.hi)
    }

    /// Footprint and weights of an edge sample; `None` when no corner is inside.
    #[inline(always)]
    fn edge<T: Real>(&self, j: usize, n: usize) -> Option<(BilinearSample, [T; 4])> {
        let (row, col) = self.coords(j);
        let b = BilinearSample::at(row, col);
        b.touches_grid(n).then(|| (b, weights::<T>(b.fr, b.fc)))
    }

    /// Flat index `r₀·N + c₀` of the top-left corner and the weights of an interior sample
    /// (`ilo ≤ j < ihi`).
    #[inline(always)]
    fn interior<T: Real>(&self, j: usize, n: usize) -> (usize, [T; 4]) {
        let (row, col) = self.coords(j);
        // Interior: 0 ≤ row, col < N − 1, so truncation equals the floor of `corners`.
        let (r0, c0) = (row as i32 as usize, col as i32 as usize);
        let (fr, fc) = (row - r0 as f64, col - c0 as f64);
        (r0 * n + c0, weights::<T>(fr, fc))
    }
}

/// Splits `0..m` into blocks of 8, then 4, then 1 images: `(offset, length)`. Each block is
/// one pass of the kernels with the block length a compile-time constant, so the per-image
/// loops are unrolled and vectorised; the sample coordinates are computed once per block.
fn image_blocks(m: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut o = 0;
    for l in [8, 4, 1] {
        while o + l <= m {
            out.push((o, l));
            o += l;
        }
    }
    out
}

/// Radon transform of a batch `[M, N, N]` → sinograms `[M, N, n_angles]`.
pub fn forward<T: Real>(geom: &ParallelGeometry, images: ArrayView3<T>) -> Result<Array3<T>> {
    check_images(geom, &images, "image")?;
    let (m, n, na) = (images.shape()[0], geom.n(), geom.n_angles());
    let mut sino = Array3::<T>::zeros((m, n, na));
    for (o, l) in image_blocks(m) {
        let block = images.slice(ndarray::s![o..o + l, .., ..]);
        let out = sino.slice_mut(ndarray::s![o..o + l, .., ..]);
        match l {
            8 => forward_block::<T, 8>(geom, block, out),
            4 => forward_block::<T, 4>(geom, block, out),
            _ => forward_block::<T, 1>(geom, block, out),
        }
    }
    Ok(sino)
}

/// [`forward`] of exactly `L` images into `sino` `[L, N, n_angles]`.
fn forward_block<T: Real, const L: usize>(
    geom: &ParallelGeometry,
    images: ArrayView3<T>,
    mut sino: ndarray::ArrayViewMut3<T>,
) {
    let (n, na) = (geom.n(), geom.n_angles());
    // Channels-last copy (pixel-major, L images per pixel) so that each sample's weights
    // are computed once for the whole block.
    let mut xl = vec![[T::zero(); L]; n * n];
    for (mi, img) in images.axis_iter(Axis(0)).enumerate() {
        for (p, v) in img.iter().enumerate() {
            xl[p][mi] = *v;
        }
    }
    let per_angle: Vec<Vec<[T; L]>> = (0..na)
        .into_par_iter()
        .map(|a| {
            let mut out = vec![[T::zero(); L]; n];
            for (k, acc) in out.iter_mut().enumerate() {
                let ray = Ray::new(geom, a, k);
                // Register accumulator (`acc` itself may alias `xl` as far as the compiler knows).
                let mut sum = [T::zero(); L];
                for j in ray.ilo..ray.ihi {
                    let (p, w) = ray.interior::<T>(j, n);
                    let (x00, x01) = (&xl[p], &xl[p + 1]);
                    let (x10, x11) = (&xl[p + n], &xl[p + n + 1]);
                    for i in 0..L {
                        sum[i] += w[0] * x00[i] + w[1] * x01[i] + w[2] * x10[i] + w[3] * x11[i];
                    }
                }
                *acc = sum;
                for j in ray.edge_samples() {
                    if let Some((b, w)) = ray.edge::<T>(j, n) {
                        for (q, p) in b.corners_in_grid(n) {
                            for i in 0..L {
                                acc[i] += w[q] * xl[p][i];
                            }
                        }
                    }
                }
            }
            out
        })
        .collect();
    for (a, out) in per_angle.iter().enumerate() {
        for (k, v) in out.iter().enumerate() {
            for (mi, x) in v.iter().enumerate() {
                sino[[mi, k, a]] = *x;
            }
        }
    }
}

/// Exact adjoint (transpose) of [`forward`]: sinograms `[M, N, n_angles]` → images `[M, N, N]`.
pub fn adjoint<T: Real>(geom: &ParallelGeometry, sinograms: ArrayView3<T>) -> Result<Array3<T>> {
    check_sinograms(geom, &sinograms, "sinogram")?;
    let (m, n) = (sinograms.shape()[0], geom.n());
    let mut images = Array3::<T>::zeros((m, n, n));
    for (o, l) in image_blocks(m) {
        let block = sinograms.slice(ndarray::s![o..o + l, .., ..]);
        let out = images.slice_mut(ndarray::s![o..o + l, .., ..]);
        match l {
            8 => adjoint_block::<T, 8>(geom, block, out),
            4 => adjoint_block::<T, 4>(geom, block, out),
            _ => adjoint_block::<T, 1>(geom, block, out),
        }
    }
    Ok(images)
}

/// [`adjoint`] of exactly `L` sinograms into `images` `[L, N, N]`.
fn adjoint_block<T: Real, const L: usize>(
    geom: &ParallelGeometry,
    sinograms: ArrayView3<T>,
    mut images: ndarray::ArrayViewMut3<T>,
) {
    let (n, na) = (geom.n(), geom.n_angles());
    // Angle groups scatter into private images, summed at the end (no write conflicts).
    let groups = (rayon::current_num_threads() * 2).clamp(1, na);
    let partials: Vec<Vec<[T; L]>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut xl = vec![[T::zero(); L]; n * n];
            for a in (g..na).step_by(groups) {
                for k in 0..n {
                    let mut v = [T::zero(); L];
                    for (mi, vm) in v.iter_mut().enumerate() {
                        *vm = sinograms[[mi, k, a]];
                    }
                    let ray = Ray::new(geom, a, k);
                    for j in ray.ilo..ray.ihi {
                        let (p, w) = ray.interior::<T>(j, n);
                        let (top, bottom) = xl.split_at_mut(p + n);
                        let (x00, x01) = top[p..p + 2].split_at_mut(1);
                        let (x10, x11) = bottom[..2].split_at_mut(1);
                        for i in 0..L {
                            x00[0][i] += w[0] * v[i];
                            x01[0][i] += w[1] * v[i];
                            x10[0][i] += w[2] * v[i];
                            x11[0][i] += w[3] * v[i];
                        }
                    }
                    for j in ray.edge_samples() {
                        if let Some((b, w)) = ray.edge::<T>(j, n) {
                            for (q, p) in b.corners_in_grid(n) {
                                for i in 0..L {
                                    xl[p][i] += w[q] * v[i];
                                }
                            }
                        }
                    }
                }
            }
            xl
        })
        .collect();
    for xl in &partials {
        for (p, v) in xl.iter().enumerate() {
            let (r, c) = (p / n, p % n);
            for (mi, x) in v.iter().enumerate() {
                images[[mi, r, c]] += *x;
            }
        }
    }
}

/// Filtered back-projection of sinograms `[M, N, n_angles]` → images `[M, N, N]`, as
/// scikit-image `iradon(..., filter_name, circle=True)` (see [`crate::fbp`]). Computed in f64.
pub fn fbp<T: Real>(
    geom: &ParallelGeometry,
    sinograms: ArrayView3<T>,
    filter: FbpFilter,
) -> Result<Array3<T>> {
    check_sinograms(geom, &sinograms, "sinogram")?;
    let m = sinograms.shape()[0];
    let n = geom.n();
    let na = geom.n_angles();
    if m == 0 {
        return Ok(Array3::zeros((0, n, n)));
    }
    let pad = FbpPadding::new(n);
    let (d, p) = (pad.diagonal, pad.fft_len);
    let h = half_spectrum_filter(p, filter);

    // One row per (image, angle): the projection placed in the zero-padded length-P frame.
    let mut rows = Array2::<f64>::zeros((m * na, p));
    for mi in 0..m {
        for a in 0..na {
            let mut row = rows.row_mut(mi * na + a);
            for k in 0..n {
                row[pad.pad_before + k] = sinograms[[mi, k, a]].to_f64();
            }
        }
    }
    let handler = R2cFftHandler::<f64>::new(p);
    let mut spec = Array2::<Complex<f64>>::zeros((m * na, p / 2 + 1));
    ndfft_r2c(&rows, &mut spec, &handler, 1);
    for mut srow in spec.rows_mut() {
        for (z, hk) in srow.iter_mut().zip(&h) {
            *z *= *hk;
        }
    }
    ndifft_r2c(&spec, &mut rows, &handler, 1);

    let half_d = (d / 2) as f64;
    let scale = fbp_scale(na);
    let rows = rows
        .as_slice()
        .ok_or_else(|| OperatorError::Invalid("fbp: non-contiguous filter buffer".into()))?;
    let mut out = Array3::<T>::zeros((m, n, n));
    let out_slice = out
        .as_slice_mut()
        .ok_or_else(|| OperatorError::Invalid("fbp: non-contiguous output".into()))?;
    // One task per output row: for each angle, interpolate its filtered projection along the
    // row's pixels inside the circle (good locality in the length-P projection).
    out_slice
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(row_id, out_row)| {
            let (mi, r) = (row_id / n, row_id % n);
            let inside = |col: usize| in_inscribed_circle(n, r, col);
            let Some(c_lo) = (0..n).find(|&c| inside(c)) else {
                return;
            };
            let c_hi = (0..n).rev().find(|&c| inside(c)).unwrap_or(c_lo);
            let mut acc = vec![0f64; c_hi + 1 - c_lo];
            for a in 0..na {
                let proj = &rows[(mi * na + a) * p..(mi * na + a) * p + d];
                let u0 = geom.pixel_detector_coord(a, r, c_lo) + half_d;
                let du = geom.cos_sin(a).0;
                for (i, acc_c) in acc.iter_mut().enumerate() {
                    let u = u0 + i as f64 * du;
                    // numpy.interp on x = 0..D-1 with left = right = 0.
                    if u < 0.0 || u > (d - 1) as f64 {
                        continue;
                    }
                    let (i0, w) = floor_split(u);
                    let i0 = i0 as usize;
                    if i0 == d - 1 {
                        *acc_c += proj[i0];
                    } else {
                        *acc_c += proj[i0] * (1.0 - w) + proj[i0 + 1] * w;
                    }
                }
            }
            for (col, v) in (c_lo..=c_hi).zip(acc) {
                out_row[col] = T::from_f64(v * scale);
            }
        });
    Ok(out)
}
