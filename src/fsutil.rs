//! File writing shared by every command that writes a file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// Set (by the binary's Ctrl-C handler) to stop every atomic write in progress: its next
/// write fails with [`Cancelled`] and its temporary file is removed, the target untouched.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

/// How many calls that may wait on a pipe are under way: an open(2) of a pipe with no
/// process at its other end (`-o fifo`, `--weights fifo`) blocks until one comes, and a read
/// from (or write to) a pipe until its other end moves; each is restarted after a signal,
/// so the binary's handlers end the process at once instead of asking the work to stop
/// ([`waiting_on_pipe`]).
static WAITING_ON_PIPE: AtomicUsize = AtomicUsize::new(0);

/// Whether a call that may wait on a pipe is under way (async-signal-safe: an atomic load).
pub fn is_waiting_on_pipe() -> bool {
    WAITING_ON_PIPE.load(Ordering::SeqCst) > 0
}

/// `work()`, counted as waiting on a pipe ([`is_waiting_on_pipe`]) while it runs.
pub fn waiting_on_pipe<T>(work: impl FnOnce() -> T) -> T {
    WAITING_ON_PIPE.fetch_add(1, Ordering::SeqCst);
    let done = work();
    WAITING_ON_PIPE.fetch_sub(1, Ordering::SeqCst);
    done
}

/// `options.open(path)`, [`waiting_on_pipe`]: the path may name one.
pub fn open_waiting(options: &std::fs::OpenOptions, path: &Path) -> std::io::Result<File> {
    if CANCEL.load(Ordering::SeqCst) {
        return Err(std::io::Error::other(Cancelled));
    }
    waiting_on_pipe(|| options.open(path))
}

/// Whether `file` is a pipe or a socket, whose reads and writes wait on its other end.
pub fn is_pipe(file: &File) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file.metadata()
        .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket())
}

/// Opens `path` to read it, as [`open_waiting`].
pub fn open_to_read(path: &Path) -> std::io::Result<File> {
    open_waiting(std::fs::OpenOptions::new().read(true), path)
}

/// The signal that asked the process to stop (SIGINT or SIGTERM), 0 before one came: set by
/// the binary's handlers, so that messages name what stopped the work.
pub static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// What stopped the work, for messages: `Ctrl-C` (SIGINT, also before any signal) or
/// `SIGTERM`.
pub fn stopped_by() -> &'static str {
    if STOP_SIGNAL.load(Ordering::SeqCst) == libc::SIGTERM {
        "SIGTERM"
    } else {
        "Ctrl-C"
    }
}

/// The temporary files being written now (C strings, or null), for a signal that ends the
/// process at once to remove ([`remove_pending_temp`]): two at most, a model and its
/// external data file staged together ([`stage_with`]). Replaced strings are leaked, not
/// freed: a signal handler on another thread may still be reading one.
static PENDING_TEMPS: [AtomicPtr<libc::c_char>; 2] = [
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
];

/// Marks a temporary file as being written until dropped: if the process is ended by a
/// second Ctrl-C meanwhile, the handler removes it, so no `.tmp` file is left behind.
pub struct PendingTemp(Option<usize>);

impl PendingTemp {
    pub fn register(path: &Path) -> PendingTemp {
        use std::os::unix::ffi::OsStrExt;
        // A relative path would be resolved against the working directory at removal
        // time, which does not change: fine as it is.
        let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return PendingTemp(None);
        };
        let c = c.into_raw();
        let free = PENDING_TEMPS.iter().position(|slot| {
            slot.compare_exchange(std::ptr::null_mut(), c, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        // Both slots taken (not done by cnnc): the last slot is reused, as before.
        let slot = free.unwrap_or_else(|| {
            PENDING_TEMPS[1].store(c, Ordering::SeqCst);
            1
        });
        PendingTemp(Some(slot))
    }
}

impl Drop for PendingTemp {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            PENDING_TEMPS[slot].store(std::ptr::null_mut(), Ordering::SeqCst);
        }
    }
}

/// Removes the temporary files registered by [`PendingTemp`], if any. Async-signal-safe
/// (atomic loads and unlink(2)): for a signal handler that ends the process.
pub fn remove_pending_temp() {
    for slot in &PENDING_TEMPS {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: `p` came from CString::into_raw and is never freed.
            unsafe {
                libc::unlink(p);
            }
        }
    }
}

/// The error of a write stopped by [`CANCEL`].
#[derive(Debug)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}", stopped_by())
    }
}

impl std::error::Error for Cancelled {}

/// A file that refuses further writes once [`CANCEL`] is set.
pub struct CancellableFile<'f>(&'f mut File);

impl Write for CancellableFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if CANCEL.load(Ordering::Relaxed) {
            return Err(std::io::Error::other(Cancelled));
        }
        // At most 8 MiB at a time, so a Ctrl-C is seen during a model of gigabytes written
        // in one call.
        self.0.write(&buf[..buf.len().min(8 << 20)])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A read error in words ("no such file"), without the OS error number.
pub fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".into(),
        _ if e.raw_os_error() == Some(libc::ELOOP) => "a loop of symbolic links".into(),
        _ => e.to_string(),
    }
}

