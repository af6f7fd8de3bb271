//! Image and volume I/O: PNG, TIFF, NPY, NIfTI, DICOM, with normalisation to [0, 1] that can be
//! inverted, atomic writes and ndarray ⇄ `tch::Tensor` conversion.
//!
//! # Conventions
//! * An [`Image`] holds an `Array3<f32>` whose axes are `[C, H, W]` (channels of a 2-D picture,
//!   [`Axes::Chw`]) or `[D, H, W]` (slices of a volume, [`Axes::Dhw`]). Rows (H) run top to
//!   bottom, columns (W) left to right, C order.
//! * Integer PNG/TIFF samples are divided by `2^bits − 1` so values lie in [0, 1]; the bit depth
//!   is kept in [`ImageMeta::bit_depth`] so writing back reproduces the samples exactly.
//!   NPY, NIfTI and DICOM values are physical values (NIfTI after `scl_slope`/`scl_inter`,
//!   DICOM in Hounsfield units after `RescaleSlope`/`RescaleIntercept`); map them to [0, 1] with
//!   [`normalize`], which records the inverse.
//! * Volumes (NIfTI, DICOM series, TIFF stacks, NPY stacks of gray slices: `[D, H, W]` with
//!   D ∉ {1, 3}, or `[D, 1, H, W]`; see [`npy::volume_dims`]) are `[D, H, W] = [z, y, x]`:
//!   NIfTI's voxel `(i, j, k)` (nibabel `get_fdata()[i, j, k]`) is `data[[k, j, i]]`.
//! * A path may end in a selector `#z=K`, `#y=K` or `#x=K` (`vol.nii.gz#z=90`): the image is
//!   then the 2-D slice at index K along axis 0 (z), 1 (y) or 2 (x), returned as `[1, ·, ·]`.
//!   `#x=` gives `[z, y]`, `#y=` gives `[z, x]`, `#z=` gives `[y, x]`.
//! * A 4-D NIfTI (x, y, z, t) is read at one time point named by `#t=K` (`fmri.nii.gz#t=2`),
//!   before any slice selector: `fmri.nii.gz#t=2#z=10` is slice 10 of time point 2
//!   ([`split_time`]). A 4-D file without `#t=` is refused, naming its number of time points.
//!
//! Errors name the file and the problem ([`crate::Error::Io`], [`crate::Error::Format`]); the
//! helpers [`ensure_finite`], [`ensure_2d`], [`ensure_3d`] and [`ensure_shape`] give the CLI one
//! wording for NaN and shape problems.
pub mod atomic;
pub mod budget;
pub mod convert;
pub mod curves;
pub mod dicom;
pub mod dicom_write;
pub mod fastmri;
pub mod figure;
pub mod grid;
pub mod nifti;
pub mod normalize;
pub mod npy;
pub mod output;
pub mod png;
pub mod safetensors;
pub mod tiff;

pub use convert::{
    array_to_tensor, complex_array_to_tensor, tensor_to_array, tensor_to_array3,
    tensor_to_complex_array,
};
pub use grid::{make_grid, save_grid_png, GridOptions};
pub use normalize::{Normalization, NormalizeSpec};

use crate::{Error, Result};
use ndarray::{Array2, Array3, ArrayBase, ArrayD, Axis, Data, Dimension, Ix2, Ix3};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What axis 0 of [`Image::data`] means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Axes {
    /// `[C, H, W]`: the channels of one 2-D picture (gray C = 1, RGB C = 3).
    #[default]
    Chw,
    /// `[D, H, W]`: the slices of a volume (z, y, x).
    Dhw,
}

/// The file formats scoreinv reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageFormat {
    Png,
    /// Read only (lossy: outputs are written as PNG, NPY, TIFF or NIfTI).
    Jpeg,
    Tiff,
    Npy,
    Nifti,
    Dicom,
}

/// The file-name extensions of the image formats (matched case-insensitively).
const EXTENSIONS: [(&str, ImageFormat); 10] = [
    (".png", ImageFormat::Png),
    (".jpg", ImageFormat::Jpeg),
    (".jpeg", ImageFormat::Jpeg),
    (".tif", ImageFormat::Tiff),
    (".tiff", ImageFormat::Tiff),
    (".npy", ImageFormat::Npy),
    (".nii", ImageFormat::Nifti),
    (".nii.gz", ImageFormat::Nifti),
    (".dcm", ImageFormat::Dicom),
    (".dicom", ImageFormat::Dicom),
];

