//! Helpers shared by subcommands: exit codes, output format, diagnostics printing.

use cnnc::Compilation;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Exit code: the input has errors (diagnostics were printed).
pub const EXIT_DIAGNOSTICS: u8 = 1;
/// Exit code: usage or I/O problem (bad arguments, unreadable or unwritable file).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a failure at run time (ONNX Runtime, data set, training diverged).
pub const EXIT_RUNTIME: u8 = 3;
/// Stopped by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// Machine-readable JSON.
    Json,
}

/// Prints `error: message` to stderr and returns the exit code.
pub fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    note!("error: {message}");
    ExitCode::from(code)
}

/// One line on stdout. A reader that went away (`| head -1`, a pipe Ctrl-C also ended) must
/// not end training or lose its last messages: a failed write is ignored, where `println!`
/// would panic.
pub fn stdout_line(line: impl std::fmt::Display) {
    stdout_text(format_args!("{line}\n"));
}

/// Writes `text` where results go: standard output, or standard error once an output file
/// is standard output itself ([`results_to_stderr_if_output_is_stdout`]), so text never
/// lands inside a model or an array written there.
pub fn stdout_text(text: impl std::fmt::Display) {
    use std::io::Write;
    if RESULTS_TO_STDERR.load(Ordering::SeqCst) {
        let _ = write!(std::io::stderr().lock(), "{text}");
    } else if let Err(e) = write!(std::io::stdout().lock(), "{text}") {
        record_stdout_failure(e);
    }
}

/// The first failure to write standard output other than a reader that went away (a full
/// disk, `> /dev/full`): the results are lost, which the exit code must say
/// ([`stdout_failure`]).
static STDOUT_FAILURE: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn record_stdout_failure(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return;
    }
    if let Ok(mut first) = STDOUT_FAILURE.lock() {
        first.get_or_insert_with(|| e.to_string());
    }
}

/// Why writing standard output failed, if it did (after flushing what is buffered).
pub fn stdout_failure() -> Option<String> {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().flush() {
        record_stdout_failure(e);
    }
    STDOUT_FAILURE.lock().ok().and_then(|f| f.clone())
}

static RESULTS_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends the result lines to standard error when one of `outputs` is this process's
/// standard output (`-o /dev/stdout`, `--out /proc/self/fd/1`, the same file or pipe).
pub fn results_to_stderr_if_output_is_stdout<'p>(outputs: impl IntoIterator<Item = &'p Path>) {
    if outputs.into_iter().any(is_stdout) {
        RESULTS_TO_STDERR.store(true, Ordering::SeqCst);
    }
}

/// Whether `path` is the file or pipe standard output writes to (a device such as
/// /dev/null takes both without harm).
pub fn is_stdout(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    let kind = target.file_type();
    if !(kind.is_file() || kind.is_fifo() || kind.is_socket()) {
        return false;
    }
    // SAFETY: fstat fills the zeroed struct for descriptor 1, or fails (then unused).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(1, &mut st) } != 0 {
        return false;
    }
    target.dev() == st.st_dev as u64 && target.ino() == st.st_ino as u64
}

/// Prints `error: …` (and its help) on stderr and, with `--format json`, the same as one JSON
/// object on stdout (after any lines of results): `{"error": …, "help": …, "exit_code": …}`.
pub fn report_failure(
    format: Format,
    code: u8,
    message: impl std::fmt::Display,
    help: Option<String>,
) -> ExitCode {
    if format == Format::Json {
        let line = serde_json::json!({
            "error": message.to_string(),
            "help": help,
            "exit_code": code,
        });
        stdout_line(line);
    }
    note!("error: {message}");
    if let Some(h) = help {
        note!("  help: {h}");
    }
    ExitCode::from(code)
}

/// Whether diagnostics get colour, as the common conventions say: never with NO_COLOR set
/// to something (no-color.org: an empty value does not count), always with CLICOLOR_FORCE
/// set to something other than 0, else when stderr is a terminal that is not `TERM=dumb`.
pub fn color() -> bool {
    color_from(
        |name| std::env::var_os(name).filter(|v| !v.is_empty()),
        std::io::stderr().is_terminal(),
    )
}

