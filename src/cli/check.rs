//! `cnnc check FILE...`: every diagnostic of every file; exit 1 on any error.

use super::common::{color, Format, EXIT_DIAGNOSTICS, EXIT_USAGE};
use cnnc::diag::{Diagnostic, Severity};
use cnnc::driver::Compilation;
use std::collections::HashSet;
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
    let stdin_count = args.files.iter().filter(|f| f.as_os_str() == "-").count();
    if stdin_count > 1 {
        note!("error: `-` (standard input) is given {stdin_count} times; it can be read only once");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut errors = 0;
    let mut warnings = 0;
    let mut io_failure = false;
    let mut unreadable = 0;
    let mut json = Vec::new();
    let mut reported = UsedFileDiagnostics::default();
    for path in &args.files {
        match super::common::compile(path) {
            Ok(c) => {
                let (new, repeated): (Vec<&Diagnostic>, Vec<&Diagnostic>) = c
                    .diagnostics
                    .iter()
                    .partition(|d| !reported.seen_before(d, &c));
                errors += new.iter().filter(|d| d.is_error()).count();
                warnings += new.iter().filter(|d| !d.is_error()).count();
                match args.format {
                    Format::Text => {
                        let color = color();
                        for d in &new {
                            note_raw!("{}", d.render(&c.sources, color));
                        }
                        if !repeated.is_empty() {
                            note!("{}", repeated_note(path, &repeated, &c));
                        }
                        let denied = args.deny_warnings && c.diagnostics.warning_count() > 0;
                        if !c.diagnostics.has_errors() && !denied {
                            let models: Vec<String> = c
                                .models
                                .iter()
                                .map(|m| {
                                    format!("{} {} → {}", m.name, m.input_shape(), m.outputs_text())
                                })
                                .collect();
                            let what = if models.is_empty() {
                                "no models".to_string()
                            } else {
                                models.join(", ")
                            };
                            note!("{}: ok ({what})", shown_path(path));
                        }
                    }
                    Format::Json => json.extend(new.iter().map(|d| d.to_json(&c.sources))),
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
        Format::Json => outln!(
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

/// The note for diagnostics of a used file not shown again: `b.cnn: 1 error and 2 warnings
/// above, in ../lib.cnn, which it uses, are also this file's (not shown again)`.
fn repeated_note(path: &std::path::Path, repeated: &[&Diagnostic], c: &Compilation) -> String {
    let errors = repeated.iter().filter(|d| d.is_error()).count();
    let warnings = repeated.len() - errors;
    let count = |n: usize, what: &str| match n {
        0 => None,
        1 => Some(format!("1 {what}")),
        n => Some(format!("{n} {what}s")),
    };
    let counts: Vec<String> = [count(errors, "error"), count(warnings, "warning")]
        .into_iter()
        .flatten()
        .collect();
    let mut files: Vec<String> = repeated
        .iter()
        .filter_map(|d| d.primary_span())
        .map(|s| format!("{}", c.sources.get(s.file).path.display()))
        .collect();
    files.sort();
    files.dedup();
    format!(
        "{}: {} above, in {}, which it uses, {} also this file's (not shown again)",
        shown_path(path),
        counts.join(" and "),
        files.join(", "),
        if repeated.len() == 1 { "is" } else { "are" }
    )
}

fn shown_path(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// The diagnostics already reported that lie wholly in `use`d files: a mistake in a library
/// that several of the files checked use is reported once, not once per file (those of its
/// blocks as a file calls them carry a label in that file, and are that file's own).
#[derive(Default)]
struct UsedFileDiagnostics(HashSet<String>);

impl UsedFileDiagnostics {
    /// Whether `d` lies wholly outside `c`'s main file and was reported for an earlier file
    /// (that used the same file, or was that file); records it.
    fn seen_before(&mut self, d: &Diagnostic, c: &Compilation) -> bool {
        let labels = d
            .labels
            .iter()
            .chain(d.other_calls.calls.iter().flat_map(|o| o.chain.iter()));
        let mut key = format!(
            "{}|{}|{}|{:?}|",
            matches!(d.severity, Severity::Error),
            d.code,
            d.message,
            d.help
        );
        let mut in_main = d.labels.is_empty();
        for l in labels {
            in_main |= l.span.file == c.main;
            let path = &c.sources.get(l.span.file).path;
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            key += &format!(
                "{}:{}-{}:{}|",
                path.display(),
                l.span.start,
                l.span.end,
                l.text
            );
        }
        !self.0.insert(key) && !in_main
    }
}
