//! NPY (NumPy's array format) via `ndarray-npy`: C and Fortran order, little and big endian.
//! f32 is read as is, f64 and the integer/bool dtypes are converted to f32 by [`read_npy_f32`]
//! (values kept, not rescaled); complex64/complex128 (k-space) are read by
//! [`read_npy_complex`]. Other dtypes are refused with the dtype and the supported list.
use super::{atomic, ensure_3d, Axes, Image, ImageFormat, ImageMeta};
use crate::{Error, Result};
use ndarray::{Array2, ArrayBase, ArrayD, ArrayView2, ArrayViewD, Axis, Data, Dimension, Ix2};
use ndarray_npy::{
    ReadNpyError, ReadNpyExt, ReadableElement, ViewElement, ViewNpyError, ViewNpyExt,
    WritableElement, WriteNpyExt,
};
use num_complex::Complex;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

const SUPPORTED: &str = "supported: f32, f64, int8, int16, int32, int64, uint8, uint16, \
                         uint32, uint64, bool (and complex64, complex128 for k-space)";

/// What a failed read means for the caller.
enum Failure {
    WrongDtype(String),
    Other(Error),
}

fn read_as<T: ReadableElement>(path: &Path) -> std::result::Result<ArrayD<T>, Failure> {
    // ndarray-npy allocates the whole array from the header's shape before it reads a byte of
    // data, for multi-byte types even before it compares the dtype: check the dtype, and the
    // declared size against the file and the memory budget, first.
    let header = read_npy_header(path).map_err(Failure::Other)?;
    if header.item_size().is_none() {
        return Err(Failure::WrongDtype(header.descr));
    }
    header.check_data(path).map_err(Failure::Other)?;
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

/// What an NPY file's header declares (read by [`read_npy_header`] without allocating for the
/// data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype descriptor as NumPy writes it (`<f4`, `|u1`); a structured dtype is
    /// `structured`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the first data byte (the length of magic, version and header).
    pub data_offset: u64,
    /// The file's length.
    pub file_len: u64,
}

/// Largest header accepted (NumPy itself refuses headers over 10 000 bytes by default).
const MAX_HEADER_LEN: usize = 1 << 20;

impl NpyHeader {
    /// Bytes per element of a plain numeric dtype (`<f4` → 4, `|b1` → 1, `<c16` → 16); `None`
    /// for anything else (never handed to ndarray-npy, which allocates before it compares).
    pub fn item_size(&self) -> Option<usize> {
        let k = kind(&self.descr);
        let (letter, digits) = k.split_at(k.find(|c: char| c.is_ascii_digit())?);
        let n: usize = digits.parse().ok()?;
        matches!(
            (letter, n),
            ("f", 2 | 4 | 8 | 16) | ("i" | "u", 1 | 2 | 4 | 8) | ("b", 1) | ("c", 8 | 16 | 32)
        )
        .then_some(n)
    }

    /// [`Self::check_layout`], and that the array, the f32 array made from it and a copy fit
    /// in the memory budget ([`super::budget`]).
    pub fn check_data(&self, path: &Path) -> Result<()> {
        self.check_layout(path)?;
        let Some(item) = self.item_size() else {
            return Ok(());
        };
        let n = super::budget::elements(&self.shape).unwrap_or(u128::MAX);
        super::budget::check_file_alloc(
            path,
            n.saturating_mul(item as u128 + 16),
            &format!("NPY array {:?} of {}", self.shape, self.descr),
        )
    }

    /// Checks that no axis has length zero and that the data the header declares are in the
    /// file, no more and no less.
    pub fn check_layout(&self, path: &Path) -> Result<()> {
        super::budget::check_no_empty_axis(path, &self.shape, "NPY array")?;
        let Some(item) = self.item_size() else {
            return Ok(());
        };
        let have = self.file_len.saturating_sub(self.data_offset) as u128;
        let need = super::budget::bytes_for(&self.shape, item);
        if need != Some(have) {
            let need = need.map_or("more than 2^128".to_string(), |n| n.to_string());
            return Err(Error::format(
                path,
                format!(
                    "NPY header declares shape {:?} of {} ({item} bytes each) = {need} bytes of \
                     data, but the file has {have} bytes after its {}-byte header (truncated or \
                     corrupted)",
                    self.shape, self.descr, self.data_offset
                ),
            ));
        }
        Ok(())
    }
}

