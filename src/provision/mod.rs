//! The custom changes of a master target (`mtkit apply`): planned, idempotent, reversible edits.
