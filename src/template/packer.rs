//! The Packer vsphere-iso template (see `mtkit build --packer`).
