//! Coil-sensitivity estimation from the fully sampled k-space centre (autocalibration).
//!
//! **ESPIRiT** (Uecker et al. 2014, "ESPIRiT — an eigenvalue approach to autocalibrating
//! parallel MRI: where SENSE meets GRAPPA", MRM 71:990), one set of maps, with the conventions
//! and defaults of sigpy's `sigpy.mri.app.EspiritCalib` (v0.1.27):
//!
//! 1. the calibration region: the centred `calib_width`² block of the k-space `y[c, ky, kx]`;
//! 2. the calibration matrix `A` (Hankel): one row per `kernel_width`² window of the region
//!    (stride 1), the `C · kernel_width²` coil-by-window values as columns;
//! 3. its right singular vectors `vₙ` with `σₙ > thresh · σ_max` span the null-space
//!    complement; each row `vₙᴴ` reshaped to `[C, k, k]`, zero-padded to the grid and put
//!    through the centred inverse FFT gives image-domain kernels `Kₙ[c, y, x]`;
//! 4. at each pixel the `C × C` matrix `G = (H W / k²) Σₙ Kₙ Kₙᴴ` has the coil sensitivities as
//!    eigenvector of eigenvalue ≈ 1: `max_iter` power iterations from the all-ones vector,
//!    normalised by the coil-wise 2-norm, give the maps `S` (`Σ_c |S_c|² = 1`) and the top
//!    eigenvalue `λ`;
//! 5. the maps' phase is made relative to coil 0, `S_c ← S_c · conj(S_0)/|S_0|`, and the maps are
//!    cropped to `λ > crop`.
//!
//! The singular vectors come from the Hermitian eigendecomposition `AᴴA = V Σ² Vᴴ` (in f64:
//! `σ > thresh · σ_max ⇔ σ² > thresh² · σ²_max`), since libtorch's SVD driver argument cannot be
//! left unset from Rust.
//!
//! **Low-resolution sum-of-squares maps** ([`sos_maps`]; e.g. Pruessmann et al. 1999, "SENSE"):
//! the calibration region, optionally Hann-windowed, zero-padded to the grid and inverse
//! transformed gives low-resolution coil images `x_c`; `S_c = x_c / √(Σ_c |x_c|²)`.
//!
//! FFTs are centred and orthonormal ([`crate::mri::ifft2c`], fastMRI's and sigpy's convention).
//! K-space is `[C, H, W]` complex, the maps `[C, H, W]` complex of the same precision.
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::mri::{complex_kind, ifft2c, real_kind};
use crate::{OperatorError, Result};

/// Divisors are clamped to this (a normal f32, unlike `f64::MIN_POSITIVE`).
const TINY: f64 = 1e-30;

/// Image-domain kernels computed at once (complex values): bounds the memory of step 3.
const KERNEL_CHUNK_VALUES: i64 = 1 << 24;

/// ESPIRiT settings, with sigpy's `EspiritCalib` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EspiritConfig {
    /// Side of the centred calibration region (24).
    pub calib_width: usize,
    /// Side of the k-space kernel (6).
    pub kernel_width: usize,
    /// Singular values above `thresh · σ_max` are kept (0.02).
    pub thresh: f64,
    /// Maps are zero where the top eigenvalue is at most `crop` (0.95).
    pub crop: f64,
    /// Power iterations per pixel (100).
    pub max_iter: usize,
}

impl Default for EspiritConfig {
    fn default() -> Self {
        Self {
            calib_width: 24,
            kernel_width: 6,
            thresh: 0.02,
            crop: 0.95,
            max_iter: 100,
        }
    }
}

