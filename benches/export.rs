//! `cnnc export` of models/resnet18.cnn (a benchmark, not a test): `cargo bench --bench export`.
//! Whole-process time of the release binary (parse, check, lower, draw 11.2M weights while
//! writing them, atomically), median of repeated runs, and the in-process split by stage
//! beside the floor: writing a buffer of the same size that is already in memory.
//! Then the gradient graph (`export --grad`, in process) of generated concat chains of
//! 2.5k, 5k and 10k steps, whose growth must stay linear: each step's bias walks the
//! chain of concats after it to learn whether only a batch norm reads it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/resnet18.cnn");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r18.onnx");
    let runs = 15;
    let export = |replace: bool| -> Duration {
        let times = (0..runs)
            .map(|_| {
                if !replace {
                    // A new file on a settled machine: the last run's output deleted and
                    // every dirty page written back first, outside the timing.
                    let _ = std::fs::remove_file(&out);
                    // SAFETY: sync(2) has no arguments and cannot fail.
                    unsafe { libc::sync() };
                }
                let t = Instant::now();
                let s = Command::new(env!("CARGO_BIN_EXE_cnnc"))
                    .arg("export")
                    .arg(&model)
                    .arg("-o")
                    .arg(&out)
                    .output()
                    .unwrap();
                assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
                t.elapsed()
            })
            .collect();
        median(times)
    };
    println!(
        "cnnc export models/resnet18.cnn, whole process (median of {runs}; target < 20 ms): \
         replacing the previous file {:.1} ms, a new file on a settled machine {:.1} ms",
        ms(export(true)),
        ms(export(false))
    );

    let text = std::fs::read_to_string(&model).unwrap();
    let (mut compile, mut lower, mut export, mut floor) = (vec![], vec![], vec![], vec![]);
    let options = cnnc::onnx::ExportOptions::default();
    for _ in 0..runs {
        let t = Instant::now();
        let c = cnnc::compile_source(&model, text.clone());
        let m = c.model(None).unwrap();
        compile.push(t.elapsed());
        let t = Instant::now();
        let lowered = cnnc::onnx::lower(m, &c.sources, &options).unwrap();
        lower.push(t.elapsed());
        drop(lowered);
        let t = Instant::now();
        let values = cnnc::onnx::ParamValues::Drawn {
            init: cnnc::onnx::Init::Default,
            seed: 0,
        };
        let written = cnnc::onnx::export_to_file(m, &c.sources, values, &out, &options).unwrap();
        export.push(t.elapsed());
        // The floor: the same number of bytes, already in memory, written the same way.
        let bytes = vec![1u8; written.model_bytes as usize];
        let t = Instant::now();
        cnnc::fsutil::write_atomic(&out, &bytes).unwrap();
        floor.push(t.elapsed());
    }
    println!(
        "  in process: compile {:.2} ms, lower {:.2} ms, lower + draw + write {:.2} ms; \
         writing the same bytes from memory {:.2} ms",
        ms(median(compile)),
        ms(median(lower)),
        ms(median(export)),
        ms(median(floor))
    );
    grad_scaling();
}

/// `steps` concats, each joining the chain so far with a new conv of a 1-channel skip.
fn concat_chain(steps: usize) -> String {
    format!(
        "model Chain(input: [1, 4, 4]) {{\n  conv(1, 1) as x\n  repeat {steps} {{\n    \
         concat {{ {{}} {{ crop(x) conv(1, 1) }} }}\n  }}\n  batchnorm\n  flatten\n  \
         linear(10)\n}}\n"
    )
}

fn grad_scaling() {
    println!(
        "{:>10}  {:>12}  {:>14}",
        "concats", "grad graph ms", "µs per concat"
    );
    let options = cnnc::train::graph::GradOptions::default();
    for steps in [2_500usize, 5_000, 10_000] {
        let c = cnnc::compile_source(Path::new("chain.cnn"), concat_chain(steps));
        let m = c.model(None).expect("the generated chain checks");
        let times = (0..5)
            .map(|_| {
                let t = Instant::now();
                let g = cnnc::train::graph::grad_model(m, &c.sources, &options).unwrap();
                let elapsed = t.elapsed();
                drop(g);
                elapsed
            })
            .collect();
        let t = median(times);
        println!(
            "{steps:>10}  {:>12.1}  {:>14.1}",
            ms(t),
            t.as_secs_f64() * 1e6 / steps as f64
        );
    }
}
