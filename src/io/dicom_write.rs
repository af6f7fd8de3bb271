//! Writing CT images in Hounsfield units as DICOM (PS3.3 A.3, CT Image IOD) with `dicom-object`:
//! one file per slice, explicit VR little endian, signed 16-bit stored values with
//! `HU = RescaleSlope · stored + RescaleIntercept` (PS3.3 C.11.1.1.2).
//!
//! The rescale is chosen so the stored values `−32767 … 32767` span the HU range `[lo, hi]`:
//! `RescaleIntercept = (lo + hi) / 2`, `RescaleSlope = (hi − lo) / 65534` (both written as the
//! decimal strings DICOM stores, and the stored values rounded with exactly those), so a value
//! read back differs from the one written by at most `RescaleSlope / 2` ([`rescale`]): 0.019 HU
//! for the window −1000…1500.
//!
//! Geometry comes from the slice's NIfTI (RAS+) affine: ImagePositionPatient is its origin and
//! ImageOrientationPatient its first two columns in LPS (x and y negated), PixelSpacing their
//! lengths (PS3.3 C.7.6.2.1.1). Patient, study and frame-of-reference attributes are copied
//! from the source slice's own DICOM file when there is one; otherwise fresh ones are made.
//! UIDs are `2.25.` followed by a UUID as a decimal integer (PS3.5 B.2); the UUID is derived
//! from a name by SHA-256 (RFC 9562 UUID version 8, its appendix B.2), so a resumed or repeated
//! study writes the same UIDs for the same results.
use crate::{Error, Result};
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use ndarray::ArrayView2;
use std::path::Path;

/// The attributes copied from the source slice's DICOM file: patient, study, frame of
/// reference and acquisition context (PS3.3 C.7.1.1, C.7.2.1, C.7.4.1).
pub const COPIED_TAGS: [Tag; 20] = [
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::PATIENT_AGE,
    tags::PATIENT_WEIGHT,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::STUDY_ID,
    tags::STUDY_DESCRIPTION,
    tags::ACCESSION_NUMBER,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::FRAME_OF_REFERENCE_UID,
    tags::POSITION_REFERENCE_INDICATOR,
    tags::PATIENT_POSITION,
    tags::BODY_PART_EXAMINED,
    tags::SPECIFIC_CHARACTER_SET,
    tags::KVP,
];

/// A UID `2.25.N` where N is the RFC 9562 version-8 UUID made of the first 128 bits of
/// SHA-256(`name`) (version and variant bits set), as a decimal integer.
pub fn uid_from_name(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0F) | 0x80; // version 8
    b[8] = (b[8] & 0x3F) | 0x80; // variant 10
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// A decimal string of at most 16 characters (the DS limit) close to `v`.
fn ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    for prec in (0..=12).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= 16 {
            return if s == "-0" { "0".into() } else { s };
        }
    }
    format!("{v:.6e}")
}

/// `(slope, intercept, slope text, intercept text)` for the HU range `[lo, hi]` (see the module
/// doc): the numbers are those the texts read back as.
pub fn rescale(lo: f64, hi: f64) -> (f64, f64, String, String) {
    let st = ds(((hi - lo) / 65534.0).max(1e-6));
    let it = ds((lo + hi) / 2.0);
    let s: f64 = st.parse().expect("formatted from a number");
    let i: f64 = it.parse().expect("formatted from a number");
    (s, i, st, it)
}

/// One series of derived CT images (one method's reconstructions of one source).
#[derive(Debug, Clone)]
pub struct SeriesInfo {
    pub series_uid: String,
    pub series_number: i64,
    /// SeriesDescription, e.g. "scoreinv fbp reconstruction".
    pub description: String,
    /// Patient ID, study and frame-of-reference UIDs for a slice without a source DICOM file.
    pub fresh_patient_id: String,
    pub fresh_study_uid: String,
    pub fresh_frame_uid: String,
}

/// One slice to write.
pub struct CtSlice<'a> {
    /// `[rows, columns]` in HU.
    pub hu: ArrayView2<'a, f32>,
    /// The HU range the values lie in (values outside are clipped to what int16 holds).
    pub range: (f64, f64),
    /// The DICOM file of the source slice (patient and study copied from it).
    pub source: Option<&'a Path>,
    /// NIfTI (RAS+) affine of the slice's pixel grid: world = A · (column, row, 0, 1).
    pub affine: Option<[[f64; 4]; 4]>,
    /// `[thickness, row spacing, column spacing]` in mm, used when there is no affine.
    pub spacing: Option<[f64; 3]>,
    /// InstanceNumber (1-based).
    pub instance: i64,
    pub sop_uid: String,
}

