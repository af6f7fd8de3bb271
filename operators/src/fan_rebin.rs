//! Fan-to-parallel rebinning: the fan-beam sinogram resampled onto the parallel-beam geometry
//! of [`crate::radon::ParallelBeamRadon`], a second route to reconstruction (parallel FBP, or a
//! model trained on parallel-beam sinograms).
//!
//! The fan ray `(β, γ)` is the parallel line `θ = β + γ`, `s = D sin γ`
//! ([`crate::geometry::fan`]), and that line is also the ray `(β + π + 2γ, −γ)`. For a parallel
//! line `(θ, s)` with `|s| < D`, `γ = asin(s / D)`, and the two fan rays that measure it are
//!
//! ```text
//! (β₁, γ) = (θ − γ, γ)          and          (β₂, −γ) = (θ + π + γ, −γ)
//! ```
//!
//! Each is read from the fan sinogram by linear interpolation in the source angle (between
//! the two neighbouring measured angles, on the circle) and along the detector
//! ([`detector_interp`], zero beyond it); a candidate counts only where its two neighbouring
//! angles are at most 1.5 × the median angular gap apart (so a short scan's missing arc is not
//! bridged), and the rebinned value is the mean of the candidates that count (0 when none does).
//!
//! The parallel detector is that of [`crate::geometry::parallel`]: `N` bins at
//! `s = (k − N/2) · pixel_spacing_mm`. Values are divided by `pixel_spacing_mm`, since the
//! parallel-beam operator measures lengths in pixels: the rebinned sinogram of the fan
//! projection of `x` approximates `ParallelBeamRadon::forward(x)`.
use ndarray::{Array3, ArrayView3};

use crate::geometry::{detector_interp, DetectorShape, FanGeometry};
use crate::{OperatorError, Result};

/// Rebins fan sinograms `[M, n_detectors, n_angles]` of `geom` onto the parallel-beam
/// geometry with `N = geom.n()` bins at the angles `parallel_angles_deg`: `[M, N, A_par]`.
pub fn rebin_to_parallel(
    geom: &FanGeometry,
    fan: ArrayView3<f64>,
    parallel_angles_deg: &[f64],
) -> Result<Array3<f64>> {
    let s = fan.shape();
    if s[1] != geom.n_detectors() || s[2] != geom.n_angles() {
        return Err(OperatorError::Shape {
            op: "fan rebinning".into(),
            what: "fan sinogram".into(),
            expected: format!("[M, {}, {}]", geom.n_detectors(), geom.n_angles()),
            actual: format!("{s:?}"),
        });
    }
    if let Some((i, a)) = parallel_angles_deg
        .iter()
        .enumerate()
        .find(|(_, a)| !a.is_finite())
    {
        return Err(OperatorError::Invalid(format!(
            "fan rebinning: parallel angle {i} is {a}; angles must be finite (degrees)"
        )));
    }
    let (m, n, nd) = (s[0], geom.n(), geom.n_detectors());
    let cfg = geom.config();
    let (d, spacing) = (cfg.source_to_isocenter_mm, cfg.pixel_spacing_mm);
    let angles = AngleInterp::new(geom.angles_deg());
    let centre = (nd as f64 - 1.0) / 2.0 - cfg.detector_offset;
    let bin_of = |g: f64| match cfg.detector {
        DetectorShape::Curved => g / cfg.detector_pitch.to_radians() + centre,
        DetectorShape::Flat => cfg.source_to_detector_mm * g.tan() / cfg.detector_pitch + centre,
    };
    let mut out = Array3::<f64>::zeros((m, n, parallel_angles_deg.len()));
    let c = (n / 2) as f64;
    for (ai, theta) in parallel_angles_deg.iter().enumerate() {
        let theta = theta.to_radians();
        for k in 0..n {
            let sk = (k as f64 - c) * spacing;
            if sk.abs() >= d {
                continue;
            }
            let g = (sk / d).asin();
            // Interpolation taps (bin, angle, weight) of both fan rays on this line.
            let mut taps: Vec<(usize, usize, f64)> = Vec::with_capacity(8);
            let mut count = 0usize;
            for (beta, gamma) in [(theta - g, g), (theta + std::f64::consts::PI + g, -g)] {
                let (Some(aw), Some((i0, t))) = (
                    angles.at(beta.to_degrees()),
                    detector_interp(bin_of(gamma), nd),
                ) else {
                    continue;
                };
                count += 1;
                for (a, wa) in aw {
                    taps.push((i0, a, wa * (1.0 - t)));
                    if t != 0.0 {
                        taps.push((i0 + 1, a, wa * t));
                    }
                }
            }
            if count == 0 {
                continue;
            }
            let scale = 1.0 / (count as f64 * spacing);
            for mi in 0..m {
                let mut v = 0.0;
                for &(bin, a, w) in &taps {
                    v += w * fan[[mi, bin, a]];
                }
                out[[mi, k, ai]] = v * scale;
            }
        }
    }
    Ok(out)
}

/// Linear interpolation between the measured source angles, on the circle.
struct AngleInterp {
    /// Angle indices sorted by angle mod 360°, and the sorted wrapped angles.
    order: Vec<usize>,
    wrapped: Vec<f64>,
    /// Largest gap (degrees) bridged by interpolation: 1.5 × the median gap.
    max_gap: f64,
}

impl AngleInterp {
    fn new(angles_deg: &[f64]) -> Self {
        let mut order: Vec<usize> = (0..angles_deg.len()).collect();
        let w: Vec<f64> = angles_deg.iter().map(|a| a.rem_euclid(360.0)).collect();
        order.sort_by(|&i, &j| w[i].total_cmp(&w[j]));
        let wrapped: Vec<f64> = order.iter().map(|&i| w[i]).collect();
        let na = wrapped.len();
        let mut gaps: Vec<f64> = (0..na)
            .map(|i| (wrapped[(i + 1) % na] - wrapped[i]).rem_euclid(360.0))
            .collect();
        gaps.sort_by(f64::total_cmp);
        let max_gap = if na < 2 { 0.0 } else { 1.5 * gaps[na / 2] };
        AngleInterp {
            order,
            wrapped,
            max_gap,
        }
    }

    /// The two measured angles around `deg` (indices into the angle list) and their weights,
    /// or `None` when they are more than `max_gap` apart.
    fn at(&self, deg: f64) -> Option<[(usize, f64); 2]> {
        let na = self.wrapped.len();
        if na < 2 {
            return None;
        }
        let x = deg.rem_euclid(360.0);
        // First sorted angle above x (wrapping to 0).
        let hi = self.wrapped.partition_point(|&a| a <= x) % na;
        let lo = (hi + na - 1) % na;
        let gap = (self.wrapped[hi] - self.wrapped[lo]).rem_euclid(360.0);
        if gap > self.max_gap || gap == 0.0 {
            return None;
        }
        let t = (x - self.wrapped[lo]).rem_euclid(360.0) / gap;
        Some([(self.order[lo], 1.0 - t), (self.order[hi], t)])
    }
}
