//! Retention volumes: eligibility rules (Linux devices, Windows R:) and preparing a volume.

pub mod check;
pub mod linux;
pub mod prepare;
pub mod rules;
pub mod space;
pub mod windows;
