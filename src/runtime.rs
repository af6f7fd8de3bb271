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

type CudaIntFn = unsafe extern "C" fn(*mut libc::c_int) -> libc::c_int;
type CudaSetFn = unsafe extern "C" fn(libc::c_int) -> libc::c_int;
type CudaMemFn = unsafe extern "C" fn(*mut libc::size_t, *mut libc::size_t) -> libc::c_int;

/// A CUDA runtime function of the process (the `libcudart` that libtorch_cuda brought in), by
/// name; None when no CUDA runtime is loaded.
pub fn cudart_symbol(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol up.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// `(used, total)` bytes of CUDA device `index`, device-wide (every process on it; for the
/// caching allocator of libtorch, what it has reserved, not only what tensors hold), from the
/// CUDA runtime's `cudaMemGetInfo`. None without a CUDA runtime or device. The calling thread's
/// current device is restored.
pub fn cuda_memory(index: usize) -> Option<(u64, u64)> {
    if !tch::Cuda::is_available() {
        return None;
    }
    let get = cudart_symbol(c"cudaGetDevice")?;
    let set = cudart_symbol(c"cudaSetDevice")?;
    let mem = cudart_symbol(c"cudaMemGetInfo")?;
    // SAFETY: the symbols are the CUDA runtime's, with these C signatures
    // (cudaError_t cudaGetDevice(int*), cudaSetDevice(int), cudaMemGetInfo(size_t*, size_t*)).
    unsafe {
        let get: CudaIntFn = std::mem::transmute(get);
        let set: CudaSetFn = std::mem::transmute(set);
        let mem: CudaMemFn = std::mem::transmute(mem);
        let mut current: libc::c_int = 0;
        if get(&mut current) != 0 {
            return None;
        }
        if set(index as libc::c_int) != 0 {
            return None;
        }
        let (mut free, mut total): (libc::size_t, libc::size_t) = (0, 0);
        let rc = mem(&mut free, &mut total);
        set(current);
        (rc == 0 && total >= free).then(|| ((total - free) as u64, total as u64))
    }
}

/// libtorch's CUDA synchronisation debug mode (`torch.cuda.set_sync_debug_mode`): with
/// [`SyncDebugMode::Error`] every op that makes the host wait for the GPU (a device-to-host copy
/// such as reading a scalar, `nonzero`, a stream synchronisation) raises instead of running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum SyncDebugMode {
    Disabled = 0,
    Warn = 1,
    Error = 2,
}

/// The state behind `c10::cuda::warning_state()`: an inline function's static `WarningState`,
/// whose only member is the `SyncDebugMode` enum (an `int`), exported by `libc10_cuda` as a
/// unique global. None when libc10_cuda is not in the process.
fn sync_debug_state() -> Option<*mut i32> {
    let name = c"_ZZN3c104cuda13warning_stateEvE14warning_state_";
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks a symbol up.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p as *mut i32)
}

/// Sets libtorch's CUDA sync debug mode; returns the previous one, or None (nothing set) when
/// libtorch's CUDA part is not loaded. Process-wide, like `torch.cuda.set_sync_debug_mode`.
pub fn set_cuda_sync_debug_mode(mode: SyncDebugMode) -> Option<SyncDebugMode> {
    let p = sync_debug_state()?;
    // SAFETY: `p` points at libc10_cuda's WarningState, a plain `int` enum with values 0..=2
    // (c10/cuda/CUDAFunctions.h); libtorch reads it with plain loads too.
    unsafe {
        let prev = match std::ptr::read_volatile(p) {
            1 => SyncDebugMode::Warn,
            2 => SyncDebugMode::Error,
            _ => SyncDebugMode::Disabled,
        };
        std::ptr::write_volatile(p, mode as i32);
        Some(prev)
    }
}

/// The message of a caught panic payload (`String` or `&str`), or `"panic"`.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// The process's peak resident memory so far (Linux `VmHWM` of `/proc/self/status`), in bytes;
/// `None` where the kernel does not report it.
pub fn peak_host_memory() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// The process's resident memory now (Linux `VmRSS` of `/proc/self/status`), in bytes; `None`
/// where the kernel does not report it.
pub fn resident_host_memory() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}

/// Resets the peak resident memory ([`peak_host_memory`]) to the resident memory now (Linux ≥
/// 4.0: `5` written to `/proc/self/clear_refs`); false where that is not possible.
pub fn reset_peak_host_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `"peak host memory: 1.23 GiB (resident high-water mark)"`, where the kernel reports it.
pub fn peak_host_memory_line() -> Option<String> {
    peak_host_memory().map(|b| {
        format!(
            "peak host memory: {:.2} GiB (resident high-water mark)",
            gib(b)
        )
    })
}

