//! Image-quality metrics, numerically identical to scikit-image 0.26's `skimage.metrics`.
//!
//! * PSNR (`peak_signal_noise_ratio`): `10·log10(R² / MSE)` with `R` the data range
//!   (the user states it; `max − min` of the *possible* values, e.g. 1 for images in `[0, 1]`).
//! * SSIM (`structural_similarity`, Wang, Bovik, Sheikh & Simoncelli 2004, IEEE TIP 13:600):
//!   per pixel, with local means `μ`, (co)variances `σ` over a window,
//!   `S = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`,
//!   `C1 = (K1 R)²`, `C2 = (K2 R)²`, `K1 = 0.01`, `K2 = 0.03`. The score is the mean of `S` after
//!   cropping a border of `(win − 1)/2` pixels, as scikit-image does.
//!   - default ([`SsimOptions::default`], scikit-image defaults): 7×7 uniform window,
//!     sample covariance (factor `NP/(NP−1)`, `NP = 49`);
//!   - [`SsimOptions::gaussian`] (Wang et al. 2004; scikit-image `gaussian_weights=True,
//!     sigma=1.5, use_sample_covariance=False`): 11-tap Gaussian window (σ = 1.5, truncated at
//!     3.5σ, normalised), population covariance; crop 5;
//!   - filters use scipy.ndimage's `mode='reflect'` boundary (`d c b a | a b c d | d c b a`);
//!   - multichannel images: the mean of the per-channel SSIMs (scikit-image `channel_axis`).
//! * nRMSE (`normalized_root_mse`, `normalization='euclidean'`):
//!   `‖x_true − x_test‖₂ / ‖x_true‖₂` (= `sqrt(MSE) / sqrt(mean(x_true²))`).
//!
//! Entry points take ndarray arrays of `f32`/`f64` (any array for PSNR/nRMSE; `[H, W]` or a
//! channel axis for SSIM) or `tch` tensors `[H, W]`, `[C, H, W]` (channel-first) and batches
//! `[B, C, H, W]` (one score per sample). Tensors are copied to the CPU in f64: metrics are
//! evaluation-time code.
use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, ArrayView2, Axis, Data, Dimension, Ix2, Ix3};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The window SSIM averages over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum SsimWindow {
    /// `win_size × win_size` box filter (scipy `uniform_filter`); scikit-image default 7.
    Uniform { win_size: usize },
    /// Normalised Gaussian of standard deviation `sigma`, truncated at `truncate·sigma`
    /// (scikit-image: `sigma = 1.5`, `truncate = 3.5`, an 11-tap filter).
    Gaussian { sigma: f64, truncate: f64 },
}

/// SSIM settings; [`Default`] equals scikit-image's `structural_similarity` defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SsimOptions {
    pub window: SsimWindow,
    /// Normalise (co)variances by `NP − 1` instead of `NP` (`NP = win_size²`).
    pub use_sample_covariance: bool,
    pub k1: f64,
    pub k2: f64,
}

impl Default for SsimOptions {
    fn default() -> Self {
        SsimOptions {
            window: SsimWindow::Uniform { win_size: 7 },
            use_sample_covariance: true,
            k1: 0.01,
            k2: 0.03,
        }
    }
}

impl SsimOptions {
    /// Wang et al. 2004: Gaussian window σ = 1.5 (11 taps), population covariance.
    pub fn gaussian() -> Self {
        SsimOptions {
            window: SsimWindow::Gaussian {
                sigma: 1.5,
                truncate: 3.5,
            },
            use_sample_covariance: false,
            ..Default::default()
        }
    }

    /// The 1-D filter taps and the window side length (scikit-image's `win_size`).
    fn kernel(&self) -> Result<(Vec<f64>, usize)> {
        if !(self.k1 >= 0.0 && self.k2 >= 0.0) {
            return Err(Error::Config(format!(
                "ssim: K1 = {} and K2 = {} must be non-negative",
                self.k1, self.k2
            )));
        }
        match self.window {
            SsimWindow::Uniform { win_size } => {
                if win_size % 2 == 0 || win_size < 3 {
                    return Err(Error::Config(format!(
                        "ssim: win_size = {win_size} must be odd and at least 3"
                    )));
                }
                Ok((vec![1.0 / win_size as f64; win_size], win_size))
            }
            SsimWindow::Gaussian { sigma, truncate } => {
                if !(sigma > 0.0 && truncate > 0.0 && sigma.is_finite() && truncate.is_finite()) {
                    return Err(Error::Config(format!(
                        "ssim: Gaussian sigma = {sigma} and truncate = {truncate} must be positive"
                    )));
                }
                // scipy.ndimage: radius = int(truncate * sigma + 0.5).
                let r = (truncate * sigma + 0.5).floor() as i64;
                let mut k: Vec<f64> = (-r..=r)
                    .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
                    .collect();
                let s: f64 = k.iter().sum();
                k.iter_mut().for_each(|v| *v /= s);
                Ok((k, (2 * r + 1) as usize))
            }
        }
    }
}

