//! Intensity normalisation to [0, 1] that remembers its inverse, so a result computed on the
//! normalised image can be written back in the input's units (HU, scanner units, ...).
//!
//! Every method is the affine map `y = clip((x − lo) / (hi − lo), 0, 1)` with
//! `x = lo + y · (hi − lo)` as inverse; the methods differ in how `lo`, `hi` are chosen:
//! * min–max: the data's minimum and maximum (no clipping needed);
//! * percentile: NumPy's default (linear-interpolated) percentiles `p_lo`, `p_hi` of the data,
//!   values outside clipped;
//! * CT window: `lo = centre − width/2`, `hi = centre + width/2` in HU (or `lo`/`hi` given),
//!   e.g. the soft-tissue window centre 40, width 400.
//!
//! A fitted [`Normalization`] serialises with serde (JSON next to the outputs).
use crate::{Error, Result};
use ndarray::{Array, ArrayBase, Data, Dimension};
use serde::{Deserialize, Serialize};

/// How to choose the `[lo, hi]` that maps to `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum NormalizeSpec {
    /// The data's minimum and maximum.
    #[default]
    MinMax,
    /// Percentiles (0–100) of the data; defaults 1 and 99.
    Percentile {
        #[serde(default = "default_p_lo")]
        p_lo: f64,
        #[serde(default = "default_p_hi")]
        p_hi: f64,
    },
    /// A CT window given by centre and width (HU).
    Window { center: f64, width: f64 },
    /// A fixed range (e.g. a CT window given as lo/hi in HU).
    Range { lo: f64, hi: f64 },
}

fn default_p_lo() -> f64 {
    1.0
}
fn default_p_hi() -> f64 {
    99.0
}

/// A fitted normalisation: `y = clip((x − lo)/(hi − lo), 0, 1)`, inverse `x = lo + y (hi − lo)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub spec: NormalizeSpec,
    pub lo: f64,
    pub hi: f64,
}

/// NumPy's `percentile(x, p)` with the default linear interpolation on sorted data:
/// position `(n − 1) p / 100` between the two neighbouring order statistics.
pub fn percentile(sorted: &[f32], p: f64) -> f64 {
    let n = sorted.len();
    if n == 1 {
        return sorted[0] as f64;
    }
    let pos = (n - 1) as f64 * p / 100.0;
    let i = pos.floor() as usize;
    let j = (i + 1).min(n - 1);
    let frac = pos - i as f64;
    let (a, b) = (sorted[i] as f64, sorted[j] as f64);
    a + (b - a) * frac
}

impl Normalization {
    /// Chooses `lo`, `hi` for `data` according to `spec`. NaN/Inf in the data, an empty array,
    /// percentiles outside 0–100 or `p_lo ≥ p_hi`, and a window with width ≤ 0 are refused. A
    /// constant image under min–max/percentile maps to 0 with `hi = lo + 1`, so it inverts
    /// exactly.
    pub fn fit<S, D>(spec: NormalizeSpec, data: &ArrayBase<S, D>) -> Result<Self>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        let (lo, hi) = match &spec {
            NormalizeSpec::Window { center, width } => {
                if !(width.is_finite() && *width > 0.0 && center.is_finite()) {
                    return Err(Error::Config(format!(
                        "CT window needs a finite centre and a width > 0, got centre {center}, \
                         width {width}"
                    )));
                }
                (center - width / 2.0, center + width / 2.0)
            }
            NormalizeSpec::Range { lo, hi } => {
                if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                    return Err(Error::Config(format!(
                        "intensity range needs finite lo < hi, got lo {lo}, hi {hi}"
                    )));
                }
                (*lo, *hi)
            }
            NormalizeSpec::MinMax | NormalizeSpec::Percentile { .. } => {
                if data.is_empty() {
                    return Err(Error::Invalid("cannot normalise an empty image".into()));
                }
                super::ensure_finite(data, "image to normalise")?;
                let (lo, hi) = match &spec {
                    NormalizeSpec::Percentile { p_lo, p_hi } => {
                        if !(0.0..=100.0).contains(p_lo)
                            || !(0.0..=100.0).contains(p_hi)
                            || p_lo >= p_hi
                        {
                            return Err(Error::Config(format!(
                                "percentiles need 0 <= p_lo < p_hi <= 100, got p_lo {p_lo}, \
                                 p_hi {p_hi}"
                            )));
                        }
                        let mut v: Vec<f32> = data.iter().copied().collect();
                        v.sort_by(|a, b| a.total_cmp(b));
                        (percentile(&v, *p_lo), percentile(&v, *p_hi))
                    }
                    _ => {
                        let lo = data.iter().fold(f32::INFINITY, |m, &v| m.min(v)) as f64;
                        let hi = data.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                        (lo, hi)
                    }
                };
                if hi > lo {
                    (lo, hi)
                } else {
                    (lo, lo + 1.0)
                }
            }
        };
        Ok(Normalization { spec, lo, hi })
    }

    /// `y = clip((x − lo)/(hi − lo), 0, 1)`.
    pub fn apply<S, D>(&self, x: &ArrayBase<S, D>) -> Array<f32, D>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        let (lo, scale) = (self.lo, self.hi - self.lo);
        x.mapv(|v| (((v as f64 - lo) / scale).clamp(0.0, 1.0)) as f32)
    }

    /// `x = lo + y (hi − lo)`: back to the input's units.
    pub fn invert<S, D>(&self, y: &ArrayBase<S, D>) -> Array<f32, D>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        let (lo, scale) = (self.lo, self.hi - self.lo);
        y.mapv(|v| (lo + v as f64 * scale) as f32)
    }

    /// [`apply`](Self::apply) on a tensor (any shape, device, float kind).
    pub fn apply_tensor(&self, x: &tch::Tensor) -> tch::Tensor {
        ((x - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }

    /// [`invert`](Self::invert) on a tensor.
    pub fn invert_tensor(&self, y: &tch::Tensor) -> tch::Tensor {
        y * (self.hi - self.lo) + self.lo
    }
}
