//! k-space sampling masks for undersampled MRI.
//!
//! A mask is a 0/1 array `Λ[ky, kx]` on the *centred* k-space grid of [`crate::mri::fft2c`]
//! (DC at `(H/2, W/2)`), and its acceleration is `R = H·W / Σ Λ` (total / sampled).
//!
//! * [`cartesian_random`]: fastMRI `RandomMaskFunc` (Zbontar et al. 2018, "fastMRI: An Open
//!   Dataset and Benchmarks for Accelerated MRI"): along the phase-encode axis (the last axis,
//!   `W`, fastMRI's `shape[-2]` column axis) `n_low = round(W · centre_fraction)` centre lines
//!   starting at `(W − n_low + 1) / 2` are always kept, and every line is additionally kept
//!   with probability `p = (W/R − n_low) / (W − n_low)`, so that the *expected* number of lines
//!   is `W/R`. fastMRI pairs `R = 4` with centre fraction 0.08 and `R = 8` with 0.04.
//! * [`cartesian_equispaced`]: fastMRI `EquispacedMaskFractionFunc`: the same centre plus lines
//!   `round(offset + k · R_adj)`, `R_adj = R (n_low − W) / (n_low R − W)`, so that the total
//!   matches `W/R` up to rounding. [`cartesian_equispaced_fixed`] is plain `EquiSpacedMaskFunc`
//!   (every R-th line plus the centre; undershoots the acceleration).
//! * [`gaussian_2d`]: 2-D variable density: a fully sampled centre box plus exactly
//!   `round(H W / R) − n_centre` further points drawn without replacement with probability
//!   proportional to `exp(−ky²/(2(s H)²) − kx²/(2(s W)²))` (Efraimidis–Spirakis keys).
//! * [`poisson_disc`]: variable-density Poisson-disc sampling (Lustig et al. 2007 "Sparse
//!   MRI"; Bridson-style dart throwing by random sequential addition on the grid): a point is
//!   accepted if no accepted point lies within `r(k) = r₀ (1 + α ρ(k))`, `ρ` the normalised
//!   distance to the centre; `r₀` is the largest radius (bisection) that still packs
//!   `round(H W / R)` points, and the first points in acceptance order are kept, so the
//!   acceleration is exact.
//! * [`radial`]: `n_lines` lines through the k-space centre at angles `θ₀ + π i / n_lines`
//!   (`θ₀` seeded), rasterised onto the grid by nearest-neighbour.
//!
//! Every generator is seeded (`rand_chacha::ChaCha8Rng`): same seed, same mask. The returned
//! [`SamplingMask`] reports its true acceleration.
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use ndarray::Array2;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::{OperatorError, Result};

/// Per-(device, kind) copies of a constant tensor, so operators that are called thousands of
/// times in a sampling loop do not re-upload their mask or maps every call. `tch::Tensor` is
/// `Send` but not `Sync`; the mutex makes the holder `Sync`.
#[derive(Default)]
pub(crate) struct TensorCache(Mutex<Vec<(Device, Kind, Tensor)>>);

impl TensorCache {
    /// The cached tensor for `(device, kind)`, made by `make` on first use.
    pub(crate) fn get(
        &self,
        device: Device,
        kind: Kind,
        make: impl FnOnce() -> std::result::Result<Tensor, tch::TchError>,
    ) -> Result<Tensor> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, t)) = guard.iter().find(|(d, k, _)| *d == device && *k == kind) {
            return Ok(t.shallow_clone());
        }
        let t = make()?;
        guard.push((device, kind, t.shallow_clone()));
        Ok(t)
    }
}

impl Clone for TensorCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl fmt::Debug for TensorCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TensorCache")
    }
}

/// A 0/1 k-space sampling mask `[H, W]` (1 = sampled) on the centred k-space grid.
#[derive(Debug, Clone)]
pub struct SamplingMask {
    mask: Array2<f32>,
    description: String,
    cache: TensorCache,
}

