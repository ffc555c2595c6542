//! `cnnc check FILE...`: every diagnostic of every file; exit 1 on any error.

use super::common::{print_diagnostics, Format, EXIT_DIAGNOSTICS, EXIT_USAGE};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The .cnn files to check (`-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format of the diagnostics.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fail (exit 1) on warnings too, as on errors: for CI, where a warning nobody reads
    /// (a PyTorch-order conv, an unused input row) should stop the build. Warnings silenced
    /// by `--allow` or an allow comment do not count.
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn run(args: CheckArgs) -> ExitCode {
    let mut errors = 0;
    let mut warnings = 0;
    let mut io_failure = false;
    let mut unreadable = 0;
    let mut json = Vec::new();
    for path in &args.files {
        match super::common::compile(path) {
            Ok(c) => {
                errors += c.diagnostics.error_count();
                warnings += c.diagnostics.warning_count();
                match args.format {
                    Format::Text => {
                        print_diagnostics(&c);
                        let denied = args.deny_warnings && c.diagnostics.warning_count() > 0;
                        if !c.diagnostics.has_errors() && !denied {
                            let models: Vec<String> = c
                                .models
                                .iter()
                                .map(|m| {
                                    format!("{} {} → {}", m.name, m.input_shape(), m.output_shape())
                                })
                                .collect();
                            let what = if models.is_empty() {
                                "no models".to_string()
                            } else {
                                models.join(", ")
                            };
                            let shown = if path.as_os_str() == "-" {
                                "<stdin>".into()
                            } else {
                                path.display().to_string()
                            };
                            note!("{shown}: ok ({what})");
                        }
                    }
                    Format::Json => {
                        json.extend(c.diagnostics.iter().map(|d| d.to_json(&c.sources)))
                    }
                }
            }
            Err(e) => {
                io_failure = true;
                unreadable += 1;
                match args.format {
                    Format::Text => note!("error: {e}"),
                    Format::Json => json.push(cnnc::diag::JsonDiagnostic::io(&e)),
                }
            }
        }
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("diagnostics serialize")
        ),
        Format::Text if args.files.len() > 1 || errors + warnings > 0 => {
            let unread = if unreadable > 0 {
                format!(", {unreadable} of them could not be read")
            } else {
                String::new()
            };
            let denied = if args.deny_warnings && warnings > 0 {
                " (--deny-warnings: the warnings fail the check)"
            } else {
                ""
            };
            note!(
                "{errors} error(s), {warnings} warning(s) in {} file(s){unread}{denied}",
                args.files.len()
            )
        }
        Format::Text => {}
    }
    if io_failure {
        ExitCode::from(EXIT_USAGE)
    } else if errors > 0 || (args.deny_warnings && warnings > 0) {
        ExitCode::from(EXIT_DIAGNOSTICS)
    } else {
        ExitCode::SUCCESS
    }
}