fn check_finite_f64(what: &str, v: impl IntoIterator<Item = f64>) -> Result<()> {
    if v.into_iter().any(|x| !x.is_finite()) {
        return Err(Error::NonFinite(what.to_string()));
    }
    Ok(())
}

fn check_data_range(data_range: f64) -> Result<()> {
    if !(data_range > 0.0 && data_range.is_finite()) {
        return Err(Error::Config(format!(
            "data_range = {data_range} must be positive and finite (e.g. 1.0 for images in [0, 1])"
        )));
    }
    Ok(())
}

fn same_shape(metric: &str, a: &[usize], b: &[usize]) -> Result<()> {
    if a != b {
        return Err(Error::Shape {
            what: format!("{metric}: test image"),
            expected: format!("{a:?} (the reference image's shape)"),
            actual: format!("{b:?}"),
        });
    }
    Ok(())
}

/// Mean squared error between two arrays of the same shape.
pub fn mse<S, D>(truth: &ArrayBase<S, D>, test: &ArrayBase<S, D>) -> Result<f64>
where
    S: Data,
    S::Elem: Copy + Into<f64>,
    D: Dimension,
{
    same_shape("mse", truth.shape(), test.shape())?;
    if truth.is_empty() {
        return Err(Error::Invalid("mse: the images are empty".into()));
    }
    check_finite_f64("mse: reference image", truth.iter().map(|&v| v.into()))?;
    check_finite_f64("mse: test image", test.iter().map(|&v| v.into()))?;
    let s: f64 = truth
        .iter()
        .zip(test.iter())
        .map(|(&a, &b)| {
            let d = a.into() - b.into();
            d * d
        })
        .sum();
    Ok(s / truth.len() as f64)
}

/// PSNR in dB, `10·log10(data_range² / MSE)`; `+∞` for identical images (as scikit-image).
pub fn psnr<S, D>(truth: &ArrayBase<S, D>, test: &ArrayBase<S, D>, data_range: f64) -> Result<f64>
where
    S: Data,
    S::Elem: Copy + Into<f64>,
    D: Dimension,
{
    check_data_range(data_range)?;
    let m = mse(truth, test)?;
    if m == 0.0 {
        return Ok(f64::INFINITY);
    }
    Ok(10.0 * (data_range * data_range / m).log10())
}

/// nRMSE with Euclidean normalisation: `‖truth − test‖₂ / ‖truth‖₂`.
pub fn nrmse<S, D>(truth: &ArrayBase<S, D>, test: &ArrayBase<S, D>) -> Result<f64>
where
    S: Data,
    S::Elem: Copy + Into<f64>,
    D: Dimension,
{
    nrmse_defined(truth, test)?.ok_or_else(|| {
        Error::Invalid(
            "nrmse: the reference image is all zeros, the Euclidean normalisation is undefined"
                .into(),
        )
    })
}

/// [`nrmse`], or None when the truth is all zeros (the normalisation is undefined).
fn nrmse_defined<S, D>(truth: &ArrayBase<S, D>, test: &ArrayBase<S, D>) -> Result<Option<f64>>
where
    S: Data,
    S::Elem: Copy + Into<f64>,
    D: Dimension,
{
    let m = mse(truth, test)?;
    let denom: f64 = truth
        .iter()
        .map(|&v| {
            let v: f64 = v.into();
            v * v
        })
        .sum::<f64>()
        / truth.len() as f64;
    Ok((denom != 0.0).then(|| m.sqrt() / denom.sqrt()))
}

/// scipy.ndimage `mode='reflect'` index: `d c b a | a b c d | d c b a`.
fn reflect(i: i64, n: i64) -> usize {
    let period = 2 * n;
    let mut j = i.rem_euclid(period);
    if j >= n {
        j = period - 1 - j;
    }
    j as usize
}

/// Separable correlation with the symmetric taps `k` along both axes (reflect boundary).
fn filter2(img: &Array2<f64>, k: &[f64]) -> Array2<f64> {
    let (h, w) = img.dim();
    let r = (k.len() / 2) as i64;
    let mut tmp = Array2::<f64>::zeros((h, w));
    for i in 0..h {
        for j in 0..w {
            let mut s = 0.0;
            for (t, &kt) in k.iter().enumerate() {
                s += kt * img[[reflect(i as i64 + t as i64 - r, h as i64), j]];
            }
            tmp[[i, j]] = s;
        }
    }
    let mut out = Array2::<f64>::zeros((h, w));
    for i in 0..h {
        for j in 0..w {
            let mut s = 0.0;
            for (t, &kt) in k.iter().enumerate() {
                s += kt * tmp[[i, reflect(j as i64 + t as i64 - r, w as i64)]];
            }
            out[[i, j]] = s;
        }
    }
    out
}

