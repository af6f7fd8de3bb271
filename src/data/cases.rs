//! Evaluation cases from a spec of the shared data-spec grammar ([`super::spec`], where every
//! form is listed with what it means here and for training), each a `[C, H, W]` image in
//! [0, 1]: phantoms of held-out seeds, Fashion-MNIST test images, InVesalius slices, pictures,
//! every slice of a volume (NIfTI, DICOM series, multi-page TIFF, NPY stack `[D, H, W]` with
//! D ∉ {1, 3} or `[D, 1, H, W]`; `FILE#z=A..B[:STEP]` picks slices as if listed one by one),
//! a folder's pictures in name order (a volume among them written back as a volume too; a
//! folder without pictures is a DICOM series).
//!
//! Values: CT in Hounsfield units (DICOM, `.inv3`, and NIfTI/NPY named with the prefix
//! `hu:`) go through the HU window ([`super::ct_slices::HuWindow`]), recorded in
//! [`CaseInfo::units`] so reconstructions are written back in HU; other data already in [0, 1]
//! is kept; anything else is min–max normalised (and said so). A 4-D NIfTI is read at the time
//! point `FILE#t=K`. Every case is resized to `size × size` when given, a non-square one
//! centre-cropped to a square first (as training does, with a note in [`CaseInfo::notes`]),
//! never stretched; its affine follows ([`resized_geometry`]).

use super::ct_slices::{self, HuWindow, Orientation};
use super::invesalius::{read_inv3, CRANIUM_INV3};
use super::phantom::{random_ellipses_batch, shepp_logan, RandomEllipsesConfig};
use super::spec::{Spec, Split};
use crate::io;
use crate::{Error, Result};
use ndarray::{Array2, Array3, Axis};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::{Kind, Tensor};

/// One ground-truth image `[C, H, W]` with values in [0, 1].
pub struct Case {
    pub name: String,
    pub truth: Tensor,
    /// Where the image came from and what its values were ([`CaseInfo::default`] for an image
    /// made in memory).
    pub info: CaseInfo,
}

impl Case {
    /// A case without provenance (an image made in memory, in [0, 1]).
    pub fn new(name: impl Into<String>, truth: Tensor) -> Self {
        Case {
            name: name.into(),
            truth,
            info: CaseInfo::default(),
        }
    }
}

/// The provenance of a case, so outputs can be written back in the input's units and geometry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseInfo {
    /// The HU window the values went through (CT in Hounsfield units): outputs are written back
    /// as `HU = lo + x·(hi − lo)`. `None`: the values were not in HU.
    pub units: Option<HuWindow>,
    /// The DICOM file of this slice, whose patient and study attributes a DICOM output copies.
    pub dicom_file: Option<PathBuf>,
    /// Voxel-to-world affine (NIfTI RAS+, mm) of the case's pixel grid after any crop and
    /// resampling: world = A · (column, row, 0, 1).
    pub affine: Option<[[f64; 4]; 4]>,
    /// Voxel size `[slice thickness, row spacing, column spacing]` in mm of the case's grid.
    pub spacing: Option<[f64; 3]>,
    /// What was done to the image on the way in that the user should know (a centre crop).
    pub notes: Vec<String>,
}

/// The spec prefix saying that a file's values are Hounsfield units (`hu:ct.nii.gz`).
pub const HU_PREFIX: &str = "hu:";

/// How cases are prepared.
#[derive(Debug, Clone, Copy)]
pub struct CaseOptions {
    /// Resample every case to `size × size` (antialiased when shrinking).
    pub size: Option<i64>,
    /// HU window for CT data.
    pub window: HuWindow,
    /// Size at which phantoms are rendered when `size` is not given.
    pub default_phantom_size: usize,
    /// The files' values are Hounsfield units (the spec prefix `hu:`, for NIfTI or NPY CT
    /// volumes, which do not say so themselves): they go through the HU window.
    pub values_in_hu: bool,
}