fn color_from(var: impl Fn(&str) -> Option<std::ffi::OsString>, terminal: bool) -> bool {
    if var("NO_COLOR").is_some() {
        return false;
    }
    if var("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    terminal && var("TERM").is_none_or(|t| t != "dumb")
}

/// `--allow`'s parser: a warning code, in full or by its last parts (`unused_input`,
/// `shape::unused_input`).
pub fn warning_code(s: &str) -> Result<&'static str, String> {
    use cnnc::diag::WARNING_CODES;
    cnnc::diag::find_warning_code(s).ok_or_else(|| {
        let short: Vec<&str> = WARNING_CODES
            .iter()
            .filter_map(|c| c.rsplit("::").next())
            .collect();
        match cnnc::diag::did_you_mean(s.rsplit("::").next().unwrap_or(s), short.iter().copied()) {
            Some(near) => format!(
                "`{s}` is not a warning cnnc gives; did you mean `{near}`? (errors cannot be \
                 silenced)"
            ),
            None => format!(
                "`{s}` is not a warning cnnc gives; the warnings are {} (errors cannot be \
                 silenced)",
                short.join(", ")
            ),
        }
    })
}

/// The warnings `--allow` silences, set once at start.
static ALLOWED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();

pub fn allow_warnings(codes: Vec<&'static str>) {
    cnnc::allow::silence_everywhere(codes.clone());
    let _ = ALLOWED.set(codes);
}

/// Compiles `path` (see [`cnnc::compile_file`]) and drops the warnings `--allow` silences.
pub fn compile(path: &Path) -> Result<Compilation, cnnc::driver::LoadError> {
    compile_for(path, None)
}

/// [`compile`] for the model `model`: other models' warnings and errors are left out (with a
/// note naming those with errors), so `--model A` works on a file whose model `B` is being
/// written.
pub fn compile_for(
    path: &Path,
    model: Option<&str>,
) -> Result<Compilation, cnnc::driver::LoadError> {
    let mut c = cnnc::compile_file(path)?;
    if let Some(name) = model {
        let left_out = c.narrow_to_model(name).unwrap_or_default();
        let broken = left_out.models_with_errors;
        if !broken.is_empty() {
            let mut list: Vec<String> = broken.iter().take(5).map(|m| format!("`{m}`")).collect();
            if broken.len() > 5 {
                list.push(format!("{} more models", broken.len() - 5));
            }
            note!(
                "note: {} of {} {} errors, left out here (`cnnc check {}` shows them)",
                list.join(", "),
                path.display(),
                if broken.len() == 1 { "has" } else { "have" },
                path.display()
            );
        }
        if left_out.dead_code_errors > 0 {
            note!(
                "note: {} error(s) in code `{name}` does not expand (a block it does not call, \
                 a branch not taken) are left out here (`cnnc check {}` shows them)",
                left_out.dead_code_errors,
                path.display()
            );
        }
    }
    if let Some(allowed) = ALLOWED.get().filter(|a| !a.is_empty()) {
        c.diagnostics
            .0
            .retain(|d| d.is_error() || !allowed.contains(&d.code));
        cnnc::diag::drop_pytorch_order_note(&mut c.diagnostics);
        c.model_diagnostics.clear();
        c.dead_code_diagnostics = 0..0;
    }
    Ok(c)
}

/// Renders every diagnostic of a compilation to stderr.
pub fn print_diagnostics(c: &Compilation) {
    let color = color();
    for d in c.diagnostics.iter() {
        note_raw!("{}", d.render(&c.sources, color));
    }
}

