//! Finding `libonnxruntime`: `ORT_DYLIB_PATH` first, then a pip-installed `onnxruntime` or
//! `onnxruntime-gpu` in the usual site-packages folders, then whatever `python3` imports.

use super::error::RuntimeError;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A library file and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    pub path: PathBuf,
    pub found_by: FoundBy,
}

/// How [`locate`] found the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundBy {
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// A pip-installed `onnxruntime` package in this site-packages folder.
    SitePackages(PathBuf),
    /// `python3 -c "import onnxruntime"` named the package folder.
    Python,
}

impl fmt::Display for FoundBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FoundBy::EnvVar => write!(f, "ORT_DYLIB_PATH"),
            FoundBy::SitePackages(dir) => {
                write!(f, "pip-installed onnxruntime in {}", dir.display())
            }
            FoundBy::Python => write!(f, "python3 -c \"import onnxruntime\""),
        }
    }
}

/// Where to look; [`Probe::from_env`] reads the process environment, tests build their own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probe {
    pub ort_dylib_path: Option<OsString>,
    pub virtual_env: Option<PathBuf>,
    pub conda_prefix: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub pyenv_root: Option<PathBuf>,
    /// Folders holding `python3*/{site,dist}-packages` (e.g. `/usr/local/lib`).
    pub system_lib_dirs: Vec<PathBuf>,
    /// Folders that are themselves a dist-packages folder (Debian's `/usr/lib/python3/dist-packages`).
    pub system_package_dirs: Vec<PathBuf>,
    /// The interpreter to ask as a last resort; `None` skips the question.
    pub python: Option<OsString>,
}

impl Probe {
    pub(crate) fn from_env() -> Probe {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        Probe {
            ort_dylib_path: var("ORT_DYLIB_PATH"),
            virtual_env: var("VIRTUAL_ENV").map(PathBuf::from),
            conda_prefix: var("CONDA_PREFIX").map(PathBuf::from),
            pyenv_root: var("PYENV_ROOT")
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".pyenv"))),
            home,
            system_lib_dirs: vec![PathBuf::from("/usr/local/lib"), PathBuf::from("/usr/lib")],
            system_package_dirs: vec![PathBuf::from("/usr/lib/python3/dist-packages")],
            python: Some(OsString::from("python3")),
        }
    }
}

/// Finds the ONNX Runtime shared library; see the module documentation for the order.
pub fn locate() -> Result<Library, RuntimeError> {
    locate_with(&Probe::from_env())
}

pub(crate) fn locate_with(probe: &Probe) -> Result<Library, RuntimeError> {
    if let Some(value) = &probe.ort_dylib_path {
        return from_env_var(Path::new(value)).map(|path| Library {
            path,
            found_by: FoundBy::EnvVar,
        });
    }
    let mut searched = Vec::new();
    for dir in site_packages_dirs(probe, &mut searched) {
        if let Some(path) = library_in(&dir.join("onnxruntime").join("capi")) {
            return Ok(Library {
                path,
                found_by: FoundBy::SitePackages(dir),
            });
        }
    }
    if let Some(python) = &probe.python {
        searched.push(PathBuf::from(format!(
            "{} -c \"import onnxruntime\"",
            Path::new(python).display()
        )));
        if let Some(dir) = ask_python(python, PYTHON_TIMEOUT) {
            if let Some(path) = library_in(&dir.join("capi")) {
                return Ok(Library {
                    path,
                    found_by: FoundBy::Python,
                });
            }
        }
    }
    Err(RuntimeError::NotFound { searched })
}

fn from_env_var(value: &Path) -> Result<PathBuf, RuntimeError> {
    let bad = |reason: &str| RuntimeError::BadEnvPath {
        path: value.to_path_buf(),
        reason: reason.to_string(),
    };
    let path = if value.is_absolute() {
        value.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| {
                bad(&format!(
                    "is relative and the current directory is unknown ({e})"
                ))
            })?
            .join(value)
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(bad("points to a file that does not exist"))
        }
        Err(e) => Err(bad(&format!("cannot be read: {e}"))),
        Ok(meta) if meta.is_dir() => library_in(&path).ok_or_else(|| {
            bad("is a directory with no libonnxruntime shared library (libonnxruntime.so*) in it")
        }),
        Ok(meta) if !meta.is_file() => Err(bad("is not a regular file")),
        Ok(_) => Ok(path),
    }
}

