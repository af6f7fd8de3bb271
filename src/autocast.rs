//! Mixed precision through libtorch autocast, with the lower-precision dtype chosen.
//!
//! Inside an autocast region, libtorch runs the ops that tolerate it (convolutions, matrix
//! products, linear layers) in a lower-precision dtype and keeps the rest in float32 (Micikevicius
//! et al. 2018, "Mixed precision training"; PyTorch `torch.autocast`). tch 0.24 only toggles CUDA
//! autocast at libtorch's default dtype (float16); bfloat16 — float32's exponent range, so no loss
//! scaling is needed — is set here through libtorch's own `at::autocast::set_autocast_dtype`,
//! `set_autocast_enabled` and `is_autocast_enabled` (exported C++ functions whose arguments are
//! `c10::DeviceType` and `c10::ScalarType`, both `int8_t` enums, and `bool`). The previous state
//! (enabled flag and dtype of that device type) is restored when the region ends.
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

mod ffi {
    extern "C" {
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device_type: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device_type: i8) -> bool;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device_type: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device_type: i8) -> i8;
    }
}

/// `c10::ScalarType` values (the enum's order, stable across libtorch releases).
const SCALAR_HALF: i8 = 5;
const SCALAR_FLOAT: i8 = 6;
const SCALAR_DOUBLE: i8 = 7;
const SCALAR_BFLOAT16: i8 = 15;

/// `c10::DeviceType` values.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;

/// Lower-precision dtype of an autocast region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutocastDtype {
    /// bfloat16 (8 exponent bits: float32's range; the default).
    #[default]
    Bfloat16,
    /// float16 (IEEE half; libtorch's CUDA default).
    Float16,
}

impl AutocastDtype {
    /// The tch kind.
    pub fn kind(self) -> Kind {
        match self {
            AutocastDtype::Bfloat16 => Kind::BFloat16,
            AutocastDtype::Float16 => Kind::Half,
        }
    }

    fn scalar_type(self) -> i8 {
        match self {
            AutocastDtype::Bfloat16 => SCALAR_BFLOAT16,
            AutocastDtype::Float16 => SCALAR_HALF,
        }
    }
}

fn device_type(device: Device) -> i8 {
    if device.is_cuda() {
        DEVICE_CUDA
    } else {
        DEVICE_CPU
    }
}

/// The autocast dtype currently set for `device`'s type.
pub fn current_dtype(device: Device) -> Kind {
    // SAFETY: a libtorch getter taking a c10::DeviceType (int8_t enum) by value.
    let code = unsafe { ffi::get_autocast_dtype(device_type(device)) };
    match code {
        SCALAR_HALF => Kind::Half,
        SCALAR_BFLOAT16 => Kind::BFloat16,
        SCALAR_DOUBLE => Kind::Double,
        SCALAR_FLOAT => Kind::Float,
        _ => Kind::Float,
    }
}

/// Whether autocast is enabled for `device`'s type.
pub fn is_enabled(device: Device) -> bool {
    // SAFETY: as above.
    unsafe { ffi::is_autocast_enabled(device_type(device)) }
}

/// Runs `f` with autocast on `device`'s type at `dtype` when `enabled` (otherwise just runs
/// `f`), restoring the previous flag and dtype afterwards; libtorch's cast cache is cleared
/// when the outermost region ends, as `torch.autocast` does.
pub fn with_autocast<T>(
    device: Device,
    enabled: bool,
    dtype: AutocastDtype,
    f: impl FnOnce() -> T,
) -> T {
    if !enabled {
        return f();
    }
    let dt = device_type(device);
    // SAFETY: libtorch setters/getters on thread-local autocast state, taking int8_t enums and
    // bool by value; torch-sys' nesting functions take no arguments.
    let (prev_on, prev_dtype) =
        unsafe { (ffi::is_autocast_enabled(dt), ffi::get_autocast_dtype(dt)) };
    unsafe {
        ffi::set_autocast_dtype(dt, dtype.scalar_type());
        ffi::set_autocast_enabled(dt, true);
        torch_sys::at_autocast_increment_nesting();
    }
    let out = f();
    unsafe {
        if torch_sys::at_autocast_decrement_nesting() == 0 {
            torch_sys::at_autocast_clear_cache();
        }
        ffi::set_autocast_enabled(dt, prev_on);
        ffi::set_autocast_dtype(dt, prev_dtype);
    }
    out
}

