//! Undersampled MRI forward operators: single-coil `A = M F` and multi-coil SENSE `A = M F S`.
//!
//! `F` is the centred orthonormal 2-D DFT over the last two axes, with fastMRI's conventions
//! (Zbontar et al. 2018, `fastmri.fft2c`):
//!
//! ```text
//! fft2c(x)  = fftshift(fft2(ifftshift(x), norm = "ortho"))
//! ifft2c(k) = fftshift(ifft2(ifftshift(k), norm = "ortho"))
//! ```
//!
//! so the DC coefficient sits at `(H/2, W/2)` and `F` is unitary (`Fᴴ = F⁻¹`). `M` is a 0/1
//! k-space mask ([`crate::masks::SamplingMask`]). **Measurements are the full k-space grid times
//! the mask** (complex tensors `[B, C, H, W]`, zeros where not sampled), so shapes never depend
//! on the mask. This is the operator of Song et al. 2022 ("Solving inverse problems in medical
//! imaging with score-based generative models", ICLR) for MRI, with `T = F` and `Λ = M`.
//!
//! Image domain ([`ImageDomain`]): magnitude MR images are real, so by default the operator maps
//! *real* images to complex k-space and its adjoint with respect to the real inner product
//! `Re⟨·,·⟩` is `Re(Fᴴ M y)`; [`ImageDomain::Complex`] keeps complex images and returns the
//! complex adjoint `Fᴴ M y`.
//!
//! SENSE (Pruessmann et al. 1999, "SENSE: sensitivity encoding for fast MRI"):
//! `A x = (M F (S_c x))_c` for coil sensitivities `S_c`, `Aᴴ y = Σ_c conj(S_c) Fᴴ M y_c`.
//! [`synthetic_coil_maps`] makes smooth seeded maps normalised to `Σ_c |S_c|² = 1`.
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::masks::{SamplingMask, TensorCache};
use crate::{check_batch_shape, Decomposed, LinearOperator, OperatorError, Result};

/// The complex kind matching a real or complex floating kind.
pub(crate) fn complex_kind(op: &str, kind: Kind) -> Result<Kind> {
    match kind {
        Kind::Float | Kind::ComplexFloat => Ok(Kind::ComplexFloat),
        Kind::Double | Kind::ComplexDouble => Ok(Kind::ComplexDouble),
        other => Err(OperatorError::Invalid(format!(
            "{op}: tensors must be f32, f64, complex64 or complex128, got {other:?}"
        ))),
    }
}

/// The real kind matching a real or complex floating kind.
pub(crate) fn real_kind(op: &str, kind: Kind) -> Result<Kind> {
    match kind {
        Kind::Float | Kind::ComplexFloat => Ok(Kind::Float),
        Kind::Double | Kind::ComplexDouble => Ok(Kind::Double),
        other => Err(OperatorError::Invalid(format!(
            "{op}: tensors must be f32, f64, complex64 or complex128, got {other:?}"
        ))),
    }
}

fn check_rank(what: &str, t: &Tensor) -> Result<()> {
    if t.dim() < 2 {
        return Err(OperatorError::Invalid(format!(
            "{what}: needs at least 2 dimensions (H, W), got shape {:?}",
            t.size()
        )));
    }
    Ok(())
}

/// Centred orthonormal 2-D FFT over the last two axes (fastMRI `fft2c`). Real input is
/// promoted to complex; the result is complex of matching precision.
pub fn fft2c(x: &Tensor) -> Result<Tensor> {
    check_rank("fft2c", x)?;
    let ck = complex_kind("fft2c", x.kind())?;
    let x = x.f_to_kind(ck)?;
    let dims: &[i64] = &[-2, -1];
    Ok(x.f_fft_ifftshift(Some(dims))?
        .f_fft_fft2(None::<&[i64]>, dims, "ortho")?
        .f_fft_fftshift(Some(dims))?)
}

