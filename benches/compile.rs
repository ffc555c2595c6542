//! Parse + elaborate + check time (a benchmark, not a test): `cargo bench --bench compile`.
//! Reports the median of repeated runs for models/resnet18.cnn and for generated models
//! of 1k, 10k and 100k layers, to show the growth is linear, and for a file of 5,000 blocks
//! with 10 and 1,000 misspelled calls (the did-you-mean search).

use std::path::Path;
use std::time::{Duration, Instant};

fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// A plain sequence of `layers` layers cycling conv / batchnorm / relu on [16, 32, 32].
fn generated(layers: usize) -> String {
    let mut s = String::from("model Deep(input: [16, 32, 32]) {\n");
    for i in 0..layers {
        s.push_str(match i % 3 {
            0 => "    conv(16, 3, pad=1)\n",
            1 => "    batchnorm\n",
            _ => "    relu\n",
        });
    }
    s.push_str("}\n");
    s
}

/// `blocks` blocks named `blk_00000`, … and a model calling `typos` of them misspelled
/// (`blk_00000x`): each unknown name is compared with every block's for its did-you-mean,
/// and the names are all alike, so the cheap bound cuts few.
fn misspelled_calls(blocks: usize, typos: usize) -> String {
    let mut s = String::new();
    for i in 0..blocks {
        s.push_str(&format!(
            "block blk_{i:05}(c) {{\n    conv(c, 3, pad=1) relu\n}}\n"
        ));
    }
    s.push_str("model M(input: [3, 8, 8]) {\n");
    for i in 0..typos {
        s.push_str(&format!("    blk_{:05}x(8)\n", i * blocks / typos));
    }
    s.push_str("}\n");
    s
}

fn compile(path: &Path, text: &str) {
    let c = cnnc::compile_source(path, text.to_string());
    assert!(!c.diagnostics.has_errors(), "benchmark input must check");
    assert_eq!(c.models.len(), 1);
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let resnet = root.join("models/resnet18.cnn");
    let text = std::fs::read_to_string(&resnet).expect("models/resnet18.cnn");
    let t = median_time(200, || compile(&resnet, &text));
    println!(
        "parse+check resnet18.cnn: {:.3} ms (median of 200; target < 2 ms)",
        t.as_secs_f64() * 1e3
    );
    println!(
        "{:>10}  {:>12}  {:>14}",
        "layers", "median ms", "µs per layer"
    );
    for layers in [1_000usize, 10_000, 100_000] {
        let text = generated(layers);
        let runs = if layers >= 100_000 { 5 } else { 21 };
        let t = median_time(runs, || compile(Path::new("generated.cnn"), &text));
        println!(
            "{layers:>10}  {:>12.2}  {:>14.3}",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / layers as f64
        );
    }
    // Elaboration stops at 1,000 diagnostics: the last is the worst case.
    for (blocks, typos) in [(5_000usize, 10usize), (5_000, 1_000)] {
        let text = misspelled_calls(blocks, typos);
        let t = median_time(5, || {
            let c = cnnc::compile_source(Path::new("typos.cnn"), text.clone());
            assert!(
                c.diagnostics.error_count() >= typos,
                "each typo is an error"
            );
        });
        println!(
            "{blocks} blocks, {typos} misspelled calls: {:.1} ms (median of 5)",
            t.as_secs_f64() * 1e3
        );
    }
}
