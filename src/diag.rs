//! Diagnostics: what every stage reports instead of failing, rendered by miette or as JSON.
//!
//! A stage never stops at its first problem: it pushes a [`Diagnostic`] into a
//! [`Diagnostics`] list and carries on with a placeholder, so one run reports every
//! independent error. Codes are stable (`cnnc::shape::concat_mismatch`) and documented in
//! README.md.

use crate::source::{SourceMap, Span};
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A labelled span. The first label of a diagnostic is its primary location.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub text: String,
    /// An "in this call of `b`" label: the call of the block the diagnostic came from.
    pub call: bool,
}

impl Label {
    /// The label elaboration adds to a diagnostic from inside a block, at its call.
    pub fn call(block: &str, span: Span) -> Label {
        Label {
            span,
            text: format!("in this call of `{block}`"),
            call: true,
        }
    }
}

/// The same warning from other calls of the block it is in: a mistake inside a block is
/// reported once, at its first call (with that call's labels), and these are the later
/// calls that made it again. An allow comment at calls silences the warning only if it is
/// at every one of them; when the first call's is allowed, the first one not allowed is
/// reported instead, as that call gave it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OtherCalls {
    /// The later calls, at most [`OtherCalls::MAX`].
    pub calls: Vec<OtherCall>,
    /// More calls than [`OtherCalls::MAX`] made it: only an allow on the block's own lines
    /// silences it.
    pub truncated: bool,
}

/// A later call that made a warning again.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherCall {
    /// Its call labels, innermost call first.
    pub chain: Vec<Label>,
    /// Its own diagnostic (without call labels) when it says other things than the one
    /// reported (other sizes); `None` when the same.
    pub differs: Option<Box<Diagnostic>>,
}

/// Whether two chains of call labels are the same way to a diagnostic: the same calls and
/// repeats, whatever iteration of a repeat each label names (the first one met is kept).
pub fn same_way(a: &[Label], b: &[Label]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.span == y.span && x.call == y.call)
}

impl OtherCalls {
    pub const MAX: usize = 256;

    /// Records a later call, once per way of calling.
    pub fn add(&mut self, chain: Vec<Label>, differs: Option<Diagnostic>) {
        if self.calls.iter().any(|c| same_way(&c.chain, &chain)) {
            return;
        }
        if self.calls.len() < Self::MAX {
            self.calls.push(OtherCall {
                chain,
                differs: differs.map(Box::new),
            });
        } else {
            self.truncated = true;
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable code, `cnnc::<stage>::<name>`.
    pub code: &'static str,
    pub message: String,
    pub labels: Vec<Label>,
    /// What to change, when a fix is known.
    pub help: Option<String>,
    /// For a warning from inside a block: the later calls that gave it again.
    pub other_calls: OtherCalls,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
            other_calls: OtherCalls::default(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        debug_assert!(
            WARNING_CODES.contains(&code),
            "{code} is missing from WARNING_CODES"
        );
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            text: text.into(),
            call: false,
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels.first().map(|l| l.span)
    }
}

/// An ordered list of diagnostics, errors and warnings mixed.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d)
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0)
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }
    pub fn warning_count(&self) -> usize {
        self.0.len() - self.error_count()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Sorts by file and position, keeping the order of diagnostics at the same place.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| {
            d.primary_span()
                .map(|s| (s.file, s.start))
                .unwrap_or_default()
        });
    }
}

/// The codes of every warning cnnc gives (`--allow` takes them; a test checks each warning
/// fixture's code against it).
pub const WARNING_CODES: [&str; 19] = [
    "cnnc::shape::unused_input",
    "cnnc::shape::upsample_shrinks",
    "cnnc::shape::gridding",
    "cnnc::shape::even_kernel_same",
    "cnnc::elab::crop_outside_concat",
    "cnnc::elab::name_reused",
    "cnnc::elab::unused_name",
    "cnnc::elab::bare_branch",
    "cnnc::elab::pytorch_argument_order",
    "cnnc::elab::dropped_tensor",
    "cnnc::syntax::unknown_allow",
    "cnnc::syntax::unused_allow",
    "cnnc::elab::channels_last",
    "cnnc::elab::empty_body",
    "cnnc::elab::single_branch",
    "cnnc::elab::output_as_branch",
    "cnnc::elab::keras_momentum",
    "cnnc::elab::integer_division",
    "cnnc::syntax::empty_file",
];

/// The warning code `s` names: in full, or by its last parts (`unused_input`,
/// `shape::unused_input`).
pub fn find_warning_code(s: &str) -> Option<&'static str> {
    WARNING_CODES
        .iter()
        .find(|c| **c == s || c.ends_with(&format!("::{s}")))
        .copied()
}