impl ImageFormat {
    /// The format a path's extension names (`.png`, `.jpg`/`.jpeg`, `.tif`/`.tiff`, `.npy`,
    /// `.nii`/`.nii.gz`, `.dcm`/`.dicom`, or a folder = DICOM series).
    pub fn from_path(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(ImageFormat::Dicom);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        match Self::split_extension(&name) {
            Some((_, f)) => Ok(f),
            None => Err(Error::format(
                path,
                "unknown image format (expected .png, .jpg, .jpeg, .tif, .tiff, .npy, .nii, \
                 .nii.gz, .dcm or a folder of DICOM files or pictures)",
            )),
        }
    }

    /// A file name split into its stem and the format its extension names (any letter case:
    /// `scan.NII.GZ` → `("scan", Nifti)`); `None` when the extension names no image format.
    pub fn split_extension(name: &str) -> Option<(&str, Self)> {
        let lower = name.to_ascii_lowercase();
        EXTENSIONS
            .iter()
            .find(|(ext, _)| lower.ends_with(ext))
            .map(|&(ext, f)| (&name[..name.len() - ext.len()], f))
    }
}

/// Where an image came from and what its values mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImageMeta {
    /// The format read from (None for images made in memory).
    pub format: Option<ImageFormat>,
    /// Bits per sample of integer PNG/TIFF files (8 or 16); values were divided by
    /// `2^bit_depth − 1`. None for floating-point and physical-unit data.
    pub bit_depth: Option<u8>,
    /// The element type stored in the file (`u8`, `u16`, `i16`, `f32`, `f64`, ...).
    pub dtype: Option<String>,
    /// Voxel size along `[D, H, W]` in mm (NIfTI pixdim, DICOM spacing); for a single
    /// slice, axis 0 is the slice thickness / spacing.
    pub spacing: Option<[f64; 3]>,
    /// Physical units of the values: `"HU"` for CT DICOM.
    pub units: Option<String>,
    /// NIfTI voxel-to-world affine (mm): world = A · (i, j, k, 1) with (i, j, k) = (x, y, z)
    /// = indices along (W, H, D), i.e. `data[[k, j, i]]`. From the sform (None for a qform-only file); written
    /// back as the sform, so outputs overlay their input in viewers.
    #[serde(default)]
    pub affine: Option<[[f64; 4]; 4]>,
    /// Colour layout stored in a PNG/JPEG/TIFF file (`gray`, `gray+alpha`, `RGB`, `RGBA`): an
    /// RGBA file is read as its 3 RGB channels, and messages about channels say so
    /// ([`ImageMeta::channels_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// An image or volume as `f32` `[C, H, W]` or `[D, H, W]` with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub data: Array3<f32>,
    pub axes: Axes,
    pub meta: ImageMeta,
}

impl Image {
    /// A `[C, H, W]` picture with no metadata.
    pub fn chw(data: Array3<f32>) -> Self {
        Image {
            data,
            axes: Axes::Chw,
            meta: ImageMeta::default(),
        }
    }
    /// A `[D, H, W]` volume with no metadata.
    pub fn dhw(data: Array3<f32>) -> Self {
        Image {
            data,
            axes: Axes::Dhw,
            meta: ImageMeta::default(),
        }
    }
    /// A single-channel `[1, H, W]` picture.
    pub fn gray(data: Array2<f32>) -> Self {
        Self::chw(data.insert_axis(Axis(0)))
    }
    /// Size of axis 0 (channels or slices).
    pub fn depth(&self) -> usize {
        self.data.shape()[0]
    }
    pub fn height(&self) -> usize {
        self.data.shape()[1]
    }
    pub fn width(&self) -> usize {
        self.data.shape()[2]
    }
    /// The 2-D slice at `index` along `axis` (z = 0, y = 1, x = 2), as a `[1, ·, ·]` picture.
    pub fn slice(&self, sel: Selector) -> Result<Image> {
        let ax = sel.axis.index();
        let n = self.data.shape()[ax];
        if sel.index >= n {
            return Err(Error::Invalid(format!(
                "slice {}={} is out of range: the {} axis has {} slices (0..={})",
                sel.axis.name(),
                sel.index,
                sel.axis.name(),
                n,
                n.saturating_sub(1)
            )));
        }
        let plane = self.data.index_axis(Axis(ax), sel.index).to_owned();
        Ok(Image {
            data: plane.insert_axis(Axis(0)),
            axes: Axes::Chw,
            meta: self.meta.sliced(sel),
        })
    }
    /// [`Self::slice`] of an image read from `file`: an out-of-range index is reported as a
    /// format error naming the file.
    pub fn slice_of_file(&self, sel: Selector, file: &Path) -> Result<Image> {
        self.slice(sel).map_err(|e| match e {
            Error::Invalid(m) => Error::format(file, m),
            e => e,
        })
    }
    /// The image as a `[1, C, H, W]` f32 tensor on the CPU.
    pub fn to_tensor(&self) -> tch::Tensor {
        array_to_tensor(&self.data).unsqueeze(0)
    }
}