/// The site-packages folders to look in, in order, that exist; `searched` gets every pattern.
fn site_packages_dirs(probe: &Probe, searched: &mut Vec<PathBuf>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut python_lib = |lib: PathBuf, searched: &mut Vec<PathBuf>| {
        searched.push(lib.join("python3*/site-packages"));
        for py in children_starting_with(&lib, "python3") {
            for leaf in ["site-packages", "dist-packages"] {
                let dir = py.join(leaf);
                if dir.is_dir() {
                    dirs.push(dir);
                }
            }
        }
    };
    if let Some(venv) = &probe.virtual_env {
        python_lib(venv.join("lib"), searched);
    }
    if let Some(conda) = &probe.conda_prefix {
        python_lib(conda.join("lib"), searched);
    }
    if let Some(home) = &probe.home {
        python_lib(home.join(".local").join("lib"), searched);
    }
    if let Some(pyenv) = &probe.pyenv_root {
        let versions = pyenv.join("versions");
        searched.push(versions.join("*/lib/python3*/site-packages"));
        for version in children_starting_with(&versions, "") {
            python_lib(version.join("lib"), &mut Vec::new());
        }
    }
    for lib in &probe.system_lib_dirs {
        python_lib(lib.clone(), searched);
    }
    for dir in &probe.system_package_dirs {
        searched.push(dir.clone());
        if dir.is_dir() {
            dirs.push(dir.clone());
        }
    }
    dirs
}

/// Entries of `dir` whose name starts with `prefix`, newest version first (`3.12.1` before
/// `3.9.18`, `python3.12` before `python3.9`: numbers compared as numbers), so that the newest
/// interpreter wins when several have onnxruntime; none if `dir` is unreadable.
fn children_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(Vec<VersionPart>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| (version_parts(&e.file_name().to_string_lossy()), e.path()))
        .collect();
    out.sort_by(|a, b| b.cmp(a));
    out.into_iter().map(|(_, path)| path).collect()
}

/// A run of digits (compared as a number) or of other characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum VersionPart {
    Text(String),
    Number(u128),
}

/// `3.12.1rc1` → 3, ".", 12, ".", 1, "rc", 1.
fn version_parts(name: &str) -> Vec<VersionPart> {
    let mut parts = Vec::new();
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        let digits = c.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        parts.push(match run.parse() {
            Ok(n) if digits => VersionPart::Number(n),
            _ => VersionPart::Text(run.to_string()),
        });
        rest = tail;
    }
    parts
}

/// Is `name` the main ONNX Runtime library (not one of its provider plug-ins)?
pub(crate) fn is_library_name(name: &str) -> bool {
    name == "libonnxruntime.so"
        || name.starts_with("libonnxruntime.so.")
        || (name.starts_with("libonnxruntime.") && name.ends_with(".dylib"))
        || name == "onnxruntime.dll"
}

/// The ONNX Runtime library file in `dir`, preferring the most specific version name.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| is_library_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    candidates.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    candidates.into_iter().next()
}

