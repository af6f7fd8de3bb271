//! Analytic phantoms for CT/MRI tests and synthetic training data.
//!
//! An ellipse phantom is a sum of indicator functions on the square `[−1, 1]²`:
//! `f(x, y) = Σ_k A_k · 1[((x'_k)/a_k)² + ((y'_k)/b_k)² ≤ 1]`, where `(x'_k, y'_k)` is `(x, y)`
//! shifted by the centre `(x0_k, y0_k)` and rotated by `−φ_k` (`φ` counter-clockwise from the
//! x axis, the direction of the `a` half-axis). Image convention (as MATLAB `phantom` and
//! scikit-image): row 0 is the top (`y = +1`), column 0 the left (`x = −1`). Two pixel grids
//! ([`PixelGrid`]): `CellCentred`, pixel `(i, j)` of an `N×N` image centred at
//! `x = −1 + (2j + 1)/N`, `y = 1 − (2i + 1)/N` (pixels tile the square); `Endpoints`,
//! `x = −1 + 2j/(N − 1)` (`linspace(−1, 1, N)`, MATLAB's `phantom` and the grid scikit-image's
//! 400×400 `shepp_logan_phantom()` was drawn on). With `supersample = s` each pixel is the mean
//! over an `s×s` grid of sub-pixel points inside the pixel (anti-aliased edges).
//!
//! * [`MODIFIED_SHEPP_LOGAN`]: the modified Shepp–Logan head of P. Toft, "The Radon Transform:
//!   Theory and Implementation", PhD thesis, DTU 1996 (the intensities `1, −0.8, −0.2, 0.1`
//!   give visible contrast; also MATLAB's `phantom('Modified Shepp-Logan')`). scikit-image's
//!   `data.shepp_logan_phantom()` is a 400×400 PNG of this phantom (values 0, 0.1, 0.2, 0.3,
//!   0.4, 1 up to 8-bit rounding) on the `Endpoints` grid, which [`shepp_logan`] uses;
//!   `tests/phantom_shepp.rs` compares against it.
//! * [`random_ellipses`]: the random-ellipse training phantoms of the deep-learning CT
//!   literature, with the distribution of Adler & Öktem 2018 ("Learned primal-dual
//!   reconstruction", IEEE TMI; their `random_phantom`): the number of ellipses is
//!   Poisson(50), each has intensity `(U − ½)·Exp(mean 0.4)`, half-axes `Exp(mean 0.2)`,
//!   centre uniform in `[−1, 1]²` (or `[−½, ½]²` with `interior`), angle uniform in `[0, 2π)`.
//!   The sum is clipped to `[0, 1]` and set to zero outside the inscribed circle
//!   `x² + y² ≤ 1` (the CT field of view), on the `CellCentred` grid. Seeded with ChaCha8: the same seed gives the same
//!   phantoms on every machine.
use crate::{Error, Result};
use ndarray::{Array2, Array3, Axis};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Poisson};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// One ellipse: additive `intensity`, half-axes `a` (along the rotated x axis) and `b`, centre
/// `(x0, y0)` in `[−1, 1]²` (y up), rotation `phi_deg` counter-clockwise in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ellipse {
    pub intensity: f64,
    pub a: f64,
    pub b: f64,
    pub x0: f64,
    pub y0: f64,
    pub phi_deg: f64,
}

const fn e(intensity: f64, a: f64, b: f64, x0: f64, y0: f64, phi_deg: f64) -> Ellipse {
    Ellipse {
        intensity,
        a,
        b,
        x0,
        y0,
        phi_deg,
    }
}

