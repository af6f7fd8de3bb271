//! fastMRI raw k-space files (HDF5; Zbontar et al. 2018, "fastMRI: an open dataset and
//! benchmarks for accelerated MRI").
//!
//! A file holds
//! * `kspace`: `[slices, coils, kx, ky]` complex64 (multi-coil) or `[slices, kx, ky]` (single
//!   coil), complex as h5py writes it (compound `{r, i}`; complex128 is converted);
//! * `ismrmrd_header`: the ISMRMRD XML header (a string); the encoded and reconstruction matrix
//!   sizes and fields of view are read from it ([`IsmrmrdHeader`]);
//! * optionally `mask`: `[ky]` (bool or numbers), the sampled phase-encoding columns (the test
//!   and challenge files), and the attributes `acceleration`, `max` and `norm`.
//!
//! **Conventions.** `kx` (rows, axis −2) is the readout, `ky` (columns, axis −1) the phase
//! encoding, and the image is fastMRI's `ifft2c(kspace) = fftshift(ifft2(ifftshift(k),
//! norm="ortho"))` over the last two axes. That is exactly the `F` of
//! [`scoreinv_operators::MriFourier`] and [`scoreinv_operators::SenseMri`] (same shifts, same
//! orthonormal scaling, same axes), so k-space is used as stored, without conversion; a `[ky]`
//! mask becomes the `[kx, ky]` mask of whole columns.
//!
//! One slice is read at a time: `FILE.h5#z=K` picks slice `K` (0-based); a file of one slice
//! needs no selector. The slice's declared size is checked against the memory budget
//! ([`crate::io::budget`]) before it is read, and non-finite values are refused.
use crate::io::budget;
use crate::{Error, Result};
use hdf5::types::{VarLenAscii, VarLenUnicode};
use ndarray::{s, Array1, Array3, Ix2, Ix3};
use num_complex::Complex;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Whether `path` (with or without a `#z=K` selector) names an HDF5 file by its extension
/// (`.h5`, `.hdf5`).
pub fn is_hdf5(path: &Path) -> bool {
    let name = path.to_string_lossy();
    let name = name.split('#').next().unwrap_or("").to_ascii_lowercase();
    name.ends_with(".h5") || name.ends_with(".hdf5")
}

/// `FILE.h5#z=K` → `(FILE.h5, Some(K))`; a path without `#` → `(path, None)`.
pub fn split_slice_selector(path: &Path) -> Result<(PathBuf, Option<usize>)> {
    let s = path.to_string_lossy();
    let Some((file, sel)) = s.rsplit_once('#') else {
        return Ok((path.to_path_buf(), None));
    };
    let k = sel
        .strip_prefix("z=")
        .and_then(|k| k.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            Error::Config(format!(
                "{s}: the selector '#{sel}' of a k-space file must be #z=K, K the 0-based slice"
            ))
        })?;
    Ok((PathBuf::from(file), Some(k)))
}

/// One space of the ISMRMRD header (`encodedSpace` or `reconSpace`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EncodingSpace {
    /// `matrixSize` `(x, y, z)`: x the readout (kx), y the phase encoding (ky).
    pub matrix: Option<[usize; 3]>,
    /// `fieldOfView_mm` `(x, y, z)`.
    pub fov_mm: Option<[f64; 3]>,
}

/// What is read from the ISMRMRD XML header (the first `encoding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct IsmrmrdHeader {
    pub encoded: EncodingSpace,
    pub recon: EncodingSpace,
}

