//! Data sources: analytic phantoms (more loaders may be added by other modules).
pub mod phantom;
