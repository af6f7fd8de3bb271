//! Data sources: phantoms, real volumes shipped by system packages, training sets.
pub mod cases;
pub mod ct_slices;
pub mod invesalius;
pub mod phantom;
