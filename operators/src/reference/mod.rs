//! ndarray + rayon + ndrustfft reference implementations (CPU), independent of the tch kernels:
//! the differential-test references of the tch operators, usable on their own by CPU-only callers.
pub mod fan;
pub mod fft;
pub mod radon;