/// Centred orthonormal inverse 2-D FFT over the last two axes (fastMRI `ifft2c`).
pub fn ifft2c(k: &Tensor) -> Result<Tensor> {
    check_rank("ifft2c", k)?;
    let ck = complex_kind("ifft2c", k.kind())?;
    let k = k.f_to_kind(ck)?;
    let dims: &[i64] = &[-2, -1];
    Ok(k.f_fft_ifftshift(Some(dims))?
        .f_fft_ifft2(None::<&[i64]>, dims, "ortho")?
        .f_fft_fftshift(Some(dims))?)
}

/// Whether images are real (magnitude images; adjoint w.r.t. `Re⟨·,·⟩`) or complex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageDomain {
    /// Real images `[B, C, H, W]` (f32/f64); adjoint and pseudo-inverse return `Re(·)`.
    #[default]
    Real,
    /// Complex images (complex64/complex128; real input is promoted).
    Complex,
}

fn check_image_kind(op: &str, domain: ImageDomain, x: &Tensor) -> Result<()> {
    complex_kind(op, x.kind())?;
    if domain == ImageDomain::Real && x.is_complex() {
        return Err(OperatorError::Invalid(format!(
            "{op}: operator has a real image domain but the input is complex ({:?}); build it \
             with ImageDomain::Complex for complex images",
            x.kind()
        )));
    }
    Ok(())
}

fn to_domain(domain: ImageDomain, x: Tensor) -> Result<Tensor> {
    Ok(match domain {
        ImageDomain::Real => x.f_real()?.f_contiguous()?,
        ImageDomain::Complex => x,
    })
}

/// Multiplies a complex tensor by a `[H, W]` 0/1 mask of the matching real kind.
fn apply_mask(mask: &SamplingMask, k: &Tensor) -> Result<Tensor> {
    let rk = real_kind("mask", k.kind())?;
    let m = mask.to_tensor(rk, k.device())?;
    Ok(k.f_mul(&m)?)
}

/// Single-coil undersampled Fourier operator `A = M F` (see the module docs).
///
/// Input `[B, C, H, W]` images, output `[B, C, H, W]` complex k-space (full grid × mask).
#[derive(Debug, Clone)]
pub struct MriFourier {
    mask: SamplingMask,
    channels: i64,
    domain: ImageDomain,
}

impl MriFourier {
    /// Real-image operator with `channels` image channels (1 for magnitude MRI).
    pub fn new(mask: SamplingMask, channels: usize) -> Result<Self> {
        Self::with_domain(mask, channels, ImageDomain::Real)
    }

    /// Operator with an explicit image domain.
    pub fn with_domain(mask: SamplingMask, channels: usize, domain: ImageDomain) -> Result<Self> {
        if channels == 0 {
            return Err(OperatorError::Invalid(
                "mri: channels must be at least 1".into(),
            ));
        }
        Ok(Self {
            mask,
            channels: channels as i64,
            domain,
        })
    }

    /// The sampling mask.
    pub fn sampling_mask(&self) -> &SamplingMask {
        &self.mask
    }

    /// The image domain.
    pub fn domain(&self) -> ImageDomain {
        self.domain
    }

    fn hw(&self) -> (i64, i64) {
        let (h, w) = self.mask.dim();
        (h as i64, w as i64)
    }
}

impl LinearOperator for MriFourier {
    fn name(&self) -> &str {
        "mri"
    }

    fn input_shape(&self) -> Vec<i64> {
        let (h, w) = self.hw();
        vec![self.channels, h, w]
    }

    fn output_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    /// `M F x`: complex k-space, zero outside the mask.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        check_image_kind(self.name(), self.domain, x)?;
        apply_mask(&self.mask, &fft2c(x)?)
    }

    /// `Fᴴ M y` (complex domain) or `Re(Fᴴ M y)` (real domain).
    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        complex_kind(self.name(), y.kind())?;
        to_domain(self.domain, ifft2c(&apply_mask(&self.mask, y)?)?)
    }

    /// Zero-filled inverse FFT `Fᴴ M y`: the exact pseudo-inverse in the complex domain (`F` is
    /// unitary and `M` a projection). In the real domain its real part, fastMRI's zero-filled
    /// reconstruction, which is exact only for masks point-symmetric about DC.
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.adjoint(y)
    }

    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        Some(self)
    }
}