/// Compiles `path` and picks one model; on failure prints why and gives the exit code.
/// Warnings are printed either way (with `Format::Json` and `warnings_in_result`, the caller
/// puts them in its JSON instead). Returns the compilation and the model's index. With
/// `Format::Json`, errors go to stdout instead, as `{"diagnostics": [...]}` (the objects of
/// `cnnc check --format json`), so a tool reading stdout sees why.
pub fn compile_one_as(
    path: &Path,
    model: Option<&str>,
    format: Format,
    warnings_in_result: bool,
) -> Result<(Compilation, usize), ExitCode> {
    let c = match compile_for(path, model) {
        Ok(c) => c,
        Err(e) => {
            if format == Format::Json {
                let d = [cnnc::diag::JsonDiagnostic::io(&e)];
                outln!("{}", serde_json::json!({ "diagnostics": d }));
            }
            return Err(fail(EXIT_USAGE, e));
        }
    };
    // Several models, no --model and no error: which one is the question, before any
    // model's warnings (those of the one not meant would come first).
    if model.is_none() && c.model_names.len() > 1 && !c.diagnostics.has_errors() {
        let e = c.model(None).err().unwrap_or_default();
        if format == Format::Json {
            let d = cnnc::diag::JsonDiagnostic::about_file("cnnc::cli::model", e.clone(), path);
            outln!("{}", serde_json::json!({ "diagnostics": [d] }));
        }
        return Err(fail(EXIT_USAGE, e));
    }
    // With JSON, errors go to stdout (below), warnings too where the result carries them
    // (`summary`); what stdout does not carry is rendered on stderr.
    match format {
        Format::Text => print_diagnostics(&c),
        Format::Json if c.diagnostics.has_errors() || warnings_in_result => {}
        Format::Json => print_diagnostics(&c),
    }
    if c.diagnostics.has_errors() {
        if format == Format::Json {
            let d: Vec<_> = c
                .diagnostics
                .iter()
                .map(|d| d.to_json(&c.sources))
                .collect();
            outln!("{}", serde_json::json!({ "diagnostics": d }));
        }
        note!(
            "error: {} has {} error(s); nothing was produced",
            path.display(),
            c.diagnostics.error_count()
        );
        // Without --model, in a file of several models of which some check: the way to
        // use those.
        let checked: Vec<&str> = c.models.iter().map(|m| m.name.as_str()).collect();
        if model.is_none()
            && c.model_names.len() > 1
            && !checked.is_empty()
            && !c.file_has_errors()
            && !c.models_with_errors().is_empty()
        {
            note!(
                "  help: the errors are in {}; pick a model that checks with --model NAME ({})",
                c.models_with_errors().join(", "),
                checked.join(", ")
            );
        }
        return Err(ExitCode::from(EXIT_DIAGNOSTICS));
    }
    let chosen = match c.model(model) {
        Ok(m) => m,
        Err(e) => {
            if format == Format::Json {
                let d = cnnc::diag::JsonDiagnostic::about_file("cnnc::cli::model", e.clone(), path);
                outln!("{}", serde_json::json!({ "diagnostics": [d] }));
            }
            return Err(fail(EXIT_USAGE, e));
        }
    };
    let name = chosen.name.clone();
    let index = c
        .models
        .iter()
        .position(|m| m.name == name)
        .expect("model is in the list");
    Ok((c, index))
}

/// clap value parser: a whole number ≥ 0 (a seed, a count). Its argument takes negative
/// numbers (`allow_negative_numbers`), so `--seed -1` is told what is wrong rather than
/// that `-1` is an unknown option.
pub fn whole_number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    s.parse::<T>().map_err(|_| {
        if s.strip_prefix('-').is_some_and(digits) {
            format!("must be a whole number ≥ 0, not {s}")
        } else if digits(s) {
            format!("{s} is too large")
        } else {
            format!("`{s}` is not a whole number")
        }
    })
}

/// clap value parser: a whole number ≥ 1 (epochs, a batch size, a limit).
pub fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let n = whole_number::<T>(s).map_err(|e| e.replace("≥ 0", "≥ 1"))?;
    if n >= T::from(1) {
        Ok(n)
    } else {
        Err("must be at least 1".into())
    }
}

/// Says on stderr that an SGD momentum of 1 or more makes the velocity grow without bound
/// (PyTorch accepts it too, and such a run diverges).
pub fn warn_large_momentum(momentum: f32) {
    if momentum >= 1.0 {
        note!(
            "warning: --momentum {momentum} is 1 or more: the velocity then keeps every past \
             gradient at full weight or more, and training diverges; the usual values are \
             0.9 to 0.99"
        );
    }
}

/// clap value parser: a finite number ≥ 0 (momentum, weight decay).
pub fn non_negative(s: &str) -> Result<f32, String> {
    let wide: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    let x = wide as f32;
    if wide.is_finite() && wide > 0.0 && !x.is_finite() {
        Err(format!(
            "{s} is too large for float32, whose largest value is {:e}",
            f32::MAX
        ))
    } else if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(format!("must be a finite number ≥ 0, got {s}"))
    }
}

