//! pest pairs → AST, and pest errors → diagnostics.
//!
//! Architecture invariant: parsing never overflows the stack, whatever the input. Bracket
//! nesting is limited by a scan before pest runs ([`MAX_NESTING`]); the grammar recurses only
//! through brackets; prefix operators, binary operator chains and `else if` chains arrive as
//! flat sequences that this module folds with loops, and it caps the depth of what it builds
//! ([`MAX_NESTING`] statements deep, [`MAX_EXPR_DEPTH`] expression nodes deep), so later
//! stages may recurse over the AST freely.

use super::ast::*;
use crate::diag::{Diagnostic, Diagnostics};
use crate::source::{FileId, Span};
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "grammar/cnn.pest"]
struct CnnParser;

/// The deepest nesting of `{`, `(` and `[` (together) that a file may have, and the deepest
/// nesting of statements (bodies and `else if` chains).
pub const MAX_NESTING: usize = 64;

/// The deepest expression tree the parser builds, in nodes (operators, calls, indexing) above
/// a leaf (`- - - x` and `x + x + x + x` are three deep).
pub const MAX_EXPR_DEPTH: usize = 128;

const UNEXPECTED: &str = "cnnc::syntax::unexpected";
const TOO_DEEP: &str = "cnnc::syntax::too_deep";
const INT_TOO_LARGE: &str = "cnnc::syntax::int_too_large";
const TOO_LONG: &str = "cnnc::syntax::too_long";

/// The longest name or number (in bytes) a file may hold: every message that quotes one
/// stays readable (a generated file with a name of megabytes echoed it whole).
pub const MAX_WORD: usize = 256;

/// The longest string (a `use` path), in bytes: Linux's longest path, `PATH_MAX`.
pub const MAX_STRING: usize = 4096;

/// Parses one `.cnn` file. An empty file is an empty [`File`]; a file with a syntax error
/// gives at least one error diagnostic.
pub fn parse(text: &str, file: FileId) -> Result<File, Diagnostics> {
    let one = |d: Diagnostic| Err(Diagnostics(vec![d]));
    if let Some(d) = check_nesting(text, file).or_else(|| check_word_lengths(text, file)) {
        return one(d);
    }
    let mut pairs = match CnnParser::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(e) => {
            return Err(recover(
                error_pos(&e),
                error_to_diagnostic(e, text, file),
                text,
                file,
            ))
        }
    };
    let mut builder = Builder {
        file,
        diags: Diagnostics::new(),
        depth: 0,
    };
    let ast = builder.file(pairs.next().expect("the file rule matched"));
    if builder.diags.has_errors() {
        Err(builder.diags)
    } else {
        Ok(ast)
    }
}

/// At most this many syntax errors are reported per file.
const MAX_SYNTAX_ERRORS: usize = 10;