/// The JSON form of one diagnostic (`cnnc check --format json`).
#[derive(Serialize, Debug)]
pub struct JsonDiagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Byte offsets `[start, end)` in the file.
    pub span: Option<[u32; 2]>,
    pub labels: Vec<JsonLabel>,
    pub help: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct JsonLabel {
    pub message: String,
    /// The label's file: it may differ from the diagnostic's (a block call in another file).
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub span: [u32; 2],
}

impl Diagnostic {
    pub fn to_json(&self, sources: &SourceMap) -> JsonDiagnostic {
        let primary = self.primary_span();
        let (file, line, column) = match primary {
            Some(s) => {
                let f = sources.get(s.file);
                let (l, c) = f.line_col(s.start);
                (Some(f.path.display().to_string()), Some(l), Some(c))
            }
            None => (None, None, None),
        };
        JsonDiagnostic {
            severity: self.severity,
            code: self.code,
            message: self.message.clone(),
            file,
            line,
            column,
            span: primary.map(|s| [s.start, s.end]),
            labels: self
                .labels
                .iter()
                .map(|l| {
                    let f = sources.get(l.span.file);
                    let (line, column) = f.line_col(l.span.start);
                    JsonLabel {
                        message: l.text.clone(),
                        file: f.path.display().to_string(),
                        line,
                        column,
                        span: [l.span.start, l.span.end],
                    }
                })
                .collect(),
            help: self.help.clone(),
        }
    }

    /// Renders with miette's graphical handler: unicode, no colour unless `color`, fixed width.
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        // miette draws the whole source lines around a label and pads to its column, which
        // fails past column 65,535; where one of them is long (a generated one-line model,
        // megabytes of it), the labels are given as `file:line:col` instead, without the
        // snippet.
        let far_out = self.labels.iter().any(|l| {
            let f = sources.get(l.span.file);
            let (start, end) = (l.span.start as usize, l.span.end as usize);
            f.longest_line_around(start, end, SNIPPET_CONTEXT_LINES) > MAX_SNIPPET_LINE
        });
        let report = MietteReport::new(self, sources, !far_out);
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_word_separator(textwrap::WordSeparator::Custom(words_keeping_code))
            .with_word_splitter(textwrap::WordSplitter::NoHyphenation)
            .with_links(false);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &report);
        for other in &report.related {
            let _ = handler.render_report(&mut out, other);
        }
        out
    }
}

/// The longest inline code span (`` `pad=[0, 1, 0, 1]` ``) kept on one line when miette
/// wraps a message; a longer one (a whole example statement) breaks at its spaces.
const MAX_UNBROKEN_CODE: usize = 60;

/// miette's word separator: words end at spaces, except the spaces inside a short
/// backquoted code span, so that wrapping never splits `` `conv(6, 5, pad=2)` `` over two
/// lines. An unpaired backquote is an ordinary character.
fn words_keeping_code(line: &str) -> Box<dyn Iterator<Item = textwrap::core::Word<'_>> + '_> {
    let ticks: Vec<usize> = line.match_indices('`').map(|(i, _)| i).collect();
    // Byte ranges of the spans whose spaces do not end a word.
    let kept: Vec<(usize, usize)> = ticks
        .chunks_exact(2)
        .map(|pair| (pair[0], pair[1]))
        .filter(|(open, close)| line[*open..=*close].chars().count() <= MAX_UNBROKEN_CODE)
        .collect();
    let inside = move |i: usize| kept.iter().any(|(open, close)| *open < i && i < *close);
    let mut words = Vec::new();
    let mut start = 0;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' && !inside(i) {
            let mut end = i;
            while end < bytes.len() && bytes[end] == b' ' {
                end += 1;
            }
            words.push(textwrap::core::Word::from(&line[start..end]));
            start = end;
            i = end;
        } else {
            i += 1;
        }
    }
    if start < line.len() {
        words.push(textwrap::core::Word::from(&line[start..]));
    }
    Box::new(words.into_iter())
}

/// The longest source line (in bytes) a snippet shows.
const MAX_SNIPPET_LINE: usize = 1000;

/// The lines miette shows before and after a label's (its default).
const SNIPPET_CONTEXT_LINES: usize = 1;

/// Adapter from [`Diagnostic`] to miette. miette draws labels of one source only, so the
/// labels in each other file (the call of a block from another file) are drawn on that
/// file's source in a report of their own, rendered after the main one; the help comes
/// last, after them all.
struct MietteReport<'s> {
    code: Option<&'static str>,
    message: String,
    severity: miette::Severity,
    source: Option<FileSource<'s>>,
    labels: Vec<miette::LabeledSpan>,
    help: Option<String>,
    related: Vec<MietteReport<'s>>,
}

