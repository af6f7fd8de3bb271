//! Value parsers of the command line: the library's ([`scoreinv::config`]) and the HU window.
pub use scoreinv::config::{finite_f64, image_size, positive_i64, positive_u64, positive_usize};
use scoreinv::data::ct_slices::HuWindow;

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
