//! Blur: `y = A x = h ⊛ x`, the convolution of every channel of an image `[B, C, H, W]` with a
//! point-spread function `h` (a Gaussian of standard deviation `σ` pixels, or a user PSF),
//! computed with FFTs.
//!
//! **Kernel.** An odd-sized `[kh, kw]` array normalised to sum 1, centred on its middle entry
//! `(kh/2, kw/2)`: `y[i, j] = Σ_{a, b} h[a, b] x[i − a + kh/2, j − b + kw/2]` (a convolution, as
//! `scipy.ndimage.convolve`; for the symmetric Gaussian it equals the correlation).
//! [`gaussian_kernel`] follows `scipy.ndimage.gaussian_filter`: radius
//! `r = int(truncate · σ + 0.5)` with `truncate = 4` ([`GAUSSIAN_TRUNCATE`]), 1-D weights
//! `exp(−x² / (2σ²))` for `x = −r..=r` normalised to sum 1, and the 2-D kernel their outer
//! product (scipy filters the two axes one after the other with the same 1-D kernel, which is
//! the same operator).
//!
//! **Boundary** ([`Boundary`]):
//! * `Circular` (`scipy.ndimage` mode `'wrap'`): the image is periodic and the convolution
//!   theorem is exact, `A = F⁻¹ diag(Ĥ) F` with `F` the orthonormal 2-D DFT over `(H, W)` and
//!   `Ĥ` the (unnormalised) DFT of the kernel placed with its centre at pixel `(0, 0)` and
//!   wrapped onto the `H × W` grid (`Ĥ(0) = Σ h = 1`). `Aᵀ = F⁻¹ diag(conj Ĥ) F`.
//! * `Zero` (mode `'constant'`, `cval = 0`): linear convolution of the zero-extended image,
//!   cropped to `H × W`. With `P` the zero padding by `(kh/2, kw/2)` on each side (to
//!   `(H + kh − 1) × (W + kw − 1)`, where no wrap-around reaches the kept pixels) and `C` the
//!   crop back, `A = C F⁻¹ diag(Ĥ_p) F P`, `Aᵀ = Pᵀ F⁻¹ diag(conj Ĥ_p) F Cᵀ` (`Pᵀ` crops, `Cᵀ`
//!   zero-pads), `Ĥ_p` the transfer function on the padded grid.
//!
//! **Decomposition** ([`LinearOperator::as_decomposed`]). With circular boundary the operator
//! is [`Decomposed`] (the spectral view of deblurring of DDRM, Kawar et al. 2022, "Denoising
//! diffusion restoration models", NeurIPS, with `V = F` and singular values `|Ĥ|`):
//!
//! ```text
//! T = F (orthonormal 2-D DFT, DC at [0, 0]),   T⁻¹ = Fᴴ (real part for real images)
//! subsample(z) = F⁻¹(Ĥ ⊙ z)          so  A x = subsample(T x)
//! embed(y)     = F y ⊙ Ĥ⁻¹           (0 where |Ĥ| ≤ TRANSFER_FLOOR): the spectrum of x that y fixes
//! Λ            = |Ĥ|² / (|Ĥ|² + ε)   (0 where |Ĥ| ≤ TRANSFER_FLOOR): the Wiener gain
//! ```
//!
//! so that the data-consistency step of the projection sampler (Song et al. 2022, "Solving
//! inverse problems in medical imaging with score-based generative models", ICLR; see
//! [`Decomposed`]) `T x ← T x + λ Λ ⊙ (embed(y) − T x)` is, for `λ = 1`, the Tikhonov-regularised
//! projection `argmin_z ‖Ĥ ⊙ z − F y‖² + ε ‖z − T x‖²` onto `{A x = y}`; `ε → 0` gives the exact
//! projection (a hard 0/1 `Λ` on the frequencies with `Ĥ ≠ 0`), which for a Gaussian blur
//! amplifies noise by up to `1 / |Ĥ|`. The regularisation `ε` (default [`DEFAULT_EPSILON`] =
//! 10⁻³, about DDRM's cut of the singular values below 3·10⁻² for deblurring, squared) is also
//! the one of the pseudo-inverse, so `T A⁺ y = Λ ⊙ embed(y)`.
//!
//! With zero boundary there is no such decomposition with an invertible `T` on the image space
//! (the padded-grid spectrum of `x` is not determined by the cropped measurement), so
//! [`LinearOperator::as_decomposed`] returns `None`: the projection and replacement samplers
//! need `Boundary::Circular`; DPS and every solver that uses only `A` and `Aᵀ` take both.
//!
//! **Pseudo-inverse**: the Wiener / Tikhonov filter `A⁺_ε y = F⁻¹(conj Ĥ / (|Ĥ|² + ε) ⊙ F y)`,
//! exactly `(AᵀA + ε I)⁻¹ Aᵀ y` for circular boundary. For zero boundary the same filter on the
//! padded grid applied to the zero-padded `y`, cropped: an approximation that takes the blurred
//! band outside the image, which the measurement does not contain, to be zero.
//!
//! Images are real, f32 or f64, on any device; `Ĥ` and the filters derived from it are computed
//! once in f64 on the host and placed on each device and kind on first use.
use std::fmt;
use std::str::FromStr;

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::masks::TensorCache;
use crate::mri::complex_kind;
use crate::{check_batch_shape, Decomposed, LinearOperator, OperatorError, Result};