impl PartialEq for SamplingMask {
    fn eq(&self, other: &Self) -> bool {
        self.mask == other.mask && self.description == other.description
    }
}

impl SamplingMask {
    /// Wraps a 0/1 array (e.g. read from a file). Errors if it is empty, has a value other than
    /// 0 or 1, or samples nothing.
    pub fn from_array(mask: Array2<f32>, description: impl Into<String>) -> Result<Self> {
        let (h, w) = mask.dim();
        if h == 0 || w == 0 {
            return Err(OperatorError::Invalid(format!(
                "sampling mask has shape [{h}, {w}]; both sides must be positive"
            )));
        }
        if let Some(v) = mask.iter().find(|&&v| v != 0.0 && v != 1.0) {
            return Err(OperatorError::Invalid(format!(
                "sampling mask must contain only 0 and 1, found {v}"
            )));
        }
        if !mask.iter().any(|&v| v == 1.0) {
            return Err(OperatorError::Invalid(
                "sampling mask samples no k-space point (all zeros)".into(),
            ));
        }
        Ok(Self {
            mask,
            description: description.into(),
            cache: TensorCache::default(),
        })
    }

    /// The 0/1 array `[H, W]`.
    pub fn array(&self) -> &Array2<f32> {
        &self.mask
    }

    /// `(H, W)`.
    pub fn dim(&self) -> (usize, usize) {
        self.mask.dim()
    }

    /// Number of sampled k-space points.
    pub fn n_sampled(&self) -> usize {
        self.mask.iter().filter(|&&v| v == 1.0).count()
    }

    /// True acceleration `H·W / n_sampled`.
    pub fn acceleration(&self) -> f64 {
        self.mask.len() as f64 / self.n_sampled() as f64
    }

    /// Human-readable description of how it was made, e.g. `"random R=4 centre=0.08 seed=0"`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The mask as a `[H, W]` tensor of `kind` on `device`. Cached per device and kind and
    /// shared between calls: do not modify it in place (use `.copy()` first).
    pub fn to_tensor(&self, kind: Kind, device: Device) -> Result<Tensor> {
        let (h, w) = self.dim();
        self.cache.get(device, kind, || {
            let data: Vec<f32> = self.mask.iter().copied().collect();
            Tensor::from_slice(&data)
                .f_view([h as i64, w as i64])?
                .f_to_kind(kind)?
                .f_to_device(device)
        })
    }
}

fn check_dims(h: usize, w: usize) -> Result<()> {
    if h == 0 || w == 0 {
        return Err(OperatorError::Invalid(format!(
            "mask shape [{h}, {w}]: both sides must be positive"
        )));
    }
    Ok(())
}

fn check_acceleration(acceleration: f64) -> Result<()> {
    if !acceleration.is_finite() || acceleration < 1.0 {
        return Err(OperatorError::Invalid(format!(
            "acceleration must be a finite number >= 1, got {acceleration}"
        )));
    }
    Ok(())
}

fn check_centre_fraction(centre_fraction: f64, acceleration: f64) -> Result<()> {
    if !centre_fraction.is_finite() || !(0.0..1.0).contains(&centre_fraction) {
        return Err(OperatorError::Invalid(format!(
            "centre_fraction must be in [0, 1), got {centre_fraction}"
        )));
    }
    if centre_fraction > 1.0 / acceleration {
        return Err(OperatorError::Invalid(format!(
            "centre_fraction {centre_fraction} samples more than 1/acceleration = {} of k-space",
            1.0 / acceleration
        )));
    }
    Ok(())
}

/// fastMRI's default centre fraction for an acceleration: 0.08 for 4, 0.04 for 8, else 0.32/R.
pub fn default_centre_fraction(acceleration: f64) -> f64 {
    0.32 / acceleration
}

