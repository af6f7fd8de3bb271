//! TIFF via the `tiff` crate: f32/f64 gray pages keep their values; 8- and 16-bit unsigned
//! pages are divided by `2^bits − 1` into [0, 1] (bit depth recorded); signed integers keep their
//! values. A multi-page gray TIFF (tifffile's layout for a 3-D array) is a `[D, H, W]` volume; a
//! single RGB page is `[3, H, W]`. Writing stores each plane of axis 0 as a 32-bit float page.
use super::{atomic, ensure_finite, Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use ::tiff::decoder::{Decoder, DecodingResult};
use ::tiff::ColorType;
use ndarray::{Array3, ArrayBase, Data, Ix3};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

fn terr(path: &Path, e: ::tiff::TiffError) -> Error {
    match e {
        ::tiff::TiffError::IoError(e) => {
            Error::format(path, format!("cannot read TIFF (truncated file?): {e}"))
        }
        e => Error::format(path, format!("cannot decode TIFF: {e}")),
    }
}

/// Samples of one page as f32 with the divisor used (1 for floats/signed), and the dtype.
fn page_to_f32(r: DecodingResult) -> (Vec<f32>, Option<u8>, &'static str) {
    match r {
        DecodingResult::U8(v) => (
            v.into_iter().map(|x| x as f32 / 255.0).collect(),
            Some(8),
            "u8",
        ),
        DecodingResult::U16(v) => (
            v.into_iter().map(|x| x as f32 / 65535.0).collect(),
            Some(16),
            "u16",
        ),
        DecodingResult::U32(v) => (v.into_iter().map(|x| x as f32).collect(), None, "u32"),
        DecodingResult::U64(v) => (v.into_iter().map(|x| x as f32).collect(), None, "u64"),
        DecodingResult::F32(v) => (v, None, "f32"),
        DecodingResult::F64(v) => (v.into_iter().map(|x| x as f32).collect(), None, "f64"),
        DecodingResult::I8(v) => (v.into_iter().map(|x| x as f32).collect(), None, "i8"),
        DecodingResult::I16(v) => (v.into_iter().map(|x| x as f32).collect(), None, "i16"),
        DecodingResult::I32(v) => (v.into_iter().map(|x| x as f32).collect(), None, "i32"),
        DecodingResult::I64(v) => (v.into_iter().map(|x| x as f32).collect(), None, "i64"),
    }
}

/// Reads a TIFF: gray pages → `[D, H, W]` (D = number of pages; one page = `[1, H, W]`),
/// one RGB page → `[3, H, W]`. Each page's declared size is checked against the memory budget
/// ([`super::budget`]) before it is decoded, with the pages read so far.
pub fn read_tiff(path: &Path) -> Result<Image> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    // The decoder is third-party code fed with file contents: a panic in it is an error about
    // this file, not a crash of the caller.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_pages(path, BufReader::new(f))
    }))
    .map_err(|_| Error::format(path, "corrupt TIFF file (the decoder gave up)"))?
}

/// Bits per sample of a colour type, as the decoder reports them.
fn sample_bits(ct: ColorType) -> u8 {
    match ct {
        ColorType::Gray(b)
        | ColorType::RGB(b)
        | ColorType::Palette(b)
        | ColorType::GrayA(b)
        | ColorType::RGBA(b)
        | ColorType::CMYK(b)
        | ColorType::YCbCr(b) => b,
    }
}