/// Checks, before any work, that `path` can receive an output: its folder exists, it is not a
/// folder, and it is none of `others` (the source, the weights read, another output: each
/// with what it is), which writing it would destroy. `example` is a file name to suggest
/// when `path` is a folder or `-` (none for a name cnnc made, such as a `run` output's
/// file beside `-o`: the way out is another `-o`).
pub fn check_output_path(
    path: &Path,
    example: Option<&str>,
    others: &[(&str, &Path)],
) -> Result<(), String> {
    // `-` reads standard input where a model goes; as an output it would be a file named
    // `-`, which no one asked for.
    if path == Path::new("-") {
        return Err(format!(
            "cannot write -: an output is a file (`-` would make one named `-`); give a file \
             name such as {}, or /dev/stdout to write to standard output",
            example.unwrap_or("out")
        ));
    }
    // `nodir/`: a folder's name (one that exists is refused below, as a folder).
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") && !path.exists() {
        let name = path.display().to_string();
        let folder = name.trim_end_matches('/');
        return Err(format!(
            "cannot write {name}: a name ending in `/` is a folder's, and {} does not exist; \
             give a file name{}",
            folder,
            example
                .map(|e| format!(" such as {folder}/{e}, once the folder is made"))
                .unwrap_or_default()
        ));
    }
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !dir.is_dir() {
            let why = if dir.exists() {
                format!("{} is not a folder", dir.display())
            } else {
                format!("the folder {} does not exist", dir.display())
            };
            return Err(format!("cannot write {}: {why}", path.display()));
        }
    }
    let resolved = cnnc::fsutil::resolve_output(path);
    // Through a link: the folder the file will really be created in.
    if resolved != path {
        if let Some(dir) = resolved.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(format!(
                    "cannot write {}: it is a link to {}, whose folder {} does not exist",
                    path.display(),
                    resolved.display(),
                    dir.display()
                ));
            }
        }
    }
    // A name longer than the file system takes fails only when the file is written: at the
    // end of a training run, or at its first checkpoint.
    if !cnnc::fsutil::is_special(path) {
        if let Some(why) = cnnc::fsutil::name_too_long(path) {
            return Err(format!("cannot write {}: {why}", path.display()));
        }
    }
    if path.is_dir() {
        return Err(match example {
            Some(example) => format!(
                "cannot write {}: it is a folder; give a file name such as {}",
                path.display(),
                path.join(example).display()
            ),
            None => format!("cannot write {}: it is a folder", path.display()),
        });
    }
    // A device or pipe (`-o /dev/null`) is written in place: nothing it names is destroyed.
    if cnnc::fsutil::is_special(path) {
        return Ok(());
    }
    // cnnc never writes `.cnn` source: such a name is a slip that would destroy a model.
    if path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("cnn"))
    {
        // `ckpt.safetensors` is a double extension; the others are one.
        let stem = path.with_extension(match example.map(|e| (e, e.split_once('.'))) {
            Some((example, Some(("ckpt", _)))) => example,
            Some((_, Some((_, ext)))) => ext,
            _ => "out",
        });
        return Err(format!(
            "cannot write {}: it is a .cnn source, which writing it would destroy; choose \
             another file name, such as {}",
            path.display(),
            stem.display()
        ));
    }
    let target = same_file_key(path);
    for (what, other) in others {
        // An input read from `-` is whatever standard input is: a file redirected in
        // (`< in.npy`), which `-o /dev/stdin` would name too.
        let (other, shown) = if *other == Path::new("-") {
            (Path::new("/dev/stdin"), "standard input, `-`".to_string())
        } else {
            (*other, other.display().to_string())
        };
        if target.is_some() && same_file_key(other) == target {
            return Err(format!(
                "cannot write {}: it is {what} ({shown}), which writing it would destroy; choose \
                 another file name",
                path.display()
            ));
        }
    }
    // The folder must take a new file (the temporary one the output is written to): a
    // read-only file system or a folder without write permission fails here, before any
    // work, not after an epoch of training.
    let dir = match resolved.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Nameless where the file system can, so even a kill leaves no probe behind.
    if let Err(e) = cnnc::fsutil::TempBeside::new_in(dir) {
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}

/// Checks, before any work, that an existing file at `path` (through links), which an ONNX
/// model written there would replace, is one: a model is replaced by a new one, but another
/// file (notes, a checkpoint, `--out precious.txt`) is refused, as an existing file that is
/// no checkpoint is at `train`'s checkpoint path. An empty file, a device or a pipe is no
/// loss; a file that cannot be read is left to the write.
pub fn check_replaces_only_a_model(path: &Path) -> Result<(), String> {
    use std::io::Read;
    const WHOLE: u64 = 1 << 16;
    let resolved = cnnc::fsutil::resolve_output(path);
    let Ok(meta) = std::fs::metadata(&resolved) else {
        return Ok(());
    };
    if !meta.is_file() || meta.len() == 0 {
        return Ok(());
    }
    let mut bytes = Vec::new();
    let read = std::fs::File::open(&resolved).and_then(|f| f.take(WHOLE).read_to_end(&mut bytes));
    if read.is_err() {
        return Ok(());
    }
    let is_model = if meta.len() <= WHOLE {
        cnnc::runtime::check_model_bytes(&bytes).is_ok()
    } else {
        cnnc::runtime::starts_like_model(&bytes)
    };
    if is_model {
        return Ok(());
    }
    Err(format!(
        "cannot write {}: it exists and is not an ONNX model, which writing the model would \
         destroy; remove it or choose another file name",
        path.display()
    ))
}