/// fastMRI centre lines: `n_low = round(n · fraction)` lines from `(n − n_low + 1) / 2`.
fn centre_lines(n: usize, centre_fraction: f64) -> (usize, usize) {
    let n_low = (n as f64 * centre_fraction).round() as usize;
    let pad = (n - n_low).div_ceil(2); // fastMRI: (n - n_low + 1) // 2
    (pad, n_low)
}

fn lines_to_mask(h: usize, lines: &[bool]) -> Array2<f32> {
    let w = lines.len();
    Array2::from_shape_fn((h, w), |(_, x)| if lines[x] { 1.0 } else { 0.0 })
}

/// 1-D Cartesian random mask with fully sampled centre (fastMRI `RandomMaskFunc`), lines along
/// the last axis (`W`), constant along `H`.
pub fn cartesian_random(
    h: usize,
    w: usize,
    acceleration: f64,
    centre_fraction: f64,
    seed: u64,
) -> Result<SamplingMask> {
    check_dims(h, w)?;
    check_acceleration(acceleration)?;
    check_centre_fraction(centre_fraction, acceleration)?;
    let (pad, n_low) = centre_lines(w, centre_fraction);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let prob = if n_low >= w {
        0.0
    } else {
        ((w as f64 / acceleration - n_low as f64) / (w - n_low) as f64).max(0.0)
    };
    let mut lines: Vec<bool> = (0..w).map(|_| rng.gen::<f64>() < prob).collect();
    lines[pad..pad + n_low].iter_mut().for_each(|l| *l = true);
    if !lines.iter().any(|&l| l) {
        // A zero-width centre with an unlucky draw: keep the DC line so the mask is usable.
        lines[w / 2] = true;
    }
    SamplingMask::from_array(
        lines_to_mask(h, &lines),
        format!("random R={acceleration} centre={centre_fraction} seed={seed}"),
    )
}

/// 1-D equispaced mask with fully sampled centre (fastMRI `EquispacedMaskFractionFunc`): the
/// offset of the equispaced lines is drawn from `0..round(R_adj)` with `seed`.
pub fn cartesian_equispaced(
    h: usize,
    w: usize,
    acceleration: f64,
    centre_fraction: f64,
    seed: u64,
) -> Result<SamplingMask> {
    check_dims(h, w)?;
    check_acceleration(acceleration)?;
    check_centre_fraction(centre_fraction, acceleration)?;
    let (pad, n_low) = centre_lines(w, centre_fraction);
    let mut lines = vec![false; w];
    let denom = n_low as f64 * acceleration - w as f64;
    if denom < 0.0 {
        let adjusted = acceleration * (n_low as f64 - w as f64) / denom;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let high = adjusted.round().max(1.0) as usize;
        let offset = rng.gen_range(0..high) as f64;
        let mut pos = offset;
        // numpy: np.arange(offset, num_cols - 1, adjusted_accel), rounded half to even.
        while pos < (w - 1) as f64 {
            let idx = pos.round_ties_even() as usize;
            if idx < w {
                lines[idx] = true;
            }
            pos += adjusted;
        }
    }
    lines[pad..pad + n_low].iter_mut().for_each(|l| *l = true);
    if !lines.iter().any(|&l| l) {
        lines[w / 2] = true;
    }
    SamplingMask::from_array(
        lines_to_mask(h, &lines),
        format!("equispaced R={acceleration} centre={centre_fraction} seed={seed}"),
    )
}

