//! Parse + elaborate + check time (a benchmark, not a test): `cargo bench --bench compile`.
//! Reports the median of repeated runs for models/resnet18.cnn and for generated models
//! of 1k, 10k and 100k layers, to show the growth is linear.

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
}
