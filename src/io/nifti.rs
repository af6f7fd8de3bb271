//! NIfTI-1 (`.nii`, `.nii.gz`) via the `nifti` crate.
//!
//! NIfTI stores voxel `(i, j, k)` = (x, y, z) with x fastest (Fortran order); nibabel's
//! `get_fdata()` is indexed `[x, y, z]`. scoreinv exposes a volume as `[D, H, W] = [z, y, x]`
//! (the same bytes read in C order), so `data[[k, j, i]] == get_fdata()[i, j, k]`, and the
//! slice `#z=k` is the `[y, x]` plane `get_fdata()[:, :, k].T`. Values are
//! `scl_slope · stored + scl_inter` when `scl_slope ≠ 0` (NIfTI-1 §scl_slope), applied by the
//! crate. Spacing is `pixdim[3], pixdim[2], pixdim[1]` (z, y, x). A 4-D file (x, y, z, t) is
//! read at one time point `t` ([`read_nifti_at`], `FILE#t=K` in a path); without one it is
//! accepted only when its 4th axis has length 1.
use super::{atomic, ensure_finite, Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use ::nifti::writer::WriterOptions;
use ::nifti::{InMemNiftiVolume, IntoNdArray, NiftiHeader, NiftiType};
use ndarray::{Array2, ArrayBase, Data, Ix3};
use std::fs::File;
use std::io::{BufRead, Read};
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

/// The file's bytes, decompressed when they start with the gzip magic (whatever the name).
enum MaybeGz {
    Plain(std::io::BufReader<File>),
    Gz(Box<flate2::read::GzDecoder<std::io::BufReader<File>>>),
}

impl Read for MaybeGz {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            MaybeGz::Plain(r) => r.read(buf),
            MaybeGz::Gz(r) => r.read(buf),
        }
    }
}

/// A NIfTI file whose header was read and checked, positioned at its first voxel.
struct Opened {
    /// The header, with `scl_slope` set to 0 (no scaling) where the file's is 0 or not finite.
    header: NiftiHeader,
    /// `(nx, ny, nz)` (of one time point of a 4-D file).
    dims: (usize, usize, usize),
    dtype: NiftiType,
    reader: MaybeGz,
}

/// The real voxel types read as f32.
const REAL_TYPES: [NiftiType; 10] = [
    NiftiType::Uint8,
    NiftiType::Int8,
    NiftiType::Uint16,
    NiftiType::Int16,
    NiftiType::Uint32,
    NiftiType::Int32,
    NiftiType::Uint64,
    NiftiType::Int64,
    NiftiType::Float32,
    NiftiType::Float64,
];

