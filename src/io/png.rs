//! PNG via the `image` crate: 8- and 16-bit gray and RGB (alpha is dropped), read as f32 in
//! [0, 1] by dividing by `2^bits − 1`, written from f32 by `round(clamp(x, 0, 1) · (2^bits − 1))`,
//! so a read → write at the same bit depth reproduces every sample exactly. JPEG (8-bit gray or
//! RGB, e.g. photographs to colorize) is read by the same decoder; it is never written.
use super::{atomic, ensure_finite, Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use image::{DynamicImage, ImageBuffer, Luma, Rgb};
use ndarray::{Array3, ArrayBase, Data, Ix3};
use std::path::Path;

/// Bits per sample of a written PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PngBitDepth {
    Eight,
    Sixteen,
}

impl PngBitDepth {
    fn max(self) -> f32 {
        match self {
            PngBitDepth::Eight => 255.0,
            PngBitDepth::Sixteen => 65535.0,
        }
    }
}

fn planar<T: Copy + Into<f32>>(
    raw: &[T],
    h: usize,
    w: usize,
    c: usize,
    keep: usize,
    scale: f32,
) -> Array3<f32> {
    Array3::from_shape_fn((keep, h, w), |(k, i, j)| {
        raw[(i * w + j) * c + k].into() / scale
    })
}

/// Reads a PNG (or JPEG) as `[1, H, W]` (gray) or `[3, H, W]` (RGB) in [0, 1], recording the
/// bit depth and the format found in the file.
pub fn read_raster(path: &Path) -> Result<Image> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let (format, name) = match reader.format() {
        Some(image::ImageFormat::Jpeg) => (ImageFormat::Jpeg, "JPEG"),
        _ => (ImageFormat::Png, "PNG"),
    };
    let img = reader
        .decode()
        .map_err(|e| Error::format(path, format!("cannot decode {name}: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (data, bits, dtype) = match &img {
        DynamicImage::ImageLuma8(b) => (planar(b.as_raw(), h, w, 1, 1, 255.0), 8, "u8"),
        DynamicImage::ImageLumaA8(b) => (planar(b.as_raw(), h, w, 2, 1, 255.0), 8, "u8"),
        DynamicImage::ImageRgb8(b) => (planar(b.as_raw(), h, w, 3, 3, 255.0), 8, "u8"),
        DynamicImage::ImageRgba8(b) => (planar(b.as_raw(), h, w, 4, 3, 255.0), 8, "u8"),
        DynamicImage::ImageLuma16(b) => (planar(b.as_raw(), h, w, 1, 1, 65535.0), 16, "u16"),
        DynamicImage::ImageLumaA16(b) => (planar(b.as_raw(), h, w, 2, 1, 65535.0), 16, "u16"),
        DynamicImage::ImageRgb16(b) => (planar(b.as_raw(), h, w, 3, 3, 65535.0), 16, "u16"),
        DynamicImage::ImageRgba16(b) => (planar(b.as_raw(), h, w, 4, 3, 65535.0), 16, "u16"),
        other => {
            return Err(Error::format(
                path,
                format!(
                    "unsupported {name} pixel type {:?}; supported: 8/16-bit gray or RGB",
                    other.color()
                ),
            ))
        }
    };
    Ok(Image {
        data,
        axes: Axes::Chw,
        meta: ImageMeta {
            format: Some(format),
            bit_depth: Some(bits),
            dtype: Some(dtype.into()),
            ..Default::default()
        },
    })
}

/// Writes `[1, H, W]` (gray) or `[3, H, W]` (RGB) f32 data as a PNG, clamping to [0, 1] and
/// quantising to `bits`. NaN/Inf are refused.
pub fn write_png<S: Data<Elem = f32>>(
    path: &Path,
    data: &ArrayBase<S, Ix3>,
    bits: PngBitDepth,
) -> Result<()> {
    ensure_finite(data, &format!("image to write to {}", path.display()))?;
    let (c, h, w) = data.dim();
    if c != 1 && c != 3 {
        return Err(Error::Shape {
            what: format!("PNG image {}", path.display()),
            expected: "[1, H, W] (gray) or [3, H, W] (RGB); for a volume pick a slice with \
                       #z=K or write .nii.gz/.npy/.tif"
                .into(),
            actual: format!("{:?}", data.shape()),
        });
    }
    if h == 0 || w == 0 {
        return Err(Error::Shape {
            what: format!("PNG image {}", path.display()),
            expected: "a non-empty image".into(),
            actual: format!("{:?}", data.shape()),
        });
    }
    let max = bits.max();
    let q = |v: f32| (v.clamp(0.0, 1.0) * max).round();
    // interleave [C, H, W] → H, W, C
    let interleaved: Vec<f32> = (0..h)
        .flat_map(|i| (0..w).flat_map(move |j| (0..c).map(move |k| (k, i, j))))
        .map(|(k, i, j)| q(data[[k, i, j]]))
        .collect();
    let (w32, h32) = (w as u32, h as u32);
    let img = match (bits, c) {
        (PngBitDepth::Eight, 1) => DynamicImage::ImageLuma8(
            ImageBuffer::<Luma<u8>, _>::from_raw(
                w32,
                h32,
                interleaved.iter().map(|&v| v as u8).collect(),
            )
            .expect("buffer size matches"),
        ),
        (PngBitDepth::Eight, _) => DynamicImage::ImageRgb8(
            ImageBuffer::<Rgb<u8>, _>::from_raw(
                w32,
                h32,
                interleaved.iter().map(|&v| v as u8).collect(),
            )
            .expect("buffer size matches"),
        ),
        (PngBitDepth::Sixteen, 1) => DynamicImage::ImageLuma16(
            ImageBuffer::<Luma<u16>, _>::from_raw(
                w32,
                h32,
                interleaved.iter().map(|&v| v as u16).collect(),
            )
            .expect("buffer size matches"),
        ),
        (PngBitDepth::Sixteen, _) => DynamicImage::ImageRgb16(
            ImageBuffer::<Rgb<u16>, _>::from_raw(
                w32,
                h32,
                interleaved.iter().map(|&v| v as u16).collect(),
            )
            .expect("buffer size matches"),
        ),
    };
    atomic::write_atomic(path, |w| {
        img.write_to(w, image::ImageFormat::Png)
            .map_err(|e| Error::format(path, format!("cannot encode PNG: {e}")))
    })
}