impl ImageMeta {
    /// The metadata of the slice `sel` of a volume with this metadata: the affine of a z-slice
    /// (None for x/y slices), spacing reordered to `[slice axis, rest…]`.
    fn sliced(&self, sel: Selector) -> ImageMeta {
        let ax = sel.axis.index();
        let mut meta = self.clone();
        meta.affine = match (sel.axis, meta.affine) {
            // a z-slice is the one-voxel-thick volume starting at k: shift the origin by k·column z
            (SliceAxis::Z, Some(mut a)) => {
                for row in a.iter_mut().take(3) {
                    row[3] += sel.index as f64 * row[2];
                }
                Some(a)
            }
            _ => None,
        };
        if let Some(s) = meta.spacing {
            let rest: Vec<f64> = (0..3).filter(|&a| a != ax).map(|a| s[a]).collect();
            meta.spacing = Some([s[ax], rest[0], rest[1]]);
        }
        meta
    }
}

/// A volume axis in `[z, y, x]` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SliceAxis {
    Z,
    Y,
    X,
}

impl SliceAxis {
    /// Its index in `[D, H, W] = [z, y, x]`.
    pub fn index(self) -> usize {
        match self {
            SliceAxis::Z => 0,
            SliceAxis::Y => 1,
            SliceAxis::X => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SliceAxis::Z => "z",
            SliceAxis::Y => "y",
            SliceAxis::X => "x",
        }
    }
}

/// One slice of a volume: `#z=90` in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    pub axis: SliceAxis,
    pub index: usize,
}

/// Splits `file.nii.gz#z=90` into the file and the selector. A `#` not followed by
/// `x=`/`y=`/`z=` and an integer is part of the file name.
pub fn split_selector(path: &Path) -> Result<(PathBuf, Option<Selector>)> {
    let s = path.to_string_lossy();
    let Some(pos) = s.rfind('#') else {
        return Ok((path.to_path_buf(), None));
    };
    let (file, tail) = (&s[..pos], &s[pos + 1..]);
    let Some((ax, idx)) = tail.split_once('=') else {
        return Ok((path.to_path_buf(), None));
    };
    let axis = match ax.trim() {
        "z" | "Z" => SliceAxis::Z,
        "y" | "Y" => SliceAxis::Y,
        "x" | "X" => SliceAxis::X,
        _ => return Ok((path.to_path_buf(), None)),
    };
    let index = idx.trim().parse::<usize>().map_err(|_| {
        Error::Invalid(format!(
            "{}: slice selector '#{tail}' needs a non-negative integer index, e.g. #{}=0",
            path.display(),
            axis.name()
        ))
    })?;
    Ok((PathBuf::from(file), Some(Selector { axis, index })))
}

/// Splits the time point `#t=K` off a path (`fmri.nii.gz#t=2#z=10` →
/// `("fmri.nii.gz#z=10", Some(2))`); a path that exists as named is kept whole (a `#` in a
/// file name). `#t=` without a non-negative integer is an error.
pub fn split_time(path: &str) -> Result<(String, Option<usize>)> {
    if Path::new(path).exists() {
        return Ok((path.to_string(), None));
    }
    let Some(pos) = path.find("#t=").or_else(|| path.find("#T=")) else {
        return Ok((path.to_string(), None));
    };
    let rest = &path[pos + 3..];
    let end = rest.find('#').unwrap_or(rest.len());
    let t = rest[..end].trim().parse::<usize>().map_err(|_| {
        Error::Invalid(format!(
            "{path}: time-point selector '#t={}' needs a non-negative integer index, e.g. #t=0",
            &rest[..end]
        ))
    })?;
    Ok((format!("{}{}", &path[..pos], &rest[end..]), Some(t)))
}