impl Default for CaseOptions {
    fn default() -> Self {
        Self {
            size: None,
            window: HuWindow::default(),
            default_phantom_size: 128,
            values_in_hu: false,
        }
    }
}

/// The centre crop `(row0, col0, side)` that makes an `h × w` slice square before it is
/// resampled to `size × size` (as training does: score_sde's `central_crop`), `None` when no
/// crop is needed (square, or no `size`).
pub fn square_crop((h, w): (usize, usize), size: Option<i64>) -> Option<(usize, usize, usize)> {
    let m = h.min(w);
    (size.is_some() && h != w).then(|| ((h - m) / 2, (w - m) / 2, m))
}

/// The note told to the user when `what`'s `h × w` slices are centre-cropped for `size`.
fn crop_note(what: &str, (h, w): (usize, usize), size: Option<i64>) -> Option<String> {
    let (_, _, m) = square_crop((h, w), size)?;
    Some(format!(
        "{what}: the {h}x{w} image is not square: centre-cropped to {m}x{m} (as training does) \
         before resampling to `size` {n}x{n}, not stretched",
        n = size.unwrap_or(m as i64)
    ))
}

/// A case from a `[C, H, W]` image in [0, 1]: centre-cropped to a square when it is not one
/// and `size` is given ([`square_crop`], with a note), then resampled to `size × size`;
/// `info`'s affine and spacing describe the image as given and are carried over to the new
/// grid ([`resized_geometry`]). `what` names the source in the note.
fn finish(
    name: String,
    what: &str,
    img: Array3<f32>,
    opts: &CaseOptions,
    mut info: CaseInfo,
) -> Result<Case> {
    io::ensure_finite(&img, &name)?;
    let (c, h, w) = img.dim();
    if c == 0 || h == 0 || w == 0 {
        return Err(Error::Invalid(format!(
            "{name}: the image is empty (shape [{c}, {h}, {w}])"
        )));
    }
    let v: Vec<f32> = img.iter().cloned().collect();
    let mut t = Tensor::from_slice(&v).reshape([1, c as i64, h as i64, w as i64]);
    if let Some(n) = opts.size {
        if n < 2 {
            return Err(Error::Config(format!("`size` must be at least 2, got {n}")));
        }
        if let Some((r0, c0, m)) = square_crop((h, w), opts.size) {
            t = t
                .narrow(2, r0 as i64, m as i64)
                .narrow(3, c0 as i64, m as i64);
            info.notes.extend(crop_note(what, (h, w), opts.size));
        }
        t = ct_slices::resize(&t, n, n)
            .map_err(|e| Error::Invalid(format!("{name}: {e}")))?
            .clamp(0.0, 1.0);
    }
    (info.spacing, info.affine) = resized_geometry(info.spacing, info.affine, (h, w), opts.size);
    Ok(Case {
        name,
        truth: t.get(0).to_kind(Kind::Float),
        info,
    })
}

/// The affine of slice `z` of a volume with affine `a` (the origin moved `z` steps along k).
fn slice_affine(a: Option<[[f64; 4]; 4]>, z: usize) -> Option<[[f64; 4]; 4]> {
    a.map(|mut a| {
        for row in a.iter_mut().take(3) {
            row[3] += z as f64 * row[2];
        }
        a
    })
}

fn gray(a: Array2<f32>) -> Array3<f32> {
    a.insert_axis(Axis(0))
}

fn inv3_cases(path: &Path, zs: Vec<usize>, opts: &CaseOptions, out: &mut Vec<Case>) -> Result<()> {
    let vol = read_inv3(path)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "inv3".into());
    let [dz, dy, dx] = vol.spacing_mm;
    for z in zs {
        let sl = ct_slices::slice(&vol, Orientation::Axial, z, opts.window)?;
        let info = CaseInfo {
            units: Some(opts.window),
            spacing: Some([dz, dy, dx]),
            ..CaseInfo::default()
        };
        let name = format!("{stem}_z{z}");
        out.push(finish(name.clone(), &name, gray(sl), opts, info)?);
    }
    Ok(())
}