/// Parses the matrix sizes and fields of view of the first `encoding` of an ISMRMRD header.
pub fn parse_ismrmrd_header(xml: &str) -> std::result::Result<IsmrmrdHeader, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<String> = Vec::new();
    let mut header = IsmrmrdHeader::default();
    let mut encodings = 0;
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = AsRef::<str>::as_ref(&e.local_name()).to_string();
                if name == "encoding" {
                    encodings += 1;
                }
                stack.push(name);
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) if encodings == 1 => {
                let n = stack.len();
                if n < 4 || stack[n - 4] != "encoding" {
                    continue;
                }
                let space = match stack[n - 3].as_str() {
                    "encodedSpace" => &mut header.encoded,
                    "reconSpace" => &mut header.recon,
                    _ => continue,
                };
                let axis = match stack[n - 1].as_str() {
                    "x" => 0,
                    "y" => 1,
                    "z" => 2,
                    _ => continue,
                };
                let text: &str = t.as_ref();
                let text = text.trim();
                let bad = |what: &str| format!("{what} <{}> is '{text}'", stack[n - 1]);
                match stack[n - 2].as_str() {
                    "matrixSize" => {
                        let v: usize = text.parse().map_err(|_| bad("matrixSize"))?;
                        space.matrix.get_or_insert([1, 1, 1])[axis] = v;
                    }
                    "fieldOfView_mm" => {
                        let v: f64 = text.parse().map_err(|_| bad("fieldOfView_mm"))?;
                        space.fov_mm.get_or_insert([0.0; 3])[axis] = v;
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(header)
}

/// One slice of a fastMRI file.
#[derive(Debug, Clone)]
pub struct KspaceSlice {
    /// The file (without selector).
    pub file: PathBuf,
    /// The slice read and the file's slice count.
    pub slice: usize,
    pub slices: usize,
    /// `[coils, kx, ky]` (`coils = 1` for a single-coil file).
    pub kspace: Array3<Complex<f32>>,
    /// Whether the file is multi-coil (`kspace` of rank 4).
    pub multicoil: bool,
    /// The file's `[ky]` 0/1 mask, if it has one.
    pub mask: Option<Array1<f32>>,
    /// The ISMRMRD header, if the file has one.
    pub header: Option<IsmrmrdHeader>,
    /// The attributes `acceleration`, `max`, `norm` where present.
    pub acceleration: Option<f64>,
    pub max: Option<f64>,
    pub norm: Option<f64>,
}

impl KspaceSlice {
    /// The case name: `STEM_zK` (`STEM` for a file of one slice).
    pub fn name(&self) -> String {
        let stem = self
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kspace".into());
        if self.slices > 1 {
            format!("{stem}_z{}", self.slice)
        } else {
            stem
        }
    }

    /// The `[ky]` 0/1 mask: the file's, else the columns with a non-zero entry in any coil and
    /// row (unsampled columns of fastMRI's undersampled files are zero).
    pub fn column_mask(&self) -> Array1<f32> {
        match &self.mask {
            Some(m) => m.clone(),
            None => {
                let (_, _, ky) = self.kspace.dim();
                Array1::from_shape_fn(ky, |j| {
                    let col = self.kspace.slice(s![.., .., j]);
                    f32::from(col.iter().any(|z| z.re != 0.0 || z.im != 0.0))
                })
            }
        }
    }
}

fn h5err<'a>(file: &'a Path, what: &str) -> impl Fn(hdf5::Error) -> Error + 'a {
    let what = what.to_string();
    move |e| Error::format(file, format!("{what}: {e}"))
}

fn attr_f64(f: &hdf5::File, name: &str) -> Option<f64> {
    f.attr(name).ok()?.read_scalar::<f64>().ok()
}

fn read_header(f: &hdf5::File, file: &Path) -> Result<Option<IsmrmrdHeader>> {
    if !f.link_exists("ismrmrd_header") {
        return Ok(None);
    }
    let ds = f
        .dataset("ismrmrd_header")
        .map_err(h5err(file, "ismrmrd_header"))?;
    let xml = match ds.read_scalar::<VarLenAscii>() {
        Ok(s) => s.as_str().to_string(),
        Err(_) => ds
            .read_scalar::<VarLenUnicode>()
            .map_err(h5err(file, "ismrmrd_header (expected an XML string)"))?
            .as_str()
            .to_string(),
    };
    parse_ismrmrd_header(&xml)
        .map(Some)
        .map_err(|e| Error::format(file, format!("ismrmrd_header: {e}")))
}

fn read_mask(f: &hdf5::File, file: &Path, ky: usize) -> Result<Option<Array1<f32>>> {
    if !f.link_exists("mask") {
        return Ok(None);
    }
    let ds = f.dataset("mask").map_err(h5err(file, "mask"))?;
    let shape = ds.shape();
    if shape != [ky] {
        return Err(Error::format(
            file,
            format!("mask has shape {shape:?}, expected [{ky}] (one entry per ky column)"),
        ));
    }
    let m: Array1<f32> = match ds.read_1d::<bool>() {
        Ok(b) => b.mapv(f32::from),
        Err(_) => ds.read_1d::<f32>().map_err(h5err(file, "mask"))?,
    };
    if let Some(v) = m.iter().find(|&&v| v != 0.0 && v != 1.0) {
        return Err(Error::format(file, format!("mask must be 0/1, found {v}")));
    }
    if m.iter().all(|&v| v == 0.0) {
        return Err(Error::format(file, "mask samples no ky column"));
    }
    Ok(Some(m))
}