/// 1-D GRAPPA-style equispaced mask (fastMRI `EquiSpacedMaskFunc`): the centre lines plus
/// every `acceleration`-th line from an offset drawn from `0..acceleration` with `seed`. The
/// true acceleration is *below* the nominal one (the centre adds lines); see
/// [`SamplingMask::acceleration`]. Use [`cartesian_equispaced`] to match the acceleration.
pub fn cartesian_equispaced_fixed(
    h: usize,
    w: usize,
    acceleration: usize,
    centre_fraction: f64,
    seed: u64,
) -> Result<SamplingMask> {
    check_dims(h, w)?;
    if acceleration == 0 {
        return Err(OperatorError::Invalid(
            "acceleration must be a positive integer, got 0".into(),
        ));
    }
    check_centre_fraction(centre_fraction, acceleration as f64)?;
    let (pad, n_low) = centre_lines(w, centre_fraction);
    let offset = ChaCha8Rng::seed_from_u64(seed).gen_range(0..acceleration);
    let mut lines = vec![false; w];
    for l in lines.iter_mut().skip(offset).step_by(acceleration) {
        *l = true;
    }
    lines[pad..pad + n_low].iter_mut().for_each(|l| *l = true);
    if !lines.iter().any(|&l| l) {
        lines[w / 2] = true;
    }
    SamplingMask::from_array(
        lines_to_mask(h, &lines),
        format!("equispaced-fixed R={acceleration} centre={centre_fraction} seed={seed}"),
    )
}

/// Centre box `[y0, y0+ny) × [x0, x0+nx)` of `round(fraction · side)` per side, fastMRI-style
/// placement on both axes.
fn centre_box(h: usize, w: usize, centre_fraction: f64) -> (usize, usize, usize, usize) {
    let (y0, ny) = centre_lines(h, centre_fraction);
    let (x0, nx) = centre_lines(w, centre_fraction);
    (y0, ny, x0, nx)
}

/// Target number of samples for an acceleration, at least one.
fn n_target(h: usize, w: usize, acceleration: f64) -> usize {
    (((h * w) as f64 / acceleration).round() as usize).clamp(1, h * w)
}

