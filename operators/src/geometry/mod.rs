//! Ray geometry of tomographic projection, shared by the Radon backends ([`crate::radon`]), the
//! fan-beam operator ([`crate::fanbeam`]) and the ndarray reference kernels
//! ([`crate::reference::radon`], [`crate::reference::fan`]).
//!
//! * [`parallel`]: the parallel-beam geometry with scikit-image's conventions
//!   ([`ParallelGeometry`]): where the samples of each ray lie and where a pixel projects on
//!   the detector.
//! * [`fan`]: the fan-beam geometry ([`FanGeometry`], built from a serialisable
//!   [`FanGeometryConfig`]): a point source on a circle, a curved (equiangular) or flat
//!   (equispaced) detector, physical units (mm), rays sampled at a fixed step, and the pixel →
//!   detector map with the distance weights of fan-beam FBP. Its image and angle conventions
//!   extend the parallel ones: the ray of fan angle `γ` at source angle `β` is the parallel
//!   line at `θ = β + γ`.
//!
//! What does not depend on the beam shape lives here and both geometries use it: angle grids
//! ([`full_view_angles`], [`sparse_view_indices`]), the inscribed reconstruction circle
//! ([`in_inscribed_circle`]), the bilinear footprint of a ray sample on the pixel grid
//! ([`BilinearSample`]) and linear interpolation along the detector ([`detector_interp`]).
//! Every backend computes its weights through these functions, which is what keeps them on the
//! same discretisation.
pub mod fan;
pub mod parallel;

pub use fan::{DetectorShape, FanGeometry, FanGeometryConfig};
pub use parallel::ParallelGeometry;

use crate::{OperatorError, Result};

/// `n` angles `linspace(0, 180, n, endpoint=false)` in degrees.
pub fn full_view_angles(n_angles: usize) -> Vec<f64> {
    (0..n_angles)
        .map(|i| 180.0 * i as f64 / n_angles as f64)
        .collect()
}

/// Indices of `n_views` angles spread uniformly over a grid of `n_full`:
/// `round(linspace(0, n_full - 1, n_views))` (round half to even, as NumPy; Song et al. 2022).
pub fn sparse_view_indices(n_views: usize, n_full: usize) -> Result<Vec<usize>> {
    if n_views == 0 || n_views > n_full {
        return Err(OperatorError::Invalid(format!(
            "radon: n_views must be in 1..={n_full} (the full angle count), got {n_views}"
        )));
    }
    if n_views == 1 {
        return Ok(vec![0]);
    }
    let step = (n_full - 1) as f64 / (n_views - 1) as f64;
    Ok((0..n_views)
        .map(|i| (i as f64 * step).round_ties_even() as usize)
        .collect())
}

/// Whether pixel `(r, c)` of an `n × n` image lies in the inscribed circle of radius `n / 2`
/// about pixel `(n / 2, n / 2)` (integer division), scikit-image's `circle=True` support.
#[inline(always)]
pub fn in_inscribed_circle(n: usize, r: usize, c: usize) -> bool {
    let radius = (n / 2) as isize;
    let (xr, yc) = (r as isize - radius, c as isize - radius);
    xr * xr + yc * yc <= radius * radius
}

/// The pixels `(r, c)` of [`in_inscribed_circle`], row-major.
pub fn inscribed_circle_pixels(n: usize) -> Vec<(usize, usize)> {
    (0..n)
        .flat_map(|r| (0..n).map(move |c| (r, c)))
        .filter(|&(r, c)| in_inscribed_circle(n, r, c))
        .collect()
}

/// Integer part (floor) and fractional part of `v`, without a libm `floor` call (baseline
/// x86-64 has no rounding instruction); exact for |v| < 2^52 (equal to `v.floor()` and
/// `v - v.floor()`).
#[inline(always)]
pub fn floor_split(v: f64) -> (isize, f64) {
    let i = v as isize;
    let i = if (i as f64) > v { i - 1 } else { i };
    (i, v - i as f64)
}

/// The bilinear footprint of one ray sample at image coordinates `(row, col)`: the top-left
/// pixel `(r0, c0)` of the 2 × 2 neighbourhood and the fractional offsets, so that the sample
/// reads `Σ_q w_q x[r0 + dr_q, c0 + dc_q]` over the corners `q` = 00, 01, 10, 11 (pixels
/// outside the grid count as 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BilinearSample {
    pub r0: isize,
    pub c0: isize,
    pub fr: f64,
    pub fc: f64,
}

impl BilinearSample {
    /// Corner offsets `(dr, dc)` in weight order 00, 01, 10, 11.
    pub const CORNERS: [(isize, isize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

    /// The footprint of the sample at `(row, col)`.
    #[inline(always)]
    pub fn at(row: f64, col: f64) -> Self {
        let (r0, fr) = floor_split(row);
        let (c0, fc) = floor_split(col);
        BilinearSample { r0, c0, fr, fc }
    }

    /// The weights of the corners 00, 01, 10, 11, in f64.
    #[inline(always)]
    pub fn weights(&self) -> [f64; 4] {
        let (fr, fc) = (self.fr, self.fc);
        [
            (1.0 - fr) * (1.0 - fc),
            (1.0 - fr) * fc,
            fr * (1.0 - fc),
            fr * fc,
        ]
    }

    /// Whether at least one corner lies inside an `n × n` grid.
    #[inline(always)]
    pub fn touches_grid(&self, n: usize) -> bool {
        let ni = n as isize;
        self.r0 >= -1 && self.c0 >= -1 && self.r0 < ni && self.c0 < ni
    }

    /// The corners inside an `n × n` grid: `(q, flat index r·n + c)`, `q` indexing
    /// [`Self::weights`].
    #[inline(always)]
    pub fn corners_in_grid(&self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let (ni, r0, c0) = (n as isize, self.r0, self.c0);
        Self::CORNERS
            .into_iter()
            .enumerate()
            .filter_map(move |(q, (dr, dc))| {
                let (r, c) = (r0 + dr, c0 + dc);
                (r >= 0 && c >= 0 && r < ni && c < ni).then(|| (q, r as usize * n + c as usize))
            })
    }
}

/// Linear interpolation at detector coordinate `u` on the samples `0..len` with zero outside
/// (`numpy.interp(u, arange(len), p, left=0, right=0)`): `Some((i0, w))` meaning
/// `(1 − w) p[i0] + w p[i0 + 1]` (`w = 0` when `i0 = len − 1`), `None` outside `[0, len − 1]`.
#[inline(always)]
pub fn detector_interp(u: f64, len: usize) -> Option<(usize, f64)> {
    if u < 0.0 || u > (len - 1) as f64 {
        return None;
    }
    let (i0, w) = floor_split(u);
    Some((i0 as usize, w))
}
