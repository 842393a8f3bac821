//! sb