/// Reads an image or volume, choosing the reader from the extension (a folder is read as a
/// DICOM series), at the time point `#t=K` of a 4-D NIfTI if the path names one, then applies a
/// `#z=`/`#y=`/`#x=` selector if the path has one.
pub fn read_image(path: impl AsRef<Path>) -> Result<Image> {
    let (path, t) = split_time(&path.as_ref().to_string_lossy())?;
    let (file, sel) = split_selector(Path::new(&path))?;
    if let Some(sel) = sel.filter(|s| s.axis == SliceAxis::Z) {
        if file.is_file() && matches!(ImageFormat::from_path(&file), Ok(ImageFormat::Nifti)) {
            return read_nifti_z_slice(&file, t, sel);
        }
        if file.is_file() && matches!(ImageFormat::from_path(&file), Ok(ImageFormat::Npy)) {
            if let Some(v) = npy::NpyVolume::open(&file)? {
                // One slice of a stack read from the map, equal to slicing the whole array.
                return Ok(Image {
                    data: v.slice(sel.index)?.insert_axis(Axis(0)),
                    axes: Axes::Chw,
                    meta: ImageMeta {
                        format: Some(ImageFormat::Npy),
                        dtype: Some(v.dtype().into()),
                        ..Default::default()
                    },
                });
            }
        }
    }
    let img = read_image_file_at(&file, t)?;
    match sel {
        Some(sel) => img.slice_of_file(sel, &file),
        None => Ok(img),
    }
}

/// `FILE.nii[.gz]#z=K` read slice by slice up to `K` (one slice in memory), equal to slicing the
/// whole volume.
fn read_nifti_z_slice(file: &Path, t: Option<usize>, sel: Selector) -> Result<Image> {
    let mut r = nifti::NiftiSlices::open_at(file, t)?;
    let depth = r.dim[0];
    if sel.index >= depth {
        return Err(Error::format(
            file,
            format!(
                "slice z={} is out of range: the z axis has {depth} slices (0..={})",
                sel.index,
                depth.saturating_sub(1)
            ),
        ));
    }
    let plane = r.slice_at(sel.index)?;
    Ok(Image {
        data: plane.insert_axis(Axis(0)),
        axes: Axes::Chw,
        meta: r.meta.sliced(sel),
    })
}

/// One slice of a volume chosen by argument rather than by a `#z=` suffix:
/// `read_slice(path, SliceAxis::Z, 90)` is `read_image("path#z=90")`.
pub fn read_slice(path: impl AsRef<Path>, axis: SliceAxis, index: usize) -> Result<Image> {
    let path = path.as_ref();
    read_image_file(path)?.slice_of_file(Selector { axis, index }, path)
}

/// [`read_image_file`] at time point `t` of a 4-D NIfTI (`None`: a 2-D or 3-D file); a time
/// point of any other format is an error naming the file.
pub fn read_image_file_at(path: &Path, t: Option<usize>) -> Result<Image> {
    let Some(t) = t else {
        return read_image_file(path);
    };
    if path.is_file() && matches!(ImageFormat::from_path(path), Ok(ImageFormat::Nifti)) {
        return nifti::read_nifti_at(path, Some(t));
    }
    if !path.exists() {
        return read_image_file(path); // names the missing file
    }
    Err(Error::format(
        path,
        format!("#t={t} selects a time point of a 4-D NIfTI file; this is not one"),
    ))
}

/// [`read_image`] without selector parsing.
pub fn read_image_file(path: &Path) -> Result<Image> {
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    match ImageFormat::from_path(path)? {
        ImageFormat::Png | ImageFormat::Jpeg => png::read_raster(path),
        ImageFormat::Tiff => tiff::read_tiff(path),
        ImageFormat::Npy => npy::read_npy_image(path),
        ImageFormat::Nifti => nifti::read_nifti(path),
        ImageFormat::Dicom => {
            if path.is_dir() {
                dicom::read_dicom_series(path)
            } else {
                dicom::read_dicom_file(path)
            }
        }
    }
}

