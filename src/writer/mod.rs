//! The master-target writer service: NBD server, block stores, undo journal, recovery points.
//!
//! The seam between the protocol and the storage is [`Export`] (one served disk, or a
//! read-only view of a disk at a point) and [`ExportResolver`] (how a name the client asks
//! for becomes an export, and who may open it).

pub mod export;
pub mod file_export;
pub mod nbd;
pub mod tls;

pub use export::{ClientInfo, Export, ExportInfo, ExportResolver, OpenError};
pub use file_export::FileExport;
pub mod certs;
pub mod control;
pub mod extents;
pub mod fds;
pub mod group;
pub mod journal;
pub mod journaled;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod recover;
pub mod service;
pub mod targets;
pub mod zeroing;