/// Finds further syntax errors after the first (pest stops at one): the failing line is
/// blanked (spaces, so every offset stays) and the file parsed again, as long as the file's
/// and the line's brackets balance, so that no later line can be misread because of the
/// blanking; each error must lie past the previous one.
fn recover(mut pos: usize, first: Diagnostic, text: &str, file: FileId) -> Diagnostics {
    let mut diags = vec![first];
    if !balanced(text) {
        return Diagnostics(diags);
    }
    let mut blanked = text.as_bytes().to_vec();
    while diags.len() < MAX_SYNTAX_ERRORS {
        let start = blanked[..pos.min(blanked.len())]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let end = blanked[pos.min(blanked.len())..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(blanked.len(), |i| pos + i);
        let line = std::str::from_utf8(&blanked[start..end]).unwrap_or("");
        let before = std::str::from_utf8(&blanked[..start]).unwrap_or("");
        if line.trim().is_empty() || !ends_a_statement(before) {
            break;
        }
        // A model's or block's header (`model N(input: (3, 32, 32)) {`) opens the body that
        // follows: it becomes a neutral header of no more bytes, so the body is still read.
        let replacement = if balanced(line) {
            Vec::new()
        } else {
            match header_stand_in(line, balanced(before)) {
                Some(h) => h.into_bytes(),
                None => break,
            }
        };
        blanked[start..end].fill(b' ');
        blanked[start..start + replacement.len()].copy_from_slice(&replacement);
        let again = std::str::from_utf8(&blanked).expect("only ASCII bytes were replaced");
        match CnnParser::parse(Rule::file, again) {
            Ok(_) => break,
            Err(e) => {
                let next = error_pos(&e);
                // An error on the very first token after the blanked line is most likely
                // the blanking's doing (a statement left without its continuation).
                if next <= end || next == first_token_after(again, end) {
                    break;
                }
                diags.push(error_to_diagnostic(e, again, file));
                pos = next;
            }
        }
    }
    Diagnostics(diags)
}

/// A header that opens a body as `line` does, no longer than it, for a line that starts a
/// model or block and ends with the `{` of its body (its other brackets balanced). At the
/// top level (`top_level`: every bracket before the line closed), a line that starts with
/// another word (`modle`, `blok`, `Model`, `def`) and ends so is taken for a header with a
/// mistyped keyword, so the errors of its body and of the definitions after it are found.
fn header_stand_in(line: &str, top_level: bool) -> Option<String> {
    let code = code_of(line).trim();
    let first_word = code
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    let starts_with_a_word = first_word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && code[first_word.len()..].starts_with(char::is_whitespace);
    let stand_in = if code.starts_with("model ") {
        "model R(input: [1]) {"
    } else if code.starts_with("block ") {
        "block R() {"
    } else if top_level && starts_with_a_word {
        "block R(){"
    } else {
        return None;
    };
    let opens = code.ends_with('{') && balanced(&code[..code.len() - 1]);
    (opens && line.len() >= stand_in.len()).then(|| stand_in.to_string())
}

/// The code of a line, without its comment (`#` or `//` outside a string).
fn code_of(line: &str) -> &str {
    let mut in_string = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_string = !in_string,
            b'#' if !in_string => return &line[..i],
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Whether the code before a line ends where a statement may end, so that the line is not
/// the continuation of an unfinished one (`residual` waiting for its `{`, `… as` for a name).
fn ends_a_statement(before: &str) -> bool {
    let Some(last) = before
        .lines()
        .rev()
        .map(|l| code_of(l).trim_end())
        .find(|l| !l.is_empty())
    else {
        return true;
    };
    let word = last
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("");
    let continues = matches!(
        word,
        "as" | "residual"
            | "shortcut"
            | "gate"
            | "concat"
            | "else"
            | "repeat"
            | "if"
            | "in"
            | "and"
            | "or"
            | "not"
            | "use"
            | "block"
            | "model"
    );
    let open_end = last.ends_with(|c: char| ",=+-*/%<>(:[!.".contains(c));
    !continues && !open_end
}

/// Where the first token after `from` starts (spaces, line breaks and comments skipped).
fn first_token_after(text: &str, from: usize) -> usize {
    let mut at = from;
    for line in text[from..].split_inclusive('\n') {
        let code = code_of(line);
        if let Some(i) = code.find(|c: char| !c.is_whitespace()) {
            return at + i;
        }
        at += line.len();
    }
    text.len()
}

fn error_pos(e: &pest::error::Error<Rule>) -> usize {
    match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
}

/// Whether every bracket of `text` (outside comments and strings) is closed by its kind.
fn balanced(text: &str) -> bool {
    let mut stack = Vec::new();
    let mut ok = true;
    for_each_bracket(text, |_, b| {
        match b {
            b'{' | b'(' | b'[' => stack.push(b),
            _ => {
                let open = match b {
                    b'}' => b'{',
                    b')' => b'(',
                    _ => b'[',
                };
                ok = stack.pop() == Some(open);
            }
        }
        ok
    });
    ok && stack.is_empty()
}

// ---- nesting ---------------------------------------------------------------------------

/// Calls `f(offset, byte)` for every bracket of `text` outside comments and strings, and
/// stops early when `f` returns false.
fn for_each_bracket(text: &str, mut f: impl FnMut(usize, u8) -> bool) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(past) = past_comment_or_string(bytes, i) {
            i = past;
            continue;
        }
        match bytes[i] {
            b @ (b'{' | b'(' | b'[' | b'}' | b')' | b']') => {
                if !f(i, b) {
                    return;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
}

/// Where the comment or string that starts at `i` ends (a string ends at its line's end
/// when not closed), or `None` when none starts there.
fn past_comment_or_string(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes[i] {
        b'#' => Some(skip_line(bytes, i)),
        b'/' if bytes.get(i + 1) == Some(&b'/') => Some(skip_line(bytes, i)),
        b'"' => {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                j += 1;
            }
            Some(j + 1)
        }
        _ => None,
    }
}

fn skip_line(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i] != b'\n' {
        i += 1;
    }
    i
}

/// Reports the first opening bracket nested deeper than [`MAX_NESTING`].
fn check_nesting(text: &str, file: FileId) -> Option<Diagnostic> {
    let mut depth = 0usize;
    let mut too_deep = None;
    for_each_bracket(text, |i, b| {
        if matches!(b, b'{' | b'(' | b'[') {
            depth += 1;
            if depth > MAX_NESTING {
                too_deep = Some((i, b));
                return false;
            }
        } else {
            depth = depth.saturating_sub(1);
        }
        true
    });
    let (at, b) = too_deep?;
    Some(
        Diagnostic::error(
            TOO_DEEP,
            format!("brackets are nested more than {MAX_NESTING} deep"),
        )
        .label(
            Span::new(file, at, at + 1),
            format!("this `{}` is {} deep", b as char, MAX_NESTING + 1),
        )
        .help("flatten the nesting: move inner parts into a `block`, or split the expression"),
    )
}

/// Reports the first name or number longer than [`MAX_WORD`] bytes, or string longer than
/// [`MAX_STRING`] (outside comments): a word is a run of anything but spaces and the
/// language's punctuation (`.` among it: `NAME.h` and `0..n` are two words; a number's
/// parts count apart, each still limited), and a string counts from quote to quote.
fn check_word_lengths(text: &str, file: FileId) -> Option<Diagnostic> {
    let bytes = text.as_bytes();
    // The grammar's whitespace is ASCII's and U+FEFF.
    const FEFF: &[u8] = "\u{feff}".as_bytes();
    let ends_word = |at: usize| {
        let b = bytes[at];
        b.is_ascii_whitespace()
            || b"{}()[],:=+-*/%<>!\".#".contains(&b)
            || bytes[at..].starts_with(FEFF)
    };
    let mut i = 0;
    let (too_long, limit) = loop {
        if i >= bytes.len() {
            return None;
        }
        let end = match past_comment_or_string(bytes, i) {
            // Without the line's end, for a string not closed.
            Some(past) if bytes[i] == b'"' => {
                let past = past.min(bytes.len());
                past - usize::from(bytes[past - 1] == b'\n')
            }
            Some(past) => {
                i = past;
                continue;
            }
            // Past the whole of a U+FEFF: a word starting inside it would not start on a
            // character.
            None if ends_word(i) => {
                i += if bytes[i..].starts_with(FEFF) {
                    FEFF.len()
                } else {
                    1
                };
                continue;
            }
            None => (i..bytes.len())
                .find(|&at| ends_word(at))
                .unwrap_or(bytes.len()),
        };
        let limit = if bytes[i] == b'"' {
            MAX_STRING
        } else {
            MAX_WORD
        };
        if end - i > limit {
            break (i..end, limit);
        }
        i = end;
    };
    let what = if bytes[too_long.start] == b'"' {
        "string"
    } else if bytes[too_long.start].is_ascii_digit() || bytes[too_long.start] == b'.' {
        "number"
    } else {
        "name"
    };
    let len = too_long.len();
    Some(
        Diagnostic::error(
            TOO_LONG,
            format!("a {what} of {len} bytes, longer than the {limit} cnnc reads"),
        )
        .label(
            Span::new(file, too_long.start, too_long.end),
            format!("this {what}"),
        )
        .help(format!(
            "names and numbers are at most {MAX_WORD} bytes long, strings {MAX_STRING}: \
             shorten it"
        )),
    )
}

/// The innermost bracket opened before `pos` and not closed before it.
/// The first `{` that is closed, by count, by a `}` lined up with an outer statement: a
/// `}` first on its line, less indented than the inner `{`'s statement and as indented as
/// the enclosing `{`'s, closes that enclosing one by its looks, so the inner `{` lacks its
/// own. A `{`'s indentation is that of the line its statement begins on (the last keyword
/// that opens a braced statement since the previous brace), so a condition wrapped onto a
/// second line does not count as indentation. One pass: each line's indentation is found
/// once, and each stretch between braces is searched for keywords once.
fn misindented_open_brace(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    // (line start, indentation) of the line at the cursor, advanced as brackets come.
    let indent_at = |start: usize| {
        bytes[start..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count()
    };
    let mut line = (0usize, indent_at(0));
    let mut scanned = 0usize;
    let mut line_at = |i: usize| {
        while let Some(n) = bytes[scanned..i].iter().position(|&b| b == b'\n') {
            scanned += n + 1;
            line = (scanned, indent_at(scanned));
        }
        scanned = scanned.max(i);
        line
    };
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut found = None;
    let mut after_last_brace = 0usize;
    for_each_bracket(text, |i, b| {
        match b {
            b'{' => {
                let begins = last_statement_keyword(&bytes[after_last_brace..i])
                    .map_or(i, |k| after_last_brace + k);
                stack.push((i, line_at(begins).1));
                after_last_brace = i + 1;
            }
            b'}' => {
                after_last_brace = i + 1;
                let (start, indent) = line_at(i);
                let first_on_line = i == start + indent;
                if let Some((open, open_indent)) = stack.pop() {
                    let outer_indent = stack.last().map(|&(_, ind)| ind);
                    if first_on_line && open_indent > indent && outer_indent == Some(indent) {
                        found = Some(open);
                        return false;
                    }
                }
            }
            _ => {}
        }
        true
    });
    found
}

/// Where the last keyword that begins a braced statement or item lies in `bytes` (outside
/// comments and strings): the start of the statement a following `{` opens the body of.
fn last_statement_keyword(bytes: &[u8]) -> Option<usize> {
    const OPENERS: [&[u8]; 9] = [
        b"block",
        b"model",
        b"repeat",
        b"if",
        b"else",
        b"concat",
        b"residual",
        b"shortcut",
        b"gate",
    ];
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut last = None;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(past) = past_comment_or_string(bytes, i) {
            i = past;
            continue;
        }
        match bytes[i] {
            b if is_ident(b) => {
                let start = i;
                while i < bytes.len() && is_ident(bytes[i]) {
                    i += 1;
                }
                if OPENERS.contains(&&bytes[start..i]) {
                    last = Some(start);
                }
            }
            _ => i += 1,
        }
    }
    last
}

fn innermost_unclosed(text: &str, pos: usize) -> Option<(usize, u8)> {
    let mut stack = Vec::new();
    for_each_bracket(text, |i, b| {
        if i >= pos {
            return false;
        }
        if matches!(b, b'{' | b'(' | b'[') {
            stack.push((i, b));
        } else {
            stack.pop();
        }
        true
    });
    stack.pop()
}

/// Whether the bracket at `open` is closed, by `close`, on the line of `pos` (`conv(4 3)`:
/// an item missing its `,`, not a `)` missing).
fn closes_on_line_of(text: &str, open: usize, close: u8, pos: usize) -> bool {
    let line_end = text[pos..].find('\n').map_or(text.len(), |k| pos + k);
    let mut depth = 0usize;
    let mut closed = false;
    for_each_bracket(text, |i, b| {
        if i < open {
            return true;
        }
        if i >= line_end {
            return false;
        }
        if matches!(b, b'{' | b'(' | b'[') {
            depth += 1;
        } else {
            depth -= 1;
            if depth == 0 {
                // By its own kind of bracket (`conv(1, 2 }` closes nothing).
                closed = b == close;
                return false;
            }
        }
        true
    });
    closed
}

// ---- pest errors -----------------------------------------------------------------------

fn error_to_diagnostic(e: pest::error::Error<Rule>, text: &str, file: FileId) -> Diagnostic {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    match e.variant {
        // The grammar's negative lookaheads (`!keyword`) only ever explain a missing
        // positive, so the positives say everything worth saying.
        ErrorVariant::ParsingError { positives, .. } => {
            let mut d = unexpected(&positives, text, pos, file);
            // A line of PyTorch or Keras layer code: the whole of it in cnnc, where one
            // error a run would take a round trip per habit (a tuple, a quote, a prefix).
            let line_start = text[..pos.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[line_start..]
                .find('\n')
                .map_or(text.len(), |i| line_start + i);
            if let Some(cnnc) = super::port::translate_line(&text[line_start..line_end]) {
                let whole = format!("this line in cnnc is `{cnnc}`");
                d.help = Some(match d.help.take() {
                    Some(h) => format!("{h}; {whole}"),
                    None => whole,
                });
            }
            d
        }
        // pest's own guard: it stops before the native stack runs out.
        ErrorVariant::CustomError { message } if message.contains("limit") => {
            Diagnostic::error(TOO_DEEP, "the file is nested too deeply to parse")
                .label(Span::new(file, pos, (pos + 1).min(text.len())), "here")
                .help("flatten the nesting: move inner parts into a `block`")
        }
        ErrorVariant::CustomError { message } => Diagnostic::error(UNEXPECTED, message)
            .label(Span::new(file, pos, (pos + 1).min(text.len())), ""),
    }
}

/// What the user should read for a rule pest expected. Groups share one word: every way to
/// begin an expression is "an expression".
fn expected_word(rule: Rule) -> &'static str {
    use Rule::*;
    match rule {
        use_decl | kw_use => "`use`",
        block_def | kw_block => "`block`",
        model_def | kw_model => "`model`",
        kw_input => "`input`",
        EOI => "end of file",
        // pest reports the whole-file rule when none of an item's first tokens matched.
        file => "`block`, `model` or `use`",
        stmt | call | repeat_stmt | if_stmt | concat_stmt | residual_stmt | gate_stmt
        | output_stmt | kw_repeat | kw_concat | kw_residual | kw_gate | kw_output => "a layer",
        branch => "a branch (a layer or `{ … }`)",
        body => "`{`",
        expr | float | int | kw_true | kw_false | kw_same | in_query | paren | fn_call | op_not
        | op_neg | repeat_range => "an expression",
        list | lbracket => "a list `[…]`",
        index | cmp_op | add_op | mul_op | op_and | op_or => "an operator",
        ident | param => "a name",
        arg => "an argument",
        alias | kw_as => "`as`",
        shape_assert | colon => "`:`",
        call_args | lparen => "`(`",
        else_if | else_clause | kw_else => "`else`",
        shortcut | kw_shortcut => "`shortcut`",
        kw_if => "`if`",
        kw_in => "`in`",
        lbrace => "`{`",
        rbrace => "`}`",
        rparen => "`)`",
        rbracket => "`]`",
        comma => "`,`",
        dotdot => "`..`",
        assign => "`=`",
        string => "a quoted path",
        // Rules that pest does not report on their own (silent or whole-file ones).
        _ => "something else",
    }
}

/// The words for pest's expected rules, deduplicated, with the groups that subsume others
/// applied: where a layer may start, a name is a layer; where an expression may start, a
/// name, `(` or `[` begins an expression; after an operand, `[` is indexing, an operator.
fn expected_words(positives: &[Rule]) -> Vec<&'static str> {
    let mut words: Vec<&'static str> = Vec::new();
    for &r in positives {
        let w = expected_word(r);
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let has = |words: &[&str], w: &str| words.contains(&w);
    // A rule with no words of its own adds nothing beside those that have some.
    if words.len() > 1 {
        words.retain(|w| *w != "something else");
    }
    if has(&words, "a layer") {
        words.retain(|w| *w != "a name" && *w != "`if`");
    }
    if has(&words, "an expression") {
        words.retain(|w| !matches!(*w, "a name" | "`(`" | "a list `[…]`"));
    }
    if has(&words, "an operator") {
        words.retain(|w| *w != "a list `[…]`");
    }
    // A stable, readable order: what may come first, punctuation after, end of file last.
    let rank = |w: &str| match w {
        "a layer" | "a branch (a layer or `{ … }`)" => 0,
        "an expression" | "a name" | "an argument" | "a list `[…]`" | "a quoted path" => 1,
        "an operator" => 2,
        "`}`" | "`)`" | "`]`" => 4,
        "end of file" => 5,
        _ => 3,
    };
    words.sort_by_key(|w| rank(w));
    words
}

fn join_words(words: &[&str]) -> String {
    match words {
        [] => "something else".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The token at `pos`, as a byte range and as words (`` `conv` ``, "end of file").
fn found_token(text: &str, pos: usize) -> (usize, usize, String) {
    let rest = &text[pos.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return (text.len(), text.len(), "end of file".to_string());
    };
    let len = if c == '"' {
        // The whole string literal, up to its closing quote or the end of the line.
        rest[1..].find(['"', '\n']).map_or(rest.len(), |i| {
            if rest[1 + i..].starts_with('"') {
                i + 2
            } else {
                i + 1
            }
        })
    } else if c.is_ascii_alphanumeric() || c == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())
    } else if ["==", "!=", "<=", ">=", "..", "//"]
        .iter()
        .any(|op| rest.starts_with(op))
    {
        2
    } else {
        c.len_utf8()
    };
    let tok = &rest[..len];
    let words = if tok.len() > 40 {
        let cut = (0..=40)
            .rev()
            .find(|&i| tok.is_char_boundary(i))
            .unwrap_or(0);
        format!("`{}…`", &tok[..cut])
    } else if c == '"' {
        "a string".to_string()
    } else if c == '\n' || c == '\r' {
        "a line break".to_string()
    } else if c.is_control() {
        // Never echoed: an escape sequence would reach the terminal.
        format!("a control character (U+{:04X})", c as u32)
    } else if !c.is_ascii() {
        // Invisible or look-alike characters are named, not echoed.
        match lookalike(c) {
            Some((name, _)) => format!("U+{:04X} {name}", c as u32),
            None => format!("`{c}` (U+{:04X})", c as u32),
        }
    } else {
        format!("`{tok}`")
    };
    (pos, pos + len, words)
}

/// The name of a character that pastes in from documents and looks like ASCII (or like
/// nothing), and the ASCII to write instead.
fn lookalike(c: char) -> Option<(&'static str, &'static str)> {
    Some(match c {
        '\u{a0}' => ("NO-BREAK SPACE", "a plain space"),
        '\u{2009}' => ("THIN SPACE", "a plain space"),
        '\u{202f}' => ("NARROW NO-BREAK SPACE", "a plain space"),
        '\u{3000}' => ("IDEOGRAPHIC SPACE", "a plain space"),
        '\u{200b}' => ("ZERO WIDTH SPACE", "nothing (delete it)"),
        '\u{200c}' => ("ZERO WIDTH NON-JOINER", "nothing (delete it)"),
        '\u{200d}' => ("ZERO WIDTH JOINER", "nothing (delete it)"),
        '\u{feff}' => ("ZERO WIDTH NO-BREAK SPACE", "nothing (delete it)"),
        '\u{ad}' => ("SOFT HYPHEN", "nothing (delete it)"),
        '\u{2212}' => ("MINUS SIGN", "`-`"),
        '\u{2013}' => ("EN DASH", "`-`"),
        '\u{2014}' => ("EM DASH", "`-`"),
        '\u{d7}' => ("MULTIPLICATION SIGN", "`*`"),
        '\u{f7}' => ("DIVISION SIGN", "`/`"),
        '\u{201c}' | '\u{201d}' => ("curly double quote", "`\"`"),
        '\u{2018}' | '\u{2019}' => ("curly single quote", "`\"` (strings take double quotes)"),
        '\u{ff08}' => ("FULLWIDTH LEFT PARENTHESIS", "`(`"),
        '\u{ff09}' => ("FULLWIDTH RIGHT PARENTHESIS", "`)`"),
        '\u{ff0c}' => ("FULLWIDTH COMMA", "`,`"),
        // Editors may draw a line break; cnnc reads none (a comment ends there).
        '\u{2028}' => ("LINE SEPARATOR", "a plain line break"),
        '\u{2029}' => ("PARAGRAPH SEPARATOR", "a plain line break"),
        '\u{85}' => ("NEXT LINE", "a plain line break"),
        _ => return None,
    })
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "use"
            | "block"
            | "model"
            | "repeat"
            | "in"
            | "if"
            | "else"
            | "concat"
            | "residual"
            | "shortcut"
            | "gate"
            | "as"
            | "and"
            | "or"
            | "not"
            | "true"
            | "false"
            | "same"
    )
}

fn unexpected(positives: &[Rule], text: &str, pos: usize, file: FileId) -> Diagnostic {
    let (start, end, found) = found_token(text, pos);
    let tok = &text[start..end];
    // A string in single quotes, Python's habit (`pad='same'`): its text up to the closing
    // quote on the line (or, when not closed, to the line's end), comments left out,
    // labelled as a whole.
    let single_quoted = (tok == "'").then(|| {
        let rest = &text[end..];
        let line = code_of(&rest[..rest.find('\n').unwrap_or(rest.len())]);
        match line.find('\'') {
            Some(close) => (&line[..close], end + close + 1),
            None => (line.trim_end(), end + line.trim_end().len()),
        }
    });
    let (quoted, end, found) = match single_quoted {
        Some((inner, close)) => (Some(inner), close, "a string in single quotes".to_string()),
        None => (
            tok.starts_with('"').then(|| tok.trim_matches('"')),
            end,
            found,
        ),
    };
    let words = expected_words(positives);
    let message = if words.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_words(&words))
    };
    // The token's span; empty only at the end of the file.
    let label = if single_quoted.is_some() && words.contains(&"a quoted path") {
        "in single quotes".to_string()
    } else if quoted.is_some() {
        "a string is not a value here".to_string()
    } else if found.starts_with("a ") {
        // `a line break`, `a control character (U+0000)`: not "unexpected a …".
        format!("{found} is not expected here")
    } else {
        format!("unexpected {found}")
    };
    let mut d = Diagnostic::error(UNEXPECTED, message).label(Span::new(file, start, end), label);
    // A NUL or an escape: binary bytes pasted or padded in, not a mistake of the language
    // (NEXT LINE, a control character too, is a line break pasted in: its help comes below).
    if found.starts_with("a control character") && tok.chars().next().and_then(lookalike).is_none()
    {
        return d.help(
            "delete it: a .cnn file is plain text, and control characters (an escape \
             sequence pasted from a terminal, a NUL from a binary file) have no meaning in it",
        );
    }
    if single_quoted.is_some() && words.contains(&"a quoted path") {
        return d.help("a path is written in double quotes: `use \"file.cnn\"`");
    }
    // `use lib/blocks.cnn`: the path as written, quoted.
    // (A path in other quotes, curly ones say, is told below what they are.)
    if words.contains(&"a quoted path") {
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let path = text[start..line_end].split('#').next().unwrap_or("").trim();
        let plain = !path.is_empty()
            && path.len() <= 200
            && path
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '`'));
        if plain {
            return d.help(format!(
                "a path is written in double quotes: `use \"{path}\"`"
            ));
        }
    }
    if let Some(inner) = quoted {
        // `activation='relu'`: no such argument, quoted or not.
        let after_activation = text[..start]
            .trim_end()
            .strip_suffix('=')
            .is_some_and(|b| b.trim_end().ends_with("activation"));
        return d.help(if after_activation {
            format!(
                "cnnc has no activation argument: an activation is a layer of its own, written \
                 after this one without quotes (Keras's `activation='{inner}'`): delete the \
                 argument and write the activation next"
            )
        } else if inner.eq_ignore_ascii_case("same") {
            "write `same` without quotes, as in `pad=same`: it keeps a conv's size at stride 1; \
             with a stride, and on a pooling, the padding is a number (`pad=1` for a 3×3 \
             window)"
                .to_string()
        } else if inner.eq_ignore_ascii_case("valid") {
            "Keras's `padding='valid'` is no padding: `pad=0`, the default, so leave `pad` out"
                .to_string()
        } else if matches!(inner, "bilinear" | "nearest") {
            // PyTorch's Upsample(mode='bilinear').
            "an upsampling's mode is a switch: PyTorch's `mode='bilinear'` is \
             `upsample(scale, bilinear=true)`, and `mode='nearest'` is the default, \
             `upsample(scale)`"
                .to_string()
        } else if matches!(
            inner,
            "bicubic" | "area" | "trilinear" | "linear" | "nearest-exact"
        ) {
            format!(
                "cnnc's `upsample` repeats pixels (PyTorch's mode 'nearest') or interpolates \
                 them bilinearly (`bilinear=true`); it has no mode '{inner}'"
            )
        } else {
            format!(
                "strings only name files, in `use \"file.cnn\"`; values are numbers, lists, \
                 names, `true`/`false` and `same`{}",
                if inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !inner.is_empty()
                {
                    format!("; without quotes: `{inner}`")
                } else {
                    String::new()
                }
            )
        });
    }
    let mut chars = tok.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        // `pad=‘same’` pasted from a document: a name in curly quotes is the name alone.
        let quoted_name = matches!(c, '\u{2018}' | '\u{2019}' | '\u{201c}' | '\u{201d}')
            .then(|| {
                let after = &text[start + c.len_utf8()..];
                let end =
                    after.find(['\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\'', '"'])?;
                let inner = &after[..end];
                is_name(inner).then_some(inner)
            })
            .flatten()
            .filter(|_| !text[..start].trim_end().ends_with("use"));
        if let (Some(inner), Some((name, _))) = (quoted_name, lookalike(c)) {
            return d.help(format!(
                "this is U+{:04X} {name}, which often comes in when code is pasted from a \
                 document; values are not quoted in cnnc: write `{inner}`",
                c as u32
            ));
        }
        if let Some((name, instead)) = lookalike(c) {
            return d.help(format!(
                "this is U+{:04X} {name}, which often comes in when code is pasted from a \
                 document; write {instead} instead",
                c as u32
            ));
        }
        if !c.is_ascii() {
            return d
                .help("cnnc source is ASCII outside comments: names are letters, digits and `_`");
        }
    }
    let expects = |w: &str| words.contains(&w);
    let closer = |b: u8| match b {
        b'{' => '}',
        b'(' => ')',
        _ => ']',
    };
    // Python and PyTorch habits met at the token.
    let unclosed = innermost_unclosed(text, pos);
    if let Some(help) = python_habit(text, start, tok, &expects, unclosed) {
        // Python's `//`: the mistake is where the comment starts, lines before the token.
        if let (true, Some((open, _))) = (help.starts_with("`//` starts a comment"), unclosed) {
            let line_end = text[open..].find('\n').map_or(text.len(), |i| open + i);
            if let Some(at) = text[open..line_end].find("//") {
                let at = open + at;
                d = d.label(
                    Span::new(file, at, at + 2),
                    "this `//` starts a comment, which hides the rest of the line",
                );
            }
        }
        return d.help(help);
    }
    if tok == "=" && expects("an operator") {
        return d.help(
            "to compare two values write `==`; a single `=` only names an argument, as in `pad=2`",
        );
    }
    {
        let before_tok = text[..start].trim_end();
        // `repeat i 0..3 { … }`: the `in` left out.
        if expects("`in`") && (tok.starts_with(|c: char| c.is_ascii_digit()) || tok == "[") {
            let words: Vec<&str> = before_tok.rsplit(char::is_whitespace).take(2).collect();
            if let [var, "repeat"] = words[..] {
                return d.help(format!("`in` is missing: `repeat {var} in 0..3 {{ … }}`"));
            }
        }
        // `repeat in [1, 2] { … }`: the variable left out.
        if tok == "in" && before_tok.ends_with("repeat") {
            return d.help(
                "a repeat over a list or range names its variable: `repeat w in [16, 32] { … }`, \
                 or `repeat 3 { … }` without one",
            );
        }
    }
    match tok {
        // `conv(8, 1) | relu`: a pipe between layers.
        "|" if expects("a layer") => {
            return d.help("layers follow each other without `|`: `conv(8, 1) relu`");
        }
        "&" | "|" | "!" => {
            let word = match tok {
                "&" => "and",
                "|" => "or",
                _ => "not",
            };
            return d.help(format!("logical operators are words: write `{word}`"));
        }
        _ if expects("`input`") => {
            // `model M(img: [3, 32, 32], meta: [10])`: Keras's multi-input model.
            let header = text[start..].lines().next().unwrap_or_default();
            let several = header
                .split_once(')')
                .map_or(header, |(h, _)| h)
                .matches(':')
                .count()
                > 1;
            return d.help(if several {
                "a model takes one input, always named `input` (the exported graph's input): \
                 `model M(input: [C, H, W]) { … }`; models of several inputs are not supported"
            } else {
                "a model's input is always named `input` (the exported graph's input): \
                 `model M(input: [C, H, W]) { … }`"
            });
        }
        // `conv(16, 3) -> relu`: a diagram's arrow.
        "-" if text[end..].starts_with('>') && expects("a layer") => {
            return d.help(
                "layers follow each other without arrows: `conv(16, 3) relu flatten`, on one \
                 line or on several",
            );
        }
        "/" if text[end..].starts_with('*') => {
            return d.help(
                "there are no block comments: a comment runs from `#` or `//` to the end of \
                 its line",
            );
        }
        ")" | "]"
            if expects("a layer")
                && innermost_unclosed(text, pos).is_none_or(|(_, b)| b == b'{') =>
        {
            return d.help(format!("this `{tok}` closes nothing: delete it"));
        }
        ";" => {
            return d.help(
                "statements need no separator: delete the `;` (layers follow each other on a \
                 line or on new lines)",
            )
        }
        // `conv(8, 3,, pad=1)`, `conv(, 8)`: a comma with nothing before it.
        "," if text[..start].trim_end().ends_with([',', '(', '[']) => {
            let doubled = text[..start].trim_end().ends_with(',');
            return d.help(if doubled {
                "two commas with nothing between them: delete one (one `,` separates two \
                 arguments or list items)"
            } else {
                "nothing comes before this `,`: delete it, or write the missing first item"
            });
        }
        "," if expects("a layer") => {
            return d.help(
                "statements need no separator: delete the `,` (layers follow each other on a \
                 line or on new lines; `,` separates arguments and list items)",
            )
        }
        // `concat { {}, conv(8, 1) }`: a Python list's comma between branches.
        "," if expects("a branch (a layer or `{ … }`)") => {
            return d.help(
                "branches need no separator: delete the `,` (`concat { {} conv(8, 1) }`: each \
                 braced body or single statement is a branch)",
            )
        }
        "." => {
            // The start of the dotted chain: `tf.nn.relu` fails at its second `.` (`tf.nn`
            // reads as a tensor's size).
            let mut chain = start;
            loop {
                let before =
                    text[..chain].trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
                chain = before.len();
                if !before.ends_with('.') {
                    break;
                }
                chain -= 1;
            }
            let module = text[chain..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            if module == "self" {
                let attribute = text[chain + 5..]
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .filter(|a| !a.is_empty())
                    .unwrap_or("conv1");
                return d.help(format!(
                    "PyTorch's `self.{attribute}` is a layer made in `__init__`: in cnnc the \
                     layer itself is written where it applies (`conv(16, 3)` for \
                     `nn.Conv2d(3, 16, 3)`), with no `self.`"
                ));
            }
            if let Some(prefix) = module_prefix(&text[chain..]) {
                // `torch.cat([a, b], dim=1)`, `torch.add(a, b)`: a join, whose cnnc form is
                // no layer to drop the prefix of.
                let function = text[chain + prefix.len()..]
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or("");
                let joined = match function {
                    "cat" | "concat" | "concatenate" | "stack" => Some(
                        "tensors are joined along the channels by `concat { a b }` (a branch \
                         that is a tensor's name gives that tensor, `{}` the current one): \
                         `torch.cat([a, b], dim=1)` is `concat { a b }`",
                    ),
                    "add" => Some(
                        "a sum of two tensors is a residual: `a residual {} shortcut { b }` (`a` \
                         the current tensor, then `b` added to it)",
                    ),
                    _ => None,
                };
                if let Some(help) = joined {
                    return d.help(help);
                }
                return d.help(
                    if matches!(module, "nn" | "torch" | "F") && !prefix.contains("keras") {
                        format!(
                            "cnnc's layers are plain names, not PyTorch modules: drop `{prefix}` \
                         (and the `()` of a layer without arguments), e.g. `relu` for \
                         `nn.ReLU()`"
                        )
                    } else {
                        format!(
                            "cnnc's layers are plain names, not Keras or TensorFlow modules: drop \
                         `{prefix}` (cnnc then names its own layer for a Keras one: \
                         `Dense(10)` is `linear(10)`, `Flatten()` is `flatten`)"
                        )
                    },
                );
            }
        }
        // `repeat i in 1..=3`: Rust's inclusive range.
        "=" if text[..start].ends_with("..") => {
            return d.help(
                "a range is written `a..b` and runs from a up to b - 1 (there is no `..=`): \
                 write `1..4` for 1, 2 and 3",
            );
        }
        ":" if expects("`=`") => {
            return d.help("arguments are named with `=`, as in `pad=2`");
        }
        _ => {}
    }
    // `repeat i in range(3) relu`: `range(3)` parses as a function call, and neither the
    // `..` of a range nor the `{` of the body follows it; the help shows both. (Braced, the
    // loop parses, and elaboration names `range` an unknown function.)
    if expects("`..`") {
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        if text[line_start..start].contains("range(") {
            return d
                .help("a range is written `a..b` (from a up to b - 1): `repeat i in 0..n { … }`");
        }
    }
    // `repeat c, s in cfg { … }`: Python's tuple unpacking.
    if tok == "," && expects("`in`") {
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let before = text[line_start..start].trim_end();
        let var = &before[before
            .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
            .len()..];
        if !var.is_empty() && before.contains("repeat") {
            return d.help(format!(
                "a repeat has one loop variable: take each item whole and index it, as in \
                 `repeat {var} in cfg {{ conv({var}[0], 3, stride={var}[1]) }}`"
            ));
        }
    }
    // `if 1 < k < 9`: Python chains comparisons, cnnc does not (before the braced-body
    // help, which the `{` an `if` also expects would give).
    if matches!(tok, "==" | "!=" | "<" | "<=" | ">" | ">=") && expects("an operator") {
        return d.help("comparisons do not chain: write `a < b and b < c`");
    }
    // `repeat 3 conv(8, 3)`, `if in.c > 8 relu`: the body must be braced. The statement is
    // the last of these keywords on the line before the token.
    if expects("`{`") {
        // The statement's head is near: at most 1,000 bytes back (a generated one-line file
        // must not make each error scan megabytes).
        let mut line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        line_start = line_start.max(start.saturating_sub(1000));
        while !text.is_char_boundary(line_start) {
            line_start += 1;
        }
        let before = &text[line_start..start];
        let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let last = ["repeat", "if", "concat", "residual", "shortcut", "gate"]
            .iter()
            .filter_map(|k| {
                before
                    .match_indices(k)
                    .filter(|(i, _)| {
                        !is_word(before[..*i].chars().next_back())
                            && !is_word(before[i + k.len()..].chars().next())
                    })
                    .map(|(i, _)| (i, *k))
                    .last()
            })
            .max();
        if let Some((mut at, mut keyword)) = last {
            // `shortcut if cond` and `residual if cond` are one statement: name it.
            if keyword == "if" {
                let ahead = before[..at].trim_end();
                if let Some(owner) = ["shortcut", "residual"]
                    .into_iter()
                    .find(|k| ahead.ends_with(k))
                {
                    at = ahead.len() - owner.len();
                    keyword = owner;
                }
            }
            let head = before[at..].trim_end();
            if keyword == "concat" && tok == "(" {
                // `concat(skip)`, `concat([x, skip])`, `concat(axis=-1)`: a function call.
                return d.help(
                    "`concat` takes no arguments: its braced branches each take the current \
                     tensor, and their outputs are joined along the channels (the only axis): \
                     `torch.cat([x, skip], 1)` or Keras's `Concatenate()([x, skip])` is \
                     `concat { {} skip }`, where the empty branch `{}` is the current tensor",
                );
            }
            // `repeat i of 0..3`, `repeat i from …`: the loop's word is `in`.
            if let Some(var) = head.strip_prefix("repeat ").map(str::trim) {
                let loop_word = [
                    "of", "from", "over", "through", "to", "upto", "within", "In",
                ];
                if is_name(var) && loop_word.contains(&tok) {
                    return d.help(format!(
                        "a repeat over values is `repeat {var} in 0..3 {{ … }}`: `in`, then a \
                         range `a..b` (a up to b - 1) or a list `[16, 32, 64]`"
                    ));
                }
            }
            return d.help(format!(
                "the body of `{keyword}` is braced, even for one statement: `{head} {{ … }}`"
            ));
        }
    }
    // `in` is the incoming tensor only through its fields; alone it is the keyword of
    // `repeat i in a..b`.
    if tok == "in" && !text[end..].starts_with('.') && !expects("a name") {
        // `in as x`: the block's input named for later, as PyTorch's `identity = x`.
        if text[end..].trim_start().starts_with("as ") {
            return d.help(format!("`in` cannot be named: {UNNAMED_INPUT}"));
        }
        return d.help(
            "`in` alone is not a value: the incoming tensor's sizes are `in.c`, `in.h`, `in.w` \
             (an image) and `in.f` (features)",
        );
    }
    // `as skips[i]`, `concat { {} skips[2 - i] }`: PyTorch's list of skips.
    let text_before = text[..start].trim_end();
    let word_before = &text_before[text_before
        .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
        .len()..];
    if tok == "["
        && !word_before.is_empty()
        && !expects("an operator")
        && (text_before
            .trim_end_matches(word_before)
            .trim_end()
            .ends_with(" as")
            || expects("a branch (a layer or `{ … }`)"))
    {
        return d.help(format!(
            "names cannot be indexed: a tensor takes a plain name (`as {word_before}1`, `as \
             {word_before}2`), so a loop that collects skips is written out level by level, \
             or each skip is passed to a block's parameter (`up(64, {word_before}2)`)"
        ));
    }
    // `as x` as a statement of its own: the tensor a block starts from, named.
    let starts_statement = {
        let before = text[..start].trim_end_matches([' ', '\t']);
        before.is_empty() || before.ends_with(['\n', '{', '}'])
    };
    if tok == "as" && expects("a layer") && starts_statement {
        return d.help(format!(
            "`as NAME` follows the layers that make the tensor it names; {UNNAMED_INPUT}"
        ));
    }
    if is_keyword(tok) && expects("a name") {
        return d.help(format!("`{tok}` is a keyword and cannot be used as a name"));
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    // `model M(input: [3, 32, 32], classes=10)`: a model takes its input only.
    if expects("`)`")
        && text[line_start..start].trim_start().starts_with("model ")
        && text[..start].trim_end().ends_with(',')
    {
        return d.help(
            "a model takes only its input shape; parameters belong to blocks: write the \
             layers as `block body(classes=10) { … }` and call it from the model, `body(10)`",
        );
    }
    let before_tok = text[..start].trim_end();
    // `Model M(…)`, `modle M(…)`: a top-level keyword misspelled, as a definition is written
    // (a name and `(` follow, or a path for `use`).
    let after = text[end..].trim_start();
    let defines = after.split_once('(').is_some_and(|(name, _)| {
        let name = name.trim_end();
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) || after.starts_with('"');
    if (expects("`model`") || expects("`block`, `model` or `use`"))
        && defines
        && tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        if let Some(k) = crate::diag::did_you_mean(tok, ["use", "block", "model"]) {
            return d.help(format!("did you mean `{k}`? (keywords are lowercase)"));
        }
    }
    // `conv(8, 3) }` and then more layers: the `}` closed the model (or block) early.
    if expects("`model`") && !matches!(tok, "use" | "block" | "model") && before_tok.ends_with('}')
    {
        let brace = before_tok.len() - 1;
        return d
            .label(
                Span::new(file, brace, brace + 1),
                "this `}` closes the model or block",
            )
            .help(
                "delete this `}` if the statements after it belong inside, or move them in \
                 (after the top level come only `use`, `block` and `model`)",
            );
    }
    // `conv(8, 1) as x as y`: one name per tensor.
    if tok == "as" && expects("a layer") {
        let words: Vec<&str> = before_tok.rsplit(char::is_whitespace).take(2).collect();
        if words.len() == 2 && words[1] == "as" {
            return d.help(format!(
                "a tensor takes one name: keep one `as …` (here `as {}`), and read it by that \
                 name",
                words[0]
            ));
        }
    }
    // `block stem {`, `model M {`: the parentheses left out.
    if tok == "{" && expects("`(`") {
        let words: Vec<&str> = before_tok.rsplit(char::is_whitespace).take(2).collect();
        match words[..] {
            [name, "block"] => {
                return d.help(format!(
                    "a block's parameters follow its name in parentheses, even none: `block \
                     {name}() {{ … }}`"
                ))
            }
            [name, "model"] => {
                return d.help(format!(
                    "a model's input follows its name: `model {name}(input: [3, 32, 32]) {{ … }}`"
                ))
            }
            _ => {}
        }
    }
    // `repeat i in 0.. { … }`: a range without its end.
    if tok == "{" && expects("an expression") && before_tok.ends_with("..") {
        return d.help("a range has both ends: `0..n` runs from 0 up to n - 1");
    }
    // `1_000`, `0x10`: Python's number forms cnnc does not read.
    let after_digit =
        before_tok.len() == start && text[..start].ends_with(|c: char| c.is_ascii_digit());
    if after_digit && tok.starts_with('_') {
        let digits = &text[..start][text[..start]
            .trim_end_matches(|c: char| c.is_ascii_digit())
            .len()..];
        return d.help(format!(
            "numbers have no `_` separators in cnnc: write `{digits}{}`",
            tok.replace('_', "")
        ));
    }
    let lone_zero = text[..start]
        .strip_suffix('0')
        .is_some_and(|b| !b.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.'));
    if lone_zero && tok.starts_with(['x', 'X', 'o', 'O', 'b', 'B']) {
        let radix = match tok.as_bytes()[0].to_ascii_lowercase() {
            b'x' => 16,
            b'o' => 8,
            _ => 2,
        };
        let digits = tok[1..].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        return d.help(match i64::from_str_radix(digits, radix) {
            Ok(v) => format!("numbers are written in decimal in cnnc: write `{v}` for `0{tok}`"),
            Err(_) => "numbers are written in decimal in cnnc".to_string(),
        });
    }
    // `conv(+3, 1)`: no unary plus.
    if tok == "+" && (expects("an argument") || expects("an expression")) {
        return d.help("cnnc has no unary `+`: write the value without it");
    }
    // `relu else { … }`: an else with no if before it.
    if tok == "else" {
        return d.help("`else` follows the `}` of an `if`'s body: `if cond { … } else { … }`");
    }
    // `model M(input: 3, 32, 32)`, `input: (3, 32, 32)`.
    let after_input = before_tok
        .strip_suffix("input:")
        .is_some_and(|b| !b.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
    if expects("a list `[…]`") && after_input {
        return d.help("the input shape is a list: `input: [3, 32, 32]`");
    }
    // `conv(8, 1) : 8, 8, 8`: a shape assertion is a list (not the model's `input: …`).
    if expects("a list `[…]`") && before_tok.ends_with(':') && !after_input {
        return d.help("a shape assertion is a list of sizes: `: [8, 30, 30]`");
    }
    let unclosed =
        innermost_unclosed(text, pos).filter(|&(_, b)| expects(&format!("`{}`", closer(b))));
    if let Some((open, b)) = unclosed {
        let opener = Span::new(file, open, open + 1);
        let close = closer(b);
        if start == text.len() {
            // The braces pair up by count, so the one left over is the outermost; the
            // indentation tells which was really left open (a `}` that lines up with an
            // outer `{` while an inner, more indented one is open).
            match (b, misindented_open_brace(text)) {
                (b'{', Some(inner)) if inner != open => {
                    d = d
                        .label(
                            Span::new(file, inner, inner + 1),
                            "this `{` is probably the one not closed",
                        )
                        .label(opener, "left open at the end, by count")
                        .help(
                            "add a `}` after the body of the `{` the indentation points at: \
                             the `}` that lines up with an outer statement closes this one \
                             instead",
                        );
                }
                _ => {
                    d = d
                        .label(opener, format!("this `{}` is never closed", b as char))
                        .help(format!("add a `{close}` to close it"));
                }
            }
        } else if b == b'{' && matches!(tok, "model" | "block" | "use") && start == line_start {
            // The next definition begins inside the last one's body (at the start of its
            // line, as a top-level one is written): a `}` is missing, the definition's own
            // or, where a `}` lines up with an outer statement while a more indented `{` is
            // open, that inner one's (a `}` before this `model` would then close the
            // definition after the layers meant to follow the inner body).
            match misindented_open_brace(&text[..start]) {
                Some(inner) if inner != open => {
                    d = d
                        .label(
                            Span::new(file, inner, inner + 1),
                            "this `{` is probably the one not closed",
                        )
                        .label(opener, "left open, by count")
                        .help(format!(
                            "add a `}}` after the body of the `{{` the indentation points at: \
                             the `}}` that lines up with an outer statement closes this one \
                             instead (a `}}` before this `{tok}` would put the lines after \
                             that body inside it)"
                        ));
                }
                _ => {
                    d = d
                        .label(opener, "this `{` is not closed")
                        .help(format!("add a `}}` before this `{tok}` to close it"));
                }
            }
        } else if b == b'{'
            && tok == "model"
            && text[start + tok.len()..].starts_with('.')
            && !text[start + tok.len()..].starts_with(".add(")
        {
            // `model.summary()`, `model.compile(…)`, `model.fit(…)`: Keras's model object.
            d = d.help(
                "cnnc has no model object: `model.summary()` is `cnnc summary FILE`, and \
                 `compile`/`fit` are `cnnc train FILE` (its `--optimizer`, `--lr`, `--epochs`); \
                 a model's body lists only its layers",
            );
        } else if b == b'{' && tok == "model" && text[start + tok.len()..].starts_with(".add(") {
            // Keras's `model.add(Dense(10))` in a model's body.
            d = d.help(
                "cnnc has no `model.add`: a model's body lists its layers in order, so write the \
                 layer alone, `Dense(10)` in cnnc's words (`linear(10)`), on a line of its own",
            );
        } else if b == b'{' && matches!(tok, "model" | "block" | "use") {
            // Indented: written inside on purpose, as Python nests a function.
            d = d.help(format!(
                "`{tok}` is written at the top level of the file, not inside a model or block: \
                 move it out, above the model"
            ));
        } else if b != b'{' && closes_on_line_of(text, open, close as u8, start) {
            // `conv(4 3)`: the `(` is closed; an item lacks its `,`.
            if expects("`,`") {
                d = d.help("separate the items with `,`");
            }
        } else if b != b'{' {
            let help = if expects("`,`") {
                format!("close it with `{close}`, or separate the items with `,`")
            } else {
                format!("close it with `{close}`")
            };
            d = d
                .label(opener, format!("this `{}` is not closed", b as char))
                .help(help);
        }
    }
    d
}

/// Why the tensor a block starts from cannot be named (PyTorch's `identity = x`), and what
/// does the same.
pub(crate) const UNNAMED_INPUT: &str =
    "the tensor a block starts from has no name to give it; `residual { … }` adds it to what \
     its body makes, `concat { {} … }` joins it as it is, and a block that needs it further on \
     takes it as a parameter, `block b(x, c) { … x … }`, called as `b(t, 16)` after the layers \
     `… as t` (in a model, it is `input`)";

/// The modules whose layers and functions a line of PyTorch, Keras or TensorFlow names with a
/// prefix (`nn.ReLU()`, `layers.Conv2D(…)`, `tf.keras.layers.Dense(…)`, `tf.nn.relu`).
const MODULES: [&str; 8] = [
    "nn",
    "torch",
    "F",
    "layers",
    "keras",
    "tf",
    "K",
    "functional",
];

/// The module prefix `s` starts with, dots included, up to the name after it: `tf.keras.layers.`
/// of `tf.keras.layers.Dense(10)`, `nn.` of `nn.ReLU()`. None unless its first word is one of
/// [`MODULES`].
fn module_prefix(s: &str) -> Option<&str> {
    let mut end = 0;
    loop {
        let rest = &s[end..];
        let word = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if word == 0 || !rest[word..].starts_with('.') {
            break;
        }
        if end == 0 && !MODULES.contains(&&rest[..word]) {
            return None;
        }
        end += word + 1;
    }
    (end > 0).then(|| &s[..end])
}

/// The help for Keras's functional API or a PyTorch `forward` line, `x = Conv2D(32, 3)(x)`,
/// `x = layers.add([x, s])`, `y = torch.cat([a, b], 1)`: `rhs` is the right side of `named = …`.
fn functional_line_help(rhs: &str, named: &str) -> Option<String> {
    let rhs = &rhs[module_prefix(rhs).map_or(0, str::len)..];
    let name_len = rhs
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rhs.len());
    let (name, rest) = rhs.split_at(name_len);
    // The parenthesized groups after the name: its arguments, then (Keras's functional API)
    // the tensors it is applied to.
    let mut groups = Vec::new();
    let mut rest = rest.trim_start();
    while rest.starts_with('(') {
        let mut depth = 0usize;
        let close = rest.char_indices().find_map(|(i, c)| {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
            (depth == 0).then_some(i)
        })?;
        groups.push(&rest[1..close]);
        rest = rest[close + 1..].trim_start();
    }
    if name.is_empty() || groups.is_empty() {
        return None;
    }
    // The names of the tensors a group lists: `[x, s]`, `x, s`, `[a, b], 1` (a dim after).
    let tensors = |g: &str| -> Vec<String> {
        let g = g.trim();
        let listed = match g.strip_prefix('[') {
            Some(inner) => inner.split(']').next().unwrap_or(""),
            None => g,
        };
        listed
            .split(',')
            .map(str::trim)
            .filter(|t| is_name(t))
            .map(str::to_string)
            .collect()
    };
    let inputs: Vec<String> = groups
        .iter()
        .rev()
        .map(|g| tensors(g))
        .find(|t| t.len() >= 2)?;
    let lower = name.to_ascii_lowercase();
    if matches!(lower.as_str(), "add" | "sum") && inputs.len() == 2 {
        return Some(tensor_sum_help(&inputs[0], &inputs[1], Some(named)));
    }
    if matches!(lower.as_str(), "concatenate" | "cat" | "concat") {
        return Some(format!(
            "named tensors are joined along the channels by `concat {{ {} }} as {named}`: a \
             branch that is a tensor's name gives that tensor (and `{{}}` the current one)",
            inputs.join(" ")
        ));
    }
    None
}

/// `x = Conv2D(32, 3)(x)`: a layer applied to a named tensor (Keras's functional API; PyTorch's
/// `self.conv1(x)` in `forward`): the help says where the layer goes instead.
fn applied_layer_help(rhs: &str, named: &str) -> Option<String> {
    let rhs = rhs.trim_end();
    let applied = rhs.strip_suffix(')')?;
    let open = applied.rfind('(')?;
    let input = applied[open + 1..].trim();
    // `Conv2D(32, 3)(x)`, or one group after a module: `self.conv1(x)`, `F.relu(x)`.
    let prefixed = rhs.starts_with("self.") || module_prefix(rhs).is_some();
    if !is_name(input) || !(prefixed || applied[..open].trim_end().ends_with(')')) {
        return None;
    }
    Some(format!(
        "cnnc has no variables, and a layer is not applied to a tensor by name: each layer \
         applies to the tensor the one before it made, so write the layer alone, after the \
         layers that made `{input}` (cnnc names its own layer for a Keras or PyTorch one), \
         with no `{named} =`; `as {named}` after it only where a later layer reads it by name \
         (a skip), and a tensor named earlier is read back by its name alone, `{input}`"
    ))
}

/// The right side of `name = …` at the `=` at `start`, when it reads as a number worked
/// out (`c / 4`, `in.c * 2`, `[1, 2]`, `max(8, c)`) rather than layers (`conv(16, 3)`,
/// `relu`, a tensor's name).
fn assigned_value(text: &str, start: usize) -> Option<&str> {
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let after = text[start + 1..line_end].split('#').next()?.trim();
    let rest = after.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    let head = &after[..after.len() - rest.len()];
    let rest = rest.trim_start();
    let function = matches!(head, "len" | "min" | "max");
    let value = match head.chars().next() {
        None => after.starts_with(['[', '(', '-']),
        Some(c) if c.is_ascii_digit() => true,
        Some(_) => {
            function
                || matches!(head, "True" | "False" | "true" | "false" | "in")
                || rest.starts_with(['+', '-', '*', '/', '%', '.', '['])
        }
    };
    let after = leading_expression(after);
    (value && !after.is_empty() && after.len() <= 60).then_some(after)
}

/// The expression at the start of `s`, up to where a second operand follows the first
/// without an operator between them: `8` of `8 conv(c, 1)`, `in.c / 4` of `in.c / 4 relu`.
/// A bracket runs to its match (or to the end).
fn leading_expression(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut operand_next = true;
    let skip_group = |mut i: usize| {
        let mut depth = 0usize;
        while i < bytes.len() {
            match bytes[i] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let word = |i: usize| {
        let mut j = i;
        while j < bytes.len()
            && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'_' | b'.'))
        {
            j += 1;
        }
        j
    };
    let mut end = 0;
    loop {
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() {
            return s.trim_end();
        }
        let c = bytes[i];
        if operand_next {
            if matches!(c, b'-' | b'+') {
                i += 1;
                continue;
            }
            if s[i..].starts_with("not ") {
                i += 4;
                continue;
            }
            i = if matches!(c, b'(' | b'[') {
                skip_group(i)
            } else if c.is_ascii_alphanumeric() || c == b'_' {
                let j = word(i);
                if bytes.get(j) == Some(&b'(') {
                    skip_group(j)
                } else {
                    j
                }
            } else {
                return s[..end].trim_end();
            };
            operand_next = false;
            end = i;
        } else if c == b'[' {
            i = skip_group(i);
            end = i;
        } else {
            let operator = ["==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "<", ">"]
                .into_iter()
                .find(|op| s[i..].starts_with(op))
                .map(str::len)
                .or_else(|| {
                    ["and ", "or "]
                        .into_iter()
                        .find(|op| s[i..].starts_with(op))
                        .map(str::len)
                });
            match operator {
                Some(n) => {
                    i += n;
                    operand_next = true;
                }
                None => return s[..end].trim_end(),
            }
        }
    }
}

/// Whether `w` is written as a name: a letter or `_`, then letters, digits and `_`.
fn is_name(w: &str) -> bool {
    w.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A help for a line that fails at its `{` and reads as a named output gone wrong: `line` is
/// its text before the `{`.
fn output_statement_slip(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (&first, rest) = words.split_first()?;
    let name = rest.first()?;
    if first == "output" {
        let name = name.split('(').next().filter(|n| is_name(n))?;
        return Some(format!(
            "a named output is `output {name} {{ … }}`: its name, then the body, with no \
             arguments and no `as` (to name a tensor, put `as` after a layer inside the \
             body)"
        ));
    }
    let lower = first.to_ascii_lowercase();
    if rest.len() != 1
        || !is_name(name)
        || !(lower == "output" || crate::diag::did_you_mean(&lower, ["output"]).is_some())
    {
        return None;
    }
    Some(format!(
        "did you mean `output {name} {{ … }}`?{}",
        if lower == "output" {
            " keywords are lowercase"
        } else {
            ""
        }
    ))
}

/// The help for PyTorch's `a + b` of two tensors (`out = a + b` when `out` is given): cnnc
/// has no variables, and a sum of tensors is a residual.
fn tensor_sum_help(a: &str, b: &str, named: Option<&str>) -> String {
    let name = named.map_or(String::new(), |n| format!(" as {n}"));
    format!(
        "cnnc has no variables, and a sum of two tensors is a residual: `{a} residual {{}} \
         shortcut {{ {b} }}{name}` (`{a}` made the current tensor, then `{b}` added to it; \
         `residual {{}} shortcut {{ {b} }}` alone adds `{b}` to the current tensor); a tensor \
         is named after the layers that make it, `conv(16, 3) as {a}`; where one of them is \
         the tensor a block or model started from, `residual {{ … }}` around the layers since \
         adds it"
    )
}

/// A help for Python written where cnnc was expected, met at the token `tok` at `start`:
/// `for i in range(n)`, `elif`, `x = conv(…)`, a tuple `(3, 3)` as an argument.
fn python_habit(
    text: &str,
    start: usize,
    tok: &str,
    expects: &dyn Fn(&str) -> bool,
    unclosed: Option<(usize, u8)>,
) -> Option<String> {
    let before = text[..start].trim_end();
    let word_before = {
        let w = before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        &before[w.len()..]
    };
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..start].trim_start();
    // `add(shortcut)`, `cat(concat)`: a keyword where an argument was expected.
    if let Some((_, b'(')) = unclosed {
        let statement = match tok {
            "shortcut" | "residual" => {
                Some("a sum with a named tensor x is `residual { … } shortcut { x }`")
            }
            "concat" => Some("a join with a named tensor x is `concat { {} x }`"),
            "gate" | "repeat" | "block" | "model" | "use" => Some("it starts a statement"),
            _ => None,
        };
        if let Some(statement) = statement {
            return Some(format!(
                "`{tok}` is a keyword, not a value or a tensor's name: {statement}"
            ));
        }
    }
    // Keras's functional API, `Conv2D(32, 3)(x)`: a layer applied to a tensor.
    if tok == "("
        && text[..start].trim_end_matches([' ', '\t']).ends_with(')')
        && expects("a layer")
    {
        return Some(
            "a layer is not called on a tensor: each takes the tensor before it, so Keras's \
             `x = Conv2D(32, 3)(x)` is `conv(32, 3)` written after the layer that made x; a \
             named tensor (`… as x`) is joined with `concat { {} x }` or added with `residual \
             { … } shortcut { x }`"
                .to_string(),
        );
    }
    // Python's floor division `c // 4` inside a call: `//` starts a comment, which eats
    // the rest of the line and leaves the `(` open.
    if let Some((open, b'(' | b'[')) = unclosed {
        let open_line_end = text[open..].find('\n').map_or(text.len(), |i| open + i);
        // An operand right after `//`, then what may follow one (`,`, a closer, an operator,
        // the line's end): `in.c // 4, 1)`. Prose (`// out channels`) is a comment.
        let floor_division = text[open..open_line_end].find("//").filter(|&at| {
            let after = text[open + at + 2..open_line_end].trim_start();
            let operand = after.len()
                - after
                    .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                    .len();
            let rest = after[operand..].trim_start();
            operand > 0
                && (rest.is_empty() || rest.starts_with([',', ')', ']', '+', '-', '*', '/', '%']))
        });
        if let Some(at) = floor_division {
            let operand = text[..open + at].trim_end();
            if operand.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ')') {
                let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
                let left = &operand[operand.trim_end_matches(word).len()..];
                let after = text[open + at + 2..open_line_end].trim_start();
                let right = &after[..after.len() - after.trim_start_matches(word).len()];
                let example = if left.is_empty() || right.is_empty() {
                    "c / 4".to_string()
                } else {
                    format!("{left} / {right}")
                };
                return Some(format!(
                    "`//` starts a comment in cnnc, so the rest of that line was skipped: `/` \
                     already divides and rounds down, as Python's `//` does; write `{example}`"
                ));
            }
        }
    }
    // Python's conditional expression `1 if i == 0 else 2`, inside a call or a list.
    if tok == "if"
        && matches!(unclosed, Some((_, b'(' | b'[')))
        && before.ends_with(|c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | ')' | ']'))
    {
        return Some(
            "cnnc has no conditional expression (`a if cond else b`): pick from a list with \
             the loop variable, `[1, 2, 2, 2][i]`, or write the call twice in an `if` \
             statement, `if i == 0 { … } else { … }`"
                .into(),
        );
    }
    // Python's power `2 ** i`.
    if tok == "*" && before.ends_with('*') {
        return Some(
            "cnnc has no power operator `**`: write the product (`2 * 2 * 2`), or pick from a \
             list with the loop variable, `[16, 32, 64][i]`"
                .into(),
        );
    }
    if tok == ":" && expects("`..`") && text[line_start..start].contains("repeat ") {
        return Some(
            "a range is written `a..b` (from a up to b - 1): `repeat i in 0..3 { … }`".into(),
        );
    }
    if tok == ":" && expects("`{`") {
        // `if down:`, `for`-like `repeat i in 0..3:`: the statement's own braced form.
        let head = line.rsplit(['{', '}']).next().unwrap_or_default().trim();
        if [
            "if ", "else", "repeat ", "residual", "shortcut", "gate", "concat",
        ]
        .iter()
        .any(|k| head.starts_with(k))
            && head.len() <= 80
        {
            return Some(format!("bodies are braced, not indented: `{head} {{ … }}`"));
        }
        return Some(
            "bodies are braced, not indented: `block name(c) { … }`, `model M(input: [C, H, W]) \
             { … }`"
                .into(),
        );
    }
    if expects("`block`") || expects("`block`, `model` or `use`") {
        match tok {
            "def" => {
                return Some(
                    "a reusable piece of network is a block: `block name(c, stride=1) { … }`, \
                     called like a layer, `name(64)`"
                        .into(),
                )
            }
            "class" => {
                return Some(
                    "a network is a model: `model Name(input: [C, H, W]) { conv(16, 3) relu … }`, \
                     its layers in order (no __init__ or forward)"
                        .into(),
                )
            }
            "import" | "from" => {
                return Some(
                    "nothing is imported: the layers are built in; `use \"file.cnn\"` shares \
                     blocks between files"
                        .into(),
                )
            }
            _ => {}
        }
        // `inputs = keras.Input(shape=(28, 28, 1))` at the top level: the model's header.
        let rest_of_line = text[start..].lines().next().unwrap_or_default();
        if rest_of_line.contains("Input(") {
            return Some(
                "the model's input is declared in its header, one example's shape channels \
                 first: Keras's `Input(shape=(28, 28, 1))` is `model M(input: [1, 28, 28]) { … }`"
                    .into(),
            );
        }
    }
    // `net = nn.Sequential(` at the top level: PyTorch's container (also Keras's, whose
    // `model = keras.Sequential([` fails at the `=` after the keyword `model`).
    let keras_model = tok == "=" && line.trim_end() == "model";
    if expects("`block`") || expects("`block`, `model` or `use`") || keras_model {
        let rest_of_line = text[start..].lines().next().unwrap_or_default();
        if rest_of_line.contains("Sequential(")
            || rest_of_line.contains("ModuleList(")
            || rest_of_line.contains("Model(")
        {
            return Some(
                "a network is a model, its layers one after another without commas: `model \
                 Net(input: [C, H, W]) { conv(16, 3, pad=1) relu flatten linear(10) }` (the \
                 input's shape is declared, and each layer's input size is worked out)"
                    .into(),
            );
        }
    }
    let mut last_two = before.rsplit(char::is_whitespace).filter(|w| !w.is_empty());
    let (_, before_that) = (last_two.next(), last_two.next());
    if tok == "in" && (line.starts_with("for ") || before_that == Some("for")) {
        return Some(
            "loops are written with `repeat`: `repeat i in 0..n { … }` (i from 0 up to n - 1), \
             or `repeat n { … }` without a variable"
                .into(),
        );
    }
    if tok == "(" && word_before == "range" {
        return Some(
            "a range is written `a..b` (from a up to b - 1): `repeat i in 0..n { … }`".into(),
        );
    }
    // `} elif s == 2 {` fails a few tokens after `elif`, which reads as a layer.
    let mut words_before = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
    if word_before == "elif" || words_before.any(|w| w == "elif") {
        return Some("write `else if` for `elif`".into());
    }
    // `Output aux {`, `outputs aux {`: a named output misspelt; `output aux as t {`,
    // `output aux(3) {`: one given more than its name.
    if tok == "{" {
        if let Some(help) = output_statement_slip(line) {
            return Some(help);
        }
    }
    // `cat { … }`, `add { … }`, `myblock { … }`: a layer or a block call given a body.
    if tok == "{" && expects("`as`") && !word_before.is_empty() {
        let lower = word_before.to_ascii_lowercase();
        return Some(match lower.as_str() {
            "cat" | "concatenate" | "stack" => {
                "concatenation is `concat { {branch} {branch} … }`: \
                each braced branch takes the same input, and the outputs are joined along the \
                channels"
                    .to_string()
            }
            "add" | "sum" => "a sum with the input is `residual { body }` (body(x) + x), with \
                `shortcut { … }` for a projection"
                .to_string(),
            "mul" | "multiply" => {
                "a product with the input is `gate { body }` (x · body(x))".to_string()
            }
            "output" => "a named output takes its name before the body, `output aux { … }` \
                (`output features {}` for the tensor as it is)"
                .to_string(),
            _ => match crate::diag::did_you_mean(
                &lower,
                [
                    "concat", "residual", "shortcut", "gate", "repeat", "output", "else",
                ],
            ) {
                Some(keyword) => format!(
                    "did you mean `{keyword}`? `{word_before}` is no statement with a braced \
                     body"
                ),
                None => format!(
                    "`{word_before}` takes no body: the statements with a braced body are \
                 `concat`, `residual`, `gate`, `repeat`, `if` and `output NAME`; a layer or \
                 block takes arguments in parentheses, `{word_before}(…)`"
                ),
            },
        });
    }
    // `repaet 2 {`, `Repeat 2 {`: a number after a lone word where a statement goes on.
    if tok.starts_with(|c: char| c.is_ascii_digit()) && expects("`as`") {
        let word = line.trim_end();
        let lower = word.to_ascii_lowercase();
        if is_name(word)
            && (lower == "repeat" || crate::diag::did_you_mean(&lower, ["repeat"]).is_some())
        {
            return Some(format!(
                "did you mean `repeat`?{} a repeat is `repeat 2 {{ … }}`, or `repeat i in 0..2 \
                 {{ … }}` with a variable",
                if lower == "repeat" {
                    " keywords are lowercase:"
                } else {
                    ""
                }
            ));
        }
    }
    // `return main, aux`: several outputs.
    if line.starts_with("return ") && tok == "," {
        return Some(crate::ir::elaborate::RETURN_SEVERAL.to_string());
    }
    // `shortcut = x` (a ResNet block's forward, Keras's or PyTorch's): a keyword taken
    // for a variable.
    let assigned = |word: &str, at: usize| {
        matches!(word, "shortcut" | "residual" | "identity")
            && text[at..].trim_start().starts_with('=')
            && !text[at..].trim_start().starts_with("==")
    };
    if assigned(tok, start + tok.len()) || assigned(word_before, start) {
        return Some(
            "cnnc has no variables: a block whose result is added to its input is `residual { \
             body }` (body(x) + x, the input kept for you), and `residual { body } shortcut { \
             conv(c, 1) }` when the input needs a projection first"
                .into(),
        );
    }
    // `a + b` (PyTorch's sum of two tensors) where a statement goes on: a residual.
    if tok == "+" && expects("`as`") && is_name(line.trim_end()) {
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let after = text[start + 1..line_end]
            .split('#')
            .next()
            .unwrap_or("")
            .trim();
        if is_name(after) {
            return Some(tensor_sum_help(line.trim_end(), after, None));
        }
    }
    if tok == "=" && !expects("an operator") && expects("`as`") {
        // `x = layers.add([x, s])`, `x = Conv2D(32, 3)(x)`: Keras's functional API.
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let rhs = text[start + 1..line_end]
            .split('#')
            .next()
            .unwrap_or("")
            .trim();
        if !word_before.is_empty() {
            if let Some(help) = functional_line_help(rhs, word_before)
                .or_else(|| applied_layer_help(rhs, word_before))
            {
                return Some(help);
            }
        }
        // `x = in`, `identity = input`: the block's input named.
        if !word_before.is_empty() && matches!(rhs, "in" | "input") {
            return Some(format!("cnnc has no variables, and {}", UNNAMED_INPUT));
        }
        let value = assigned_value(text, start)
            .filter(|_| !word_before.is_empty() && module_prefix(rhs).is_none());
        if let Some((a, b)) = value.and_then(|v| v.split_once('+')) {
            let (a, b) = (a.trim(), b.trim());
            if is_name(a) && is_name(b) {
                return Some(tensor_sum_help(a, b, Some(word_before)));
            }
        }
        if let Some(value) = value {
            return Some(format!(
                "cnnc has no variables: a value worked out from the parameters is a parameter \
                 with a default, `block …(…, {word_before}={value})` (a default may use the \
                 parameters before it), or the expression written where it is used"
            ));
        }
        return Some(format!(
            "a tensor is named after the layers that make it, with `as`: `conv(16, 3) as \
             {}`; the layers of a statement apply to the current tensor",
            if word_before.is_empty() {
                "x"
            } else {
                word_before
            }
        ));
    }
    if tok == "," && expects("an operator") {
        // `(3, 3)` where an argument goes: a Python tuple.
        let (open, b) = unclosed?;
        let lead = text[..open].trim_end();
        // Also `repeat f in (32, 64)`, Python's tuple to loop over.
        if b == b'('
            && (lead.ends_with(',')
                || lead.ends_with('=')
                || lead.ends_with('(')
                || lead.ends_with(" in"))
        {
            let inner = text[open + 1..]
                .find(')')
                .map(|i| &text[open + 1..open + 1 + i])
                .filter(|t| t.len() <= 40 && !t.contains('\n'));
            return Some(format!(
                "a pair is written in brackets, `[{}]`; parentheses only group an expression",
                inner.unwrap_or("3, 3")
            ));
        }
    }
    None
}

// ---- pairs → AST -----------------------------------------------------------------------

/// Whether an integer literal is refused for its leading zero: `007`, as Python refuses it,
/// and `000` right after `1,` (a thousands separator, which makes two arguments of one
/// number); `00` elsewhere is zero, as Python reads it.
fn leading_zero(p: &Pair<'_, Rule>) -> bool {
    let digits = p.as_str();
    if digits.len() < 2 || !digits.starts_with('0') {
        return false;
    }
    separated_by_comma(p) || digits.bytes().any(|b| b != b'0')
}

/// Whether a digit and a comma come right before `p` (`1,000`), no space between.
fn separated_by_comma(p: &Pair<'_, Rule>) -> bool {
    p.get_input()[..p.as_span().start()]
        .strip_suffix(',')
        .is_some_and(|b| b.ends_with(|c: char| c.is_ascii_digit()))
}

struct Builder {
    file: FileId,
    diags: Diagnostics,
    /// How many statements deep the statement being built is.
    depth: usize,
}

/// An operator waiting for its operands while an expression is folded.
enum PendingOp {
    Prefix(UnaryOp, usize),
    Binary(BinaryOp, u8, Span),
}

impl PendingOp {
    /// Binding power: `or` 1, `and` 2, `not` 3, comparisons 4, `+ -` 5, `* / %` 6, `-x` 7.
    fn power(&self) -> u8 {
        match self {
            PendingOp::Prefix(UnaryOp::Not, _) => 3,
            PendingOp::Prefix(UnaryOp::Neg, _) => 7,
            PendingOp::Binary(_, p, _) => *p,
        }
    }
}

/// An expression and the depth of its tree.
type Operand = (Expr, usize);

impl Builder {
    /// The span of a pair without the whitespace and comments pest may include at its end:
    /// it ends where its last token ends.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let start = pair.as_span().start();
        let mut last = pair.clone();
        while let Some(child) = last.clone().into_inner().next_back() {
            last = child;
        }
        Span::new(self.file, start, last.as_span().end())
    }

    fn file(&mut self, pair: Pair<'_, Rule>) -> File {
        let mut items = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::use_decl => {
                    let span = self.span(&p);
                    let s = p.into_inner().nth(1).expect("use has a string");
                    let quoted = s.as_str();
                    items.push(Item::Use(UseDecl {
                        path: quoted[1..quoted.len() - 1].to_string(),
                        span,
                    }));
                }
                Rule::block_def => items.push(Item::Block(self.block_def(p))),
                Rule::model_def => items.push(Item::Model(self.model_def(p))),
                _ => {}
            }
        }
        File { items }
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn block_def(&mut self, pair: Pair<'_, Rule>) -> BlockDef {
        let span = self.span(&pair);
        let mut name = None;
        let mut params = Vec::new();
        let mut body = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::params => {
                    for param in p.into_inner().filter(|p| p.as_rule() == Rule::param) {
                        let mut inner = param.into_inner();
                        let name = self.ident(inner.next().expect("a param has a name"));
                        let default = inner.find(|p| p.as_rule() == Rule::expr);
                        params.push(Param {
                            name,
                            default: default.map(|e| self.expr(e)),
                        });
                    }
                }
                Rule::body => body = self.body(p),
                _ => {}
            }
        }
        BlockDef {
            name: name.expect("a block has a name"),
            params,
            body,
            span,
        }
    }

    fn model_def(&mut self, pair: Pair<'_, Rule>) -> ModelDef {
        let span = self.span(&pair);
        let mut name = None;
        let mut input = Vec::new();
        let mut input_span = span;
        let mut body = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::list => {
                    input_span = self.span(&p);
                    input = self.list_items(p);
                }
                Rule::body => body = self.body(p),
                _ => {}
            }
        }
        ModelDef {
            name: name.expect("a model has a name"),
            input,
            input_span,
            body,
            span,
        }
    }

    /// The statements of a `{ … }` body, one level deeper than the enclosing statement.
    fn body(&mut self, pair: Pair<'_, Rule>) -> Vec<Stmt> {
        self.depth += 1;
        let stmts = if self.depth > MAX_NESTING {
            // Braces are limited before parsing, so only `else if` chains inside deep
            // bodies get here; the chain reported the problem already.
            Vec::new()
        } else {
            pair.into_inner()
                .filter(|p| p.as_rule() == Rule::stmt)
                .map(|p| self.stmt(p))
                .collect()
        };
        self.depth -= 1;
        stmts
    }

    fn stmt(&mut self, pair: Pair<'_, Rule>) -> Stmt {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let kind_pair = inner.next().expect("a statement has a kind");
        let kind = match kind_pair.as_rule() {
            Rule::call => StmtKind::Call(self.call(kind_pair)),
            Rule::repeat_stmt => StmtKind::Repeat(self.repeat(kind_pair)),
            Rule::if_stmt => StmtKind::If(self.if_stmt(kind_pair)),
            Rule::concat_stmt => StmtKind::Concat(self.concat(kind_pair)),
            Rule::residual_stmt => StmtKind::Residual(self.residual(kind_pair)),
            Rule::gate_stmt => StmtKind::Gate(self.gate(kind_pair)),
            Rule::output_stmt => StmtKind::Output(self.output(kind_pair)),
            r => unreachable!("statement kind {r:?}"),
        };
        let mut alias = None;
        let mut assert = None;
        for p in inner {
            match p.as_rule() {
                Rule::alias => {
                    let name = p.into_inner().nth(1).expect("`as` has a name");
                    alias = Some(self.ident(name));
                }
                Rule::shape_assert => {
                    let list = p.into_inner().nth(1).expect("`:` has a list");
                    let span = self.span(&list);
                    assert = Some(ShapeAssert {
                        dims: self.list_items(list),
                        span,
                    });
                }
                r => unreachable!("statement postfix {r:?}"),
            }
        }
        Stmt {
            kind,
            alias,
            assert,
            span,
        }
    }

    fn call(&mut self, pair: Pair<'_, Rule>) -> Call {
        let span = self.span(&pair);
        let mut inner = pair.into_inner();
        let name = self.ident(inner.next().expect("a call has a name"));
        let mut args = Vec::new();
        let mut parens = false;
        if let Some(call_args) = inner.next() {
            parens = true;
            for arg in call_args.into_inner().filter(|p| p.as_rule() == Rule::arg) {
                let span = self.span(&arg);
                let mut name = None;
                let mut value = None;
                for p in arg.into_inner() {
                    match p.as_rule() {
                        Rule::ident => name = Some(self.ident(p)),
                        Rule::expr => value = Some(self.expr(p)),
                        _ => {}
                    }
                }
                args.push(Arg {
                    name,
                    value: value.expect("an argument has a value"),
                    span,
                });
            }
        }
        // As in Python: a positional argument after a named one has no clear place.
        if let Some(named) = args.iter().position(|a| a.name.is_some()) {
            if let Some(positional) = args[named..].iter().find(|a| a.name.is_none()) {
                self.diags.push(
                    Diagnostic::error(UNEXPECTED, "a positional argument after a named one")
                        .label(positional.span, "positional")
                        .label(args[named].span, "after this named argument")
                        .help(format!(
                            "put the positional arguments first, in order, then the named ones, \
                             as in Python (`{}(a, b, key=value)`), or name this one too",
                            name.name
                        )),
                );
            }
        }
        Call {
            name,
            args,
            parens,
            span,
        }
    }

    fn repeat(&mut self, pair: Pair<'_, Rule>) -> Repeat {
        let mut var = None;
        let mut range = None;
        let mut body = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::repeat_range => {
                    let mut inner = p.into_inner();
                    var = Some(self.ident(inner.next().expect("a loop variable")));
                    let mut bounds = inner.filter(|p| p.as_rule() == Rule::expr);
                    let from = self.expr(bounds.next().expect("a range start or a list"));
                    range = Some(match bounds.next() {
                        Some(to) => RepeatRange::Range(from, self.expr(to)),
                        None => RepeatRange::Each(from),
                    });
                }
                Rule::expr => range = Some(RepeatRange::Count(self.expr(p))),
                Rule::body => body = self.body(p),
                _ => {}
            }
        }
        Repeat {
            var,
            range: range.expect("a repeat has a count or range"),
            body,
        }
    }

    /// `if a {} else if b {} else {}` arrives flat; each `else if` becomes an else body
    /// holding one statement, folded from the last one back.
    fn if_stmt(&mut self, pair: Pair<'_, Rule>) -> IfStmt {
        let end = self.span(&pair).end;
        let mut arms: Vec<(usize, Expr, Vec<Stmt>)> = Vec::new();
        let mut else_body = None;
        let mut cond = None;
        let mut then_body = Vec::new();
        let mut too_deep_reported = false;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::expr => cond = Some(self.expr(p)),
                Rule::body => then_body = self.body(p),
                Rule::else_if => {
                    let mut inner = p.into_inner();
                    inner.next(); // else
                    let kw_if = inner.next().expect("`else if`");
                    let start = kw_if.as_span().start();
                    if self.depth + arms.len() + 1 >= MAX_NESTING {
                        // Once per chain: the links past the limit are not kept, so the
                        // count stays where it was.
                        if !too_deep_reported {
                            too_deep_reported = true;
                            self.diags.push(
                                Diagnostic::error(
                                    TOO_DEEP,
                                    format!("`else if` chains nest more than {MAX_NESTING} deep"),
                                )
                                .label(Span::new(self.file, start, start + 2), "too deep here")
                                .help("split the chain, or choose with expressions"),
                            );
                        }
                        continue;
                    }
                    self.depth += arms.len() + 1;
                    let c = self.expr(inner.next().expect("a condition"));
                    let b = self.body(inner.next().expect("a body"));
                    self.depth -= arms.len() + 1;
                    arms.push((start, c, b));
                }
                Rule::else_clause => {
                    self.depth += arms.len();
                    else_body = Some(self.body(p.into_inner().nth(1).expect("a body")));
                    self.depth -= arms.len();
                }
                _ => {}
            }
        }
        while let Some((start, cond, then_body)) = arms.pop() {
            let nested = IfStmt {
                cond,
                then_body,
                else_body,
            };
            else_body = Some(vec![Stmt {
                kind: StmtKind::If(nested),
                alias: None,
                assert: None,
                span: Span {
                    file: self.file,
                    start: start as u32,
                    end,
                },
            }]);
        }
        IfStmt {
            cond: cond.expect("an if has a condition"),
            then_body,
            else_body,
        }
    }

    fn concat(&mut self, pair: Pair<'_, Rule>) -> Concat {
        let mut branches = Vec::new();
        let mut previous_end: Option<usize> = None;
        for p in pair.into_inner().filter(|p| p.as_rule() == Rule::branch) {
            let span = self.span(&p);
            let (start, end) = (span.start as usize, span.end as usize);
            let shares_line =
                previous_end.is_some_and(|e| e <= start && !p.get_input()[e..start].contains('\n'));
            previous_end = Some(end);
            let inner = p.into_inner().next().expect("a branch has content");
            let body = match inner.as_rule() {
                Rule::body => self.body(inner),
                _ => {
                    self.depth += 1;
                    let s = self.stmt(inner);
                    self.depth -= 1;
                    vec![s]
                }
            };
            branches.push(Branch {
                body,
                span,
                shares_line,
            });
        }
        Concat { branches }
    }

    fn gate(&mut self, pair: Pair<'_, Rule>) -> Gate {
        let mut body = Vec::new();
        let mut body_span = self.span(&pair);
        for p in pair.into_inner() {
            if p.as_rule() == Rule::body {
                body_span = self.span(&p);
                body = self.body(p);
            }
        }
        Gate { body, body_span }
    }

    fn output(&mut self, pair: Pair<'_, Rule>) -> Output {
        let mut name = None;
        let mut body = Vec::new();
        let mut body_span = self.span(&pair);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::ident => name = Some(self.ident(p)),
                Rule::body => {
                    body_span = self.span(&p);
                    body = self.body(p);
                }
                _ => {}
            }
        }
        Output {
            name: name.expect("an output has a name"),
            body,
            body_span,
        }
    }

    fn residual(&mut self, pair: Pair<'_, Rule>) -> Residual {
        let mut body = Vec::new();
        let mut body_span = self.span(&pair);
        let mut shortcut = None;
        let mut cond = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::expr => cond = Some(self.expr(p)),
                Rule::body => {
                    body_span = self.span(&p);
                    body = self.body(p);
                }
                Rule::shortcut => {
                    let span = self.span(&p);
                    let mut cond = None;
                    let mut sbody = Vec::new();
                    for q in p.into_inner() {
                        match q.as_rule() {
                            Rule::expr => cond = Some(self.expr(q)),
                            Rule::body => sbody = self.body(q),
                            _ => {}
                        }
                    }
                    shortcut = Some(Shortcut {
                        cond,
                        body: sbody,
                        span,
                    });
                }
                _ => {}
            }
        }
        Residual {
            cond,
            body,
            body_span,
            shortcut,
        }
    }

    // ---- expressions -------------------------------------------------------------------

    fn list_items(&mut self, list: Pair<'_, Rule>) -> Vec<Expr> {
        list.into_inner()
            .filter(|p| p.as_rule() == Rule::expr)
            .map(|p| self.expr(p))
            .collect()
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        self.expr_with_depth(pair).0
    }

    /// Folds an `expr` pair's flat sequence of prefix operators, operands, indexes and
    /// binary operators by precedence, with explicit stacks (shunting-yard).
    fn expr_with_depth(&mut self, pair: Pair<'_, Rule>) -> Operand {
        let mut operands: Vec<Operand> = Vec::new();
        let mut ops: Vec<PendingOp> = Vec::new();
        let mut reported = false;
        for p in pair.into_inner() {
            let binary = match p.as_rule() {
                Rule::op_or => Some((BinaryOp::Or, 1)),
                Rule::op_and => Some((BinaryOp::And, 2)),
                Rule::cmp_op => Some((
                    match p.as_str() {
                        "==" => BinaryOp::Eq,
                        "!=" => BinaryOp::Ne,
                        "<" => BinaryOp::Lt,
                        "<=" => BinaryOp::Le,
                        ">" => BinaryOp::Gt,
                        _ => BinaryOp::Ge,
                    },
                    4,
                )),
                Rule::add_op => Some((
                    if p.as_str() == "+" {
                        BinaryOp::Add
                    } else {
                        BinaryOp::Sub
                    },
                    5,
                )),
                Rule::mul_op => Some((
                    match p.as_str() {
                        "*" => BinaryOp::Mul,
                        "/" => BinaryOp::Div,
                        _ => BinaryOp::Rem,
                    },
                    6,
                )),
                _ => None,
            };
            if let Some((op, power)) = binary {
                while ops.last().is_some_and(|top| top.power() >= power) {
                    let top = ops.pop().expect("checked");
                    self.reduce(top, &mut operands, &mut reported);
                }
                ops.push(PendingOp::Binary(op, power, self.span(&p)));
                continue;
            }
            match p.as_rule() {
                Rule::op_not => ops.push(PendingOp::Prefix(UnaryOp::Not, p.as_span().start())),
                Rule::op_neg => ops.push(PendingOp::Prefix(UnaryOp::Neg, p.as_span().start())),
                Rule::index => {
                    let end = self.span(&p).end;
                    let bracket = p.as_span().start();
                    let idx = self.expr_with_depth(p.into_inner().nth(1).expect("an index"));
                    let base = operands.pop().expect("an index follows an operand");
                    let span = Span { end, ..base.0.span };
                    let (index, index_depth) = idx;
                    let node = self.node(
                        span,
                        bracket,
                        base.1.max(index_depth),
                        &mut reported,
                        |base| ExprKind::Index(Box::new(base), Box::new(index)),
                        base.0,
                    );
                    operands.push(node);
                }
                _ => operands.push(self.atom(p, &mut reported)),
            }
        }
        while let Some(top) = ops.pop() {
            self.reduce(top, &mut operands, &mut reported);
        }
        operands.pop().expect("an expression has an operand")
    }

    /// Wraps `inner` into a node one deeper, unless that would pass [`MAX_EXPR_DEPTH`]:
    /// then reports once per expression and keeps `inner` as it is.
    fn node(
        &mut self,
        span: Span,
        at: usize,
        below: usize,
        reported: &mut bool,
        make: impl FnOnce(Expr) -> ExprKind,
        inner: Expr,
    ) -> Operand {
        // `below` counts the leaf: an operator over leaves makes a tree two deep.
        if below > MAX_EXPR_DEPTH {
            if !*reported {
                *reported = true;
                self.diags.push(
                    Diagnostic::error(
                        TOO_DEEP,
                        format!("this expression is more than {MAX_EXPR_DEPTH} levels deep"),
                    )
                    .label(Span::new(self.file, at, at + 1), "too deep here")
                    .help(
                        "each operator, call, list and index is a level, one per operator in a flat \
                         chain as in brackets (`a + b + c` is `(a + b) + c`, two deep); split \
                         the expression into block parameters or simpler parts",
                    ),
                );
            }
            return (inner, below);
        }
        (
            Expr {
                kind: make(inner),
                span,
            },
            below + 1,
        )
    }

    fn reduce(&mut self, op: PendingOp, operands: &mut Vec<Operand>, reported: &mut bool) {
        match op {
            PendingOp::Prefix(op, start) => {
                let (e, d) = operands.pop().expect("a prefix operator has an operand");
                let span = Span {
                    start: start as u32,
                    ..e.span
                };
                let node = self.node(
                    span,
                    start,
                    d,
                    reported,
                    |e| ExprKind::Unary(op, Box::new(e)),
                    e,
                );
                operands.push(node);
            }
            PendingOp::Binary(op, _, op_span) => {
                let (r, rd) = operands.pop().expect("a binary operator has a right side");
                let (l, ld) = operands.pop().expect("a binary operator has a left side");
                let span = l.span.to(r.span);
                let node = self.node(
                    span,
                    op_span.start as usize,
                    ld.max(rd),
                    reported,
                    |l| ExprKind::Binary(op, Box::new(l), Box::new(r)),
                    l,
                );
                operands.push(node);
            }
        }
    }

    fn atom(&mut self, p: Pair<'_, Rule>, reported: &mut bool) -> Operand {
        let span = self.span(&p);
        let leaf = |kind| (Expr { kind, span }, 1);
        match p.as_rule() {
            // `linear(1,000)`, `007`: Python refuses leading zeros; here the usual cause is a
            // thousands separator, which makes two arguments of one number.
            Rule::int if leading_zero(&p) => {
                let separated = separated_by_comma(&p);
                self.diags.push(
                    Diagnostic::error(UNEXPECTED, "an integer does not start with 0")
                        .label(span, "leading zero")
                        .help(if separated {
                            "numbers are written without a thousands separator (`1000`, not \
                             `1,000`): the `,` separates arguments"
                                .to_string()
                        } else {
                            format!(
                                "write it without the leading zeros: `{}`",
                                p.as_str().trim_start_matches('0').max("0")
                            )
                        }),
                );
                leaf(ExprKind::Int(0))
            }
            Rule::int => match p.as_str().parse::<i64>() {
                Ok(v) => leaf(ExprKind::Int(v)),
                Err(_) => {
                    self.diags.push(
                        Diagnostic::error(INT_TOO_LARGE, "integer literal is too large")
                            .label(span, "does not fit in a 64-bit signed integer")
                            .help(format!("the largest integer is {}", i64::MAX)),
                    );
                    leaf(ExprKind::Int(0))
                }
            },
            // Every digit string with a dot or exponent parses as an f64 (maybe infinite).
            Rule::float => leaf(ExprKind::Float(p.as_str().parse().unwrap_or(f64::INFINITY))),
            Rule::kw_true => leaf(ExprKind::Bool(true)),
            Rule::kw_false => leaf(ExprKind::Bool(false)),
            Rule::kw_same => leaf(ExprKind::Same),
            Rule::in_query => leaf(ExprKind::InQuery(p.as_str()[3..].to_string())),
            Rule::tensor_query => {
                let (name, field) = p.as_str().split_once('.').expect("the rule has a dot");
                leaf(ExprKind::TensorQuery(name.to_string(), field.to_string()))
            }
            Rule::ident => leaf(ExprKind::Var(p.as_str().to_string())),
            Rule::fn_call => {
                let mut inner = p.into_inner();
                let name = inner.next().expect("a call names its function");
                let name_span = self.span(&name);
                let mut depth = 0;
                let mut args = Vec::new();
                for item in inner.filter(|p| p.as_rule() == Rule::expr) {
                    let (e, d) = self.expr_with_depth(item);
                    depth = depth.max(d);
                    args.push(e);
                }
                let at = span.start as usize;
                let fname = name.as_str().to_string();
                self.node(
                    span,
                    at,
                    depth,
                    reported,
                    |_| ExprKind::Call(fname, name_span, args),
                    Expr {
                        kind: ExprKind::Int(0),
                        span,
                    },
                )
            }
            Rule::paren => {
                let inner = p
                    .into_inner()
                    .nth(1)
                    .expect("parentheses hold an expression");
                let (mut e, d) = self.expr_with_depth(inner);
                // The parenthesised expression keeps its own kind, spanning the parentheses.
                e.span = span;
                (e, d)
            }
            Rule::list => {
                let mut depth = 0;
                let mut items = Vec::new();
                for item in p.into_inner().filter(|p| p.as_rule() == Rule::expr) {
                    let (e, d) = self.expr_with_depth(item);
                    depth = depth.max(d);
                    items.push(e);
                }
                let at = span.start as usize;
                self.node(
                    span,
                    at,
                    depth,
                    reported,
                    |_| ExprKind::List(items),
                    Expr {
                        kind: ExprKind::Int(0),
                        span,
                    },
                )
            }
            r => unreachable!("atom {r:?}"),
        }
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
