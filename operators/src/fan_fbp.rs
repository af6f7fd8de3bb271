//! Fan-beam filtered back-projection (Kak & Slaney, "Principles of Computerized Tomographic
//! Imaging", 1988, §3.4) for the geometry of [`crate::geometry::fan`], with the ramp-family
//! filters of [`crate::fbp`] and Parker weights for short scans.
//!
//! With `D = source_to_isocenter_mm`, bin fan angles `γ_k` and view weights `c_a(k)`:
//!
//! ```text
//! R'_a[k] = c_a(k) · w_k · y[k, a]                      (pre-weighting)
//! Q_a     = R'_a ⊛ h / (2δ)                             (filtering along the detector)
//! f(x)    = Σ_a W_a(x) · Q_a(k_a(x))                    (weighted back-projection)
//! ```
//!
//! * Curved (equiangular) detector: `w_k = D cos γ_k` (mm), `δ = α` the angular pitch in
//!   radians, `h[m] = h_ramp[m] · (m α / sin(m α))²`, and `W = 1 / L²` with `L` the source–pixel
//!   distance (Kak & Slaney eqs. 3.114–3.120).
//! * Flat (equispaced) detector: `w_k = D / √(D² + s_k²) = cos γ_k`, with `s_k` the bin position
//!   scaled to a virtual detector through the isocentre, `δ = a = pitch · D / source_to_detector`
//!   (mm), `h = h_ramp`, and `W = 1 / U² = (D / L_c)²` with `L_c` the pixel's distance from the
//!   source along the central ray (eqs. 3.140–3.151).
//!
//! `h_ramp` is the spatial kernel of a [`FbpFilter`] at unit sampling: the band-limited ramp
//! `h[0] = 1/4`, `h[odd m] = −1/(π m)²` (Kak & Slaney eq. 3.61) for [`FbpFilter::Ramp`], and the
//! inverse DFT of scikit-image's windowed response (halved) for the others. `k_a(x)` is the
//! pixel's continuous bin coordinate ([`FanGeometry::pixel_projection`]); `Q_a` is interpolated
//! linearly (zero beyond the detector), and pixels outside the inscribed circle are 0. Each
//! projection is zero-padded to `P = max(64, 2^⌈log₂ 2n⌉)` bins, so that the FFT convolution is
//! linear.
//!
//! View weights `c_a(k)`, chosen by [`ScanWeighting`]:
//! * full scan: `c_a = Δβ_a`, half the circular gap to the two neighbouring source angles
//!   (`2π / A` on a uniform 360° grid); the ½ in `1/(2δ)` accounts for every line being
//!   measured twice.
//! * limited angle (one arc of `Δ < 180°`, [`ScanWeighting::Auto`] only): `c_a = 2 Δβ_a`
//!   with `Δβ_a` the step along the arc. An arc under `180° − 2 γ_max` measures every line at
//!   most once, which this weight counts as a short scan counts it (Parker's `w = 1`); the
//!   lines it misses stay missing (no weighting completes the data). The three reconstructions
//!   of the thirds of a full scan then add up to twice its full-scan reconstruction.
//! * Parker (short scan over `[β_s, β_s + Δ]` with `Δ ≥ 180°`): `c_a(k) = 2 Δβ_a · w(β_a − β_s, γ_k)`
//!   with the weights of Parker ("Optimal short scan convolution reconstruction for fan-beam
//!   CT", Med. Phys. 9, 1982), generalised to over-scans by taking `δ = (Δ − π)/2` as the half
//!   fan angle (Wesarg et al., "Parker weights revisited", Med. Phys. 29, 2002):
//!
//!   ```text
//!   w = sin²(π/4 · β / (δ − γ))                0 ≤ β < 2δ − 2γ
//!       1                                       2δ − 2γ ≤ β ≤ π − 2γ
//!       sin²(π/4 · (π + 2δ − β) / (δ + γ))      π − 2γ < β ≤ π + 2δ
//!   ```
//!
//!   With the convention `θ = β + γ` the ray `(β, γ)` is measured again at
//!   `(β + π + 2γ, −γ)`, and the two weights sum to 1.
use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::fbp::{half_spectrum_filter, FbpFilter};
use crate::geometry::{DetectorShape, FanGeometry};
use crate::{OperatorError, Result};

