//! The custom changes of a master target (`mtkit apply`): planned, idempotent, reversible edits.
//!
//! Each area has a pure planner (what is there + config → the wanted end state of some
//! paths); [`plan`] gathers them into one [`Plan`], and [`executor`] applies it atomically,
//! keeping what was there before so that `--revert` restores it byte for byte.

mod areas;
pub mod diff;
pub mod executor;
pub mod firewall;
pub mod hosts;
pub mod kdump;
pub mod lvm;
pub mod multipath;
pub mod network;
mod plan;
pub mod services;
pub mod tls;
pub mod writer_service;

pub use areas::plan_with;
pub use plan::{Change, Current, InitSystem, Plan, Reader, Wanted};

use crate::config::Config;
use crate::files::Root;
use anyhow::Result;
use std::path::Path;

/// The whole plan for the system under `root`: every planner, reading only.
pub fn plan(root: &Path, config: &Config) -> Result<Plan> {
    let root = Root::open(root)?;
    // What an earlier apply replaced is planned from its original text.
    let (originals, recorded) = executor::recorded(&root)?;
    plan_with(&Reader::with(&root, originals, recorded), config)
}