/// Reads one slice of a fastMRI file, `FILE.h5` or `FILE.h5#z=K` (see the module docs).
pub fn read_slice(path: &Path) -> Result<KspaceSlice> {
    let (file, sel) = split_slice_selector(path)?;
    if !file.is_file() {
        return Err(Error::io(
            &file,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such k-space file"),
        ));
    }
    let f = hdf5::File::open(&file).map_err(h5err(&file, "not an HDF5 file"))?;
    if !f.link_exists("kspace") {
        return Err(Error::format(
            &file,
            "no dataset 'kspace' (a fastMRI file holds kspace [slices, coils, kx, ky] or \
             [slices, kx, ky])",
        ));
    }
    let ds = f.dataset("kspace").map_err(h5err(&file, "kspace"))?;
    let shape = ds.shape();
    let multicoil = match shape.len() {
        4 => true,
        3 => false,
        _ => {
            return Err(Error::format(
                &file,
                format!(
                    "kspace has shape {shape:?}: expected [slices, coils, kx, ky] (multi-coil) \
                     or [slices, kx, ky] (single coil)"
                ),
            ))
        }
    };
    budget::check_no_empty_axis(&file, &shape, "kspace")?;
    let slices = shape[0];
    let slice = match sel {
        Some(k) if k < slices => k,
        Some(k) => {
            return Err(Error::Config(format!(
                "{}: #z={k} is out of range: the file holds {slices} slices (0..{})",
                path.display(),
                slices - 1
            )))
        }
        None if slices == 1 => 0,
        None => {
            return Err(Error::Config(format!(
                "{}: the file holds {slices} slices; pick one with {}#z=K (K in 0..{})",
                path.display(),
                file.display(),
                slices - 1
            )))
        }
    };
    let per_slice = &shape[1..];
    let bytes =
        budget::bytes_for(per_slice, std::mem::size_of::<Complex<f32>>()).unwrap_or(u128::MAX);
    budget::check_file_alloc(&file, bytes, &format!("kspace slice {per_slice:?}"))?;
    let kspace: Array3<Complex<f32>> = if multicoil {
        ds.read_slice::<Complex<f32>, _, Ix3>(s![slice, .., .., ..])
            .map_err(h5err(&file, "kspace (expected complex numbers)"))?
    } else {
        ds.read_slice::<Complex<f32>, _, Ix2>(s![slice, .., ..])
            .map_err(h5err(&file, "kspace (expected complex numbers)"))?
            .insert_axis(ndarray::Axis(0))
    };
    let bad = kspace
        .iter()
        .filter(|z| !(z.re.is_finite() && z.im.is_finite()))
        .count();
    if bad > 0 {
        return Err(Error::NonFinite(format!(
            "{}: kspace slice {slice} ({bad} of {} values are not finite)",
            file.display(),
            kspace.len()
        )));
    }
    let mask = read_mask(&f, &file, kspace.dim().2)?;
    let header = read_header(&f, &file)?;
    Ok(KspaceSlice {
        slice,
        slices,
        kspace,
        multicoil,
        mask,
        header,
        acceleration: attr_f64(&f, "acceleration"),
        max: attr_f64(&f, "max"),
        norm: attr_f64(&f, "norm"),
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_split() {
        let (f, k) = split_slice_selector(Path::new("/d/a.h5#z=3")).unwrap();
        assert_eq!((f, k), (PathBuf::from("/d/a.h5"), Some(3)));
        assert_eq!(split_slice_selector(Path::new("a.h5")).unwrap().1, None);
        for bad in ["a.h5#z=", "a.h5#z=-1", "a.h5#t=2", "a.h5#2"] {
            let e = split_slice_selector(Path::new(bad))
                .unwrap_err()
                .to_string();
            assert!(e.contains("#z=K"), "{e}");
        }
        assert!(is_hdf5(Path::new("x/A.H5#z=1")) && is_hdf5(Path::new("a.hdf5")));
        assert!(!is_hdf5(Path::new("a.npy")));
    }

    #[test]
    fn header_sizes_and_fov() {
        let xml = r#"<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
            <encoding><encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize>
            <fieldOfView_mm><x>280</x><y>161.0</y><z>4.5</z></fieldOfView_mm></encodedSpace>
            <reconSpace><matrixSize><x>320</x><y>320</y><z>1</z></matrixSize>
            <fieldOfView_mm><x>140</x><y>140</y><z>4.5</z></fieldOfView_mm></reconSpace>
            </encoding><encoding><encodedSpace><matrixSize><x>1</x></matrixSize></encodedSpace>
            </encoding></ismrmrdHeader>"#;
        let h = parse_ismrmrd_header(xml).unwrap();
        assert_eq!(h.encoded.matrix, Some([640, 368, 1]));
        assert_eq!(h.recon.matrix, Some([320, 320, 1]));
        assert_eq!(h.encoded.fov_mm, Some([280.0, 161.0, 4.5]));
        assert_eq!(h.recon.fov_mm, Some([140.0, 140.0, 4.5]));
        let e = parse_ismrmrd_header(
            "<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>big</x></matrixSize>\
             </encodedSpace></encoding></ismrmrdHeader>",
        )
        .unwrap_err();
        assert!(e.contains("big"), "{e}");
        assert!(parse_ismrmrd_header("<a><b></a>").is_err());
    }
}
