//! Fan-beam geometry: a point source on a circle about the isocentre and a curved
//! (equiangular) or flat (equispaced) detector opposite it, over an `N × N` image.
//!
//! Conventions (consistent with [`super::parallel`] where both apply):
//!
//! * **Image.** Pixel `(row, col)` has its centre at
//!   `x = (col − c)·Δ`, `y = (c − row)·Δ` (mm), with `c = N / 2` (integer division, the
//!   rotation centre of the parallel geometry) and `Δ = pixel_spacing_mm`: `x` grows with the
//!   column, `y` upwards (towards row 0). The isocentre is `(x, y) = (0, 0)`, the centre of
//!   pixel `(c, c)`. Between pixel centres the image is the bilinear interpolant
//!   ([`BilinearSample`], zero outside the grid), as in the parallel backends.
//! * **Source.** At source angle `β` (`angles_deg`, degrees) the source sits at
//!   `S(β) = D·(−sin β, cos β)` with `D = source_to_isocenter_mm`: at `β = 0` above the image
//!   (on the side of row 0), moving counter-clockwise (from `+y` towards `−x`) as `β` grows.
//!   The central ray points along `d₀ = (sin β, −cos β)`; the detector axis is
//!   `e_u = (cos β, sin β)` (`+x` at `β = 0`).
//! * **Detector.** Bin `k` (`0 ≤ k < n_detectors`) sits at `u_k = (k − (n − 1)/2 + o)` pitches
//!   from the foot of the central ray (`o = detector_offset`, in bins: the detector is shifted
//!   by `o` bins along `+e_u`, so the central ray meets bin `(n − 1)/2 − o`). Curved detector:
//!   the pitch is an angle (`detector_pitch` in degrees), bin `k` sees fan angle
//!   `γ_k = u_k·pitch`. Flat detector: the pitch is a length on the detector
//!   (`detector_pitch` in mm, at distance `source_to_detector_mm` from the source), and
//!   `γ_k = atan(u_k·pitch / source_to_detector_mm)`. The ray of `(β, k)` has direction
//!   `cos γ_k d₀ + sin γ_k e_u = (sin(β + γ_k), −cos(β + γ_k))`: it is the parallel-beam line
//!   `θ = β + γ_k`, `s = D sin γ_k` of [`super::parallel`] (`s = x cos θ + y sin θ`), so a
//!   positive `γ` (larger `k`) is a positive parallel-beam detector coordinate.
//! * **Samples.** Each ray is sampled at a fixed step of [`SAMPLE_STEP_PX`] pixels
//!   (`0.5·Δ` mm) on a lattice anchored at the ray's closest point to the isocentre, over the
//!   part of the ray beyond the source where the bilinear interpolant can be non-zero; the
//!   line integral is `Σ_j bilinear(x, sample j) · 0.5·Δ`.
//! * **Units.** Image values per mm (attenuation `μ` in 1/mm) times lengths in mm: sinogram
//!   values are dimensionless line integrals, and fan-beam FBP of a sinogram of `μ` returns
//!   `μ` in 1/mm.
//!
//! The source must lie outside the image square (its circumscribed circle, radius
//! `(c + ½)·√2·Δ` about the isocentre, which is `N·Δ·√2/2` for odd `N` and half a pixel more
//! for even `N` because the isocentre is pixel `N/2`), the detector must lie beyond the
//! isocentre, and the fan must cover the inscribed reconstruction circle of radius `(N/2)·Δ`
//! (the support of FBP, [`super::in_inscribed_circle`]).
use serde::{Deserialize, Serialize};

use super::BilinearSample;
use crate::{OperatorError, Result};

/// Step between the samples of a fan-beam ray, in pixels.
pub const SAMPLE_STEP_PX: f64 = 0.5;

/// Shape of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorShape {
    /// An arc centred on the source: bins equally spaced in fan angle (pitch in degrees).
    Curved,
    /// A line perpendicular to the central ray: bins equally spaced in mm.
    Flat,
}

impl DetectorShape {
    /// `"curved"` or `"flat"`.
    pub fn name(self) -> &'static str {
        match self {
            DetectorShape::Curved => "curved",
            DetectorShape::Flat => "flat",
        }
    }
}

/// A fan-beam acquisition, as written in a configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanGeometryConfig {
    /// Distance `D` from the source to the isocentre (rotation centre), mm.
    pub source_to_isocenter_mm: f64,
    /// Distance from the source to the detector (to the foot of the central ray), mm.
    pub source_to_detector_mm: f64,
    /// Number of detector bins.
    pub n_detectors: usize,
    /// `curved` (equiangular) or `flat` (equispaced).
    pub detector: DetectorShape,
    /// Bin pitch: degrees of fan angle for a curved detector, mm on the detector for a flat one.
    pub detector_pitch: f64,
    /// Shift of the detector along its axis, in bins (0: the central ray meets the middle bin).
    #[serde(default)]
    pub detector_offset: f64,
    /// Source angles `β` in degrees (any list: full 360° scan, short scan, any subset).
    pub angles_deg: Vec<f64>,
    /// Image side `N` (images are `N × N`).
    pub image_size: usize,
    /// Pixel side, mm.
    pub pixel_spacing_mm: f64,
}