impl<'s> MietteReport<'s> {
    /// `snippet`: whether the primary file's labels are drawn on its source, or all given as
    /// `file:line:col` lines.
    fn new(d: &Diagnostic, sources: &'s SourceMap, snippet: bool) -> MietteReport<'s> {
        let primary_file = d.primary_span().map(|s| s.file).filter(|_| snippet);
        let mut labels = Vec::new();
        let mut help_lines = Vec::new();
        // The other files' labels, by file in order of first appearance.
        let mut related: Vec<(crate::source::FileId, Vec<miette::LabeledSpan>)> = Vec::new();
        for (i, l) in d.labels.iter().enumerate() {
            let (start, len) = drawn_part(sources.get(l.span.file), l.span);
            let span = miette::SourceSpan::new(start.into(), len);
            let text = (!l.text.is_empty()).then(|| l.text.clone());
            if Some(l.span.file) == primary_file {
                labels.push(if i == 0 {
                    miette::LabeledSpan::new_primary_with_span(text, span)
                } else {
                    miette::LabeledSpan::new_with_span(text, span)
                });
            } else if primary_file.is_some() {
                let label = miette::LabeledSpan::new_with_span(text, span);
                match related.iter_mut().find(|(f, _)| *f == l.span.file) {
                    Some((_, list)) => list.push(label),
                    None => related.push((l.span.file, vec![label])),
                }
            } else {
                let f = sources.get(l.span.file);
                let (line, col) = f.line_col(l.span.start);
                help_lines.push(format!("{}:{}:{}: {}", f.path.display(), line, col, l.text));
            }
        }
        if let Some(h) = &d.help {
            help_lines.push(h.clone());
        }
        let source = primary_file.map(|id| FileSource(sources.get(id)));
        let mut related: Vec<MietteReport> = related
            .into_iter()
            .map(|(id, labels)| {
                let f = sources.get(id);
                MietteReport {
                    code: None,
                    message: format!("in {}", f.path.display()),
                    severity: miette::Severity::Advice,
                    source: Some(FileSource(f)),
                    labels,
                    help: None,
                    related: Vec::new(),
                }
            })
            .collect();
        let help = if help_lines.is_empty() {
            None
        } else {
            Some(help_lines.join("\n"))
        };
        let help = match related.last_mut() {
            Some(last) => {
                last.help = help;
                None
            }
            None => help,
        };
        MietteReport {
            code: Some(d.code),
            message: d.message.clone(),
            severity: match d.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            },
            source,
            labels,
            help,
            related,
        }
    }
}

/// The most lines a label is drawn over: miette draws every line a label covers, and a
/// residual's body of thousands of lines was echoed whole.
const MAX_LABEL_LINES: usize = 12;

/// The part of `span` (its start and length) a snippet draws: all of it, or where it covers
/// more than [`MAX_LABEL_LINES`] lines, its last line (where a body's result comes out: the
/// `}` that closes it), from that line's first character.
fn drawn_part(file: &crate::source::SourceFile, span: Span) -> (usize, usize) {
    let (start, end) = (span.start as usize, span.end as usize);
    let (first, _) = file.line_col(span.start);
    let (last, _) = file.line_col(span.end);
    if last - first < MAX_LABEL_LINES {
        return (start, end - start);
    }
    let text = &file.text[..end.min(file.text.len())];
    let line_start = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let indent = text[line_start..].len() - text[line_start..].trim_start().len();
    let from = (line_start + indent).min(end);
    (from, end - from)
}

/// A file as miette reads it. miette's own reading of a `str` scans it from the start for
/// each label, and a file with thousands of diagnostics took quadratic time (10,000 took
/// 21 s): this one hands miette only the lines around the label, found by binary search,
/// and shifts what miette makes of them back to the file's offsets and line numbers.
struct FileSource<'s>(&'s crate::source::SourceFile);

impl miette::SourceCode for FileSource<'_> {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let file = self.0;
        let (start, end) = (span.offset(), span.offset() + span.len());
        // Whole lines, a line more than miette asks on each side (so that it finds the
        // same context as in the whole file).
        let (range, first_line) = file.lines_around(
            start,
            end,
            context_lines_before + 1,
            context_lines_after + 2,
        );
        if end > file.text.len() {
            return Err(miette::MietteError::OutOfBounds);
        }
        let text = &file.printable()[range.clone()];
        let local = miette::SourceSpan::new((start - range.start).into(), span.len());
        let inner = text.read_span(&local, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            file.path.display().to_string(),
            inner.data(),
            miette::SourceSpan::new(
                (inner.span().offset() + range.start).into(),
                inner.span().len(),
            ),
            inner.line() + first_line,
            inner.column(),
            inner.line_count() + first_line,
        )))
    }
}

impl fmt::Debug for MietteReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl fmt::Display for MietteReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for MietteReport<'_> {}

impl miette::Diagnostic for MietteReport<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code.map(|c| Box::new(c) as Box<dyn fmt::Display + 'a>)
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}