/// Opens `path`, reads its header and checks every value the reader relies on before anything
/// is allocated for the voxels: the magic (single-file NIfTI-1), the dimensions (2-D or 3-D,
/// none zero), the datatype (a real type whose size agrees with `bitpix`), `vox_offset`, that an
/// uncompressed file holds the voxels it declares, and that the volume fits in the memory
/// budget (`budget_voxels` voxels are held at once, at `item + 8` bytes each: the raw data,
/// the f32 array and a copy). Scaling follows nibabel: a `scl_slope` of 0 or not finite means
/// no scaling; a valid slope with a non-finite `scl_inter` is an error.
/// With `t`, the 3-D volume at time point `t` of a 4-D file: the reader is positioned at its
/// first voxel and the header describes that volume.
fn open_checked(path: &Path, whole_volume: bool, t: Option<usize>) -> Result<Opened> {
    let bad = |msg: String| Error::format(path, msg);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut buffered = std::io::BufReader::new(file);
    let gz = buffered
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader = if gz {
        MaybeGz::Gz(Box::new(flate2::read::GzDecoder::new(buffered)))
    } else {
        MaybeGz::Plain(buffered)
    };
    let mut header = NiftiHeader::from_reader(&mut reader).map_err(|e| nerr(path, e))?;
    if header.sizeof_hdr != 348 {
        return Err(bad(format!(
            "not a NIfTI-1 file (sizeof_hdr is {}, not 348{})",
            header.sizeof_hdr,
            if header.sizeof_hdr == 540 {
                "; NIfTI-2 is not supported"
            } else {
                ""
            }
        )));
    }
    match &header.magic {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err(bad(
                "is the header of a NIfTI .hdr/.img pair; give a single-file .nii or .nii.gz"
                    .into(),
            ))
        }
        m => return Err(bad(format!("not a NIfTI-1 file (magic {m:?})"))),
    }
    let raw_dim = header.dim;
    let dims: Vec<usize> = header
        .dim()
        .map_err(|_| {
            bad(format!(
                "NIfTI header declares invalid dimensions {raw_dim:?} (dim[0] must be 1..=7 and \
                 every used axis longer than zero)"
            ))
        })?
        .iter()
        .map(|&d| d as usize)
        .collect();
    let (nx, ny, nz, nt) = volume_dims(path, &dims, t)?;
    let dtype = header.data_type().map_err(|e| nerr(path, e))?;
    if !REAL_TYPES.contains(&dtype) {
        return Err(bad(format!(
            "NIfTI datatype {dtype:?} is not supported; supported: uint8, int8, uint16, int16, \
             uint32, int32, uint64, int64, float32, float64"
        )));
    }
    let item = dtype.size_of();
    if header.bitpix as usize != 8 * item {
        return Err(bad(format!(
            "NIfTI header is inconsistent: bitpix = {} but datatype {dtype:?} has {} bits",
            header.bitpix,
            8 * item
        )));
    }
    let vox = header.vox_offset;
    if !(vox.is_finite() && vox >= 348.0 && (vox as f64) <= file_len.max(1 << 40) as f64) {
        return Err(bad(format!("NIfTI vox_offset {vox} is not a valid offset")));
    }
    let vox = vox as u64;
    let shape = [nz, ny, nx];
    let voxels = super::budget::elements(&shape).unwrap_or(u128::MAX);
    let bytes = voxels.saturating_mul(item as u128);
    let all_bytes = bytes.saturating_mul(nt as u128);
    if !gz && (vox as u128).saturating_add(all_bytes) > file_len as u128 {
        return Err(bad(format!(
            "NIfTI file is truncated: its header declares {nx}x{ny}x{nz}x{nt} voxels of \
             {dtype:?} = {all_bytes} bytes from offset {vox}, but the file has {file_len} bytes"
        )));
    }
    let held = if whole_volume {
        voxels
    } else {
        (nx as u128) * (ny as u128)
    };
    super::budget::check_file_alloc(
        path,
        held.saturating_mul(item as u128 + 8),
        &format!("NIfTI volume [z, y, x] = {shape:?} of {dtype:?}"),
    )?;
    let slope_valid = header.scl_slope.is_finite() && header.scl_slope != 0.0;
    if slope_valid && !header.scl_inter.is_finite() {
        return Err(bad(format!(
            "NIfTI scl_slope is {} but scl_inter is {}: the values cannot be scaled",
            header.scl_slope, header.scl_inter
        )));
    }
    if !slope_valid {
        header.scl_slope = 0.0;
        header.scl_inter = 0.0;
    }
    // Skip the extensions: the voxels start at vox_offset; then the time points before `t`.
    let skip = vox.saturating_sub(348);
    let skipped = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
        .map_err(|e| nerr(path, ::nifti::NiftiError::Io(e)))?;
    if skipped != skip {
        return Err(bad(format!(
            "NIfTI file is truncated: it ends before vox_offset {vox}"
        )));
    }
    if let Some(t) = t {
        let skip = (bytes as u64).saturating_mul(t as u64);
        let skipped = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
            .map_err(|e| nerr(path, ::nifti::NiftiError::Io(e)))?;
        if skipped != skip {
            return Err(bad(format!(
                "NIfTI file is truncated: it ends before time point t={t}"
            )));
        }
        // From here on the file is the 3-D volume at `t`.
        header.dim = [3, nx as u16, ny as u16, nz as u16, 1, 1, 1, 1];
    }
    Ok(Opened {
        header,
        dims: (nx, ny, nz),
        dtype,
        reader,
    })
}