/// Reads the header of an NPY file (magic, version, the Python-literal dictionary with
/// `descr`, `fortran_order` and `shape`), checking its length against the file's. Reads at
/// most the header, however large the file.
pub fn read_npy_header(path: &Path) -> Result<NpyHeader> {
    use std::io::Read;
    let bad = |msg: String| Error::format(path, msg);
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut prefix = [0u8; 12];
    let got = read_up_to(&mut f, &mut prefix).map_err(|e| Error::io(path, e))?;
    if got < 10 || &prefix[..6] != b"\x93NUMPY" {
        return Err(bad(
            "not an NPY file (no \\x93NUMPY magic; truncated or not an .npy file?)".into(),
        ));
    }
    let (header_len, prefix_len) = match prefix[6] {
        1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as usize, 10),
        2 | 3 if got >= 12 => (
            u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize,
            12,
        ),
        2 | 3 => return Err(bad("NPY file is truncated inside its header".into())),
        v => {
            return Err(bad(format!(
                "NPY format version {v}.{} is not supported (1.0, 2.0, 3.0 are)",
                prefix[7]
            )))
        }
    };
    let data_offset = (prefix_len + header_len) as u64;
    if header_len > MAX_HEADER_LEN || data_offset > file_len {
        return Err(bad(format!(
            "NPY header declares {header_len} bytes but the file has {file_len} bytes in all \
             (truncated or corrupted)"
        )));
    }
    let mut text = vec![0u8; header_len];
    f.seek(std::io::SeekFrom::Start(prefix_len as u64))
        .and_then(|_| f.read_exact(&mut text))
        .map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| bad("NPY header is not text (corrupted file?)".into()))?;
    let dict = PyLit::parse(text.trim_end())
        .map_err(|e| bad(format!("invalid NPY header ({e}): {}", text.trim_end())))?;
    let PyLit::Dict(items) = dict else {
        return Err(bad(format!(
            "invalid NPY header (not a dictionary): {}",
            text.trim_end()
        )));
    };
    let get = |k: &str| items.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(PyLit::Str(s)) => s.clone(),
        Some(PyLit::List(_)) => "structured".to_string(),
        _ => return Err(bad("NPY header has no valid 'descr'".into())),
    };
    let fortran_order = match get("fortran_order") {
        Some(PyLit::Bool(b)) => *b,
        _ => return Err(bad("NPY header has no valid 'fortran_order'".into())),
    };
    let shape = match get("shape") {
        Some(PyLit::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                PyLit::Int(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    }
    .ok_or_else(|| {
        bad("NPY header has no valid 'shape' (a tuple of non-negative integers)".into())
    })?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_offset,
        file_len,
    })
}

/// Reads until `buf` is full or the end of the file; the number of bytes read.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The Python literals of an NPY header: a dict of strings, bools, integers and tuples/lists.
#[derive(Debug, Clone, PartialEq)]
enum PyLit {
    Dict(Vec<(String, PyLit)>),
    Tuple(Vec<PyLit>),
    List(Vec<PyLit>),
    Str(String),
    Int(i128),
    Bool(bool),
    None,
}

impl PyLit {
    /// Nesting deeper than this is refused (a header is a dict of flat values; a structured
    /// dtype nests a few levels).
    const MAX_DEPTH: usize = 16;

    fn parse(text: &str) -> std::result::Result<PyLit, String> {
        let mut p = LitParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected text at byte {}", p.i));
        }
        Ok(v)
    }
}