/// Normalises a picture/volume read by [`io::read_image`] to [0, 1] (see the module doc).
pub(crate) fn to_unit_range(img: &io::Image, opts: &CaseOptions, name: &str) -> Array3<f32> {
    let units = img.meta.units.as_deref();
    let range = if units == Some("HU") {
        (0.0, 0.0)
    } else {
        io::value_range(&img.data)
    };
    let scale = scale_for(units, range, opts, name);
    img.data.mapv(|v| scale.apply(v))
}

/// The file name without its image extensions: the stem of case and volume names.
fn volume_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    match io::ImageFormat::split_extension(&name) {
        Some((stem, _)) => stem.to_string(),
        None => name,
    }
}

/// The files and folders a spec reads (phantoms and the Fashion-MNIST test set: none; a
/// `#z=…` selector is dropped), so that outputs can be kept apart from inputs.
pub fn spec_paths(spec: &str) -> Vec<PathBuf> {
    let spec = spec.strip_prefix(HU_PREFIX).unwrap_or(spec);
    Spec::parse(spec).map(|s| s.paths()).unwrap_or_default()
}

/// Loads the cases one spec names (see the module doc).
pub fn load_cases(spec: &str, opts: &CaseOptions) -> Result<Vec<Case>> {
    load_cases_with_volumes(spec, opts).map(|(cases, _)| cases)
}

/// Spacing and affine of a volume whose `H×W` slices were resampled to `size×size`, after the
/// centre crop of a non-square slice to `M×M` from `(row0, col0)` ([`square_crop`]; no crop:
/// `M×M` is `H×W`, offsets 0). Voxel centres of the new grid:
/// `old = offset + s·new + (s − 1)/2` with `s = M/size` along each in-plane axis.
pub fn resized_geometry(
    spacing: Option<[f64; 3]>,
    affine: Option<[[f64; 4]; 4]>,
    (h, w): (usize, usize),
    size: Option<i64>,
) -> (Option<[f64; 3]>, Option<[[f64; 4]; 4]>) {
    let Some(n) = size else {
        return (spacing, affine);
    };
    let (r0, c0, mh, mw) = match square_crop((h, w), size) {
        Some((r0, c0, m)) => (r0, c0, m, m),
        None => (0, 0, h, w),
    };
    let (sy, sx) = (mh as f64 / n as f64, mw as f64 / n as f64);
    let spacing = spacing.map(|[dz, dy, dx]| [dz, dy * sy, dx * sx]);
    let affine = affine.map(|mut a| {
        // Columns: 0 ↔ x (W), 1 ↔ y (H), 2 ↔ z, 3 translation.
        for (c, s, off) in [(0, sx, c0), (1, sy, r0)] {
            for row in a.iter_mut().take(3) {
                row[3] += (off as f64 + (s - 1.0) / 2.0) * row[c];
                row[c] *= s;
            }
        }
        a
    });
    (spacing, affine)
}

/// A ground-truth volume whose slices became the cases `{stem}_z{K}`, with the geometry of
/// the (possibly resized) slice grid, so reconstructions can be written back as a volume
/// (written back by the study's volumes module).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceVolume {
    pub stem: String,
    /// Case name of slice `K` at index `K`.
    pub case_names: Vec<String>,
    /// `[dz, dy, dx]` in mm.
    pub spacing: Option<[f64; 3]>,
    pub affine: Option<[[f64; 4]; 4]>,
}

/// A case whose image is produced when it is needed: either already loaded, or a slice of a
/// NIfTI volume, DICOM series or NPY stack read from its file at [`PendingCase::load`] time (streamed, so
/// a study holds one batch of slices in memory, not the volume).
pub struct PendingCase {
    pub name: String,
    /// `[C, H, W]` of the image [`Self::load`] gives.
    pub shape: Vec<i64>,
    /// The HU window of CT data in Hounsfield units ([`CaseInfo::units`]).
    pub units: Option<HuWindow>,
    /// Notes for the user on how the case is prepared (one per volume, on its first slice).
    pub notes: Vec<String>,
    source: Pending,
}