/// [`io_message`] for an error reading `path`, which also tells a link whose target is
/// missing from a missing file, and a loop of links: "no such file" would send the user to
/// look at the wrong name.
pub fn read_message(path: &Path, e: &std::io::Error) -> String {
    let is_loop = |e: &std::io::Error| e.raw_os_error() == Some(libc::ELOOP);
    if e.kind() == std::io::ErrorKind::NotFound || is_loop(e) {
        if let Ok(target) = std::fs::read_link(path) {
            if is_loop(e) || std::fs::metadata(path).err().is_some_and(|e| is_loop(&e)) {
                return format!(
                    "it is a loop of symbolic links: it links to {}, which never leads to a file",
                    target.display()
                );
            }
            return format!(
                "it is a symbolic link to {}, which does not exist",
                target.display()
            );
        }
    }
    io_message(e)
}

/// Reads an input file (a model, weights, an array) of at most `limit` bytes. A character
/// or block device (`/dev/zero`, a terminal) is refused: it is no file and may never end. A
/// pipe is read as it comes, up to the limit. The error is in words, for `path: …`.
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    read_input_until(path, limit, |_| Worth::ReadOn)
}

/// What the first bytes of a file with a header say about how much of it is worth reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Worth {
    /// The header is not whole yet: read on.
    ReadOn,
    /// The header declares this many bytes in all: read one byte more (to tell a longer
    /// file), no further.
    Length(u64),
    /// The header is malformed: what was read is enough to say so.
    Stop,
}

/// [`read_input`], asking `worth` after each read how much of the file is worth reading
/// ([`Worth`]), so that a file far longer than its header declares is not read whole before
/// being refused.
pub fn read_input_until(
    path: &Path,
    limit: u64,
    worth: impl FnMut(&[u8]) -> Worth,
) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::FileTypeExt;
    let file = open_to_read(path).map_err(|e| read_message(path, &e))?;
    let kind = file.metadata().map_err(|e| io_message(&e))?.file_type();
    if kind.is_char_device() || kind.is_block_device() {
        return Err("it is a device, not a file".into());
    }
    if kind.is_dir() {
        return Err("it is a directory".into());
    }
    if is_pipe(&file) {
        return waiting_on_pipe(|| read_capped(file, limit, worth));
    }
    read_capped(file, limit, worth)
}

