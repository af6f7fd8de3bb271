//! ndarray + rayon reference implementations (CPU), independent of tch kernels.
pub mod radon;
