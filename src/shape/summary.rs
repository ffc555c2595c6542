//! Summary table (stub: being written).