/// scipy's `gaussian_filter` default truncation: the kernel radius is `int(4 σ + 0.5)`.
pub const GAUSSIAN_TRUNCATE: f64 = 4.0;

/// Default regularisation `ε` of the Wiener pseudo-inverse and of `Λ` (see the module docs).
pub const DEFAULT_EPSILON: f64 = 1e-3;

/// Frequencies with `|Ĥ| ≤ TRANSFER_FLOOR` are treated as not measured (`Ĥ = 0`): the DFT of a
/// kernel with unit sum is accurate to about 10⁻¹⁶, so below 10⁻¹² it is rounding noise.
pub const TRANSFER_FLOOR: f64 = 1e-12;

/// How the image continues beyond its border.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Boundary {
    /// Periodic (`scipy.ndimage` mode `'wrap'`); the operator is [`Decomposed`].
    #[default]
    Circular,
    /// Zero outside the image (mode `'constant'`); not [`Decomposed`].
    Zero,
}

impl Boundary {
    /// `"circular"` or `"zero"`.
    pub fn name(self) -> &'static str {
        match self {
            Boundary::Circular => "circular",
            Boundary::Zero => "zero",
        }
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Boundary {
    type Err = OperatorError;

    /// `circular` (also `wrap`, `periodic`) or `zero` (also `constant`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "circular" | "wrap" | "periodic" => Ok(Boundary::Circular),
            "zero" | "constant" => Ok(Boundary::Zero),
            other => Err(OperatorError::Invalid(format!(
                "blur: unknown boundary {other:?}; expected circular or zero"
            ))),
        }
    }
}

/// The isotropic Gaussian kernel of standard deviation `sigma` pixels truncated at radius
/// `int(truncate · sigma + 0.5)`, normalised to sum 1, as `scipy.ndimage.gaussian_filter`
/// (the outer product of its 1-D kernel with itself).
pub fn gaussian_kernel(sigma: f64, truncate: f64) -> Result<Array2<f64>> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(OperatorError::Invalid(format!(
            "blur: the Gaussian sigma must be positive and finite, got {sigma}"
        )));
    }
    if !(truncate.is_finite() && truncate > 0.0) {
        return Err(OperatorError::Invalid(format!(
            "blur: the Gaussian truncation must be positive and finite, got {truncate}"
        )));
    }
    let radius = (truncate * sigma + 0.5) as i64;
    let coef = -0.5 / (sigma * sigma);
    let phi: Vec<f64> = (-radius..=radius)
        .map(|x| (coef * (x * x) as f64).exp())
        .collect();
    let sum: f64 = phi.iter().sum();
    let g: Vec<f64> = phi.iter().map(|v| v / sum).collect();
    let k = g.len();
    Ok(Array2::from_shape_fn((k, k), |(a, b)| g[a] * g[b]))
}