/// Suggests the closest of `candidates` to `word` (for "did you mean"); the last of those
/// as near.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    nearest(word, candidates).words.pop()
}

/// `did you mean `a`?`, or `did you mean `a` or `b`?` when two are as near (`encl`: `enc1`
/// or `enc2`); `None` when none is near.
pub fn did_you_mean_text<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    nearest(word, candidates).text()
}

/// The candidates nearest to a word, all equally near, in the order given, and how near
/// (none when none is near enough to suggest).
#[derive(Clone, Debug, Default)]
pub struct Nearest<'a> {
    /// The similarity and the tie-break of `words` (see [`nearest`]).
    score: Option<(f64, f64)>,
    words: Vec<&'a str>,
}

impl<'a> Nearest<'a> {
    /// The nearest of two searches for the same word, as one search of both candidate
    /// lists (this one's first) would find them.
    pub fn or(self, other: Nearest<'a>) -> Nearest<'a> {
        match (self.score, other.score) {
            (Some(a), Some(b)) if a == b => {
                let mut words = self.words;
                words.extend(other.words);
                Nearest {
                    score: Some(a),
                    words,
                }
            }
            (Some(a), Some(b)) if a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)).is_lt() => other,
            (None, _) => other,
            _ => self,
        }
    }

    /// `did you mean `a`?`, or `did you mean `a` or `b`?` when two are as near; `None`
    /// when none is near.
    pub fn text(&self) -> Option<String> {
        let mut near = self.words.clone();
        let mut seen = std::collections::HashSet::new();
        near.retain(|w| seen.insert(*w));
        near.sort_unstable();
        let quoted: Vec<String> = near.iter().take(3).map(|w| format!("`{w}`")).collect();
        match quoted.as_slice() {
            [] => None,
            [one] => Some(format!("did you mean {one}?")),
            [first @ .., last] => Some(format!("did you mean {} or {last}?", first.join(", "))),
        }
    }
}

/// The candidates nearest to `word`.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Nearest<'a> {
    const FLOOR: f64 = 0.6;
    let lower = word.to_ascii_lowercase();
    // Strip PyTorch's class-name decorations: `AvgPool2d` -> `avgpool`.
    let stripped = lower
        .trim_end_matches("2d")
        .trim_end_matches("1d")
        .replace('_', "");
    let (word_shape, stripped_shape) = (Letters::of(&lower), Letters::of(&stripped));
    // A key held down too long: `kk` for a parameter `k`, too short a name for the edit
    // distance to reach the floor.
    let mut collapsed: Vec<char> = lower.chars().collect();
    collapsed.dedup();
    let collapsed: String = collapsed.into_iter().collect();
    // The edit distance is costly, and a file may define thousands of blocks that each
    // unknown name is compared with: a cheap upper bound of each candidate's score first
    // (nothing allocated), those that cannot reach the floor dropped, the rest scored best
    // bound first, so that the nearest sets the bar early and the search stops at the first
    // bound below it. Case does not count (`God` is `Good`, `ResNett` `ResNet`), as the
    // word's.
    let mut hopeful: Vec<(f64, usize, &'a str, bool)> = candidates
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let doubled = collapsed != lower && c.eq_ignore_ascii_case(&collapsed);
            let shape = Letters::of(c);
            let bound = stripped_shape
                .similarity_bound(&shape.without_underscores())
                .max(word_shape.similarity_bound(&shape))
                .max(if doubled { FLOOR } else { 0.0 });
            (bound >= FLOOR).then_some((bound, i, c, doubled))
        })
        .collect();
    // Stable: among equal bounds, the order given.
    hopeful.sort_by(|a, b| b.0.total_cmp(&a.0));
    // The score and tie-break of the best so far, and the candidates that have them with
    // their places in the list; an equal one joins them.
    let mut best: Option<(f64, f64)> = None;
    let mut placed: Vec<(usize, &'a str)> = Vec::new();
    for (bound, i, c, doubled) in hopeful {
        let need = best.map_or(FLOOR, |b| b.0);
        if bound < need {
            break;
        }
        let lower_c = c.to_ascii_lowercase();
        let score = strsim::normalized_damerau_levenshtein(&stripped, &lower_c.replace('_', ""))
            .max(strsim::normalized_damerau_levenshtein(&lower, &lower_c))
            .max(if doubled { FLOOR } else { 0.0 });
        if score < need {
            continue;
        }
        // Between names as many edits away, the one that shares the longer start:
        // `reluu` is `relu`, not `relu6`.
        let tie = strsim::jaro_winkler(&lower, &lower_c);
        match best {
            Some(b) if (score, tie) == b => placed.push((i, c)),
            Some(b) if score.total_cmp(&b.0).then(tie.total_cmp(&b.1)).is_lt() => {}
            _ => {
                best = Some((score, tie));
                placed = vec![(i, c)];
            }
        }
    }
    placed.sort_unstable_by_key(|&(i, _)| i);
    Nearest {
        score: best,
        words: placed.into_iter().map(|(_, c)| c).collect(),
    }
}