enum Pending {
    Loaded(Tensor, Box<CaseInfo>),
    Slice(Rc<StreamedVolume>, usize),
}

impl PendingCase {
    fn loaded(c: Case) -> Self {
        Self {
            name: c.name,
            shape: c.truth.size(),
            units: c.info.units,
            notes: c.info.notes.clone(),
            source: Pending::Loaded(c.truth, Box::new(c.info)),
        }
    }

    /// The case's image. Slices of a streamed NIfTI are read fastest in increasing order (a
    /// slice before the reader's position reopens the file); a DICOM slice is one file.
    pub fn load(self) -> Result<Case> {
        match self.source {
            Pending::Loaded(truth, info) => Ok(Case {
                name: self.name,
                truth,
                info: *info,
            }),
            Pending::Slice(v, z) => v.case(self.name, z),
        }
    }
}

/// Where a streamed volume's slices are read from (one per study: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum SliceReader {
    /// Read in order; an earlier slice reopens the file.
    Nifti {
        path: PathBuf,
        /// The time point of a 4-D file.
        t: Option<usize>,
        reader: RefCell<Option<io::nifti::NiftiSlices>>,
    },
    /// One file per slice.
    Dicom(io::dicom::DicomSeries),
    /// A memory-mapped NPY stack.
    Npy(io::npy::NpyVolume),
}

/// How a volume's values are mapped to [0, 1] (see the module doc).
#[derive(Clone, Copy)]
enum Scale {
    /// Hounsfield units through the HU window.
    Hu(HuWindow),
    /// Already in [0, 1].
    Unit,
    /// Min–max over the whole volume: `(v − lo) / span`.
    MinMax(f32, f32),
}

/// A volume (NIfTI, DICOM series, NPY stack) whose slices become cases on demand: checked (finite
/// values) and ranged by one streamed pass when the study is set up.
struct StreamedVolume {
    reader: SliceReader,
    scale: Scale,
    opts: CaseOptions,
    /// The volume's spacing and affine as read (before any crop or resampling).
    meta: io::ImageMeta,
    /// Names the volume in notes.
    what: String,
}

impl StreamedVolume {
    fn slice(&self, z: usize) -> Result<Array2<f32>> {
        match &self.reader {
            SliceReader::Dicom(series) => series.read_slice(z),
            SliceReader::Npy(v) => v.slice(z),
            SliceReader::Nifti { path, t, reader } => {
                let mut reader = reader.borrow_mut();
                if reader.as_ref().is_none_or(|r| r.position() > z) {
                    *reader = Some(io::nifti::NiftiSlices::open_at(path, *t)?);
                }
                reader.as_mut().expect("opened above").slice_at(z)
            }
        }
    }

    fn case(&self, name: String, z: usize) -> Result<Case> {
        let scale = self.scale;
        let sl = self.slice(z)?.mapv(|v| scale.apply(v));
        let mut info = CaseInfo {
            units: scale.units(),
            spacing: self.meta.spacing,
            affine: slice_affine(self.meta.affine, z),
            ..CaseInfo::default()
        };
        if let SliceReader::Dicom(series) = &self.reader {
            info.dicom_file = series.files.get(z).cloned();
            info.affine = series.slice_affine(z).or(info.affine);
        }
        finish(name, &self.what, gray(sl), &self.opts, info)
    }
}

impl Scale {
    /// The HU window of CT data, `None` for other data.
    fn units(self) -> Option<HuWindow> {
        match self {
            Scale::Hu(w) => Some(w),
            _ => None,
        }
    }

    fn apply(self, v: f32) -> f32 {
        match self {
            Scale::Hu(w) => w.apply(v),
            Scale::Unit => v.clamp(0.0, 1.0),
            Scale::MinMax(lo, span) => (v - lo) / span,
        }
    }
}