/// Process-wide precision policy for score-model **inference** (sampling, reconstruction,
/// likelihood, encode/decode), set once by the CLI's global `--autocast` flag and read by
/// [`crate::models::model_dir::load_model_dir`] when it wraps a network: 0 = off, 1 = bf16,
/// 2 = f16. Training has its own setting (`training.autocast`).
static INFERENCE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the inference autocast policy (see [`inference_autocast`]).
pub fn set_inference_autocast(dtype: Option<AutocastDtype>) {
    let code = match dtype {
        None => 0,
        Some(AutocastDtype::Bfloat16) => 1,
        Some(AutocastDtype::Float16) => 2,
    };
    INFERENCE.store(code, std::sync::atomic::Ordering::Relaxed);
}

/// The dtype score networks loaded from model directories run their forward pass in under
/// autocast, or `None` (float32, the default).
pub fn inference_autocast() -> Option<AutocastDtype> {
    match INFERENCE.load(std::sync::atomic::Ordering::Relaxed) {
        1 => Some(AutocastDtype::Bfloat16),
        2 => Some(AutocastDtype::Float16),
        _ => None,
    }
}

/// Parses `none`, `bf16`/`bfloat16` or `f16`/`fp16`/`float16` (the CLI's `--autocast`).
pub fn parse_autocast(s: &str) -> crate::Result<Option<AutocastDtype>> {
    match s.to_ascii_lowercase().as_str() {
        "none" | "off" | "f32" | "fp32" => Ok(None),
        "bf16" | "bfloat16" => Ok(Some(AutocastDtype::Bfloat16)),
        "f16" | "fp16" | "float16" | "half" => Ok(Some(AutocastDtype::Float16)),
        other => Err(crate::Error::Invalid(format!(
            "`autocast` {other}: expected none, bf16 or f16"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    /// The FFI is checked on the CPU, whose autocast libtorch also implements: inside a bf16
    /// region a matrix product comes out in bfloat16, outside (and after) in float32, and the
    /// previous dtype and flag are restored. The CUDA path differs only in the device type.
    #[test]
    fn cpu_autocast_runs_matmul_in_the_chosen_dtype_and_restores_state() {
        let cpu = Device::Cpu;
        let a = Tensor::ones([4, 4], (Kind::Float, cpu));
        let before = current_dtype(cpu);
        assert!(!is_enabled(cpu));
        assert_eq!(a.matmul(&a).kind(), Kind::Float);
        let (kind, on) = with_autocast(cpu, true, AutocastDtype::Bfloat16, || {
            (a.matmul(&a).kind(), is_enabled(cpu))
        });
        assert_eq!(kind, Kind::BFloat16);
        assert!(on);
        assert!(!is_enabled(cpu));
        assert_eq!(current_dtype(cpu), before);
        // Elementwise ops stay in float32 inside the region.
        let k = with_autocast(cpu, true, AutocastDtype::Bfloat16, || (&a + 1.0).kind());
        assert_eq!(k, Kind::Float);
        // float16 is set and read back, then the previous dtype restored.
        let inner = with_autocast(cpu, true, AutocastDtype::Float16, || current_dtype(cpu));
        assert_eq!(inner, Kind::Half);
        assert_eq!(current_dtype(cpu), before);
        // Disabled: a plain call.
        let k = with_autocast(cpu, false, AutocastDtype::Bfloat16, || a.matmul(&a).kind());
        assert_eq!(k, Kind::Float);
    }
}
