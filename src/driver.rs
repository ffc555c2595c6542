//! The front half of the pipeline for one file: load (following `use`), parse, elaborate
//! every model, check. Returns all diagnostics and the models that checked.

use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::elaborate;
use crate::shape::{self, CheckedModel};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::{self, ast};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest source file cnnc reads (a `.cnn` file is text a person writes).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The result of compiling one file: its sources (for rendering diagnostics), every
/// diagnostic, and each model that checked without error.
#[derive(Debug)]
pub struct Compilation {
    pub sources: SourceMap,
    pub main: FileId,
    pub diagnostics: Diagnostics,
    pub models: Vec<CheckedModel>,
    /// Names of every model defined in the main file, checked or not, in source order.
    pub model_names: Vec<String>,
    /// Which diagnostics each model's elaboration and check produced (index ranges into
    /// `diagnostics`); the rest are the file's (syntax, definitions). Whoever removes
    /// diagnostics clears it (the ranges would no longer hold).
    pub model_diagnostics: Vec<(String, std::ops::Range<usize>)>,
    /// The diagnostics of code no model expands (`ir::unexpanded`), an index range into
    /// `diagnostics`: errors of the file for `check`, left out with a note under `--model`,
    /// as another model's are. Cleared with `model_diagnostics`.
    pub dead_code_diagnostics: std::ops::Range<usize>,
}

/// What narrowing a compilation to one model left out (see [`Compilation::narrow_to_model`]).
#[derive(Debug, Default)]
pub struct LeftOut {
    /// The other models with errors, one name each, in source order.
    pub models_with_errors: Vec<String>,
    /// The errors in code no model expands.
    pub dead_code_errors: usize,
}

impl Compilation {
    /// Narrows the compilation to the model `name`: the other models' diagnostics are
    /// dropped, warnings and errors, and the names of those with errors returned (one per
    /// model), so `--model A` works on a file whose model `B` is being written, and `A`'s
    /// own errors are not buried under `B`'s. The file's own diagnostics (syntax,
    /// definitions) stay. `None` with every model's diagnostics dropped when `name` is no
    /// model of the file, so that what gets reported is the name.
    pub fn narrow_to_model(&mut self, name: &str) -> Option<LeftOut> {
        let ranges = std::mem::take(&mut self.model_diagnostics);
        let dead = std::mem::take(&mut self.dead_code_diagnostics);
        let dead_code_errors = self.diagnostics.0[dead.clone()]
            .iter()
            .filter(|d| d.is_error())
            .count();
        let known = self.model_names.iter().any(|m| m == name);
        // The ranges are in order and disjoint: a binary search finds the one holding `i`
        // (a file may define thousands of models). A name that is no model of the file
        // drops every model's diagnostics: they are beside the point, and the caller
        // reports the name, with a did-you-mean.
        let owner = |i: usize| {
            let k = ranges.partition_point(|(_, r)| r.end <= i);
            ranges
                .get(k)
                .filter(|(_, r)| r.contains(&i))
                .map(|(m, _)| m.as_str())
        };
        let other = |i: usize| owner(i).filter(|m| !known || *m != name);
        let mut broken: Vec<String> = Vec::new();
        for (i, d) in self.diagnostics.iter().enumerate() {
            if let (true, Some(m)) = (d.is_error(), other(i)) {
                // A model's diagnostics are contiguous: a repeat is the last one.
                if broken.last().map(String::as_str) != Some(m) {
                    broken.push(m.to_string());
                }
            }
        }
        let keep: Vec<bool> = (0..self.diagnostics.0.len())
            .map(|i| other(i).is_none() && !dead.contains(&i))
            .collect();
        let mut k = keep.iter();
        self.diagnostics
            .0
            .retain(|_| *k.next().expect("one flag per diagnostic"));
        known.then_some(LeftOut {
            models_with_errors: broken,
            dead_code_errors,
        })
    }

    /// The models with errors of their own, in source order.
    pub fn models_with_errors(&self) -> Vec<&str> {
        self.model_diagnostics
            .iter()
            .filter(|(_, r)| {
                self.diagnostics.0[r.clone()]
                    .iter()
                    .any(Diagnostic::is_error)
            })
            .map(|(m, _)| m.as_str())
            .collect()
    }

    /// Whether the file itself has errors (syntax, definitions), not only its models or
    /// the code no model expands.
    pub fn file_has_errors(&self) -> bool {
        self.diagnostics.iter().enumerate().any(|(i, d)| {
            d.is_error()
                && !self.dead_code_diagnostics.contains(&i)
                && !self.model_diagnostics.iter().any(|(_, r)| r.contains(&i))
        })
    }

