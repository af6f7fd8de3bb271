//! CUDA graphs: capture the kernels one sampler step launches once, then replay them with a
//! single launch per step (NVIDIA CUDA Graphs; PyTorch's `torch.cuda.CUDAGraph`, whose libtorch
//! class `at::cuda::CUDAGraph` this wraps through `csrc/cuda_graph.cpp`). A score model's step
//! at 64²–128² is launch-bound (hundreds of small kernels, ~16 ms per step on an H200 whatever
//! the size), which a replay removes.
//!
//! Rules of capture (as for PyTorch): the captured closure may only launch CUDA work on tensors
//! that stay alive and at fixed addresses (write results into preallocated "static" tensors
//! with `copy_`), must not synchronise with the host or copy from host memory, and reads its
//! per-step inputs (e.g. the time `t`) from device tensors that the caller updates before each
//! replay. Random numbers drawn inside a capture advance with every replay (libtorch registers
//! its default CUDA generator with the graph).
//!
//! Available when `build.rs` compiled the shim (libtorch with its CUDA headers, as the PyPI
//! wheels ship); otherwise [`CudaGraph::capture`] returns an error saying so.
use crate::{Error, Result};
use tch::Device;

#[cfg(scoreinv_cuda_graph)]
mod ffi {
    use std::os::raw::{c_char, c_int, c_void};
    extern "C" {
        pub fn scoreinv_cuda_graph_new(err: *mut c_char, errlen: usize) -> *mut c_void;
        pub fn scoreinv_cuda_graph_free(graph: *mut c_void);
        pub fn scoreinv_cuda_graph_capture(
            graph: *mut c_void,
            device: c_int,
            body: extern "C" fn(*mut c_void) -> c_int,
            ctx: *mut c_void,
            err: *mut c_char,
            errlen: usize,
        ) -> c_int;
        pub fn scoreinv_cuda_graph_replay(
            graph: *mut c_void,
            err: *mut c_char,
            errlen: usize,
        ) -> c_int;
    }
}

/// Whether this build can capture CUDA graphs (the device must still be a CUDA one).
pub fn available() -> bool {
    cfg!(scoreinv_cuda_graph)
}

/// A captured CUDA graph (see the module docs).
pub struct CudaGraph {
    #[cfg(scoreinv_cuda_graph)]
    ptr: *mut std::os::raw::c_void,
    device: Device,
}

#[cfg(scoreinv_cuda_graph)]
fn message(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl CudaGraph {
    /// Captures the CUDA work `body` launches on `device` (run once, under capture: nothing
    /// executes until [`Self::replay`]). Errors: a non-CUDA device, a build without the shim,
    /// libtorch refusing the capture (e.g. a host synchronisation inside `body`), or `body`'s
    /// own error.
    pub fn capture(device: Device, body: &mut dyn FnMut() -> Result<()>) -> Result<Self> {
        let Device::Cuda(index) = device else {
            return Err(Error::Invalid(format!(
                "CUDA graphs need a CUDA device, got {device:?}"
            )));
        };
        #[cfg(not(scoreinv_cuda_graph))]
        {
            let _ = (index, body);
            Err(Error::Invalid(
                "this scoreinv was built without CUDA-graph support (libtorch's CUDA headers \
                 were not found at build time)"
                    .into(),
            ))
        }
        #[cfg(scoreinv_cuda_graph)]
        {
            struct Ctx<'a> {
                body: &'a mut dyn FnMut() -> Result<()>,
                error: Option<String>,
            }
            extern "C" fn trampoline(ctx: *mut std::os::raw::c_void) -> std::os::raw::c_int {
                // SAFETY: `ctx` is the `Ctx` passed below, alive for the whole capture call.
                let ctx = unsafe { &mut *(ctx as *mut Ctx) };
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (ctx.body)()));
                match run {
                    Ok(Ok(())) => 0,
                    Ok(Err(e)) => {
                        ctx.error = Some(e.to_string());
                        1
                    }
                    Err(p) => {
                        ctx.error = Some(crate::runtime::panic_message(p.as_ref()));
                        1
                    }
                }
            }
            let mut err = vec![0u8; 1024];
            // SAFETY: plain C ABI calls into csrc/cuda_graph.cpp with a valid error buffer.
            let ptr = unsafe { ffi::scoreinv_cuda_graph_new(err.as_mut_ptr().cast(), err.len()) };
            if ptr.is_null() {
                return Err(Error::Invalid(format!(
                    "CUDA graph: creation failed: {}",
                    message(&err)
                )));
            }
            let graph = CudaGraph { ptr, device };
            let mut ctx = Ctx { body, error: None };
            // SAFETY: `graph.ptr` is a live CUDAGraph, `ctx` outlives the call.
            let rc = unsafe {
                ffi::scoreinv_cuda_graph_capture(
                    graph.ptr,
                    index as std::os::raw::c_int,
                    trampoline,
                    (&mut ctx as *mut Ctx).cast(),
                    err.as_mut_ptr().cast(),
                    err.len(),
                )
            };
            match (rc, ctx.error) {
                (0, _) => Ok(graph),
                (_, Some(e)) => Err(Error::Invalid(format!(
                    "CUDA graph: the captured step failed: {e}"
                ))),
                _ => Err(Error::Invalid(format!(
                    "CUDA graph: capture failed: {}",
                    message(&err)
                ))),
            }
        }
    }

    /// Launches the captured work once more, on the current stream of its device.
    pub fn replay(&self) -> Result<()> {
        #[cfg(scoreinv_cuda_graph)]
        {
            let mut err = vec![0u8; 512];
            // SAFETY: `self.ptr` is a live, captured CUDAGraph.
            let rc = unsafe {
                ffi::scoreinv_cuda_graph_replay(self.ptr, err.as_mut_ptr().cast(), err.len())
            };
            if rc != 0 {
                return Err(Error::Invalid(format!(
                    "CUDA graph replay on {:?}: {}",
                    self.device,
                    message(&err)
                )));
            }
            Ok(())
        }
        #[cfg(not(scoreinv_cuda_graph))]
        Err(Error::Invalid(format!(
            "CUDA graph replay on {:?}: built without CUDA-graph support",
            self.device
        )))
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        #[cfg(scoreinv_cuda_graph)]
        // SAFETY: `ptr` came from scoreinv_cuda_graph_new and is freed once.
        unsafe {
            ffi::scoreinv_cuda_graph_free(self.ptr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the CPU a capture is refused with an error naming the device; the shim is compiled
    /// into builds against the PyPI libtorch (this machine's), so `available()` says so.
    #[test]
    fn capture_needs_a_cuda_device() {
        let mut ran = false;
        let e = CudaGraph::capture(Device::Cpu, &mut || {
            ran = true;
            Ok(())
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("CUDA device"), "{e}");
        assert!(!ran);
        let _ = available();
    }
}
