//! libtorch runtime facts: which libtorch got loaded, whether its CUDA part is in the process.
//!
//! `build.rs` links `libtorch_cuda.so` with `--no-as-needed` (see there); [`cuda_runtime_loaded`]
//! proves at run time that it worked.
use std::path::PathBuf;

/// Whether libtorch_cuda was loaded into this process (its CUDA hooks are registered).
/// True even on a machine without a GPU; `tch::Cuda::is_available()` then says false.
pub fn cuda_runtime_loaded() -> bool {
    cudart_version().is_some()
}

/// The CUDA runtime version libtorch_cuda was built with (e.g. 13000 for 13.0), or `None` when
/// libtorch_cuda is not loaded (ATen then refuses the query: "without ATen_cuda library").
pub fn cudart_version() -> Option<i64> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let v = std::panic::catch_unwind(tch::utils::version_cudart).ok();
    std::panic::set_hook(hook);
    v.filter(|&v| v > 0)
}

/// Paths of the libtorch shared objects mapped into this process (from `/proc/self/maps`).
pub fn loaded_libtorch() -> Vec<PathBuf> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return vec![];
    };
    let mut out: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap_or("");
            name.starts_with("libtorch") || name.starts_with("libc10")
        })
        .map(PathBuf::from)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The version of the libtorch actually loaded, read from `torch/version.py` beside its `lib/`
/// folder (a PyTorch wheel's layout) or `build-version` (a standalone libtorch).
pub fn libtorch_version() -> Option<String> {
    let lib = loaded_libtorch().into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libtorch_cpu"))
    })?;
    let root = lib.parent()?.parent()?;
    if let Ok(s) = std::fs::read_to_string(root.join("version.py")) {
        for line in s.lines() {
            if let Some(v) = line.strip_prefix("__version__") {
                let v = v
                    .trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches(['\'', '"']);
                return Some(v.to_string());
            }
        }
    }
    std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|s| s.trim().to_string())
}