/// [`to_unit_range`]'s mapping for a volume with these units and value range.
fn scale_for(units: Option<&str>, (lo, hi): (f32, f32), opts: &CaseOptions, name: &str) -> Scale {
    if units == Some("HU") {
        return Scale::Hu(opts.window);
    }
    if lo >= -1e-6 && hi <= 1.0 + 1e-6 {
        return Scale::Unit;
    }
    eprintln!("note: {name} has values in [{lo}, {hi}]: min-max normalised to [0, 1]");
    Scale::MinMax(lo, (hi - lo).max(f32::MIN_POSITIVE))
}

/// The set-up pass of a streamed volume: every slice (in order, slice `z` the `z`-th item)
/// checked for non-finite values, named by its index, and the value range of them all.
fn checked_range(
    spec: &str,
    slices: impl Iterator<Item = Result<Array2<f32>>>,
) -> Result<(f32, f32)> {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for (z, sl) in slices.enumerate() {
        let sl = sl?;
        io::ensure_finite(&sl, &format!("{spec} slice z={z}"))?;
        let (l, h) = io::value_range(&sl);
        (lo, hi) = (lo.min(l), hi.max(h));
    }
    Ok((lo, hi))
}

/// The cases of `spec` for a study, with the source volumes as [`load_cases_with_volumes`]: a
/// whole NIfTI volume, DICOM series or NPY stack of slices is not read into memory but checked
/// by one streamed pass (finite values, value range) and its slices are read again when each
/// case is loaded; every other spec (a folder of pictures and volumes too) is loaded here.
pub fn pending_cases(
    spec: &str,
    opts: &CaseOptions,
) -> Result<(Vec<PendingCase>, Vec<SourceVolume>)> {
    if let Some(n) = opts.size {
        if n < 2 {
            return Err(Error::Config(format!("`size` must be at least 2, got {n}")));
        }
    }
    if let Some(rest) = spec.strip_prefix(HU_PREFIX) {
        let opts = CaseOptions {
            values_in_hu: true,
            ..*opts
        };
        return pending_cases(rest, &opts);
    }
    // `FILE#t=K` (a time point of a 4-D NIfTI) is streamed as the 3-D volume it is.
    let (base, t) = io::split_time(spec)?;
    let path = Path::new(&base);
    let format = io::ImageFormat::split_extension(&base).map(|(_, f)| f);
    let streamed = if base.contains('#') || (t.is_some() && format != Some(io::ImageFormat::Nifti))
    {
        None
    } else if format == Some(io::ImageFormat::Nifti) && path.is_file() {
        let mut r = io::nifti::NiftiSlices::open_at(path, t)?;
        let (lo, hi) = checked_range(spec, std::iter::from_fn(|| r.next_slice()))?;
        let reader = SliceReader::Nifti {
            path: path.to_path_buf(),
            t,
            reader: RefCell::new(None),
        };
        Some((reader, r.dim, r.meta.clone(), (lo, hi)))
    } else if format == Some(io::ImageFormat::Npy) && path.is_file() {
        match io::npy::NpyVolume::open(path)? {
            Some(v) => {
                let range = checked_range(spec, (0..v.dim[0]).map(|z| v.slice(z)))?;
                let meta = io::ImageMeta {
                    format: Some(io::ImageFormat::Npy),
                    dtype: Some(v.dtype().into()),
                    ..Default::default()
                };
                let dim = v.dim;
                Some((SliceReader::Npy(v), dim, meta, range))
            }
            None => None,
        }
    } else if path.is_dir() && folder_pictures(path)?.is_none() {
        let series = io::dicom::DicomSeries::open(path)?;
        let (dim, meta, range) = (series.dim, series.meta.clone(), series.range);
        Some((SliceReader::Dicom(series), dim, meta, range))
    } else {
        None
    };
    let Some((reader, [d, h, w], mut meta, range)) = streamed.filter(|s| s.1[0] > 1) else {
        let (cases, volume) = load_cases_with_volumes(spec, opts)?;
        return Ok((cases.into_iter().map(PendingCase::loaded).collect(), volume));
    };
    if opts.values_in_hu {
        meta.units = Some("HU".into());
    }
    let scale = scale_for(meta.units.as_deref(), range, opts, spec);
    let vol = Rc::new(StreamedVolume {
        reader,
        scale,
        opts: *opts,
        meta: meta.clone(),
        what: spec.to_string(),
    });
    let stem = match t {
        Some(t) => format!("{}_t_{t}", volume_stem(path)),
        None => volume_stem(path),
    };
    let (oh, ow) = match opts.size {
        Some(n) => (n, n),
        None => (h as i64, w as i64),
    };
    let names: Vec<String> = (0..d).map(|z| format!("{stem}_z{z}")).collect();
    let note = crop_note(spec, (h, w), opts.size);
    let cases = names
        .iter()
        .enumerate()
        .map(|(z, n)| PendingCase {
            name: n.clone(),
            shape: vec![1, oh, ow],
            units: scale.units(),
            notes: if z == 0 {
                note.iter().cloned().collect()
            } else {
                Vec::new()
            },
            source: Pending::Slice(vol.clone(), z),
        })
        .collect();
    let (spacing, affine) = resized_geometry(meta.spacing, meta.affine, (h, w), opts.size);
    Ok((
        cases,
        vec![SourceVolume {
            stem,
            case_names: names,
            spacing,
            affine,
        }],
    ))
}