    /// The model named `name`, or the only model when `name` is `None`.
    pub fn model(&self, name: Option<&str>) -> Result<&CheckedModel, String> {
        match name {
            Some(n) => self.models.iter().find(|m| m.name == n).ok_or_else(|| {
                if self.model_names.iter().any(|m| m == n) {
                    format!("model `{n}` has errors")
                } else {
                    let names = self.model_names.iter().map(String::as_str);
                    let near = names
                        .clone()
                        .find(|m| m.eq_ignore_ascii_case(n))
                        .map(str::to_string)
                        .or_else(|| crate::diag::did_you_mean(n, names).map(str::to_string));
                    let hint = near
                        .map(|m| format!(" (did you mean `{m}`?)"))
                        .unwrap_or_default();
                    format!(
                        "no model named `{n}`{hint}; this file defines: {}",
                        self.model_names.join(", ")
                    )
                }
            }),
            None => match (self.model_names.len(), self.models.len()) {
                (0, _) => Err(
                    "this file defines no model; one is written `model NAME(input: \
                               [C, H, W]) { layers }`"
                        .to_string(),
                ),
                (1, 1) => Ok(&self.models[0]),
                (1, _) => Err(format!("model `{}` has errors", self.model_names[0])),
                _ => Err(format!(
                    "this file defines several models ({}); pick one with --model NAME",
                    self.model_names.join(", ")
                )),
            },
        }
    }
}

/// A problem reading a file given on the command line (exit code 2, not a diagnostic).
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for LoadError {}

/// Reads a source file with the limits every input gets: a regular file, at most
/// [`MAX_FILE_BYTES`], UTF-8.
pub fn read_source(path: &Path) -> Result<String, LoadError> {
    let err = |message: String| LoadError {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(crate::fsutil::read_message(path, &e)))?;
    if meta.is_dir() {
        return Err(err("it is a directory, not a .cnn file".into()));
    }
    // A large ONNX model is read no further than its first bytes, and named as one below.
    let starts_like_onnx = || {
        let mut head = [0u8; 2];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok_and(|()| matches!(head, [0x08, v] if (1..=30).contains(&v)))
    };
    if meta.len() > MAX_FILE_BYTES && meta.is_file() && !starts_like_onnx() {
        return Err(err(format!(
            "the file is {} bytes; cnnc reads source files of at most {} bytes",
            meta.len(),
            MAX_FILE_BYTES
        )));
    }
    // The size in the metadata is 0 for devices and pipes (`use "/dev/zero"` read forever):
    // the limit holds for the bytes actually read.
    let file = crate::fsutil::open_to_read(path)
        .map_err(|e| err(crate::fsutil::read_message(path, &e)))?;
    if crate::fsutil::is_pipe(&file) {
        return crate::fsutil::waiting_on_pipe(|| read_limited(path, file));
    }
    read_limited(path, file)
}

