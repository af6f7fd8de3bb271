//! Filtered back-projection (FBP) for the parallel-beam Radon transform, with the conventions
//! of scikit-image `iradon(sinogram, theta, filter_name=..., circle=True)`.
//!
//! For a sinogram `p(s, θ)` with `n_det` detector bins and `n_angles` angles,
//!
//! ```text
//! x(r, c) = π / (2 · n_angles) · Σ_θ (h * p)(t, θ),   t = (c - N/2) cos θ - (r - N/2) sin θ
//! ```
//!
//! (Kak & Slaney, "Principles of Computerized Tomographic Imaging", 1988, ch. 3). Each
//! projection is zero-padded to the square-diagonal width `D = ceil(√2 · n_det)` (centred, as
//! scikit-image's `_sinogram_circle_to_square`), then to `P = max(64, 2^ceil(log2(2D)))`, and
//! filtered in the Fourier domain with the band-limited ramp of Kak & Slaney eq. 61 (the DFT of
//! the spatial ramp kernel `f[0] = 1/4`, `f[odd k] = -1/(π k)²`), optionally multiplied by a
//! Shepp–Logan, cosine, Hamming or Hann window. The back-projection interpolates the filtered
//! projection linearly at `t` and zeroes pixels outside the inscribed circle.
//!
//! This module holds the padding geometry and filter construction shared by the tensor
//! backends (`pseudo_inverse` of [`crate::radon::ParallelBeamRadon`]) and the ndarray reference
//! path ([`crate::reference::radon::fbp`]).
use std::fmt;
use std::str::FromStr;

use ndarray::Array1;
use ndrustfft::{ndfft, Complex, FftHandler};
use serde::{Deserialize, Serialize};

use crate::{OperatorError, Result};

/// Frequency-domain filter of FBP (the names of scikit-image's `filter_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FbpFilter {
    /// Band-limited ramp `|ω|` (Ram–Lak), scikit-image's default.
    #[default]
    Ramp,
    /// Ramp times `sinc(ω / 2π)` (Shepp & Logan 1974).
    SheppLogan,
    /// Ramp times a cosine window.
    Cosine,
    /// Ramp times a Hamming window.
    Hamming,
    /// Ramp times a Hann window.
    Hann,
}

impl FbpFilter {
    /// All filters, in scikit-image's order.
    pub const ALL: [FbpFilter; 5] = [
        FbpFilter::Ramp,
        FbpFilter::SheppLogan,
        FbpFilter::Cosine,
        FbpFilter::Hamming,
        FbpFilter::Hann,
    ];

    /// The scikit-image `filter_name`.
    pub fn name(self) -> &'static str {
        match self {
            FbpFilter::Ramp => "ramp",
            FbpFilter::SheppLogan => "shepp-logan",
            FbpFilter::Cosine => "cosine",
            FbpFilter::Hamming => "hamming",
            FbpFilter::Hann => "hann",
        }
    }
}

impl fmt::Display for FbpFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FbpFilter {
    type Err = OperatorError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "ramp" | "ram-lak" => Ok(FbpFilter::Ramp),
            "shepp-logan" | "shepplogan" => Ok(FbpFilter::SheppLogan),
            "cosine" => Ok(FbpFilter::Cosine),
            "hamming" => Ok(FbpFilter::Hamming),
            "hann" | "hanning" => Ok(FbpFilter::Hann),
            _ => Err(OperatorError::Invalid(format!(
                "unknown FBP filter {s:?}; expected one of ramp, shepp-logan, cosine, hamming, hann"
            ))),
        }
    }
}

/// Padding geometry of FBP for `n_det` detector bins (scikit-image, `circle=True`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FbpPadding {
    /// Detector bins of the measured sinogram.
    pub n_det: usize,
    /// `D = ceil(√2 · n_det)`: width of the sinogram padded to the square's diagonal.
    pub diagonal: usize,
    /// Zeros placed before detector bin 0 in the diagonal frame: `D/2 - n_det/2`.
    pub pad_before: usize,
    /// FFT length `P = max(64, 2^ceil(log2(2D)))`.
    pub fft_len: usize,
}

