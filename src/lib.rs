//! # scoreinv
//!
//! Solve imaging inverse problems with score-based generative models: train an unconditional
//! score model once by denoising score matching, then pair it with any forward operator of
//! [`scoreinv_operators`] (masking, grayscale, parallel-beam Radon, undersampled Fourier) or with
//! a time-dependent classifier, and sample the conditional reverse SDE.
//!
//! Modules, one concept each:
//! * [`sde`]: VE, VP and sub-VP SDEs (Song et al. 2021).
//! * [`models`]: the [`models::ScoreModel`] trait and score networks.
//! * [`device`]: `--device` selection.
//! * [`sampling`]: PC, DDPM ancestral, annealed Langevin and probability-flow ODE samplers; likelihoods.

pub mod device;
pub mod error;
pub mod models;
pub mod runtime;
pub mod sampling;
pub mod sde;

pub use error::{Error, Result};
pub use scoreinv_operators as operators;