fn strs(tag: Tag, vr: VR, v: &[String]) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::Strs(v.iter().cloned().collect()))
}

fn text(tag: Tag, vr: VR, v: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(v))
}

fn us(tag: Tag, v: u16) -> InMemElement {
    DataElement::new(tag, VR::US, PrimitiveValue::from(v))
}

/// ImagePositionPatient, ImageOrientationPatient, PixelSpacing and SliceThickness of a slice
/// (see the module doc); without an affine: axial, at z = (instance − 1) · thickness.
fn geometry(s: &CtSlice) -> ([f64; 3], [f64; 6], [f64; 2], f64) {
    let [dz, dy, dx] = s.spacing.unwrap_or([1.0; 3]);
    let Some(a) = s.affine else {
        return (
            [0.0, 0.0, (s.instance - 1) as f64 * dz],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            [dy, dx],
            dz,
        );
    };
    let lps = |c: usize| [-a[0][c], -a[1][c], a[2][c]];
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (x, y) = (lps(0), lps(1));
    let (nx, ny) = (norm(x), norm(y));
    let thick = match norm(lps(2)) {
        t if t > 0.0 && t.is_finite() => t,
        _ => dz,
    };
    (
        lps(3),
        [
            x[0] / nx,
            x[1] / nx,
            x[2] / nx,
            y[0] / ny,
            y[1] / ny,
            y[2] / ny,
        ],
        [ny, nx],
        s.spacing.map(|s| s[0]).unwrap_or(thick),
    )
}