/// The sampling of one ray: sample `j` (for `j_lo ≤ j < j_hi`) lies at image coordinates
/// `(row0 + j·d_row, col0 + j·d_col)` and carries the quadrature weight `step_mm`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FanRaySamples {
    pub row0: f64,
    pub col0: f64,
    pub d_row: f64,
    pub d_col: f64,
    pub j_lo: isize,
    pub j_hi: isize,
    pub step_mm: f64,
}

impl FanRaySamples {
    /// Image coordinates `(row, col)` of sample `j`.
    #[inline(always)]
    pub fn coords(&self, j: isize) -> (f64, f64) {
        let jf = j as f64;
        (self.row0 + jf * self.d_row, self.col0 + jf * self.d_col)
    }

    /// The bilinear footprint of every sample (those touching the grid), with its weights
    /// already multiplied by the step length.
    #[inline(always)]
    pub fn for_each(&self, n: usize, mut f: impl FnMut(&BilinearSample, [f64; 4])) {
        for j in self.j_lo..self.j_hi {
            let (row, col) = self.coords(j);
            let b = BilinearSample::at(row, col);
            if b.touches_grid(n) {
                let w = b.weights().map(|v| v * self.step_mm);
                f(&b, w);
            }
        }
    }
}

/// A validated fan-beam geometry (see the module documentation for the conventions).
#[derive(Debug, Clone, PartialEq)]
pub struct FanGeometry {
    config: FanGeometryConfig,
    cos: Vec<f64>,
    sin: Vec<f64>,
    /// Fan angle `γ_k` of every bin, radians.
    gamma: Vec<f64>,
}

fn invalid(msg: String) -> OperatorError {
    OperatorError::Invalid(format!("fan geometry: {msg}"))
}

fn positive(name: &str, v: f64, unit: &str) -> Result<()> {
    if !v.is_finite() || v <= 0.0 {
        return Err(invalid(format!(
            "{name} must be finite and positive ({unit}), got {v}"
        )));
    }
    Ok(())
}

