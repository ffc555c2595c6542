//! The CUDA and cuDNN libraries that `pip install onnxruntime-gpu[cuda,cudnn]` puts in
//! `site-packages/nvidia/*/lib`, where the dynamic loader does not look. Python's onnxruntime
//! loads them itself before it registers the CUDA execution provider (`preload_dlls`); cnnc
//! does the same: every one of ort's list of CUDA and cuDNN libraries found under the
//! `nvidia` folder beside the loaded `onnxruntime` package is loaded once, in that list's
//! order, so the provider's own `dlopen` finds them by name. Libraries already on the
//! loader's path (a system CUDA install, `LD_LIBRARY_PATH`) need nothing of this.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What [`preload`] found and loaded, for the message when CUDA still fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preloaded {
    /// The `nvidia` folder searched, if there is one beside the onnxruntime package.
    pub dir: Option<PathBuf>,
    /// The libraries loaded from it.
    pub loaded: Vec<PathBuf>,
    /// Libraries found there that failed to load, with the loader's reason.
    pub failed: Vec<(PathBuf, String)>,
}

/// The `nvidia` folder of the site-packages that holds the library at `ort_library`
/// (`<site-packages>/onnxruntime/capi/libonnxruntime.so.X`), when it exists.
pub fn nvidia_dir(ort_library: &Path) -> Option<PathBuf> {
    let site_packages = ort_library.parent()?.parent()?.parent()?;
    let dir = site_packages.join("nvidia");
    dir.is_dir().then_some(dir)
}

/// The path of each library `names` lists that lies in `dir` or up to three folders below it
/// (the wheels use `nvidia/<package>/lib` and, for CUDA 13, `nvidia/cu13/lib`), in the order of
/// `names`; the first found of each name.
pub fn find_libraries(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let mut folders = vec![dir.to_path_buf()];
    let mut frontier = vec![dir.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for folder in &frontier {
            let Ok(entries) = std::fs::read_dir(folder) else {
                continue;
            };
            let mut children: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            children.sort();
            next.extend(children);
        }
        folders.extend(next.iter().cloned());
        frontier = next;
    }
    names
        .iter()
        .filter_map(|name| folders.iter().map(|f| f.join(name)).find(|p| p.is_file()))
        .collect()
}

/// Loads, once per process, the CUDA and cuDNN libraries found beside the onnxruntime package
/// at `ort_library`; later calls return the first call's result.
pub fn preload(ort_library: &Path) -> &'static Preloaded {
    static DONE: OnceLock<Preloaded> = OnceLock::new();
    DONE.get_or_init(|| {
        let Some(dir) = nvidia_dir(ort_library) else {
            return Preloaded::default();
        };
        let names: Vec<&str> = ort::ep::cuda::CUDA_DYLIBS
            .iter()
            .chain(ort::ep::cuda::CUDNN_DYLIBS)
            .copied()
            .collect();
        let mut result = Preloaded {
            dir: Some(dir.clone()),
            ..Preloaded::default()
        };
        for path in find_libraries(&dir, &names) {
            match ort::util::preload_dylib(&path) {
                Ok(()) => result.loaded.push(path),
                Err(e) => {
                    // libloading's message is "dlopen failed"; the loader's reason is its source.
                    let reason = std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| e.to_string());
                    result.failed.push((path, reason));
                }
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wheels_libraries_in_list_order() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("lib/python3.12/site-packages");
        let capi = site.join("onnxruntime/capi");
        std::fs::create_dir_all(&capi).unwrap();
        let ort = capi.join("libonnxruntime.so.1.31.1");
        std::fs::write(&ort, b"").unwrap();
        assert_eq!(nvidia_dir(&ort), None, "no nvidia folder yet");
        for (folder, file) in [
            ("nvidia/cudnn/lib", "libcudnn.so.9"),
            ("nvidia/cu13/lib", "libcublasLt.so.13"),
            ("nvidia/cu13/lib", "libcudart.so.13"),
            ("nvidia/cuda_runtime/lib", "libcudart.so.13"),
        ] {
            std::fs::create_dir_all(site.join(folder)).unwrap();
            std::fs::write(site.join(folder).join(file), b"").unwrap();
        }
        let nvidia = nvidia_dir(&ort).expect("the nvidia folder beside onnxruntime");
        assert_eq!(nvidia, site.join("nvidia"));
        let found = find_libraries(
            &nvidia,
            &[
                "libcudart.so.13",
                "libcublasLt.so.13",
                "libcufft.so.12",
                "libcudnn.so.9",
            ],
        );
        assert_eq!(
            found,
            vec![
                site.join("nvidia/cu13/lib/libcudart.so.13"),
                site.join("nvidia/cu13/lib/libcublasLt.so.13"),
                site.join("nvidia/cudnn/lib/libcudnn.so.9"),
            ]
        );
    }
}