impl EspiritConfig {
    /// Checks the settings against a k-space grid `h × w`.
    pub fn check(&self, h: usize, w: usize) -> Result<()> {
        let bad = |m: String| Err(OperatorError::Invalid(m));
        if self.calib_width == 0 || self.calib_width > h.min(w) {
            return bad(format!(
                "`calib_width` {} must be between 1 and the smaller k-space side {}",
                self.calib_width,
                h.min(w)
            ));
        }
        if self.kernel_width == 0 || self.kernel_width > self.calib_width {
            return bad(format!(
                "`kernel_width` {} must be between 1 and `calib_width` {}",
                self.kernel_width, self.calib_width
            ));
        }
        if !(self.thresh.is_finite() && (0.0..1.0).contains(&self.thresh)) {
            return bad(format!("`thresh` {} must be in [0, 1)", self.thresh));
        }
        if !self.crop.is_finite() || self.crop < 0.0 {
            return bad(format!("`crop` {} must be a number >= 0", self.crop));
        }
        if self.max_iter == 0 {
            return bad("`max_iter` must be at least 1".into());
        }
        Ok(())
    }
}

/// What [`espirit_maps_with_eigenvalues`] returns.
pub struct EspiritMaps {
    /// `[C, H, W]` complex maps (zero where cropped).
    pub maps: Tensor,
    /// `[H, W]` real top eigenvalue of each pixel.
    pub eigenvalues: Tensor,
}

fn check_kspace(what: &str, ksp: &Tensor) -> Result<(i64, i64, i64)> {
    if ksp.dim() != 3 || !ksp.is_complex() {
        return Err(OperatorError::Invalid(format!(
            "{what}: k-space must be a complex tensor [coils, H, W], got {:?} of shape {:?}",
            ksp.kind(),
            ksp.size()
        )));
    }
    let s = ksp.size();
    if s.contains(&0) {
        return Err(OperatorError::Invalid(format!(
            "{what}: k-space shape {s:?} has an empty axis"
        )));
    }
    Ok((s[0], s[1], s[2]))
}

/// Centred crop or zero-pad of the last two axes to `oh × ow` (sigpy's `resize`: input offset
/// `max(i/2 − o/2, 0)`, output offset `max(o/2 − i/2, 0)`, integer halves).
pub fn resize_centre(x: &Tensor, oh: i64, ow: i64) -> Result<Tensor> {
    let mut size = x.size();
    let n = size.len();
    if n < 2 {
        return Err(OperatorError::Invalid(format!(
            "resize: needs at least 2 dimensions, got {size:?}"
        )));
    }
    let (ih, iw) = (size[n - 2], size[n - 1]);
    if (ih, iw) == (oh, ow) {
        return Ok(x.shallow_clone());
    }
    let offsets = |i: i64, o: i64| {
        let is = (i / 2 - o / 2).max(0);
        let os = (o / 2 - i / 2).max(0);
        (is, os, (i - is).min(o - os))
    };
    let (ish, osh, ch) = offsets(ih, oh);
    let (isw, osw, cw) = offsets(iw, ow);
    size[n - 2] = oh;
    size[n - 1] = ow;
    let out = Tensor::f_zeros(size.as_slice(), (x.kind(), x.device()))?;
    let src = x
        .f_narrow(n as i64 - 2, ish, ch)?
        .f_narrow(n as i64 - 1, isw, cw)?;
    out.f_narrow(n as i64 - 2, osh, ch)?
        .f_narrow(n as i64 - 1, osw, cw)?
        .f_copy_(&src)?;
    Ok(out)
}

/// ESPIRiT maps `[C, H, W]` of k-space `ksp` `[C, H, W]` (see the module docs).
pub fn espirit_maps(ksp: &Tensor, cfg: &EspiritConfig) -> Result<Tensor> {
    Ok(espirit_maps_with_eigenvalues(ksp, cfg)?.maps)
}

