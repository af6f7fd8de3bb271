//! Parallel-beam geometry with the conventions of scikit-image `radon(image, theta,
//! circle=True)`: an `N × N` image rotated about pixel `c = (N/2, N/2)` (integer division),
//! `N` detector bins and `N` samples per ray. For detector bin `k` (offset `s = k − c`), ray
//! sample `j` (offset `t = j − c`) and angle `θ` (degrees),
//!
//! ```text
//! row = c − s sin θ + t cos θ,   col = c + s cos θ + t sin θ
//! ```
//!
//! and pixel `(r, col)` projects onto detector coordinate `(col − c) cos θ − (r − c) sin θ`
//! (relative to the centre bin), which FBP interpolates at.
use crate::{OperatorError, Result};

/// Parallel-beam geometry: an `N × N` image, `N` detector bins, angles in degrees.
#[derive(Debug, Clone, PartialEq)]
pub struct ParallelGeometry {
    n: usize,
    angles_deg: Vec<f64>,
    cos: Vec<f64>,
    sin: Vec<f64>,
}

impl ParallelGeometry {
    /// Checks `n ≥ 2`, at least one angle, all angles finite.
    pub fn new(n: usize, angles_deg: Vec<f64>) -> Result<Self> {
        if n < 2 {
            return Err(OperatorError::Invalid(format!(
                "radon: image size n must be at least 2, got {n}"
            )));
        }
        if angles_deg.is_empty() {
            return Err(OperatorError::Invalid(
                "radon: at least one projection angle is required, got none".into(),
            ));
        }
        if let Some((i, a)) = angles_deg.iter().enumerate().find(|(_, a)| !a.is_finite()) {
            return Err(OperatorError::Invalid(format!(
                "radon: projection angle {i} is {a}; angles must be finite (degrees)"
            )));
        }
        let cos = angles_deg.iter().map(|a| a.to_radians().cos()).collect();
        let sin = angles_deg.iter().map(|a| a.to_radians().sin()).collect();
        Ok(ParallelGeometry {
            n,
            angles_deg,
            cos,
            sin,
        })
    }

    /// Image side `N` (also the detector count).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Projection angles in degrees.
    pub fn angles_deg(&self) -> &[f64] {
        &self.angles_deg
    }

    /// Number of projection angles.
    pub fn n_angles(&self) -> usize {
        self.angles_deg.len()
    }

    /// `(cos θ, sin θ)` of angle `a`: the step of a ray's sample coordinates `(row, col)` per
    /// sample, and (as `(∂u/∂col, −∂u/∂row)`) of the detector coordinate per pixel.
    #[inline(always)]
    pub fn cos_sin(&self, a: usize) -> (f64, f64) {
        (self.cos[a], self.sin[a])
    }

    /// Rotation centre `c = N / 2` (integer division, as scikit-image).
    pub fn center(&self) -> f64 {
        (self.n / 2) as f64
    }

    /// Image coordinates `(row, col)` of ray sample `j` of detector bin `k` at angle `a`.
    #[inline(always)]
    pub fn sample_coords(&self, a: usize, k: usize, j: usize) -> (f64, f64) {
        let c = self.center();
        let s = k as f64 - c;
        let t = j as f64 - c;
        let (cs, sn) = (self.cos[a], self.sin[a]);
        (c - s * sn + t * cs, c + s * cs + t * sn)
    }

    /// Detector coordinate (relative to the centre bin) of pixel `(r, col)` at angle `a`, as
    /// used by the FBP back-projection.
    #[inline(always)]
    pub fn pixel_detector_coord(&self, a: usize, r: usize, col: usize) -> f64 {
        let c = self.center();
        let xpr = r as f64 - c;
        let ypr = col as f64 - c;
        ypr * self.cos[a] - xpr * self.sin[a]
    }
}
