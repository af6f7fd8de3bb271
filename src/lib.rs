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
//! * [`io`]: PNG/TIFF/NPY/NIfTI/DICOM images, invertible normalisation, tensor conversion.
//! * [`metrics`]: PSNR, SSIM, nRMSE (identical to scikit-image).
//! * [`data`]: phantoms (modified Shepp–Logan, random ellipses).
//! * [`inverse`]: classical baselines (TV-PDHG, FBP / pseudo-inverse, zero-filled, gray).
//! * [`inverse`] conditional samplers: projection PC (Song et al. 2022), replacement (score_sde),
//!   DPS (Chung et al. 2023), posterior mean/std, and `ScoreMethod` for reconstruction studies.
//! * [`inverse::tasks`]: the tasks (CT, MRI, inpainting, colorization), one settings struct and
//!   file each behind the `Task` trait and the `TASKS` registry; [`inverse::study`] runs them.
//! * [`config`]: checks of setting values shared by settings structs and flags.
//! * [`train`]: DSM/SSM/NCSN/DDPM training, Adam + EMA, bit-exact checkpoints, data sources.
//! * [`guidance`]: time-dependent classifiers, their training, classifier-guided (class-conditional) scores.
//! * [`interrupt`]: the first SIGINT/SIGTERM stops long loops at a safe point.
//! * [`sampling`]: PC, DDPM ancestral, annealed Langevin and probability-flow ODE samplers; likelihoods.
//!
//! The benchmark harness of `scoreinv bench` is not part of the library: it lives in the
//! binary (`src/cli/bench/`), the only thing that runs it.

pub mod autocast;
pub mod config;
pub mod cuda_graph;
pub mod data;
pub mod device;
pub mod error;
pub mod guidance;
pub mod interrupt;
pub mod inverse;
pub mod io;
pub mod metrics;
pub mod models;
pub mod runtime;
pub mod sampling;
pub mod sde;
pub mod train;

pub use error::{Error, Result};
pub use scoreinv_operators as operators;
