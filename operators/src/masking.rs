//! Inpainting: `y = A x = Λ ⊙ x` for a 0/1 pixel mask `Λ` (1 = observed).
//!
//! `A` is a diagonal orthogonal projection, so `Aᴴ = A⁺ = A`. Measurements are the full image
//! times the mask (shape `[B, C, H, W]`), as in score_sde_pytorch's `get_pc_inpainter`
//! (Song et al. 2021, "Score-based generative modeling through stochastic differential
//! equations", ICLR) where the known pixels are `x ⊙ mask`. In the decomposition of Song et al.
//! 2022, `T = I` and `Λ` is the pixel mask.
//!
//! Mask recipes ([`InpaintMask`], parsed from a string):
//! * `box[:S]`: an `S × S` box in the centre is missing (default `S = H/2`, i.e. the box of
//!   score_sde's inpainting examples on 32×32 CIFAR-10, `[8, 24)²`, scaled);
//! * `random:P`: exactly `round(P · H · W)` pixels are *observed*, chosen uniformly (deepinv's
//!   `Inpainting(mask=P)` convention: P is the kept fraction);
//! * `half[:SIDE]`: the `SIDE` half (`left`, `right`, `top`, `bottom`; default `right`) is
//!   missing (score_sde's `mask[..., W/2:] = 0`);
//! * `strokes[:SEED]`: free-form brush strokes (Yu et al. 2019, "Free-form image inpainting
//!   with gated convolution"): 1–4 random walks of 4–10 segments each, segment length
//!   `H/8..H/4`, brush width `H/16..H/8`, drawn as thick lines; the strokes are missing.
//!
//! Masks from files are read by the I/O layer and passed in as an ndarray.
use std::fmt;
use std::str::FromStr;

use ndarray::{Array2, Array3};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::masks::TensorCache;
use crate::mri::real_kind;
use crate::{check_batch_shape, Decomposed, LinearOperator, OperatorError, Result};

/// Pixel-mask inpainting operator `A = diag(Λ)` on `[B, C, H, W]` real images.
#[derive(Debug, Clone)]
pub struct Masking {
    mask: Array3<f32>,
    channels: i64,
    cache: TensorCache,
}

impl Masking {
    /// `mask` is `[1, H, W]` (shared by all channels) or `[C, H, W]`, 0/1 with 1 = observed.
    pub fn new(mask: Array3<f32>, channels: usize) -> Result<Self> {
        let (mc, h, w) = mask.dim();
        if channels == 0 || h == 0 || w == 0 {
            return Err(OperatorError::Invalid(format!(
                "masking: channels={channels} and mask {:?} must be non-empty",
                mask.shape()
            )));
        }
        if mc != 1 && mc != channels {
            return Err(OperatorError::Invalid(format!(
                "masking: mask has {mc} channels; expected 1 or {channels} (the image channels)"
            )));
        }
        if let Some(v) = mask.iter().find(|&&v| v != 0.0 && v != 1.0) {
            return Err(OperatorError::Invalid(format!(
                "masking: mask must contain only 0 and 1, found {v}"
            )));
        }
        Ok(Self {
            mask,
            channels: channels as i64,
            cache: TensorCache::default(),
        })
    }

    /// From a single `[H, W]` mask shared by all channels.
    pub fn from_2d(mask: Array2<f32>, channels: usize) -> Result<Self> {
        Self::new(mask.insert_axis(ndarray::Axis(0)), channels)
    }

    /// From a tensor mask `[H, W]`, `[1, H, W]` or `[C, H, W]` on any device.
    pub fn from_tensor(mask: &Tensor, channels: usize) -> Result<Self> {
        let size = mask.size();
        let dim = match size.as_slice() {
            [h, w] => (1, *h as usize, *w as usize),
            [c, h, w] => (*c as usize, *h as usize, *w as usize),
            _ => {
                return Err(OperatorError::Invalid(format!(
                    "masking: mask tensor has shape {size:?}; expected [H, W] or [C, H, W]"
                )))
            }
        };
        let t = mask
            .f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?
            .f_view([-1])?;
        let v = Vec::<f32>::try_from(&t)?;
        let arr = Array3::from_shape_vec(dim, v)
            .map_err(|e| OperatorError::Invalid(format!("masking: {e}")))?;
        Self::new(arr, channels)
    }