fn read_pages(path: &Path, reader: BufReader<File>) -> Result<Image> {
    let mut limits = ::tiff::decoder::Limits::default();
    limits.decoding_buffer_size = usize::try_from(super::budget::budget()).unwrap_or(usize::MAX);
    let mut dec = Decoder::new(reader)
        .map_err(|e| terr(path, e))?
        .with_limits(limits);
    let mut planes: Vec<f32> = Vec::new();
    let mut first: Option<(u32, u32, ColorType)> = None;
    let mut pages = 0usize;
    let mut bits: Option<u8>;
    let mut dtype: &str;
    loop {
        let (w, h) = dec.dimensions().map_err(|e| terr(path, e))?;
        let ct = dec.colortype().map_err(|e| terr(path, e))?;
        let channels = match ct {
            ColorType::Gray(_) => 1,
            ColorType::RGB(_) => 3,
            other => {
                return Err(Error::format(
                    path,
                    format!("unsupported TIFF colour type {other:?}; supported: gray or RGB"),
                ))
            }
        };
        if w == 0 || h == 0 {
            return Err(Error::format(
                path,
                format!("TIFF page {pages} is {w}x{h}: a zero-length axis, it holds no pixels"),
            ));
        }
        match first {
            None => first = Some((w, h, ct)),
            Some((w0, h0, ct0)) => {
                if (w0, h0, ct0) != (w, h, ct) {
                    return Err(Error::format(
                        path,
                        format!(
                            "page {pages} is {w}x{h} {ct:?} but page 0 is {w0}x{h0} {ct0:?}; \
                             a multi-page TIFF must have equal pages"
                        ),
                    ));
                }
                if channels != 1 {
                    return Err(Error::format(
                        path,
                        "multi-page RGB TIFF is not supported (one RGB page, or gray pages)",
                    ));
                }
            }
        }
        // This page as decoded and as f32, on top of the pages read so far.
        let samples = (w as u128) * (h as u128) * channels as u128;
        let page_bytes = samples * (u128::from(sample_bits(ct)).div_ceil(8) + 4);
        super::budget::check_file_alloc(
            path,
            page_bytes + planes.len() as u128 * 4,
            &format!(
                "TIFF page {pages} of {w}x{h} {ct:?} samples (after {pages} page(s) of the same \
                 size)"
            ),
        )?;
        let (v, b, d) = page_to_f32(dec.read_image().map_err(|e| terr(path, e))?);
        let (w, h) = (w as usize, h as usize);
        if channels > 1 && v.len() == w * h {
            return Err(Error::format(
                path,
                "RGB TIFF with separate colour planes (PlanarConfiguration = 2) is not \
                 supported; save the channels as gray pages (tifffile photometric='minisblack')",
            ));
        }
        if v.len() != w * h * channels {
            return Err(Error::format(
                path,
                format!(
                    "page {pages} has {} samples, expected {w}x{h}x{channels}",
                    v.len()
                ),
            ));
        }
        if channels == 1 {
            planes.extend(v);
        } else {
            // interleaved H, W, C → C, H, W
            for k in 0..channels {
                planes.extend((0..w * h).map(|p| v[p * channels + k]));
            }
        }
        bits = b;
        dtype = d;
        pages += 1;
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| terr(path, e))?;
    }
    let Some((w, h, ct)) = first else {
        return Err(Error::format(path, "TIFF file has no pages"));
    };
    let rgb = matches!(ct, ColorType::RGB(_));
    let c = if rgb { 3 } else { pages };
    let data = Array3::from_shape_vec((c, h as usize, w as usize), planes)
        .map_err(|e| Error::format(path, format!("inconsistent TIFF size: {e}")))?;
    Ok(Image {
        data,
        axes: if pages > 1 { Axes::Dhw } else { Axes::Chw },
        meta: ImageMeta {
            format: Some(ImageFormat::Tiff),
            bit_depth: bits,
            dtype: Some(dtype.into()),
            color: Some(if rgb { "RGB" } else { "gray" }.into()),
            ..Default::default()
        },
    })
}

/// Writes each plane of axis 0 of `[C or D, H, W]` as a 32-bit float gray page.
pub fn write_tiff<S: Data<Elem = f32>>(path: &Path, data: &ArrayBase<S, Ix3>) -> Result<()> {
    ensure_finite(data, &format!("image to write to {}", path.display()))?;
    let (d, h, w) = data.dim();
    if d == 0 || h == 0 || w == 0 {
        return Err(Error::Shape {
            what: format!("TIFF image {}", path.display()),
            expected: "a non-empty [D, H, W] array".into(),
            actual: format!("{:?}", data.shape()),
        });
    }
    atomic::write_atomic(path, |wr| {
        let mut enc = ::tiff::encoder::TiffEncoder::new(wr)
            .map_err(|e| Error::format(path, format!("cannot encode TIFF: {e}")))?;
        for k in 0..d {
            let plane: Vec<f32> = data
                .index_axis(ndarray::Axis(0), k)
                .iter()
                .copied()
                .collect();
            enc.write_image::<::tiff::encoder::colortype::Gray32Float>(w as u32, h as u32, &plane)
                .map_err(|e| Error::format(path, format!("cannot encode TIFF: {e}")))?;
        }
        Ok(())
    })
}
