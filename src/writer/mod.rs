//! The master-target writer service: NBD server, block stores, undo journal, recovery points.