    /// The 0/1 mask `[1 or C, H, W]`.
    pub fn mask_array(&self) -> &Array3<f32> {
        &self.mask
    }

    /// Fraction of observed entries.
    pub fn observed_fraction(&self) -> f64 {
        self.mask.iter().filter(|&&v| v == 1.0).count() as f64 / self.mask.len() as f64
    }

    /// `[1 or C, H, W]` mask tensor, cached per device and kind (shared: never modified).
    fn mask_tensor(&self, kind: Kind, device: Device) -> Result<Tensor> {
        let (c, h, w) = self.mask.dim();
        self.cache.get(device, kind, || {
            let data: Vec<f32> = self.mask.iter().copied().collect();
            Tensor::from_slice(&data)
                .f_view([c as i64, h as i64, w as i64])?
                .f_to_kind(kind)?
                .f_to_device(device)
        })
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let rk = real_kind(self.name(), x.kind())?;
        Ok(x.f_mul(&self.mask_tensor(rk, x.device())?)?)
    }
}

impl LinearOperator for Masking {
    fn name(&self) -> &str {
        "masking"
    }

    fn input_shape(&self) -> Vec<i64> {
        let (_, h, w) = self.mask.dim();
        vec![self.channels, h as i64, w as i64]
    }

    fn output_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    /// `Λ ⊙ x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        self.apply(x)
    }

    /// `Λ ⊙ y` (`A` is self-adjoint).
    fn adjoint(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.apply(y)
    }

    /// `Λ ⊙ y` (`A` is an orthogonal projection, so `A⁺ = A`).
    fn pseudo_inverse(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.apply(y)
    }

    fn as_decomposed(&self) -> Option<&dyn Decomposed> {
        Some(self)
    }
}

impl Decomposed for Masking {
    /// Identity.
    fn transform(&self, x: &Tensor) -> Result<Tensor> {
        self.check_input(x)?;
        real_kind(self.name(), x.kind())?;
        Ok(x.shallow_clone())
    }

    /// Identity.
    fn inverse_transform(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(
            self.name(),
            "transformed image",
            &self.transformed_shape(),
            z,
        )?;
        real_kind(self.name(), z.kind())?;
        Ok(z.shallow_clone())
    }

    fn transformed_shape(&self) -> Vec<i64> {
        self.input_shape()
    }

    /// The `[1 or C, H, W]` f32 mask (a fresh copy: callers may modify it in place).
    fn mask(&self, device: Device) -> Tensor {
        match self.mask_tensor(Kind::Float, device) {
            Ok(t) => t.copy(),
            // Only a failing device transfer gets here; the trait has no Result.
            Err(e) => panic!("masking: cannot place the mask on {device:?}: {e}"),
        }
    }

    fn subsample(&self, z: &Tensor) -> Result<Tensor> {
        check_batch_shape(
            self.name(),
            "transformed image",
            &self.transformed_shape(),
            z,
        )?;
        self.apply(z)
    }

    fn embed(&self, y: &Tensor) -> Result<Tensor> {
        self.check_output(y)?;
        self.apply(y)
    }
}

/// Which half of the image is missing in [`InpaintMask::Half`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    Left,
    #[default]
    Right,
    Top,
    Bottom,
}