/// Checks, before any work, that an existing file at `path` (through links) that `run -o`
/// would replace is a `.npy` array (an earlier run's output), as
/// [`check_replaces_only_a_model`] does for models. An empty file, a device or a pipe is no
/// loss; a file that cannot be read is left to the write.
pub fn check_replaces_only_an_array(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let resolved = cnnc::fsutil::resolve_output(path);
    let Ok(meta) = std::fs::metadata(&resolved) else {
        return Ok(());
    };
    if !meta.is_file() || meta.len() == 0 {
        return Ok(());
    }
    let mut magic = Vec::new();
    let read = std::fs::File::open(&resolved).and_then(|f| f.take(6).read_to_end(&mut magic));
    if read.is_err() || magic == b"\x93NUMPY" {
        return Ok(());
    }
    Err(format!(
        "cannot write {}: it exists and is not a .npy array, which writing the output would \
         destroy; remove it or choose another file name",
        path.display()
    ))
}

/// The absolute path a file name refers to, links resolved (dangling ones too, as the
/// writer follows them), whether or not the file exists yet (its folder must).
/// Whether `path` (`/dev/stdin`, `/proc/self/fd/0`) opens the stream that standard input
/// is, when that can be read only once: a pipe, a socket or a terminal. (A file redirected to
/// standard input opened again by its name reads from its start, so it is not one.)
pub fn is_standard_input_stream(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let (Ok(named), Ok(stdin)) = (std::fs::metadata(path), std::fs::metadata("/dev/stdin"))
        else {
            return false;
        };
        let t = stdin.file_type();
        (t.is_fifo() || t.is_socket() || t.is_char_device())
            && (named.dev(), named.ino()) == (stdin.dev(), stdin.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

pub fn same_file_key(path: &Path) -> Option<std::path::PathBuf> {
    let path = &cnnc::fsutil::resolve_output(path);
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = std::fs::canonicalize(dir.unwrap_or(Path::new("."))).ok()?;
    Some(dir.join(path.file_name()?))
}

/// Set by Ctrl-C under [`OnSigint::StopAfterStep`] or [`OnSigint::StopMeasuring`]: `cnnc
/// train` stops after its step, `cnnc bench` after its run.
pub static STOP_AFTER_STEP: AtomicBool = AtomicBool::new(false);

/// What the first Ctrl-C (or SIGTERM) does; a second one ends the process at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSigint {
    /// Set [`STOP_AFTER_STEP`] (training finishes its step and writes a checkpoint), and say
    /// so at once: a large step can take seconds, and a silent terminal looks hung.
    StopAfterStep,
    /// Set [`STOP_AFTER_STEP`] while `train` prepares (the data, the sessions): it stops
    /// before the first step, writing nothing.
    StopBeforeStart,
    /// Make the file being written stop and remove its temporary file
    /// ([`cnnc::fsutil::CANCEL`]), so an interrupted export leaves nothing behind.
    CancelWrites,
    /// Set [`STOP_AFTER_STEP`]: `bench` ends its measurement after the current run and
    /// reports the runs so far.
    StopMeasuring,
}

/// What `train` is doing, for the first Ctrl-C's notice: it stops after the step in
/// progress, cuts the test evaluation short, or lets the checkpoint being written finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TrainPhase {
    Stepping,
    Evaluating,
    Checkpointing,
}

static TRAIN_PHASE: AtomicU8 = AtomicU8::new(TrainPhase::Stepping as u8);

impl TrainPhase {
    pub fn enter(self) {
        TRAIN_PHASE.store(self as u8, Ordering::SeqCst);
    }
}

const STOPPING: &[u8] = b"stopping after this step, then writing a checkpoint (a second Ctrl-C or SIGTERM quits at once, without one)\n";
const STOPPING_EVALUATION: &[u8] = b"stopping: the epoch is trained; its test evaluation is cut short and a checkpoint written (a second Ctrl-C or SIGTERM quits at once, without one)\n";
const STOPPING_AFTER_CHECKPOINT: &[u8] = b"stopping once the checkpoint being written is complete (a second Ctrl-C or SIGTERM quits at once, without it)\n";

/// The first Ctrl-C's notice in `phase` (a [`TrainPhase`] as stored).
fn stop_notice(phase: u8) -> &'static [u8] {
    match phase {
        p if p == TrainPhase::Evaluating as u8 => STOPPING_EVALUATION,
        p if p == TrainPhase::Checkpointing as u8 => STOPPING_AFTER_CHECKPOINT,
        _ => STOPPING,
    }
}

extern "C" fn stop_after_step(signal: libc::c_int) {
    quit_if_waiting_on_pipe(signal);
    request_stop(signal, stop_notice(TRAIN_PHASE.load(Ordering::SeqCst)));
}

const STOPPING_EARLY: &[u8] =
    b"stopping before training starts; nothing is written (a second Ctrl-C or SIGTERM quits at once)\n";