/// [`load_cases`], also giving the whole volumes among them (every slice of a NIfTI, 3-D NPY,
/// multi-page TIFF or DICOM series, named alone or found in a folder), so reconstructions can be
/// written back as volumes.
pub fn load_cases_with_volumes(
    spec: &str,
    opts: &CaseOptions,
) -> Result<(Vec<Case>, Vec<SourceVolume>)> {
    let mut volumes = Vec::new();
    let cases = load_cases_inner(spec, opts, &mut volumes)?;
    Ok((cases, volumes))
}

fn load_cases_inner(
    spec: &str,
    opts: &CaseOptions,
    volumes: &mut Vec<SourceVolume>,
) -> Result<Vec<Case>> {
    let mut out = Vec::new();
    if let Some(rest) = spec.strip_prefix(HU_PREFIX) {
        let opts = CaseOptions {
            values_in_hu: true,
            ..*opts
        };
        return load_cases_inner(rest, &opts, volumes);
    }
    let n_ph = opts
        .size
        .map(|s| s as usize)
        .unwrap_or(opts.default_phantom_size);
    match Spec::parse(spec)? {
        Spec::SheppLogan => {
            let img = shepp_logan(n_ph, 4)?.mapv(|v| v as f32);
            out.push(finish(
                "shepp_logan".into(),
                spec,
                gray(img),
                opts,
                CaseInfo::default(),
            )?);
            return Ok(out);
        }
        Spec::Ellipses(seeds) => {
            let cfg = RandomEllipsesConfig::default();
            for seed in seeds.indices() {
                let img = random_ellipses_batch(1, n_ph, &cfg, seed as u64)?
                    .index_axis_move(Axis(0), 0)
                    .mapv(|v| v as f32);
                let name = format!("ellipses_{seed}");
                out.push(finish(name, spec, gray(img), opts, CaseInfo::default())?);
            }
            return Ok(out);
        }
        Spec::FashionMnist { split, sel } => {
            let (stem, set) = match split {
                Some(Split::Train) => ("train-images-idx3-ubyte", "training"),
                _ => ("t10k-images-idx3-ubyte", "test"),
            };
            let dir = Path::new(crate::data::FASHION_MNIST_DIR);
            let file = crate::data::find_idx(dir, stem).ok_or_else(|| {
                Error::Invalid(format!(
                    "'{spec}': no Fashion-MNIST {set} set in {} (install the Debian package \
                     dataset-fashion-mnist)",
                    dir.display()
                ))
            })?;
            let idx = crate::data::idx::read_idx(&file)?;
            let (n, h, w) = match idx.dims[..] {
                [n, h, w] => (n, h, w),
                _ => return Err(Error::format(&file, "expected IDX images [N, H, W]")),
            };
            let rows = sel.map_or_else(|| (0..n).collect(), |s| s.indices());
            for k in rows {
                if k >= n {
                    return Err(Error::Invalid(format!(
                        "'{spec}': the {set} set has {n} images, index {k} is out of range"
                    )));
                }
                let px = &idx.data[k * h * w..(k + 1) * h * w];
                let img =
                    Array2::from_shape_vec((h, w), px.iter().map(|&v| v as f32 / 255.0).collect())
                        .map_err(|e| Error::Invalid(e.to_string()))?;
                let name = match split {
                    Some(Split::Train) => format!("fashion_mnist_train_{k}"),
                    _ => format!("fashion_mnist_{k}"),
                };
                out.push(finish(name, spec, gray(img), opts, CaseInfo::default())?);
            }
            return Ok(out);
        }
        Spec::Invesalius { file, z } => {
            let path = file.unwrap_or_else(|| PathBuf::from(CRANIUM_INV3));
            let zs = match z {
                Some(z) => z.indices(),
                None => (0..read_inv3(&path)?.hu.len_of(Axis(0))).collect(),
            };
            inv3_cases(&path, zs, opts, &mut out)?;
            return Ok(out);
        }
        Spec::Nifti { paths, .. } | Spec::Dicom(paths) => {
            for p in paths {
                let p = p.to_str().ok_or_else(|| {
                    Error::Invalid(format!("'{spec}': file name {} is not UTF-8", p.display()))
                })?;
                out.extend(load_cases_inner(p, opts, volumes)?);
            }
            return Ok(out);
        }
        Spec::Join(_) => {
            for part in spec.split('+') {
                out.extend(load_cases_inner(part.trim(), opts, volumes)?);
            }
            return Ok(out);
        }
        Spec::Gaussian2d(_) | Spec::Photos { .. } => {
            return Err(Error::Config(format!(
                "'{spec}' is a training data source, not evaluation cases (see the data-spec \
                 grammar)"
            )))
        }
        Spec::Path(_) => {}
    }
    if let Some(files) = folder_pictures(Path::new(spec))? {
        for f in files {
            let f = f.to_str().ok_or_else(|| {
                Error::Invalid(format!("'{spec}': file name {} is not UTF-8", f.display()))
            })?;
            out.extend(load_cases_inner(f, opts, volumes)?);
        }
        return Ok(out);
    }
    // `#t=K` (a time point of a 4-D NIfTI) is read by `io`; the case names keep it.
    let (base, t) = io::split_time(spec)?;
    let (path, sel) = match base.rsplit_once('#') {
        Some((p, s)) => (p, Some(s)),
        None => (base.as_str(), None),
    };
    let tagged = |s: Option<&str>| match (t, s) {
        (Some(t), Some(s)) => Some(format!("t={t}#{s}")),
        (Some(t), None) => Some(format!("t={t}")),
        (None, s) => s.map(String::from),
    };
    if path.to_lowercase().ends_with(".inv3") {
        let zs = match sel {
            Some(s) => super::spec::Sel::parse(s.strip_prefix("z=").unwrap_or(s), spec)?.indices(),
            None => (0..read_inv3(Path::new(path))?.hu.len_of(Axis(0))).collect(),
        };
        inv3_cases(Path::new(path), zs, opts, &mut out)?;
        return Ok(out);
    }
    // `FILE#z=A..B[:STEP]` of any volume: the cases of `FILE#z=K` for each K (same names and
    // values as when listed one by one), so a list of slices is one spec. The volume is read
    // once and sliced as `io::read_image` slices it.
    if let Some(zs) = sel
        .and_then(|s| s.strip_prefix("z="))
        .filter(|z| z.contains(".."))
    {
        let zs = super::spec::Sel::parse(zs, spec)?.indices();
        let file = Path::new(path);
        let whole = io::read_image_file_at(file, t)?;
        for z in zs {
            let sel = io::Selector {
                axis: io::SliceAxis::Z,
                index: z,
            };
            let img = whole.slice_of_file(sel, file)?;
            let one = format!("z={z}");
            image_cases(
                img,
                path,
                tagged(Some(&one)).as_deref(),
                &format!("{path}#{one}"),
                opts,
                volumes,
                &mut out,
            )?;
        }
        return Ok(out);
    }
    let img = io::read_image(spec)?;
    image_cases(
        img,
        path,
        tagged(sel).as_deref(),
        spec,
        opts,
        volumes,
        &mut out,
    )?;
    Ok(out)
}