/// Writes an image, choosing the writer from the extension: `.png` (8-bit unless
/// `meta.bit_depth == Some(16)`; values clamped to [0, 1]), `.tif`/`.tiff` (f32 pages),
/// `.npy` (f32 `[C, H, W]` or `[D, H, W]` as held), `.nii`/`.nii.gz` (the `[D, H, W]` volume as NIfTI x, y, z with
/// `meta.spacing`). The write is atomic (see [`atomic`]); NaN/Inf are refused.
pub fn write_image(path: impl AsRef<Path>, image: &Image) -> Result<()> {
    let path = path.as_ref();
    ensure_finite(
        &image.data,
        &format!("image to write to {}", path.display()),
    )?;
    match ImageFormat::from_path(path)? {
        ImageFormat::Png => {
            let bits = match image.meta.bit_depth {
                Some(16) => png::PngBitDepth::Sixteen,
                _ => png::PngBitDepth::Eight,
            };
            png::write_png(path, &image.data, bits)
        }
        ImageFormat::Tiff => tiff::write_tiff(path, &image.data),
        ImageFormat::Npy => npy::write_npy(path, &image.data),
        ImageFormat::Nifti => {
            nifti::write_nifti(path, &image.data, image.meta.spacing, image.meta.affine)
        }
        ImageFormat::Dicom => Err(Error::format(
            path,
            "writing DICOM is not supported for images (CT results in HU are written as DICOM \
             series by `reconstruct ct --output-dicom`); write .nii.gz, .npy, .tif or .png \
             instead",
        )),
        ImageFormat::Jpeg => Err(Error::format(
            path,
            "writing JPEG is not supported (lossy); write .png, .tif, .npy or .nii.gz instead",
        )),
    }
}

/// `(min, max)` of `values` (NaN ignored; `(+∞, −∞)` for none): what min–max normalisation
/// divides by. Ranges of several parts combine with `min`/`max`.
pub fn value_range<'a>(values: impl IntoIterator<Item = &'a f32>) -> (f32, f32) {
    values
        .into_iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        })
}

/// Refuses arrays with NaN or ±Inf, saying how many and where the first one is.
pub fn ensure_finite<S, D>(a: &ArrayBase<S, D>, what: &str) -> Result<()>
where
    S: Data<Elem = f32>,
    D: Dimension,
{
    let (mut nan, mut inf) = (0usize, 0usize);
    let mut first = None;
    // Logical (row-major) order; the flat index is turned into plain coordinates.
    for (k, v) in a.iter().enumerate() {
        if !v.is_finite() {
            if v.is_nan() {
                nan += 1;
            } else {
                inf += 1;
            }
            if first.is_none() {
                first = Some((k, *v));
            }
        }
    }
    match first {
        None => Ok(()),
        Some((k, v)) => {
            let mut coords = vec![0usize; a.ndim()];
            let mut rest = k;
            for (c, &n) in coords.iter_mut().zip(a.shape()).rev() {
                *c = rest % n.max(1);
                rest /= n.max(1);
            }
            let list: Vec<String> = coords.iter().map(|c| c.to_string()).collect();
            Err(Error::NonFinite(format!(
                "{what} ({} of {} values; the first, {}, at [{}])",
                count_phrase(nan, inf),
                a.len(),
                value_word(v),
                list.join(", ")
            )))
        }
    }
}

/// `NaN`, `+Inf` or `-Inf` (or the number).
fn value_word(v: f32) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f32::INFINITY {
        "+Inf".into()
    } else if v == f32::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// "2 NaN and 1 infinite", "3 infinite", "1 NaN".
fn count_phrase(nan: usize, inf: usize) -> String {
    match (nan, inf) {
        (0, i) => format!("{i} infinite"),
        (n, 0) => format!("{n} NaN"),
        (n, i) => format!("{n} NaN and {i} infinite"),
    }
}

/// How many values of a tensor are NaN and how many infinite ("2 NaN and 1 infinite of 4096
/// values"); empty when all are finite.
pub fn nonfinite_summary(x: &tch::Tensor) -> String {
    let nan = x.isnan().sum(tch::Kind::Int64).int64_value(&[]) as usize;
    let inf = x.isinf().sum(tch::Kind::Int64).int64_value(&[]) as usize;
    if nan + inf == 0 {
        return String::new();
    }
    format!("{} of {} values", count_phrase(nan, inf), x.numel())
}

fn describe_shape(shape: &[usize]) -> String {
    format!("a {}-D array {:?}", shape.len(), shape)
}

