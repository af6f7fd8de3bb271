//! The host allocator set-up (`runtime::tune_host_allocator`): after it, tensor-sized blocks come
//! from the heap instead of fresh `mmap`s, and the CLI reports and honours the opt-outs.
use scoreinv::runtime::{self, HostAllocator};
use std::process::Command;

/// Above glibc's largest mmap threshold (32 MiB), so by default always its own mapping; below a
/// thread arena's 64 MiB, so tuned it comes from the heap on a test thread too (a test does not
/// run on the main thread, whose heap has no such limit).
const BLOCK: usize = 48 << 20;

/// Bytes of `mmap`ed blocks glibc holds while a fresh [`BLOCK`] is allocated.
fn mmapped_growth_of_a_large_block() -> u64 {
    let before = runtime::mmapped_heap_bytes().expect("glibc");
    // SAFETY: a plain malloc/free pair; the block is written so it is really used.
    unsafe {
        // black_box: LLVM may otherwise drop an unobserved malloc/free pair.
        let p = std::hint::black_box(libc::malloc(BLOCK) as *mut u8);
        assert!(!p.is_null());
        p.write_bytes(1, BLOCK);
        let grown = runtime::mmapped_heap_bytes().expect("glibc") - before;
        libc::free(p as *mut libc::c_void);
        grown
    }
}

#[test]
fn tuned_allocator_serves_large_blocks_from_the_heap() {
    if let Some((k, _)) = std::env::vars().find(|(k, _)| k.starts_with("MALLOC_")) {
        // The user's own settings win; the set-up must say so rather than change them.
        let got = runtime::tune_host_allocator().unwrap();
        assert!(
            matches!(got, HostAllocator::System(ref why) if why.contains(&k)),
            "{got:?}"
        );
        return;
    }
    // glibc's default: a block above the mmap threshold is its own mapping.
    let g = mmapped_growth_of_a_large_block();
    assert!(
        g >= BLOCK as u64,
        "growth {g}, now {:?}",
        runtime::mmapped_heap_bytes()
    );
    assert_eq!(
        runtime::tune_host_allocator().unwrap(),
        HostAllocator::Tuned
    );
    assert_eq!(runtime::host_allocator(), Some(HostAllocator::Tuned));
    assert_eq!(mmapped_growth_of_a_large_block(), 0);
    let before = runtime::mmapped_heap_bytes().unwrap();
    let t = tch::Tensor::ones([12, 1 << 20], (tch::Kind::Float, tch::Device::Cpu));
    assert_eq!(
        runtime::mmapped_heap_bytes().unwrap(),
        before,
        "a 48 MiB tensor was mmapped"
    );
    drop(t);
    // Children (the bench's Python reference) get the same set-up.
    let env = runtime::host_allocator_env();
    assert!(env.contains(&("MALLOC_MMAP_MAX_", "0")), "{env:?}");
}

fn doctor(env: &[(&str, &str)]) -> (bool, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoreinv"));
    c.args(["--device", "cpu", "--threads", "1", "doctor", "--no-op"]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MALLOC_")) {
        c.env_remove(k);
    }
    c.env_remove(runtime::MALLOC_ENV).envs(env.iter().copied());
    let out = c.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn allocator_line(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("host allocator"))
        .unwrap_or_else(|| panic!("no host allocator line in:\n{text}"))
        .to_string()
}

#[test]
fn cli_reports_and_honours_the_allocator_choice() {
    let (ok, text) = doctor(&[]);
    assert!(ok, "{text}");
    assert!(allocator_line(&text).contains("tuned"), "{text}");

    let (ok, text) = doctor(&[("SCOREINV_MALLOC", "system")]);
    assert!(ok, "{text}");
    assert!(
        allocator_line(&text).contains("SCOREINV_MALLOC=system"),
        "{text}"
    );

    let (ok, text) = doctor(&[("MALLOC_ARENA_MAX", "2")]);
    assert!(ok, "{text}");
    assert!(
        allocator_line(&text).contains("MALLOC_ARENA_MAX is set"),
        "{text}"
    );

    let (ok, text) = doctor(&[("SCOREINV_MALLOC", "fast")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("SCOREINV_MALLOC: 'fast' is not 'tuned' or 'system'"),
        "{text}"
    );
}