impl FanGeometry {
    /// Validates `config`: every length and the pitch finite and positive, `image_size ≥ 2`,
    /// `n_detectors ≥ 2`, `detector_offset` finite, the source outside the image's
    /// circumscribed circle, the detector beyond the isocentre
    /// (`source_to_detector_mm > source_to_isocenter_mm`), a curved detector spanning less than
    /// 180°, the fan covering the inscribed circle, and at least one angle, all finite. Errors
    /// name the offending field.
    pub fn new(config: FanGeometryConfig) -> Result<Self> {
        let c = &config;
        positive("source_to_isocenter_mm", c.source_to_isocenter_mm, "mm")?;
        positive("source_to_detector_mm", c.source_to_detector_mm, "mm")?;
        positive("pixel_spacing_mm", c.pixel_spacing_mm, "mm")?;
        let pitch_unit = match c.detector {
            DetectorShape::Curved => "degrees for a curved detector",
            DetectorShape::Flat => "mm for a flat detector",
        };
        positive("detector_pitch", c.detector_pitch, pitch_unit)?;
        if c.image_size < 2 {
            return Err(invalid(format!(
                "image_size must be at least 2, got {}",
                c.image_size
            )));
        }
        if c.n_detectors < 2 {
            return Err(invalid(format!(
                "n_detectors must be at least 2, got {}",
                c.n_detectors
            )));
        }
        if !c.detector_offset.is_finite() {
            return Err(invalid(format!(
                "detector_offset must be finite (bins), got {}",
                c.detector_offset
            )));
        }
        let n = c.image_size;
        let circumscribed = ((n / 2) as f64 + 0.5) * std::f64::consts::SQRT_2 * c.pixel_spacing_mm;
        if c.source_to_isocenter_mm <= circumscribed {
            return Err(invalid(format!(
                "source_to_isocenter_mm = {} mm puts the source inside the image: it must exceed \
                 the circumscribed radius {circumscribed:.4} mm of the {n}×{n} image at \
                 pixel_spacing_mm = {}",
                c.source_to_isocenter_mm, c.pixel_spacing_mm
            )));
        }
        if c.source_to_detector_mm <= c.source_to_isocenter_mm {
            return Err(invalid(format!(
                "source_to_detector_mm = {} mm must exceed source_to_isocenter_mm = {} mm (the \
                 detector lies beyond the isocentre)",
                c.source_to_detector_mm, c.source_to_isocenter_mm
            )));
        }
        if c.detector == DetectorShape::Curved && c.n_detectors as f64 * c.detector_pitch >= 180.0 {
            return Err(invalid(format!(
                "a curved detector of n_detectors = {} bins at detector_pitch = {}° spans \
                 {}°; it must span less than 180°",
                c.n_detectors,
                c.detector_pitch,
                c.n_detectors as f64 * c.detector_pitch
            )));
        }
        if c.angles_deg.is_empty() {
            return Err(invalid(
                "angles_deg must hold at least one source angle, got none".into(),
            ));
        }
        if let Some((i, a)) = c
            .angles_deg
            .iter()
            .enumerate()
            .find(|(_, a)| !a.is_finite())
        {
            return Err(invalid(format!(
                "angles_deg[{i}] is {a}; source angles must be finite (degrees)"
            )));
        }
        let half = (c.n_detectors as f64 - 1.0) / 2.0;
        let gamma: Vec<f64> = (0..c.n_detectors)
            .map(|k| {
                let u = k as f64 - half + c.detector_offset;
                match c.detector {
                    DetectorShape::Curved => (u * c.detector_pitch).to_radians(),
                    DetectorShape::Flat => (u * c.detector_pitch / c.source_to_detector_mm).atan(),
                }
            })
            .collect();
        // The inscribed circle (radius N/2 pixels) seen from the source subtends ±asin(r / D).
        let r_fov = (n / 2) as f64 * c.pixel_spacing_mm;
        let need = (r_fov / c.source_to_isocenter_mm).asin();
        let (g0, g1) = (gamma[0], gamma[c.n_detectors - 1]);
        // Exact coverage (edge bins on the circle's edge) passes despite rounding.
        let slack = need * 1e-9;
        if g0 > -need + slack || g1 < need - slack {
            return Err(invalid(format!(
                "the detector is too narrow: its bins see fan angles {:.4}° to {:.4}°, but the \
                 image's inscribed circle (radius {r_fov} mm) needs ±{:.4}°; increase \
                 n_detectors ({}) or detector_pitch ({}), or reduce |detector_offset| ({})",
                g0.to_degrees(),
                g1.to_degrees(),
                need.to_degrees(),
                c.n_detectors,
                c.detector_pitch,
                c.detector_offset
            )));
        }
        let cos = c.angles_deg.iter().map(|a| a.to_radians().cos()).collect();
        let sin = c.angles_deg.iter().map(|a| a.to_radians().sin()).collect();
        Ok(FanGeometry {
            config,
            cos,
            sin,
            gamma,
        })
    }

    /// The same geometry at other source angles (validated again).
    pub fn with_angles(&self, angles_deg: Vec<f64>) -> Result<Self> {
        FanGeometry::new(FanGeometryConfig {
            angles_deg,
            ..self.config.clone()
        })
    }

    /// The configuration this geometry was built from.
    pub fn config(&self) -> &FanGeometryConfig {
        &self.config
    }

    /// Image side `N`.
    pub fn n(&self) -> usize {
        self.config.image_size
    }

    /// Number of detector bins.
    pub fn n_detectors(&self) -> usize {
        self.config.n_detectors
    }

    /// Number of source angles.
    pub fn n_angles(&self) -> usize {
        self.config.angles_deg.len()
    }

    /// Source angles, degrees.
    pub fn angles_deg(&self) -> &[f64] {
        &self.config.angles_deg
    }

    /// Detector shape.
    pub fn detector(&self) -> DetectorShape {
        self.config.detector
    }

    /// Isocentre pixel index `c = N / 2` (integer division).
    pub fn center(&self) -> f64 {
        (self.n() / 2) as f64
    }

    /// Fan angle `γ_k` of bin `k`, radians.
    #[inline(always)]
    pub fn fan_angle(&self, k: usize) -> f64 {
        self.gamma[k]
    }

    /// Bin position `u_k = k − (n − 1)/2 + detector_offset`, in pitches.
    #[inline(always)]
    pub fn bin_position(&self, k: usize) -> f64 {
        k as f64 - (self.config.n_detectors as f64 - 1.0) / 2.0 + self.config.detector_offset
    }

    /// `(cos β, sin β)` of angle `a`.
    #[inline(always)]
    pub fn cos_sin(&self, a: usize) -> (f64, f64) {
        (self.cos[a], self.sin[a])
    }

    /// Source position `S(β_a) = D·(−sin β, cos β)`, mm.
    #[inline(always)]
    pub fn source_mm(&self, a: usize) -> (f64, f64) {
        let d = self.config.source_to_isocenter_mm;
        (-d * self.sin[a], d * self.cos[a])
    }