impl Decomposed for MriFourier {
    /// `F x` (complex, full grid).
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        check_image_kind(self.name(), self.domain, x)?;
        fft2c(x)
    }

    /// `F⁻¹ z`; in the real domain its real part (the nearest real image).
    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(self.name(), "k-space", &self.transformed_shape(), z)?;
        to_domain(self.domain, ifft2c(z)?)
    }

    fn transformed_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    /// The `[H, W]` f32 0/1 mask (a fresh copy: callers may modify it in place).
    fn mask(&self, device: Device) -> Tensor {
        match self.mask.to_tensor(Kind::Float, device) {
            Ok(t) => t.copy(),
            // Only a failing device transfer gets here; the trait has no Result.
            Err(e) => panic!("mri: cannot place the sampling mask on {device:?}: {e}"),
        }
    }

    /// `M z` on the full grid (so that `forward(x) == subsample(transform(x))`).
    fn subsample(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(self.name(), "k-space", &self.transformed_shape(), z)?;
        apply_mask(&self.mask, z)
    }

    /// `M y` on the full grid (measurements are already full-grid).
    fn embed(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        apply_mask(&self.mask, y)
    }
}

/// Complex coil sensitivity maps `S[c, y, x]`, stored as real and imaginary parts.
#[derive(Debug, Clone)]
pub struct CoilMaps {
    re: Array3<f64>,
    im: Array3<f64>,
    cache: TensorCache,
}

impl PartialEq for CoilMaps {
    fn eq(&self, other: &Self) -> bool {
        self.re == other.re && self.im == other.im
    }
}

impl CoilMaps {
    /// From real and imaginary parts `[C_coils, H, W]` (same shape, finite).
    pub fn from_parts(re: Array3<f64>, im: Array3<f64>) -> Result<Self> {
        if re.dim() != im.dim() {
            return Err(OperatorError::Invalid(format!(
                "coil maps: real part has shape {:?} but imaginary part {:?}",
                re.shape(),
                im.shape()
            )));
        }
        let (c, h, w) = re.dim();
        if c == 0 || h == 0 || w == 0 {
            return Err(OperatorError::Invalid(format!(
                "coil maps: shape {:?} has an empty axis",
                re.shape()
            )));
        }
        if re.iter().chain(im.iter()).any(|v| !v.is_finite()) {
            return Err(OperatorError::NonFinite("coil maps".into()));
        }
        Ok(Self {
            re,
            im,
            cache: TensorCache::default(),
        })
    }

    /// From a complex tensor `[C_coils, H, W]` on any device.
    pub fn from_tensor(s: &Tensor) -> Result<Self> {
        if s.dim() != 3 || !s.is_complex() {
            return Err(OperatorError::Invalid(format!(
                "coil maps: expected a complex tensor [C_coils, H, W], got {:?} of shape {:?}",
                s.kind(),
                s.size()
            )));
        }
        let size = s.size();
        let dim = (size[0] as usize, size[1] as usize, size[2] as usize);
        let to_arr = |t: Tensor| -> Result<Array3<f64>> {
            let t = t
                .f_to_kind(Kind::Double)?
                .f_to_device(Device::Cpu)?
                .f_contiguous()?
                .f_view([-1])?;
            let v = Vec::<f64>::try_from(&t)?;
            Array3::from_shape_vec(dim, v)
                .map_err(|e| OperatorError::Invalid(format!("coil maps: {e}")))
        };
        Self::from_parts(to_arr(s.f_real()?)?, to_arr(s.f_imag()?)?)
    }