/// Bytes in GiB (2³⁰ bytes).
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// The largest device memory in use seen by [`Self::sample`] calls, for a "peak GPU memory"
/// line after long work (sampled, so a peak between two samples can be missed).
#[derive(Debug, Default, Clone, Copy)]
pub struct GpuMemoryPeak {
    index: Option<usize>,
    peak: u64,
    total: u64,
}

impl GpuMemoryPeak {
    /// Watches `device` (nothing for the CPU).
    pub fn new(device: tch::Device) -> Self {
        Self {
            index: match device {
                tch::Device::Cuda(i) => Some(i),
                _ => None,
            },
            ..Self::default()
        }
    }

    /// Records the device's memory in use now (synchronising it first, so queued work counts).
    pub fn sample(&mut self) {
        let Some(i) = self.index else { return };
        tch::Cuda::synchronize(i as i64);
        if let Some((used, total)) = cuda_memory(i) {
            self.peak = self.peak.max(used);
            self.total = total;
        }
    }

    /// `"peak GPU memory in use: 3.21 GiB of 79.19 GiB (cuda:0; …)"`, or None when nothing
    /// was measured.
    pub fn report(&self) -> Option<String> {
        let i = self.index?;
        (self.total > 0).then(|| {
            format!(
                "peak GPU memory in use: {:.2} GiB of {:.2} GiB (cuda:{i}; device-wide, with \
                 libtorch's cached blocks; sampled)",
                gib(self.peak),
                gib(self.total)
            )
        })
    }
}

/// How the C heap that libtorch's CPU tensors live in (glibc `malloc`) is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAllocator {
    /// `M_MMAP_MAX = 0`, `M_TRIM_THRESHOLD = -1`: freed tensors stay in the heap for reuse.
    Tuned,
    /// Left as it was, and why (`SCOREINV_MALLOC=system`, the user's own `MALLOC_*`
    /// variables or preloaded malloc, or not glibc).
    System(String),
}

/// The environment variable that chooses the host allocator set-up: `tuned` (default) or
/// `system`.
pub const MALLOC_ENV: &str = "SCOREINV_MALLOC";

static HOST_ALLOCATOR: std::sync::OnceLock<HostAllocator> = std::sync::OnceLock::new();

/// Configures glibc `malloc` for tensor work, once per process; the binary calls it first thing.
///
/// glibc serves every block above its mmap threshold (128 KiB, rising with use to at most
/// 32 MiB) with a fresh `mmap` and gives it back with `munmap` on free. A reverse-SDE step
/// allocates and frees tensors of megabytes dozens of times, so on CPU every step faulted its
/// memory in again, zeroed by the kernel: half the wall time of a CT reconstruction was system
/// time. With mmap off (`M_MMAP_MAX = 0`) and the top of the heap never returned
/// (`M_TRIM_THRESHOLD = -1`, mallopt(3)), freed tensors are reused: a batched CT reconstruction
/// ran 1.85× and CPU training 1.40× faster, for 36 % more peak resident memory
/// (`scripts/bench/malloc`, BENCHMARKS.md). GPU tensors are not affected (CUDA's caching
/// allocator). The samplers allocate on the calling thread; off the main thread glibc still
/// maps blocks larger than a thread arena (64 MiB) one by one.
///
/// Left alone, with the reason in [`HostAllocator::System`], when `SCOREINV_MALLOC=system`,
/// when the user set glibc's own `MALLOC_*` variables or malloc `GLIBC_TUNABLES`, when another
/// malloc is in `LD_PRELOAD`, and off glibc. Any other value of `SCOREINV_MALLOC` than `tuned`
/// or `system` is an error (nothing is changed).
pub fn tune_host_allocator() -> crate::Result<HostAllocator> {
    if let Some(done) = HOST_ALLOCATOR.get() {
        return Ok(done.clone());
    }
    let choice = std::env::var(MALLOC_ENV).unwrap_or_default();
    let choice = choice.trim().to_ascii_lowercase();
    let chosen = match choice.as_str() {
        "" | "tuned" => match users_malloc_settings() {
            Some(var) => HostAllocator::System(format!("{var} is set: left as configured")),
            None => apply_tuned(),
        },
        "system" => HostAllocator::System(format!("{MALLOC_ENV}=system")),
        other => {
            return Err(crate::Error::Config(format!(
                "{MALLOC_ENV}: '{other}' is not 'tuned' or 'system'"
            )))
        }
    };
    Ok(HOST_ALLOCATOR.get_or_init(|| chosen).clone())
}