/// ESPIRiT maps with the top eigenvalue of each pixel (sigpy's `output_eigenvalue=True`).
pub fn espirit_maps_with_eigenvalues(ksp: &Tensor, cfg: &EspiritConfig) -> Result<EspiritMaps> {
    let (c, h, w) = check_kspace("espirit", ksp)?;
    cfg.check(h as usize, w as usize)?;
    let ck = complex_kind("espirit", ksp.kind())?;
    let rk = real_kind("espirit", ksp.kind())?;
    let cw = cfg.calib_width as i64;
    let kw = cfg.kernel_width as i64;
    // Calibration matrix [blocks, C·k²], in f64.
    let calib = resize_centre(&ksp.f_to_kind(Kind::ComplexDouble)?, cw, cw)?;
    let blocks = calib.f_unfold(1, kw, 1)?.f_unfold(2, kw, 1)?; // [C, nb, nb, k, k]
    let mat = blocks
        .f_reshape([c, -1, kw * kw])?
        .f_permute([1, 0, 2])?
        .f_reshape([-1, c * kw * kw])?;
    let gram = mat.f_adjoint()?.f_matmul(&mat)?;
    let (eig, vecs) = gram.f_linalg_eigh("L")?; // ascending eigenvalues σ²
    let sigma2 = eig.f_clamp_min(0.0)?;
    let max = sigma2.f_max()?.f_double_value(&[])?;
    if max.is_nan() || max <= 0.0 {
        return Err(OperatorError::Invalid(
            "espirit: the calibration region of the k-space is all zero (no fully sampled \
             centre?)"
                .into(),
        ));
    }
    let keep = sigma2.f_gt(cfg.thresh * cfg.thresh * max)?;
    // Rows of Vᴴ: conjugated eigenvectors.
    let kernels = vecs
        .f_conj()?
        .f_transpose(0, 1)?
        .f_index_select(0, &keep.f_nonzero()?.f_squeeze_dim(1)?)?
        .f_reshape([-1, c, kw, kw])?
        .f_to_kind(ck)?;
    // G[y, x] = Σₙ Kₙ Kₙᴴ, accumulated over chunks of kernels (the image kernels of all of them
    // at once would take n·C·H·W values).
    let n_kernels = kernels.size()[0];
    let chunk = (KERNEL_CHUNK_VALUES / (c * h * w)).clamp(1, n_kernels);
    let mut gram_px = Tensor::f_zeros([h, w, c, c], (ck, ksp.device()))?;
    for part in kernels.f_split(chunk, 0)? {
        let img = ifft2c(&resize_centre(&part.f_to_device(ksp.device())?, h, w)?)?;
        let g = Tensor::f_einsum("nihw,njhw->hwij", &[&img, &img.f_conj()?], None::<&[i64]>)?;
        gram_px = gram_px.f_add(&g)?;
    }
    let gram_px = gram_px.f_mul_scalar((h * w) as f64 / (kw * kw) as f64)?;
    // Power iterations per pixel from the all-ones vector.
    let mut x = Tensor::f_ones([h, w, c, 1], (ck, ksp.device()))?;
    let mut lambda = Tensor::f_ones([h, w, 1, 1], (rk, ksp.device()))?;
    for _ in 0..cfg.max_iter {
        let y = gram_px.f_matmul(&x)?;
        lambda = y
            .f_abs()?
            .f_square()?
            .f_sum_dim_intlist(Some(&[2i64][..]), true, None)?
            .f_sqrt()?;
        // A pixel with G = 0 stays 0 (sigpy divides 0 by 0 there and crops the NaN away).
        x = y.f_div(&lambda.f_clamp_min(TINY)?)?;
    }
    let maps = x.f_squeeze_dim(3)?.f_permute([2, 0, 1])?; // [C, H, W]
    let lambda = lambda.f_reshape([h, w])?;
    let ref0 = maps.f_get(0)?;
    let mag0 = ref0.f_abs()?;
    let unit = ref0.f_div(&mag0.f_clamp_min(TINY)?)?.f_where_self(
        &mag0.f_gt(0.0)?,
        &Tensor::f_ones([0i64; 0], (ck, ksp.device()))?,
    )?;
    let maps = maps
        .f_mul(&unit.f_conj()?)?
        .f_mul(&lambda.f_gt(cfg.crop)?.f_to_kind(rk)?)?
        .f_contiguous()?;
    Ok(EspiritMaps {
        maps,
        eigenvalues: lambda,
    })
}