/// An inpainting mask recipe (see the module docs for the string forms).
#[derive(Debug, Clone, PartialEq)]
pub enum InpaintMask {
    /// Centre box of side `size` (default `H/2`) missing.
    Box { size: Option<usize> },
    /// Fraction `fraction` of pixels observed, chosen uniformly.
    Random { fraction: f64 },
    /// One half missing.
    Half { side: Side },
    /// Free-form strokes missing; `seed` overrides the seed passed to [`InpaintMask::build`].
    Strokes { seed: Option<u64> },
}

impl InpaintMask {
    /// The `[H, W]` 0/1 mask (1 = observed).
    pub fn build(&self, h: usize, w: usize, seed: u64) -> Result<Array2<f32>> {
        if h == 0 || w == 0 {
            return Err(OperatorError::Invalid(format!(
                "inpainting mask shape [{h}, {w}] must be non-empty"
            )));
        }
        match *self {
            InpaintMask::Box { size } => {
                let s = size.unwrap_or(h.min(w) / 2);
                if s > h || s > w {
                    return Err(OperatorError::Invalid(format!(
                        "box size {s} exceeds the image [{h}, {w}]"
                    )));
                }
                let (y0, x0) = ((h - s) / 2, (w - s) / 2);
                Ok(Array2::from_shape_fn((h, w), |(y, x)| {
                    let inside = y >= y0 && y < y0 + s && x >= x0 && x < x0 + s;
                    if inside {
                        0.0
                    } else {
                        1.0
                    }
                }))
            }
            InpaintMask::Random { fraction } => {
                if !fraction.is_finite() || !(0.0..=1.0).contains(&fraction) {
                    return Err(OperatorError::Invalid(format!(
                        "random inpainting fraction must be in [0, 1], got {fraction}"
                    )));
                }
                let n = ((h * w) as f64 * fraction).round() as usize;
                let mut idx: Vec<usize> = (0..h * w).collect();
                idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                let mut m = Array2::<f32>::zeros((h, w));
                for &i in &idx[..n] {
                    m[[i / w, i % w]] = 1.0;
                }
                Ok(m)
            }
            InpaintMask::Half { side } => Ok(Array2::from_shape_fn((h, w), |(y, x)| {
                let missing = match side {
                    Side::Left => x < w / 2,
                    Side::Right => x >= w / 2,
                    Side::Top => y < h / 2,
                    Side::Bottom => y >= h / 2,
                };
                if missing {
                    0.0
                } else {
                    1.0
                }
            })),
            InpaintMask::Strokes { seed: own } => Ok(strokes(h, w, own.unwrap_or(seed))),
        }
    }
}

/// Free-form strokes: random walks of thick line segments (missing = 0).
fn strokes(h: usize, w: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Array2::<f32>::ones((h, w));
    let size = h.min(w) as f64;
    let n_strokes = rng.gen_range(1..=4);
    for _ in 0..n_strokes {
        let mut py = rng.gen::<f64>() * h as f64;
        let mut px = rng.gen::<f64>() * w as f64;
        let width = (size / 16.0 + rng.gen::<f64>() * size / 16.0).max(1.0);
        let n_vertices = rng.gen_range(4..=10);
        let mut angle = rng.gen::<f64>() * 2.0 * std::f64::consts::PI;
        for _ in 0..n_vertices {
            angle += (rng.gen::<f64>() - 0.5) * std::f64::consts::PI;
            let len = size / 8.0 + rng.gen::<f64>() * size / 8.0;
            let qy = (py + len * angle.sin()).clamp(0.0, (h - 1) as f64);
            let qx = (px + len * angle.cos()).clamp(0.0, (w - 1) as f64);
            draw_segment(&mut m, (py, px), (qy, qx), width / 2.0);
            py = qy;
            px = qx;
        }
    }
    m
}