/// How fan-beam FBP weights the views (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanWeighting {
    /// Parker when the source angles form one arc — their largest circular gap is more than
    /// 1.5 × the median gap — of at least 180°; for an arc under 180° (limited angle, which no
    /// weighting makes complete) each view weighted by twice its step along the arc, every
    /// line counted once; the full-scan quadrature otherwise (full circles, uniformly spread
    /// sparse views).
    #[default]
    Auto,
    /// `c_a = Δβ_a` (circular gaps).
    FullScan,
    /// Parker weights over the arc of the source angles (an error when it spans < 180°).
    Parker,
}

/// Precomputed fan-beam FBP for one geometry: FFT length, filter and view weights.
#[derive(Debug, Clone, PartialEq)]
pub struct FanFbp {
    fft_len: usize,
    half_spectrum: Vec<f64>,
    view_weights: Vec<f64>,
    parker: bool,
}

impl FanFbp {
    /// The FBP of `geom` with `filter` and `weighting`.
    pub fn new(geom: &FanGeometry, filter: FbpFilter, weighting: ScanWeighting) -> Result<Self> {
        let nd = geom.n_detectors();
        let p = fft_len(nd);
        let half_spectrum = filter_half_spectrum(geom, filter, p);
        let arc = angle_arc(geom.angles_deg());
        let parker = match weighting {
            ScanWeighting::FullScan => None,
            ScanWeighting::Auto => arc.clone().filter(|a| a.is_short_scan && a.range >= PI),
            ScanWeighting::Parker => match arc.clone() {
                Some(a) if a.range >= PI => Some(a),
                _ => {
                    return Err(OperatorError::Invalid(format!(
                        "fanbeam fbp: Parker weights need the source angles to span one arc of \
                         at least 180°, got a span of {:.3}°",
                        arc.map_or(0.0, |a| a.range.to_degrees())
                    )))
                }
            },
        };
        let na = geom.n_angles();
        let d = geom.config().source_to_isocenter_mm;
        let mut view_weights = vec![0.0; nd * na];
        // Auto on an arc under 180°: the arc's steps, each line counted once.
        let limited = match (&parker, weighting, &arc) {
            (None, ScanWeighting::Auto, Some(a)) if a.is_short_scan => Some(a.arc_steps.clone()),
            _ => None,
        };
        let dbeta = match (&parker, &limited) {
            (Some(a), _) => a.arc_steps.clone(),
            (None, Some(steps)) => steps.clone(),
            (None, None) => circular_steps(geom.angles_deg()),
        };
        for k in 0..nd {
            let g = geom.fan_angle(k);
            let pre = match geom.detector() {
                DetectorShape::Curved => d * g.cos(),
                DetectorShape::Flat => g.cos(),
            };
            for a in 0..na {
                let c = match &parker {
                    Some(arc) => {
                        let b = (geom.angles_deg()[a] - arc.start_deg).rem_euclid(360.0);
                        2.0 * dbeta[a] * parker_weight(b.to_radians(), g, (arc.range - PI) / 2.0)
                    }
                    None if limited.is_some() => 2.0 * dbeta[a],
                    None => dbeta[a],
                };
                view_weights[k * na + a] = pre * c;
            }
        }
        Ok(FanFbp {
            fft_len: p,
            half_spectrum,
            view_weights,
            parker: parker.is_some(),
        })
    }

    /// FFT length `P` of the zero-padded projections.
    pub fn fft_len(&self) -> usize {
        self.fft_len
    }

    /// Real filter response on the `P/2 + 1` frequencies of a real FFT, including `1/(2δ)`.
    pub fn half_spectrum(&self) -> &[f64] {
        &self.half_spectrum
    }

    /// `c_a(k) · w_k` for every bin `k` and view `a`, at index `k · n_angles + a` (the
    /// sinogram layout).
    pub fn view_weights(&self) -> &[f64] {
        &self.view_weights
    }

