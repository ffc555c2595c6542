//! Source files and byte spans: every stage points back into the `.cnn` text through these.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range `[start, end)` in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both (they must be in the same file).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether `other` lies within this span (same file).
    pub fn contains(&self, other: Span) -> bool {
        self.file == other.file && self.start <= other.start && other.end <= self.end
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// One loaded source file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or as `use` resolved it); shown in diagnostics.
    pub path: PathBuf,
    pub text: String,
    /// The byte offset of each line's start, found on the first [`SourceFile::line_col`]:
    /// every node of an export names its place, so a lookup must not scan the file.
    line_starts: std::sync::OnceLock<Vec<usize>>,
    /// The text with control characters replaced (of the same length in bytes), as
    /// diagnostics show it; made on the first diagnostic drawn.
    printable: std::sync::OnceLock<String>,
}

impl SourceFile {
    fn line_starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            std::iter::once(0)
                .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let offset = (offset as usize).min(self.text.len());
        let starts = self.line_starts();
        // The last line starting at or before `offset` (the first start is 0).
        let line = starts.partition_point(|&s| s <= offset);
        let line_start = starts[line - 1];
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    /// The text as diagnostics show it (control characters replaced, byte for byte).
    pub fn printable(&self) -> &str {
        self.printable
            .get_or_init(|| crate::diag::printable(&self.text))
    }

    /// The whole lines holding bytes `start..end`, with `before` more lines before them and
    /// `after` after: their byte range, and the index (from 0) of the first.
    pub fn lines_around(
        &self,
        start: usize,
        end: usize,
        before: usize,
        after: usize,
    ) -> (std::ops::Range<usize>, usize) {
        let starts = self.line_starts();
        let line_of =
            |offset: usize| starts.partition_point(|&s| s <= offset.min(self.text.len())) - 1;
        let first = line_of(start).saturating_sub(before);
        let last = line_of(end) + after + 1;
        let to = starts.get(last).copied().unwrap_or(self.text.len());
        (starts[first]..to, first)
    }

    /// The length in bytes of the longest of the lines [`SourceFile::lines_around`] gives.
    pub fn longest_line_around(&self, start: usize, end: usize, context: usize) -> usize {
        let (range, first) = self.lines_around(start, end, context, context);
        let mut bounds: Vec<usize> = self.line_starts()[first..]
            .iter()
            .copied()
            .take_while(|&s| s < range.end)
            .collect();
        bounds.push(range.end);
        bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
    }
}

/// All files of one compilation: the file given on the command line and those it `use`s.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
    /// The files by their canonical paths (links and `..` resolved), found when added: a
    /// `use` is looked up without a system call per file loaded (20,000 files in a chain
    /// of `use`s took minutes).
    by_canonical_path: std::collections::HashMap<PathBuf, FileId>,
}

impl SourceMap {
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file. Old Mac line ends, a `\r` alone, become `\n` (byte for byte, so spans
    /// keep their places): a comment ends at the line's end, and the line numbers of a
    /// message and of its excerpt agree.
    pub fn add(&mut self, path: impl Into<PathBuf>, text: String) -> FileId {
        let text = if text.contains('\r') {
            let mut bytes = text.into_bytes();
            for i in 0..bytes.len() {
                if bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n') {
                    bytes[i] = b'\n';
                }
            }
            String::from_utf8(bytes).expect("one ASCII byte replaced by another")
        } else {
            text
        };
        let path = path.into();
        let id = FileId(self.files.len() as u32);
        if let Ok(canonical) = std::fs::canonicalize(&path) {
            self.by_canonical_path.entry(canonical).or_insert(id);
        }
        self.files.push(SourceFile {
            path,
            text,
            line_starts: Default::default(),
            printable: Default::default(),
        });
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The file loaded from `path`, written this way or another way to the same file
    /// (`lib.cnn` and `sub/../lib.cnn`, a link).
    pub fn find(&self, path: &Path) -> Option<FileId> {
        match std::fs::canonicalize(path) {
            Ok(canonical) => self.by_canonical_path.get(&canonical).copied(),
            // No such file on disk (`<stdin>`, a test's made-up name): by the name alone.
            Err(_) => self
                .files
                .iter()
                .position(|f| f.path == path)
                .map(|i| FileId(i as u32)),
        }
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn text(&self, span: Span) -> &str {
        let f = self.get(span.file);
        f.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or("")
    }
}

#[cfg(test)]
mod line_col_tests {
    use super::SourceMap;

    /// Line and column by scanning the text up to the offset.
    fn scanned(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    #[test]
    fn line_and_column_of_every_offset() {
        for text in [
            "",
            "\n",
            "a",
            "ab\ncd",
            "model m\n\n  conv(4, 3) é relu\n",
            "x\r\ny\rz\n\n",
        ] {
            let mut sources = SourceMap::new();
            let id = sources.add("t.cnn", text.to_string());
            let file = sources.get(id);
            for offset in (0..=file.text.len()).filter(|&o| file.text.is_char_boundary(o)) {
                assert_eq!(
                    file.line_col(offset as u32),
                    scanned(&file.text, offset),
                    "{text:?} at {offset}"
                );
            }
            // Past the end: the end.
            let end = scanned(&file.text, file.text.len());
            assert_eq!(file.line_col(file.text.len() as u32 + 5), end);
        }
    }
}
