//! The NBD protocol server (NetworkBlockDevice/nbd doc/proto.md, fixed newstyle).
//!
//! `proto` holds the wire codecs, `negotiate` the option haggling, `transmit` the request
//! loop and `server` the listeners and connection threads. The server knows nothing of
//! storage: it serves whatever [`crate::writer::ExportResolver`] hands it.

pub mod buffers;
pub mod connection;
pub mod exports;
// Only for the fuzz target and the tests: its export panics where the server failed.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod negotiate;
pub mod proto;
pub mod server;
pub mod tls;
pub mod transmit;

pub use connection::Connection;
pub use exports::StaticResolver;
pub use server::{ConnError, Server, ServerOptions, ShutdownHandle};
