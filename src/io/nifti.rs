//! NIfTI-1 (`.nii`, `.nii.gz`) via the `nifti` crate.
//!
//! NIfTI stores voxel `(i, j, k)` = (x, y, z) with x fastest (Fortran order); nibabel's
//! `get_fdata()` is indexed `[x, y, z]`. scoreinv exposes a volume as `[D, H, W] = [z, y, x]`
//! (the same bytes read in C order), so `data[[k, j, i]] == get_fdata()[i, j, k]`, and the
//! slice `#z=k` is the `[y, x]` plane `get_fdata()[:, :, k].T`. Values are
//! `scl_slope · stored + scl_inter` when `scl_slope ≠ 0` (NIfTI-1 §scl_slope), applied by the
//! crate. Spacing is `pixdim[3], pixdim[2], pixdim[1]` (z, y, x). 4-D files are accepted when the
//! 4th axis has length 1.
use super::{atomic, ensure_finite, Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use ::nifti::writer::WriterOptions;
use ::nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiVolume, ReaderOptions};
use ndarray::{Array2, ArrayBase, Data, Ix3};
use std::path::Path;

fn nerr(path: &Path, e: ::nifti::NiftiError) -> Error {
    let msg = match e {
        ::nifti::NiftiError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("NIfTI file is truncated (unexpected end of data): {e}")
        }
        e => format!("cannot read NIfTI: {e}"),
    };
    Error::format(path, msg)
}

/// Reads a NIfTI volume as `[z, y, x]` f32 with `scl_slope`/`scl_inter` applied.
pub fn read_nifti(path: &Path) -> Result<Image> {
    // The crate `expect`s consistent sizes in places; turn a panic on a corrupt file into an
    // error instead of aborting the caller.
    let obj = std::panic::catch_unwind(|| ReaderOptions::new().read_file(path))
        .map_err(|_| Error::format(path, "corrupt NIfTI file (the reader gave up)"))?
        .map_err(|e| nerr(path, e))?;
    let header: NiftiHeader = obj.header().clone();
    let volume = obj.into_volume();
    let dims: Vec<usize> = volume.dim().iter().map(|&d| d as usize).collect();
    let (nx, ny, nz) = volume_dims(path, &dims)?;
    let dtype = format!("{:?}", volume.data_type()).to_lowercase();
    let arr = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        volume.into_ndarray::<f32>()
    }))
    .map_err(|_| Error::format(path, "corrupt NIfTI file (inconsistent data size)"))?
    .map_err(|e| nerr(path, e))?;
    // Fortran [x, y, z(, 1...)] → reverse the axes → C-order [.., z, y, x].
    let arr = arr
        .into_shape_with_order(((nx, ny, nz), ndarray::Order::ColumnMajor))
        .map_err(|e| Error::format(path, format!("unexpected NIfTI data size: {e}")))?
        .reversed_axes();
    let data = arr.as_standard_layout().into_owned();
    Ok(Image {
        data,
        axes: Axes::Dhw,
        meta: meta_from_header(&header, dtype),
    })
}

/// `(nx, ny, nz)` of a 2-D or 3-D volume (a 4th axis of length 1 allowed).
fn volume_dims(path: &Path, dims: &[usize]) -> Result<(usize, usize, usize)> {
    match dims {
        [x, y] => Ok((*x, *y, 1)),
        [x, y, z] => Ok((*x, *y, *z)),
        [x, y, z, rest @ ..] if rest.iter().all(|&d| d == 1) => Ok((*x, *y, *z)),
        other => Err(Error::format(
            path,
            format!(
                "NIfTI volume has dimensions {other:?}; only 2-D or 3-D volumes (a 4th axis \
                 of length 1) are supported — select a time point first"
            ),
        )),
    }
}

/// Spacing `[dz, dy, dx]` and the sform of a header.
fn meta_from_header(header: &NiftiHeader, dtype: String) -> ImageMeta {
    // The sform rows when sform_code > 0. (A qform-only file has no affine recorded: turning its
    // quaternion into a matrix needs the crate's `nalgebra_affine` feature, not enabled.)
    let affine = (header.sform_code > 0)
        .then(|| {
            let r = [header.srow_x, header.srow_y, header.srow_z];
            let mut a = [[0.0f64, 0.0, 0.0, 1.0]; 4];
            for (i, row) in r.iter().enumerate() {
                a[i] = row.map(|v| v as f64);
            }
            a
        })
        .filter(|a: &[[f64; 4]; 4]| a.iter().flatten().all(|v| v.is_finite()));
    let p = header.pixdim;
    let sp = |v: f32| {
        if v > 0.0 && v.is_finite() {
            v as f64
        } else {
            1.0
        }
    };
    ImageMeta {
        format: Some(ImageFormat::Nifti),
        dtype: Some(dtype),
        spacing: Some([sp(p[3]), sp(p[2]), sp(p[1])]),
        affine,
        ..Default::default()
    }
}

/// A NIfTI volume read one z-slice at a time (gzip or not), so only one `[H, W]` slice is in
/// memory however deep the volume is. Slices come out in order `z = 0, 1, …` with the same
/// values as [`read_nifti`]'s `data[[z, .., ..]]`.
pub struct NiftiSlices {
    path: std::path::PathBuf,
    stream: ::nifti::StreamedNiftiVolume<::nifti::object::MaybeGzDecodedFile>,
    next: usize,
    /// `[D, H, W]`.
    pub dim: [usize; 3],
    /// Spacing, sform and stored dtype, as [`read_nifti`] gives them.
    pub meta: ImageMeta,
}