impl FbpPadding {
    /// The padding scikit-image's `iradon(..., circle=True)` uses for `n_det` bins.
    pub fn new(n_det: usize) -> Self {
        let diagonal = (std::f64::consts::SQRT_2 * n_det as f64).ceil() as usize;
        let pad_before = diagonal / 2 - n_det / 2;
        let fft_len = (2 * diagonal).next_power_of_two().max(64);
        FbpPadding {
            n_det,
            diagonal,
            pad_before,
            fft_len,
        }
    }
}

/// scikit-image's `_get_fourier_filter(size, filter_name)`: the full length-`size` real
/// frequency response (DFT order, not shifted). `size` must be even.
pub fn fourier_filter(size: usize, filter: FbpFilter) -> Vec<f64> {
    use std::f64::consts::PI;
    // Spatial ramp kernel: f[0] = 1/4, f[k] = -1/(π n_k)² at odd k with n_k = min(k, size - k).
    let mut f = Array1::<Complex<f64>>::zeros(size);
    f[0] = Complex::new(0.25, 0.0);
    for k in (1..size).step_by(2) {
        let nk = k.min(size - k) as f64;
        f[k] = Complex::new(-1.0 / (PI * nk).powi(2), 0.0);
    }
    let mut spectrum = Array1::<Complex<f64>>::zeros(size);
    let handler = FftHandler::<f64>::new(size);
    ndfft(&f, &mut spectrum, &handler, 0);
    let mut h: Vec<f64> = spectrum.iter().map(|z| 2.0 * z.re).collect();
    // fftshift of a length-`size` window w: shifted[k] = w[(k + size/2) % size].
    let shifted = |k: usize| (k + size / 2) % size;
    let denom = (size - 1) as f64;
    match filter {
        FbpFilter::Ramp => {}
        FbpFilter::SheppLogan => {
            for (k, hk) in h.iter_mut().enumerate().skip(1) {
                // numpy fftfreq(size)[k]
                let freq = if k < size.div_ceil(2) {
                    k as f64 / size as f64
                } else {
                    (k as f64 - size as f64) / size as f64
                };
                let omega = PI * freq;
                *hk *= omega.sin() / omega;
            }
        }
        FbpFilter::Cosine => {
            for (k, hk) in h.iter_mut().enumerate() {
                *hk *= (PI * shifted(k) as f64 / size as f64).sin();
            }
        }
        FbpFilter::Hamming => {
            for (k, hk) in h.iter_mut().enumerate() {
                *hk *= 0.54 - 0.46 * (2.0 * PI * shifted(k) as f64 / denom).cos();
            }
        }
        FbpFilter::Hann => {
            for (k, hk) in h.iter_mut().enumerate() {
                *hk *= 0.5 - 0.5 * (2.0 * PI * shifted(k) as f64 / denom).cos();
            }
        }
    }
    h
}

/// The half-spectrum filter (`size/2 + 1` values) that, applied after a real FFT, gives exactly
/// scikit-image's `real(ifft(fft(p) * H))`: the even part `(H[k] + H[-k]) / 2` of `H` (the odd
/// part of a real-valued `H` only contributes to the discarded imaginary part).
pub fn half_spectrum_filter(size: usize, filter: FbpFilter) -> Vec<f64> {
    let h = fourier_filter(size, filter);
    (0..=size / 2)
        .map(|k| 0.5 * (h[k] + h[(size - k) % size]))
        .collect()
}

/// Back-projection scale of scikit-image: `π / (2 · n_angles)`.
pub fn fbp_scale(n_angles: usize) -> f64 {
    std::f64::consts::PI / (2.0 * n_angles as f64)
}
