//! Training: data loading ([`data`]) and batches prepared one ahead ([`prefetch`]),
//! checkpoints ([`checkpoint`]), dropout masks ([`dropout`]), progress reporting
//! ([`progress`]), the gradient, step and evaluation graphs ([`graph`]) and the training
//! loop ([`training`], in `loop.rs`).

pub mod checkpoint;
pub mod data;
pub mod dropout;
pub mod graph;
pub mod prefetch;
pub mod progress;
#[path = "loop.rs"]
pub mod training;

pub use checkpoint::{Checkpoint, CheckpointError, TrainingSummary};
pub use data::{
    resize_bilinear, Batch, BatchConfig, Batches, DataError, DataSource, Dataset, Splits,
};
pub use progress::{EpochStats, EpochTimes};
pub use training::{
    load_data, sessions, train, EpochPlan, Observer, Position, Quiet, Sessions, TrainConfig,
    TrainError, TrainOutcome,
};