struct LitParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl LitParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    /// Items up to `close`, separated by commas (a trailing comma allowed).
    fn seq(&mut self, close: u8, depth: usize) -> std::result::Result<Vec<PyLit>, String> {
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(format!("expected ',' or '{}'", close as char)),
            }
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<PyLit, String> {
        if depth > PyLit::MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let Some(c) = self.peek() else {
            return Err("unexpected end".into());
        };
        match c {
            b'{' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(PyLit::Dict(items));
                    }
                    let PyLit::Str(k) = self.value(depth + 1)? else {
                        return Err("dictionary keys must be strings".into());
                    };
                    if self.peek() != Some(b':') {
                        return Err("expected ':'".into());
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return Err("expected ',' or '}'".into()),
                    }
                }
            }
            b'(' => {
                self.i += 1;
                Ok(PyLit::Tuple(self.seq(b')', depth)?))
            }
            b'[' => {
                self.i += 1;
                Ok(PyLit::List(self.seq(b']', depth)?))
            }
            b'\'' | b'"' => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != c {
                    if self.s[self.i] == b'\\' {
                        return Err("escapes in strings are not supported".into());
                    }
                    self.i += 1;
                }
                if self.i >= self.s.len() {
                    return Err("unterminated string".into());
                }
                let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Ok(PyLit::Str(v))
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                // NumPy writes plain integers; a trailing `L` is Python 2's long.
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                digits
                    .parse::<i128>()
                    .map(PyLit::Int)
                    .map_err(|_| format!("bad integer '{digits}'"))
            }
            _ => {
                let rest = &self.s[self.i..];
                for (word, v) in [
                    (&b"True"[..], PyLit::Bool(true)),
                    (b"False", PyLit::Bool(false)),
                    (b"None", PyLit::None),
                ] {
                    if rest.starts_with(word) {
                        self.i += word.len();
                        return Ok(v);
                    }
                }
                Err(format!("unexpected character '{}'", c as char))
            }
        }
    }
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
/// squeezed; a stack of gray slices ([`volume_dims`]: `[D, H, W]` with `D` ∉ {1, 3}, or
/// `[D, 1, H, W]`) is a `[D, H, W]` volume ([`Axes::Dhw`]). Values are kept (an integer array is
/// not rescaled).
pub fn read_npy_image(path: &Path) -> Result<Image> {
    let (a, dtype) = read_npy_f32_with_dtype(path)?;
    let (data, axes) = match volume_dims(a.shape()) {
        Some(dim) => {
            let a = a
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(dim.to_vec())
                .and_then(|a| a.into_dimensionality::<ndarray::Ix3>())
                .map_err(|e| Error::format(path, format!("volume {dim:?}: {e}")))?;
            (a, Axes::Dhw)
        }
        None => (
            ensure_3d(a, &format!("image {}", path.display()))?,
            Axes::Chw,
        ),
    };
    Ok(Image {
        data,
        axes,
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

/// The `[D, H, W]` slice grid of an NPY array that is a stack of gray slices (a volume):
/// `[D, H, W]` with `D` other than 1 and 3 (those are a gray or RGB picture `[C, H, W]`), or
/// `[D, 1, H, W]` with `D > 1` (unambiguous, also for 3 slices). `None` for a picture.
pub fn volume_dims(shape: &[usize]) -> Option<[usize; 3]> {
    match *shape {
        [d, h, w] if d != 1 && d != 3 => Some([d, h, w]),
        [d, 1, h, w] if d > 1 => Some([d, h, w]),
        _ => None,
    }
}

/// Element types an [`NpyVolume`] views in place (native byte order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

/// Runs `$body` with `$v` bound to the mapped file viewed as the element type of `$dtype`
/// (`?` on the view error).
macro_rules! with_view {
    ($dtype:expr, $buf:expr, |$v:ident| $body:expr) => {
        match $dtype {
            Dtype::F32 => {
                let $v = view::<f32>($buf)?;
                $body
            }
            Dtype::F64 => {
                let $v = view::<f64>($buf)?;
                $body
            }
            Dtype::I8 => {
                let $v = view::<i8>($buf)?;
                $body
            }
            Dtype::I16 => {
                let $v = view::<i16>($buf)?;
                $body
            }
            Dtype::I32 => {
                let $v = view::<i32>($buf)?;
                $body
            }
            Dtype::I64 => {
                let $v = view::<i64>($buf)?;
                $body
            }
            Dtype::U8 => {
                let $v = view::<u8>($buf)?;
                $body
            }
            Dtype::U16 => {
                let $v = view::<u16>($buf)?;
                $body
            }
            Dtype::U32 => {
                let $v = view::<u32>($buf)?;
                $body
            }
            Dtype::U64 => {
                let $v = view::<u64>($buf)?;
                $body
            }
        }
    };
}

impl Dtype {
    const ALL: [Dtype; 10] = [
        Dtype::F32,
        Dtype::F64,
        Dtype::I8,
        Dtype::I16,
        Dtype::I32,
        Dtype::I64,
        Dtype::U8,
        Dtype::U16,
        Dtype::U32,
        Dtype::U64,
    ];

    fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
            Dtype::I8 => "i8",
            Dtype::I16 => "i16",
            Dtype::I32 => "i32",
            Dtype::I64 => "i64",
            Dtype::U8 => "u8",
            Dtype::U16 => "u16",
            Dtype::U32 => "u32",
            Dtype::U64 => "u64",
        }
    }

    /// The array's shape when the file holds this element type.
    fn shape(self, buf: &[u8]) -> std::result::Result<Vec<usize>, ViewNpyError> {
        with_view!(self, buf, |v| Ok(v.shape().to_vec()))
    }
}

fn view<T: ViewElement>(buf: &[u8]) -> std::result::Result<ArrayViewD<'_, T>, ViewNpyError> {
    ArrayViewD::<T>::view_npy(buf)
}