/// The source read from `reader` (a file, or standard input for `-`), with the limits of
/// [`read_source`]: at most [`MAX_FILE_BYTES`], UTF-8.
fn read_limited(path: &Path, reader: impl Read) -> Result<String, LoadError> {
    let err = |message: String| LoadError {
        path: path.to_path_buf(),
        message,
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(crate::fsutil::io_message(&e)))?;
    // An ONNX file given where a source belongs (named .onnx, or any name: its protobuf
    // starts with the tag of `ir_version`, byte 0x08, which no text starts with): say what
    // it is and what takes it.
    let onnx = |bytes: &[u8]| {
        matches!(bytes, [0x08, v, ..] if (1..=30).contains(v))
            || path
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
    };
    let onnx_message = || {
        err(format!(
            "it is an ONNX model, not a .cnn source; `cnnc run` and `cnnc bench` take ONNX \
             files{}, the other commands the .cnn file it came from",
            if path
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
            {
                ""
            } else if path == Path::new("<stdin>") {
                " (`-` is read as a source: `cnnc run /dev/stdin` reads an ONNX model there)"
            } else {
                " named `.onnx` (a `.cnn` name is read as a source)"
            }
        ))
    };
    if matches!(&bytes[..], [0x08, v, ..] if (1..=30).contains(v)) {
        return Err(onnx_message());
    }
    // After the look at what it is: an ONNX model of any size is named as one.
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(err(format!(
            "it has more than {MAX_FILE_BYTES} bytes; cnnc reads source files of at most {MAX_FILE_BYTES} bytes"
        )));
    }
    if let Some(encoding) = wide_encoding(&bytes) {
        // A pipe or standard input has no name a converted copy could take.
        let unnamed =
            path == Path::new("<stdin>") || path.starts_with("/dev") || path.starts_with("/proc");
        let convert = if unnamed {
            format!("iconv -f {encoding} -t UTF-8")
        } else {
            format!(
                "iconv -f {encoding} -t UTF-8 {} > {}",
                shell_word(path),
                shell_word(&path.with_extension("utf8.cnn"))
            )
        };
        return Err(err(format!(
            "the file is {encoding} text{}; cnnc reads UTF-8: convert it with `{convert}`",
            if encoding.starts_with("UTF-16") {
                " (as Windows editors and PowerShell's `>` write it)"
            } else {
                ""
            }
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        if onnx(e.as_bytes()) {
            return onnx_message();
        }
        // Where an editor shows it: the text before the byte is valid, so it counts in
        // characters.
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let before = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
            .chars()
            .count()
            + 1;
        err(format!(
            "the file is not UTF-8 text: byte 0x{:02X} at line {line}, column {column} (offset \
             {at}) is not a character; save the file as UTF-8 (from Latin-1: `iconv -f \
             LATIN1 -t UTF-8`)",
            bytes[at]
        ))
    })
}

/// `UTF-16LE`, `UTF-16BE`, `UTF-32LE` or `UTF-32BE` when `bytes` are such text: they start
/// with its byte order mark, or (UTF-16 without a mark, which is also valid UTF-8 and would
/// be read as text with NULs) at least three in four of their first characters are Latin-1
/// ones, a zero byte beside each.
fn wide_encoding(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xff, 0xfe, 0, 0, ..] => return Some("UTF-32LE"),
        [0, 0, 0xfe, 0xff, ..] => return Some("UTF-32BE"),
        [0xff, 0xfe, ..] => return Some("UTF-16LE"),
        [0xfe, 0xff, ..] => return Some("UTF-16BE"),
        _ => {}
    }
    let pairs: Vec<&[u8]> = bytes[..bytes.len().min(64) & !1].chunks(2).collect();
    let mostly = |latin1: fn(&[u8]) -> bool| {
        pairs.len() >= 2 && pairs.iter().filter(|p| latin1(p)).count() * 4 >= pairs.len() * 3
    };
    if mostly(|p| p[0] != 0 && p[1] == 0) {
        Some("UTF-16LE")
    } else if mostly(|p| p[0] == 0 && p[1] != 0) {
        Some("UTF-16BE")
    } else {
        None
    }
}

