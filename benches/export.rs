//! `cnnc export` of models/resnet18.cnn (a benchmark, not a test): `cargo bench --bench export`.
//! Whole-process time of the release binary (parse, check, initialise 11.2M weights, encode,
//! write atomically), median of repeated runs, and the in-process split by stage.

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
    let whole: Vec<Duration> = (0..runs)
        .map(|_| {
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
    println!(
        "cnnc export models/resnet18.cnn, whole process: {:.1} ms (median of {runs}; target < 20 ms)",
        ms(median(whole))
    );

    let text = std::fs::read_to_string(&model).unwrap();
    let (mut compile, mut init, mut encode, mut write) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let t = Instant::now();
        let c = cnnc::compile_source(&model, text.clone());
        let m = c.model(None).unwrap();
        compile.push(t.elapsed());
        let t = Instant::now();
        let w = cnnc::onnx::initialize(m, cnnc::onnx::Init::Default, 0);
        init.push(t.elapsed());
        let t = Instant::now();
        let bytes = cnnc::onnx::export_bytes(m, &c.sources, &w, &Default::default()).unwrap();
        encode.push(t.elapsed());
        let t = Instant::now();
        cnnc::fsutil::write_atomic(&out, &bytes).unwrap();
        write.push(t.elapsed());
    }
    println!(
        "  in process: compile {:.2} ms, initialise {:.2} ms, lower+encode {:.2} ms, write {:.2} ms",
        ms(median(compile)),
        ms(median(init)),
        ms(median(encode)),
        ms(median(write))
    );
}