/// 2-D variable-density Gaussian mask with a fully sampled centre box of `centre_fraction` of
/// each side; `std_fraction` is the Gaussian's standard deviation as a fraction of each side
/// (0.25 is a common choice). The number of samples is exactly `round(H W / R)` (or the centre
/// box if larger).
pub fn gaussian_2d(
    h: usize,
    w: usize,
    acceleration: f64,
    centre_fraction: f64,
    std_fraction: f64,
    seed: u64,
) -> Result<SamplingMask> {
    check_dims(h, w)?;
    check_acceleration(acceleration)?;
    if !centre_fraction.is_finite() || !(0.0..1.0).contains(&centre_fraction) {
        return Err(OperatorError::Invalid(format!(
            "centre_fraction must be in [0, 1), got {centre_fraction}"
        )));
    }
    if !std_fraction.is_finite() || std_fraction <= 0.0 {
        return Err(OperatorError::Invalid(format!(
            "std_fraction must be positive, got {std_fraction}"
        )));
    }
    let (y0, ny, x0, nx) = centre_box(h, w, centre_fraction);
    let target = n_target(h, w, acceleration);
    if ny * nx > target {
        return Err(OperatorError::Invalid(format!(
            "centre box {ny}x{nx} alone exceeds the {target} samples of acceleration {acceleration}"
        )));
    }
    let mut mask = Array2::<f32>::zeros((h, w));
    for y in y0..y0 + ny {
        for x in x0..x0 + nx {
            mask[[y, x]] = 1.0;
        }
    }
    let (cy, cx) = ((h / 2) as f64, (w / 2) as f64);
    let (sy, sx) = (std_fraction * h as f64, std_fraction * w as f64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Efraimidis–Spirakis: key = ln(u) / weight; the largest keys are a weighted sample
    // without replacement. ln(weight) is used directly to avoid underflow far from the centre.
    let mut keys: Vec<(f64, usize)> = Vec::with_capacity(h * w);
    for y in 0..h {
        for x in 0..w {
            let u: f64 = rng.gen();
            if mask[[y, x]] == 1.0 {
                continue;
            }
            let dy = (y as f64 - cy) / sy;
            let dx = (x as f64 - cx) / sx;
            let log_weight = -0.5 * (dy * dy + dx * dx);
            // ln(ln(1/u)) − log_weight is increasing in −key; sort ascending.
            let key = (-u.max(f64::MIN_POSITIVE).ln()).ln() - log_weight;
            keys.push((key, y * w + x));
        }
    }
    let extra = target - ny * nx;
    keys.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(_, idx) in keys.iter().take(extra) {
        mask[[idx / w, idx % w]] = 1.0;
    }
    SamplingMask::from_array(
        mask,
        format!(
            "gaussian R={acceleration} centre={centre_fraction} std={std_fraction} seed={seed}"
        ),
    )
}

/// Random sequential addition with a variable radius `r0 (1 + alpha ρ)` in a fixed visiting
/// order; returns the mask (centre box pre-filled and counted as accepted points).
fn poisson_rsa(
    h: usize,
    w: usize,
    r0: f64,
    alpha: f64,
    order: &[usize],
    centre: (usize, usize, usize, usize),
) -> (Array2<f32>, Vec<usize>) {
    let mut mask = Array2::<f32>::zeros((h, w));
    let (y0, ny, x0, nx) = centre;
    for y in y0..y0 + ny {
        for x in x0..x0 + nx {
            mask[[y, x]] = 1.0;
        }
    }
    let (cy, cx) = ((h / 2) as f64, (w / 2) as f64);
    let (hy, hx) = ((h as f64 / 2.0).max(1.0), (w as f64 / 2.0).max(1.0));
    let mut accepted = Vec::new();
    for &idx in order {
        let (y, x) = (idx / w, idx % w);
        if mask[[y, x]] == 1.0 {
            continue;
        }
        let rho = (((y as f64 - cy) / hy).powi(2) + ((x as f64 - cx) / hx).powi(2)).sqrt();
        let r = r0 * (1.0 + alpha * rho);
        let r2 = r * r;
        let reach = r.ceil() as isize;
        let mut free = true;
        'scan: for dy in -reach..=reach {
            let yy = y as isize + dy;
            if yy < 0 || yy >= h as isize {
                continue;
            }
            for dx in -reach..=reach {
                let xx = x as isize + dx;
                if xx < 0 || xx >= w as isize || (dy == 0 && dx == 0) {
                    continue;
                }
                if ((dy * dy + dx * dx) as f64) < r2 && mask[[yy as usize, xx as usize]] == 1.0 {
                    free = false;
                    break 'scan;
                }
            }
        }
        if free {
            mask[[y, x]] = 1.0;
            accepted.push(idx);
        }
    }
    (mask, accepted)
}

/// Variable-density Poisson-disc mask with a fully sampled centre box (`centre_fraction` of each
/// side). `alpha ≥ 0` sets how fast the minimum distance grows towards the k-space edge
/// (`alpha = 0`: uniform Poisson disc). The number of samples is exactly `round(H W / R)` (see
/// the module docs for how).
pub fn poisson_disc(
    h: usize,
    w: usize,
    acceleration: f64,
    centre_fraction: f64,
    alpha: f64,
    seed: u64,
) -> Result<SamplingMask> {
    check_dims(h, w)?;
    check_acceleration(acceleration)?;
    check_centre_fraction(centre_fraction, acceleration)?;
    if !alpha.is_finite() || alpha < 0.0 {
        return Err(OperatorError::Invalid(format!(
            "poisson-disc alpha must be >= 0, got {alpha}"
        )));
    }
    let centre = centre_box(h, w, centre_fraction);
    let n_centre = centre.1 * centre.3;
    let target = n_target(h, w, acceleration).max(n_centre);
    let mut order: Vec<usize> = (0..h * w).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    // Largest base radius whose packing still has at least `target` points (radius 0 accepts
    // every pixel). On the integer grid the count is a step function of r0, so the final mask
    // keeps the first `target − n_centre` points in acceptance order: a subset of a
    // Poisson-disc set keeps its minimum distance, the visiting order is uniformly random, and
    // the acceleration is exact.
    let (mut lo, mut hi) = (0.0_f64, (h.max(w)) as f64);
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        let (_, acc) = poisson_rsa(h, w, mid, alpha, &order, centre);
        if acc.len() + n_centre >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (_, accepted) = poisson_rsa(h, w, lo, alpha, &order, centre);
    let mut best = Array2::<f32>::zeros((h, w));
    let (y0, ny, x0, nx) = centre;
    for y in y0..y0 + ny {
        for x in x0..x0 + nx {
            best[[y, x]] = 1.0;
        }
    }
    for &idx in accepted.iter().take(target - n_centre) {
        best[[idx / w, idx % w]] = 1.0;
    }
    SamplingMask::from_array(
        best,
        format!("poisson R={acceleration} centre={centre_fraction} alpha={alpha} seed={seed}"),
    )
}