/// A 2-D `[H, W]` array from `[H, W]`, `[1, H, W]` or `[1, 1, H, W]` (leading singleton axes are
/// dropped); anything else is a [`Error::Shape`] saying what was given.
pub fn ensure_2d(a: ArrayD<f32>, what: &str) -> Result<Array2<f32>> {
    let shape = a.shape().to_vec();
    let lead = shape.len().saturating_sub(2);
    if shape.len() < 2 || shape[..lead].iter().any(|&d| d != 1) {
        return Err(Error::Shape {
            what: what.to_string(),
            expected: "a 2-D image [H, W] (or [1, H, W])".into(),
            actual: describe_shape(&shape),
        });
    }
    let (h, w) = (shape[lead], shape[lead + 1]);
    let a = a.into_shape_with_order((h, w)).map_err(|e| Error::Shape {
        what: what.to_string(),
        expected: "a 2-D image [H, W]".into(),
        actual: format!("{} ({e})", describe_shape(&shape)),
    })?;
    Ok(a.into_dimensionality::<Ix2>().expect("2-D by construction"))
}

/// A `[C, H, W]` array from `[H, W]` (C = 1), `[C, H, W]` or `[1, C, H, W]`; anything else is a
/// [`Error::Shape`].
pub fn ensure_3d(a: ArrayD<f32>, what: &str) -> Result<Array3<f32>> {
    let shape = a.shape().to_vec();
    let dims: Vec<usize> = match shape.len() {
        2 => vec![1, shape[0], shape[1]],
        3 => shape.clone(),
        n if n > 3 && shape[..n - 3].iter().all(|&d| d == 1) => shape[n - 3..].to_vec(),
        _ => {
            return Err(Error::Shape {
                what: what.to_string(),
                expected: "an image [C, H, W] (or [H, W], [1, C, H, W])".into(),
                actual: describe_shape(&shape),
            })
        }
    };
    let a = a
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order(dims)
        .map_err(|e| Error::Shape {
            what: what.to_string(),
            expected: "an image [C, H, W]".into(),
            actual: format!("{} ({e})", describe_shape(&shape)),
        })?;
    Ok(a.into_dimensionality::<Ix3>().expect("3-D by construction"))
}

/// Refuses an array whose shape is not `expected` (`None` = any size on that axis).
pub fn ensure_shape(shape: &[usize], expected: &[Option<usize>], what: &str) -> Result<()> {
    let ok = shape.len() == expected.len()
        && shape
            .iter()
            .zip(expected)
            .all(|(&s, e)| e.is_none_or(|e| e == s));
    if ok {
        return Ok(());
    }
    let exp: Vec<String> = expected
        .iter()
        .map(|e| e.map_or("_".to_string(), |v| v.to_string()))
        .collect();
    Err(Error::Shape {
        what: what.to_string(),
        expected: format!("[{}]", exp.join(", ")),
        actual: describe_shape(shape),
    })
}

/// The SHA-256 of a file's bytes as 64 hex digits (read in blocks: any size).
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The pictures of a folder, for every command that reads folders of images: its files whose
/// extension names a format other than DICOM (`.png .jpg .jpeg .tif .tiff .npy .nii .nii.gz`),
/// in name order (hidden files skipped). `None` when `dir` is not a folder or holds no picture
/// (it may then be a DICOM series). A folder that holds both pictures and DICOM files is
/// ambiguous and refused, naming some of each.
pub fn folder_images(dir: &Path) -> Result<Option<Vec<PathBuf>>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') || !p.is_file() {
            continue;
        }
        if matches!(ImageFormat::from_path(&p), Ok(f) if f != ImageFormat::Dicom) {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Ok(None);
    }
    let dicoms = dicom::list_dicom_files(dir)?;
    if !dicoms.is_empty() {
        let names = |v: &[PathBuf]| {
            let mut s: Vec<String> = v
                .iter()
                .take(3)
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            if v.len() > 3 {
                s.push(format!("… {} in all", v.len()));
            }
            s.join(", ")
        };
        return Err(Error::format(
            dir,
            format!(
                "the folder holds both pictures ({}) and DICOM files ({}): it is not clear \
                 which to read; name one file, or keep pictures and a DICOM series in separate \
                 folders",
                names(&files),
                names(&dicoms)
            ),
        ));
    }
    Ok(Some(files))
}
