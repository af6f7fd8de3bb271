//! NPY (NumPy's array format) via `ndarray-npy`: C and Fortran order, little and big endian.
//! f32 is read as is, f64 and the integer/bool dtypes are converted to f32 by [`read_npy_f32`]
//! (values kept, not rescaled); complex64/complex128 (k-space) are read by
//! [`read_npy_complex`]. Other dtypes are refused with the dtype and the supported list.
use super::{atomic, ensure_3d, Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use ndarray::{ArrayBase, ArrayD, Data, Dimension};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadableElement, WritableElement, WriteNpyExt};
use num_complex::Complex;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

const SUPPORTED: &str = "supported: f32, f64, int8, int16, int32, int64, uint8, uint16, \
                         uint32, uint64, bool (and complex64, complex128 for k-space)";

/// What a failed read means for the caller.
enum Failure {
    WrongDtype(String),
    Other(Error),
}

fn read_as<T: ReadableElement>(path: &Path) -> std::result::Result<ArrayD<T>, Failure> {
    let f = File::open(path).map_err(|e| Failure::Other(Error::io(path, e)))?;
    ArrayD::<T>::read_npy(BufReader::new(f)).map_err(|e| match e {
        ReadNpyError::WrongDescriptor(d) => Failure::WrongDtype(descr_string(&d)),
        ReadNpyError::Io(e) => Failure::Other(Error::format(
            path,
            format!("cannot read NPY (truncated or not an .npy file?): {e}"),
        )),
        e => Failure::Other(Error::format(path, format!("invalid NPY file: {e}"))),
    })
}

/// The descriptor as NumPy writes it (`<f2`), from its Python-literal form (`'<f2'`).
fn descr_string(d: &impl std::fmt::Display) -> String {
    d.to_string()
        .trim_matches(|c| c == '\'' || c == '"')
        .to_string()
}

/// The dtype code without the byte-order character: `<f4` → `f4`.
fn kind(descr: &str) -> &str {
    descr.trim_start_matches(['<', '>', '|', '='])
}

fn unsupported(path: &Path, descr: &str) -> Error {
    Error::format(path, format!("unsupported dtype {descr}; {SUPPORTED}"))
}

/// Reads any real NPY array as f32 (see the module doc for the dtypes), with the file's dtype.
pub fn read_npy_f32_with_dtype(path: &Path) -> Result<(ArrayD<f32>, String)> {
    let descr = match read_as::<f32>(path) {
        Ok(a) => return Ok((a, "f32".into())),
        Err(Failure::Other(e)) => return Err(e),
        Err(Failure::WrongDtype(d)) => d,
    };
    fn conv<T: ReadableElement + Copy>(path: &Path, f: impl Fn(T) -> f32) -> Result<ArrayD<f32>> {
        match read_as::<T>(path) {
            Ok(a) => Ok(a.mapv(f)),
            Err(Failure::Other(e)) => Err(e),
            Err(Failure::WrongDtype(d)) => {
                Err(Error::format(path, format!("unexpected dtype {d}")))
            }
        }
    }
    let (a, name) = match kind(&descr) {
        "f8" => (conv::<f64>(path, |v| v as f32)?, "f64"),
        "i1" => (conv::<i8>(path, |v| v as f32)?, "i8"),
        "i2" => (conv::<i16>(path, |v| v as f32)?, "i16"),
        "i4" => (conv::<i32>(path, |v| v as f32)?, "i32"),
        "i8" => (conv::<i64>(path, |v| v as f32)?, "i64"),
        "u1" => (conv::<u8>(path, |v| v as f32)?, "u8"),
        "u2" => (conv::<u16>(path, |v| v as f32)?, "u16"),
        "u4" => (conv::<u32>(path, |v| v as f32)?, "u32"),
        "u8" => (conv::<u64>(path, |v| v as f32)?, "u64"),
        "b1" => (conv::<bool>(path, |v| if v { 1.0 } else { 0.0 })?, "bool"),
        "c8" | "c16" => {
            return Err(Error::format(
                path,
                format!(
                    "holds complex values (dtype {descr}) where a real image is needed; read \
                     it with read_npy_complex (k-space) or save the magnitude/real part"
                ),
            ))
        }
        _ => return Err(unsupported(path, &descr)),
    };
    Ok((a, name.into()))
}

/// Reads any real NPY array as f32.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    Ok(read_npy_f32_with_dtype(path)?.0)
}

/// Reads an f64 NPY exactly (f32 files are widened).
pub fn read_npy_f64(path: &Path) -> Result<ArrayD<f64>> {
    match read_as::<f64>(path) {
        Ok(a) => Ok(a),
        Err(Failure::Other(e)) => Err(e),
        Err(Failure::WrongDtype(d)) if kind(&d) == "f4" => match read_as::<f32>(path) {
            Ok(a) => Ok(a.mapv(|v| v as f64)),
            Err(Failure::Other(e)) => Err(e),
            Err(Failure::WrongDtype(d)) => Err(unsupported(path, &d)),
        },
        Err(Failure::WrongDtype(d)) => Err(unsupported(path, &d)),
    }
}

/// Reads a complex64/complex128 NPY (k-space) as `Complex<f32>`; real f32/f64 arrays are read
/// with a zero imaginary part.
pub fn read_npy_complex(path: &Path) -> Result<ArrayD<Complex<f32>>> {
    let descr = match read_as::<Complex<f32>>(path) {
        Ok(a) => return Ok(a),
        Err(Failure::Other(e)) => return Err(e),
        Err(Failure::WrongDtype(d)) => d,
    };
    let res = match kind(&descr) {
        "c16" => read_as::<Complex<f64>>(path)
            .map(|a| a.mapv(|z| Complex::new(z.re as f32, z.im as f32))),
        "f4" => read_as::<f32>(path).map(|a| a.mapv(|v| Complex::new(v, 0.0))),
        "f8" => read_as::<f64>(path).map(|a| a.mapv(|v| Complex::new(v as f32, 0.0))),
        _ => return Err(unsupported(path, &descr)),
    };
    res.map_err(|f| match f {
        Failure::Other(e) => e,
        Failure::WrongDtype(d) => unsupported(path, &d),
    })
}

/// Reads an NPY as an [`Image`]: `[H, W]` → `[1, H, W]`, `[C, H, W]` as is, `[1, C, H, W]`
/// squeezed. Values are kept (an integer array is not rescaled).
pub fn read_npy_image(path: &Path) -> Result<Image> {
    let (a, dtype) = read_npy_f32_with_dtype(path)?;
    let data = ensure_3d(a, &format!("image {}", path.display()))?;
    Ok(Image {
        data,
        axes: Axes::Chw,
        meta: ImageMeta {
            format: Some(ImageFormat::Npy),
            dtype: Some(dtype),
            ..Default::default()
        },
    })
}

/// Writes an array (f32, f64, integers, `Complex<f32/f64>`) as NPY, atomically. Standard-layout
/// arrays are written in C order, Fortran-layout arrays with `fortran_order: True`, anything
/// else is copied to C order first (ndarray-npy's rules).
pub fn write_npy<A, S, D>(path: &Path, a: &ArrayBase<S, D>) -> Result<()>
where
    A: WritableElement,
    S: Data<Elem = A>,
    D: Dimension,
{
    atomic::write_atomic(path, |w| {
        a.write_npy(w)
            .map_err(|e| Error::format(path, format!("cannot write NPY: {e}")))
    })
}
