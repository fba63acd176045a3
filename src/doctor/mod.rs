//! Checks over host facts: findings with a status and a remedy (`mtkit doctor`).

pub mod checks;
mod context;
mod finding;
pub mod writer;

pub use finding::{Finding, Status, any_failed};
