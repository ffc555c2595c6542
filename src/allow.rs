//! Warnings silenced in the source: a comment `# cnnc: allow(unused_input)` (or `//`) on a
//! line the warning points at (the layer, the statement that caused it, the call of the
//! block it is in), or on a line of its own just above one, silences it there, as `# noqa`
//! does in Python. A code may be written in full
//! (`cnnc::shape::unused_input`) or by its last part; several are separated by commas.
//! An allow that names no warning is itself warned of (errors cannot be silenced), and so is
//! one in a model that compiled without errors whose warning never came (ruff's RUF100):
//! the warning it was written for has gone, and it would hide the next one there.

use std::cell::Cell;

use crate::diag::{find_warning_code, Diagnostic, Diagnostics, Label, WARNING_CODES};
use crate::source::{FileId, SourceMap, Span};

const MARKER: &str = "cnnc: allow(";

/// The warnings the command line silences everywhere (`--allow`), set once at start. They are
/// dropped after compiling; what depends on a warning being shown (the notes and drops of
/// [`crate::diag::note_pytorch_order_cascade`]) asks here first.
static EVERYWHERE: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

/// Sets the warnings silenced everywhere (the first call wins).
pub fn silence_everywhere(codes: Vec<&'static str>) {
    let _ = EVERYWHERE.set(codes);
}

/// Whether `code` is silenced everywhere by the command line.
pub fn silenced_everywhere(code: &str) -> bool {
    EVERYWHERE.get().is_some_and(|codes| codes.contains(&code))
}

/// One `cnnc: allow(…)` comment: the line it is on, whether the line holds nothing else,
/// and its codes with their spans and whether a warning was silenced by each.
struct Allow {
    line: usize,
    alone: bool,
    codes: Vec<(String, Span, Cell<bool>)>,
}

/// The allow comments of a file, by line.
fn allows(file: FileId, text: &str) -> Vec<Allow> {
    let mut found = Vec::new();
    let mut offset = 0;
    for (line, content) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += content.len();
        let Some(comment) = comment_start(content) else {
            continue;
        };
        let Some(at) = content[comment..].find(MARKER).map(|i| comment + i) else {
            continue;
        };
        let inner_start = at + MARKER.len();
        let Some(len) = content[inner_start..].find(')') else {
            continue;
        };
        let mut codes = Vec::new();
        let mut pos = inner_start;
        for part in content[inner_start..inner_start + len].split(',') {
            let trimmed = part.trim();
            let lead = part.len() - part.trim_start().len();
            if !trimmed.is_empty() {
                let s = start + pos + lead;
                codes.push((
                    trimmed.to_string(),
                    Span::new(file, s, s + trimmed.len()),
                    Cell::new(false),
                ));
            }
            pos += part.len() + 1;
        }
        found.push(Allow {
            line,
            alone: content[..comment].trim().is_empty(),
            codes,
        });
    }
    found
}

