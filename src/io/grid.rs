//! Sample grids: `N` images `[N, C, H, W]` tiled row by row, `nrow` images per row, with
//! `padding` pixels of `pad_value` around and between them — the layout of torchvision's
//! `make_grid` / `save_image` used by score_sde_pytorch for its sample figures (grid size
//! `(pad + rows·(H + pad)) × (pad + nrow·(W + pad))`).
use super::png::{write_png, PngBitDepth};
use super::{convert::tensor_to_array, ensure_finite};
use crate::{Error, Result};
use ndarray::{s, Array3, Ix4};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Layout and intensity range of a grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GridOptions {
    /// Images per row (torchvision's `nrow`, default 8).
    pub nrow: usize,
    /// Pixels between and around the images (default 2).
    pub padding: usize,
    /// Value of the padding, in the output's [0, 1] (default 0, black).
    pub pad_value: f32,
    /// Values mapped to black and white; `None` means the images are already in [0, 1].
    pub range: Option<(f64, f64)>,
    /// 8- or 16-bit PNG (default 8).
    pub sixteen_bit: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            nrow: 8,
            padding: 2,
            pad_value: 0.0,
            range: None,
            sixteen_bit: false,
        }
    }
}

/// Tiles `[N, C, H, W]` images into one `[C, rows·(H+p)+p, nrow·(W+p)+p]` array in [0, 1]
/// (values mapped by `range`, then clamped).
pub fn make_grid(images: &tch::Tensor, opts: &GridOptions) -> Result<Array3<f32>> {
    let a = tensor_to_array::<f32>(images)?;
    let a = a.into_dimensionality::<Ix4>().map_err(|_| Error::Shape {
        what: "images for a grid".into(),
        expected: "[N, C, H, W]".into(),
        actual: format!("{:?}", images.size()),
    })?;
    ensure_finite(&a, "images for a grid")?;
    let (n, c, h, w) = a.dim();
    if n == 0 || h == 0 || w == 0 || !(c == 1 || c == 3) {
        return Err(Error::Shape {
            what: "images for a grid".into(),
            expected: "[N >= 1, C = 1 or 3, H >= 1, W >= 1]".into(),
            actual: format!("{:?}", a.shape()),
        });
    }
    if opts.nrow == 0 {
        return Err(Error::Config("grid nrow must be at least 1".into()));
    }
    let (lo, hi) = match opts.range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && hi > lo => (lo, hi),
        Some((lo, hi)) => {
            return Err(Error::Config(format!(
                "grid range needs finite lo < hi, got ({lo}, {hi})"
            )))
        }
        None => (0.0, 1.0),
    };
    let cols = opts.nrow.min(n);
    let rows = n.div_ceil(cols);
    let p = opts.padding;
    let mut grid = Array3::from_elem((c, rows * (h + p) + p, cols * (w + p) + p), opts.pad_value);
    for k in 0..n {
        let (r, q) = (k / cols, k % cols);
        let (y0, x0) = (p + r * (h + p), p + q * (w + p));
        let img = a.slice(s![k, .., .., ..]);
        grid.slice_mut(s![.., y0..y0 + h, x0..x0 + w])
            .assign(&img.mapv(|v| (((v as f64 - lo) / (hi - lo)).clamp(0.0, 1.0)) as f32));
    }
    Ok(grid)
}

/// [`make_grid`] written as a PNG (atomically).
pub fn save_grid_png(
    path: impl AsRef<Path>,
    images: &tch::Tensor,
    opts: &GridOptions,
) -> Result<()> {
    let grid = make_grid(images, opts)?;
    let bits = if opts.sixteen_bit {
        PngBitDepth::Sixteen
    } else {
        PngBitDepth::Eight
    };
    write_png(path.as_ref(), &grid, bits)
}
