// Link-time fixes for libtorch (shared by the root crate and `operators/`).
//
// 1. `torch-sys` exports `DEP_TCH_LIBTORCH_LIB` (the folder holding `libtorch*.so`) to crates
//    that depend on it directly. We embed it as an rpath so binaries, tests and examples run
//    without `LD_LIBRARY_PATH`. The linker writes a RUNPATH, so `LD_LIBRARY_PATH` still wins
//    (that is how the binary finds the GPU machine's own torch/lib).
// 2. On Linux the linker's `--as-needed` drops `libtorch_cuda.so`, because no symbol of it is
//    referenced directly; CUDA then looks absent even on a GPU. When the library exists we
//    link it with `--no-as-needed` so its static initialisers register the CUDA backend.
// 3. Root crate only: when that libtorch has its CUDA headers (the PyPI wheels do, with the CUDA
//    runtime headers in `nvidia/cu*/include` beside it), compile `csrc/cuda_graph.cpp`, a C ABI
//    over `at::cuda::CUDAGraph`, and set `cfg(scoreinv_cuda_graph)` (src/cuda_graph.rs).
// 4. Root crate only: when libtorch's headers are there, compile `csrc/warnings.cpp` (a warning
//    handler that drops libtorch's sparse-CSR beta notice) and set `cfg(scoreinv_warning_filter)`.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(scoreinv_cuda_graph)");
    println!("cargo::rustc-check-cfg=cfg(scoreinv_warning_filter)");
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: no rpath to libtorch embedded");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new("csrc/warnings.cpp").exists() {
        warning_filter(Path::new(&lib));
    }
    if cfg!(target_os = "linux") && Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        if Path::new("csrc/cuda_graph.cpp").exists() {
            cuda_graph_shim(Path::new(&lib));
        }
    }
}

/// Compiles the warning filter against libtorch's headers (skipped, with a note, without them).
fn warning_filter(lib: &Path) {
    println!("cargo:rerun-if-changed=csrc/warnings.cpp");
    let Some(include) = lib.parent().map(|t| t.join("include")) else {
        return;
    };
    if !include.join("c10/util/Exception.h").exists() {
        println!("cargo:warning=libtorch headers not found: libtorch's sparse-CSR notice stays");
        return;
    }
    let ok = cc::Build::new()
        .cpp(true)
        .file("csrc/warnings.cpp")
        .include(&include)
        .flag_if_supported("-std=c++17")
        .warnings(false)
        .try_compile("scoreinv_warnings");
    match ok {
        Ok(()) => println!("cargo:rustc-cfg=scoreinv_warning_filter"),
        Err(e) => println!("cargo:warning=warning filter not built: {e}"),
    }
}

/// Compiles the CUDA-graph shim when the headers it needs are found (else CUDA graphs are
/// reported unavailable at run time).
fn cuda_graph_shim(lib: &Path) {
    println!("cargo:rerun-if-changed=csrc/cuda_graph.cpp");
    let Some(torch) = lib.parent() else { return };
    let include = torch.join("include");
    if !include.join("ATen/cuda/CUDAGraph.h").exists() {
        return;
    }
    let site = torch.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cuda_dirs: Vec<PathBuf> = [
        "nvidia/cu13/include",
        "nvidia/cu12/include",
        "nvidia/cuda_runtime/include",
    ]
    .iter()
    .map(|d| site.join(d))
    .collect();
    if let Ok(home) = std::env::var("CUDA_HOME") {
        cuda_dirs.push(Path::new(&home).join("include"));
    }
    let Some(cuda) = cuda_dirs
        .into_iter()
        .find(|d| d.join("cuda_runtime_api.h").exists())
    else {
        println!("cargo:warning=CUDA runtime headers not found next to libtorch: built without CUDA-graph support");
        return;
    };
    // The runtime wheel lacks the compiler-configuration headers `crt/*.h` that cuda_runtime.h
    // includes; triton (a torch dependency) ships a full CUDA include folder with them.
    let crt = [cuda.clone(), site.join("triton/backends/nvidia/include")]
        .into_iter()
        .find(|d| d.join("crt/host_config.h").exists());
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let ok = cc::Build::new()
        .cpp(true)
        .file("csrc/cuda_graph.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .include(&cuda)
        .includes(crt)
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .try_compile("scoreinv_cuda_graph");
    match ok {
        Ok(()) => {
            println!("cargo:rustc-link-lib=dylib=c10_cuda");
            println!("cargo:rustc-link-lib=dylib=torch_cuda");
            println!("cargo:rustc-link-lib=dylib=c10");
            println!("cargo:rustc-cfg=scoreinv_cuda_graph");
        }
        Err(e) => {
            println!("cargo:warning=CUDA-graph shim not built ({e}): CUDA graphs unavailable")
        }
    }
}
