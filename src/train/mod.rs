//! Training: data loading ([`data`]), checkpoints ([`checkpoint`]) and progress reporting
//! ([`progress`]); the gradient and step graphs and the training loop build on these.

pub mod checkpoint;
pub mod data;
pub mod progress;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use data::{
    resize_bilinear, Batch, BatchConfig, Batches, DataError, DataSource, Dataset, Splits,
};
pub use progress::EpochStats;
