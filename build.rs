// Link-time fixes for libtorch (shared by the root crate and `operators/`).
//
// 1. `torch-sys` exports `DEP_TCH_LIBTORCH_LIB` (the folder holding `libtorch*.so`) to crates
//    that depend on it directly. We embed it as an rpath so binaries, tests and examples run
//    without `LD_LIBRARY_PATH`. The linker writes a RUNPATH, so `LD_LIBRARY_PATH` still wins
//    (that is how the binary finds the GPU machine's own torch/lib).
// 2. On Linux the linker's `--as-needed` drops `libtorch_cuda.so`, because no symbol of it is
//    referenced directly; CUDA then looks absent even on a GPU. When the library exists we
//    link it with `--no-as-needed` so its static initialisers register the CUDA backend.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: no rpath to libtorch embedded");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if cfg!(target_os = "linux") && Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
