// The NCCL backend, compiled only where CMake found the NCCL and CUDA runtime headers (a CUDA
// LibTorch with pip's nvidia-nccl package, or a CUDA toolkit); CPU builds get the stubs below.
#include "distributed.h"

#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>

#include <cstdlib>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "runtime.h"
#endif

namespace cxrmask {

#ifdef USE_C10D_NCCL
bool NcclAvailable() { return true; }
c10::intrusive_ptr<c10d::Backend> MakeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store,
                                                  const GroupOptions& opts) {
  // Blocking wait: a collective that does not finish within the timeout throws on this rank
  // (a NativeError) instead of the watchdog aborting the process later.
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
  const c10::Device device = ResolveDevice(opts.device);
  c10::cuda::set_device(device.index());
  auto o = c10d::ProcessGroupNCCL::Options::create();
  o->timeout = std::chrono::milliseconds(opts.timeout_ms);
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, opts.rank, opts.world_size, o);
  // Bound to one GPU: communicators are created for it, not for a guessed device.
  pg->setBoundDeviceId(device);
  return pg;
}
#else
bool NcclAvailable() { return false; }
c10::intrusive_ptr<c10d::Backend> MakeNcclBackend(const c10::intrusive_ptr<c10d::Store>&,
                                                  const GroupOptions&) {
  throw DistributedError(
      "this build of the addon has no NCCL backend (built without CUDA LibTorch or without the "
      "NCCL headers of pip's nvidia-nccl package)",
      "ERR_DIST_UNAVAILABLE");
}
#endif

}  // namespace cxrmask
