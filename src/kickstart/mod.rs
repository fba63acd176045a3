//! Renders the CentOS 6.6 master-target kickstart from the config.