/// How long `python3` may take to say where onnxruntime is (an import takes well under a
/// second; a wrapper that never returns must not hang cnnc).
const PYTHON_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks the interpreter where its `onnxruntime` package lives; `None` when it cannot say
/// within `timeout` ([`PYTHON_TIMEOUT`]).
fn ask_python(python: &OsString, timeout: std::time::Duration) -> Option<PathBuf> {
    use std::io::Read;
    let mut child = Command::new(python)
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    // Standard output is drained while the child runs: a python whose start-up prints more
    // than a pipe holds (a chatty sitecustomize) would otherwise block until the timeout.
    // Only the tail is kept (the answer is the last line); the thread is left behind if a
    // grandchild keeps the pipe open.
    let mut stdout = child.stdout.take()?;
    let (sender, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(&chunk[..n]);
                    if tail.len() > 2 * PYTHON_ANSWER_KEPT {
                        tail.drain(..tail.len() - PYTHON_ANSWER_KEPT);
                    }
                }
            }
        }
        let _ = sender.send(tail);
    });
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < timeout => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    if !status.success() {
        return None;
    }
    let left = timeout.saturating_sub(start.elapsed());
    let tail = answer
        .recv_timeout(left.max(std::time::Duration::from_millis(100)))
        .ok()?;
    // The folder is the last line printed; anything a start-up hook printed comes before it.
    let text = String::from_utf8_lossy(&tail);
    let dir = PathBuf::from(
        text.lines()
            .rev()
            .find(|line| !line.trim().is_empty())?
            .trim(),
    );
    dir.is_dir().then_some(dir)
}

