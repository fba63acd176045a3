//! Checks over host facts: findings with a status and a remedy (`mtkit doctor`).

mod finding;

pub use finding::{Finding, Status};