/// Reads a NIfTI volume as `[z, y, x]` f32 with `scl_slope`/`scl_inter` applied.
pub fn read_nifti(path: &Path) -> Result<Image> {
    let Opened {
        header,
        dims: (nx, ny, nz),
        dtype,
        reader,
    } = open_checked(path, true, None)?;
    let dtype = format!("{dtype:?}").to_lowercase();
    // The sizes were checked above; the crate `expect`s consistent sizes in places, so a panic
    // is still turned into an error rather than unwinding into the caller.
    let arr = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        InMemNiftiVolume::from_reader(reader, &header).and_then(|v| v.into_ndarray::<f32>())
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

/// `(nx, ny, nz, nt)` of a 2-D or 3-D volume (a 4th axis of length 1 allowed), or of a 4-D
/// file (x, y, z, t) read at time point `t`.
fn volume_dims(
    path: &Path,
    dims: &[usize],
    t: Option<usize>,
) -> Result<(usize, usize, usize, usize)> {
    let nt = dims.get(3).copied().unwrap_or(1);
    let higher = dims.len() > 4 && dims[4..].iter().any(|&d| d != 1);
    if higher {
        return Err(Error::format(
            path,
            format!(
                "NIfTI volume has dimensions {dims:?}; only 2-D, 3-D and 4-D (x, y, z, t) \
                 volumes are supported"
            ),
        ));
    }
    match (dims, t) {
        (_, Some(t)) if t >= nt => Err(Error::format(
            path,
            format!(
                "#t={t} is out of range: the file has {nt} time point{} (#t=0..={})",
                if nt == 1 { "" } else { "s" },
                nt - 1
            ),
        )),
        ([x, y], _) => Ok((*x, *y, 1, 1)),
        ([x, y, z], _) => Ok((*x, *y, *z, 1)),
        ([x, y, z, ..], _) if nt == 1 || t.is_some() => Ok((*x, *y, *z, nt)),
        _ => Err(Error::format(
            path,
            format!(
                "NIfTI volume is 4-D with {nt} time points (dimensions {dims:?}); pick one with \
                 FILE#t=K (K = 0..={}), e.g. {}#t=0",
                nt - 1,
                path.display()
            ),
        )),
    }
}

/// [`read_nifti`] of the 3-D volume at time point `t` of a 4-D file (`None`: [`read_nifti`]),
/// read slice by slice.
pub fn read_nifti_at(path: &Path, t: Option<usize>) -> Result<Image> {
    let Some(t) = t else {
        return read_nifti(path);
    };
    let mut r = NiftiSlices::open_at(path, Some(t))?;
    let [d, h, w] = r.dim;
    super::budget::check_file_alloc(
        path,
        (d as u128 * h as u128 * w as u128).saturating_mul(8),
        &format!("NIfTI volume [z, y, x] = {:?} at t={t}", r.dim),
    )?;
    let mut data = ndarray::Array3::<f32>::zeros((d, h, w));
    for z in 0..d {
        let sl = r.slice_at(z)?;
        data.index_axis_mut(ndarray::Axis(0), z).assign(&sl);
    }
    Ok(Image {
        data,
        axes: Axes::Dhw,
        meta: r.meta,
    })
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
    stream: ::nifti::StreamedNiftiVolume<MaybeGz>,
    next: usize,
    /// `[D, H, W]`.
    pub dim: [usize; 3],
    /// Spacing, sform and stored dtype, as [`read_nifti`] gives them.
    pub meta: ImageMeta,
}

impl NiftiSlices {
    /// Opens `path` and reads its header (checked as [`read_nifti`] checks it).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_at(path, None)
    }

    /// [`Self::open`] at time point `t` of a 4-D file (its slices are those of that volume).
    pub fn open_at(path: &Path, t: Option<usize>) -> Result<Self> {
        let Opened {
            header,
            dims: (nx, ny, nz),
            dtype,
            reader,
        } = open_checked(path, false, t)?;
        // Streamed in 2-D slices, which the crate asserts are of lower rank than the volume: a
        // 2-D file is read as the x × y × 1 volume it is.
        let mut stream_header = header.clone();
        if stream_header.dim[0] < 3 {
            stream_header.dim = [3, nx as u16, ny as u16, 1, 1, 1, 1, 1];
        }
        let stream = ::nifti::StreamedNiftiVolume::from_reader_rank(reader, &stream_header, 2)
            .map_err(|e| nerr(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            stream,
            next: 0,
            dim: [nz, ny, nx],
            meta: meta_from_header(&header, format!("{dtype:?}").to_lowercase()),
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
            let Some(sl) = self.next_slice() else {
                return Err(Error::format(
                    &self.path,
                    format!("slice z={z} is past the end"),
                ));
            };
            let sl = sl?;
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