/// `sin²(π (n + 1) / (N + 1))`, `n = 0 … N−1`: the Hann window of length `N + 2` without its
/// zero end points, so every calibration line keeps a weight.
fn hann(n: i64, kind: Kind, device: tch::Device) -> Result<Tensor> {
    let t = Tensor::f_arange_start(1, n + 1, (Kind::Double, device))?
        .f_mul_scalar(std::f64::consts::PI / (n + 1) as f64)?
        .f_sin()?
        .f_square()?;
    Ok(t.f_to_kind(kind)?)
}

/// Low-resolution coil images `[C, H, W]`: the centred `calib_width`² k-space block,
/// Hann-windowed in both directions when `hann`, zero-padded to `H × W`, inverse transformed.
pub fn low_resolution_images(
    ksp: &Tensor,
    calib_width: usize,
    hann_window: bool,
) -> Result<Tensor> {
    let (_, h, w) = check_kspace("low-resolution images", ksp)?;
    if calib_width == 0 || calib_width as i64 > h.min(w) {
        return Err(OperatorError::Invalid(format!(
            "`calib_width` {calib_width} must be between 1 and the smaller k-space side {}",
            h.min(w)
        )));
    }
    let cw = calib_width as i64;
    let mut calib = resize_centre(ksp, cw, cw)?;
    if hann_window {
        let rk = real_kind("low-resolution images", ksp.kind())?;
        let win = hann(cw, rk, ksp.device())?;
        let win2 = win.f_unsqueeze(1)?.f_mul(&win.f_unsqueeze(0)?)?;
        calib = calib.f_mul(&win2)?;
    }
    ifft2c(&resize_centre(&calib, h, w)?)
}

/// Low-resolution sum-of-squares maps `S_c = x_c / √(Σ_c |x_c|²)` from
/// [`low_resolution_images`] (0 where all coil images vanish). They carry the image's
/// low-resolution phase: `Σ_c conj(S_c) x_c` is real and non-negative.
pub fn sos_maps(ksp: &Tensor, calib_width: usize, hann_window: bool) -> Result<Tensor> {
    let x = low_resolution_images(ksp, calib_width, hann_window)?;
    let rss = x
        .f_abs()?
        .f_square()?
        .f_sum_dim_intlist(Some(&[0i64][..]), true, None)?
        .f_sqrt()?;
    Ok(x.f_div(&rss.f_clamp_min(TINY)?)?.f_contiguous()?)
}

/// Maps times the low-resolution phase of the coil-combined image, `S_c e^{iφ}` with
/// `φ = ∠ Σ_c conj(S_c) x_c` for the Hann-windowed [`low_resolution_images`] `x_c`: for
/// phase-normalised maps (ESPIRiT's are relative to coil 0) the remaining smooth image phase
/// moves into the maps, so that `y_c = M F (S_c e^{iφ} ρ)` holds with a real, non-negative
/// magnitude image `ρ` (MR image phase is smooth). Pixels where the combination vanishes keep
/// their maps.
pub fn absorb_image_phase(maps: &Tensor, ksp: &Tensor, calib_width: usize) -> Result<Tensor> {
    let x = low_resolution_images(ksp, calib_width, true)?;
    if maps.size() != x.size() {
        return Err(OperatorError::Invalid(format!(
            "coil maps have shape {:?} but the k-space {:?}",
            maps.size(),
            x.size()
        )));
    }
    let maps = maps.f_to_kind(x.kind())?;
    let m = maps
        .f_conj()?
        .f_mul(&x)?
        .f_sum_dim_intlist(Some(&[0i64][..]), true, None)?;
    let mag = m.f_abs()?;
    let one = Tensor::f_ones([0i64; 0], (x.kind(), x.device()))?;
    let phase = m
        .f_div(&mag.f_clamp_min(TINY)?)?
        .f_where_self(&mag.f_gt(0.0)?, &one)?;
    Ok(maps.f_mul(&phase)?.f_contiguous()?)
}