    /// Whether Parker weights are applied.
    pub fn uses_parker(&self) -> bool {
        self.parker
    }
}

/// FFT length for `n_det` bins: `max(64, 2^⌈log₂ 2 n_det⌉)` (linear convolution).
pub fn fft_len(n_det: usize) -> usize {
    (2 * n_det).next_power_of_two().max(64)
}

/// The filter of the module documentation as a real half spectrum of length `P/2 + 1`.
fn filter_half_spectrum(geom: &FanGeometry, filter: FbpFilter, p: usize) -> Vec<f64> {
    let nd = geom.n_detectors();
    let hs = half_spectrum_filter(p, filter);
    let c = geom.config();
    let (delta, alpha) = match c.detector {
        DetectorShape::Curved => {
            let a = c.detector_pitch.to_radians();
            (a, Some(a))
        }
        DetectorShape::Flat => (
            c.detector_pitch * c.source_to_isocenter_mm / c.source_to_detector_mm,
            None,
        ),
    };
    // Spatial kernel at |m| < n_det (the only lags a length-n_det linear convolution uses):
    // h[m] = IDFT(H)[m] / 2 with H even, then the equiangular factor (mα / sin mα)².
    let kernel: Vec<f64> = (0..nd)
        .map(|m| {
            let mut s = hs[0] + if m % 2 == 0 { hs[p / 2] } else { -hs[p / 2] };
            for (k, hk) in hs.iter().enumerate().take(p / 2).skip(1) {
                s += 2.0 * hk * (2.0 * PI * (k * m) as f64 / p as f64).cos();
            }
            let h = s / p as f64 / 2.0;
            match alpha {
                Some(a) if m > 0 => {
                    let x = m as f64 * a;
                    h * (x / x.sin()).powi(2)
                }
                _ => h,
            }
        })
        .collect();
    let scale = 1.0 / (2.0 * delta);
    (0..=p / 2)
        .map(|k| {
            let mut s = kernel[0];
            for (m, hm) in kernel.iter().enumerate().skip(1) {
                s += 2.0 * hm * (2.0 * PI * (k * m) as f64 / p as f64).cos();
            }
            s * scale
        })
        .collect()
}

/// Whether the source angles spread around the whole circle: at least two angles and no
/// circular gap larger than 1.5 × the median gap (a full or uniformly sparse scan, not one
/// arc).
pub fn covers_full_circle(angles_deg: &[f64]) -> bool {
    angle_arc(angles_deg).is_some_and(|a| !a.is_short_scan)
}

/// Half the circular gap to the two neighbouring angles of each source angle, radians
/// (duplicates share their gap).
fn circular_steps(angles_deg: &[f64]) -> Vec<f64> {
    let na = angles_deg.len();
    if na == 1 {
        return vec![2.0 * PI];
    }
    let (order, wrapped) = sorted_wrapped(angles_deg);
    let mut out = vec![0.0; na];
    for i in 0..na {
        let prev = (wrapped[i] - wrapped[(i + na - 1) % na]).rem_euclid(360.0);
        let next = (wrapped[(i + 1) % na] - wrapped[i]).rem_euclid(360.0);
        out[order[i]] = ((prev + next) / 2.0).to_radians();
    }
    out
}

/// Angle indices sorted by angle mod 360°, and the sorted wrapped angles.
fn sorted_wrapped(angles_deg: &[f64]) -> (Vec<usize>, Vec<f64>) {
    let mut order: Vec<usize> = (0..angles_deg.len()).collect();
    let w: Vec<f64> = angles_deg.iter().map(|a| a.rem_euclid(360.0)).collect();
    order.sort_by(|&i, &j| w[i].total_cmp(&w[j]));
    let wrapped = order.iter().map(|&i| w[i]).collect();
    (order, wrapped)
}

/// The arc the source angles cover when read as one scan.
#[derive(Debug, Clone)]
struct Arc {
    /// First angle of the arc (after the largest circular gap), degrees.
    start_deg: f64,
    /// From the first to the last angle, radians.
    range: f64,
    /// Whether the largest gap exceeds 1.5 × the median gap.
    is_short_scan: bool,
    /// Quadrature step of each angle along the arc (the largest gap replaced by the median gap).
    arc_steps: Vec<f64>,
}

