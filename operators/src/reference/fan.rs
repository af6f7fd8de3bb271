//! ndarray + rayon reference implementation of the fan-beam transform
//! ([`crate::geometry::fan`]), its exact adjoint and fan-beam FBP ([`crate::fan_fbp`]), for
//! CPU-only callers and as an independent check of the sparse backend of
//! [`crate::fanbeam::FanBeam`].
//!
//! Ray-driven: for every source angle `a` and detector bin `k`, the ray from the source through
//! the bin centre is sampled at a fixed step ([`FanGeometry::ray_samples`]) and
//!
//! ```text
//! y[k, a] = Σ_j bilinear(x, sample j) · step_mm        (x = 0 outside the N×N grid)
//! ```
//!
//! The adjoint scatters `y[k, a]` back with the same bilinear weights. Images are batches
//! `[M, N, N]`, sinograms `[M, n_detectors, n_angles]`. Interpolation weights are computed in
//! f64 on the fly and applied in the element type `T`.
use ndarray::{Array2, Array3, ArrayView3};
use ndrustfft::{ndfft_r2c, ndifft_r2c, Complex, R2cFftHandler};
use rayon::prelude::*;

use super::radon::Real;
use crate::fan_fbp::FanFbp;
use crate::geometry::{detector_interp, in_inscribed_circle, FanGeometry};
use crate::{OperatorError, Result};

fn shape_error(what: &str, expected: String, actual: &[usize]) -> Result<()> {
    Err(OperatorError::Shape {
        op: "fanbeam (reference)".into(),
        what: what.into(),
        expected,
        actual: format!("{actual:?}"),
    })
}

fn check_images<T>(geom: &FanGeometry, x: &ArrayView3<T>) -> Result<()> {
    let s = x.shape();
    if s[1] != geom.n() || s[2] != geom.n() {
        return shape_error("image", format!("[M, {0}, {0}]", geom.n()), s);
    }
    Ok(())
}

fn check_sinograms<T>(geom: &FanGeometry, y: &ArrayView3<T>) -> Result<()> {
    let s = y.shape();
    if s[1] != geom.n_detectors() || s[2] != geom.n_angles() {
        let e = format!("[M, {}, {}]", geom.n_detectors(), geom.n_angles());
        return shape_error("sinogram", e, s);
    }
    Ok(())
}

/// Fan-beam projection of a batch `[M, N, N]` → sinograms `[M, n_detectors, n_angles]`.
pub fn forward<T: Real>(geom: &FanGeometry, images: ArrayView3<T>) -> Result<Array3<T>> {
    check_images(geom, &images)?;
    let (m, n, nd, na) = (
        images.shape()[0],
        geom.n(),
        geom.n_detectors(),
        geom.n_angles(),
    );
    // Pixel-major copy (M values per pixel), so that each sample's weights serve all images.
    let mut xl = vec![T::zero(); n * n * m];
    for (mi, img) in images.outer_iter().enumerate() {
        for (p, v) in img.iter().enumerate() {
            xl[p * m + mi] = *v;
        }
    }
    let per_angle: Vec<Vec<T>> = (0..na)
        .into_par_iter()
        .map(|a| {
            let mut out = vec![T::zero(); nd * m];
            for k in 0..nd {
                let acc = &mut out[k * m..(k + 1) * m];
                geom.ray_samples(a, k).for_each(n, |b, w| {
                    for (q, p) in b.corners_in_grid(n) {
                        let wq = T::from_f64(w[q]);
                        for (acc_i, x) in acc.iter_mut().zip(&xl[p * m..(p + 1) * m]) {
                            *acc_i += wq * *x;
                        }
                    }
                });
            }
            out
        })
        .collect();
    let mut sino = Array3::<T>::zeros((m, nd, na));
    for (a, out) in per_angle.iter().enumerate() {
        for k in 0..nd {
            for mi in 0..m {
                sino[[mi, k, a]] = out[k * m + mi];
            }
        }
    }
    Ok(sino)
}

