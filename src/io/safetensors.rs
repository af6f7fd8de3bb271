//! Named f32 tensors in a safetensors file with a CRC-32 of every tensor in its metadata
//! (`crc32/<name>`), written atomically ([`super::atomic`]) and read back with every check a
//! corrupted file needs (header, offsets, shapes, CRC, finite values): the format of model
//! directories ([`crate::models::model_dir`]) and training checkpoints
//! ([`crate::train::checkpoint`]).
use super::atomic::write_bytes;
use crate::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(bytes);
    c.sum()
}

/// The little-endian bytes of a tensor converted to contiguous f32 on the CPU.
fn f32_bytes(t: &Tensor) -> Vec<u8> {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let v: Vec<f32> = Vec::try_from(&t.flatten(0, -1)).unwrap_or_default();
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes named tensors (as f32) plus `metadata` to a safetensors file, atomically
/// ([`crate::io::atomic`]; its folder must exist), adding a `crc32/<name>` metadata entry per
/// tensor.
pub fn write_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let bufs: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let shape = t.size().iter().map(|&d| d as usize).collect();
            (n.clone(), shape, f32_bytes(t))
        })
        .collect();
    for (n, _, b) in &bufs {
        metadata.insert(format!("crc32/{n}"), format!("{:08x}", crc32(b)));
    }
    let mut views = Vec::with_capacity(bufs.len());
    for (n, shape, b) in &bufs {
        let v = TensorView::new(Dtype::F32, shape.clone(), b)
            .map_err(|e| Error::format(path, format!("tensor '{n}': {e:?}")))?;
        views.push((n.clone(), v));
    }
    let bytes = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| Error::format(path, format!("serialising tensors: {e:?}")))?;
    write_bytes(path, &bytes)
}

/// A safetensors file read into memory and checked (header, CRC-32 of every tensor that has one).
pub struct TensorFile {
    path: PathBuf,
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads and validates `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let len = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        // The whole file is held, and each tensor is copied once when it is taken.
        crate::io::budget::check_alloc(
            len as u128 * 2,
            &format!("safetensors file {} ({len} bytes)", path.display()),
        )
        .map_err(|e| Error::Checkpoint {
            path: path.into(),
            msg: e.to_string(),
        })?;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::Checkpoint {
            path: path.into(),
            msg: format!("not a readable safetensors file ({e:?})"),
        })?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let file = Self {
            path: path.into(),
            bytes,
            metadata,
        };
        // Deserialising checks that the offsets fit in the file.
        file.st()?;
        Ok(file)
    }

    fn st(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| Error::Checkpoint {
            path: self.path.clone(),
            msg: format!("corrupted safetensors file ({e:?})"),
        })
    }

    fn err(&self, msg: String) -> Error {
        Error::Checkpoint {
            path: self.path.clone(),
            msg,
        }
    }

    /// The file's metadata (without the per-tensor CRC entries).
    pub fn metadata(&self) -> HashMap<String, String> {
        self.metadata
            .iter()
            .filter(|(k, _)| !k.starts_with("crc32/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Names of the tensors in the file.
    pub fn names(&self) -> Vec<String> {
        self.st()
            .map(|s| s.names().into_iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Tensor `name` as f32 on `device`, checking that it exists, has `expected_shape` (if
    /// given), matches its CRC-32 and is finite.
    pub fn tensor(
        &self,
        name: &str,
        expected_shape: Option<&[i64]>,
        device: Device,
    ) -> Result<Tensor> {
        let st = self.st()?;
        let view = st
            .tensor(name)
            .map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        if view.dtype() != Dtype::F32 {
            return Err(self.err(format!(
                "tensor '{name}' has dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let shape: Vec<i64> = view
            .shape()
            .iter()
            .map(|&d| i64::try_from(d).ok())
            .collect::<Option<_>>()
            .ok_or_else(|| {
                self.err(format!(
                    "tensor '{name}' has shape {:?}, too large for a tensor",
                    view.shape()
                ))
            })?;
        if let Some(exp) = expected_shape {
            if exp != shape.as_slice() {
                return Err(self.err(format!(
                    "tensor '{name}' has shape {shape:?}, the model expects {exp:?}"
                )));
            }
        }
        let data = view.data();
        if let Some(stored) = self.metadata.get(&format!("crc32/{name}")) {
            let actual = format!("{:08x}", crc32(data));
            if &actual != stored {
                return Err(self.err(format!(
                    "tensor '{name}' is corrupted: CRC-32 {actual}, recorded {stored}"
                )));
            }
        }
        let t = Tensor::from_data_size(data, &shape, Kind::Float);
        let finite = t.isfinite().all().int64_value(&[]) != 0;
        if !finite {
            // Say which: a NaN and an infinity point at different problems.
            let nan = t.isnan().sum(Kind::Int64).int64_value(&[]);
            let inf = t.isinf().sum(Kind::Int64).int64_value(&[]);
            let what = match (nan, inf) {
                (0, i) => format!("{i} infinite value{}", if i == 1 { "" } else { "s" }),
                (n, 0) => format!("{n} NaN value{}", if n == 1 { "" } else { "s" }),
                (n, i) => format!("{n} NaN and {i} infinite values"),
            };
            return Err(self.err(format!(
                "tensor '{name}' contains {what} (of {})",
                t.numel()
            )));
        }
        Ok(t.to_device(device))
    }
}