/// Checks a PSF (finite, odd sides, positive sum) and normalises it to sum 1.
fn normalise_psf(psf: Array2<f64>) -> Result<Array2<f64>> {
    let (kh, kw) = psf.dim();
    if kh % 2 == 0 || kw % 2 == 0 {
        return Err(OperatorError::Invalid(format!(
            "blur: the PSF must have odd sides so that it has a centre pixel, got [{kh}, {kw}]"
        )));
    }
    if psf.iter().any(|v| !v.is_finite()) {
        return Err(OperatorError::NonFinite("blur: the PSF".into()));
    }
    let sum: f64 = psf.sum();
    if sum <= 0.0 {
        return Err(OperatorError::Invalid(format!(
            "blur: the PSF must have a positive sum (it is normalised to 1), got {sum}"
        )));
    }
    Ok(psf / sum)
}

/// Blur of `[B, C, H, W]` real images by a normalised kernel (see the module docs).
#[derive(Debug, Clone)]
pub struct Blur {
    kernel: Array2<f64>,
    boundary: Boundary,
    h: i64,
    w: i64,
    /// Zero padding per side `(kh/2, kw/2)` for [`Boundary::Zero`], `(0, 0)` for circular.
    pad: (i64, i64),
    /// The circular convolution on the image grid (circular) or the padded grid (zero).
    conv: CircularConvolution,
}

impl Blur {
    /// Gaussian blur of standard deviation `sigma` pixels (truncated at
    /// [`GAUSSIAN_TRUNCATE`]` · σ`, as scipy) of `channels × h × w` images.
    pub fn gaussian(
        sigma: f64,
        boundary: Boundary,
        channels: usize,
        h: usize,
        w: usize,
    ) -> Result<Self> {
        Self::from_psf(
            gaussian_kernel(sigma, GAUSSIAN_TRUNCATE)?,
            boundary,
            channels,
            h,
            w,
        )
    }

    /// Blur by a user PSF `[kh, kw]` (odd sides, any finite values with a positive sum; it is
    /// normalised to sum 1 and centred on its middle entry). A PSF file is read by the I/O
    /// layer and passed in as an array.
    pub fn from_psf(
        psf: Array2<f64>,
        boundary: Boundary,
        channels: usize,
        h: usize,
        w: usize,
    ) -> Result<Self> {
        if channels == 0 || h == 0 || w == 0 {
            return Err(OperatorError::Invalid(format!(
                "blur: channels={channels} and image size {h}x{w} must be positive"
            )));
        }
        let kernel = normalise_psf(psf)?;
        let (kh, kw) = kernel.dim();
        let pad = match boundary {
            Boundary::Circular => (0, 0),
            Boundary::Zero => ((kh / 2) as i64, (kw / 2) as i64),
        };
        let (hp, wp) = (h as i64 + 2 * pad.0, w as i64 + 2 * pad.1);
        let conv = CircularConvolution::new(&kernel, channels as i64, hp, wp, DEFAULT_EPSILON)?;
        Ok(Blur {
            kernel,
            boundary,
            h: h as i64,
            w: w as i64,
            pad,
            conv,
        })
    }

    /// The regularisation `ε ≥ 0` of the pseudo-inverse and of `Λ` (default
    /// [`DEFAULT_EPSILON`]; the transfer function has `Ĥ(0) = 1`). `ε = 0` gives the exact
    /// Moore–Penrose pseudo-inverse and the exact projection, unstable for noisy data.
    pub fn with_epsilon(mut self, epsilon: f64) -> Result<Self> {
        if !(epsilon.is_finite() && epsilon >= 0.0) {
            return Err(OperatorError::Invalid(format!(
                "blur: epsilon must be finite and non-negative, got {epsilon}"
            )));
        }
        self.conv = self.conv.with_epsilon(epsilon)?;
        Ok(self)
    }