/// Exact adjoint (transpose) of [`forward`]: `[M, n_detectors, n_angles]` → `[M, N, N]`.
pub fn adjoint<T: Real>(geom: &FanGeometry, sinograms: ArrayView3<T>) -> Result<Array3<T>> {
    check_sinograms(geom, &sinograms)?;
    let (m, n, nd, na) = (
        sinograms.shape()[0],
        geom.n(),
        geom.n_detectors(),
        geom.n_angles(),
    );
    // Angle groups scatter into private images, summed at the end (no write conflicts).
    let groups = (rayon::current_num_threads() * 2).clamp(1, na);
    let partials: Vec<Vec<T>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut xl = vec![T::zero(); n * n * m];
            let mut v = vec![T::zero(); m];
            for a in (g..na).step_by(groups) {
                for k in 0..nd {
                    for (mi, vm) in v.iter_mut().enumerate() {
                        *vm = sinograms[[mi, k, a]];
                    }
                    geom.ray_samples(a, k).for_each(n, |b, w| {
                        for (q, p) in b.corners_in_grid(n) {
                            let wq = T::from_f64(w[q]);
                            for (x, vi) in xl[p * m..(p + 1) * m].iter_mut().zip(&v) {
                                *x += wq * *vi;
                            }
                        }
                    });
                }
            }
            xl
        })
        .collect();
    let mut images = Array3::<T>::zeros((m, n, n));
    for xl in &partials {
        for p in 0..n * n {
            for mi in 0..m {
                images[[mi, p / n, p % n]] += xl[p * m + mi];
            }
        }
    }
    Ok(images)
}

/// Fan-beam FBP of sinograms `[M, n_detectors, n_angles]` → images `[M, N, N]` (see
/// [`crate::fan_fbp`]): weight each projection by `plan`'s view weights, filter it with its
/// kernel (zero-padded FFT convolution), and back-project with linear interpolation along the
/// detector and the distance weight of [`FanGeometry::pixel_projection`]; pixels outside the
/// inscribed circle are 0. Computed in f64.
pub fn fbp<T: Real>(
    geom: &FanGeometry,
    plan: &FanFbp,
    sinograms: ArrayView3<T>,
) -> Result<Array3<T>> {
    check_sinograms(geom, &sinograms)?;
    let (m, n, nd, na) = (
        sinograms.shape()[0],
        geom.n(),
        geom.n_detectors(),
        geom.n_angles(),
    );
    if m == 0 {
        return Ok(Array3::zeros((0, n, n)));
    }
    let p = plan.fft_len();
    let h = plan.half_spectrum();
    let vw = plan.view_weights(); // [nd · na], index k·na + a
    let mut rows = Array2::<f64>::zeros((m * na, p));
    for mi in 0..m {
        for a in 0..na {
            let mut row = rows.row_mut(mi * na + a);
            for k in 0..nd {
                row[k] = sinograms[[mi, k, a]].to_f64() * vw[k * na + a];
            }
        }
    }
    let handler = R2cFftHandler::<f64>::new(p);
    let mut spec = Array2::<Complex<f64>>::zeros((m * na, p / 2 + 1));
    ndfft_r2c(&rows, &mut spec, &handler, 1);
    for mut srow in spec.rows_mut() {
        for (z, hk) in srow.iter_mut().zip(h) {
            *z *= *hk;
        }
    }
    ndifft_r2c(&spec, &mut rows, &handler, 1);
    let rows = rows
        .as_slice()
        .ok_or_else(|| OperatorError::Invalid("fanbeam fbp: non-contiguous buffer".into()))?;
    let mut out = Array3::<T>::zeros((m, n, n));
    let out_slice = out
        .as_slice_mut()
        .ok_or_else(|| OperatorError::Invalid("fanbeam fbp: non-contiguous output".into()))?;
    out_slice
        .par_chunks_mut(n)
        .enumerate()
        .for_each(|(row_id, out_row)| {
            let (mi, r) = (row_id / n, row_id % n);
            for (col, o) in out_row.iter_mut().enumerate() {
                if !in_inscribed_circle(n, r, col) {
                    continue;
                }
                let mut acc = 0.0;
                for a in 0..na {
                    let (u, w) = geom.pixel_projection(a, r as f64, col as f64);
                    let Some((i0, t)) = detector_interp(u, nd) else {
                        continue;
                    };
                    let q = &rows[(mi * na + a) * p..];
                    let v = if t == 0.0 {
                        q[i0]
                    } else {
                        q[i0] * (1.0 - t) + q[i0 + 1] * t
                    };
                    acc += v * w;
                }
                *o = T::from_f64(acc);
            }
        });
    Ok(out)
}
