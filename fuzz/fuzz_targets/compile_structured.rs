//! Grammar-aware: a generated program (see `cnnc_fuzz::gen`) printed to `.cnn` text, then
//! the same pipeline as `compile_text`. The generator only prints well-formed syntax, so a
//! syntax error is a bug too (in the parser, or in the generator).
#![no_main]

use cnnc_fuzz::gen::Program;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|p: Program| {
    let text = p.to_source();
    // `CNNC_FUZZ_PRINT=1 cargo fuzz run compile_structured ARTIFACT` shows the program.
    if std::env::var_os("CNNC_FUZZ_PRINT").is_some() {
        eprintln!("{text}");
    }
    let c = cnnc_fuzz::compile_all(&text);
    if let Some(d) = c
        .diagnostics
        .iter()
        .find(|d| d.code.starts_with("cnnc::syntax::"))
    {
        panic!(
            "a generated program does not parse: {}\n{text}",
            d.render(&c.sources, false)
        );
    }
});
