//! PNG via the `image` crate: 8- and 16-bit gray and RGB (alpha is dropped, and the file's
//! layout recorded in [`ImageMeta::color`]), read as f32 in
//! [0, 1] by dividing by `2^bits − 1`, written from f32 by `round(clamp(x, 0, 1) · (2^bits − 1))`,
//! so a read → write at the same bit depth reproduces every sample exactly. JPEG (8-bit gray or
//! RGB, e.g. photographs to colorize) is read by the same decoder; it is never written.
use super::{atomic, ensure_finite, Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use image::{DynamicImage, ImageBuffer, ImageDecoder, Luma, Rgb};
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

/// The colour layout of a decoded picture as messages name it.
fn color_name(c: image::ColorType) -> String {
    use image::ColorType as C;
    match c {
        C::L8 | C::L16 => "gray".into(),
        C::La8 | C::La16 => "gray+alpha".into(),
        C::Rgb8 | C::Rgb16 | C::Rgb32F => "RGB".into(),
        C::Rgba8 | C::Rgba16 | C::Rgba32F => "RGBA".into(),
        other => format!("{other:?}"),
    }
}

/// Reads a PNG (or JPEG) as `[1, H, W]` (gray, gray+alpha) or `[3, H, W]` (RGB, RGBA) in
/// [0, 1], recording the bit depth, the format found in the file and its colour layout
/// ([`ImageMeta::color`]: an RGBA file is `"RGBA"` though its alpha is dropped). A TIFF under a
/// PNG/JPEG name is read by [`super::tiff::read_tiff`]. The image size the header declares is
/// checked against the memory budget ([`super::budget`]) before the pixels are decoded.
pub fn read_raster(path: &Path) -> Result<Image> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let (format, name) = match reader.format() {
        Some(image::ImageFormat::Jpeg) => (ImageFormat::Jpeg, "JPEG"),
        // The image crate's TIFF decoder has no float samples; ours does.
        Some(image::ImageFormat::Tiff) => return super::tiff::read_tiff(path),
        _ => (ImageFormat::Png, "PNG"),
    };
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(super::budget::budget());
    reader.limits(limits);
    let cannot = |e: image::ImageError| Error::format(path, format!("cannot decode {name}: {e}"));
    let decoder = reader.into_decoder().map_err(cannot)?;
    let (w, h) = decoder.dimensions();
    let color = decoder.color_type();
    let described = format!("{name} image of {w}x{h} {} pixels", color_name(color));
    if w == 0 || h == 0 {
        return Err(Error::format(
            path,
            format!("{described} has a zero-length axis: it holds no pixels"),
        ));
    }
    // The decoded samples and the f32 planes made from them.
    let planes = if color.has_color() { 3u128 } else { 1 };
    let f32_bytes = (w as u128) * (h as u128) * planes * 4;
    super::budget::check_file_alloc(
        path,
        (decoder.total_bytes() as u128).saturating_add(f32_bytes),
        &described,
    )?;
    let img = DynamicImage::from_decoder(decoder).map_err(cannot)?;
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
                    "unsupported {name} pixel type {:?} ({}); supported: 8/16-bit gray, \
                     gray+alpha, RGB or RGBA (alpha is dropped)",
                    other.color(),
                    color_name(other.color())
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
            color: Some(color_name(img.color())),
            ..Default::default()
        },
    })
}

impl ImageMeta {
    /// `c` channels said with the file's colour layout where that differs: `"3 channels (an
    /// RGBA file, alpha dropped)"`, `"1 channel (a gray+alpha file, alpha dropped)"`, else
    /// `"3 channels"`. For messages about the channels an image has.
    pub fn channels_text(&self, c: usize) -> String {
        let plain = format!("{c} channel{}", if c == 1 { "" } else { "s" });
        match self.color.as_deref() {
            Some(color @ ("RGBA" | "gray+alpha")) => {
                let stored = if color == "RGBA" { 4 } else { 2 };
                let article = if color == "RGBA" { "an" } else { "a" };
                format!("{plain} ({article} {color} file of {stored} channels, alpha dropped)")
            }
            _ => plain,
        }
    }
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
