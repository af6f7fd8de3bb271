//! Real head CT from InVesalius project files (`.inv3`).
//!
//! Debian's `invesalius-examples` ships `Cranium.inv3`: a gzip'd tar holding `main.plist` (an
//! Apple property list: the matrix's dtype, shape `[z, y, x]` and voxel spacing) and
//! `matrix.dat`, the raw little-endian voxels in Hounsfield units (108×256×256 int16,
//! 0.957×0.957×1.5 mm). Licence of that file: GPL-2 (per the package), so it is read from the
//! system, never committed.

use crate::{Error, Result};
use ndarray::Array3;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `invesalius-examples` puts the head CT.
pub const CRANIUM_INV3: &str = "/usr/share/doc/invesalius-examples/examples/Cranium.inv3";

/// A CT volume in Hounsfield units, axes `[z, y, x]`, spacing in mm for `[z, y, x]`.
#[derive(Debug, Clone)]
pub struct CtVolume {
    pub hu: Array3<f32>,
    pub spacing_mm: [f64; 3],
    pub source: PathBuf,
}

/// Reads an `.inv3` project: its `main.plist` and the int16 `matrix.dat` it names.
pub fn read_inv3(path: &Path) -> Result<CtVolume> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut plist_bytes: Option<Vec<u8>> = None;
    let mut matrix: Option<Vec<u8>> = None;
    let entries = archive
        .entries()
        .map_err(|e| Error::format(path, format!("not a gzip'd tar (.inv3): {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::format(path, format!("corrupt .inv3 archive: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| Error::format(path, format!("corrupt entry name: {e}")))?
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wanted = name == "main.plist" || name == "matrix.dat";
        if wanted {
            let mut buf = Vec::new();
            entry
                .read_to_end(&mut buf)
                .map_err(|e| Error::format(path, format!("truncated entry {name}: {e}")))?;
            if name == "main.plist" {
                plist_bytes = Some(buf);
            } else {
                matrix = Some(buf);
            }
        }
    }
    let plist_bytes =
        plist_bytes.ok_or_else(|| Error::format(path, "no main.plist in the .inv3 archive"))?;
    let matrix = matrix.ok_or_else(|| Error::format(path, "no matrix.dat in the .inv3 archive"))?;
    let meta: plist::Value = plist::from_bytes(&plist_bytes)
        .map_err(|e| Error::format(path, format!("main.plist: {e}")))?;
    let dict = meta
        .as_dictionary()
        .ok_or_else(|| Error::format(path, "main.plist is not a dictionary"))?;
    let m = dict
        .get("matrix")
        .and_then(|v| v.as_dictionary())
        .ok_or_else(|| Error::format(path, "main.plist has no 'matrix' entry"))?;
    let dtype = m.get("dtype").and_then(|v| v.as_string()).unwrap_or("");
    if dtype != "int16" {
        return Err(Error::format(
            path,
            format!("matrix dtype '{dtype}' is not supported (expected int16)"),
        ));
    }
    let shape: Vec<usize> = m
        .get("shape")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_signed_integer())
                .map(|v| v as usize)
                .collect()
        })
        .unwrap_or_default();
    if shape.len() != 3 {
        return Err(Error::format(
            path,
            format!("matrix shape {shape:?} is not 3-D"),
        ));
    }
    let n = shape.iter().product::<usize>();
    if matrix.len() != 2 * n {
        return Err(Error::format(
            path,
            format!(
                "matrix.dat has {} bytes, shape {shape:?} int16 needs {}",
                matrix.len(),
                2 * n
            ),
        ));
    }
    let hu: Vec<f32> = matrix
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32)
        .collect();
    let hu = Array3::from_shape_vec((shape[0], shape[1], shape[2]), hu)
        .map_err(|e| Error::format(path, e.to_string()))?;
    // InVesalius stores spacing as [x, y, z]; report it in our [z, y, x] order.
    let sp: Vec<f64> = dict
        .get("spacing")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_real()).collect())
        .unwrap_or_default();
    let spacing_mm = if sp.len() == 3 {
        [sp[2], sp[1], sp[0]]
    } else {
        [1.0, 1.0, 1.0]
    };
    Ok(CtVolume {
        hu,
        spacing_mm,
        source: path.to_path_buf(),
    })
}
