//! Progress reporting for training: a progress bar on stderr when it is a terminal, and the
//! per-epoch summary as a text line (the notes' format) or a JSON object.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

/// A bar over the batches of one epoch, drawn on stderr only when stderr is a terminal
/// (hidden when it is a file or a pipe, so logs stay clean).
pub fn epoch_bar(epoch: u32, batches: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(batches), target);
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
        .expect("the template is valid")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(epoch.to_string());
    bar
}

/// The summary of one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EpochStats {
    pub epoch: u32,
    /// Mean training loss over the epoch.
    pub loss: f64,
    pub train_acc: f64,
    pub test_acc: f64,
    /// Training examples per second, evaluation included.
    pub examples_per_sec: f64,
    /// For an epoch resumed mid-way: the first and last of its steps this run took (from
    /// 1), which the loss and training accuracy cover. Absent for a whole epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<(u64, u64)>,
    /// Where the epoch's time went (`cnnc train --timings`); not in the JSON object.
    #[serde(skip)]
    pub times: EpochTimes,
}

/// Where an epoch's time went, as the training loop's thread saw it (wall clock). The
/// batches and their dropout masks are prepared on another thread
/// ([`crate::train::prefetch`]): `batches` is only the time the loop waited for one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochTimes {
    /// Waiting for the next batch.
    pub batches: Duration,
    /// Running the step graph: copying the batch and masks in, the step, the loss out.
    pub steps: Duration,
    /// Reading the parameters and optimizer state back after the epoch and checking them.
    pub state: Duration,
    /// Measuring the test accuracy.
    pub evaluation: Duration,
}

/// `steps 2.310 s, waiting for batches 0.020 s, state read back 0.120 s, evaluation
/// 0.300 s`.
impl fmt::Display for EpochTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "steps {:.3} s, waiting for batches {:.3} s, state read back {:.3} s, evaluation \
             {:.3} s",
            self.steps.as_secs_f64(),
            self.batches.as_secs_f64(),
            self.state.as_secs_f64(),
            self.evaluation.as_secs_f64()
        )
    }
}

impl EpochStats {
    /// One JSON object, no trailing newline: keys `epoch`, `loss`, `train_acc`, `test_acc`,
    /// `examples_per_sec`, and `steps` (`[first, last]`) for an epoch resumed mid-way.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain numbers serialize")
    }
}

/// `epoch 3, loss 0.4690, train acc 0.823, test acc 0.779, 35726.4 examples/sec`, and
/// `(steps 33–235, resumed)` after it for an epoch resumed mid-way.
impl fmt::Display for EpochStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {}, loss {:.4}, train acc {:.3}, test acc {:.3}, {:.1} examples/sec",
            self.epoch, self.loss, self.train_acc, self.test_acc, self.examples_per_sec
        )?;
        if let Some((first, last)) = self.steps {
            write!(f, " (steps {first}–{last}, resumed)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_seconds_steps_first() {
        let t = EpochTimes {
            batches: Duration::from_millis(20),
            steps: Duration::from_millis(2310),
            state: Duration::from_millis(120),
            evaluation: Duration::from_millis(300),
        };
        assert_eq!(
            t.to_string(),
            "steps 2.310 s, waiting for batches 0.020 s, state read back 0.120 s, evaluation \
             0.300 s"
        );
    }
}