/// Where a line's comment starts (`#` or `//`); the language has no strings but `use`'s
/// file name, which is not expected to hold either.
fn comment_start(line: &str) -> Option<usize> {
    let hash = line.find('#');
    let slashes = line.find("//");
    match (hash, slashes) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The allow comments of a compilation's files.
pub struct Allows {
    /// Per file with allows: them, and where each of its lines starts.
    per_file: Vec<(FileId, Vec<Allow>, Vec<usize>)>,
}

impl Allows {
    pub fn collect(sources: &SourceMap) -> Allows {
        let mut per_file = Vec::new();
        for (id, file) in sources.files() {
            if file.text.contains(MARKER) {
                let starts = std::iter::once(0)
                    .chain(file.text.match_indices('\n').map(|(i, _)| i + 1))
                    .collect();
                per_file.push((id, allows(id, &file.text), starts));
            }
        }
        Allows { per_file }
    }

    /// Drops the warnings an allow comment silences.
    pub fn silence(&self, diags: &mut Diagnostics) {
        if self.per_file.is_empty() {
            return;
        }
        diags.0.retain_mut(|d| !self.silences(d));
    }

    /// Whether an allow of `d`'s code is on a line of a place `d` points at (the layer, the
    /// statement that caused it), or alone on the line above one; or, for a warning from
    /// inside a block, at a call of the block on the way to it, for every call that gave it
    /// (see [`crate::diag::OtherCalls`]). Marks the allows that match as used. When the
    /// allows cover the first call but not another, `d` becomes that call's diagnostic.
    fn silences(&self, d: &mut Diagnostic) -> bool {
        if d.is_error() {
            return false;
        }
        let own: Vec<&Label> = d.labels.iter().filter(|l| !l.call).collect();
        let calls: Vec<&Label> = d.labels.iter().filter(|l| l.call).collect();
        // Every list is checked (no short cut), so that each allow that matches is used.
        let own_allowed = self.allowed(d.code, &own);
        let first_allowed = self.allowed(d.code, &calls);
        let others: Vec<bool> = d
            .other_calls
            .calls
            .iter()
            .map(|c| self.allowed(d.code, &c.chain.iter().collect::<Vec<_>>()))
            .collect();
        if own_allowed {
            return true;
        }
        if !first_allowed {
            return false;
        }
        match others.iter().position(|allowed| !allowed) {
            Some(i) => {
                let call = d.other_calls.calls.remove(i);
                if let Some(own) = call.differs {
                    let others = std::mem::take(&mut d.other_calls);
                    *d = *own;
                    d.other_calls = others;
                } else {
                    d.labels.retain(|l| !l.call);
                }
                d.labels.extend(call.chain);
                false
            }
            None => !d.other_calls.truncated,
        }
    }

    /// Whether an allow of `code` is on a line of one of `labels`, or alone on the line above
    /// one; marks every allow that is as used.
    fn allowed(&self, code: &str, labels: &[&Label]) -> bool {
        let mut silenced = false;
        for label in labels {
            let span = label.span;
            let Some((_, list, starts)) = self.per_file.iter().find(|(id, _, _)| *id == span.file)
            else {
                continue;
            };
            let (first, last) = lines_of(starts, span);
            for a in list {
                if !((first..=last).contains(&a.line) || (a.alone && a.line + 1 == first)) {
                    continue;
                }
                for (allowed, _, used) in &a.codes {
                    if find_warning_code(allowed) == Some(code) {
                        used.set(true);
                        silenced = true;
                    }
                }
            }
        }
        silenced
    }

    /// A warning for each allow of a known code within `model` (its lines, and a comment
    /// alone on the line above it) that silenced nothing. Only for a model that compiled
    /// without errors: an error stops the checks that would have given the warning. Allows
    /// in blocks are not judged, as a block's warnings depend on who calls it.
    ///
    /// Nor are allows on the lines of `skip` (later calls of blocks whose warnings came from
    /// more calls than were recorded, see [`crate::diag::OtherCalls`]), nor allows of the
    /// allow warnings themselves, which only `--allow` silences.
    pub fn unused_in(&self, model: Span, skip: &[Span]) -> Vec<Diagnostic> {
        let Some((_, list, starts)) = self.per_file.iter().find(|(id, _, _)| *id == model.file)
        else {
            return Vec::new();
        };
        let (first, last) = lines_of(starts, model);
        let skipped: Vec<(usize, usize)> = skip
            .iter()
            .filter(|s| s.file == model.file)
            .map(|s| lines_of(starts, *s))
            .collect();
        list.iter()
            .filter(|a| (first..=last).contains(&a.line) || (a.alone && a.line + 1 == first))
            .filter(|a| {
                !skipped
                    .iter()
                    .any(|&(f, l)| (f..=l).contains(&a.line) || (a.alone && a.line + 1 == f))
            })
            .flat_map(|a| &a.codes)
            .filter(|(_, _, used)| !used.get())
            .filter(|(code, _, _)| {
                find_warning_code(code).is_some_and(|c| !c.starts_with("cnnc::syntax::"))
            })
            .map(|(code, span, _)| unused_allow(code, *span))
            .collect()
    }

    /// A warning for each allow on the first line of a `block` (or alone on the line above
    /// it) whose body starts on a later line, that silenced nothing: no warning points at a
    /// block's header, so such an allow never does, whatever calls the block. `blocks` are
    /// each block's span and where its first statement starts.
    pub fn on_block_headers(&self, blocks: &[(Span, u32)]) -> Vec<Diagnostic> {
        let mut found = Vec::new();
        for &(block, body_start) in blocks {
            let Some((_, list, starts)) = self.per_file.iter().find(|(id, _, _)| *id == block.file)
            else {
                continue;
            };
            let (header, _) = lines_of(starts, block);
            let (body, _) = lines_of(
                starts,
                Span::new(block.file, body_start as usize, body_start as usize),
            );
            if body <= header {
                continue;
            }
            let codes = list
                .iter()
                .filter(|a| a.line == header || (a.alone && a.line + 1 == header))
                .flat_map(|a| &a.codes)
                .filter(|(code, _, used)| {
                    !used.get()
                        && find_warning_code(code).is_some_and(|c| !c.starts_with("cnnc::syntax::"))
                });
            found.extend(codes.map(|(code, span, _)| allow_on_block_header(code, *span)));
        }
        found
    }

    /// [`Self::unknown_codes`] of the allows inside `span` (a model: its own diagnostics).
    pub fn unknown_codes_in(&self, span: Span) -> Vec<Diagnostic> {
        self.unknown_codes()
            .into_iter()
            .filter(|d| d.primary_span().is_some_and(|s| span.contains(s)))
            .collect()
    }

    /// A warning for each allowed code that names no warning.
    pub fn unknown_codes(&self) -> Vec<Diagnostic> {
        self.per_file
            .iter()
            .flat_map(|(_, list, _)| list.iter().flat_map(|a| &a.codes))
            .filter_map(|(code, span, _)| match find_warning_code(code) {
                None => Some(unknown_allow(code, *span)),
                Some(c) if c.starts_with("cnnc::syntax::") => Some(unsilenceable(code, *span)),
                Some(_) => None,
            })
            .collect()
    }
}

/// The first and last line `span` covers, given where each line starts.
fn lines_of(starts: &[usize], span: Span) -> (usize, usize) {
    let line_of = |at: u32| starts.partition_point(|&s| s <= at as usize) - 1;
    (
        line_of(span.start),
        line_of(span.end.max(span.start + 1) - 1),
    )
}

fn unused_allow(code: &str, span: Span) -> Diagnostic {
    Diagnostic::warning(
        "cnnc::syntax::unused_allow",
        format!("this allow of `{code}` silences nothing: no such warning is given here"),
    )
    .label(span, "silences nothing")
    .help(
        "remove it (or this code from it): the warning it was written for no longer occurs, \
         and a stale allow would hide the next one here",
    )
}

fn allow_on_block_header(code: &str, span: Span) -> Diagnostic {
    Diagnostic::warning(
        "cnnc::syntax::unused_allow",
        format!("this allow of `{code}` on a `block` line silences nothing"),
    )
    .label(span, "silences nothing")
    .help(
        "a warning from inside a block points at its layer and at the call: put the allow on \
         the line of the layer the warning points at (it then silences it at every call), or \
         on the calls whose warning should go",
    )
}

/// An allow comment of a `syntax` warning: those of the allow warnings themselves are about
/// the comments, which cannot silence them, and a file with nothing in it has no line for
/// one (only `--allow` silences them).
fn unsilenceable(code: &str, span: Span) -> Diagnostic {
    let why = if code.ends_with("empty_file") {
        "it is about a file with nothing in it, not about a line"
    } else {
        "it is about allow comments"
    };
    Diagnostic::warning(
        "cnnc::syntax::unknown_allow",
        format!("`{code}` cannot be silenced by an allow comment: {why}"),
    )
    .label(span, "silences nothing")
    .help(format!(
        "fix the allow it points at, or pass `--allow {code}` on the command line"
    ))
}

fn unknown_allow(code: &str, span: Span) -> Diagnostic {
    let short: Vec<&str> = WARNING_CODES
        .iter()
        .filter_map(|c| c.rsplit("::").next())
        .collect();
    let mut d = Diagnostic::warning(
        "cnnc::syntax::unknown_allow",
        format!(
            "`{}` is not a warning cnnc gives; this allow silences nothing",
            crate::diag::shortened(code)
        ),
    )
    .label(span, "not a warning code");
    d = match crate::diag::did_you_mean(code, short.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`? (errors cannot be silenced)")),
        None => d.help(format!(
            "the warnings are {}; errors cannot be silenced",
            short.join(", ")
        )),
    };
    d
}