/// Slice `z` of a stack `[D, H, W]` or `[D, 1, H, W]` (C or Fortran order).
fn plane<'a, T>(v: ArrayViewD<'a, T>, z: usize) -> ArrayView2<'a, T> {
    let v = if v.ndim() == 4 {
        v.index_axis_move(Axis(1), 0)
    } else {
        v
    };
    v.index_axis_move(Axis(0), z)
        .into_dimensionality::<Ix2>()
        .expect("volume_dims checked the rank")
}

/// A stack of gray slices ([`volume_dims`]) in an NPY file, read one slice at a time from a
/// read-only memory map — ndarray-npy's `ViewNpyExt` over a `memmap2` map, as ndarray-npy
/// documents — so a study of a stack of any depth holds one batch of slices, not the stack
/// (each read slice's pages are released from the map again). Values are converted to f32 as
/// [`read_npy_f32`] does, C or Fortran order. Files that cannot be viewed in place (other byte
/// order than this machine's, bool) are not opened here: [`NpyVolume::open`] gives `None` and
/// callers read them whole.
///
/// Like every memory-mapped reader, it assumes the file is not modified while it is open.
pub struct NpyVolume {
    path: PathBuf,
    map: memmap2::Mmap,
    dtype: Dtype,
    /// `[D, H, W]`.
    pub dim: [usize; 3],
}

impl std::fmt::Debug for NpyVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyVolume")
            .field("path", &self.path)
            .field("dtype", &self.dtype)
            .field("dim", &self.dim)
            .finish()
    }
}

fn view_error(path: &Path, e: ViewNpyError) -> Error {
    match e {
        ViewNpyError::MissingBytes(n) => Error::format(
            path,
            format!("truncated NPY: {n} bytes of the array's data are missing"),
        ),
        ViewNpyError::ExtraBytes(n) => {
            Error::format(path, format!("NPY with {n} extra bytes after its data"))
        }
        e => Error::format(path, format!("invalid NPY file: {e}")),
    }
}

impl NpyVolume {
    /// Maps `path` and returns the volume when the file is a stack of slices that can be
    /// viewed in place; `None` for a picture or a file to be read whole; `Err` for a file that
    /// is not valid NPY (truncated, bad header).
    pub fn open(path: &Path) -> Result<Option<Self>> {
        // Slices are read from the map, so only the layout is checked, not the budget.
        read_npy_header(path)?.check_layout(path)?;
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: a read-only private mapping; the type documents that the file must not be
        // modified while it is open (the caveat of every mapped reader).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        for dtype in Dtype::ALL {
            let shape = match dtype.shape(&map) {
                Ok(s) => s,
                Err(ViewNpyError::WrongDescriptor(_)) => continue,
                Err(ViewNpyError::NonNativeEndian | ViewNpyError::MisalignedData) => {
                    return Ok(None)
                }
                Err(e) => return Err(view_error(path, e)),
            };
            return Ok(volume_dims(&shape).map(|dim| Self {
                path: path.to_path_buf(),
                map,
                dtype,
                dim,
            }));
        }
        Ok(None)
    }

    /// The file's element type (`f32`, `i16`, ...).
    pub fn dtype(&self) -> &'static str {
        self.dtype.name()
    }

    /// Slice `z` as f32 `[H, W]`.
    #[allow(clippy::unnecessary_cast)] // `as f32` serves every element type, f32 included
    pub fn slice(&self, z: usize) -> Result<Array2<f32>> {
        if z >= self.dim[0] {
            return Err(Error::format(
                &self.path,
                format!(
                    "slice z={z} is out of range: the stack has {} slices (0..={})",
                    self.dim[0],
                    self.dim[0].saturating_sub(1)
                ),
            ));
        }
        let read = || -> std::result::Result<Array2<f32>, ViewNpyError> {
            with_view!(
                self.dtype,
                &self.map,
                |v| Ok(plane(v, z).mapv(|x| x as f32))
            )
        };
        let out = read().map_err(|e| view_error(&self.path, e))?;
        // The copy is made: drop the pages just read from this process's map (they stay in
        // the page cache), so reading every slice does not grow the resident set by the file.
        // SAFETY: DONTNEED on a read-only file mapping only discards this process's copies of
        // clean pages; later reads fault them in again from the file. No view is alive here.
        let _ = unsafe {
            self.map
                .unchecked_advise(memmap2::UncheckedAdvice::DontNeed)
        };
        Ok(out)
    }
}