/// How much of the end of the python probe's standard output is kept (the answer is one
/// short line, the last).
const PYTHON_ANSWER_KEPT: usize = 1 << 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_probe() -> Probe {
        Probe::default()
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"not really a library").unwrap();
    }

    #[test]
    fn a_python3_that_never_answers_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("python3");
        // It would name a real folder, after 30 s: given up on before that, nothing is found.
        std::fs::write(&script, "#!/bin/sh\nsleep 30\necho /\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let asked = ask_python(
            &script.into_os_string(),
            std::time::Duration::from_millis(200),
        );
        assert_eq!(asked, None);
    }

    #[test]
    fn a_python3_that_prints_more_than_a_pipe_holds_is_still_heard() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("python3");
        let answer = dir.path().join("onnxruntime");
        std::fs::create_dir(&answer).unwrap();
        // 200 KiB of start-up noise before the answer: more than a pipe holds.
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nhead -c 204800 /dev/zero | tr '\\0' 'x'\necho\necho {}\n",
                answer.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let asked = ask_python(&script.into_os_string(), std::time::Duration::from_secs(20));
        assert_eq!(asked, Some(answer));
    }

    #[test]
    fn env_var_to_missing_file_is_a_precise_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").join("libonnxruntime.so");
        let probe = Probe {
            ort_dylib_path: Some(missing.clone().into_os_string()),
            ..empty_probe()
        };
        let err = locate_with(&probe).unwrap_err();
        assert_eq!(
            err,
            RuntimeError::BadEnvPath {
                path: missing.clone(),
                reason: "points to a file that does not exist".into()
            }
        );
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "ORT_DYLIB_PATH={} points to a file that does not exist",
                missing.display()
            )),
            "{text}"
        );
    }

    #[test]
    fn env_var_wins_over_site_packages() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("custom").join("libonnxruntime.so.1.99.0");
        touch(&lib);
        let venv = dir.path().join("venv");
        touch(&venv.join("lib/python3.12/site-packages/onnxruntime/capi/libonnxruntime.so.1.0.0"));
        let probe = Probe {
            ort_dylib_path: Some(lib.clone().into_os_string()),
            virtual_env: Some(venv),
            ..empty_probe()
        };
        let found = locate_with(&probe).unwrap();
        assert_eq!(found.path, lib);
        assert_eq!(found.found_by, FoundBy::EnvVar);
    }

    #[test]
    fn env_var_may_name_a_directory_holding_the_library() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("libonnxruntime_providers_shared.so"));
        touch(&dir.path().join("libonnxruntime.so.1.32.0"));
        let probe = Probe {
            ort_dylib_path: Some(dir.path().as_os_str().to_owned()),
            ..empty_probe()
        };
        let found = locate_with(&probe).unwrap();
        assert_eq!(found.path, dir.path().join("libonnxruntime.so.1.32.0"));

        let empty = tempfile::tempdir().unwrap();
        let probe = Probe {
            ort_dylib_path: Some(empty.path().as_os_str().to_owned()),
            ..empty_probe()
        };
        let err = locate_with(&probe).unwrap_err().to_string();
        assert!(
            err.contains("is a directory with no libonnxruntime"),
            "{err}"
        );
    }

    #[test]
    fn finds_pip_install_in_a_pyenv_version() {
        let dir = tempfile::tempdir().unwrap();
        let pyenv = dir.path().join(".pyenv");
        let site = pyenv.join("versions/3.11.7/lib/python3.11/site-packages");
        touch(&site.join("onnxruntime/capi/libonnxruntime.so.1.32.0"));
        touch(&site.join("onnxruntime/capi/libonnxruntime_providers_shared.so"));
        let probe = Probe {
            pyenv_root: Some(pyenv),
            ..empty_probe()
        };
        let found = locate_with(&probe).unwrap();
        assert_eq!(
            found.path,
            site.join("onnxruntime/capi/libonnxruntime.so.1.32.0")
        );
        assert_eq!(found.found_by, FoundBy::SitePackages(site));
    }

    #[test]
    fn the_newest_pyenv_version_wins() {
        let dir = tempfile::tempdir().unwrap();
        let pyenv = dir.path().join(".pyenv");
        for (version, python) in [("3.9.18", "3.9"), ("3.12.1", "3.12"), ("3.10.2", "3.10")] {
            let site = pyenv.join(format!(
                "versions/{version}/lib/python{python}/site-packages"
            ));
            touch(&site.join("onnxruntime/capi/libonnxruntime.so.1.32.0"));
        }
        let probe = Probe {
            pyenv_root: Some(pyenv.clone()),
            ..empty_probe()
        };
        let newest = pyenv.join("versions/3.12.1/lib/python3.12/site-packages");
        assert_eq!(
            locate_with(&probe).unwrap().found_by,
            FoundBy::SitePackages(newest)
        );
        let mut names = [
            "3.9",
            "3.12.1",
            "python3.9",
            "3.10",
            "system",
            "3.12.10",
            "python3.12",
        ];
        names.sort_by_key(|n| std::cmp::Reverse(version_parts(n)));
        assert_eq!(
            names,
            [
                "3.12.10",
                "3.12.1",
                "3.10",
                "3.9",
                "system",
                "python3.12",
                "python3.9"
            ]
        );
    }

    #[test]
    fn virtual_env_comes_before_user_site() {
        let dir = tempfile::tempdir().unwrap();
        let venv_site = dir.path().join("venv/lib/python3.10/site-packages");
        let user_site = dir.path().join("home/.local/lib/python3.10/site-packages");
        touch(&venv_site.join("onnxruntime/capi/libonnxruntime.so.1.30.0"));
        touch(&user_site.join("onnxruntime/capi/libonnxruntime.so.1.32.0"));
        let probe = Probe {
            virtual_env: Some(dir.path().join("venv")),
            home: Some(dir.path().join("home")),
            ..empty_probe()
        };
        assert_eq!(
            locate_with(&probe).unwrap().found_by,
            FoundBy::SitePackages(venv_site)
        );
    }

    #[test]
    fn nothing_found_says_how_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Probe {
            home: Some(dir.path().to_path_buf()),
            ..empty_probe()
        };
        let err = locate_with(&probe).unwrap_err();
        assert!(matches!(err, RuntimeError::NotFound { .. }));
        let text = err.to_string();
        assert!(
            text.contains(
                "`pip install onnxruntime` (or `onnxruntime-gpu` for CUDA; 1.24 or newer) or \
                 set ORT_DYLIB_PATH=/path/to/libonnxruntime.so"
            ),
            "{text}"
        );
    }

    #[test]
    fn provider_plugins_are_not_the_library() {
        assert!(is_library_name("libonnxruntime.so"));
        assert!(is_library_name("libonnxruntime.so.1.32.0"));
        assert!(is_library_name("libonnxruntime.1.32.0.dylib"));
        assert!(!is_library_name("libonnxruntime_providers_cuda.so"));
        assert!(!is_library_name("libonnxruntime_providers_shared.so"));
    }
}