    /// Unit direction `(sin(β + γ_k), −cos(β + γ_k))` of the ray of bin `k` at angle `a`.
    #[inline(always)]
    pub fn ray_direction(&self, a: usize, k: usize) -> (f64, f64) {
        let (cg, sg) = (self.gamma[k].cos(), self.gamma[k].sin());
        let (cb, sb) = (self.cos[a], self.sin[a]);
        // cos γ·(sin β, −cos β) + sin γ·(cos β, sin β)
        (cg * sb + sg * cb, -cg * cb + sg * sb)
    }

    /// Image coordinates `(row, col)` of the point `(x, y)` (mm).
    #[inline(always)]
    pub fn mm_to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        let (c, dx) = (self.center(), self.config.pixel_spacing_mm);
        (c - y / dx, c + x / dx)
    }

    /// Centre `(x, y)` (mm) of the point at image coordinates `(row, col)`.
    #[inline(always)]
    pub fn pixel_to_mm(&self, row: f64, col: f64) -> (f64, f64) {
        let (c, dx) = (self.center(), self.config.pixel_spacing_mm);
        ((col - c) * dx, (c - row) * dx)
    }

    /// The samples of the ray of bin `k` at angle `a`: a lattice of step [`SAMPLE_STEP_PX`]
    /// pixels anchored at the ray's closest point to the isocentre, restricted to the part
    /// beyond the source where some bilinear corner lies in the grid
    /// (`−1 < row, col < N`).
    pub fn ray_samples(&self, a: usize, k: usize) -> FanRaySamples {
        let n = self.n() as f64;
        let (sx, sy) = self.source_mm(a);
        let (dx, dy) = self.ray_direction(a, k);
        let spacing = self.config.pixel_spacing_mm;
        let h = SAMPLE_STEP_PX * spacing;
        // Point at parameter t (mm from the source): S + t d; closest to the isocentre at t0.
        let t0 = -(sx * dx + sy * dy);
        let (row0, col0) = self.mm_to_pixel(sx + t0 * dx, sy + t0 * dy);
        let (d_row, d_col) = (-dy * SAMPLE_STEP_PX, dx * SAMPLE_STEP_PX);
        // Lattice index range where −1 < row, col < N (slightly widened; exact tests follow in
        // the bilinear footprint), and t ≥ 0 (beyond the source).
        let (mut lo, mut hi) = ((-t0) / h, f64::INFINITY);
        for (start, step) in [(row0, d_row), (col0, d_col)] {
            let (a_lo, a_hi) = (-1.0 - 1e-9, n + 1e-9);
            if step.abs() < 1e-12 {
                if start <= a_lo || start >= a_hi {
                    lo = f64::INFINITY;
                }
                continue;
            }
            let (j1, j2) = ((a_lo - start) / step, (a_hi - start) / step);
            lo = lo.max(j1.min(j2));
            hi = hi.min(j1.max(j2));
        }
        let (j_lo, j_hi) = if lo.is_finite() && hi.is_finite() && lo < hi {
            (lo.ceil() as isize, hi.floor() as isize + 1)
        } else {
            (0, 0)
        };
        FanRaySamples {
            row0,
            col0,
            d_row,
            d_col,
            j_lo,
            j_hi: j_hi.max(j_lo),
            step_mm: h,
        }
    }

    /// Where the pixel at image coordinates `(row, col)` projects at angle `a`, for the FBP
    /// back-projection: the continuous bin coordinate `k` (bin centres at integers) and the
    /// distance weight — `1 / L²` (mm⁻², `L` the source–pixel distance) for a curved detector,
    /// `1 / U² = (D / L_c)²` (dimensionless, `L_c` the distance along the central ray) for a
    /// flat one (Kak & Slaney 1988, §3.4).
    #[inline(always)]
    pub fn pixel_projection(&self, a: usize, row: f64, col: f64) -> (f64, f64) {
        let (x, y) = self.pixel_to_mm(row, col);
        let (sx, sy) = self.source_mm(a);
        let (vx, vy) = (x - sx, y - sy);
        let (cb, sb) = (self.cos[a], self.sin[a]);
        let along = vx * sb - vy * cb; // v·d₀
        let lat = vx * cb + vy * sb; // v·e_u
        let c = &self.config;
        let centre = (c.n_detectors as f64 - 1.0) / 2.0 - c.detector_offset;
        match c.detector {
            DetectorShape::Curved => {
                let g = lat.atan2(along);
                (
                    g / c.detector_pitch.to_radians() + centre,
                    1.0 / (along * along + lat * lat),
                )
            }
            DetectorShape::Flat => {
                let u = c.source_to_detector_mm * lat / along;
                let r = c.source_to_isocenter_mm / along;
                (u / c.detector_pitch + centre, r * r)
            }
        }
    }
}