fn ssim_2d(x: &Array2<f64>, y: &Array2<f64>, data_range: f64, opts: &SsimOptions) -> Result<f64> {
    let (k, win) = opts.kernel()?;
    let (h, w) = x.dim();
    if h < win || w < win {
        return Err(Error::Shape {
            what: "ssim: image".into(),
            expected: format!("at least {win}×{win} (the SSIM window)"),
            actual: format!("{h}×{w}"),
        });
    }
    let np = (win * win) as f64;
    let cov_norm = if opts.use_sample_covariance {
        np / (np - 1.0)
    } else {
        1.0
    };
    let ux = filter2(x, &k);
    let uy = filter2(y, &k);
    let uxx = filter2(&(x * x), &k);
    let uyy = filter2(&(y * y), &k);
    let uxy = filter2(&(x * y), &k);
    let c1 = (opts.k1 * data_range).powi(2);
    let c2 = (opts.k2 * data_range).powi(2);
    let pad = (win - 1) / 2;
    let mut sum = 0.0;
    for i in pad..h - pad {
        for j in pad..w - pad {
            let (mx, my) = (ux[[i, j]], uy[[i, j]]);
            let vx = cov_norm * (uxx[[i, j]] - mx * mx);
            let vy = cov_norm * (uyy[[i, j]] - my * my);
            let vxy = cov_norm * (uxy[[i, j]] - mx * my);
            let a1 = 2.0 * mx * my + c1;
            let a2 = 2.0 * vxy + c2;
            let b1 = mx * mx + my * my + c1;
            let b2 = vx + vy + c2;
            sum += a1 * a2 / (b1 * b2);
        }
    }
    let n = ((h - 2 * pad) * (w - 2 * pad)) as f64;
    Ok(sum / n)
}

fn to_f64_2d<S>(a: &ArrayBase<S, Ix2>) -> Array2<f64>
where
    S: Data,
    S::Elem: Copy + Into<f64>,
{
    a.map(|&v| v.into())
}

/// SSIM of two `[H, W]` images (see the module doc for the formula and the options).
pub fn ssim<S>(
    truth: &ArrayBase<S, Ix2>,
    test: &ArrayBase<S, Ix2>,
    data_range: f64,
    opts: &SsimOptions,
) -> Result<f64>
where
    S: Data,
    S::Elem: Copy + Into<f64>,
{
    same_shape("ssim", truth.shape(), test.shape())?;
    check_data_range(data_range)?;
    let x = to_f64_2d(truth);
    let y = to_f64_2d(test);
    check_finite_f64("ssim: reference image", x.iter().copied())?;
    check_finite_f64("ssim: test image", y.iter().copied())?;
    ssim_2d(&x, &y, data_range, opts)
}

/// SSIM of multichannel images: the mean over `channel_axis` (0..3) of the per-channel SSIM,
/// as scikit-image's `channel_axis`.
pub fn ssim_multichannel<S>(
    truth: &ArrayBase<S, Ix3>,
    test: &ArrayBase<S, Ix3>,
    channel_axis: usize,
    data_range: f64,
    opts: &SsimOptions,
) -> Result<f64>
where
    S: Data,
    S::Elem: Copy + Into<f64>,
{
    same_shape("ssim", truth.shape(), test.shape())?;
    if channel_axis > 2 {
        return Err(Error::Config(format!(
            "ssim: channel_axis = {channel_axis} but the images have 3 axes"
        )));
    }
    let nch = truth.len_of(Axis(channel_axis));
    if nch == 0 {
        return Err(Error::Invalid("ssim: the images have no channels".into()));
    }
    let mut total = 0.0;
    for c in 0..nch {
        let a: ArrayView2<S::Elem> = truth.index_axis(Axis(channel_axis), c);
        let b: ArrayView2<S::Elem> = test.index_axis(Axis(channel_axis), c);
        total += ssim(&a, &b, data_range, opts)?;
    }
    Ok(total / nch as f64)
}

