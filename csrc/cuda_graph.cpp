// CUDA-graph capture and replay for scoreinv (tch 0.24 exposes no CUDA-graph API): a thin C ABI
// over libtorch's at::cuda::CUDAGraph, the class behind torch.cuda.CUDAGraph. Compiled by
// build.rs only when libtorch ships its CUDA headers; see src/cuda_graph.rs.
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <cstring>
#include <exception>

namespace {
void set_err(char* buf, size_t len, const char* msg) {
  if (buf != nullptr && len > 0) {
    std::strncpy(buf, msg, len - 1);
    buf[len - 1] = '\0';
  }
}
// Restores the current device and its current stream on scope exit. Only functions exported by
// libc10_cuda are called (not c10's inline guards, whose inline bodies call the CUDA runtime
// directly and would make this object need libcudart at link time).
struct DeviceStreamRestore {
  c10::DeviceIndex device;
  c10::cuda::CUDAStream stream;
  explicit DeviceStreamRestore(c10::DeviceIndex target)
      : device(c10::cuda::current_device()), stream(c10::cuda::getCurrentCUDAStream(target)) {
    c10::cuda::set_device(target);
  }
  ~DeviceStreamRestore() {
    try {
      c10::cuda::setCurrentCUDAStream(stream);
      c10::cuda::set_device(device);
    } catch (...) {
    }
  }
};
}  // namespace

extern "C" {

void* scoreinv_cuda_graph_new(char* err, size_t errlen) {
  try {
    return new at::cuda::CUDAGraph();
  } catch (const std::exception& e) {
    set_err(err, errlen, e.what());
    return nullptr;
  }
}

void scoreinv_cuda_graph_free(void* graph) {
  delete static_cast<at::cuda::CUDAGraph*>(graph);
}

// Captures the CUDA work `body(ctx)` launches on `device` into `graph`: on a side stream from
// libtorch's pool (capture cannot use the legacy default stream) that first waits for the work
// already queued on the current stream, as torch.cuda.graph does. Returns 0 on success, 1 when
// libtorch raised (message in err), 2 when body returned non-zero (the capture is ended and
// discarded either way).
int scoreinv_cuda_graph_capture(void* graph, int device, int (*body)(void*), void* ctx,
                                char* err, size_t errlen) {
  auto* g = static_cast<at::cuda::CUDAGraph*>(graph);
  try {
    const auto dev = static_cast<c10::DeviceIndex>(device);
    DeviceStreamRestore restore(dev);
    auto side = c10::cuda::getStreamFromPool(false, dev);
    c10::cuda::device_synchronize();  // queued work first, as torch.cuda.graph does
    c10::cuda::setCurrentCUDAStream(side);
    g->capture_begin();
    int rc = 0;
    try {
      rc = body(ctx);
    } catch (...) {
      rc = 2;
    }
    g->capture_end();
    c10::cuda::device_synchronize();
    if (rc != 0) {
      set_err(err, errlen, "the captured step failed");
      return 2;
    }
  } catch (const std::exception& e) {
    set_err(err, errlen, e.what());
    return 1;
  }
  return 0;
}

// Replays `graph` on the current stream of its device. 0 on success, 1 when libtorch raised.
int scoreinv_cuda_graph_replay(void* graph, char* err, size_t errlen) {
  try {
    static_cast<at::cuda::CUDAGraph*>(graph)->replay();
  } catch (const std::exception& e) {
    set_err(err, errlen, e.what());
    return 1;
  }
  return 0;
}

}  // extern "C"
