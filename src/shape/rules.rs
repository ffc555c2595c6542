//! Per-op shape rules (stub: being written).