fn angle_arc(angles_deg: &[f64]) -> Option<Arc> {
    let na = angles_deg.len();
    if na < 2 {
        return None;
    }
    let (order, wrapped) = sorted_wrapped(angles_deg);
    let gaps: Vec<f64> = (0..na)
        .map(|i| (wrapped[(i + 1) % na] - wrapped[i]).rem_euclid(360.0))
        .map(|g| if g == 0.0 && na > 1 { 0.0 } else { g })
        .collect();
    let (imax, gmax) = gaps
        .iter()
        .cloned()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort_by(f64::total_cmp);
    let median = sorted_gaps[na / 2];
    let mut arc_gaps = gaps.clone();
    arc_gaps[imax] = median;
    let mut arc_steps = vec![0.0; na];
    for i in 0..na {
        let s = (arc_gaps[(i + na - 1) % na] + arc_gaps[i]) / 2.0;
        arc_steps[order[i]] = s.to_radians();
    }
    Some(Arc {
        start_deg: wrapped[(imax + 1) % na],
        range: (360.0 - gmax).to_radians(),
        is_short_scan: gmax > 1.5 * median,
        arc_steps,
    })
}

/// Parker's weight at arc position `b` (radians from the arc start), fan angle `g` and half
/// fan angle `delta`.
pub fn parker_weight(b: f64, g: f64, delta: f64) -> f64 {
    let s2 = |v: f64| v.sin().powi(2);
    if b < 0.0 || b > PI + 2.0 * delta {
        0.0
    } else if b < 2.0 * delta - 2.0 * g {
        s2(PI / 4.0 * b / (delta - g))
    } else if b <= PI - 2.0 * g {
        1.0
    } else {
        s2(PI / 4.0 * (PI + 2.0 * delta - b) / (delta + g).max(1e-300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Conjugate rays `(β, γ)` and `(β + π + 2γ, −γ)` have Parker weights summing to 1, for
    /// `|γ| < δ` (at `|γ| = δ` the transition has zero width).
    #[test]
    fn parker_weights_of_conjugate_rays_sum_to_one() {
        let delta = 0.3;
        for i in 1..40 {
            let g = -delta + 2.0 * delta * i as f64 / 40.0;
            for j in 0..=50 {
                let b = (PI + 2.0 * delta) * j as f64 / 50.0;
                let b2 = b + PI + 2.0 * g;
                let b2 = if b2 > PI + 2.0 * delta {
                    b2 - 2.0 * PI // the conjugate lies before β
                } else {
                    b2
                };
                if !(0.0..=PI + 2.0 * delta).contains(&b2) {
                    // Only one of the two is measured: its weight is 1.
                    assert!((parker_weight(b, g, delta) - 1.0).abs() < 1e-12, "{b} {g}");
                    continue;
                }
                let s = parker_weight(b, g, delta) + parker_weight(b2, -g, delta);
                assert!((s - 1.0).abs() < 1e-12, "β={b} γ={g}: {s}");
            }
        }
    }

    #[test]
    fn arcs_of_full_short_and_sparse_scans() {
        let full: Vec<f64> = (0..360).map(|i| i as f64).collect();
        let a = angle_arc(&full).unwrap();
        assert!(!a.is_short_scan);
        let steps = circular_steps(&full);
        assert!(steps.iter().all(|s| (s - 1f64.to_radians()).abs() < 1e-12));
        let short: Vec<f64> = (0..=220).map(|i| 100.0 + i as f64).collect();
        let a = angle_arc(&short).unwrap();
        assert!(a.is_short_scan);
        assert!((a.start_deg - 100.0).abs() < 1e-12);
        assert!((a.range.to_degrees() - 220.0).abs() < 1e-9);
        let sparse: Vec<f64> = (0..23).map(|i| i as f64 * 360.0 / 23.0).collect();
        assert!(!angle_arc(&sparse).unwrap().is_short_scan);
    }
}