    /// The normalised kernel (sum 1, centre at `(kh/2, kw/2)`).
    pub fn kernel(&self) -> &Array2<f64> {
        &self.kernel
    }

    /// The boundary condition.
    pub fn boundary(&self) -> Boundary {
        self.boundary
    }

    /// The regularisation `ε`.
    pub fn epsilon(&self) -> f64 {
        self.conv.epsilon
    }

    /// The transfer function `Ĥ` (complex, `[H, W]` for circular boundary, the padded
    /// `[H + kh − 1, W + kw − 1]` grid for zero boundary; DC at `[0, 0]`) in the complex kind
    /// matching `kind`, on `device`.
    pub fn transfer_function(&self, kind: Kind, device: Device) -> Result<Tensor> {
        Ok(self.conv.transfer.tensor(kind, device)?.copy())
    }

    /// Zero-pads `x` `[B, C, H, W]` to the convolution grid (identity for circular boundary).
    fn pad(&self, x: &Tensor) -> Result<Tensor> {
        let (ph, pw) = self.pad;
        Ok(match self.boundary {
            Boundary::Circular => x.shallow_clone(),
            Boundary::Zero => x.f_constant_pad_nd([pw, pw, ph, ph])?,
        })
    }

    /// Crops the convolution grid back to `[B, C, H, W]` (the transpose of [`Self::pad`]).
    fn crop(&self, x: Tensor) -> Result<Tensor> {
        let (ph, pw) = self.pad;
        Ok(match self.boundary {
            Boundary::Circular => x,
            Boundary::Zero => x
                .f_narrow(2, ph, self.h)?
                .f_narrow(3, pw, self.w)?
                .f_contiguous()?,
        })
    }

    /// `crop(F⁻¹(m ⊙ F pad(t)))` for a real image batch `t` of this operator's shape.
    fn filter(&self, t: &Tensor, m: &Multiplier) -> Result<Tensor> {
        let out = self.conv.filter(&self.pad(t)?, m)?;
        self.crop(out)
    }
}

impl LinearOperator for Blur {
    fn name(&self) -> &str {
        "blur"
    }

    fn input_shape(&self) -> Vec<i64> {
        vec![self.conv.channels, self.h, self.w]
    }

    fn output_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    /// `h ⊛ x` with the operator's boundary.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.filter(x, &self.conv.transfer)
    }

    /// The correlation with `h` (transfer function `conj Ĥ`), padded and cropped the other way.
    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.filter(y, &self.conv.adjoint)
    }

    /// The Wiener / Tikhonov filter `conj Ĥ / (|Ĥ|² + ε)` (see the module docs).
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.filter(y, &self.conv.wiener)
    }

    /// `Some` for [`Boundary::Circular`] (`T = F`, see the module docs), `None` for
    /// [`Boundary::Zero`].
    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        match self.boundary {
            Boundary::Circular => Some(&self.conv),
            Boundary::Zero => None,
        }
    }
}

/// A complex (or real) filter on the FFT grid, held on the host in f64 and placed on each
/// device and kind on first use.
#[derive(Clone)]
struct Multiplier {
    shape: [i64; 2],
    re: Vec<f64>,
    /// `None` for a real filter.
    im: Option<Vec<f64>>,
    cache: TensorCache,
}

impl Multiplier {
    fn new(shape: [i64; 2], re: Vec<f64>, im: Option<Vec<f64>>) -> Self {
        Multiplier {
            shape,
            re,
            im,
            cache: TensorCache::default(),
        }
    }