/// The pictures of a folder ([`io::folder_images`]).
fn folder_pictures(dir: &Path) -> Result<Option<Vec<PathBuf>>> {
    io::folder_images(dir)
}

/// The cases of an image read from `spec` (= `path` with the selector `sel`, if any): one
/// picture, or every slice of a `[D, H, W]` volume (then also added to `volumes`).
fn image_cases(
    mut img: io::Image,
    path: &str,
    sel: Option<&str>,
    spec: &str,
    opts: &CaseOptions,
    volumes: &mut Vec<SourceVolume>,
    out: &mut Vec<Case>,
) -> Result<()> {
    let stem = volume_stem(Path::new(path));
    // A selected slice keeps its index in the name, so several slices of one volume do not
    // overwrite each other's outputs.
    let stem = match sel {
        Some(s) => {
            let tag: String = s
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
                .replace("__", "_");
            format!("{stem}_{}", tag.trim_matches('_'))
        }
        None => stem,
    };
    if opts.values_in_hu {
        img.meta.units = Some("HU".into());
    }
    // Checked before the values are mapped: min–max scaling would turn ±Inf into NaN.
    io::ensure_finite(&img.data, spec)?;
    if matches!(img.meta.color.as_deref(), Some("RGBA" | "gray+alpha")) {
        eprintln!(
            "note: {spec} is read as {}",
            img.meta.channels_text(img.depth())
        );
    }
    let data = to_unit_range(&img, opts, spec);
    let info = CaseInfo {
        units: (img.meta.units.as_deref() == Some("HU")).then_some(opts.window),
        spacing: img.meta.spacing,
        affine: img.meta.affine,
        ..CaseInfo::default()
    };
    // A DICOM file, or a slice of a series: the file whose patient and study a DICOM output
    // copies, and (series) the slice's own position.
    let file = Path::new(path);
    let series = if img.meta.format == Some(io::ImageFormat::Dicom) && file.is_dir() {
        Some(io::dicom::DicomSeries::open(file)?)
    } else {
        None
    };
    let dicom_slice = |info: &mut CaseInfo, z: usize| {
        if let Some(s) = &series {
            info.dicom_file = s.files.get(z).cloned();
            info.affine = s.slice_affine(z).or(info.affine);
        } else if img.meta.format == Some(io::ImageFormat::Dicom) {
            info.dicom_file = Some(file.to_path_buf());
        }
    };
    match img.axes {
        io::Axes::Chw => {
            let mut info = info;
            let z = match io::split_selector(Path::new(spec))? {
                (_, Some(s)) if s.axis == io::SliceAxis::Z => Some(s.index),
                (_, None) => Some(0),
                _ => None,
            };
            if let Some(z) = z {
                dicom_slice(&mut info, z);
            }
            out.push(finish(stem, spec, data, opts, info)?)
        }
        io::Axes::Dhw => {
            let mut names = Vec::new();
            for (z, sl) in data.axis_iter(Axis(0)).enumerate() {
                let mut info = CaseInfo {
                    affine: slice_affine(info.affine, z),
                    ..info.clone()
                };
                dicom_slice(&mut info, z);
                names.push(format!("{stem}_z{z}"));
                let name = format!("{stem}_z{z}");
                out.push(finish(name, spec, gray(sl.to_owned()), opts, info)?);
            }
            let (_, h, w) = data.dim();
            let (spacing, affine) =
                resized_geometry(img.meta.spacing, img.meta.affine, (h, w), opts.size);
            volumes.push(SourceVolume {
                stem,
                case_names: names,
                spacing,
                affine,
            });
        }
    }
    Ok(())
}