/// How many counters [`Letters`] has.
const LETTER_BUCKETS: usize = 64;
/// The counter of `_`.
const UNDERSCORE_BUCKET: usize = 36;

/// A word's length and how often each character occurs in it, ASCII letters lowercased:
/// enough for a cheap upper bound of the similarity of two words. Letters, digits and `_`
/// have a counter each; other characters share the rest, which only loosens the bound.
struct Letters {
    chars: usize,
    underscores: usize,
    counts: [u8; LETTER_BUCKETS],
}

impl Letters {
    fn of(word: &str) -> Letters {
        let mut counts = [0u8; LETTER_BUCKETS];
        let mut chars = 0;
        for c in word.chars() {
            chars += 1;
            let bucket = match c.to_ascii_lowercase() {
                l @ 'a'..='z' => l as usize - 'a' as usize,
                d @ '0'..='9' => 26 + (d as usize - '0' as usize),
                '_' => UNDERSCORE_BUCKET,
                other => UNDERSCORE_BUCKET + 1 + other as usize % (LETTER_BUCKETS - 37),
            };
            counts[bucket] = counts[bucket].saturating_add(1);
        }
        Letters {
            chars,
            underscores: word.bytes().filter(|&x| x == b'_').count(),
            counts,
        }
    }

    /// The same word with its underscores left out.
    fn without_underscores(&self) -> Letters {
        let mut counts = self.counts;
        counts[UNDERSCORE_BUCKET] = 0;
        Letters {
            chars: self.chars - self.underscores,
            underscores: 0,
            counts,
        }
    }

    /// An upper bound of `strsim::normalized_damerau_levenshtein` of the two words, case
    /// aside: an edit changes the length by at most one and the counters by two in all (a
    /// counter that saturated, or one that several characters share, can only count fewer
    /// differences), and lowercasing never makes two words further apart.
    fn similarity_bound(&self, other: &Letters) -> f64 {
        let longest = self.chars.max(other.chars);
        if longest == 0 {
            return 1.0;
        }
        let apart: u32 = self
            .counts
            .iter()
            .zip(&other.counts)
            .map(|(x, y)| u32::from(x.abs_diff(*y)))
            .sum();
        let fewest_edits = self
            .chars
            .abs_diff(other.chars)
            .max(apart.div_ceil(2) as usize);
        1.0 - fewest_edits as f64 / longest as f64
    }
}

/// What [`note_pytorch_order_cascade`] puts before a shape error's help.
const PYTORCH_ORDER_NOTE: &str = "a layer checked before this one reads as PyTorch's \
     argument order (its `cnnc::elab::pytorch_argument_order` warning), which changes the \
     shapes after it: fix that first, and check this layer's arguments the same way; ";

/// The same, for the shape error of the very layer the warning is about.
const PYTORCH_ORDER_NOTE_HERE: &str = "this layer reads as PyTorch's argument order (its \
     `cnnc::elab::pytorch_argument_order` warning), so its numbers mean other things here: \
     fix that first; if they are meant as written, ";