    /// `(C_coils, H, W)`.
    pub fn dim(&self) -> (usize, usize, usize) {
        self.re.dim()
    }

    /// Real part.
    pub fn re(&self) -> &Array3<f64> {
        &self.re
    }

    /// Imaginary part.
    pub fn im(&self) -> &Array3<f64> {
        &self.im
    }

    /// Complex tensor `[C_coils, H, W]` of `kind` (ComplexFloat or ComplexDouble) on `device`
    /// (cached per device and kind).
    pub fn to_tensor(&self, kind: Kind, device: Device) -> Result<Tensor> {
        let ck = complex_kind("coil maps", kind)?;
        let (c, h, w) = self.dim();
        let shape = [c as i64, h as i64, w as i64];
        self.cache.get(device, ck, || {
            let re: Vec<f64> = self.re.iter().copied().collect();
            let im: Vec<f64> = self.im.iter().copied().collect();
            let re = Tensor::from_slice(&re).f_view(shape)?;
            let im = Tensor::from_slice(&im).f_view(shape)?;
            Tensor::f_complex(&re, &im)?
                .f_to_kind(ck)?
                .f_to_device(device)
        })
    }
}

/// Smooth synthetic coil sensitivities: `n_coils` coils on a circle of radius 1.5 (image
/// half-width = 1) around the field of view at angles `2π c / n + jitter`, magnitude a Gaussian
/// bump `exp(−|r − p_c|² / (2 · 1.0²))` (a smooth stand-in for the Biot–Savart falloff of a
/// loop coil), phase a seeded smooth linear ramp `φ_c + a_c · r`, then normalised pixel-wise
/// so `Σ_c |S_c|² = 1`.
pub fn synthetic_coil_maps(n_coils: usize, h: usize, w: usize, seed: u64) -> Result<CoilMaps> {
    if n_coils == 0 || h == 0 || w == 0 {
        return Err(OperatorError::Invalid(format!(
            "synthetic coil maps: n_coils={n_coils}, h={h}, w={w} must all be positive"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let two_pi = 2.0 * std::f64::consts::PI;
    let coils: Vec<(f64, f64, f64, f64, f64)> = (0..n_coils)
        .map(|c| {
            let jitter = (rng.gen::<f64>() - 0.5) * two_pi / (4.0 * n_coils as f64);
            let angle = two_pi * c as f64 / n_coils as f64 + jitter;
            let phase0 = rng.gen::<f64>() * two_pi;
            let ay = (rng.gen::<f64>() - 0.5) * std::f64::consts::PI;
            let ax = (rng.gen::<f64>() - 0.5) * std::f64::consts::PI;
            (1.5 * angle.sin(), 1.5 * angle.cos(), phase0, ay, ax)
        })
        .collect();
    let mut re = Array3::<f64>::zeros((n_coils, h, w));
    let mut im = Array3::<f64>::zeros((n_coils, h, w));
    for y in 0..h {
        let yy = (y as f64 + 0.5) / h as f64 * 2.0 - 1.0;
        for x in 0..w {
            let xx = (x as f64 + 0.5) / w as f64 * 2.0 - 1.0;
            let mut norm2 = 0.0;
            for (c, &(py, px, phase0, ay, ax)) in coils.iter().enumerate() {
                let d2 = (yy - py).powi(2) + (xx - px).powi(2);
                let mag = (-d2 / 2.0).exp();
                let phase = phase0 + ay * yy + ax * xx;
                re[[c, y, x]] = mag * phase.cos();
                im[[c, y, x]] = mag * phase.sin();
                norm2 += mag * mag;
            }
            let inv = 1.0 / norm2.sqrt();
            for c in 0..n_coils {
                re[[c, y, x]] *= inv;
                im[[c, y, x]] *= inv;
            }
        }
    }
    CoilMaps::from_parts(re, im)
}

/// Multi-coil SENSE operator `A = M F S` for single-channel images.
///
/// Input `[B, 1, H, W]` images, output `[B, C_coils, H, W]` complex k-space (full grid × mask).
/// Not [`Decomposed`]: `F S` maps one image to `C_coils` k-spaces and has no inverse.
#[derive(Debug, Clone)]
pub struct SenseMri {
    maps: CoilMaps,
    mask: SamplingMask,
    domain: ImageDomain,
}

impl SenseMri {
    /// Real-image SENSE operator. Errors if the maps and mask grids differ.
    pub fn new(maps: CoilMaps, mask: SamplingMask) -> Result<Self> {
        Self::with_domain(maps, mask, ImageDomain::Real)
    }

    /// SENSE operator with an explicit image domain.
    pub fn with_domain(maps: CoilMaps, mask: SamplingMask, domain: ImageDomain) -> Result<Self> {
        let (_, h, w) = maps.dim();
        if (h, w) != mask.dim() {
            return Err(OperatorError::Invalid(format!(
                "sense: coil maps are {h}x{w} but the mask is {}x{}",
                mask.dim().0,
                mask.dim().1
            )));
        }
        Ok(Self { maps, mask, domain })
    }

    /// The coil maps.
    pub fn coil_maps(&self) -> &CoilMaps {
        &self.maps
    }

    /// The sampling mask.
    pub fn sampling_mask(&self) -> &SamplingMask {
        &self.mask
    }

    fn maps_like(&self, t: &Tensor) -> Result<Tensor> {
        self.maps
            .to_tensor(t.kind(), t.device())?
            .f_unsqueeze(0)
            .map_err(OperatorError::from)
    }

    /// `Σ_c conj(S_c) F⁻¹ k_c` for full-grid k-space `k`.
    fn coil_combine(&self, k: &Tensor) -> Result<Tensor> {
        let s = self.maps_like(k)?;
        let img = ifft2c(k)?;
        Ok(img
            .f_mul(&s.f_conj()?)?
            .f_sum_dim_intlist(Some(&[1i64][..]), true, None)?)
    }
}

impl LinearOperator for SenseMri {
    fn name(&self) -> &str {
        "sense"
    }

    fn input_shape(&self) -> Vec<i64> {
        let (_, h, w) = self.maps.dim();
        vec![1, h as i64, w as i64]
    }

    fn output_shape(&self) -> Vec<i64> {
        let (c, h, w) = self.maps.dim();
        vec![c as i64, h as i64, w as i64]
    }

    /// `(M F S_c x)_c`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        check_image_kind(self.name(), self.domain, x)?;
        let ck = complex_kind(self.name(), x.kind())?;
        let x = x.f_to_kind(ck)?;
        let s = self.maps_like(&x)?;
        apply_mask(&self.mask, &fft2c(&x.f_mul(&s)?)?)
    }

    /// `Σ_c conj(S_c) F⁻¹ M y_c` (real part in the real domain).
    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        complex_kind(self.name(), y.kind())?;
        to_domain(self.domain, self.coil_combine(&apply_mask(&self.mask, y)?)?)
    }

    /// Zero-filled SENSE coil combination `Σ_c conj(S_c) F⁻¹ M y_c / Σ_c |S_c|²`: the exact
    /// inverse for a fully sampled mask, an approximation otherwise (the least-squares solution
    /// needs an iterative solve of `AᴴA x = Aᴴ y`).
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        complex_kind(self.name(), y.kind())?;
        let combined = self.coil_combine(&apply_mask(&self.mask, y)?)?;
        let s = self.maps_like(&combined)?;
        let rk = real_kind(self.name(), combined.kind())?;
        let energy = s
            .f_abs()?
            .f_square()?
            .f_sum_dim_intlist(Some(&[1i64][..]), true, None)?
            .f_to_kind(rk)?;
        let safe = energy.f_clamp_min(1e-12)?;
        to_domain(self.domain, combined.f_div(&safe)?)
    }
}
