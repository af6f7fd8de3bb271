//! Data sources: phantoms, real volumes shipped by system packages, training sets.
pub mod invesalius;
