//! `scoreinv doctor`: what libtorch, CUDA and data this binary sees.
use anyhow::Result;
use scoreinv::device::{device_name, DeviceChoice};
use scoreinv::runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the small tensor operation run on the selected device.
    #[arg(long)]
    pub no_op: bool,
}

pub fn run(args: Args, choice: DeviceChoice) -> Result<()> {
    println!("scoreinv          {}", env!("CARGO_PKG_VERSION"));
    let libs = runtime::loaded_libtorch();
    let version = runtime::libtorch_version();
    println!(
        "libtorch          {}",
        version
            .as_deref()
            .unwrap_or("unknown (could not find version.py beside the loaded libtorch)")
    );
    if let Some(lib) = libs
        .iter()
        .find(|p| p.to_string_lossy().contains("libtorch_cpu"))
    {
        println!(
            "libtorch path     {}",
            lib.parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    println!(
        "CUDA runtime      {}",
        match runtime::cudart_version() {
            Some(v) => format!(
                "loaded (libtorch_cuda, cudart {}.{}; memory query {})",
                v / 1000,
                (v % 1000) / 10,
                if runtime::cudart_symbol(c"cudaMemGetInfo").is_some() {
                    "found"
                } else {
                    "not found"
                }
            ),
            None => "not loaded (CPU-only libtorch, or libtorch_cuda.so dropped at link time)"
                .to_string(),
        }
    );
    let available = tch::Cuda::is_available();
    let count = if available {
        tch::Cuda::device_count()
    } else {
        0
    };
    println!("CUDA available    {}", if available { "yes" } else { "no" });
    println!("CUDA devices      {count}");
    println!(
        "CUDA graphs       {}",
        if scoreinv::cuda_graph::available() {
            "built in (csrc/cuda_graph.cpp; reconstruct --cuda-graph)"
        } else {
            "not built (libtorch's CUDA headers were missing at build time)"
        }
    );
    for i in 0..count {
        let mem = match runtime::cuda_memory(i as usize) {
            Some((used, total)) => format!(
                ", {:.1} of {:.1} GiB in use",
                runtime::gib(used),
                runtime::gib(total)
            ),
            None => String::new(),
        };
        println!("  cuda:{i}          {}{mem}", cuda_device_name(i as usize));
    }
    println!(
        "cuDNN             {}",
        if tch::Cuda::cudnn_is_available() {
            format!("yes ({})", tch::utils::version_cudnn())
        } else {
            "no".to_string()
        }
    );
    println!(
        "threads           {} (libtorch), {} (rayon)",
        tch::get_num_threads(),
        rayon::current_num_threads()
    );
    println!(
        "host allocator    {}",
        match runtime::host_allocator() {
            Some(runtime::HostAllocator::Tuned) => format!(
                "glibc malloc tuned for tensors (mmap off, heap kept; {}=system for the defaults)",
                runtime::MALLOC_ENV
            ),
            Some(runtime::HostAllocator::System(why)) => format!("as configured ({why})"),
            None => "not set up".to_string(),
        }
    );
    let venv = std::env::current_dir()
        .ok()
        .map(|d| d.join(".venv"))
        .filter(|p| p.exists());
    println!(
        "venv              {}",
        venv.map(|p| p.display().to_string())
            .unwrap_or_else(|| "none in the current folder".into())
    );
    for (name, path) in [
        ("fashion-mnist", "/usr/share/datasets/fashion-mnist"),
        (
            "invesalius CT",
            "/usr/share/doc/invesalius-examples/examples",
        ),
        ("mricron MRI", "/usr/share/mricron/templates"),
    ] {
        println!(
            "data {name:<13} {}",
            if std::path::Path::new(path).exists() {
                path.to_string()
            } else {
                format!("missing ({path}; `make data`)")
            }
        );
    }
    let device = choice.resolve()?;
    println!("selected device   {}", device_name(device));
    if !args.no_op {
        let a = tch::Tensor::ones([256, 256], (tch::Kind::Float, device));
        let s = a.matmul(&a).sum(tch::Kind::Float).double_value(&[]);
        anyhow::ensure!(
            (s - 256.0f64.powi(3)).abs() < 1.0,
            "tensor op on {} gave {s}",
            device_name(device)
        );
        println!(
            "tensor op         ok on {} (256x256 matmul)",
            device_name(device)
        );
        if device.is_cuda() {
            println!("sync debug mode   {}", sync_check(device));
        }
    }
    Ok(())
}

/// Positive control of the host-synchronisation check the bench runs inside sampler loops:
/// under libtorch's sync debug mode "error" a device-to-host read must raise.
fn sync_check(device: tch::Device) -> String {
    use scoreinv::runtime::{set_cuda_sync_debug_mode, SyncDebugMode};
    let t = tch::Tensor::ones([1], (tch::Kind::Float, device));
    let Some(prev) = set_cuda_sync_debug_mode(SyncDebugMode::Error) else {
        return "unavailable (libc10_cuda's warning_state not found)".into();
    };
    let read = t.f_double_value(&[]);
    set_cuda_sync_debug_mode(prev);
    match read {
        Err(_) => "works: a device-to-host read raised under 'error'".into(),
        Ok(_) => "NOT effective: a device-to-host read ran under 'error' (the loop check is blind)"
            .into(),
    }
}

/// The GPU's name and memory (tch exposes no device-properties call), from `nvidia-smi`.
fn cuda_device_name(i: usize) -> String {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total",
            "--format=csv,noheader",
            &format!("--id={i}"),
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => format!("CUDA device {i} (name unavailable: nvidia-smi not found)"),
    }
}