/// A layer read in PyTorch's argument order (`conv(1, 6, 5)`: 1 channel, kernel 6, stride
/// 5) shrinks the tensor, and the layers checked after it fail for no fault of their own:
/// their shape errors say where to look first. Run on one model's diagnostics (in the order
/// they were found) once warnings are silenced: a warning not shown is not pointed at.
pub fn note_pytorch_order_cascade(diags: &mut Diagnostics, sources: &SourceMap) {
    // `--allow pytorch_argument_order` drops the warning after compiling: nothing here may
    // point at it, nor drop a warning in its favour.
    if crate::allow::silenced_everywhere("cnnc::elab::pytorch_argument_order") {
        return;
    }
    let Some(first) = diags
        .0
        .iter()
        .position(|d| d.code == "cnnc::elab::pytorch_argument_order")
    else {
        return;
    };
    // Where each warning points (inside its layer's span).
    let warned: Vec<Span> = diags.0[first..]
        .iter()
        .filter(|d| d.code == "cnnc::elab::pytorch_argument_order")
        .filter_map(|d| d.labels.first().map(|l| l.span))
        .collect();
    // A diagnostic is the warned layer's own when its span is that call: from the layer's
    // name to the warned first argument lies only `name(` (an error on a residual or concat
    // around the layer is not the layer's).
    let on_warned_layer = |d: &Diagnostic| {
        d.labels.first().map(|l| l.span).is_some_and(|layer| {
            warned.iter().any(|w| {
                w.file == layer.file
                    && w.start >= layer.start
                    && w.end <= layer.end
                    && sources
                        .get(layer.file)
                        .text
                        .get(layer.start as usize..w.start as usize)
                        .and_then(|head| head.trim_end().strip_suffix('('))
                        .is_some_and(|name| {
                            let name = name.trim_end();
                            !name.is_empty()
                                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        })
            })
        })
    };
    // A shape warning of the misread layer itself (the rows a "stride" of 3 leaves unused)
    // is about numbers that mean something else: not said.
    let mut index = 0;
    diags.0.retain(|d| {
        index += 1;
        index <= first + 1
            || d.is_error()
            || !d.code.starts_with("cnnc::shape::")
            || !on_warned_layer(d)
    });
    let here: Vec<bool> = diags.0.iter().map(&on_warned_layer).collect();
    for (d, here) in diags.0.iter_mut().zip(here).skip(first + 1) {
        if d.is_error() && d.code.starts_with("cnnc::shape::") {
            let help = d.help.take().unwrap_or_default();
            if help.starts_with(PYTORCH_ORDER_NOTE) || help.starts_with(PYTORCH_ORDER_NOTE_HERE) {
                d.help = Some(help);
                continue;
            }
            let note = if here {
                PYTORCH_ORDER_NOTE_HERE
            } else {
                PYTORCH_ORDER_NOTE
            };
            d.help = Some(if help.is_empty() {
                // No help of its own to follow the note: it ends where its advice does.
                note.trim_end_matches([' ', ','])
                    .trim_end_matches("if they are meant as written")
                    .trim_end_matches([' ', ';'])
                    .to_string()
            } else {
                format!("{note}{help}")
            });
        }
    }
}

/// Takes [`note_pytorch_order_cascade`]'s note back out where no PyTorch-order warning is
/// left to point at (`--allow pytorch_argument_order` dropped it).
pub fn drop_pytorch_order_note(diags: &mut Diagnostics) {
    if diags
        .0
        .iter()
        .any(|d| d.code == "cnnc::elab::pytorch_argument_order")
    {
        return;
    }
    for d in &mut diags.0 {
        if let Some(rest) = d.help.as_deref().and_then(|h| {
            h.strip_prefix(PYTORCH_ORDER_NOTE)
                .or_else(|| h.strip_prefix(PYTORCH_ORDER_NOTE_HERE))
        }) {
            d.help = Some(rest.to_string());
        }
    }
}

/// `text` as a message quotes it: whole up to [`MAX_QUOTED`] characters, else its start and
/// `…` (a comment, which no length limit holds, may hold megabytes).
pub fn shortened(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_QUOTED) {
        None => text.into(),
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
    }
}

/// The most characters of source text a message quotes whole ([`shortened`]).
pub const MAX_QUOTED: usize = 60;

/// `text` with its control characters (but tabs and line breaks) replaced by visible ones
/// of the same length in bytes, so that spans still fit: a source excerpt must not send an
/// escape sequence to the terminal. `?` for the one-byte ones, `¿` for U+0080–U+009F.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c.is_control() && c.is_ascii() => '?',
            c if c.is_control() => '¿',
            c => c,
        })
        .collect()
}