/// Toft's modified Shepp–Logan table (intensity, a, b, x0, y0, φ in degrees).
pub const MODIFIED_SHEPP_LOGAN: [Ellipse; 10] = [
    e(1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    e(-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    e(-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    e(-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    e(0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    e(0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    e(0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    e(0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    e(0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    e(0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
];

/// `f(x, y)` of a sum of ellipses at one point.
pub fn ellipses_at(ellipses: &[Ellipse], x: f64, y: f64) -> f64 {
    ellipses
        .iter()
        .map(|el| {
            let (s, c) = el.phi_deg.to_radians().sin_cos();
            let (dx, dy) = (x - el.x0, y - el.y0);
            let xr = dx * c + dy * s;
            let yr = -dx * s + dy * c;
            if (xr / el.a).powi(2) + (yr / el.b).powi(2) <= 1.0 {
                el.intensity
            } else {
                0.0
            }
        })
        .sum()
}

fn check_size(n: usize, supersample: usize) -> Result<()> {
    if n == 0 || supersample == 0 {
        return Err(Error::Config(format!(
            "phantom: size N = {n} and supersample = {supersample} must be at least 1"
        )));
    }
    if n.saturating_mul(supersample) > 1 << 15 {
        return Err(Error::Config(format!(
            "phantom: N·supersample = {n}·{supersample} is over 32768"
        )));
    }
    Ok(())
}

/// Where the pixel centres of an `N`-pixel axis lie in `[−1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelGrid {
    /// Pixels tile `[−1, 1]`: centres `−1 + (2k + 1)/N`, spacing `2/N`.
    #[default]
    CellCentred,
    /// `linspace(−1, 1, N)`: centres `−1 + 2k/(N − 1)` (MATLAB `phantom`, scikit-image); N ≥ 2.
    Endpoints,
}

impl PixelGrid {
    /// (centre of pixel `k`, pixel spacing) along an axis of `n` pixels.
    fn coord(self, k: usize, n: usize) -> (f64, f64) {
        match self {
            PixelGrid::CellCentred => {
                let h = 2.0 / n as f64;
                (-1.0 + (k as f64 + 0.5) * h, h)
            }
            PixelGrid::Endpoints => {
                let h = 2.0 / (n as f64 - 1.0);
                (-1.0 + k as f64 * h, h)
            }
        }
    }
}

/// Renders ellipses on an `n×n` `grid`, each pixel the mean of `supersample²` point samples.
pub fn render_ellipses(
    ellipses: &[Ellipse],
    n: usize,
    supersample: usize,
    grid: PixelGrid,
) -> Result<Array2<f64>> {
    check_size(n, supersample)?;
    if grid == PixelGrid::Endpoints && n < 2 {
        return Err(Error::Config(
            "phantom: the Endpoints grid needs N >= 2 pixels".into(),
        ));
    }
    for (k, el) in ellipses.iter().enumerate() {
        let vals = [el.intensity, el.a, el.b, el.x0, el.y0, el.phi_deg];
        if vals.iter().any(|v| !v.is_finite()) || el.a <= 0.0 || el.b <= 0.0 {
            return Err(Error::Invalid(format!(
                "phantom: ellipse {k} has non-finite values or non-positive half-axes: {el:?}"
            )));
        }
    }
    let s = supersample;
    let sub = |v: usize| (v as f64 + 0.5) / s as f64 - 0.5;
    let inv = 1.0 / (s * s) as f64;
    Ok(Array2::from_shape_fn((n, n), |(i, j)| {
        let (cy, h) = grid.coord(i, n);
        let (cx, _) = grid.coord(j, n);
        let mut acc = 0.0;
        for u in 0..s {
            let y = -(cy + h * sub(u));
            for v in 0..s {
                acc += ellipses_at(ellipses, cx + h * sub(v), y);
            }
        }
        acc * inv
    }))
}

/// The modified Shepp–Logan phantom at `n×n` (values in `[0, 1]`) on the `Endpoints` grid of
/// MATLAB and scikit-image (use [`render_ellipses`] for another grid).
pub fn shepp_logan(n: usize, supersample: usize) -> Result<Array2<f64>> {
    render_ellipses(&MODIFIED_SHEPP_LOGAN, n, supersample, PixelGrid::Endpoints)
}

/// [`shepp_logan`] as a `[1, 1, N, N]` tensor of `kind` on `device`.
pub fn shepp_logan_tensor(
    n: usize,
    supersample: usize,
    kind: Kind,
    device: Device,
) -> Result<Tensor> {
    let img = shepp_logan(n, supersample)?;
    to_tensor(&img.insert_axis(Axis(0)), kind, device)
}

/// Parameters of the random-ellipse distribution; defaults are Adler & Öktem 2018's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RandomEllipsesConfig {
    /// Mean of the Poisson number of ellipses.
    pub mean_ellipses: f64,
    /// Scale (mean) of the exponential factor of the intensity `(U − ½)·Exp`.
    pub intensity_scale: f64,
    /// Scale (mean) of the exponential half-axes.
    pub axis_scale: f64,
    /// Centres in `[−½, ½]²` instead of `[−1, 1]²`.
    pub interior: bool,
    /// Sub-pixel samples per axis (1 = point sampling, as the reference code).
    pub supersample: usize,
}

impl Default for RandomEllipsesConfig {
    fn default() -> Self {
        RandomEllipsesConfig {
            mean_ellipses: 50.0,
            intensity_scale: 0.4,
            axis_scale: 0.2,
            interior: false,
            supersample: 1,
        }
    }
}

impl RandomEllipsesConfig {
    fn validate(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v > 0.0;
        if !(ok(self.mean_ellipses) && ok(self.intensity_scale) && ok(self.axis_scale)) {
            return Err(Error::Config(format!(
                "random ellipses: mean_ellipses = {}, intensity_scale = {}, axis_scale = {} \
                 must all be positive and finite",
                self.mean_ellipses, self.intensity_scale, self.axis_scale
            )));
        }
        Ok(())
    }

    /// Draws the ellipse list of one phantom.
    pub fn sample_ellipses<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Vec<Ellipse>> {
        self.validate()?;
        let poisson = Poisson::new(self.mean_ellipses)
            .map_err(|e| Error::Config(format!("random ellipses: {e}")))?;
        let exp_i = Exp::new(1.0 / self.intensity_scale)
            .map_err(|e| Error::Config(format!("random ellipses: {e}")))?;
        let exp_a = Exp::new(1.0 / self.axis_scale)
            .map_err(|e| Error::Config(format!("random ellipses: {e}")))?;
        let count: f64 = poisson.sample(rng);
        let half = if self.interior { 0.5 } else { 1.0 };
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count as usize {
            let intensity = (rng.gen::<f64>() - 0.5) * exp_i.sample(rng);
            // Exp samples can be exactly 0 with negligible probability; keep axes positive.
            let a = exp_a.sample(rng).max(1e-9);
            let b = exp_a.sample(rng).max(1e-9);
            let x0 = half * (2.0 * rng.gen::<f64>() - 1.0);
            let y0 = half * (2.0 * rng.gen::<f64>() - 1.0);
            let phi_deg = rng.gen::<f64>() * 360.0;
            out.push(Ellipse {
                intensity,
                a,
                b,
                x0,
                y0,
                phi_deg,
            });
        }
        Ok(out)
    }
}

/// One random-ellipse phantom `n×n`: clipped to `[0, 1]`, zero outside the inscribed circle.
pub fn random_ellipses<R: Rng + ?Sized>(
    n: usize,
    cfg: &RandomEllipsesConfig,
    rng: &mut R,
) -> Result<Array2<f64>> {
    check_size(n, cfg.supersample)?;
    let ellipses = cfg.sample_ellipses(rng)?;
    let mut img = render_ellipses(&ellipses, n, cfg.supersample, PixelGrid::CellCentred)?;
    let nf = n as f64;
    for ((i, j), v) in img.indexed_iter_mut() {
        let x = -1.0 + (2.0 * j as f64 + 1.0) / nf;
        let y = 1.0 - (2.0 * i as f64 + 1.0) / nf;
        *v = if x * x + y * y > 1.0 {
            0.0
        } else {
            v.clamp(0.0, 1.0)
        };
    }
    Ok(img)
}

/// `batch` random-ellipse phantoms `[B, N, N]` from one ChaCha8 stream seeded with `seed`.
pub fn random_ellipses_batch(
    batch: usize,
    n: usize,
    cfg: &RandomEllipsesConfig,
    seed: u64,
) -> Result<Array3<f64>> {
    if batch == 0 {
        return Err(Error::Config(
            "random ellipses: batch size must be at least 1".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Array3::<f64>::zeros((batch, n, n));
    for b in 0..batch {
        let img = random_ellipses(n, cfg, &mut rng)?;
        out.index_axis_mut(Axis(0), b).assign(&img);
    }
    Ok(out)
}

/// [`random_ellipses_batch`] as a `[B, 1, N, N]` tensor of `kind` on `device`.
pub fn random_ellipses_tensor(
    batch: usize,
    n: usize,
    cfg: &RandomEllipsesConfig,
    seed: u64,
    kind: Kind,
    device: Device,
) -> Result<Tensor> {
    to_tensor(&random_ellipses_batch(batch, n, cfg, seed)?, kind, device)
}

/// `[B, N, N]` → `[B, 1, N, N]` tensor.
fn to_tensor(a: &Array3<f64>, kind: Kind, device: Device) -> Result<Tensor> {
    let (b, h, w) = a.dim();
    let v: Vec<f64> = a.iter().copied().collect();
    Ok(Tensor::from_slice(&v)
        .view([b as i64, 1, h as i64, w as i64])
        .to_kind(kind)
        .to_device(device))
}
