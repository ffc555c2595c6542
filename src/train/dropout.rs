//! Dropout's keep-masks, drawn on the host for the step graph (lowered with
//! [`DropoutMode::MaskInput`](super::graph::DropoutMode)). Each mask is a function of the
//! seed, the layer and the global step alone: a run resumed from a checkpoint, mid-epoch or
//! not, draws the masks the uninterrupted run drew, and every device draws the same ones.
//! (ONNX Dropout draws from one generator per session, which a resumed run's new session
//! starts again, and CUDA's generator is another than the CPU's.)

use super::graph::DropoutMask;
use crate::onnx::weights::word_at;
use sha2::{Digest, Sha256};

/// Fills `out` with the keep-mask of `mask` for global step `step` (counted from 0) of a run
/// seeded `seed`, for a batch of `batch` examples: 1.0 where a value is kept, 0.0 where it is
/// dropped, each dropped with probability `mask.p`. The values come from the counter-based
/// wyrand stream the initial weights use, keyed by SHA-256 of (seed, step, layer): value `i`
/// is dropped when half `i mod 2` (low half first) of word `i / 2`, a uniform 32-bit integer,
/// is below p·2³².
pub fn draw(mask: &DropoutMask, seed: u64, step: u64, batch: usize, out: &mut Vec<f32>) {
    let mut h = Sha256::new();
    h.update(b"cnnc-dropout\0");
    h.update(seed.to_le_bytes());
    h.update(step.to_le_bytes());
    h.update(mask.input.as_bytes());
    let key = u64::from_le_bytes(h.finalize()[..8].try_into().expect("32 bytes"));
    let threshold = (mask.p * 4_294_967_296.0).round() as u64;
    // Without a branch: a random one would be mispredicted half the time.
    let keep = |half: u64| f32::from(u8::from(half & 0xffff_ffff >= threshold));
    let n = batch * mask.dims.iter().product::<usize>();
    out.clear();
    out.resize(n, 0.0);
    for (j, pair) in out.chunks_mut(2).enumerate() {
        let w = word_at(key, j as u64);
        pair[0] = keep(w);
        if let Some(second) = pair.get_mut(1) {
            *second = keep(w >> 32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(p: f64) -> DropoutMask {
        DropoutMask {
            input: "dropout_mask.dropout1".into(),
            dims: vec![4, 5],
            p,
        }
    }

    #[test]
    fn masks_follow_seed_layer_and_step_alone() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        draw(&mask(0.5), 7, 3, 10, &mut a);
        assert_eq!(a.len(), 200);
        draw(&mask(0.5), 7, 3, 10, &mut b);
        assert_eq!(a, b, "the same seed, layer and step");
        for (seed, step, name) in [(8, 3, "dropout1"), (7, 4, "dropout1"), (7, 3, "dropout2")] {
            let m = DropoutMask {
                input: format!("dropout_mask.{name}"),
                ..mask(0.5)
            };
            draw(&m, seed, step, 10, &mut b);
            assert_ne!(a, b, "seed {seed}, step {step}, {name}");
        }
        // A smaller batch draws the start of the same stream.
        draw(&mask(0.5), 7, 3, 4, &mut b);
        assert_eq!(b[..], a[..80]);
    }

    #[test]
    fn the_share_dropped_is_p() {
        let mut m = Vec::new();
        for p in [0.0, 0.1, 0.5, 0.9] {
            draw(&mask(p), 1, 0, 2000, &mut m);
            assert!(m.iter().all(|&v| v == 0.0 || v == 1.0));
            let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / m.len() as f64;
            // 40,000 draws: the standard deviation of the share is at most 0.0025.
            assert!((dropped - p).abs() < 0.01, "p {p}: dropped {dropped}");
        }
    }
}