/// A tensor as `[C, H, W]` f64 on the CPU; accepts `[H, W]` (C = 1) and `[C, H, W]`.
fn tensor_chw(t: &Tensor, what: &str) -> Result<ndarray::Array3<f64>> {
    let size = t.size();
    let (c, h, w) = match size.as_slice() {
        [h, w] => (1, *h, *w),
        [c, h, w] => (*c, *h, *w),
        _ => {
            return Err(Error::Shape {
                what: what.to_string(),
                expected: "[H, W] or [C, H, W]".into(),
                actual: scoreinv_operators::format_shape(&size),
            })
        }
    };
    if t.is_complex() {
        return Err(Error::Invalid(format!(
            "{what} is complex; take the magnitude (abs) or the real part first"
        )));
    }
    let flat = t
        .to_device(Device::Cpu)
        .to_kind(Kind::Double)
        .contiguous()
        .view([-1]);
    let v = Vec::<f64>::try_from(&flat)?;
    let a = ndarray::Array3::from_shape_vec((c as usize, h as usize, w as usize), v)
        .map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    Ok(a)
}

fn tensor_pair(
    truth: &Tensor,
    test: &Tensor,
    metric: &str,
) -> Result<(ndarray::Array3<f64>, ndarray::Array3<f64>)> {
    if truth.size() != test.size() {
        return Err(Error::Shape {
            what: format!("{metric}: test image"),
            expected: scoreinv_operators::format_shape(&truth.size()),
            actual: scoreinv_operators::format_shape(&test.size()),
        });
    }
    Ok((
        tensor_chw(truth, &format!("{metric}: reference image"))?,
        tensor_chw(test, &format!("{metric}: test image"))?,
    ))
}

/// [`psnr`] of `[H, W]` or `[C, H, W]` tensors (over all elements, as scikit-image).
pub fn psnr_tensor(truth: &Tensor, test: &Tensor, data_range: f64) -> Result<f64> {
    let (a, b) = tensor_pair(truth, test, "psnr")?;
    psnr(&a, &b, data_range)
}

/// [`nrmse`] of `[H, W]` or `[C, H, W]` tensors.
pub fn nrmse_tensor(truth: &Tensor, test: &Tensor) -> Result<f64> {
    let (a, b) = tensor_pair(truth, test, "nrmse")?;
    nrmse(&a, &b)
}

/// [`ssim`] of `[H, W]` tensors, or of channel-first `[C, H, W]` tensors (mean over channels).
pub fn ssim_tensor(
    truth: &Tensor,
    test: &Tensor,
    data_range: f64,
    opts: &SsimOptions,
) -> Result<f64> {
    let (a, b) = tensor_pair(truth, test, "ssim")?;
    ssim_multichannel(&a, &b, 0, data_range, opts)
}

fn per_sample(
    truth: &Tensor,
    test: &Tensor,
    metric: &str,
    f: impl Fn(&Tensor, &Tensor) -> Result<f64>,
) -> Result<Vec<f64>> {
    let size = truth.size();
    if size.len() != 4 || test.size() != size {
        return Err(Error::Shape {
            what: format!("{metric}: batch"),
            expected: "[B, C, H, W] for both images".into(),
            actual: format!(
                "{} and {}",
                scoreinv_operators::format_shape(&size),
                scoreinv_operators::format_shape(&test.size())
            ),
        });
    }
    (0..size[0])
        .map(|i| f(&truth.get(i), &test.get(i)))
        .collect()
}

/// One PSNR per sample of `[B, C, H, W]` batches.
pub fn psnr_batch(truth: &Tensor, test: &Tensor, data_range: f64) -> Result<Vec<f64>> {
    per_sample(truth, test, "psnr", |a, b| psnr_tensor(a, b, data_range))
}

/// One SSIM (mean over channels) per sample of `[B, C, H, W]` batches.
pub fn ssim_batch(
    truth: &Tensor,
    test: &Tensor,
    data_range: f64,
    opts: &SsimOptions,
) -> Result<Vec<f64>> {
    per_sample(truth, test, "ssim", |a, b| {
        ssim_tensor(a, b, data_range, opts)
    })
}

/// One nRMSE per sample of `[B, C, H, W]` batches.
pub fn nrmse_batch(truth: &Tensor, test: &Tensor) -> Result<Vec<f64>> {
    per_sample(truth, test, "nrmse", nrmse_tensor)
}

/// PSNR, SSIM (default window) and nRMSE of one image pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub psnr: f64,
    pub ssim: f64,
    /// None when the truth is all zeros (an empty slice of a volume), where the Euclidean
    /// normalisation is undefined.
    pub nrmse: Option<f64>,
}

/// All three metrics of `[H, W]` / `[C, H, W]` tensors with the given SSIM options.
pub fn scores_tensor(
    truth: &Tensor,
    test: &Tensor,
    data_range: f64,
    opts: &SsimOptions,
) -> Result<Scores> {
    let (a, b) = tensor_pair(truth, test, "metrics")?;
    Ok(Scores {
        psnr: psnr(&a, &b, data_range)?,
        ssim: ssim_multichannel(&a, &b, 0, data_range, opts)?,
        nrmse: nrmse_defined(&a, &b)?,
    })
}
