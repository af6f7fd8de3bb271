//! Checks of setting values shared by the settings structs and their command-line flags
//! (used as clap value parsers: clap reports a refusal with the flag and the value, e.g.
//! `invalid value '0' for '--steps <STEPS>': must be at least 1`).

/// The largest image side accepted for resampling: a 16 384² float image is 1 GiB per channel.
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

/// An image side length: 2 to [`MAX_SIZE`].
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