impl JsonDiagnostic {
    /// A file that could not be read, in the JSON form of a diagnostic.
    pub fn io(e: &crate::driver::LoadError) -> JsonDiagnostic {
        JsonDiagnostic {
            severity: Severity::Error,
            code: "cnnc::io::read",
            message: e.to_string(),
            file: Some(e.path.display().to_string()),
            line: None,
            column: None,
            span: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// An error about a whole file (no place in it), in the JSON form of a diagnostic.
    pub fn about_file(
        code: &'static str,
        message: String,
        file: &std::path::Path,
    ) -> JsonDiagnostic {
        JsonDiagnostic {
            severity: Severity::Error,
            code,
            message,
            file: Some(file.display().to_string()),
            line: None,
            column: None,
            span: None,
            labels: Vec::new(),
            help: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Span;

    /// The cheap bound never cuts a candidate the edit distance would keep: it is at least
    /// the similarity of every pair, and the pruned search picks what a full one picks.
    #[test]
    fn did_you_mean_prunes_only_what_cannot_win() {
        let words = [
            "",
            "a",
            "relu",
            "reluu",
            "relu6",
            "ReLU",
            "conv",
            "vonc",
            "conv2d",
            "Conv2d",
            "convt",
            "maxpool",
            "MaxPool2d",
            "max_pool",
            "avgpool",
            "AvgPool2d",
            "batchnorm",
            "bn",
            "résidu",
            "résumé",
            "blk_12",
            "bkl_12",
            "blk_3999",
            "stage_1",
            "stage1",
            "dropout",
            "droput",
            "linear",
            "Linear",
            "lineer",
            "ünïcödé",
            "x",
        ];
        // Counters that saturate (300 `a`s) or that several characters share (`ü`, `ö`,
        // CJK) still bound from above.
        let long: Vec<String> = ["a".repeat(300), "a".repeat(299) + "b", "a".repeat(40)]
            .into_iter()
            .chain(["漢字", "字漢", "ünï", "öüï", "ÜNÏ"].map(String::from))
            .collect();
        let every = words.iter().copied().chain(long.iter().map(String::as_str));
        for a in every.clone() {
            for b in every.clone() {
                let exact = strsim::normalized_damerau_levenshtein(a, b);
                assert!(
                    Letters::of(a).similarity_bound(&Letters::of(b)) >= exact,
                    "{a:?} {b:?}"
                );
            }
        }
        let full = |word: &str| {
            let lower = word.to_ascii_lowercase();
            let stripped = lower
                .trim_end_matches("2d")
                .trim_end_matches("1d")
                .replace('_', "");
            words
                .iter()
                .map(|c| {
                    let lower_c = c.to_ascii_lowercase();
                    let score = strsim::normalized_damerau_levenshtein(
                        &stripped,
                        &lower_c.replace('_', ""),
                    )
                    .max(strsim::normalized_damerau_levenshtein(&lower, &lower_c));
                    (score, strsim::jaro_winkler(&lower, &lower_c), *c)
                })
                .filter(|(score, _, _)| *score >= 0.6)
                .max_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)))
                .map(|(_, _, c)| c)
        };
        for w in words
            .iter()
            .chain(&["Dropout2d", "relu_", "blk_1", "bkl_3999", "zzz"])
        {
            assert_eq!(did_you_mean(w, words.iter().copied()), full(w), "{w:?}");
        }
        // Two searches joined with `or` find what one search of both lists finds, ties in
        // the order of the lists.
        let (first, second) = words.split_at(words.len() / 2);
        for w in words
            .iter()
            .chain(&["blk_1", "reluu", "Relu", "linea", "ünïcöd"])
        {
            let joined = nearest(w, first.iter().copied()).or(nearest(w, second.iter().copied()));
            let whole = nearest(w, words.iter().copied());
            assert_eq!(joined.words, whole.words, "{w:?}");
            assert_eq!(joined.text(), whole.text(), "{w:?}");
        }
        let tie = nearest("encl", ["enc1"]).or(nearest("encl", ["enc2"]));
        assert_eq!(
            tie.text().as_deref(),
            Some("did you mean `enc1` or `enc2`?")
        );
        assert_eq!(did_you_mean("reluu", ["relu6", "relu"]), Some("relu"));
        // A doubled letter in a name too short for the edit distance.
        assert_eq!(did_you_mean("kk", ["c", "k"]), Some("k"));
        assert_eq!(did_you_mean("Cc", ["c", "k"]), Some("c"));
        assert_eq!(did_you_mean("kk", ["c", "s"]), None);
        assert_eq!(did_you_mean("ks", ["c", "k"]), None);
        // Case does not count, on either side.
        assert_eq!(did_you_mean("God", ["Good", "Bad", "Warn"]), Some("Good"));
        assert_eq!(
            did_you_mean("ResNett", ["ResNet", "resnet_unit"]),
            Some("ResNet")
        );
        assert_eq!(did_you_mean("ResNt", ["ResNet", "VGG"]), Some("ResNet"));
        assert_eq!(
            did_you_mean("bkl_12", ["blk_3999", "blk_12", "blk_21"]),
            Some("blk_12")
        );
    }

    /// Reports render from the lines around their labels, with the file's line numbers and
    /// offsets (`FileSource`), as miette draws them from the whole file.
    #[test]
    fn snippets_show_the_files_lines() {
        let mut text: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        text.push_str("last line, no newline");
        let mut sources = SourceMap::new();
        let id = sources.add("t.cnn", text.clone());
        let at = |needle: &str| {
            let start = text.find(needle).unwrap();
            Span::new(id, start, start + needle.len())
        };
        let d = Diagnostic::error("cnnc::test::x", "a message")
            .label(at("line 900\n").to(at("line 900")), "here")
            .label(at("line 3\n").to(at("line 3")), "and there");
        let out = d.render(&sources, false);
        assert!(out.contains("[t.cnn:900:1]"), "{out}");
        for shown in [
            "900 │ line 900",
            "899 │ line 899",
            "3 │ line 3\n",
            "here",
            "and there",
        ] {
            assert!(out.contains(shown), "{shown}:\n{out}");
        }
        assert!(!out.contains("line 500"), "{out}");
        let d =
            Diagnostic::error("cnnc::test::x", "a message").label(at("no newline"), "at the end");
        let out = d.render(&sources, false);
        assert!(out.contains("[t.cnn:1001:12]"), "{out}");
        assert!(out.contains("1001 │ last line, no newline"), "{out}");
    }

    /// A label on a long line, or beside one, is given as `file:line:col` without the
    /// snippet: a generated one-line model of megabytes is not echoed.
    #[test]
    fn long_lines_are_not_drawn() {
        let long = "relu ".repeat(MAX_SNIPPET_LINE / 5 + 1);
        for (text, at) in [
            (format!("model M() {{\n bogus {long}\n}}\n"), "bogus"),
            (format!("model M() {{\n bogus\n{long}\n}}\n"), "bogus"),
            (format!("{long}\nmodel M() {{\n bogus\n}}\n"), "model"),
        ] {
            let mut sources = SourceMap::new();
            let id = sources.add("t.cnn", text.clone());
            let start = text.find(at).unwrap();
            let d = Diagnostic::error("cnnc::test::x", "a message")
                .label(Span::new(id, start, start + at.len()), "here");
            let out = d.render(&sources, false);
            assert!(!out.contains("relu relu"), "{out}");
            let (line, col) = sources.get(id).line_col(start as u32);
            assert!(out.contains(&format!("t.cnn:{line}:{col}: here")), "{out}");
        }
        // Lines up to the limit are drawn.
        let text = format!(
            "model M() {{\n bogus\n{}\n}}\n",
            "x".repeat(MAX_SNIPPET_LINE - 1)
        );
        let mut sources = SourceMap::new();
        let id = sources.add("t.cnn", text.clone());
        let start = text.find("bogus").unwrap();
        let d = Diagnostic::error("cnnc::test::x", "a message")
            .label(Span::new(id, start, start + 5), "here");
        let out = d.render(&sources, false);
        assert!(out.contains(&"x".repeat(MAX_SNIPPET_LINE - 1)), "{out}");
    }

    /// Quoted source text is cut after [`MAX_QUOTED`] characters, on a character's boundary.
    #[test]
    fn quotes_are_shortened() {
        assert_eq!(shortened("conv_bias"), "conv_bias");
        let at_limit = "é".repeat(MAX_QUOTED);
        assert_eq!(shortened(&at_limit), at_limit.as_str());
        let long = "é".repeat(1_000_000);
        assert_eq!(shortened(&long), format!("{at_limit}…"));
    }

    /// A label over more lines than [`MAX_LABEL_LINES`] is drawn on its last line only; one
    /// over fewer, whole.
    #[test]
    fn long_labels_are_drawn_on_their_last_line() {
        for (lines, whole) in [(MAX_LABEL_LINES - 2, true), (1000, false)] {
            let body: String = (0..lines).map(|i| format!("  relu{i}\n")).collect();
            let text = format!("model M() {{\n residual {{\n{body} }}\n}}\n");
            let mut sources = SourceMap::new();
            let id = sources.add("t.cnn", text.clone());
            let start = text.find("residual {").unwrap() + "residual ".len();
            let end = text.rfind(" }").unwrap() + 2;
            let d = Diagnostic::error("cnnc::test::x", "a message")
                .label(Span::new(id, start, end), "the body gives");
            let out = d.render(&sources, false);
            assert!(out.contains("the body gives"), "{out}");
            assert_eq!(out.contains("relu1\n"), whole, "{out}");
            assert!(out.lines().count() < lines.min(100) + 12, "{out}");
        }
    }

    /// Wrapping breaks lines at spaces outside short code spans only; a long span (a whole
    /// example) and an unpaired backquote break as plain text.
    #[test]
    fn wrapping_keeps_short_code_spans_whole() {
        let words = |line: &str| -> Vec<String> {
            words_keeping_code(line)
                .map(|w| format!("{}{}", w.word, w.whitespace))
                .collect()
        };
        assert_eq!(words("a  b c"), ["a  ", "b ", "c"]);
        assert_eq!(
            words("write `conv(6, 5, pad=2)` here"),
            ["write ", "`conv(6, 5, pad=2)` ", "here"]
        );
        assert_eq!(words("a `b c"), ["a ", "`b ", "c"]);
        assert_eq!(words("`a b` c `d e`"), ["`a b` ", "c ", "`d e`"]);
        let long = format!("`{}`", ["word"; 15].join(" "));
        assert_eq!(words(&long).len(), 15);

        let mut sources = SourceMap::new();
        let text = "conv(5, 6)\n".to_string();
        let id = sources.add("t.cnn", text);
        let help = format!("{}write `conv(6, 5, pad=2)` instead", "filler ".repeat(10));
        let d = Diagnostic::error("cnnc::test::x", "a message")
            .label(Span::new(id, 0, 4), "here")
            .help(help);
        let out = d.render(&sources, false);
        assert!(out.contains("`conv(6, 5, pad=2)`"), "{out}");
        assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
    }
}
