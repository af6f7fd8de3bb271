//! The memory budget that sizes declared in input files (and flags such as `--size`) are
//! checked against before anything is allocated for them.
//!
//! A file's header says how big its data are (an NPY shape, NIfTI dims, DICOM Rows × Columns ×
//! frames, PNG/TIFF width × height, IDX dims, a model config's layer widths); a hostile or
//! corrupted file can declare terabytes over a few bytes. Readers compute the bytes a declared
//! size needs (with overflow checks: [`elements`], [`bytes_for`]) and call [`check_alloc`] (or
//! [`check_file_alloc`], which names the file) first, so an absurd size is an error instead of
//! an allocation that aborts the process.
//!
//! The budget is, in this order of precedence:
//! 1. the value set by [`set_budget_override`] (tests),
//! 2. the environment variable `SCOREINV_MEMORY_BUDGET`: bytes, or a number with a `K`, `M`,
//!    `G` or `T` suffix (powers of 1024; `KiB`/`KB` spellings too), e.g. `512M`, `1.5G`,
//! 3. the memory the kernel says is available (`MemAvailable` in `/proc/meminfo`),
//! 4. 16 GiB where that cannot be read.
use crate::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that sets the budget.
pub const BUDGET_ENV: &str = "SCOREINV_MEMORY_BUDGET";

/// The budget when neither the environment nor `/proc/meminfo` gives one.
pub const FALLBACK_BUDGET: u64 = 16 << 30;

/// 0 = no override.
static OVERRIDE: AtomicU64 = AtomicU64::new(0);

/// Sets (Some) or clears (None) a process-wide budget that takes precedence over the
/// environment variable and the available memory. For tests, which cannot set environment
/// variables safely while other threads run.
pub fn set_budget_override(bytes: Option<u64>) {
    OVERRIDE.store(bytes.map_or(0, |b| b.max(1)), Ordering::SeqCst);
}

/// Parses a size: `1048576`, `512K`, `64M`, `1.5G`, `2T`, `8GiB`, `8GB` (powers of 1024; case
/// does not matter). `None` for anything else, negative or non-finite values.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let upper = s.to_ascii_uppercase();
    let num_end = upper
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(upper.len());
    let (num, unit) = upper.split_at(num_end);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    if num.is_empty() {
        return None;
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult);
    }
    let v: f64 = num.parse().ok()?;
    let bytes = v * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `MemAvailable` of `/proc/meminfo` in bytes.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | Some("KB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Where the budget came from, for messages.
fn budget_and_source() -> (u64, &'static str) {
    let o = OVERRIDE.load(Ordering::SeqCst);
    if o > 0 {
        return (o, "set by the program");
    }
    if let Some(b) = std::env::var(BUDGET_ENV).ok().and_then(|v| parse_size(&v)) {
        return (b, "from SCOREINV_MEMORY_BUDGET");
    }
    match mem_available() {
        Some(b) => (
            b,
            "the available memory; set SCOREINV_MEMORY_BUDGET to change it",
        ),
        None => (
            FALLBACK_BUDGET,
            "the default; set SCOREINV_MEMORY_BUDGET to change it",
        ),
    }
}

/// The memory budget in bytes (see the module doc).
pub fn budget() -> u64 {
    budget_and_source().0
}

/// [`budget`] as `u128`, the type sizes are computed in.
pub fn budget_bytes() -> u128 {
    budget() as u128
}

/// Bytes in a readable form: `40.0 GB (40000000000 bytes)`.
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {} ({bytes} bytes)", UNITS[u])
    }
}

/// The number of elements of `shape` (1 for `[]`), `None` on overflow.
pub fn elements(shape: &[usize]) -> Option<u128> {
    shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
}

/// `elements(shape) × item_size`, `None` on overflow.
pub fn bytes_for(shape: &[usize], item_size: usize) -> Option<u128> {
    elements(shape)?.checked_mul(item_size as u128)
}

fn over_budget(bytes: u128, what: &str) -> Option<String> {
    let (budget, source) = budget_and_source();
    (bytes > budget as u128).then(|| {
        format!(
            "{what} needs {} of memory, more than the memory budget of {} ({source})",
            human_bytes(bytes),
            human_bytes(budget as u128)
        )
    })
}

/// Refuses an allocation of `bytes` for `what` (say what it is and its declared shape) that is
/// over the budget: [`Error::Invalid`] naming both.
pub fn check_alloc(bytes: u128, what: &str) -> Result<()> {
    match over_budget(bytes, what) {
        None => Ok(()),
        Some(msg) => Err(Error::Invalid(msg)),
    }
}

/// [`check_alloc`] for data declared in `path`: a [`Error::Format`] naming the file.
pub fn check_file_alloc(path: &Path, bytes: u128, what: &str) -> Result<()> {
    match over_budget(bytes, what) {
        None => Ok(()),
        Some(msg) => Err(Error::format(path, msg)),
    }
}

/// Refuses a shape with a zero-length axis: a [`Error::Format`] naming the file and the shape
/// (`what` says what the shape is, e.g. `"NPY array"`).
pub fn check_no_empty_axis(path: &Path, shape: &[usize], what: &str) -> Result<()> {
    if shape.contains(&0) {
        return Err(Error::format(
            path,
            format!("{what} has shape {shape:?} with a zero-length axis: it holds no data"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size(" 2G "), Some(2 << 30));
        assert_eq!(parse_size("8GiB"), Some(8 << 30));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        for bad in ["", "G", "-1", "12X", "1e9", "NaN", "99999999999999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn overflowing_shapes_have_no_size() {
        assert_eq!(elements(&[]), Some(1));
        assert_eq!(bytes_for(&[100_000, 100_000], 4), Some(40_000_000_000));
        assert_eq!(elements(&[usize::MAX, usize::MAX, usize::MAX]), None);
    }

    #[test]
    fn over_budget_names_what_and_the_budget() {
        // The machine's budget is far below 2^100 bytes whatever it is.
        let e = check_alloc(1u128 << 100, "NPY array [huge]").unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("NPY array [huge]") && s.contains("memory budget"),
            "{s}"
        );
        check_alloc(1, "one byte").unwrap();
        let e = check_file_alloc(Path::new("/x/a.npy"), 1u128 << 100, "array").unwrap_err();
        assert!(e.to_string().starts_with("/x/a.npy: array needs"), "{e}");
        let e = check_no_empty_axis(Path::new("a.npy"), &[0, 64], "NPY array").unwrap_err();
        assert!(e.to_string().contains("[0, 64]"), "{e}");
    }
}
