//! Retention volumes: eligibility rules (Linux devices, Windows R:) and preparing a volume.