extern "C" fn stop_before_start(signal: libc::c_int) {
    quit_if_waiting_on_pipe(signal);
    request_stop(signal, STOPPING_EARLY);
}

/// Sets [`STOP_AFTER_STEP`], says `notice` (after which signal came, when not Ctrl-C) and
/// lets the next signal end the process. Only async-signal-safe calls: it runs in a signal
/// handler.
fn request_stop(signal: libc::c_int, notice: &'static [u8]) {
    FIRST_SIGNAL_AT.store(monotonic_ns(), Ordering::SeqCst);
    STOP_AFTER_STEP.store(true, Ordering::SeqCst);
    cnnc::fsutil::STOP_SIGNAL.store(signal, Ordering::SeqCst);
    let prefix: &[u8] = if signal == libc::SIGTERM {
        b"\ncnnc: SIGTERM: "
    } else {
        b"\ncnnc: "
    };
    // SAFETY: write(2) is async-signal-safe; the buffers are statics.
    unsafe {
        libc::write(2, prefix.as_ptr().cast(), prefix.len());
        libc::write(2, notice.as_ptr().cast(), notice.len());
    }
    reset_signals();
}

const STOPPING_BENCH: &[u8] =
    b"stopping after this run; the results so far follow (a second Ctrl-C or SIGTERM quits at once)\n";

extern "C" fn stop_measuring(signal: libc::c_int) {
    quit_if_waiting_on_pipe(signal);
    request_stop(signal, STOPPING_BENCH);
}

extern "C" fn cancel_writes(signal: libc::c_int) {
    quit_if_waiting_on_pipe(signal);
    FIRST_SIGNAL_AT.store(monotonic_ns(), Ordering::SeqCst);
    cnnc::fsutil::STOP_SIGNAL.store(signal, Ordering::SeqCst);
    cnnc::fsutil::CANCEL.store(true, Ordering::SeqCst);
    reset_signals();
}