/// `path` as a shell word: quoted unless it is made of plain characters only.
fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Compiles a file on disk; `-` is standard input (shown as `<stdin>`, `use` relative to the
/// current folder), as editors and pipes give it.
pub fn compile_file(path: &Path) -> Result<Compilation, LoadError> {
    if path == Path::new("-") {
        let shown = Path::new("<stdin>");
        // Standard input waits on whatever writes it (a pipe, a terminal).
        let text = crate::fsutil::waiting_on_pipe(|| read_limited(shown, std::io::stdin().lock()))?;
        return Ok(compile_source(shown, text));
    }
    let text = read_source(path)?;
    Ok(compile_source(path, text))
}

/// Compiles source text; `use` declarations are resolved relative to `path`'s folder.
pub fn compile_source(path: &Path, text: String) -> Compilation {
    let mut sources = SourceMap::new();
    let mut diagnostics = Diagnostics::new();
    let hash = hex(&Sha256::digest(text.as_bytes()));
    let main = sources.add(path, text);
    let mut files: Vec<(FileId, ast::File)> = Vec::new();
    load_recursive(main, &mut sources, &mut files, &mut diagnostics);

    let mut model_names = Vec::new();
    let mut model_name_spans: Vec<Span> = Vec::new();
    let mut models = Vec::new();
    let mut model_diagnostics = Vec::new();
    let defs = elaborate::Definitions::collect(&files, &mut diagnostics);
    let allows = crate::allow::Allows::collect(&sources);
    // Errors of the files themselves (syntax, definitions) hide warnings an allow expects.
    let files_clean = diagnostics.error_count() == 0;
    if let Some((_, main_ast)) = files.iter().find(|(id, _)| *id == main) {
        for item in &main_ast.items {
            if let ast::Item::Model(m) = item {
                if let Some(i) = model_names.iter().position(|n| *n == m.name.name) {
                    diagnostics.push(
                        Diagnostic::error(
                            "cnnc::elab::duplicate_definition",
                            format!("model `{}` is defined twice", m.name.name),
                        )
                        .label(m.name.span, "defined again here")
                        .label(model_name_spans[i], "first defined here")
                        .help(
                            "rename one of them: models are picked by name (`--model NAME`), so \
                             each name must be one model's",
                        ),
                    );
                    diagnostics.0.extend(allows.unknown_codes_in(m.span));
                    continue;
                }
                model_names.push(m.name.name.clone());
                model_name_spans.push(m.name.span);
                let first = diagnostics.0.len();
                let mut model_diags = Diagnostics::new();
                let graph = elaborate::elaborate_model(m, &defs, &mut model_diags);
                let checked = shape::check(
                    m.name.name.clone(),
                    graph,
                    m.span,
                    path.display().to_string(),
                    hash.clone(),
                    &model_diags,
                );
                // A warning repeated by more block calls than are recorded may come from a call
                // whose allow is then never matched: those calls' allows are not judged.
                let truncated = model_diags.iter().any(|d| d.other_calls.truncated);
                allows.silence(&mut model_diags);
                crate::diag::note_pytorch_order_cascade(&mut model_diags, &sources);
                model_diags.0.extend(allows.unknown_codes_in(m.span));
                let clean = files_clean && model_diags.error_count() == 0;
                if clean && checked.is_ok() {
                    let skip = if truncated {
                        repeated_block_calls(&m.body, &defs)
                    } else {
                        Vec::new()
                    };
                    model_diags.0.extend(allows.unused_in(m.span, &skip));
                }
                diagnostics.extend(model_diags);
                match checked {
                    Ok(c) => models.push(c),
                    Err(d) => diagnostics.extend(d),
                }
                model_diagnostics.push((m.name.name.clone(), first..diagnostics.0.len()));
            }
        }
    }
    // A file with nothing in it (empty, or comments alone): most likely the wrong file, or
    // one cut short. A warning, not an error: `cnnc check` still passes, and says so.
    // (`--allow empty_file` silences it; an allow comment cannot, as no syntax warning.)
    if files
        .iter()
        .any(|(id, f)| *id == main && f.items.is_empty())
    {
        let text = &sources.get(main).text;
        let what = if text.trim().is_empty() {
            "the file is empty"
        } else {
            "the file holds only comments"
        };
        diagnostics.push(
            Diagnostic::warning(
                "cnnc::syntax::empty_file",
                format!("{what}: it defines no model, block or `use`"),
            )
            .label(
                Span::new(main, 0, 0),
                "nothing is defined from here to the end",
            )
            .help("check that this is the file you meant, and that it was saved whole"),
        );
    }
    // Allows on a `block` line, which no warning points at (the main file's blocks: a used
    // file's are its own, reported when it is checked).
    let block_headers: Vec<(Span, u32)> = files
        .iter()
        .filter(|(id, _)| *id == main)
        .flat_map(|(_, f)| &f.items)
        .filter_map(|item| match item {
            ast::Item::Block(b) => Some((b.span, b.body.first()?.span.start)),
            _ => None,
        })
        .collect();
    diagnostics
        .0
        .extend(allows.on_block_headers(&block_headers));
    // The names in code no model expanded (an uncalled block, an `if` branch not taken),
    // in the main file and the files it `use`s.
    let dead_start = diagnostics.0.len();
    crate::ir::unexpanded::check(&files, &defs, &mut diagnostics);
    let mut dead_code_diagnostics = dead_start..diagnostics.0.len();
    // An allow that names no warning outside every model is the file's own diagnostic (one
    // inside a model is that model's, reported above).
    let model_spans: Vec<Span> = files
        .iter()
        .filter(|(id, _)| *id == main)
        .flat_map(|(_, f)| &f.items)
        .filter_map(|item| match item {
            ast::Item::Model(m) => Some(m.span),
            _ => None,
        })
        .collect();
    diagnostics
        .0
        .extend(allows.unknown_codes().into_iter().filter(|d| {
            d.primary_span()
                .is_none_or(|s| !model_spans.iter().any(|m| m.contains(s)))
        }));
    // A name a failed `use` may have defined: unknown only because that file was not read.
    if diagnostics
        .iter()
        .any(|d| d.code == "cnnc::syntax::use_not_found")
    {
        for d in &mut diagnostics.0 {
            if d.code == "cnnc::elab::unknown_layer" && d.message.starts_with("unknown layer") {
                // What it says of the name still helps (a near name, PyTorch's); the list of
                // every layer would bury the point.
                let near = d
                    .help
                    .take()
                    .filter(|h| !h.contains("the layers are:"))
                    .map(|h| format!("; or: {h}"))
                    .unwrap_or_default();
                d.help = Some(format!(
                    "a `use` above failed, and this may be a block of the file it names: fix \
                     the `use` first{near}"
                ));
            }
        }
        merge_unknown_after_failed_use(
            &mut diagnostics,
            &mut model_diagnostics,
            &mut dead_code_diagnostics,
        );
    }
    Compilation {
        sources,
        main,
        diagnostics,
        models,
        model_names,
        model_diagnostics,
        dead_code_diagnostics,
    }
}

/// After a failed `use`, every call of a name it may have defined is unknown: one error per
/// name (in each model, and in the code no model expands) with the other places labelled on
/// it, not one error per call. The index ranges are kept true.
fn merge_unknown_after_failed_use(
    diagnostics: &mut Diagnostics,
    model_ranges: &mut [(String, std::ops::Range<usize>)],
    dead: &mut std::ops::Range<usize>,
) {
    /// The most other places labelled on one error; the rest are counted.
    const SHOWN: usize = 8;
    let group_of = |i: usize| {
        model_ranges
            .iter()
            .position(|(_, r)| r.contains(&i))
            .unwrap_or(if dead.contains(&i) {
                usize::MAX - 1
            } else {
                usize::MAX
            })
    };
    let n = diagnostics.0.len();
    let mut first_of: std::collections::HashMap<(usize, String), usize> =
        std::collections::HashMap::new();
    let mut keep = vec![true; n];
    let mut others: Vec<(usize, Span)> = Vec::new();
    for (i, d) in diagnostics.0.iter().enumerate() {
        if d.code != "cnnc::elab::unknown_layer" || !d.message.starts_with("unknown layer") {
            continue;
        }
        match first_of.entry((group_of(i), d.message.clone())) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                if let Some(span) = d.primary_span() {
                    others.push((*o.get(), span));
                }
                keep[i] = false;
            }
        }
    }
    if others.is_empty() {
        return;
    }
    let mut more = std::collections::HashMap::<usize, usize>::new();
    for (first, span) in others {
        let d = &mut diagnostics.0[first];
        let labelled = d
            .labels
            .iter()
            .filter(|l| l.text == "also used here")
            .count();
        if labelled < SHOWN && !d.labels.iter().any(|l| l.span == span) {
            // Before the call labels, beside the first place's own.
            let at = d
                .labels
                .iter()
                .position(|l| l.call)
                .unwrap_or(d.labels.len());
            d.labels.insert(
                at,
                crate::diag::Label {
                    span,
                    text: "also used here".into(),
                    call: false,
                },
            );
        } else {
            *more.entry(first).or_default() += 1;
        }
    }
    for (first, count) in more {
        let d = &mut diagnostics.0[first];
        let help = d.help.take().unwrap_or_default();
        let places = if count == 1 { "place" } else { "places" };
        d.help = Some(format!("{help} (it is used in {count} more {places})"));
    }
    // Where each index lands once the merged ones are gone.
    let mut landed = Vec::with_capacity(n + 1);
    let mut kept = 0;
    for &k in &keep {
        landed.push(kept);
        kept += k as usize;
    }
    landed.push(kept);
    let mut i = 0;
    diagnostics.0.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    for r in model_ranges
        .iter_mut()
        .map(|(_, r)| r)
        .chain(std::iter::once(dead))
    {
        *r = landed[r.start]..landed[r.end];
    }
}