/// What [`read_input_until`] reads from an open file, standard input or a pipe.
pub fn read_capped(
    reader: impl std::io::Read,
    limit: u64,
    mut worth: impl FnMut(&[u8]) -> Worth,
) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut reader = reader.take(limit.saturating_add(1));
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_message(&e)),
        };
        // Not an abort where memory runs out: an error that says so.
        crate::oom::try_reserve(&mut bytes, n).map_err(|_| {
            format!(
                "not enough memory to read it: {} read so far",
                crate::shape::summary::bytes(bytes.len() as u64)
            )
        })?;
        bytes.extend_from_slice(&chunk[..n]);
        match worth(&bytes) {
            Worth::ReadOn => {}
            Worth::Stop => break,
            // What the header declares is refused before it is read (from a pipe, the
            // length is known from the header alone).
            Worth::Length(declared) if declared > limit => {
                return Err(format!(
                    "its header declares {} in all, more than the {} that can be read here",
                    crate::shape::summary::bytes(declared),
                    crate::shape::summary::bytes(limit)
                ));
            }
            Worth::Length(declared) => {
                let cap = declared.saturating_add(1).min(limit.saturating_add(1));
                if bytes.len() as u64 >= cap {
                    bytes.truncate(cap as usize);
                    break;
                }
                reader.set_limit(cap - bytes.len() as u64);
            }
        }
    }
    if bytes.len() as u64 > limit {
        return Err(format!(
            "it holds more than {}, more than such a file can be",
            crate::shape::summary::bytes(limit)
        ));
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` atomically: into a temporary file in the target's folder, then
/// renamed over `path`, so a reader sees the old file or the whole new one, never a part.
/// (Not fsync'd: durability across a power cut is not promised; checkpoints sync
/// themselves.) On any error the target is untouched and the temporary file is removed, so
/// no command leaves a partial file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// The file an output path names: through symbolic links (also dangling ones, whose target
/// is then created), so a write replaces the link's target, not the link.
pub fn resolve_output(path: &Path) -> std::path::PathBuf {
    let mut p = path.to_path_buf();
    // A bounded walk: a loop of links is left to the write to report.
    for _ in 0..40 {
        // A link to a device or pipe is written through as it is: `/dev/stdout` leads to
        // `/proc/self/fd/1`, whose "target" (`pipe:[1234]`) is no path.
        if is_special(&p) {
            break;
        }
        match std::fs::read_link(&p) {
            Ok(target) => {
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                }
            }
            Err(_) => break,
        }
    }
    p
}

/// The longest file name the file system holding `dir` takes, in bytes (`pathconf`'s
/// `_PC_NAME_MAX`; 255 where it cannot be read, as on Linux's own file systems).
pub fn name_max(dir: &Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 255;
    };
    // SAFETY: `c` is a valid NUL-terminated path.
    let n = unsafe { libc::pathconf(c.as_ptr(), libc::_PC_NAME_MAX) };
    if n > 0 {
        n as usize
    } else {
        255
    }
}

/// Why a file cannot be created at `path` for the length of its name (or of the file a
/// link there leads to): a file name longer than its file system takes, or a path longer
/// than the kernel takes (`PATH_MAX`). `None` when the lengths are fine. Said in words, for
/// `cannot write PATH: …`.
pub fn name_too_long(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let resolved = resolve_output(path);
    for p in [path, resolved.as_path()] {
        let len = p.as_os_str().len();
        if len >= libc::PATH_MAX as usize {
            return Some(format!(
                "the path is {len} bytes long, more than the {} the system takes; choose a \
                 shorter one",
                libc::PATH_MAX - 1
            ));
        }
        let Some(name) = p.file_name() else { continue };
        let max = name_max(p.parent().unwrap_or(Path::new(".")));
        let len = name.as_bytes().len();
        if len > max {
            return Some(format!(
                "its file name{} is {len} bytes long, more than the {max} its file system takes; \
                 choose a shorter name",
                if p == path {
                    String::new()
                } else {
                    format!(" (through a link: {})", p.display())
                }
            ));
        }
    }
    None
}

/// Another name beside `path` for a file that cannot go there (another process wrote a
/// file there meanwhile): `<stem>.pid<PID>[-<n>].<extension>` (the extension
/// `.ckpt.safetensors` kept whole), the stem shortened where the name would be longer than
/// the file system takes. `n` (from 0) picks another when that one is taken too.
pub fn alternative_name(path: &Path, n: u32) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let split = if name.ends_with(".ckpt.safetensors") && name.len() > ".ckpt.safetensors".len() {
        name.len() - ".ckpt.safetensors".len()
    } else {
        match name.rfind('.') {
            Some(i) if i > 0 => i,
            _ => name.len(),
        }
    };
    let (stem, ext) = name.split_at(split);
    let tag = match n {
        0 => format!(".pid{}", std::process::id()),
        n => format!(".pid{}-{}", std::process::id(), n + 1),
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let room = name_max(dir).saturating_sub(tag.len() + ext.len()).max(1);
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    path.with_file_name(format!("{}{tag}{ext}", &stem[..cut]))
}

/// Whether `path` names an existing device, pipe or socket (written in place, not replaced).
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// [`write_atomic`] of whatever `write` writes (buffered), for files made as they are
/// written.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<CancellableFile<'_>>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    commit([stage_with(path, write)?])
}

/// Which file a path names, as far as telling whether another process wrote it goes: its
/// device and inode (a file put in place by a rename, as every output is, is a new inode),
/// its length and its modification time (a file written over in place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileId {
    pub fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// What was at an output's path when the command started, or once its own last write of it
/// was in place: the file a write there may replace. A file another process wrote there
/// since (a run beside this one, given the same path) is not it, and is left as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// No file: the write goes in place only where there is still none (rename without
    /// replacing).
    Nothing,
    /// This file: the write replaces it only while it is still there (or puts its own in
    /// place where it has gone and nothing took its place).
    File(FileId),
    /// Not watched: whatever is there is replaced (a device or pipe is written in place).
    Any,
}

impl Found {
    /// What is at the output `path` now, through links as the write goes: a device or pipe
    /// (written in place, never replaced) or anything but a file (which the write reports)
    /// is not watched.
    pub fn at(path: &Path) -> Found {
        let resolved = resolve_output(path);
        if is_special(&resolved) {
            return Found::Any;
        }
        match std::fs::symlink_metadata(&resolved) {
            Ok(m) if m.is_file() => Found::File(FileId::of(&m)),
            Ok(_) => Found::Any,
            Err(_) => Found::Nothing,
        }
    }

    /// Whether `target` (a path [`resolve_output`] gave) is still what was found:
    /// `Some(true)` the same file (or none, where none was; anything, where nothing was
    /// watched), `Some(false)` gone (where a file was), `None` another file.
    pub fn still_at(self, target: &Path) -> Option<bool> {
        let now = std::fs::symlink_metadata(target);
        match (self, now) {
            (Found::Any, _) => Some(true),
            (Found::Nothing, Err(_)) => Some(true),
            (Found::Nothing, Ok(_)) => None,
            (Found::File(id), Ok(m)) => (m.is_file() && FileId::of(&m) == id).then_some(true),
            (Found::File(_), Err(_)) => Some(false),
        }
    }
}

/// A file being written beside the output it will become, not yet in place. Where the file
/// system can (Linux's `O_TMPFILE`: ext4, xfs, btrfs, tmpfs), it has no name until it is put
/// in place: a process killed meanwhile (SIGKILL, the out-of-memory killer) leaves nothing
/// behind, where a named temporary file would stay. Elsewhere it is a hidden
/// `.cnnc-tmp-*` file, removed when dropped and by the signal handlers ([`PendingTemp`]).
/// Dropped before it is put in place, it is gone.
pub struct TempBeside {
    file: File,
    /// Its name, where it has one (not an `O_TMPFILE` file).
    named: Option<(tempfile::TempPath, PendingTemp)>,
}

/// The error of putting a [`TempBeside`] in place, which gives the file back (to try
/// another name).
pub struct PersistError {
    pub error: std::io::Error,
    pub temp: TempBeside,
}

impl PersistError {
    /// A named file's failure, the file given back.
    fn named(file: File, pending: PendingTemp, e: tempfile::PathPersistError) -> PersistError {
        PersistError {
            error: e.error,
            temp: TempBeside {
                file,
                named: Some((e.path, pending)),
            },
        }
    }
}

impl std::fmt::Debug for PersistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PersistError({:?})", self.error)
    }
}

/// A counter that makes the short-lived names of [`TempBeside::persist`] unique within the
/// process (the process id makes them unique between processes).
static LINK_NAMES: AtomicUsize = AtomicUsize::new(0);

impl TempBeside {
    /// A new empty file in `dir` (mode 0600 until [`TempBeside::give_mode_of`]). Its error
    /// says "cannot create a file in DIR: …" (a temporary name would mean nothing to the
    /// user).
    pub fn new_in(dir: &Path) -> std::io::Result<TempBeside> {
        match Self::anonymous_in(dir) {
            Some(file) => Ok(TempBeside { file, named: None }),
            None => Self::named_in(dir),
        }
    }

    /// [`TempBeside::new_in`] where the file system makes no nameless file: a hidden
    /// `.cnnc-tmp-*` file.
    pub fn named_in(dir: &Path) -> std::io::Result<TempBeside> {
        let tmp = tempfile::Builder::new()
            .prefix(".cnnc-tmp-")
            .tempfile_in(dir)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create a file in {}: {}",
                        dir.display(),
                        // Without tempfile's wrapping, which names its random file.
                        io_message(&std::io::Error::from(e.kind()))
                    ),
                )
            })?;
        let (file, path) = tmp.into_parts();
        let pending = PendingTemp::register(&path);
        Ok(TempBeside {
            file,
            named: Some((path, pending)),
        })
    }

    /// An `O_TMPFILE` file in `dir`, where the file system makes one and `/proc` is there to
    /// link it into place by ([`link_anonymous`]); `None` otherwise, for a named file (whose
    /// error, if it fails too, is the one reported).
    #[cfg(target_os = "linux")]
    fn anonymous_in(dir: &Path) -> Option<File> {
        use std::os::unix::fs::OpenOptionsExt;
        if !Path::new("/proc/self/fd").is_dir() {
            return None;
        }
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
            .ok()
    }

    #[cfg(not(target_os = "linux"))]
    fn anonymous_in(_dir: &Path) -> Option<File> {
        None
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// Whether it has no name until put in place (an `O_TMPFILE` file).
    pub fn is_anonymous(&self) -> bool {
        self.named.is_none()
    }

    /// A path that opens this file, for a writer that takes a path: its name, or its link in
    /// `/proc/self/fd`.
    pub fn path_to_open(&self) -> std::path::PathBuf {
        use std::os::fd::AsRawFd;
        match &self.named {
            Some((path, _)) => path.to_path_buf(),
            None => format!("/proc/self/fd/{}", self.file.as_raw_fd()).into(),
        }
    }

    /// Gives it the mode `target` has, or 0644 when `target` is new: an output is an
    /// ordinary file, and a temporary one is made 0600.
    pub fn give_mode_of(&self, target: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target).map_or(0o644, |m| m.permissions().mode() & 0o777);
        self.file
            .set_permissions(std::fs::Permissions::from_mode(mode))
    }

    /// Puts it in place at `target`, replacing what is there. Returns the file now there:
    /// this one, or the copy made where it could not be linked
    /// ([`TempBeside::copied_to_named`]), whose identity is another.
    pub fn persist(self, target: &Path) -> Result<File, PersistError> {
        match self.named {
            Some((path, pending)) => match path.persist(target) {
                Ok(()) => Ok(self.file),
                Err(e) => Err(PersistError::named(self.file, pending, e)),
            },
            // Linked under a name of its own beside the target, then renamed over it: a link
            // cannot replace a file. A kill between the two leaves that name, for the
            // microseconds between two system calls.
            None => {
                let dir = match target.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                let linked = loop {
                    let name = dir.join(format!(
                        ".cnnc-tmp-{}-{}",
                        std::process::id(),
                        LINK_NAMES.fetch_add(1, Ordering::SeqCst)
                    ));
                    match link_anonymous(&self.file, &name) {
                        Ok(()) => break name,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(error) => return self.copy_where_refused(dir, error)?.persist(target),
                    }
                };
                let pending = PendingTemp::register(&linked);
                let renamed = std::fs::rename(&linked, target);
                if renamed.is_err() {
                    let _ = std::fs::remove_file(&linked);
                }
                drop(pending);
                match renamed {
                    Ok(()) => Ok(self.file),
                    Err(error) => Err(PersistError { error, temp: self }),
                }
            }
        }
    }

    /// Puts it in place at `target` only where nothing is there; otherwise the error is of
    /// kind `AlreadyExists` and the target is left as it is. Returns the file now there, as
    /// [`TempBeside::persist`] does.
    pub fn persist_noclobber(self, target: &Path) -> Result<File, PersistError> {
        match self.named {
            Some((path, pending)) => match path.persist_noclobber(target) {
                Ok(()) => Ok(self.file),
                Err(e) => Err(PersistError::named(self.file, pending, e)),
            },
            None => match link_anonymous(&self.file, target) {
                Ok(()) => Ok(self.file),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(PersistError { error, temp: self })
                }
                Err(error) => self
                    .copy_where_refused(target.parent().unwrap_or(Path::new(".")), error)?
                    .persist_noclobber(target),
            },
        }
    }

    /// Where linking this nameless file into place failed with `error`: a named copy to put
    /// there instead where the link itself was refused ([`TempBeside::copied_to_named`]),
    /// else `error` (a folder gone, a name too long, a read-only file system: a copy would
    /// fail the same way, after writing it all). Where the copy fails, its error is the one
    /// told (a full disk, which the copy needs room for, is what the user can act on).
    fn copy_where_refused(
        self,
        dir: &Path,
        error: std::io::Error,
    ) -> Result<TempBeside, PersistError> {
        let refused = matches!(
            error.raw_os_error(),
            Some(libc::EPERM | libc::EACCES | libc::EOPNOTSUPP | libc::ENOSYS)
        );
        if !refused {
            return Err(PersistError { error, temp: self });
        }
        match self.copied_to_named(dir) {
            Ok(named) => Ok(named),
            Err(error) => Err(PersistError { error, temp: self }),
        }
    }

    /// The same bytes and mode in a named file in `dir`, written to disk: for a nameless
    /// file that cannot be linked into place after it was written (a seccomp or AppArmor
    /// rule against `linkat`, a file system that makes `O_TMPFILE` files but cannot link
    /// them).
    fn copied_to_named(&self, dir: &Path) -> std::io::Result<TempBeside> {
        use std::io::Seek;
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let mut named = Self::named_in(dir)?;
        let mut from = &self.file;
        from.seek(std::io::SeekFrom::Start(0))?;
        std::io::copy(&mut from, &mut named.file)?;
        named
            .file
            .set_permissions(self.file.metadata()?.permissions())?;
        named.file.sync_all()?;
        Ok(named)
    }
}

#[cfg(test)]
thread_local! {
    /// Makes [`link_anonymous`] refuse on this thread, as a seccomp rule would: for the
    /// tests of [`TempBeside::copied_to_named`].
    static REFUSE_LINKS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Gives the `O_TMPFILE` file `file` the name `to`, which must not exist: through its link
/// in `/proc/self/fd` (what an unprivileged process may do), else by its descriptor
/// (`AT_EMPTY_PATH`, for a process with `CAP_DAC_READ_SEARCH` where `/proc` is gone).
#[cfg(target_os = "linux")]
fn link_anonymous(file: &File, to: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    #[cfg(test)]
    if REFUSE_LINKS.with(|refuse| refuse.get()) {
        return Err(std::io::Error::from_raw_os_error(libc::EPERM));
    }
    use std::os::unix::ffi::OsStrExt;
    let fd = file.as_raw_fd();
    let from = std::ffi::CString::new(format!("/proc/self/fd/{fd}"))?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as open(2) does.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::AlreadyExists {
        return Err(error);
    }
    // SAFETY: `fd` is open for the call; the empty path with AT_EMPTY_PATH names it.
    let by_descriptor = unsafe {
        libc::linkat(
            fd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if by_descriptor == 0 {
        Ok(())
    } else {
        Err(error)
    }
}

/// No nameless files outside Linux ([`TempBeside::anonymous_in`] makes none).
#[cfg(not(target_os = "linux"))]
fn link_anonymous(_file: &File, _to: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// A file written in full to a temporary file beside its target, not yet in place: see
/// [`commit`]. Dropped uncommitted, the temporary file is removed.
pub struct Staged {
    /// None for a device or pipe, written in place already.
    file: Option<(TempBeside, std::path::PathBuf)>,
    /// What the target must still be ([`Staged::expecting`]).
    found: Found,
}

impl Staged {
    /// Makes [`commit`] put the file in place only while its target is still what `found`
    /// says was there (when the command started): where nothing was, only where nothing
    /// is (rename without replacing); where a file was, only over that same file. A file
    /// another process (a run beside this one) wrote there meanwhile is left as it is. A
    /// device or a pipe is written in place already, as ever.
    pub fn expecting(mut self, found: Found) -> Staged {
        self.found = found;
        self
    }

    /// [`Staged::expecting`] nothing there.
    pub fn must_be_new(self) -> Staged {
        self.expecting(Found::Nothing)
    }
}

/// The error of [`commit`] when a file staged [`Staged::expecting`] found its target
/// changed: a file where there was none, or another file than the one there. The target is
/// left as it is.
#[derive(Debug)]
pub struct AppearedMeanwhile {
    pub path: std::path::PathBuf,
    /// A file was there (and another took its place or it was written over); otherwise none
    /// was.
    pub replaced: bool,
}

impl std::fmt::Display for AppearedMeanwhile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (another process wrote it meanwhile); it was left as it is",
            self.path.display(),
            if self.replaced {
                "is no longer the file that was there"
            } else {
                "exists now"
            }
        )
    }
}

impl std::error::Error for AppearedMeanwhile {}

/// [`commit`]'s [`AppearedMeanwhile`], if `e` is one.
pub fn appeared_meanwhile(e: &std::io::Error) -> Option<&AppearedMeanwhile> {
    e.get_ref()?.downcast_ref::<AppearedMeanwhile>()
}

/// Writes what `write` writes into a temporary file beside `path`, to be put in place by
/// [`commit`] (with the files that go with it: a model and its external data file are
/// replaced together or not at all). A device or a pipe (`-o /dev/null`, `-o /dev/stdout`)
/// cannot be replaced atomically, and renaming over it would destroy it: it is written in
/// place, at once.
pub fn stage_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<CancellableFile<'_>>) -> std::io::Result<()>,
) -> std::io::Result<Staged> {
    let resolved = resolve_output(path);
    let path = resolved.as_path();
    if is_special(path) {
        let mut f = open_waiting(std::fs::OpenOptions::new().write(true), path)?;
        let write_all = |f: &mut File| {
            let mut out = BufWriter::with_capacity(1 << 16, CancellableFile(f));
            write(&mut out)?;
            out.flush()
        };
        if is_pipe(&f) {
            waiting_on_pipe(|| write_all(&mut f))?;
        } else {
            write_all(&mut f)?;
        }
        return Ok(Staged {
            file: None,
            found: Found::Any,
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = TempBeside::new_in(dir)?;
    {
        let mut out = BufWriter::with_capacity(1 << 16, CancellableFile(tmp.file_mut()));
        write(&mut out)?;
        out.flush()?;
    }
    tmp.give_mode_of(path)?;
    Ok(Staged {
        file: Some((tmp, path.to_path_buf())),
        found: Found::Any,
    })
}

/// Puts staged files in place, in order, unless a Ctrl-C came before: then every target
/// stays as it was. The renames that follow that check are not interrupted, so files
/// staged together are replaced together (a model is never left beside another model's
/// external data). Those staged [`Staged::expecting`] something go first: where one's target
/// is no longer what was found (another process wrote it), nothing is replaced, those
/// already placed where nothing was are removed, and the error is [`AppearedMeanwhile`] (of
/// kind `AlreadyExists`). A file is compared just before the renames, and a new one put in
/// place without replacing: a rename by another process between that comparison and this
/// one's is the window left (Linux has no rename that replaces only a given file).
pub fn commit(staged: impl IntoIterator<Item = Staged>) -> std::io::Result<()> {
    let mut staged: Vec<Staged> = staged.into_iter().collect();
    if CANCEL.load(Ordering::SeqCst) {
        return Err(std::io::Error::other(Cancelled));
    }
    let appeared = |target: &Path, replaced| {
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            AppearedMeanwhile {
                path: target.to_path_buf(),
                replaced,
            },
        )
    };
    // Each target checked before any is placed: (staged, put in place without replacing).
    let mut plan = Vec::new();
    for s in staged.drain(..) {
        let Some((_, target)) = &s.file else {
            continue;
        };
        let noclobber = match s.found.still_at(target) {
            None => return Err(appeared(target, s.found != Found::Nothing)),
            Some(same) => s.found == Found::Nothing || !same,
        };
        plan.push((s, noclobber));
    }
    // Stable: the others keep their order. New files first, then the files watched, then
    // the rest.
    plan.sort_by_key(|(s, noclobber)| (!noclobber, s.found == Found::Any));
    let mut placed = Vec::new();
    for (s, noclobber) in plan {
        let Some((tmp, target)) = s.file else {
            continue;
        };
        if !noclobber {
            tmp.persist(&target).map_err(|e| e.error)?;
            continue;
        }
        match tmp.persist_noclobber(&target) {
            Ok(_) => placed.push(target),
            Err(e) => {
                for p in &placed {
                    let _ = std::fs::remove_file(p);
                }
                return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    appeared(&target, s.found != Found::Nothing)
                } else {
                    e.error
                });
            }
        }
    }
    Ok(())
}

/// Fails, before anything is written, when the file system that holds `path` has fewer than
/// `bytes` bytes free for this user, so an export of a model of terabytes says so at once
/// instead of filling the disk. (Where the free space cannot be read, it is not checked.)
pub fn check_space(path: &Path, bytes: u64) -> std::io::Result<()> {
    // A device or a pipe is written in place ([`write_atomic_with`]) and takes no space.
    if is_special(path) {
        return Ok(());
    }
    let path = resolve_output(path);
    let path = path.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(space) = free_space(dir) else {
        return Ok(());
    };
    if space.read_only {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ReadOnlyFilesystem,
            format!(
                "{} is on a read-only file system; write elsewhere",
                dir.display()
            ),
        ));
    }
    if bytes > space.free {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "it needs {} but its file system has only {} free; free some space or write \
                 elsewhere",
                crate::shape::summary::bytes(bytes),
                crate::shape::summary::bytes(space.free)
            ),
        ));
    }
    Ok(())
}

/// Whether two output paths are on one file system (their folders' devices); false where
/// either cannot be read.
pub fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let device = |path: &Path| {
        let path = resolve_output(path);
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        std::fs::metadata(dir).ok().map(|m| m.dev())
    };
    matches!((device(a), device(b)), (Some(x), Some(y)) if x == y)
}

/// What statvfs says of a file system.
struct Space {
    /// Bytes this user may still write.
    free: u64,
    read_only: bool,
}

#[cfg(unix)]
fn free_space(dir: &Path) -> Option<Space> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // A pseudo file system (sysfs, procfs) has no blocks at all: its space says nothing, and
    // the write itself reports what is wrong.
    if st.f_blocks == 0 {
        return None;
    }
    Some(Space {
        free: (st.f_bavail as u64).saturating_mul(st.f_frsize as u64),
        read_only: st.f_flag & libc::ST_RDONLY != 0,
    })
}

#[cfg(not(unix))]
fn free_space(_dir: &Path) -> Option<Space> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A megabyte of zeros that counts the reads made of it.
    struct Counted<'a>(std::io::Cursor<Vec<u8>>, &'a std::cell::Cell<usize>);

    impl std::io::Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1.set(self.1.get() + 1);
            self.0.read(buf)
        }
    }

    #[test]
    fn same_file_system_tells_folders_apart_by_device() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.onnx"), dir.path().join("b.ckpt"));
        assert!(same_file_system(&a, &b));
        // /proc is a file system of its own everywhere Linux runs.
        assert!(!same_file_system(&a, Path::new("/proc/x")));
        assert!(!same_file_system(&a, Path::new("/no/such/folder/x")));
    }

    #[test]
    fn capped_reads_stop_where_the_header_says() {
        let run = |worth: Worth| {
            let reads = std::cell::Cell::new(0);
            let source = Counted(std::io::Cursor::new(vec![0u8; 1 << 20]), &reads);
            let bytes = read_capped(source, 1 << 30, |_| worth).unwrap();
            (bytes.len(), reads.get())
        };
        // Malformed: what the first read gave, no more reads.
        assert_eq!(run(Worth::Stop), (1 << 16, 1));
        // A declared length: one byte past it, at once.
        assert_eq!(run(Worth::Length(10)), (11, 1));
        assert_eq!(run(Worth::Length(100_000)), (100_001, 2));
        // Nothing known: all of it.
        assert_eq!(run(Worth::ReadOn).0, 1 << 20);
        // More declared than may be read: refused after the first read (a pipe of zeros
        // after a header of 300 GB is not read on until memory runs out).
        let reads = std::cell::Cell::new(0);
        let source = Counted(std::io::Cursor::new(vec![0u8; 1 << 20]), &reads);
        let e = read_capped(source, 1 << 18, |_| Worth::Length(300 << 30)).unwrap_err();
        assert!(e.contains("its header declares 300.0 GiB in all"), "{e}");
        assert_eq!(reads.get(), 1);
    }

    /// Both kinds of temporary file: nameless (where this file system makes one) and named.
    fn temps_in(dir: &Path) -> Vec<TempBeside> {
        vec![
            TempBeside::new_in(dir).unwrap(),
            TempBeside::named_in(dir).unwrap(),
        ]
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_temporary_file_is_put_in_place_whole_with_the_mode_of_an_output() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let makers = [TempBeside::new_in, TempBeside::named_in];
        for (i, make) in makers.into_iter().enumerate() {
            let mut tmp = make(dir.path()).unwrap();
            // A nameless file is not in the folder while it is written.
            let named = !tmp.is_anonymous();
            assert_eq!(
                names_in(dir.path()).len(),
                usize::from(named) + usize::from(i > 0)
            );
            tmp.file_mut()
                .write_all(format!("take {i}").as_bytes())
                .unwrap();
            tmp.give_mode_of(&target).unwrap();
            tmp.persist(&target).unwrap();
            assert_eq!(
                std::fs::read(&target).unwrap(),
                format!("take {i}").as_bytes()
            );
            assert_eq!(names_in(dir.path()), ["out.bin"], "take {i}");
            let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "take {i}");
        }
        // A writer that takes a path writes the same file.
        let tmp = TempBeside::new_in(dir.path()).unwrap();
        std::fs::write(tmp.path_to_open(), b"by path").unwrap();
        tmp.persist(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"by path");
    }

    #[test]
    fn a_nameless_file_whose_link_is_refused_goes_in_place_as_a_copy() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let fresh = dir.path().join("fresh.bin");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let write = || {
            let mut tmp = TempBeside::new_in(dir.path()).unwrap();
            tmp.file_mut().write_all(&bytes).unwrap();
            tmp
        };
        if !write().is_anonymous() {
            eprintln!("skipped: this file system makes no nameless files");
            return;
        }
        REFUSE_LINKS.with(|refuse| refuse.set(true));
        // Replacing a file: its bytes, the mode of what it replaces, nothing else left.
        let tmp = write();
        tmp.give_mode_of(&target).unwrap();
        let placed = [tmp.persist(&target).unwrap()];
        // Where nothing may be replaced: the same, and the refusal to replace still holds.
        let tmp = write();
        tmp.give_mode_of(&fresh).unwrap();
        let placed = [
            placed[0].metadata().unwrap(),
            tmp.persist_noclobber(&fresh).unwrap().metadata().unwrap(),
        ];
        let e = write().persist_noclobber(&fresh).err().unwrap();
        REFUSE_LINKS.with(|refuse| refuse.set(false));
        assert_eq!(e.error.kind(), std::io::ErrorKind::AlreadyExists);
        drop(e);
        for ((path, mode), placed) in [(&target, 0o640), (&fresh, 0o644)].into_iter().zip(placed) {
            assert!(std::fs::read(path).unwrap() == bytes, "{}", path.display());
            // What it returns is the file there (the copy), as a checkpoint's next save
            // expects to find.
            let there = std::fs::metadata(path).unwrap();
            assert!(
                FileId::of(&there) == FileId::of(&placed),
                "{}",
                path.display()
            );
            let found = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(found, mode, "{}", path.display());
        }
        assert_eq!(names_in(dir.path()), ["fresh.bin", "out.bin"]);
        // A link that failed for another reason is not copied; a copy that fails is what is
        // told (here its folder is gone), and nothing is left.
        let refused = || std::io::Error::from_raw_os_error(libc::EPERM);
        let too_long = std::io::Error::from_raw_os_error(libc::ENAMETOOLONG);
        let e = write()
            .copy_where_refused(dir.path(), too_long)
            .err()
            .unwrap();
        assert_eq!(e.error.raw_os_error(), Some(libc::ENAMETOOLONG));
        assert!(e.temp.is_anonymous());
        let gone = dir.path().join("gone");
        let e = write().copy_where_refused(&gone, refused()).err().unwrap();
        assert_eq!(e.error.kind(), std::io::ErrorKind::NotFound, "{}", e.error);
        drop(e);
        assert_eq!(names_in(dir.path()), ["fresh.bin", "out.bin"]);
    }

    #[test]
    fn a_temporary_file_put_in_place_only_where_none_is_leaves_one_there() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"theirs").unwrap();
        for mut tmp in temps_in(dir.path()) {
            tmp.file_mut().write_all(b"mine").unwrap();
            let e = tmp.persist_noclobber(&target).err().unwrap();
            assert_eq!(e.error.kind(), std::io::ErrorKind::AlreadyExists);
            assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
            // Given back: it goes under another name.
            let other = dir.path().join("other.bin");
            e.temp.persist_noclobber(&other).unwrap();
            assert_eq!(std::fs::read(&other).unwrap(), b"mine");
            std::fs::remove_file(&other).unwrap();
        }
        // Dropped before it is in place, nothing is left.
        drop(temps_in(dir.path()));
        assert_eq!(names_in(dir.path()), ["out.bin"]);
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_folder_is_an_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/a.bin");
        assert!(write_atomic(&p, b"x").is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn devices_are_written_in_place_and_links_followed() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        // A pipe (like a device): written into, never replaced by a regular file.
        let fifo = dir.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_atomic(&fifo, b"through the pipe").unwrap();
        // Checked before joining: had the pipe been replaced, the reader would wait forever.
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(
            check_space(&fifo, u64::MAX).is_ok(),
            "a pipe needs no disk space"
        );
        // A symbolic link: its target is replaced, the link stays a link.
        let target = dir.path().join("real.bin");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        // A dangling link: its target is created, the link stays.
        let dangling = dir.path().join("dangling.bin");
        std::os::unix::fs::symlink("later.bin", &dangling).unwrap();
        write_atomic(&dangling, b"made").unwrap();
        assert!(std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read(dir.path().join("later.bin")).unwrap(),
            b"made"
        );
    }

    #[test]
    fn a_file_that_must_be_new_leaves_one_there_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.onnx");
        let staged = stage_with(&p, |o| o.write_all(b"mine")).unwrap();
        std::fs::write(&p, b"theirs").unwrap();
        let e = commit([staged.must_be_new()]).unwrap_err();
        assert!(appeared_meanwhile(&e).is_some_and(|a| !a.replaced), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"theirs");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Where none is, it goes in place.
        let q = dir.path().join("b.onnx");
        commit([stage_with(&q, |o| o.write_all(b"mine"))
            .unwrap()
            .must_be_new()])
        .unwrap();
        assert_eq!(std::fs::read(&q).unwrap(), b"mine");
    }

    #[test]
    fn a_file_found_is_replaced_only_while_it_is_still_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.onnx");
        assert_eq!(Found::at(&p), Found::Nothing);
        assert_eq!(Found::at(Path::new("/dev/null")), Found::Any);
        std::fs::write(&p, b"old").unwrap();
        let stage = |bytes: &'static [u8], found| {
            commit([stage_with(&p, |o| o.write_all(bytes))
                .unwrap()
                .expecting(found)])
        };
        // Still the file found: replaced.
        let found = Found::at(&p);
        assert!(matches!(found, Found::File(_)));
        stage(b"mine", found).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"mine");
        // Another file put in its place meanwhile (another process's rename): left as it is.
        let found = Found::at(&p);
        write_atomic(&p, b"theirs").unwrap();
        let e = stage(b"again", found).unwrap_err();
        assert!(appeared_meanwhile(&e).is_some_and(|a| a.replaced), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"theirs");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Written over in place (another length): so is it.
        let found = Found::at(&p);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b", more")
            .unwrap();
        assert!(stage(b"again", found).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"theirs, more");
        // Gone, with nothing in its place: this one goes there.
        let found = Found::at(&p);
        std::fs::remove_file(&p).unwrap();
        stage(b"after", found).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"after");
    }

    #[test]
    fn alternative_names_keep_the_extension_and_fit() {
        let id = std::process::id();
        let name = |p: &str, n| alternative_name(Path::new(p), n).display().to_string();
        assert_eq!(
            name("d/m.trained.onnx", 0),
            format!("d/m.trained.pid{id}.onnx")
        );
        assert_eq!(
            name("m.trained.ckpt.safetensors", 1),
            format!("m.trained.pid{id}-2.ckpt.safetensors")
        );
        assert_eq!(name("model", 0), format!("model.pid{id}"));
        let long = format!("{}.onnx", "é".repeat(125));
        let other = name(&long, 0);
        assert!(
            other.len() <= 255 && other.ends_with(&format!(".pid{id}.onnx")),
            "{other}"
        );
    }

    #[test]
    fn space_check_refuses_more_than_the_disk_holds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        assert!(check_space(&p, 1).is_ok());
        let e = check_space(&p, u64::MAX).unwrap_err();
        assert!(e.to_string().contains(" free; free some space"), "{e}");
    }
}
