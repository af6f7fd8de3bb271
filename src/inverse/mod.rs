//! Solvers for `y = A x + n` that do not use a generative model: the classical baselines every
//! score-based method is compared against.
pub mod baselines;
pub mod study;
pub mod tasks;
