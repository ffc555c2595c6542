//! The CUDA and cuDNN libraries that `pip install onnxruntime-gpu[cuda,cudnn]` puts in
//! `site-packages/nvidia/*/lib`, where the dynamic loader does not look. Python's onnxruntime
//! loads them itself before it registers the CUDA execution provider (`preload_dlls`); cnnc
//! does the same: every CUDA and cuDNN library of the CUDA major version the package was built
//! for (its `capi/build_and_package_info.py` says which: 13 for onnxruntime-gpu 1.31, 12 for
//! the CUDA 12 builds) found under the `nvidia` folder beside the loaded `onnxruntime`
//! package is loaded once, dependencies first, so the provider's own `dlopen` finds them by
//! name. Libraries already on the loader's path (a system CUDA install, `LD_LIBRARY_PATH`)
//! need nothing of this.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The CUDA major version of ort's own list of libraries, taken when the package does not say
/// which it was built for (a library not from a wheel).
pub const DEFAULT_CUDA_MAJOR: u32 = 13;

/// The CUDA major version the onnxruntime package holding the library at `ort_library` was
/// built for: the `cuda_version = '13.0'` line of `build_and_package_info.py` beside it. None
/// for a CPU package or a library outside a wheel.
pub fn built_cuda_major(ort_library: &Path) -> Option<u32> {
    let info = ort_library.parent()?.join("build_and_package_info.py");
    let text = std::fs::read_to_string(info).ok()?;
    cuda_major_of_build_info(&text)
}

/// The major version in a `cuda_version = '12.8'` line of a build-info file.
fn cuda_major_of_build_info(text: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if key.trim() != "cuda_version" {
            return None;
        }
        let version = value.trim().trim_matches(|c| c == '\'' || c == '"');
        version.split('.').next()?.parse().ok()
    })
}

/// The CUDA and cuDNN libraries the CUDA execution provider of a build for CUDA `major` opens,
/// dependencies before their users (cuBLAS needs cuBLASLt), as onnxruntime's `preload_dlls`
/// lists them; the cuDNN ones are the same for CUDA 12 and 13.
pub fn library_names(major: u32) -> Vec<String> {
    // cuFFT's soname is one behind: 11 with CUDA 12, 12 with CUDA 13.
    let cufft = if major >= 13 { 12 } else { 11 };
    let cuda = [
        format!("libcudart.so.{major}"),
        format!("libcublasLt.so.{major}"),
        format!("libcublas.so.{major}"),
        format!("libnvrtc.so.{major}"),
        "libcurand.so.10".to_string(),
        format!("libcufft.so.{cufft}"),
    ];
    cuda.into_iter()
        .chain(ort::ep::cuda::CUDNN_DYLIBS.iter().map(|s| s.to_string()))
        .collect()
}

/// What [`preload`] found and loaded, for the message when CUDA still fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preloaded {
    /// The CUDA major version whose libraries were looked for.
    pub cuda_major: u32,
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
pub fn find_libraries<S: AsRef<str>>(dir: &Path, names: &[S]) -> Vec<PathBuf> {
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
        .filter_map(|name| {
            folders
                .iter()
                .map(|f| f.join(name.as_ref()))
                .find(|p| p.is_file())
        })
        .collect()
}

/// Loads, once per process, the CUDA and cuDNN libraries found beside the onnxruntime package
/// at `ort_library`; later calls return the first call's result.
pub fn preload(ort_library: &Path) -> &'static Preloaded {
    static DONE: OnceLock<Preloaded> = OnceLock::new();
    DONE.get_or_init(|| {
        let cuda_major = built_cuda_major(ort_library).unwrap_or(DEFAULT_CUDA_MAJOR);
        let Some(dir) = nvidia_dir(ort_library) else {
            return Preloaded {
                cuda_major,
                ..Preloaded::default()
            };
        };
        let mut result = Preloaded {
            cuda_major,
            dir: Some(dir.clone()),
            ..Preloaded::default()
        };
        for path in find_libraries(&dir, &library_names(cuda_major)) {
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

    #[test]
    fn the_packages_build_info_picks_the_cuda_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let ort = dir.path().join("libonnxruntime.so.1.22.0");
        assert_eq!(built_cuda_major(&ort), None, "no build info: not a wheel");
        let info = dir.path().join("build_and_package_info.py");
        std::fs::write(
            &info,
            "package_name = 'onnxruntime-gpu'\n__version__ = '1.22.0'\ncuda_version = '12.8'\n",
        )
        .unwrap();
        assert_eq!(built_cuda_major(&ort), Some(12));
        std::fs::write(
            &info,
            "package_name = 'onnxruntime'\n__version__ = '1.32.0'\n",
        )
        .unwrap();
        assert_eq!(built_cuda_major(&ort), None, "a CPU package names no CUDA");
        assert_eq!(
            cuda_major_of_build_info("cuda_version = \"13.0\"\n"),
            Some(13)
        );

        let twelve = library_names(12);
        for name in [
            "libcudart.so.12",
            "libcublas.so.12",
            "libcufft.so.11",
            "libcudnn.so.9",
        ] {
            assert!(twelve.iter().any(|n| n == name), "{name} in {twelve:?}");
        }
        assert!(!twelve.iter().any(|n| n.ends_with(".so.13")), "{twelve:?}");
        let position = |names: &[String], name: &str| names.iter().position(|n| n == name);
        assert!(
            position(&twelve, "libcublasLt.so.12") < position(&twelve, "libcublas.so.12"),
            "cuBLASLt before cuBLAS, which needs it"
        );
        // CUDA 13's names are ort's own list, in some order.
        let mut thirteen = library_names(DEFAULT_CUDA_MAJOR);
        let mut orts: Vec<String> = ort::ep::cuda::CUDA_DYLIBS
            .iter()
            .chain(ort::ep::cuda::CUDNN_DYLIBS)
            .map(|s| s.to_string())
            .collect();
        thirteen.sort();
        orts.sort();
        assert_eq!(thirteen, orts);
    }
}
