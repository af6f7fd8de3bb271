//! Independent ndarray implementations used to cross-check the tch operators.
pub mod fft;