/// The spans of the second and later calls (in source order; a repeat's iterations are one
/// place) of each block a model's body calls.
fn repeated_block_calls(body: &[ast::Stmt], defs: &elaborate::Definitions<'_>) -> Vec<Span> {
    fn walk<'s>(
        stmts: &'s [ast::Stmt],
        out: &mut Vec<(&'s str, Span)>,
        defs: &elaborate::Definitions<'_>,
    ) {
        for st in stmts {
            match &st.kind {
                ast::StmtKind::Call(c) if defs.is_block(&c.name.name) => {
                    out.push((c.name.name.as_str(), st.span));
                }
                _ => {
                    for body in st.bodies() {
                        walk(body, out, defs);
                    }
                }
            }
        }
    }
    let mut calls = Vec::new();
    walk(body, &mut calls, defs);
    let mut seen = std::collections::HashSet::new();
    calls
        .into_iter()
        .filter(|(name, _)| !seen.insert(*name))
        .map(|(_, span)| span)
        .collect()
}

/// Parses `root` and, depth first, every file it `use`s (each file once). The files whose
/// `use`s are still being loaded are kept on a stack of its own, not the native one: a chain
/// of 20,000 files, each using the next, is no deeper for it than one file.
fn load_recursive(
    root: FileId,
    sources: &mut SourceMap,
    files: &mut Vec<(FileId, ast::File)>,
    diagnostics: &mut Diagnostics,
) {
    let mut pending: Vec<(PathBuf, std::vec::IntoIter<ast::UseDecl>)> = Vec::new();
    let mut next = Some(root);
    loop {
        if let Some(id) = next.take() {
            if let Some(uses) = parse_one(id, sources, files, diagnostics) {
                pending.push(uses);
            }
        }
        let Some((dir, uses)) = pending.last_mut() else {
            break;
        };
        let Some(u) = uses.next() else {
            pending.pop();
            continue;
        };
        let target = dir.join(&u.path);
        if sources.find(&target).is_some() {
            continue; // already loaded (or a cycle of uses): each file once
        }
        match read_source(&target) {
            Ok(text) => next = Some(sources.add(target, text)),
            Err(e) => {
                let using = sources.get(u.span.file).path.clone();
                // A source read from standard input has no folder: its uses are read from
                // the current one.
                let relative = if using == Path::new("<stdin>") {
                    format!(
                        "the path of a `use` is relative to the file that contains it, and for a \
                         source read from standard input to the current folder, {}",
                        std::env::current_dir()
                            .map_or_else(|_| ".".to_string(), |d| d.display().to_string())
                    )
                } else {
                    "the path of a `use` is relative to the file that contains it".to_string()
                };
                let help = match nearby_source_file(&target, &u.path, &using) {
                    Some(near) => format!("did you mean `use \"{near}\"`?"),
                    None => relative,
                };
                diagnostics.push(
                    Diagnostic::error("cnnc::syntax::use_not_found", e.to_string())
                        .label(u.span, "used here")
                        .help(help),
                )
            }
        }
    }
}