/// Writes one CT slice as a DICOM file (atomically), see the module doc.
pub fn write_ct_slice(path: &Path, s: &CtSlice, series: &SeriesInfo) -> Result<()> {
    let (rows, cols) = s.hu.dim();
    if rows == 0 || cols == 0 || rows > u16::MAX as usize || cols > u16::MAX as usize {
        return Err(Error::Invalid(format!(
            "{}: a {rows}x{cols} image cannot be written as DICOM",
            path.display()
        )));
    }
    super::ensure_finite(&s.hu, &format!("image to write to {}", path.display()))?;
    let mut obj = InMemDicomObject::new_empty();
    let mut copied = false;
    if let Some(src) = s.source {
        let template = super::dicom::open_object(src)?;
        for tag in COPIED_TAGS {
            if let Ok(e) = template.element(tag) {
                obj.put(e.clone());
            }
        }
        copied = true;
    }
    if !copied {
        obj.put(text(tags::PATIENT_NAME, VR::PN, "Anonymous"));
        obj.put(text(tags::PATIENT_ID, VR::LO, &series.fresh_patient_id));
        obj.put(text(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            &series.fresh_study_uid,
        ));
        obj.put(text(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            &series.fresh_frame_uid,
        ));
        obj.put(text(tags::STUDY_ID, VR::SH, "1"));
        obj.put(text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""));
        obj.put(text(tags::STUDY_DATE, VR::DA, ""));
        obj.put(text(tags::STUDY_TIME, VR::TM, ""));
        obj.put(text(tags::ACCESSION_NUMBER, VR::SH, ""));
        obj.put(text(tags::PATIENT_BIRTH_DATE, VR::DA, ""));
        obj.put(text(tags::PATIENT_SEX, VR::CS, ""));
        obj.put(text(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""));
    }
    let (ipp, iop, spacing, thick) = geometry(s);
    let n = [
        iop[1] * iop[5] - iop[2] * iop[4],
        iop[2] * iop[3] - iop[0] * iop[5],
        iop[0] * iop[4] - iop[1] * iop[3],
    ];
    let location = n[0] * ipp[0] + n[1] * ipp[1] + n[2] * ipp[2];
    let (lo, hi) = s.range;
    let (slope, intercept, slope_t, intercept_t) = rescale(lo, hi);
    let stored: Vec<u16> =
        s.hu.iter()
            .map(|&v| {
                let q = ((v as f64 - intercept) / slope)
                    .round()
                    .clamp(-32768.0, 32767.0);
                (q as i16) as u16
            })
            .collect();
    let ds_list = |v: &[f64]| v.iter().map(|&x| ds(x)).collect::<Vec<_>>();
    let elements = [
        text(tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, &s.sop_uid),
        strs(
            tags::IMAGE_TYPE,
            VR::CS,
            &["DERIVED".into(), "SECONDARY".into(), "AXIAL".into()],
        ),
        text(tags::MODALITY, VR::CS, "CT"),
        text(tags::MANUFACTURER, VR::LO, "scoreinv"),
        text(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &series.series_uid),
        text(
            tags::SERIES_NUMBER,
            VR::IS,
            &series.series_number.to_string(),
        ),
        text(tags::SERIES_DESCRIPTION, VR::LO, &series.description),
        text(tags::DERIVATION_DESCRIPTION, VR::ST, &series.description),
        text(tags::INSTANCE_NUMBER, VR::IS, &s.instance.to_string()),
        strs(tags::IMAGE_POSITION_PATIENT, VR::DS, &ds_list(&ipp)),
        strs(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, &ds_list(&iop)),
        strs(tags::PIXEL_SPACING, VR::DS, &ds_list(&spacing)),
        text(tags::SLICE_THICKNESS, VR::DS, &ds(thick)),
        text(tags::SLICE_LOCATION, VR::DS, &ds(location)),
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows as u16),
        us(tags::COLUMNS, cols as u16),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 16),
        us(tags::HIGH_BIT, 15),
        us(tags::PIXEL_REPRESENTATION, 1),
        text(tags::RESCALE_INTERCEPT, VR::DS, &intercept_t),
        text(tags::RESCALE_SLOPE, VR::DS, &slope_t),
        text(tags::RESCALE_TYPE, VR::LO, "HU"),
        text(tags::WINDOW_CENTER, VR::DS, &ds((lo + hi) / 2.0)),
        text(tags::WINDOW_WIDTH, VR::DS, &ds(hi - lo)),
        DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::U16(stored.into_iter().collect()),
        ),
    ];
    for e in elements {
        obj.put(e);
    }
    // Type 2 attributes of the CT Image module (PS3.3 C.8.2.1): present, empty when unknown.
    if obj.element(tags::KVP).is_err() {
        obj.put(text(tags::KVP, VR::DS, ""));
    }
    obj.put(text(tags::ACQUISITION_NUMBER, VR::IS, ""));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(uid_from_name("scoreinv implementation"))
                .implementation_version_name(format!("SCOREINV_{}", env!("CARGO_PKG_VERSION"))),
        )
        .map_err(|e| Error::Invalid(format!("{}: DICOM file meta: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| Error::format(path, format!("cannot encode DICOM: {e}")))?;
    super::atomic::write_bytes(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UIDs are valid (digits and dots, at most 64 characters, no leading zero in a
    /// component), differ by name and are stable.
    #[test]
    fn name_based_uids() {
        let a = uid_from_name("a");
        assert_eq!(a, uid_from_name("a"));
        assert_ne!(a, uid_from_name("b"));
        assert!(a.len() <= 64 && a.starts_with("2.25."), "{a}");
        for c in a.split('.') {
            assert!(!c.is_empty() && c.chars().all(|d| d.is_ascii_digit()));
            assert!(c == "0" || !c.starts_with('0'), "{a}");
        }
        // version 8, variant 10 (RFC 9562)
        let n: u128 = a[5..].parse().unwrap();
        assert_eq!((n >> 76) & 0xF, 8);
        assert_eq!((n >> 62) & 0x3, 2);
    }

    /// The stated precision holds: quantising with the written slope and intercept, a value
    /// anywhere in the range comes back within slope / 2; a control with a slope twice as
    /// coarse exceeds that bound.
    #[test]
    fn rescale_precision() {
        let (s, i, st, it) = rescale(-1000.0, 1500.0);
        assert!(st.len() <= 16 && it.len() <= 16);
        assert!((s - 2500.0 / 65534.0).abs() < 1e-9);
        let mut worst: f64 = 0.0;
        let mut worst_coarse: f64 = 0.0;
        for k in 0..=10_000 {
            let hu = -1000.0 + 2500.0 * k as f64 / 10_000.0 + 0.0123;
            let hu = hu.min(1500.0);
            let q = ((hu - i) / s).round();
            assert!((-32768.0..=32767.0).contains(&q));
            worst = worst.max((q * s + i - hu).abs());
            let qc = ((hu - i) / (2.0 * s)).round();
            worst_coarse = worst_coarse.max((qc * 2.0 * s + i - hu).abs());
        }
        assert!(worst <= s / 2.0 + 1e-9, "{worst}");
        assert!(worst_coarse > s / 2.0 + 1e-9);
    }

    #[test]
    fn decimal_strings_fit() {
        for v in [0.0, -0.0, 1.0 / 3.0, -123456.789, 1e-20, 0.03814813, 250.0] {
            let s = ds(v);
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() < 1e-6 * v.abs().max(1.0), "{v} {s}");
        }
    }
}