/// Sets to 0 every pixel centre within `radius` of the segment `a–b`.
fn draw_segment(m: &mut Array2<f32>, a: (f64, f64), b: (f64, f64), radius: f64) {
    let (h, w) = m.dim();
    let y_lo = (a.0.min(b.0) - radius).floor().max(0.0) as usize;
    let y_hi = ((a.0.max(b.0) + radius).ceil() as usize).min(h - 1);
    let x_lo = (a.1.min(b.1) - radius).floor().max(0.0) as usize;
    let x_hi = ((a.1.max(b.1) + radius).ceil() as usize).min(w - 1);
    let (dy, dx) = (b.0 - a.0, b.1 - a.1);
    let len2 = dy * dy + dx * dx;
    for y in y_lo..=y_hi {
        for x in x_lo..=x_hi {
            let (py, px) = (y as f64, x as f64);
            let t = if len2 > 0.0 {
                (((py - a.0) * dy + (px - a.1) * dx) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (cy, cx) = (a.0 + t * dy, a.1 + t * dx);
            if (py - cy).powi(2) + (px - cx).powi(2) <= radius * radius {
                m[[y, x]] = 0.0;
            }
        }
    }
}

impl FromStr for InpaintMask {
    type Err = OperatorError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| {
            OperatorError::Invalid(format!(
                "bad inpainting mask spec '{s}': {why} (expected box, box:SIZE, random:FRACTION, \
                 half, half:left|right|top|bottom, strokes or strokes:SEED)"
            ))
        };
        let (kind, arg) = match s.trim().split_once(':') {
            Some((k, a)) => (k.to_ascii_lowercase(), Some(a)),
            None => (s.trim().to_ascii_lowercase(), None),
        };
        match (kind.as_str(), arg) {
            ("box", None) => Ok(InpaintMask::Box { size: None }),
            ("box", Some(a)) => {
                let size: usize = a
                    .parse()
                    .map_err(|_| bad(format!("'{a}' is not a box size")))?;
                if size == 0 {
                    return Err(bad("box size must be positive".into()));
                }
                Ok(InpaintMask::Box { size: Some(size) })
            }
            ("random", Some(a)) => {
                let fraction: f64 = a
                    .parse()
                    .map_err(|_| bad(format!("'{a}' is not a fraction")))?;
                if !fraction.is_finite() || !(0.0..=1.0).contains(&fraction) {
                    return Err(bad(format!("fraction {fraction} is outside [0, 1]")));
                }
                Ok(InpaintMask::Random { fraction })
            }
            ("random", None) => Err(bad("random needs the observed fraction".into())),
            ("half", None) => Ok(InpaintMask::Half {
                side: Side::default(),
            }),
            ("half", Some(a)) => {
                let side = match a.to_ascii_lowercase().as_str() {
                    "left" => Side::Left,
                    "right" => Side::Right,
                    "top" => Side::Top,
                    "bottom" => Side::Bottom,
                    other => return Err(bad(format!("unknown side '{other}'"))),
                };
                Ok(InpaintMask::Half { side })
            }
            ("strokes", None) => Ok(InpaintMask::Strokes { seed: None }),
            ("strokes", Some(a)) => {
                let seed: u64 = a.parse().map_err(|_| bad(format!("'{a}' is not a seed")))?;
                Ok(InpaintMask::Strokes { seed: Some(seed) })
            }
            (other, _) => Err(bad(format!("unknown mask kind '{other}'"))),
        }
    }
}

impl fmt::Display for InpaintMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InpaintMask::Box { size: None } => write!(f, "box"),
            InpaintMask::Box { size: Some(s) } => write!(f, "box:{s}"),
            InpaintMask::Random { fraction } => write!(f, "random:{fraction}"),
            InpaintMask::Half { side } => {
                let s = match side {
                    Side::Left => "left",
                    Side::Right => "right",
                    Side::Top => "top",
                    Side::Bottom => "bottom",
                };
                write!(f, "half:{s}")
            }
            InpaintMask::Strokes { seed: None } => write!(f, "strokes"),
            InpaintMask::Strokes { seed: Some(s) } => write!(f, "strokes:{s}"),
        }
    }
}
