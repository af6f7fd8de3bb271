// The extension finds libtorch where pip puts torch: `site-packages/scoreinv/_scoreinv*.so`
// next to `site-packages/torch/lib` (an rpath relative to the extension). `import scoreinv`
// imports torch first, which loads those very libraries, so the rpath is a fallback.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../torch/lib");
    }
}
