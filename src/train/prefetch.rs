//! Batches prepared one ahead on another thread, so that gathering and resizing the next
//! batch on the host overlaps the step that runs the current one (on CUDA the host would
//! otherwise sit idle during the step, and the device during the batching: with `--resize
//! 224`, resizing 128 images takes about as long as PyTorch's whole AlexNet step on an H100).
//! The batches are [`Batches`]' own, in its order, each with what the caller's `extra`
//! prepares for it (the step's dropout masks, which take a few milliseconds per step for
//! AlexNet); at most three sets of buffers exist at once (the one in use, one ready, one
//! being filled), and they are reused.

use super::data::{Batch, Batches};
use std::sync::mpsc;
use std::thread;

/// The buffers of one prepared batch: images, labels, and the extra values for it.
type Buffers = (Vec<f32>, Vec<i64>, Vec<Vec<f32>>);

/// A batch filled by the preparing thread.
struct Filled {
    images: Vec<f32>,
    labels: Vec<i64>,
    extra: Vec<Vec<f32>>,
    shape: [usize; 4],
}

/// The consuming side: [`Prefetched::next_batch`] as [`Batches::next_batch`].
pub struct Prefetched {
    ready: mpsc::Receiver<Filled>,
    spent: mpsc::Sender<Buffers>,
    current: Option<Filled>,
}

impl Prefetched {
    /// The next batch and the extra values prepared for it, or `None` at the end of the
    /// epoch.
    pub fn next_with_extra(&mut self) -> Option<(Batch<'_>, &[Vec<f32>])> {
        if let Some(done) = self.current.take() {
            // The preparing thread may have finished: then the buffers are just dropped.
            let _ = self.spent.send((done.images, done.labels, done.extra));
        }
        let filled = self.current.insert(self.ready.recv().ok()?);
        let batch = Batch {
            images: &filled.images,
            labels: &filled.labels,
            shape: filled.shape,
        };
        Some((batch, &filled.extra))
    }

    /// The next batch, or `None` at the end of the epoch.
    pub fn next_batch(&mut self) -> Option<Batch<'_>> {
        self.next_with_extra().map(|(batch, _)| batch)
    }
}

/// Runs `consume` on `batches`, each prepared while the one before it is used, with
/// `extra(k, b, values)` called for the `k`-th batch prepared (from 0) of `b` examples to
/// fill `values` (the buffers of an earlier batch, or empty). When `consume` returns, early or
/// not, the preparing thread stops after the batch in hand; a panic there reaches the caller
/// (after `consume` has seen the batches before it end).
pub fn prefetched<T>(
    batches: Batches<'_>,
    mut extra: impl FnMut(usize, usize, &mut Vec<Vec<f32>>) + Send,
    consume: impl FnOnce(&mut Prefetched) -> T,
) -> T {
    thread::scope(|scope| {
        let (ready_tx, ready) = mpsc::sync_channel::<Filled>(1);
        let (spent, spent_rx) = mpsc::channel::<Buffers>();
        scope.spawn(move || {
            let mut batches = batches;
            for k in 0.. {
                let (mut images, mut labels, mut values) = spent_rx.try_recv().unwrap_or_default();
                let Some(shape) = batches.fill(&mut images, &mut labels) else {
                    break;
                };
                extra(k, shape[0], &mut values);
                let filled = Filled {
                    images,
                    labels,
                    extra: values,
                    shape,
                };
                if ready_tx.send(filled).is_err() {
                    break;
                }
            }
        });
        let mut prefetched = Prefetched {
            ready,
            spent,
            current: None,
        };
        consume(&mut prefetched)
        // `prefetched` is dropped here, before the scope joins the thread: a send to it then
        // fails, which ends the thread's loop.
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::{BatchConfig, Dataset};

    fn dataset(n: usize) -> Dataset {
        Dataset {
            images: (0..n * 4).map(|v| v as f32).collect(),
            labels: (0..n as i64).collect(),
            n,
            channels: 1,
            height: 2,
            width: 2,
            classes: n,
        }
    }

    #[test]
    fn the_same_batches_in_the_same_order() {
        let data = dataset(23);
        let config = BatchConfig {
            resize: Some((3, 3)),
            ..BatchConfig::train(5, 7, 2)
        };
        let mut expected = Vec::new();
        let mut direct = Batches::new(&data, config);
        while let Some(b) = direct.next_batch() {
            expected.push((b.images.to_vec(), b.labels.to_vec(), b.shape));
        }
        assert_eq!(expected.len(), 5, "the last batch of 3 is kept");
        let mut batches = Batches::new(&data, config);
        batches.seek(1);
        let numbered = |k: usize, b: usize, values: &mut Vec<Vec<f32>>| {
            *values = vec![vec![k as f32; b]];
        };
        let got = prefetched(batches, numbered, |p| {
            let mut got = Vec::new();
            while let Some((b, extra)) = p.next_with_extra() {
                assert_eq!(extra, [vec![got.len() as f32; b.len()]]);
                got.push((b.images.to_vec(), b.labels.to_vec(), b.shape));
            }
            got
        });
        assert_eq!(got, expected[1..]);
    }

    #[test]
    fn stopping_early_ends_the_preparing_thread() {
        let data = dataset(100);
        let batches = Batches::new(&data, BatchConfig::eval(10));
        let first = prefetched(
            batches,
            |_, _, _| {},
            |p| p.next_batch().map(|b| b.labels.to_vec()),
        );
        assert_eq!(first, Some((0..10).collect()));
    }
}
