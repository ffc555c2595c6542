//! `cnnc summary FILE`: the per-layer table of one model.

use super::common::{compile_one_as, Format};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct SummaryArgs {
    /// The .cnn file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Which model of the file (needed when it defines several).
    #[arg(long)]
    pub model: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: SummaryArgs) -> ExitCode {
    let (compilation, model) =
        match compile_one_as(&args.file, args.model.as_deref(), args.format, true) {
            Ok(x) => x,
            Err(code) => return code,
        };
    let summary = cnnc::shape::summary::summarize(&compilation.models[model]);
    match args.format {
        Format::Text => out!("{}", summary.to_text()),
        Format::Json => {
            // The warnings go with the summary (as `check --format json` gives them).
            let mut value = serde_json::to_value(&summary).expect("summary serializes");
            let warnings: Vec<_> = compilation
                .diagnostics
                .iter()
                .map(|d| d.to_json(&compilation.sources))
                .collect();
            value["warnings"] = serde_json::to_value(warnings).expect("diagnostics serialize");
            // Every tensor of the weights, in the order of the exported model and of
            // `--weights` files: what a script renaming PyTorch's `state_dict` keys needs.
            let tensors: Vec<_> = cnnc::onnx::parameter_specs(&compilation.models[model])
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "name": s.name,
                        "shape": s.dims,
                        "trainable": s.kind.is_trainable(),
                    })
                })
                .collect();
            value["tensors"] = serde_json::Value::Array(tensors);
            outln!(
                "{}",
                serde_json::to_string_pretty(&value).expect("summary serializes")
            )
        }
    }
    ExitCode::SUCCESS
}