    /// `[H, W]`, complex of the precision of `kind` (real `kind` for a real filter), on
    /// `device`; shared: never modify it in place.
    fn tensor(&self, kind: Kind, device: Device) -> Result<Tensor> {
        let ck = complex_kind("blur", kind)?;
        let key = if self.im.is_some() { ck } else { real_of(ck) };
        self.cache.get(device, key, || {
            let re = Tensor::f_from_slice(&self.re)?.f_view(self.shape)?;
            let t = match &self.im {
                Some(im) => {
                    let im = Tensor::f_from_slice(im)?.f_view(self.shape)?;
                    Tensor::f_complex(&re, &im)?
                }
                None => re,
            };
            t.f_to_kind(key)?.f_to_device(device)
        })
    }
}

impl fmt::Debug for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.im.is_some() { "complex" } else { "real" };
        write!(f, "Multiplier({what} {:?})", self.shape)
    }
}

fn real_of(complex: Kind) -> Kind {
    if complex == Kind::ComplexDouble {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// Circular convolution on an `H × W` grid, `A = F⁻¹ diag(Ĥ) F`, with its decomposition. This
/// is [`Blur`] with circular boundary and, on the padded grid, the core of the zero boundary.
#[derive(Debug, Clone)]
struct CircularConvolution {
    channels: i64,
    h: i64,
    w: i64,
    epsilon: f64,
    /// `Ĥ` and `conj Ĥ`.
    transfer: Multiplier,
    adjoint: Multiplier,
    /// `conj Ĥ / (|Ĥ|² + ε)`, `|Ĥ|² / (|Ĥ|² + ε)` (real) and `1 / Ĥ`, each 0 where
    /// `|Ĥ| ≤ TRANSFER_FLOOR`.
    wiener: Multiplier,
    weight: Multiplier,
    inverse: Multiplier,
}

impl CircularConvolution {
    fn new(kernel: &Array2<f64>, channels: i64, h: i64, w: i64, epsilon: f64) -> Result<Self> {
        // The kernel with its centre at (0, 0), wrapped onto the grid.
        let (kh, kw) = kernel.dim();
        let (ch, cw) = ((kh / 2) as i64, (kw / 2) as i64);
        let mut grid = vec![0f64; (h * w) as usize];
        for ((a, b), &v) in kernel.indexed_iter() {
            let r = (a as i64 - ch).rem_euclid(h);
            let c = (b as i64 - cw).rem_euclid(w);
            grid[(r * w + c) as usize] += v;
        }
        let spectrum = Tensor::f_from_slice(&grid)?.f_view([h, w])?.f_fft_fft2(
            None::<&[i64]>,
            [-2i64, -1].as_slice(),
            "backward",
        )?;
        let re = Vec::<f64>::try_from(spectrum.f_real()?.f_contiguous()?.f_view([-1])?)?;
        let im = Vec::<f64>::try_from(spectrum.f_imag()?.f_contiguous()?.f_view([-1])?)?;
        Self::from_spectrum(channels, h, w, re, im, epsilon)
    }

    fn from_spectrum(
        channels: i64,
        h: i64,
        w: i64,
        re: Vec<f64>,
        im: Vec<f64>,
        epsilon: f64,
    ) -> Result<Self> {
        let shape = [h, w];
        let n = re.len();
        let (mut wr, mut wi, mut lam, mut ir, mut ii) = (
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
            vec![0.0; n],
        );
        for k in 0..n {
            let (a, b) = (re[k], im[k]);
            let p = a * a + b * b;
            if p.sqrt() <= TRANSFER_FLOOR {
                continue;
            }
            let d = p + epsilon;
            (wr[k], wi[k]) = (a / d, -b / d);
            lam[k] = p / d;
            (ir[k], ii[k]) = (a / p, -b / p);
        }
        let neg_im: Vec<f64> = im.iter().map(|v| -v).collect();
        Ok(CircularConvolution {
            channels,
            h,
            w,
            epsilon,
            adjoint: Multiplier::new(shape, re.clone(), Some(neg_im)),
            transfer: Multiplier::new(shape, re, Some(im)),
            wiener: Multiplier::new(shape, wr, Some(wi)),
            weight: Multiplier::new(shape, lam, None),
            inverse: Multiplier::new(shape, ir, Some(ii)),
        })
    }

    fn with_epsilon(&self, epsilon: f64) -> Result<Self> {
        Self::from_spectrum(
            self.channels,
            self.h,
            self.w,
            self.transfer.re.clone(),
            self.transfer.im.clone().unwrap_or_default(),
            epsilon,
        )
    }

    /// `F x` (orthonormal) of a real batch. (An empty batch skips the FFT, which MKL refuses.)
    fn fft(&self, x: &Tensor) -> Result<Tensor> {
        real_image_kind(x)?;
        if x.numel() == 0 {
            let ck = complex_kind("blur", x.kind())?;
            return Ok(Tensor::f_zeros(x.size().as_slice(), (ck, x.device()))?);
        }
        Ok(x.f_fft_fft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho")?)
    }

    /// `Re F⁻¹ z` (orthonormal).
    fn ifft_real(&self, z: &Tensor) -> Result<Tensor> {
        let z = z.f_to_kind(complex_kind("blur", z.kind())?)?;
        if z.numel() == 0 {
            return Ok(z.f_real()?.f_zeros_like()?);
        }
        Ok(
            z.f_fft_ifft2(None::<&[i64]>, [-2i64, -1].as_slice(), "ortho")?
                .f_real()?
                .f_contiguous()?,
        )
    }

    /// `Re F⁻¹(m ⊙ F x)` for a real batch `x` on this grid.
    fn filter(&self, x: &Tensor, m: &Multiplier) -> Result<Tensor> {
        let spec = self.fft(x)?;
        self.ifft_real(&spec.f_mul(&m.tensor(x.kind(), x.device())?)?)
    }
}

/// Refuses complex or integer images.
fn real_image_kind(x: &Tensor) -> Result<()> {
    match x.kind() {
        Kind::Float | Kind::Double => Ok(()),
        k => Err(OperatorError::Invalid(format!(
            "blur: images must be real f32 or f64 tensors, got {k:?}"
        ))),
    }
}

impl LinearOperator for CircularConvolution {
    fn name(&self) -> &str {
        "blur"
    }

    fn input_shape(&self) -> Vec<i64> {
        vec![self.channels, self.h, self.w]
    }

    fn output_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.filter(x, &self.transfer)
    }

    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.filter(y, &self.adjoint)
    }

    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.filter(y, &self.wiener)
    }

    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        Some(self)
    }
}