/// The second signal ends the process at once, with the shell's status for a signal
/// (128 + its number), after removing the temporary file of a write in progress.
fn reset_signals() {
    let handler: extern "C" fn(libc::c_int) = quit_now;
    // SAFETY: signal() is async-signal-safe; `quit_now` is a valid handler.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

const QUIT_NOW: &[u8] = b"\ncnnc: stopped at once by a second signal; nothing more is written\n";

/// When the first signal came (CLOCK_MONOTONIC, in nanoseconds).
static FIRST_SIGNAL_AT: AtomicU64 = AtomicU64::new(0);

/// A second signal closer than this to the first is the same request, not a second one:
/// GNU `timeout -s INT` signals the process and then its process group, a shell's Ctrl-C
/// reaches a pipeline's every process, and a person does not press twice in 100 ms.
const SAME_REQUEST_NS: u64 = 100_000_000;

/// CLOCK_MONOTONIC in nanoseconds (async-signal-safe: clock_gettime is).
fn monotonic_ns() -> u64 {
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime fills the timespec on this stack.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

extern "C" fn quit_now(signal: libc::c_int) {
    let first = FIRST_SIGNAL_AT.load(Ordering::SeqCst);
    if first != 0
        && cnnc::fsutil::STOP_SIGNAL.load(Ordering::SeqCst) == signal
        && monotonic_ns().saturating_sub(first) < SAME_REQUEST_NS
    {
        return;
    }
    die_of(signal, QUIT_NOW);
}

const QUIT_WAITING: &[u8] =
    b"\ncnnc: stopped while waiting for the other end of a pipe; nothing more is written\n";

/// Ends the process at once when the signal came while it waits on a pipe's other end (to
/// open it, read or write it: [`cnnc::fsutil::is_waiting_on_pipe`]): the call is restarted
/// after the handler, so asking the work to stop would leave it waiting.
fn quit_if_waiting_on_pipe(signal: libc::c_int) {
    if cnnc::fsutil::is_waiting_on_pipe() {
        die_of(signal, QUIT_WAITING);
    }
}

/// Removes the temporary files of writes in progress, says `notice` and ends the process
/// of `signal`. Only async-signal-safe calls: it runs in a signal handler.
fn die_of(signal: libc::c_int, notice: &'static [u8]) -> ! {
    cnnc::fsutil::remove_pending_temp();
    // SAFETY: write(2) is async-signal-safe; the buffer is a static.
    unsafe {
        libc::write(2, notice.as_ptr().cast(), notice.len());
    }
    // Die of the signal itself, as the default action would have: a shell loop stops on a
    // child killed by SIGINT, not on one that exited 130.
    // The signal is blocked while its handler runs: unblock it, or raise() would only leave
    // it pending until _exit.
    // SAFETY: signal(), sigemptyset(), sigaddset(), pthread_sigmask(), raise() and _exit()
    // are async-signal-safe; the set lives on this stack.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
        libc::_exit(128 + signal)
    }
}

/// Switches to `on` unless a stop was requested already (then returns true and leaves the
/// second signal's handler in place), with SIGINT and SIGTERM blocked meanwhile in this
/// thread: a signal cannot fall between the check and the switch, and be lost or answered by
/// the wrong handler; one that another thread took is seen after the switch.
pub fn switch_sigint_unless_stopped(on: OnSigint) -> bool {
    // SAFETY: a signal set on this stack, given to pthread_sigmask for the calling thread.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let mut stopped = STOP_AFTER_STEP.load(Ordering::SeqCst);
    if !stopped {
        install_sigint(on);
        // The mask holds for this thread only: ONNX Runtime's threads may have taken a
        // signal meanwhile, with the old handler, which set the flag and installed
        // `quit_now`, and `on` has just replaced that. Put it back: the stop stands, and a
        // second signal still quits at once.
        stopped = STOP_AFTER_STEP.load(Ordering::SeqCst);
        if stopped {
            reset_signals();
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    stopped
}

/// Installs `on` for Ctrl-C (SIGINT) and SIGTERM (`kill`, `timeout`, a job scheduler), so
/// both stop the same clean way.
pub fn install_sigint(on: OnSigint) {
    let handler: extern "C" fn(libc::c_int) = match on {
        OnSigint::StopAfterStep => stop_after_step,
        OnSigint::StopBeforeStart => stop_before_start,
        OnSigint::CancelWrites => cancel_writes,
        OnSigint::StopMeasuring => stop_measuring,
    };
    // SAFETY: each handler only stores to an atomic, writes a static message and resets the
    // dispositions, all async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// The memory this process can still take, in bytes (Linux): `MemAvailable` of
/// /proc/meminfo, or less where its control group's limit (a container's, a systemd unit's,
/// a job scheduler's) leaves less, since going past that gets the process killed without a
/// word.
pub fn available_memory() -> Option<u64> {
    let host = kib_field("/proc/meminfo", "MemAvailable:");
    let group = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|groups| cgroup_headroom(&groups, Path::new("/sys/fs/cgroup")));
    match (host, group) {
        (Some(h), Some(g)) => Some(h.min(g)),
        (h, g) => h.or(g),
    }
}

/// What the memory limits of the control groups in `groups` (the text of /proc/self/cgroup)
/// still allow, the least over each group and those above it: the limit less the memory in
/// use, not counting the inactive file cache, which the kernel reclaims first. cgroup v2
/// (`memory.max`, `memory.current`) and v1 (`memory.limit_in_bytes`, `memory.usage_in_bytes`)
/// under `root`; None where no group sets a limit.
fn cgroup_headroom(groups: &str, root: &Path) -> Option<u64> {
    let mut least: Option<u64> = None;
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (top, limit, usage, inactive) = if controllers.is_empty() {
            (
                root.to_path_buf(),
                "memory.max",
                "memory.current",
                "inactive_file",
            )
        } else if controllers.split(',').any(|c| c == "memory") {
            (
                root.join("memory"),
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        } else {
            continue;
        };
        let mut dir = top.join(path.trim_start_matches('/'));
        loop {
            let number = |file: &str| -> Option<u64> {
                std::fs::read_to_string(dir.join(file))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            // v2 writes no limit as `max`, v1 as a number near 2^63.
            if let (Some(max), Some(used)) = (number(limit).filter(|m| *m < 1 << 60), number(usage))
            {
                let cache = std::fs::read_to_string(dir.join("memory.stat"))
                    .ok()
                    .and_then(|stat| {
                        stat.lines().find_map(|l| {
                            let (key, n) = l.split_once(' ')?;
                            (key == inactive).then(|| n.trim().parse::<u64>().ok())?
                        })
                    })
                    .unwrap_or(0);
                let room = max.saturating_sub(used.saturating_sub(cache));
                least = Some(least.map_or(room, |l| l.min(room)));
            }
            if dir == top || !dir.pop() || !dir.starts_with(&top) {
                break;
            }
        }
    }
    least
}

/// The most memory this process has held resident so far (`VmHWM` of /proc/self/status, in
/// bytes; Linux): ONNX Runtime's buffers and the model's weights included.
pub fn peak_memory() -> Option<u64> {
    kib_field("/proc/self/status", "VmHWM:")
}

/// The `KEY  N kB` line of a /proc file, in bytes.
fn kib_field(file: &str, key: &str) -> Option<u64> {
    let info = std::fs::read_to_string(file).ok()?;
    let line = info.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Training and gradient graphs apply log-softmax in their loss: a model that already ends
/// in softmax squashes twice and learns slowly, and so does a named output that is a loss
/// term (`aux_weight` above 0). Said on stderr.
pub fn warn_final_softmax(model: &cnnc::shape::CheckedModel, aux_weight: f32) {
    let is_softmax = |ix| matches!(model.node(ix).op, cnnc::ir::Op::Softmax);
    if is_softmax(model.graph.output) {
        note!(
            "warning: model `{}` ends in softmax, and the loss applies its own log-softmax to \
             the output: training sees probabilities squashed twice and learns slowly; end the \
             model with the class scores (drop the final softmax) as PyTorch's \
             CrossEntropyLoss (and Keras's `from_logits=True`) expects",
            model.name
        );
    }
    let softmax_outputs: Vec<&str> = model
        .graph
        .named_outputs
        .iter()
        .filter(|o| aux_weight > 0.0 && o.node != model.graph.output && is_softmax(o.node))
        .map(|o| o.name.as_str())
        .collect();
    if !softmax_outputs.is_empty() {
        note!(
            "warning: the named output{} `{}` of model `{}` end{} in softmax, and the loss \
             applies its own log-softmax to {}: training sees probabilities squashed twice and \
             learns slowly; end {} with the class scores (drop the final softmax)",
            if softmax_outputs.len() == 1 { "" } else { "s" },
            softmax_outputs.join("`, `"),
            model.name,
            if softmax_outputs.len() == 1 { "s" } else { "" },
            if softmax_outputs.len() == 1 {
                "it"
            } else {
                "them"
            },
            if softmax_outputs.len() == 1 {
                "it"
            } else {
                "each"
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container's memory limit, in cgroup v2 and v1 layouts: the least room over the
    /// group and those above it, inactive file cache counted free, no limit none.
    #[test]
    fn the_memory_left_under_a_cgroup_limit() {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let p = root.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        // v2: the job's group has no limit of its own, its parent 1.5 GB, 1 GB in use of
        // which 200 MB is inactive cache.
        write("jobs/memory.max", "1500000000\n");
        write("jobs/memory.current", "1000000000\n");
        write(
            "jobs/memory.stat",
            "anon 800000000\ninactive_file 200000000\n",
        );
        write("jobs/one/memory.max", "max\n");
        write("jobs/one/memory.current", "900000000\n");
        assert_eq!(
            cgroup_headroom("0::/jobs/one\n", root.path()),
            Some(700_000_000)
        );
        // v1: the limit on the group itself; a controller list without memory is skipped.
        write("memory/box/memory.limit_in_bytes", "2000000000\n");
        write("memory/box/memory.usage_in_bytes", "500000000\n");
        write("memory/memory.limit_in_bytes", "9223372036854771712\n");
        write("memory/memory.usage_in_bytes", "1\n");
        assert_eq!(
            cgroup_headroom("5:cpu:/other\n4:memory:/box\n", root.path()),
            Some(1_500_000_000)
        );
        // No limit anywhere (v1's near-2^63, v2's `max`), a group that is not there.
        assert_eq!(cgroup_headroom("4:memory:/\n", root.path()), None);
        assert_eq!(cgroup_headroom("0::/missing\n", root.path()), None);
        assert_eq!(cgroup_headroom("", root.path()), None);
    }

    #[test]
    fn colour_follows_no_color_clicolor_force_and_dumb_terminals() {
        let with = |vars: &[(&str, &str)], terminal: bool| {
            color_from(
                |name| {
                    vars.iter()
                        .find(|(n, v)| *n == name && !v.is_empty())
                        .map(|(_, v)| (*v).into())
                },
                terminal,
            )
        };
        assert!(with(&[], true));
        assert!(!with(&[], false));
        assert!(!with(&[("NO_COLOR", "1")], true));
        assert!(
            with(&[("NO_COLOR", "")], true),
            "an empty NO_COLOR does not count"
        );
        assert!(!with(&[("TERM", "dumb")], true));
        assert!(with(&[("CLICOLOR_FORCE", "1")], false));
        assert!(!with(&[("CLICOLOR_FORCE", "0")], false));
        assert!(!with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], false));
    }

    #[test]
    fn the_stop_notice_says_what_is_finished_first() {
        let said = |phase: TrainPhase| String::from_utf8_lossy(stop_notice(phase as u8));
        assert!(said(TrainPhase::Stepping).starts_with("stopping after this step"));
        assert!(said(TrainPhase::Evaluating).contains("test evaluation is cut short"));
        assert!(said(TrainPhase::Checkpointing).contains("checkpoint being written"));
    }
}