/// Radial mask: `n_lines` lines through the k-space centre `(H/2, W/2)` at angles
/// `θ₀ + π i / n_lines`, `θ₀ ~ U[0, π / n_lines)` from `seed`, each rasterised by
/// nearest-neighbour at half-pixel steps out to the grid corners.
pub fn radial(h: usize, w: usize, n_lines: usize, seed: u64) -> Result<SamplingMask> {
    check_dims(h, w)?;
    if n_lines == 0 {
        return Err(OperatorError::Invalid(
            "radial mask needs at least one line".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let theta0 = rng.gen::<f64>() * std::f64::consts::PI / n_lines as f64;
    let (cy, cx) = ((h / 2) as f64, (w / 2) as f64);
    let reach = ((h * h + w * w) as f64).sqrt();
    let n_steps = (2.0 * reach).ceil() as i64;
    let mut mask = Array2::<f32>::zeros((h, w));
    for i in 0..n_lines {
        let theta = theta0 + std::f64::consts::PI * i as f64 / n_lines as f64;
        let (s, c) = theta.sin_cos();
        for k in -n_steps..=n_steps {
            let t = 0.5 * k as f64;
            let y = (cy + t * s).round();
            let x = (cx + t * c).round();
            if y >= 0.0 && y < h as f64 && x >= 0.0 && x < w as f64 {
                mask[[y as usize, x as usize]] = 1.0;
            }
        }
    }
    SamplingMask::from_array(mask, format!("radial lines={n_lines} seed={seed}"))
}

/// A mask recipe, parsed from `random:R[:centre]`, `equispaced:R[:centre]`,
/// `equispaced-fixed:R[:centre]`,
/// `gaussian:R[:centre]`, `poisson:R[:centre]`, `radial:N` (centre defaults to fastMRI's
/// `0.32 / R`: 0.08 for R = 4, 0.04 for R = 8).
#[derive(Debug, Clone, PartialEq)]
pub enum MaskSpec {
    /// [`cartesian_random`].
    Random {
        acceleration: f64,
        centre_fraction: f64,
    },
    /// [`cartesian_equispaced`].
    Equispaced {
        acceleration: f64,
        centre_fraction: f64,
    },
    /// [`cartesian_equispaced_fixed`] (`equispaced-fixed:R[:centre]`, integer R).
    EquispacedFixed {
        acceleration: usize,
        centre_fraction: f64,
    },
    /// [`gaussian_2d`] with `std_fraction = 0.25`.
    Gaussian {
        acceleration: f64,
        centre_fraction: f64,
    },
    /// [`poisson_disc`] with `alpha = 1`.
    Poisson {
        acceleration: f64,
        centre_fraction: f64,
    },
    /// [`radial`].
    Radial { n_lines: usize },
}

impl MaskSpec {
    /// Builds the mask for an `[H, W]` k-space grid.
    pub fn build(&self, h: usize, w: usize, seed: u64) -> Result<SamplingMask> {
        match *self {
            MaskSpec::Random {
                acceleration,
                centre_fraction,
            } => cartesian_random(h, w, acceleration, centre_fraction, seed),
            MaskSpec::Equispaced {
                acceleration,
                centre_fraction,
            } => cartesian_equispaced(h, w, acceleration, centre_fraction, seed),
            MaskSpec::EquispacedFixed {
                acceleration,
                centre_fraction,
            } => cartesian_equispaced_fixed(h, w, acceleration, centre_fraction, seed),
            MaskSpec::Gaussian {
                acceleration,
                centre_fraction,
            } => gaussian_2d(h, w, acceleration, centre_fraction, 0.25, seed),
            MaskSpec::Poisson {
                acceleration,
                centre_fraction,
            } => poisson_disc(h, w, acceleration, centre_fraction, 1.0, seed),
            MaskSpec::Radial { n_lines } => radial(h, w, n_lines, seed),
        }
    }
}

impl FromStr for MaskSpec {
    type Err = OperatorError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: String| {
            OperatorError::Invalid(format!(
                "bad MRI mask spec '{s}': {why} (expected random:R[:centre], equispaced:R[:centre], \
                 equispaced-fixed:R[:centre], \
                 gaussian:R[:centre], poisson:R[:centre] or radial:N)"
            ))
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let kind = parts[0].to_ascii_lowercase();
        if kind == "radial" {
            if parts.len() != 2 {
                return Err(bad("radial needs the number of lines".into()));
            }
            let n_lines: usize = parts[1]
                .parse()
                .map_err(|_| bad(format!("'{}' is not a line count", parts[1])))?;
            return Ok(MaskSpec::Radial { n_lines });
        }
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad("expected kind:R or kind:R:centre".into()));
        }
        let acceleration: f64 = parts[1]
            .parse()
            .map_err(|_| bad(format!("'{}' is not an acceleration", parts[1])))?;
        check_acceleration(acceleration).map_err(|e| bad(e.to_string()))?;
        let centre_fraction = match parts.get(2) {
            Some(c) => c
                .parse()
                .map_err(|_| bad(format!("'{c}' is not a centre fraction")))?,
            None => default_centre_fraction(acceleration),
        };
        match kind.as_str() {
            "random" => Ok(MaskSpec::Random {
                acceleration,
                centre_fraction,
            }),
            "equispaced" => Ok(MaskSpec::Equispaced {
                acceleration,
                centre_fraction,
            }),
            "equispaced-fixed" => {
                if acceleration.fract() != 0.0 {
                    return Err(bad(format!(
                        "equispaced-fixed needs an integer R, got {acceleration}"
                    )));
                }
                Ok(MaskSpec::EquispacedFixed {
                    acceleration: acceleration as usize,
                    centre_fraction,
                })
            }
            "gaussian" => Ok(MaskSpec::Gaussian {
                acceleration,
                centre_fraction,
            }),
            "poisson" => Ok(MaskSpec::Poisson {
                acceleration,
                centre_fraction,
            }),
            other => Err(bad(format!("unknown mask kind '{other}'"))),
        }
    }
}

impl fmt::Display for MaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskSpec::Random {
                acceleration,
                centre_fraction,
            } => write!(f, "random:{acceleration}:{centre_fraction}"),
            MaskSpec::Equispaced {
                acceleration,
                centre_fraction,
            } => write!(f, "equispaced:{acceleration}:{centre_fraction}"),
            MaskSpec::EquispacedFixed {
                acceleration,
                centre_fraction,
            } => write!(f, "equispaced-fixed:{acceleration}:{centre_fraction}"),
            MaskSpec::Gaussian {
                acceleration,
                centre_fraction,
            } => write!(f, "gaussian:{acceleration}:{centre_fraction}"),
            MaskSpec::Poisson {
                acceleration,
                centre_fraction,
            } => write!(f, "poisson:{acceleration}:{centre_fraction}"),
            MaskSpec::Radial { n_lines } => write!(f, "radial:{n_lines}"),
        }
    }
}