/// What [`tune_host_allocator`] decided, if it ran.
pub fn host_allocator() -> Option<HostAllocator> {
    HOST_ALLOCATOR.get().cloned()
}

/// The glibc variables that give a child process (e.g. a Python reference run by
/// `scoreinv bench`) the same heap set-up as this one: empty unless [`HostAllocator::Tuned`].
/// glibc reads the trim threshold as an unsigned number, so "never" is spelled 4 GiB.
pub fn host_allocator_env() -> Vec<(&'static str, &'static str)> {
    match HOST_ALLOCATOR.get() {
        Some(HostAllocator::Tuned) => vec![
            ("MALLOC_MMAP_MAX_", "0"),
            ("MALLOC_TRIM_THRESHOLD_", "4294967295"),
        ],
        _ => vec![],
    }
}

/// The first malloc setting the user made through the environment, if any: glibc's
/// `MALLOC_*` variables, malloc tunables, or another allocator preloaded (jemalloc, tcmalloc).
fn users_malloc_settings() -> Option<String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .find(|(k, v)| {
            k.starts_with("MALLOC_")
                || (k == "GLIBC_TUNABLES" && v.contains("malloc"))
                || (k == "LD_PRELOAD" && v.contains("malloc"))
        })
        .map(|(k, _)| k)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply_tuned() -> HostAllocator {
    // SAFETY: mallopt only sets glibc's parameters, from any thread, at any time; it returns 1
    // on success and 0 on error (then that parameter is unchanged).
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1
    };
    if ok {
        HostAllocator::Tuned
    } else {
        HostAllocator::System("mallopt refused the settings".into())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply_tuned() -> HostAllocator {
    HostAllocator::System("not glibc: the platform's malloc is used as is".into())
}

/// Bytes glibc currently holds in `mmap`ed blocks (`mallinfo2().hblkhd`); `None` off glibc.
pub fn mmapped_heap_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        Some(unsafe { libc::mallinfo2() }.hblkhd as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

#[cfg(scoreinv_warning_filter)]
extern "C" {
    fn scoreinv_filter_torch_warnings();
}

/// Drops libtorch's "Sparse CSR tensor support is in beta state" warning (printed on the first
/// CSR tensor, which every CT operator builds; the CSR products scoreinv uses are checked by its
/// own tests) on the calling thread; every other libtorch warning is still printed
/// (`csrc/warnings.cpp`). A no-op when the filter was built without libtorch's headers.
pub fn quiet_known_torch_warnings() {
    #[cfg(scoreinv_warning_filter)]
    // SAFETY: installs a handler object with static thread-local storage; no arguments.
    unsafe {
        scoreinv_filter_torch_warnings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CUDA runtime's symbols are found through the process (libtorch_cuda is linked with
    /// --no-as-needed); on a machine without a GPU the memory query says None instead of
    /// failing, and a CPU monitor reports nothing.
    #[test]
    fn cuda_memory_query_is_none_without_a_gpu_and_consistent_with_one() {
        if cuda_runtime_loaded() {
            assert!(cudart_symbol(c"cudaMemGetInfo").is_some());
        }
        match cuda_memory(0) {
            None => assert!(!tch::Cuda::is_available() || !cuda_runtime_loaded()),
            Some((used, total)) => assert!(used <= total && total > 0),
        }
        let mut m = GpuMemoryPeak::new(tch::Device::Cpu);
        m.sample();
        assert!(m.report().is_none());
    }

    /// The sync debug mode is found and round-trips wherever libtorch's CUDA part is loaded (this
    /// binary links it even without a GPU); CPU tensors are unaffected by it.
    #[test]
    fn sync_debug_mode_round_trips() {
        if !cuda_runtime_loaded() {
            assert_eq!(set_cuda_sync_debug_mode(SyncDebugMode::Error), None);
            return;
        }
        assert_eq!(
            set_cuda_sync_debug_mode(SyncDebugMode::Error),
            Some(SyncDebugMode::Disabled)
        );
        let v = tch::Tensor::from_slice(&[2.0f64]).double_value(&[]);
        assert_eq!(
            set_cuda_sync_debug_mode(SyncDebugMode::Disabled),
            Some(SyncDebugMode::Error)
        );
        assert_eq!(v, 2.0);
    }
}