/// For a used file that does not exist, the nearest `.cnn` file beside where it was looked
/// for, as the `use` would write it (`written` with its file name replaced); `None` when it
/// exists or none is near. The file that has the `use` (`using`) is no candidate.
fn nearby_source_file(target: &Path, written: &str, using: &Path) -> Option<String> {
    if target.symlink_metadata().is_ok() {
        return None;
    }
    let name = target.file_name()?.to_str()?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A folder of many files is not worth listing for a hint.
    let siblings: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .take(10_000)
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cnn"))
        .filter(|n| {
            let candidate = dir.join(n);
            let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            };
            !same(&candidate, using)
        })
        .collect();
    let written_name = Path::new(written).file_name()?.to_str()?;
    let written_dir = written.strip_suffix(written_name).unwrap_or_default();
    match crate::diag::did_you_mean(name, siblings.iter().map(String::as_str)) {
        Some(near) => Some(format!("{written_dir}{near}")),
        // The file of that name one folder down (`use "blocks.cnn"` for lib/blocks.cnn),
        // where exactly one folder has it.
        None => {
            let mut found = std::fs::read_dir(dir)
                .ok()?
                .take(1_000)
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|sub| dir.join(sub).join(name).is_file());
            let sub = found.next()?;
            found
                .next()
                .is_none()
                .then(|| format!("{written_dir}{sub}/{name}"))
        }
    }
}

/// Parses one file into `files`; its folder and its `use`s, or `None` when it does not
/// parse (reported).
fn parse_one(
    id: FileId,
    sources: &SourceMap,
    files: &mut Vec<(FileId, ast::File)>,
    diagnostics: &mut Diagnostics,
) -> Option<(PathBuf, std::vec::IntoIter<ast::UseDecl>)> {
    let file = match syntax::parse(&sources.get(id).text, id) {
        Ok(f) => f,
        Err(d) => {
            diagnostics.extend(d);
            return None;
        }
    };
    let dir = sources
        .get(id)
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let uses: Vec<ast::UseDecl> = file
        .items
        .iter()
        .filter_map(|i| match i {
            ast::Item::Use(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    files.push((id, file));
    Some((dir, uses.into_iter()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
