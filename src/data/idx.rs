//! Reader of the IDX format of MNIST / Fashion-MNIST (LeCun et al.; Xiao et al. 2017), raw or
//! gzip-compressed: two zero bytes, a type byte (0x08 = unsigned byte), the number of
//! dimensions, each dimension as a big-endian u32, then the data in C order.

use crate::{Error, Result};
use std::io::Read;
use std::path::Path;

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes; gzip is detected from the magic bytes `1f 8b`.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    crate::io::budget::check_file_alloc(path, len as u128 * 2, "IDX file (read with a copy)")?;
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        // Decompress the header, check the size it declares against the memory budget, then
        // decompress no more than that (and one byte, so trailing data are still reported): a
        // small gzip bomb cannot fill the memory.
        let mut dec = flate2::read::GzDecoder::new(raw.as_slice());
        let gz_err =
            |e: std::io::Error| Error::format(path, format!("gzip decompression failed: {e}"));
        let mut out = vec![];
        (&mut dec).take(4).read_to_end(&mut out).map_err(gz_err)?;
        let nd = out.get(3).copied().unwrap_or(0) as u64;
        (&mut dec)
            .take(4 * nd)
            .read_to_end(&mut out)
            .map_err(gz_err)?;
        let header = parse_header(&out).map_err(|msg| Error::format(path, msg))?;
        let need = header.data_len.unwrap_or(u128::MAX);
        crate::io::budget::check_file_alloc(
            path,
            need,
            &format!("IDX array {:?} of unsigned bytes", header.dims),
        )?;
        let rest = u64::try_from(need).unwrap_or(u64::MAX).saturating_add(1);
        (&mut dec)
            .take(rest)
            .read_to_end(&mut out)
            .map_err(gz_err)?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(|msg| Error::format(path, msg))
}

/// The header of an IDX file: its dims and the data bytes they need (`None` on overflow).
struct IdxHeader {
    dims: Vec<usize>,
    header_len: usize,
    data_len: Option<u128>,
}

fn parse_header(bytes: &[u8]) -> std::result::Result<IdxHeader, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (the first two bytes must be zero)".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "IDX element type 0x{:02x} is not supported (only 0x08, unsigned byte)",
            bytes[2]
        ));
    }
    let nd = bytes[3] as usize;
    let header_len = 4 + 4 * nd;
    if nd == 0 || bytes.len() < header_len {
        return Err(format!("IDX header with {nd} dimensions is truncated"));
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let data_len = crate::io::budget::elements(&dims);
    Ok(IdxHeader {
        dims,
        header_len,
        data_len,
    })
}

/// Parses IDX bytes.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    let IdxHeader {
        dims,
        header_len,
        data_len,
    } = parse_header(bytes)?;
    if dims.contains(&0) {
        return Err(format!(
            "IDX dimensions {dims:?} have a zero-length axis: the file holds no data"
        ));
    }
    let data = &bytes[header_len..];
    if data_len != Some(data.len() as u128) {
        let need = data_len.map_or("more than 2^128".to_string(), |n| n.to_string());
        return Err(format!(
            "IDX dimensions {dims:?} need {need} data bytes, the file has {}",
            data.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: data.to_vec(),
    })
}

/// Encodes an IDX array of unsigned bytes (for tests and fixtures).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}