impl Decomposed for CircularConvolution {
    /// `F x`: the orthonormal 2-D DFT (complex `[B, C, H, W]`, DC at `[0, 0]`).
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.fft(x)
    }

    /// `Re F⁻¹ z` (the images are real).
    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(self.name(), "spectrum", &self.transformed_shape(), z)?;
        self.ifft_real(z)
    }

    fn transformed_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    /// The Wiener gain `|Ĥ|² / (|Ĥ|² + ε)` `[H, W]`, f32, in `[0, 1)` (a fresh copy).
    fn mask(&self, device: Device) -> Tensor {
        match self.weight.tensor(Kind::Float, device) {
            Ok(t) => t.copy(),
            // Only a failing device transfer gets here; the trait has no Result.
            Err(e) => panic!("blur: cannot place the Wiener gain on {device:?}: {e}"),
        }
    }

    /// `Re F⁻¹(Ĥ ⊙ z)`: the blurred image whose spectrum before blurring is `z`.
    fn subsample(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(self.name(), "spectrum", &self.transformed_shape(), z)?;
        let h = self.transfer.tensor(z.kind(), z.device())?;
        self.ifft_real(&z.f_mul(&h)?)
    }

    /// `F y ⊙ Ĥ⁻¹` (0 where `|Ĥ| ≤ TRANSFER_FLOOR`): the spectrum of `x` that `y = A x` fixes.
    fn embed(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        let inv = self.inverse.tensor(y.kind(), y.device())?;
        Ok(self.fft(y)?.f_mul(&inv)?)
    }
}
