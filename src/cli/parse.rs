//! Value parsers shared by the subcommands: clap reports their errors with the flag and the
//! value (`invalid value '0' for '--steps <STEPS>': must be at least 1`).
use scoreinv::data::ct_slices::HuWindow;

/// The largest `--size` accepted: a 16 384² float image is 1 GiB per channel.
pub const MAX_SIZE: i64 = 16_384;

fn parse_int<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse::<T>()
        .map_err(|_| format!("'{s}' is not a whole number"))
}

/// A whole number ≥ 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    match parse_int::<i128>(s)? {
        v if v < 1 => Err("must be at least 1".into()),
        v => usize::try_from(v).map_err(|_| "is too large".into()),
    }
}

/// A whole number ≥ 1.
pub fn positive_u64(s: &str) -> Result<u64, String> {
    match parse_int::<i128>(s)? {
        v if v < 1 => Err("must be at least 1".into()),
        v => u64::try_from(v).map_err(|_| "is too large".into()),
    }
}

/// A whole number ≥ 1.
pub fn positive_i64(s: &str) -> Result<i64, String> {
    match parse_int::<i128>(s)? {
        v if v < 1 => Err("must be at least 1".into()),
        v => i64::try_from(v).map_err(|_| "is too large".into()),
    }
}

/// An image side length for `--size`: 2 to [`MAX_SIZE`].
pub fn image_size(s: &str) -> Result<i64, String> {
    match parse_int::<i128>(s)? {
        v if v < 2 => Err("must be at least 2".into()),
        v if v > MAX_SIZE as i128 => Err(format!("must be at most {MAX_SIZE}")),
        v => Ok(v as i64),
    }
}

/// A finite number.
pub fn finite_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("must be a finite number".into()),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

/// The HU window of `--window lo,hi` (also `--window lo hi`): two finite values, lo < hi.
pub fn hu_window(values: &[f32]) -> anyhow::Result<HuWindow> {
    anyhow::ensure!(
        values.len() == 2,
        "--window takes two values lo,hi (e.g. --window=-160,240 or --window -160 240), got {}",
        values.len()
    );
    let (lo, hi) = (values[0], values[1]);
    anyhow::ensure!(
        lo.is_finite() && hi.is_finite() && hi > lo,
        "--window {lo},{hi}: lo must be below hi (both finite)"
    );
    Ok(HuWindow { lo, hi })
}