impl NiftiSlices {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self> {
        let obj = std::panic::catch_unwind(|| {
            ::nifti::ReaderStreamedOptions::new().read_file_rank(path, 2)
        })
        .map_err(|_| Error::format(path, "corrupt NIfTI file (the reader gave up)"))?
        .map_err(|e| nerr(path, e))?;
        let header: NiftiHeader = obj.header().clone();
        let dims: Vec<usize> = header.dim[1..=header.dim[0].clamp(1, 7) as usize]
            .iter()
            .map(|&d| d as usize)
            .collect();
        let (nx, ny, nz) = volume_dims(path, &dims)?;
        let dtype = header
            .data_type()
            .map(|t| format!("{t:?}").to_lowercase())
            .map_err(|e| nerr(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            stream: obj.into_volume(),
            next: 0,
            dim: [nz, ny, nx],
            meta: meta_from_header(&header, dtype),
        })
    }

    /// Index of the slice the next [`Self::next_slice`] returns.
    pub fn position(&self) -> usize {
        self.next
    }

    /// Slice `z`, reading past (and dropping) the slices before it; `z` must not be behind
    /// [`Self::position`] or past the last slice.
    pub fn slice_at(&mut self, z: usize) -> Result<Array2<f32>> {
        if z < self.next || z >= self.dim[0] {
            return Err(Error::format(
                &self.path,
                format!(
                    "slice z={z} cannot be read: the reader is at slice {} of {}",
                    self.next, self.dim[0]
                ),
            ));
        }
        loop {
            let at = self.next;
            let sl = self.next_slice().expect("z checked above")?;
            if at == z {
                return Ok(sl);
            }
        }
    }

    /// The next `[H, W]` slice, `None` after the last.
    pub fn next_slice(&mut self) -> Option<Result<Array2<f32>>> {
        if self.next >= self.dim[0] {
            return None;
        }
        let [_, ny, nx] = self.dim;
        let path = &self.path;
        let z = self.next;
        let stream = &mut self.stream;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stream.read_slice().map(|sl| sl.into_ndarray::<f32>())
        }))
        .map_err(|_| Error::format(path, format!("corrupt NIfTI file (slice {z})")))
        .and_then(|r| r.map_err(|e| nerr(path, e)))
        .and_then(|r| r.map_err(|e| nerr(path, e)))
        .and_then(|a| {
            a.into_shape_with_order(((nx, ny), ndarray::Order::ColumnMajor))
                .map_err(|e| Error::format(path, format!("unexpected NIfTI slice size: {e}")))
        })
        .map(|a| a.reversed_axes().as_standard_layout().into_owned());
        self.next += 1;
        Some(out)
    }
}

/// Writes a `[z, y, x]` volume (or a `[1, H, W]` slice) as float32 NIfTI (`.nii.gz` compressed),
/// atomically. The sform is `affine` if given (pixdim = its column lengths), else the diagonal
/// of `spacing` = (dz, dy, dx) in mm.
pub fn write_nifti<S: Data<Elem = f32>>(
    path: &Path,
    data: &ArrayBase<S, Ix3>,
    spacing: Option<[f64; 3]>,
    affine: Option<[[f64; 4]; 4]>,
) -> Result<()> {
    ensure_finite(data, &format!("volume to write to {}", path.display()))?;
    if data.is_empty() {
        return Err(Error::Shape {
            what: format!("NIfTI volume {}", path.display()),
            expected: "a non-empty [z, y, x] array".into(),
            actual: format!("{:?}", data.shape()),
        });
    }
    let a = match affine {
        Some(a) => a,
        None => {
            let [dz, dy, dx] = spacing.unwrap_or([1.0; 3]);
            [
                [dx, 0.0, 0.0, 0.0],
                [0.0, dy, 0.0, 0.0],
                [0.0, 0.0, dz, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ]
        }
    };
    let col = |c: usize| (0..3).map(|r| a[r][c] * a[r][c]).sum::<f64>().sqrt() as f32;
    let row = |r: usize| {
        [
            a[r][0] as f32,
            a[r][1] as f32,
            a[r][2] as f32,
            a[r][3] as f32,
        ]
    };
    let header = NiftiHeader {
        pixdim: [1.0, col(0), col(1), col(2), 1.0, 1.0, 1.0, 1.0],
        xyzt_units: 2, // millimetres
        sform_code: 2, // aligned anatomical
        qform_code: 0,
        srow_x: row(0),
        srow_y: row(1),
        srow_z: row(2),
        ..NiftiHeader::default()
    };
    let name = path.to_string_lossy().to_lowercase();
    let suffix = if name.ends_with(".nii.gz") {
        ".nii.gz"
    } else {
        ".nii"
    };
    // [z, y, x] C order viewed as [x, y, z] Fortran order: the NIfTI voxel layout.
    let xyz = data.view().reversed_axes();
    atomic::write_atomic_via_path(path, suffix, |tmp| {
        WriterOptions::new(tmp)
            .reference_header(&header)
            .write_nifti(&xyz)
            .map_err(|e| Error::format(path, format!("cannot write NIfTI: {e}")))
    })
}
