//! Data sources: phantoms, real volumes shipped by system packages, training sets.
pub mod cases;
pub mod ct_slices;
pub mod idx;
pub mod invesalius;
pub mod phantom;
pub mod spec;

use std::path::{Path, PathBuf};

/// Where the Debian package `dataset-fashion-mnist` installs the data.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// `dir/stem` or `dir/stem.gz`, whichever exists.
pub fn find_idx(dir: &Path, stem: &str) -> Option<PathBuf> {
    [stem.to_string(), format!("{stem}.gz")]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}
