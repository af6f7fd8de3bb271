//! 2-D slices of a CT volume for training and evaluation: a fixed HU window mapped to [0, 1],
//! the three orientations, an area-preserving resize to the model's size, and a deterministic
//! held-out block.
//!
//! The window is a fixed HU interval `[lo, hi]` mapped linearly to [0, 1] and clipped; the default
//! `[-1000, 1500]` keeps air, soft tissue and the skull. It is recorded with the data so
//! reconstructions can be written back in HU.

use super::invesalius::CtVolume;
use crate::{Error, Result};
use ndarray::{s, Array2, Axis};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// A linear HU window `[lo, hi]` → `[0, 1]` (clipped).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HuWindow {
    pub lo: f32,
    pub hi: f32,
}

impl Default for HuWindow {
    /// Air (−1000 HU) to dense bone (+1500 HU): the whole head anatomy, no clipping of the skull.
    fn default() -> Self {
        Self {
            lo: -1000.0,
            hi: 1500.0,
        }
    }
}

impl HuWindow {
    /// HU → [0, 1].
    pub fn apply(&self, hu: f32) -> f32 {
        ((hu - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
    /// [0, 1] → HU.
    pub fn invert(&self, v: f32) -> f32 {
        self.lo + v * (self.hi - self.lo)
    }
}

/// Slice orientation of a `[z, y, x]` volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    /// Fixed z (the acquisition plane).
    Axial,
    /// Fixed y.
    Coronal,
    /// Fixed x.
    Sagittal,
}

/// One windowed slice `[H, W]` in [0, 1] (no resampling: anisotropic voxels are kept as they are).
pub fn slice(vol: &CtVolume, o: Orientation, index: usize, w: HuWindow) -> Result<Array2<f32>> {
    let axis = match o {
        Orientation::Axial => 0,
        Orientation::Coronal => 1,
        Orientation::Sagittal => 2,
    };
    let n = vol.hu.len_of(Axis(axis));
    if index >= n {
        return Err(Error::Invalid(format!(
            "{o:?} slice {index} out of range: the volume has {n} along that axis"
        )));
    }
    let sl = match o {
        Orientation::Axial => vol.hu.slice(s![index, .., ..]),
        Orientation::Coronal => vol.hu.slice(s![.., index, ..]),
        Orientation::Sagittal => vol.hu.slice(s![.., .., index]),
    };
    // Coronal and sagittal slices have z as rows; flip so the head is upright (z grows upward).
    let sl = match o {
        Orientation::Axial => sl.to_owned(),
        _ => sl.slice(s![..;-1, ..]).to_owned(),
    };
    Ok(sl.mapv(|v| w.apply(v)))
}

/// Resizes a batch `[B, C, H, W]` to `[B, C, h, w]`: antialiased bilinear (area-aware when
/// shrinking, like PIL / torchvision `antialias=True`), plain bilinear when growing. An empty
/// axis, a target below 1 pixel, or an allocation libtorch refuses is an error, not a panic.
pub fn resize(x: &Tensor, h: i64, w: i64) -> Result<Tensor> {
    let size = x.size();
    if size.len() != 4 || size.iter().any(|&d| d < 1) || h < 1 || w < 1 {
        return Err(Error::Invalid(format!(
            "cannot resize an image batch of shape {size:?} to {h}×{w}: every axis needs at \
             least one pixel"
        )));
    }
    if size[2] == h && size[3] == w {
        return Ok(x.shallow_clone());
    }
    let bytes = (size[0] * size[1]) as u128 * h as u128 * w as u128 * 4;
    crate::io::budget::check_alloc(bytes, &format!("resizing {size:?} to {h}×{w}"))?;
    let shrinking = size[2] > h || size[3] > w;
    let xf = x.f_to_kind(Kind::Float)?;
    let y = if shrinking {
        xf.f_internal_upsample_bilinear2d_aa([h, w], false, None, None)?
    } else {
        xf.f_upsample_bilinear2d([h, w], false, None, None)?
    };
    Ok(y.f_to_kind(x.kind())?)
}

/// `[H, W]` ndarray → `[1, 1, H, W]` f32 tensor.
pub fn to_tensor(a: &Array2<f32>) -> Tensor {
    let (h, w) = a.dim();
    let v: Vec<f32> = a.iter().cloned().collect();
    Tensor::from_slice(&v).reshape([1, 1, h as i64, w as i64])
}

/// Which axial slices of the InVesalius head are held out of training (a block through the
/// cranium above the orbits): `[HELD_OUT_AXIAL.0, HELD_OUT_AXIAL.1)`. Coronal and sagittal
/// training slices are cut from the axial range below the block only (`z < HELD_OUT_AXIAL.0`), so
/// no held-out voxel is ever seen in training.
pub const HELD_OUT_AXIAL: (usize, usize) = (64, 80);

/// Fraction of a slice's mean intensity below which a coronal/sagittal slice counts as empty
/// (air around the head) and is left out of training.
const MIN_TISSUE_MEAN: f64 = 0.05;

/// Training slices `[N, 1, size, size]` of a CT volume in [0, 1], in the three orientations,
/// none touching the held-out block [`HELD_OUT_AXIAL`]:
/// * every axial slice outside the block, resized to `size × size`;
/// * coronal and sagittal slices of the sub-volume below the block (`z < HELD_OUT_AXIAL.0`),
///   resampled to their physical aspect ratio (z spacing ≠ in-plane spacing), set upright at the
///   bottom of a `size × size` field of view of air (value 0, −1000 HU under the default window)
///   with the in-plane width of the axial slices; slices that are mostly air (mean below 0.05)
///   are dropped.
pub fn training_slices(vol: &CtVolume, w: HuWindow, size: i64) -> Result<Tensor> {
    if size < 2 {
        return Err(Error::Config(format!(
            "size must be at least 2, got {size}"
        )));
    }
    let (nz, ny, nx) = vol.hu.dim();
    let (hz, hy, hx) = (vol.spacing_mm[0], vol.spacing_mm[1], vol.spacing_mm[2]);
    let mut out: Vec<Tensor> = Vec::new();
    for z in (0..nz).filter(|z| !(HELD_OUT_AXIAL.0..HELD_OUT_AXIAL.1).contains(z)) {
        let sl = slice(vol, Orientation::Axial, z, w)?;
        out.push(resize(&to_tensor(&sl), size, size)?);
    }
    let zmax = HELD_OUT_AXIAL.0.min(nz);
    if zmax > 0 {
        let sub = CtVolume {
            hu: vol.hu.slice(s![..zmax, .., ..]).to_owned(),
            spacing_mm: vol.spacing_mm,
            source: vol.source.clone(),
        };
        for (o, n, width_mm) in [
            (Orientation::Coronal, ny, nx as f64 * hx),
            (Orientation::Sagittal, nx, ny as f64 * hy),
        ] {
            let rows = ((size as f64 * zmax as f64 * hz / width_mm).round() as i64).clamp(1, size);
            for i in 0..n {
                let sl = slice(&sub, o, i, w)?;
                if sl.mean().unwrap_or(0.0) < MIN_TISSUE_MEAN as f32 {
                    continue;
                }
                let part = resize(&to_tensor(&sl), rows, size)?;
                let canvas = Tensor::zeros([1, 1, size, size], (Kind::Float, tch::Device::Cpu));
                canvas.narrow(2, size - rows, rows).copy_(&part);
                out.push(canvas);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no training slices outside the held-out block",
            vol.source.display()
        )));
    }
    Ok(Tensor::cat(&out, 0).clamp(0.0, 1.0))
}
